"""`save_model`/`load_model`/`save_weights`/`load_weights` with Keras's file conventions.

- `.keras`: a zip of `config.json` (architecture + compile settings), `metadata.json` and
  `model.weights.h5`.
- `.h5`: one HDF5 file, the architecture in the `model_config` attribute and the weights under
  `model_weights` (Keras's legacy format, what `model.save('model.h5')` writes).
- `.weights.h5` (or any `.h5` given to `save_weights`): weights only.

No load path unpickles or runs code; every write is atomic. Every file records SHA-256
checksums of its weights (and config), checked on load. A file is hostile until checked: sizes
are capped before reading, HDF5 layouts that reach outside the file are refused, and nothing in
a model changes unless the whole file is valid (docs/security.md).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime
import hashlib
import io
import json
import os
import re
import zipfile
from typing import Any, Iterator

import h5py

from lamina import __version__
from lamina._load_budget import load_budget
from lamina._symbolic import reading_insertion_ordered_file
from lamina.distribution.files import chief_writes
from lamina.errors import FileFormatError, UnknownNameError, UnsafeLoadError
from lamina.saving.file_format import (
    WeightsInventory,
    atomic_write,
    check_hdf5_heaps,
    check_overwrite,
    commit,
    format1_trainable_weights,
    inspect_weights,
    open_h5,
    reading,
    stage_weights,
    string_attribute,
    weights_digest,
    write_weights,
)
from lamina.saving.legacy_h5 import read_layout, write_legacy_weights
from lamina.saving.optimizer_state import (
    GROUP as OPTIMIZER_GROUP,
    restore_optimizer_state,
    stage_optimizer_state,
    write_optimizer_state,
)
from lamina.saving.compile_config import deserialize_compile_config, serialize_compile_config
from lamina.saving.format_version import FORMAT_VERSION, check_format_version, h5_versions
from lamina.saving.serialization import deserialize, serialize

# Caps on what a file may make Lamina read before it is checked. A config of the largest zoo
# model is under 1 MiB; 32 MiB leaves room for 10,000-layer models.
MAX_CONFIG_BYTES = 32 << 20
MAX_METADATA_BYTES = 1 << 20
MAX_ZIP_MEMBERS = 1000
# A `.keras` member may expand at most this much (plus the slack, for small members): weights
# are near-incompressible, and a zip bomb's ratio is ~1000.
MAX_ZIP_RATIO = 100
ZIP_RATIO_SLACK_BYTES = 1 << 20
KERAS_MEMBERS = ("config.json", "metadata.json", "model.weights.h5")
WEIGHTS_CHECKSUM_ATTRIBUTE = "lamina_weights_sha256"
CONFIG_CHECKSUM_ATTRIBUTE = "lamina_config_sha256"
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _model_document(model) -> dict[str, Any]:
    document = serialize(model)
    compile_config = getattr(model, "_compile_config", None)
    if compile_config is not None:
        document["compile_config"] = serialize_compile_config(compile_config)
    # json writes the shape's tuples as lists, as Keras does. A model class with its own
    # get_build_config has written its own already.
    document.setdefault("build_config", {"input_shape": getattr(model, "_build_input_shape", None)})
    return document


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_weights_with_digest(model, group: h5py.Group, with_optimizer: bool = False,
                               layout: str = "keras") -> str:
    write_weights(model, group, layout)
    if with_optimizer:
        write_optimizer_state(model, group)
    return weights_digest(inspect_weights(group, "the file being written", None))


# --------------------------------------------------------------------------- saving


@chief_writes
def save_model(model, filepath: str | os.PathLike, overwrite: bool = True, **kwargs: Any) -> None:
    """Save a model to `.keras` or `.h5`."""
    path = str(filepath)
    check_overwrite(path, overwrite)
    if not model.built:
        raise ValueError(
            f"Model {model.name!r} is not built yet, so it has no weights to save. Give the first "
            "layer an input_shape, start with lamina.Input(shape), or call the model on data first."
        )
    if path.endswith(".keras"):
        atomic_write(path, lambda temporary: _write_keras_zip(model, temporary))
    elif path.endswith(".h5") or path.endswith(".hdf5"):
        atomic_write(path, lambda temporary: _write_legacy_h5(model, temporary))
    else:
        raise ValueError(
            "Invalid filepath extension for saving: give a `.keras` (recommended) or `.h5` path. "
            f"Received: filepath={path!r}. For a PyTorch checkpoint use "
            "torch.save(model.state_dict(), path)."
        )


def _write_keras_zip(model, temporary: str) -> None:
    weights = io.BytesIO()
    with h5py.File(weights, "w") as h5:
        digest = _write_weights_with_digest(model, h5, with_optimizer=True)
    config = json.dumps(_model_document(model)).encode()
    metadata = {"lamina_version": __version__, "format_version": FORMAT_VERSION,
                "date_saved": datetime.datetime.now().isoformat(timespec="seconds"),
                "weights_sha256": digest, "config_sha256": _sha256(config)}
    with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("metadata.json", json.dumps(metadata))
        archive.writestr("config.json", config)
        archive.writestr("model.weights.h5", weights.getvalue())


def _write_legacy_h5(model, temporary: str) -> None:
    config = json.dumps(_model_document(model))
    with h5py.File(temporary, "w") as h5:
        h5.attrs["model_config"] = config
        h5.attrs[CONFIG_CHECKSUM_ATTRIBUTE] = _sha256(config.encode())
        h5.attrs["lamina_version"] = __version__
        h5.attrs["backend"] = "torch"
        # Keras's legacy layout (layers matched by order), which Keras 3's load_model reads.
        weights = h5.create_group("model_weights")
        write_legacy_weights(model, weights)
        h5.attrs[WEIGHTS_CHECKSUM_ATTRIBUTE] = weights_digest(
            inspect_weights(weights, "the file being written", None))
        h5.attrs["format_version"] = FORMAT_VERSION


@chief_writes
def save_weights(model, filepath: str | os.PathLike, overwrite: bool = True) -> None:
    path = str(filepath)
    if not (path.endswith(".h5") or path.endswith(".hdf5")):
        raise ValueError(
            "The filename must end in `.weights.h5` (or `.h5`) for save_weights. "
            f"Received: filepath={path!r}."
        )
    check_overwrite(path, overwrite)
    if not model.built:
        raise ValueError(f"Model {model.name!r} is not built yet, so it has no weights to save.")

    def write(temporary: str) -> None:
        with h5py.File(temporary, "w") as h5:
            h5.attrs["lamina_version"] = __version__
            h5.attrs["format_version"] = FORMAT_VERSION
            h5.attrs[WEIGHTS_CHECKSUM_ATTRIBUTE] = _write_weights_with_digest(model, h5)

    atomic_write(path, write)


# --------------------------------------------------------------------------- opening files


@dataclasses.dataclass
class _Opened:
    """A model or weights file, checked as far as reading metadata allows."""

    path: str
    inventory: WeightsInventory
    document: dict[str, Any] | None
    weights_sha256: str | None
    root: h5py.Group | None = None


def _checksum(value: Any, field: str, path: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise FileFormatError(f"{path!r} records a malformed {field} ({str(value)[:80]!r}; "
                              "expected 64 hex digits): the file is damaged.")
    return value


@contextlib.contextmanager
def _open_file(path: str, purpose: str, want_config: bool, verify_checksum: bool
               ) -> Iterator[_Opened]:
    """Open a `.keras`, `.h5` or `.weights.h5` file, check its config (when `want_config`)
    against its checksum and parse it, and inventory its weights."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"No file found at {path!r}; cannot {purpose}.")
    if path.endswith(".keras") or zipfile.is_zipfile(path):
        config, metadata, weights_bytes = _read_keras_zip(path)
        check_format_version(metadata.get("format_version"), metadata.get("lamina_version"), path)
        document = _document(path, config, metadata.get("config_sha256"), verify_checksum) \
            if want_config else None
        with reading(path, "the weights inside the archive"):
            check_hdf5_heaps(weights_bytes, path)
            try:
                h5 = h5py.File(io.BytesIO(weights_bytes), "r")
            except Exception as error:  # noqa: BLE001 - h5py raises several types on bad input
                raise FileFormatError(
                    f"The weights inside {path!r} are not a readable HDF5 file (the archive is "
                    f"damaged). Original error: {error}"
                ) from None
        with h5:
            root = _weights_root(h5, path)
            inventory = _inventory(h5, root, path, len(weights_bytes))
            inventory.insertion_ordered = _insertion_ordered(
                metadata.get("lamina_version"), metadata.get("format_version"))
            yield _Opened(path, inventory, document,
                          _checksum(metadata.get("weights_sha256"), "weights checksum", path),
                          h5[root] if root else h5)
        return
    with open_h5(path, purpose) as h5:
        lamina_version, format_version = h5_versions(h5, path)
        config = string_attribute(h5, "model_config", MAX_CONFIG_BYTES, path) \
            if want_config else None
        with reading(path, "the file's groups"):
            has_model, has_model_weights = "model" in h5, "model_weights" in h5
            has_keras_tree = "layers" in h5 or "vars" in h5 or "layer_names" in h5.attrs
        if want_config and config is None:
            if has_model or has_model_weights or has_keras_tree:
                raise FileFormatError(
                    f"{path!r} holds no model architecture (no `model_config`): it is a "
                    "weights file. Build the model in code and call model.load_weights(path)."
                )
            raise FileFormatError(
                f"{path!r} is an HDF5 file but not a Lamina/Keras model: it has neither a "
                "model architecture nor weights."
            )
        document = None
        if want_config:
            document = _document(path, config, string_attribute(
                h5, CONFIG_CHECKSUM_ATTRIBUTE, 64, path), verify_checksum)
            root = "model_weights"
        elif has_model or has_model_weights or has_keras_tree:
            root = _weights_root(h5, path) if not has_model_weights else "model_weights"
        else:
            raise FileFormatError(f"{path!r} is an HDF5 file but holds no Lamina/Keras weights.")
        inventory = _inventory(h5, root, path, os.path.getsize(path))
        inventory.insertion_ordered = _insertion_ordered(lamina_version, format_version)
        yield _Opened(
            path, inventory, document,
            _checksum(string_attribute(h5, WEIGHTS_CHECKSUM_ATTRIBUTE, 64, path),
                      "weights checksum", path), h5[root] if root else h5)


