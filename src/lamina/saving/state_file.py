"""Training state (optimizer moments, RNG states, callback counters) on disk without pickle:
the nested structure as JSON, every tensor or array as an HDF5 dataset it points to.

Loading treats the file as hostile, like the model loaders: the JSON is capped in size and
decodes to data only (dicts, lists, tuples, numbers, strings, tensors and arrays of allowed
dtypes), each dataset is checked by `inspect_weights` before it is read and referenced once,
and a SHA-256 of the whole state catches damage.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import h5py
import numpy as np
import torch

from lamina import tree
from lamina.errors import FileFormatError
from lamina.saving.file_format import (
    WeightsInventory,
    atomic_write,
    inspect_weights,
    open_h5,
    reading,
    string_attribute,
    weights_digest,
)
from lamina.saving.format_version import STATE_FORMAT_VERSION, h5_versions

MAX_STATE_JSON_BYTES = 64 << 20
CHECKSUM_ATTRIBUTE = "lamina_sha256"
TENSOR_DTYPES = {str(dtype).removeprefix("torch."): dtype for dtype in (
    torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64,
    torch.complex128, torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8, torch.bool)}


# Deeper JSON is refused on save and on load. Real states nest a few levels (optimizer state:
# dict of dicts of tensors, ~15 JSON levels); the cap keeps a crafted document from exhausting
# Python's stack while it is decoded.
MAX_STATE_DEPTH = 100


class _Array:
    """A tensor or array waiting for its dataset number, given in document order when written."""

    def __init__(self, array: np.ndarray, dtype: str | None):
        self.array, self.dtype = array, dtype


def _encode_node(node: Any) -> Any:
    # Bottom-up: a container's items are already encoded when it is reached.
    if isinstance(node, (dict, list, tuple)) and not tree.is_nested(node):
        # A subclass optree keeps whole (torch.Size, a user's list type): stored as its base.
        plain = dict(node) if isinstance(node, dict) else list(node) if isinstance(node, list) \
            else tuple(node)
        return _encode(plain)
    if isinstance(node, dict):
        return {"__dict__": [[_encode(k), v] for k, v in node.items()]}
    if isinstance(node, tuple):
        return {"__tuple__": list(node)}
    if isinstance(node, torch.Tensor):
        tensor = node.detach().cpu()
        # numpy has no bfloat16; float32 holds every bfloat16 value exactly.
        array = (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()
        return _Array(array, str(node.dtype).removeprefix("torch."))
    if isinstance(node, np.ndarray):
        return _Array(node, None)
    if isinstance(node, (np.integer, np.floating)):
        return node.item()
    if node is None or isinstance(node, (bool, int, float, str, list)):
        return None  # kept as it is
    raise TypeError(
        f"Cannot store {type(node).__name__} in a training-state file: it holds dicts, lists, "
        "tuples, numbers, strings, tensors and numpy arrays only. Received: "
        f"{node!r:.80}. Store the object's state (e.g. its state_dict()) instead."
    )


def _encode(value: Any) -> Any:
    return tree.traverse(_encode_node, value, top_down=False)


def _document(state: Any, arrays: list[np.ndarray]) -> str:
    """`state` as JSON; each tensor or array is appended to `arrays` and named by its index."""

    def number(pending: _Array) -> dict[str, Any]:
        arrays.append(pending.array)
        if pending.dtype is None:
            return {"__array__": len(arrays) - 1}
        return {"__tensor__": len(arrays) - 1, "dtype": pending.dtype}

    encoded = _encode(state)
    if _depth(encoded) > MAX_STATE_DEPTH:
        raise ValueError(
            f"The training state nests deeper than {MAX_STATE_DEPTH} levels once stored as JSON, "
            "so it could not be loaded back. Flatten it (e.g. key its parts by path)."
        )
    # json writes in document order, so datasets are numbered as they appear in the text.
    return json.dumps(encoded, default=number)


def _depth(document: Any) -> int:
    """How deeply JSON lists and objects nest in `document` (without recursing)."""
    deepest, pending = 0, [(document, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, (list, dict)):
            deepest = max(deepest, depth)
            pending.extend((item, depth + 1) for item in
                           (value.values() if isinstance(value, dict) else value))
    return deepest


class _Decoder:
    """Builds data only: each marker object maps to one container type, and each dataset may be
    referenced once (so a small JSON cannot multiply a large array)."""

    def __init__(self, inventory: WeightsInventory):
        self.inventory = inventory
        self.used: set[str] = set()

    def refuse(self, reason: str) -> FileFormatError:
        return FileFormatError(f"{self.inventory.source!r} is not a valid training-state file: "
                               f"{reason}.")

    def array(self, index: Any) -> np.ndarray:
        if type(index) is not int or str(index) not in self.inventory.datasets:
            raise self.refuse(f"it refers to array {index!r}, which it does not hold")
        if str(index) in self.used:
            raise self.refuse(f"array {index} is referenced twice")
        self.used.add(str(index))
        return np.asarray(self.inventory.datasets[str(index)][()])

    def decode(self, value: Any) -> Any:
        return tree.traverse(self._decode_node, value)

    def _decode_node(self, value: Any) -> Any:
        # Top-down: a JSON list is walked (None), a JSON object is one of the stored forms.
        if not isinstance(value, dict):
            return None
        keys = set(value)
        if keys == {"__tensor__", "dtype"}:
            dtype = TENSOR_DTYPES.get(value["dtype"]) if isinstance(value["dtype"], str) else None
            if dtype is None:
                raise self.refuse(f"tensor dtype {value['dtype']!r} is not one of "
                                  f"{sorted(TENSOR_DTYPES)}")
            array = self.array(value["__tensor__"])
            if array.dtype.kind not in "biufc":
                raise self.refuse(f"array {value['__tensor__']} has dtype {array.dtype}")
            return torch.from_numpy(np.array(array, dtype=array.dtype.newbyteorder("="))).to(dtype)
        if keys == {"__array__"}:
            return self.array(value["__array__"]).copy()
        if keys == {"__tuple__"} and isinstance(value["__tuple__"], list):
            return tuple(self.decode(value["__tuple__"]))
        if keys == {"__dict__"} and isinstance(value["__dict__"], list):
            decoded = {}
            for pair in value["__dict__"]:
                if not isinstance(pair, list) or len(pair) != 2:
                    raise self.refuse("a dictionary entry is not a [key, value] pair")
                key = self.decode(pair[0])
                try:
                    hash(key)
                except TypeError:
                    raise self.refuse(f"a dictionary key is a {type(key).__name__}") from None
                decoded[key] = self.decode(pair[1])
            return decoded
        raise self.refuse(f"an object with keys {sorted(keys)[:5]} is none of the stored forms")


def _digest(document: str, inventory: WeightsInventory) -> str:
    return hashlib.sha256(document.encode() + weights_digest(inventory).encode()).hexdigest()


def save_state(path: str | os.PathLike, state: Any) -> None:
    """Write `state` (dicts, lists, tuples, numbers, strings, tensors, arrays) atomically."""
    arrays: list[np.ndarray] = []
    document = _document(state, arrays)

    def write(temporary: str) -> None:
        with h5py.File(temporary, "w") as h5:
            h5.attrs["state"] = document
            h5.attrs["format_version"] = STATE_FORMAT_VERSION
            group = h5.create_group("arrays")
            for index, array in enumerate(arrays):
                group.create_dataset(str(index), data=array)
            h5.attrs[CHECKSUM_ATTRIBUTE] = _digest(
                document, inspect_weights(group, "the file being written", None))

    atomic_write(path, write)


def load_state(path: str | os.PathLike) -> Any:
    """Read a file written by `save_state`; a damaged or crafted file raises FileFormatError."""
    source = str(path)
    with open_h5(path, "restore training state from it") as h5:
        # A file without a version is this same layout, written before versions were recorded.
        h5_versions(h5, source, known=(STATE_FORMAT_VERSION,))
        document = string_attribute(h5, "state", MAX_STATE_JSON_BYTES, source)
        checksum = string_attribute(h5, CHECKSUM_ATTRIBUTE, 64, source)
        with reading(source, "the training state"):
            if document is None or not isinstance(h5.get("arrays", getlink=True), h5py.HardLink) \
                    or not isinstance(h5["arrays"], h5py.Group):
                raise FileFormatError(f"{source!r} is not a training-state file: it lacks the "
                                      "`state` attribute or the `arrays` group.")
            inventory = inspect_weights(h5["arrays"], source, os.path.getsize(source))
            if checksum is not None and _digest(document, inventory) != checksum:
                raise FileFormatError(
                    f"{source!r} is corrupted: it does not match the SHA-256 checksum recorded "
                    "when it was saved. Delete it to start training afresh."
                )
            try:
                structure = json.loads(document)
            except (ValueError, RecursionError) as error:
                raise FileFormatError(f"{source!r} holds a training state that is not valid "
                                      f"JSON: {error}") from None
            if _depth(structure) > MAX_STATE_DEPTH:
                raise FileFormatError(f"{source!r} is not a valid training-state file: its JSON "
                                      f"nests deeper than {MAX_STATE_DEPTH} levels.")
            return _Decoder(inventory).decode(structure)
