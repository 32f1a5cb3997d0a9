"""On-disk layouts: weights in HDF5 (Keras 3's `layers/<name>/vars/<i>` tree), atomic writes,
and loaders that treat every file as hostile.

Inside a container, a child's key is its class name in snake case, numbered per class
(`dense`, `dense_1`, ...), as Keras 3 does: weights load into a freshly built copy of the model
even when its auto-generated layer names differ.

Loading runs in three steps so that a bad file never changes a model: `inspect_weights` walks
the HDF5 tree reading metadata only (links, layouts, filters, dtypes, shapes, storage);
`stage_weights` matches it against the model, reads the bytes, verifies the checksum and
converts; `commit` copies the staged values in. docs/security.md lists the checks and limits.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import mmap
import os
import secrets
import socket
import stat
import struct
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import h5py
import numpy as np
import torch
from torch import nn

from lamina.errors import FileFormatError
from lamina.layers.layer import Layer, _iter_sublayers, to_snake_case
from lamina.saving.legacy_h5 import legacy_weights

# A weights tree deeper or larger than this is not a model: Keras's deepest zoo model has a
# few thousand weights, each at depth < 20. The caps bound the walk over a hostile tree
# (hard-link cycles included).
MAX_HDF5_DEPTH = 64
MAX_HDF5_OBJECTS = 200_000
# Filters that never expand data: a compressed chunk's decoder (gzip, lzf, szip) grows its
# output buffer for as long as the stream goes on, so a small hostile chunk could claim
# gigabytes before HDF5 notices it is larger than the chunk. Keras and Lamina never compress.
ALLOWED_FILTERS = {h5py.h5z.FILTER_SHUFFLE: "shuffle", h5py.h5z.FILTER_FLETCHER32: "fletcher32"}
ALLOWED_LAYOUTS = {h5py.h5d.COMPACT: "compact", h5py.h5d.CONTIGUOUS: "contiguous",
                   h5py.h5d.CHUNKED: "chunked"}


# --------------------------------------------------------------------------- atomic writes

TEMP_SUFFIX = ".lamina-tmp"
# A temporary file whose writer cannot be checked (another host on a shared folder, or a
# recycled pid) is swept only once it has not been touched for this long.
STALE_AFTER_SECONDS = 24 * 3600


def _host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    try:  # a killed but unreaped child still answers kill(pid, 0)
        with open(f"/proc/{pid}/stat", "rb") as stream:
            return stream.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def _is_stale(name: str, modified: float, host: str) -> bool:
    parts = name[: -len(TEMP_SUFFIX)].rsplit(".", 3)
    if len(parts) != 4 or not parts[2].isdigit():
        return False
    if time.time() - modified > STALE_AFTER_SECONDS:
        return True
    return parts[1] == host and not _pid_alive(int(parts[2]))


def sweep_stale_temporaries(folder: str | os.PathLike) -> list[str]:
    """Remove temporary files left in `folder` by saves that died (their writer's pid is gone,
    or they were untouched for a day); a live writer's file is left alone."""
    removed = []
    host = _host_tag()
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            if not (entry.name.startswith(".") and entry.name.endswith(TEMP_SUFFIX)):
                continue
            with contextlib.suppress(OSError):
                if entry.is_file(follow_symlinks=False) and _is_stale(
                        entry.name, entry.stat(follow_symlinks=False).st_mtime, host):
                    os.remove(entry.path)
                    removed.append(entry.path)
    return removed


def _fsync_folder(folder: str) -> None:
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:  # platforms that cannot open folders (Windows) have no folder fsync
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Write through a temporary file in the same folder, then rename it into place, so a crash
    mid-write never leaves a truncated file where a good one was.

    A symlink is kept and its target written. The file gets the mode `open()` would give it (the
    umask's for a new file, the old file's otherwise). The temporary file is named
    `.<name>.<host>.<pid>.<random>.lamina-tmp`, so a later save sweeps it if its writer died.
    """
    target = Path(os.path.realpath(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temporaries(target.parent)
    temporary = str(target.parent / (f".{target.name}.{_host_tag()}.{os.getpid()}."
                                     f"{secrets.token_hex(4)}{TEMP_SUFFIX}"))
    # os.open applies the umask to 0o666 exactly as open(path, "w") does.
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        with contextlib.suppress(FileNotFoundError):
            os.chmod(temporary, stat.S_IMODE(os.stat(target).st_mode))
        write(temporary)
        with open(temporary, "rb+") as stream:
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise
    _fsync_folder(str(target.parent))


def check_overwrite(path: str | os.PathLike, overwrite: bool) -> None:
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path} already exists. Pass overwrite=True to replace it.")


# --------------------------------------------------------------------------- weights tree


def child_keys(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """(key, child) for a layer's sublayers: class name in snake case, numbered per class."""
    return _numbered(list(_iter_sublayers(module)))