def _insertion_ordered(lamina_version: Any, format_version: Any) -> bool:
    """Whether Lamina's format 1 wrote the file: dicts in insertion order (a file without a
    `lamina_version` is Keras's, in sorted-key order, as is Lamina's format 2 on)."""
    return lamina_version is not None and format_version in (None, "1")


def _weights_root(h5: h5py.File, path: str) -> str:
    """Where the weights tree starts: the file's root in Keras 3's layout (what Lamina writes),
    `model` in files Lamina wrote before."""
    with reading(path, "the file's groups"):
        return "model" if "model" in h5 and "layers" not in h5 else ""


def _inventory(h5: h5py.File, root: str, path: str, size: int) -> WeightsInventory:
    if not root:
        with reading(path, "the weights tree"):
            inventory = inspect_weights(h5, path, size)
            # A Keras 2 style weights file: the legacy layout at the file's root.
            inventory.legacy = read_layout(h5, path)
        if inventory.legacy is not None:
            inventory.layout = "keras-h5"
        return inventory
    with reading(path, f"the `{root}` weights group"):
        if root not in h5:
            raise FileFormatError(f"{path!r} has no `{root}` group: it holds no weights.")
        if not isinstance(h5.get(root, getlink=True), h5py.HardLink) \
                or not isinstance(h5[root], h5py.Group):
            raise FileFormatError(f"{path!r}: `{root}` is not a group stored in the file.")
        inventory = inspect_weights(h5[root], path, size)
        inventory.legacy = read_layout(h5[root], path)
    # Keras's legacy layout lists its layers; Lamina's earlier `model/` and `model_weights/`
    # trees put every sublayer under `layers/`.
    inventory.layout = "keras-h5" if inventory.legacy is not None else "lamina-v1"
    return inventory


def _read_keras_zip(path: str) -> tuple[bytes, dict[str, Any], bytes]:
    """config.json, metadata.json (parsed) and the weights member, each read within its cap."""
    try:
        archive = zipfile.ZipFile(path)
    except Exception as error:  # noqa: BLE001 - zipfile raises many types on damaged input
        raise FileFormatError(
            f"{path!r} is not a valid .keras file (not a complete zip archive: it may be truncated "
            f"or of another format). Original error: {error}"
        ) from None
    with archive, reading(path, "the .keras archive"):
        members = _check_members(archive, path)
        config = _member(archive, members["config.json"], MAX_CONFIG_BYTES, path)
        metadata: Any = {}
        if "metadata.json" in members:
            metadata = _parse_json(_member(archive, members["metadata.json"],
                                           MAX_METADATA_BYTES, path), path, "metadata.json")
            if not isinstance(metadata, dict):
                raise FileFormatError(f"{path!r} has a metadata.json that is not an object.")
        weights = _member(archive, members["model.weights.h5"], None, path)
    return config, metadata, weights


def _check_members(archive: zipfile.ZipFile, path: str) -> dict[str, zipfile.ZipInfo]:
    infos = archive.infolist()
    if len(infos) > MAX_ZIP_MEMBERS:
        raise FileFormatError(f"{path!r} has {len(infos):,} archive members; a .keras file has "
                              f"three (at most {MAX_ZIP_MEMBERS} with assets).")
    counts = collections.Counter(info.filename for info in infos)
    duplicated = sorted(name for name, count in counts.items() if count > 1)
    if duplicated:
        raise FileFormatError(f"{path!r} has duplicate archive members {duplicated}: which copy "
                              "counts is ambiguous, so the archive is refused.")
    missing = sorted({"config.json", "model.weights.h5"} - set(counts))
    if missing:
        raise FileFormatError(f"{path!r} is a zip archive but not a .keras model: it lacks {missing}.")
    for info in infos:
        name = info.filename
        assets = name.startswith("assets/") and ".." not in name.split("/") and "\\" not in name
        if name not in KERAS_MEMBERS and not assets:
            raise FileFormatError(f"{path!r} has an unexpected archive member {name!r}; a .keras "
                                  f"file holds {list(KERAS_MEMBERS)} and assets/ only.")
        if info.flag_bits & 0x1:
            raise FileFormatError(f"{path!r}: the archive member {name!r} is encrypted.")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise FileFormatError(f"{path!r}: the archive member {name!r} uses compression "
                                  f"method {info.compress_type}; only stored and deflated are read.")
    return {info.filename: info for info in infos}