def _numbered(children: list[nn.Module]) -> list[tuple[str, nn.Module]]:
    used: dict[str, int] = {}
    keyed = []
    for child in children:
        base = to_snake_case(type(child).__name__)
        count = used.get(base, 0)
        used[base] = count + 1
        keyed.append((base if count == 0 else f"{base}_{count}", child))
    return keyed


def _own_arrays(module: nn.Module) -> list[tuple[str, torch.Tensor, Any]]:
    """(name, tensor, owner) of the weights a module stores itself (Keras layout on disk)."""
    if isinstance(module, Layer):
        return [(name, tensor, module) for name, tensor in module._own_weights()]
    return [(name, tensor, None) for name, tensor in module.state_dict(keep_vars=True).items()]


@dataclasses.dataclass
class WeightGroup:
    """One `<path>/vars` group of a weights file: the arrays a layer (or part of one) owns."""

    path: str
    arrays: list[tuple[str, torch.Tensor, Any]]
    module: nn.Module
    label: str
    # The group of a layer's own state in Keras 3's tree (not a part filed under a sublayer's
    # key, not Lamina's earlier tree): the one its save/load_own_variables overrides fill.
    own: bool = False


def _attribute_order(name: str) -> str:
    # Keras visits public attributes first, then private ones, each alphabetically.
    return f"~{name}" if name.startswith("_") else name


def _model_layers(module: nn.Module, insertion_ordered: bool) -> list[nn.Module]:
    """A model's `layers`; for a file of Lamina's format 1, in the order that format listed a
    functional model's layers (its dicts in insertion order), which numbers same-class layers."""
    if insertion_ordered and hasattr(module, "_insertion_ordered_layers"):
        return module._insertion_ordered_layers()
    return list(module.layers)


def _keras_children(module: nn.Module, insertion_ordered: bool = False) -> list[tuple[str, Any]]:
    """(key, child or list of children) in the order Keras's saver visits a layer's state:
    a model's `layers` first, then sublayers by attribute name."""
    children: list[tuple[str, Any]] = []
    if getattr(module, "_keras_saves_layers", False):
        children.append(("layers", _model_layers(module, insertion_ordered)))
    for attr in sorted(module._modules, key=_attribute_order):
        child = module._modules[attr]
        if child is None:
            continue
        if isinstance(child, (nn.ModuleList, nn.ModuleDict)) and not isinstance(child, Layer):
            children.append((attr, list(_iter_sublayers(child))))
        else:
            children.append((attr, child))
    return children


def _keras_groups(module: nn.Module, path: str, label: str, visited: set[int],
                  out: list[WeightGroup], insertion_ordered: bool = False) -> None:
    if id(module) in visited:
        return  # a layer reachable twice is stored once, where Keras's walk meets it first
    visited.add(id(module))
    arrays = _own_arrays(module)
    # A layer that keeps the weights of Keras's sublayers itself (MultiHeadAttention keeps
    # `query/kernel` where Keras has a `query_dense` EinsumDense) files them under the sublayer.
    split = getattr(type(module), "_keras_weight_groups", None) or {}
    parts = {prefix: [a for a in arrays if a[0].split("/")[0] == prefix] for prefix in split}
    out.append(WeightGroup(path, [a for a in arrays if a[0].split("/")[0] not in split],
                           module, label, own=True))
    for prefix, key in split.items():
        out.append(WeightGroup(_join(path, key), parts[prefix], module, f"{label}/{key}"))
    if not isinstance(module, Layer):
        return
    for key, child in _keras_children(module, insertion_ordered):
        if isinstance(child, list):
            for child_key, item in _numbered(child):
                _keras_groups(item, _join(path, f"{key}/{child_key}"),
                              f"{label}/{child_key}".lstrip("/"), visited, out, insertion_ordered)
        else:
            _keras_groups(child, _join(path, key), f"{label}/{key}".lstrip("/"), visited, out,
                          insertion_ordered)


def _lamina_v1_groups(module: nn.Module, path: str, label: str, out: list[WeightGroup]) -> None:
    """The tree Lamina wrote before it wrote Keras's: every sublayer under `layers/`."""
    out.append(WeightGroup(path, _own_arrays(module), module, label))
    if not isinstance(module, Layer):
        return
    # A functional model keyed its layers in creation order, which its module keys keep.
    keyed = ([(k, c) for k, c in module._modules.items() if c is not None]
             if getattr(module, "_keras_saves_layers", False) and hasattr(module, "_nodes")
             else child_keys(module))
    for key, child in keyed:
        _lamina_v1_groups(child, _join(path, f"layers/{key}"),
                          f"{label}/{key}".lstrip("/"), out)