def _member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int | None, path: str) -> bytes:
    declared = info.file_size
    if limit is not None and declared > limit:
        raise FileFormatError(f"{path!r}: the archive member {info.filename!r} is {declared:,} "
                              f"bytes, more than the {limit:,} Lamina reads.")
    if declared > info.compress_size * MAX_ZIP_RATIO + ZIP_RATIO_SLACK_BYTES:
        raise FileFormatError(
            f"{path!r}: the archive member {info.filename!r} would expand from "
            f"{info.compress_size:,} to {declared:,} bytes (more than {MAX_ZIP_RATIO}x): a zip "
            "bomb or a damaged archive."
        )
    # The sizes above come from the archive's own directory; read one byte more than it
    # declares so a member that lies about its size is caught, never followed.
    with archive.open(info) as stream:
        data = stream.read(declared + 1)
    if len(data) != declared:
        raise FileFormatError(f"{path!r}: the archive member {info.filename!r} holds "
                              f"{len(data):,} bytes but declares {declared:,}; it is damaged.")
    return data


def _parse_json(text: str | bytes, path: str, what: str = "model config") -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as error:
        raise FileFormatError(
            f"{path!r} has a {what} that is not valid JSON (the file is damaged or was not "
            f"written by Lamina or Keras): {error}"
        ) from None