def weight_groups(module: nn.Module, layout: str = "keras",
                  insertion_ordered: bool = False) -> list[WeightGroup]:
    """Every `vars` group of `module`'s weights tree, in the Keras 3 layout (`layers/<key>/`
    for a model's layers, the attribute name for a sublayer, each layer stored once) or in
    Lamina's earlier one (`layout="lamina-v1"`). `insertion_ordered`: as Lamina's format 1
    numbered a functional model's same-class layers (`_model_layers`)."""
    out: list[WeightGroup] = []
    if layout == "keras":
        _keras_groups(module, "", "", set(), out, insertion_ordered)
    else:
        _lamina_v1_groups(module, "", "", out)
    return out


def _overrides(entry: WeightGroup, method: str) -> bool:
    """Whether the layer of a group's own state overrides `save_own_variables` or
    `load_own_variables` (Keras's per-layer hooks); other layers keep Lamina's own path."""
    return entry.own and isinstance(entry.module, Layer) and \
        getattr(type(entry.module), method) is not getattr(Layer, method)


def _store_array(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        # numpy has no bfloat16; float32 holds every bfloat16 value exactly.
        return (value.float() if value.dtype == torch.bfloat16 else value).numpy()
    return np.asarray(value)


def _write_store(entry: WeightGroup, variables: h5py.Group) -> None:
    """Write what a layer's `save_own_variables` override puts in its store, as Keras does."""
    layer = entry.module
    store: dict[str, Any] = {}
    layer.save_own_variables(store)
    where = f"{type(layer).__name__}.save_own_variables (layer {layer.name!r})"
    for key, value in store.items():
        if not isinstance(key, str) or not key or "/" in key or key == ".":
            raise ValueError(f"{where} stored a value under the key {key!r}; keys are names "
                             "without '/' (Keras uses '0', '1', ...). Rename the key.")
        array = _store_array(value)
        if array.dtype.kind not in "fiucb" or array.dtype.fields is not None:
            raise ValueError(
                f"{where} stored {type(value).__name__} of dtype {array.dtype} under {key!r}; "
                "a weights file holds arrays of numbers (float, int, bool) only. Encode it as "
                "numbers (e.g. strings as their UTF-8 bytes, np.frombuffer(text.encode(), "
                "np.uint8)), or keep it in the layer's config.")
        variables.create_dataset(key, data=array)


def write_weights(module: nn.Module, group: h5py.Group, layout: str = "keras") -> None:
    """Write `module`'s weights into `group` in Keras 3's tree (which Keras reads), or in
    Lamina's earlier tree (`layout="lamina-v1"`)."""
    for entry in weight_groups(module, layout):
        variables = group.require_group(_join(entry.path, "vars"))
        variables.attrs["name"] = str(getattr(entry.module, "name", type(entry.module).__name__))
        if _overrides(entry, "save_own_variables"):
            _write_store(entry, variables)
            continue
        for index, (name, tensor, owner) in enumerate(entry.arrays):
            value = owner._to_keras_layout(name, tensor) if owner is not None else tensor
            dataset = variables.create_dataset(str(index), data=value.detach().cpu().numpy())
            dataset.attrs["name"] = name


@dataclasses.dataclass
class WeightsInventory:
    """What a weights tree holds, from metadata only: datasets and groups by path."""

    source: str
    datasets: dict[str, h5py.Dataset]
    children: dict[str, set[str]]
    # "keras" (Keras 3's tree, which Lamina writes), "lamina-v1" (Lamina's earlier tree) or
    # "keras-h5" (Keras's legacy `.h5` layout, whose layers and weights `legacy` lists).
    layout: str = "keras"
    legacy: list[tuple[str, list[str]]] | None = None
    # Written by Lamina's format 1, which listed a functional model's layers with its dicts in
    # insertion order (docs/keras-files.md); Keras and later Lamina sort the keys.
    insertion_ordered: bool = False

    @property
    def num_elements(self) -> int:
        return sum(math.prod(d.shape) for d in self.datasets.values())


def _join(group_path: str, name: str) -> str:
    return f"{group_path}/{name}" if group_path else name


def inspect_weights(root: h5py.Group, source: str, file_size: int | None) -> WeightsInventory:
    """Walk a weights tree without reading any dataset's bytes and refuse whatever could make
    reading it pull in other files, run a filter plugin or allocate more than the file holds.

    `file_size` (bytes) bounds the storage the datasets may claim; None skips that check (for a
    file Lamina is writing itself).
    """
    inventory = WeightsInventory(source, {}, {"": set()})
    pending: list[tuple[h5py.Group, str, int]] = [(root, "", 0)]
    visited = 0
    storage = 0
    while pending:
        group, group_path, depth = pending.pop()
        for name in group:
            where = _join(group_path, name)
            visited += 1
            if visited > MAX_HDF5_OBJECTS or depth >= MAX_HDF5_DEPTH:
                raise FileFormatError(
                    f"{source!r} has a weights tree deeper than {MAX_HDF5_DEPTH} or larger than "
                    f"{MAX_HDF5_OBJECTS:,} objects (at {where!r}): no model has one; the file "
                    "was crafted or damaged."
                )
            link = group.get(name, getlink=True)
            if not isinstance(link, h5py.HardLink):
                raise FileFormatError(
                    f"{source!r} has a {type(link).__name__} at {where!r}. Weights files hold "
                    "their data themselves; links to other objects or files are refused."
                )
            item = group[name]
            inventory.children[group_path].add(name)
            if isinstance(item, h5py.Group):
                inventory.children[where] = set()
                pending.append((item, where, depth + 1))
            elif isinstance(item, h5py.Dataset):
                storage += _check_dataset(item, where, source, file_size)
                inventory.datasets[where] = item
            else:
                raise FileFormatError(
                    f"{source!r} has a {type(item).__name__} at {where!r}, which is neither a "
                    "group nor a dataset; a weights file holds nothing else."
                )
    if file_size is not None and storage > file_size:
        raise FileFormatError(
            f"{source!r} declares {storage:,} bytes of weights but is only {file_size:,} bytes "
            "long: it is truncated or crafted."
        )
    return inventory


def _check_dataset(dataset: h5py.Dataset, where: str, source: str, file_size: int | None) -> int:
    """Refuse a dataset whose layout reaches outside the file or whose type is not a plain
    number; return the bytes it stores."""
    def refuse(reason: str) -> FileFormatError:
        return FileFormatError(f"{source!r}: the dataset {where!r} {reason}")

    if dataset.is_virtual:
        raise refuse("is a virtual dataset (its data lives in other files); refused.")
    plist = dataset.id.get_create_plist()
    if plist.get_external_count():
        raise refuse("keeps its data in external files; weights must live inside the file.")
    layout = plist.get_layout()
    if layout not in ALLOWED_LAYOUTS:
        raise refuse(f"has storage layout {layout}; only {sorted(ALLOWED_LAYOUTS.values())} "
                     "are read.")
    for index in range(plist.get_nfilters()):
        code, _, _, name = plist.get_filter(index)
        if code not in ALLOWED_FILTERS:
            raise refuse(
                f"uses the HDF5 filter {name.decode(errors='replace')!r} ({code}); Lamina reads "
                f"only {sorted(ALLOWED_FILTERS.values())}. Compressed weights are refused "
                "because their decoders are unbounded; re-save them uncompressed."
            )
    dtype = dataset.dtype
    if dtype.kind not in "fiucb" or dtype.fields is not None or dtype.subdtype is not None \
            or dtype.itemsize > 16 or h5py.check_dtype(ref=dtype) is not None:
        raise refuse(f"has dtype {dtype}; weights are plain numbers (float, int or bool).")
    if dataset.shape is None:
        raise refuse("has an empty (null) dataspace; a weight has a shape.")
    nbytes = math.prod(dataset.shape) * dtype.itemsize
    stored = dataset.id.get_storage_size()
    if nbytes and stored < nbytes:
        raise refuse(
            f"declares shape {dataset.shape} ({nbytes:,} bytes) but stores only {stored:,} "
            "bytes: the file is truncated or crafted."
        )
    if file_size is not None and layout == h5py.h5d.CONTIGUOUS and nbytes:
        offset = dataset.id.get_offset()
        if offset is None or offset + nbytes > file_size:
            raise refuse(f"points past the end of the file ({file_size:,} bytes).")
    return stored


def _canonical(array: np.ndarray) -> np.ndarray:
    return np.asarray(array, dtype=array.dtype.newbyteorder("<"), order="C")


def _update_digest(digest: Any, path: str, array: np.ndarray) -> None:
    # Path, dtype and shape first, then the little-endian C-order bytes: the digest depends on
    # the weights only, not on HDF5's layout (chunking, byte order, object placement).
    canonical = _canonical(array)
    digest.update(json.dumps([path, canonical.dtype.str, list(canonical.shape)]).encode())
    digest.update(b"\n")
    digest.update(canonical.tobytes())


def _read(dataset: h5py.Dataset) -> np.ndarray:
    return np.asarray(dataset[()])


def weights_digest(inventory: WeightsInventory) -> str:
    """SHA-256 of a weights tree's canonical content: every dataset in sorted path order."""
    digest = hashlib.sha256()
    for path in sorted(inventory.datasets):
        _update_digest(digest, path, _read(inventory.datasets[path]))
    return digest.hexdigest()


# --------------------------------------------------------------------------- staged loading


@dataclasses.dataclass
class _Planned:
    path: str
    tensor: torch.Tensor
    owner: Layer | None
    name: str
    layer: str


def _compatible(stored: np.dtype, target: torch.dtype) -> bool:
    if target.is_floating_point:
        return stored.kind == "f"
    if target.is_complex:
        return stored.kind in "fc"
    if target == torch.bool:
        return stored.kind == "b"
    return stored.kind in "iu"


@dataclasses.dataclass
class _OwnVariables:
    """A layer whose `load_own_variables` override takes its group's values (numpy arrays by
    dataset name, as Keras's loader passes them), read and checked with the rest of the file."""

    layer: Layer
    paths: dict[str, str]
    store: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


def _plan_own_variables(entry: WeightGroup, inventory: WeightsInventory,
                        hooked: list[_OwnVariables]) -> None:
    vars_path = _join(entry.path, "vars")
    paths = {}
    for name in sorted(inventory.children.get(vars_path, ())):
        path = _join(vars_path, name)
        if path not in inventory.datasets:
            raise FileFormatError(f"{inventory.source!r}: {path!r} is a group inside the "
                                  "variables of a layer, which hold arrays only; the file is "
                                  "damaged.")
        paths[name] = path
    hooked.append(_OwnVariables(entry.module, paths))


def _plan(module: nn.Module, inventory: WeightsInventory, layout: str, skip_mismatch: bool,
          planned: list[_Planned], skipped: list[str],
          hooked: list[_OwnVariables] | None = None) -> None:
    source = inventory.source

    def mismatch(message: str, fix: str) -> None:
        if not skip_mismatch:
            raise FileFormatError(f"{message} {fix} (in {source!r})")
        skipped.append(message + " Skipping it.")

    if layout == "keras-h5":
        _plan_legacy(module, inventory, mismatch, planned)
        return
    for entry in weight_groups(module, layout, inventory.insertion_ordered):
        where = entry.label or "the model"
        own = entry.arrays
        vars_path = _join(entry.path, "vars")
        if vars_path in inventory.datasets:
            raise FileFormatError(f"{source!r}: {vars_path!r} is a dataset where a group of "
                                  "weights belongs; the file is damaged.")
        if hooked is not None and _overrides(entry, "load_own_variables"):
            _plan_own_variables(entry, inventory, hooked)
            continue
        if own and vars_path not in inventory.children:
            mismatch(f"Layer {where!r} ({type(entry.module).__name__}) has no weights in the "
                     f"file (no group {vars_path!r}).",
                     "The file was saved from a different architecture; pass skip_mismatch=True "
                     "to load the layers that match.")
            continue
        stored = inventory.children.get(vars_path, set())
        if len(stored) != len(own):
            mismatch(f"Layer {where!r} ({type(entry.module).__name__}) expects {len(own)} "
                     f"weights, but the file has {len(stored)} for it.",
                     "The file was saved from a different architecture; pass skip_mismatch=True "
                     "to load the layers that match.")
            continue
        if stored != {str(index) for index in range(len(own))}:
            raise FileFormatError(
                f"{source!r}: the weights of layer {where!r} are named {sorted(stored)} in the "
                f"file instead of 0..{len(own) - 1}; the file is damaged."
            )
        for index, (name, tensor, owner) in enumerate(own):
            _check_planned(_join(vars_path, str(index)), name, tensor, owner, where, inventory,
                           mismatch, planned)


def _check_planned(path: str, name: str, tensor: torch.Tensor, owner: Any, where: str,
                   inventory: WeightsInventory, mismatch, planned: list[_Planned]) -> None:
    source = inventory.source
    dataset = inventory.datasets.get(path)
    if dataset is None:
        raise FileFormatError(f"{source!r}: {path!r} is not a dataset where the weight "
                              f"{name!r} of layer {where!r} belongs; the file is damaged.")
    expected = tuple((owner._to_keras_layout(name, tensor) if owner else tensor).shape)
    if tuple(dataset.shape) != expected:
        mismatch(f"Layer {where!r} weight {name!r} has shape {expected} in the model but "
                 f"{tuple(dataset.shape)} in the file.",
                 f"Pass skip_mismatch=True to skip it. (dataset {path!r})")
        return
    if not _compatible(dataset.dtype, tensor.dtype):
        raise FileFormatError(
            f"{source!r}: layer {where!r} weight {name!r} (dataset {path!r}) is stored as "
            f"{dataset.dtype}, which cannot hold a {str(tensor.dtype).removeprefix('torch.')}"
            " weight; the file is damaged or crafted."
        )
    planned.append(_Planned(path, tensor, owner, name, where))


def _plan_legacy(module: nn.Module, inventory: WeightsInventory, mismatch,
                 planned: list[_Planned]) -> None:
    """Keras's legacy rule: the model's layers that have weights, in order, take the file's
    layers that list weights, in order."""
    layers = [layer for layer in (_model_layers(module, inventory.insertion_ordered)
                                  if hasattr(module, "layers") else []) or [module]
              if legacy_weights(layer)]
    stored = [(name, paths) for name, paths in inventory.legacy or [] if paths]
    if len(layers) != len(stored):
        mismatch(f"The model has {len(layers)} layers with weights, but the file has "
                 f"{len(stored)}.", "The file was saved from a different architecture.")
        return
    for layer, (stored_name, paths) in zip(layers, stored):
        where = getattr(layer, "name", type(layer).__name__)
        entries = legacy_weights(layer)
        if inventory.insertion_ordered and hasattr(layer, "_insertion_ordered_layers"):
            entries = _format1_order(layer, entries)
        if len(entries) != len(paths):
            mismatch(f"Layer {where!r} ({type(layer).__name__}) expects {len(entries)} weights, "
                     f"but the file's layer {stored_name!r} has {len(paths)}.",
                     "The file was saved from a different architecture; pass "
                     "skip_mismatch=True to load the layers that match.")
            continue
        for (owner, name, tensor), path in zip(entries, paths):
            _check_planned(path, name, tensor, owner if isinstance(owner, Layer) else None,
                           where, inventory, mismatch, planned)


def _format1_walk(module: nn.Module) -> Iterator[torch.Tensor]:
    """A layer's weights as Lamina's format 1 walked them: a functional model's layers (nested
    ones too) in the insertion order of its dicts."""
    if not hasattr(module, "_insertion_ordered_layers"):
        yield from (tensor for _, _, tensor in legacy_weights(module))
        return
    for child in module._insertion_ordered_layers():
        yield from _format1_walk(child)


def format1_trainable_weights(model: nn.Module) -> list[torch.Tensor]:
    """`model.trainable_weights` in the order Lamina's format 1 listed them, which the
    optimizer variables of its files follow."""
    seen: dict[int, torch.Tensor] = {}
    for tensor in _format1_walk(model):
        seen.setdefault(id(tensor), tensor)
    return [t for t in seen.values() if isinstance(t, nn.Parameter) and t.requires_grad]


def _format1_order(layer: nn.Module, entries: list) -> list:
    """`legacy_weights(layer)` (trainable first, then the others) with each part in the order
    format 1 wrote a nested functional model's weights."""
    rank: dict[int, int] = {}
    for tensor in _format1_walk(layer):
        rank.setdefault(id(tensor), len(rank))
    trainable = sum(1 for _, _, t in entries if isinstance(t, nn.Parameter) and t.requires_grad)
    return (sorted(entries[:trainable], key=lambda e: rank[id(e[2])])
            + sorted(entries[trainable:], key=lambda e: rank[id(e[2])]))


def _convert(array: np.ndarray, entry: _Planned, source: str) -> torch.Tensor:
    target = entry.tensor.dtype

    def refuse(reason: str) -> FileFormatError:
        return FileFormatError(f"{source!r}: layer {entry.layer!r} weight {entry.name!r} "
                               f"(dataset {entry.path!r}) {reason}; the file is damaged or crafted.")

    array = np.asarray(array, dtype=array.dtype.newbyteorder("="), order="C")
    if array.dtype.kind in "fc":
        if not np.isfinite(array).all():
            raise refuse("holds NaN or infinite values")
        value = torch.from_numpy(array).to(target)
        if not torch.isfinite(value).all():
            raise refuse(f"holds values beyond the range of {target}")
    elif array.dtype.kind in "iu":
        info = torch.iinfo(target)
        if array.size and (int(array.min()) < info.min or int(array.max()) > info.max):
            raise refuse(f"holds integers beyond the range of {target}")
        value = torch.from_numpy(array.astype(np.int64)).to(target)
    else:
        value = torch.from_numpy(array).to(target)
    if entry.owner is not None:
        value = entry.owner._from_keras_layout(entry.name, value)
    return value


@dataclasses.dataclass
class Staged:
    """What `stage_weights` read and checked, for `commit`: (model tensor, new value) pairs, and
    the stores of layers that load their own variables."""

    values: list[tuple[torch.Tensor, torch.Tensor]]
    own_variables: list[_OwnVariables]


def stage_weights(module: nn.Module, inventory: WeightsInventory, skip_mismatch: bool,
                  expected_digest: str | None) -> Staged:
    """Read and check every weight the model takes from the file, without changing the model.

    With `expected_digest`, every dataset of the file is hashed and a mismatch raises before any
    value is converted.
    """
    planned: list[_Planned] = []
    skipped: list[str] = []
    hooked: list[_OwnVariables] = []
    _plan(module, inventory, inventory.layout, skip_mismatch, planned, skipped, hooked)
    by_path = {entry.path: entry for entry in planned}
    store_of = {path: (own, name) for own in hooked for name, path in own.paths.items()}
    digest = hashlib.sha256() if expected_digest is not None else None
    raw: list[tuple[_Planned, np.ndarray]] = []
    for path in sorted(inventory.datasets if digest is not None else [*by_path, *store_of]):
        array = _read(inventory.datasets[path])
        if digest is not None:
            _update_digest(digest, path, array)
        if path in by_path:
            raw.append((by_path[path], array))
        elif path in store_of:
            own, name = store_of[path]
            own.store[name] = np.asarray(array, dtype=array.dtype.newbyteorder("="), order="C")
    if digest is not None and digest.hexdigest() != expected_digest:
        raise FileFormatError(
            f"{inventory.source!r} is corrupted: its weights do not match the SHA-256 checksum "
            "recorded when it was saved (the file was damaged on disk or in transfer, or edited). "
            "Restore it from a good copy; to load it anyway, pass verify_checksum=False."
        )
    values = []
    while raw:
        entry, array = raw.pop(0)
        values.append((entry.tensor, _convert(array, entry, inventory.source)))
    for message in skipped:
        warnings.warn(message, stacklevel=4)
    return Staged(values, hooked)


def commit(staged: Staged) -> None:
    """Copy staged values into the model's tensors (after the whole file was validated).

    Layers that load their own variables go first: their code may still refuse its values,
    and the model's other weights are then left as they were."""
    for own in staged.own_variables:
        own.layer.load_own_variables(own.store)
    with torch.no_grad():
        for tensor, value in staged.values:
            tensor.copy_(value.to(tensor.device))


# --------------------------------------------------------------------------- opening files


@contextlib.contextmanager
def reading(source: str, what: str) -> Iterator[None]:
    """Turn any error h5py, zipfile or numpy raises on a damaged file into FileFormatError."""
    try:
        yield
    except FileFormatError:
        raise
    except Exception as error:  # noqa: BLE001 - a hostile file can make h5py raise anything
        raise FileFormatError(
            f"{source!r}: could not read {what} (the file is damaged, truncated or crafted). "
            f"Original error: {type(error).__name__}: {error}"
        ) from None


_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# Where the superblock's end-of-file address lies, after the signature, by superblock version:
# 0 and 1 list base, free-space and end-of-file addresses; 2 and 3 base, extension and end of
# file. The second number is where the size of an address is recorded.
_EOF_ADDRESS = {0: (16, 5), 1: (20, 5), 2: (4, 1), 3: (4, 1)}


def _check_length(data: Any, source: str) -> None:
    """Refuse a file shorter than the end-of-file address its superblock records, as the HDF5
    library would on opening it, but before the heaps are walked: a cut that falls inside a
    heap is then reported as the truncation it is, not as a damaged heap."""
    start = 0
    while data[start:start + 8] != _SIGNATURE:  # HDF5 looks at 0, 512, 1024, 2048, ...
        start = 512 if start == 0 else start * 2
        if start + 8 > len(data):
            return
    version = data[start + 8] if start + 9 <= len(data) else None
    if version not in _EOF_ADDRESS:
        return
    addresses, size_at = (start + 8 + offset for offset in _EOF_ADDRESS[version])
    size = data[size_at] if size_at < len(data) else 0
    end = addresses + 3 * size
    if size not in (4, 8) or end > len(data):
        return
    recorded = int.from_bytes(data[end - size:end], "little")
    # Addresses count from the base address (a user block's end), so `recorded` is a lower
    # bound of the full length whatever the base; all ones means undefined.
    if recorded != 2 ** (8 * size) - 1 and len(data) < recorded:
        raise FileFormatError(
            f"{source!r} is truncated: it holds {len(data):,} of the {recorded:,} bytes its "
            "HDF5 header records (it may still be being written, or was cut short in a copy "
            "or download). Save or copy it again."
        )


_COLLECTION = struct.Struct("<4sB3sQ")    # "GCOL", version, reserved, collection size
_HEAP_OBJECT = struct.Struct("<HH4sQ")    # index, reference count, reserved, object size


def check_hdf5_heaps(data: Any, source: str) -> None:
    """Refuse an HDF5 file whose global heap collections (or local heaps) do not parse.

    Variable-length strings (every text attribute: configs, names, checksums) live in global
    heap collections. The HDF5 library trusts their object sizes: a single flipped size bit
    sends it into a loop that never returns, holding the interpreter lock, so no time limit can
    stop it. Each collection is walked here first, object by object, as the format defines it
    (16-byte headers, data padded to 8 bytes, index 0 the free space); a walk that leaves the
    collection or repeats an index means a damaged file. `data` is bytes or an mmap.
    """
    _check_length(data, source)
    start = data.find(b"GCOL")
    while start != -1:
        signature, version, reserved, size = _COLLECTION.unpack_from(data, start) \
            if start + _COLLECTION.size <= len(data) else (b"", 0, b"", 0)
        if version == 1 and reserved == b"\0\0\0":  # else these bytes are data, not a heap
            end = start + size
            if size < _COLLECTION.size or end > len(data):
                raise FileFormatError(f"{source!r} is damaged: a global heap at byte {start:,} "
                                      f"declares {size:,} bytes, past the end of the file.")
            position, seen = start + _COLLECTION.size, set()
            while position + _HEAP_OBJECT.size <= end:
                index, _, _, length = _HEAP_OBJECT.unpack_from(data, position)
                # The free space (index 0) runs to the collection's end, header included.
                padded = length if index == 0 else _HEAP_OBJECT.size + -(-length // 8) * 8
                if index in seen or position + padded > end or index == 0 and \
                        position + padded != end:
                    raise FileFormatError(
                        f"{source!r} is damaged: object {index} of the global heap at byte "
                        f"{start:,} does not fit it (its text values cannot be read safely).")
                if index == 0:
                    break
                seen.add(index)
                position += padded
        start = data.find(b"GCOL", start + 4)
    _check_local_heaps(data, source)


_LOCAL_HEAP = struct.Struct("<4sB3sQQQ")  # "HEAP", version, reserved, size, free list, address
_FREE_BLOCK = struct.Struct("<QQ")          # offset of the next free block, this block's size
_LIST_ENDS = (1, 2**64 - 1)                 # HDF5's two "no further block" values


def _check_local_heaps(data: Any, source: str) -> None:
    """Refuse an HDF5 file whose local heaps' free lists do not parse. A group's link names live
    in a local heap; a free list whose offsets point back into it (one flipped bit) makes the
    HDF5 library loop forever while listing the group, as a damaged global heap does."""
    start = data.find(b"HEAP")
    while start != -1:
        if start + _LOCAL_HEAP.size <= len(data):
            _, version, reserved, size, free, address = _LOCAL_HEAP.unpack_from(data, start)
            if version == 0 and reserved == b"\0\0\0":  # else these bytes are data, not a heap
                if address + size > len(data):
                    raise FileFormatError(f"{source!r} is damaged: the local heap at byte "
                                          f"{start:,} lies past the end of the file.")
                seen = set()
                while free not in _LIST_ENDS:
                    if free in seen or free + _FREE_BLOCK.size > size:
                        raise FileFormatError(
                            f"{source!r} is damaged: the free list of the local heap at byte "
                            f"{start:,} leaves the heap or loops (its names cannot be read).")
                    seen.add(free)
                    following, length = _FREE_BLOCK.unpack_from(data, address + free)
                    if free + length > size:
                        raise FileFormatError(
                            f"{source!r} is damaged: a free block of the local heap at byte "
                            f"{start:,} runs past the heap's end.")
                    free = following
        start = data.find(b"HEAP", start + 4)


def open_h5(path: str | os.PathLike, purpose: str) -> h5py.File:
    """Open an HDF5 file for reading, turning h5py's errors into ones that say what to do."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"No file found at {str(path)!r}; cannot {purpose}.")
    with open(path, "rb") as file:
        if os.fstat(file.fileno()).st_size:
            with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
                check_hdf5_heaps(data, str(path))
    try:
        return h5py.File(path, "r")
    except Exception as error:  # noqa: BLE001 - h5py raises OSError, and others on crafted files
        raise FileFormatError(
            f"{str(path)!r} is not a readable HDF5 file (it may be truncated, still being written, "
            f"or of another format), so Lamina cannot {purpose}. Original error: {error}"
        ) from None


def string_attribute(node: h5py.HLObject, name: str, limit: int, source: str) -> str | None:
    """A scalar text attribute, or None when absent; refused past `limit` characters.

    A variable-length string's length is not known before reading it, but its bytes lie in the
    file, so reading it never allocates more than the file's size.
    """
    with reading(source, f"the attribute {name!r}"):
        if name not in node.attrs:
            return None
        attribute = node.attrs.get_id(name)
        dtype = attribute.dtype
        if attribute.shape not in ((), (1,)) or h5py.check_string_dtype(dtype) is None \
                and dtype.kind not in "SU":
            raise FileFormatError(f"{source!r}: the attribute {name!r} is not a text value "
                                  f"(dtype {dtype}, shape {attribute.shape}).")
        if dtype.kind in "SU" and dtype.itemsize > limit:
            raise FileFormatError(f"{source!r}: the attribute {name!r} is {dtype.itemsize:,} "
                                  f"bytes, more than the {limit:,} allowed.")
        value = node.attrs[name]
    if isinstance(value, np.ndarray):
        value = value.reshape(-1)[0]
    if not isinstance(value, (bytes, str)):
        raise FileFormatError(f"{source!r}: the attribute {name!r} is not a text value.")
    try:
        # h5py hands undecodable bytes over as surrogates; a round trip shows them.
        value = (value if isinstance(value, bytes) else value.encode("utf-8")).decode("utf-8")
    except UnicodeError as error:
        raise FileFormatError(f"{source!r}: the attribute {name!r} is not UTF-8 text: "
                              f"{error}") from None
    if len(value) > limit:
        raise FileFormatError(f"{source!r}: the attribute {name!r} is {len(value):,} "
                              f"characters, more than the {limit:,} allowed.")
    return value