def _document(path: str, config: bytes | str, checksum: Any, verify_checksum: bool
              ) -> dict[str, Any]:
    checksum = _checksum(checksum, "config checksum", path)
    raw = config.encode() if isinstance(config, str) else config
    if verify_checksum and checksum is not None and _sha256(raw) != checksum:
        raise FileFormatError(
            f"{path!r} is corrupted: its model config does not match the SHA-256 checksum "
            "recorded when it was saved. Restore it from a good copy; to load it anyway, pass "
            "verify_checksum=False."
        )
    document = _parse_json(config, path)
    if not isinstance(document, dict) or "class_name" not in document:
        raise FileFormatError(
            f"{path!r} has no model description in its config (expected an object with a "
            "`class_name`); it was not written by model.save()."
        )
    return document


# --------------------------------------------------------------------------- loading


def load_model(filepath: str | os.PathLike, custom_objects: dict[str, Any] | None = None,
               compile: bool = True, safe_mode: bool = True, *, verify_checksum: bool = True):
    """Load a model saved by `model.save` (architecture, weights and, if compiled, compile state).

    The file is validated before anything is built: hostile or damaged files raise
    `FileFormatError`. `verify_checksum=False` loads a file whose recorded SHA-256 checksums
    no longer match (a file without checksums, e.g. from Keras, loads either way).
    """
    path = str(filepath)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No file or directory found at {path!r}.")
    with _open_file(path, "load a model from it", True, verify_checksum) as opened:
        document = opened.document
        # The config may ask for any size of model; it may only build what its weights fill.
        with load_budget(opened.inventory.num_elements, path), \
                reading_insertion_ordered_file(opened.inventory.insertion_ordered):
            model = _building(path, "the model", lambda: _model_from_document(
                document, custom_objects, safe_mode))
        with reading(path, "the weights"):
            staged = stage_weights(model, opened.inventory, False,
                                   opened.weights_sha256 if verify_checksum else None)
            optimizer_state = None
            if compile and document.get("compile_config"):
                group = opened.root.get(OPTIMIZER_GROUP) if opened.root is not None else None
                optimizer_state = stage_optimizer_state(opened.inventory, group)
    commit(staged)
    if compile and document.get("compile_config"):
        _building(path, "the compile settings", lambda: model.compile(
            **deserialize_compile_config(document["compile_config"], custom_objects)))
        restore_optimizer_state(model, optimizer_state, path, format1_trainable_weights(model)
                                if opened.inventory.insertion_ordered else None)
    return model


def _building(path: str, what: str, build):
    """Run `build`; an error a config provokes becomes FileFormatError (unknown names and unsafe
    objects keep their own types, whose messages say how to allow them)."""
    try:
        return build()
    except (FileFormatError, UnknownNameError, UnsafeLoadError):
        raise
    except Exception as error:  # noqa: BLE001 - a crafted config can make any constructor fail
        raise FileFormatError(
            f"{path!r}: its config does not describe {what} Lamina can build "
            f"({type(error).__name__}: {error}). The file is damaged or was not written by "
            "Lamina or Keras."
        ) from error


def _model_from_document(document: dict[str, Any], custom_objects, safe_mode: bool):
    model = deserialize(document, custom_objects, safe_mode=safe_mode)
    if not model.built:
        shape = (document.get("build_config") or {}).get("input_shape")
        if shape is not None:
            model.build(tuple(shape))
    return model


def load_weights(model, filepath: str | os.PathLike, skip_mismatch: bool = False, *,
                 verify_checksum: bool = True, **kwargs: Any) -> None:
    """Load weights from a `.weights.h5`, `.h5` or `.keras` file into a built model.

    All or nothing: the whole file is read and checked first, so when this raises the model is
    unchanged. `skip_mismatch=True` skips (with a warning) weights whose shapes or counts differ
    and loads the rest. `verify_checksum=False` loads a file whose recorded checksum no longer
    matches.
    """
    path = str(filepath)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No file found at {path!r}; cannot load weights from it.")
    with _open_file(path, "load weights from it", False, verify_checksum) as opened:
        if not model.built:
            raise ValueError(
                f"Model {model.name!r} is not built, so its weights do not exist yet. Call it on "
                "data or build it before load_weights."
            )
        with reading(path, "the weights"):
            staged = stage_weights(model, opened.inventory, skip_mismatch,
                                   opened.weights_sha256 if verify_checksum else None)
    commit(staged)
