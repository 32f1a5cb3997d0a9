"""On-disk layouts: weights in HDF5 (Keras 3's `layers/<name>/vars/<i>` tree), atomic writes,
and clear errors for missing, truncated or foreign files.

Inside a container, a child's key is its class name in snake case, numbered per class
(`dense`, `dense_1`, ...), as Keras 3 does: weights load into a freshly built copy of the model
even when its auto-generated layer names differ.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable

import h5py
import numpy as np
import torch
from torch import nn

from lamina.errors import FileFormatError
from lamina.layers.layer import Layer, _iter_sublayers, to_snake_case


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Write through a temporary file in the same folder, then rename it into place, so a crash
    mid-write never leaves a truncated file where a good one was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        write(temporary)
        with open(temporary, "rb+") as stream:
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def check_overwrite(path: str | os.PathLike, overwrite: bool) -> None:
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path} already exists. Pass overwrite=True to replace it.")


def child_keys(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """(key, child) for a layer's sublayers: class name in snake case, numbered per class."""
    used: dict[str, int] = {}
    keyed = []
    for child in _iter_sublayers(module):
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


def write_weights(module: nn.Module, group: h5py.Group) -> None:
    group.attrs["name"] = str(getattr(module, "name", type(module).__name__))
    group.attrs["class_name"] = type(module).__name__
    variables = group.create_group("vars")
    for index, (name, tensor, owner) in enumerate(_own_arrays(module)):
        value = owner._to_keras_layout(name, tensor) if owner is not None else tensor
        dataset = variables.create_dataset(str(index), data=value.detach().cpu().numpy())
        dataset.attrs["name"] = name
    if isinstance(module, Layer):
        children = group.create_group("layers")
        for key, child in child_keys(module):
            write_weights(child, children.create_group(key))


def read_weights(module: nn.Module, group: h5py.Group, skip_mismatch: bool, path: str = "") -> None:
    where = path or "the model"
    own = _own_arrays(module)
    stored = group["vars"] if "vars" in group else {}
    if len(stored) != len(own):
        message = (f"Layer {where!r} ({type(module).__name__}) expects {len(own)} weights, but the "
                   f"file has {len(stored)} for it.")
        if not skip_mismatch:
            raise ValueError(message + " The file was saved from a different architecture; pass "
                                       "skip_mismatch=True to load the layers that match.")
        warnings.warn(message + " Skipping it.", stacklevel=4)
    else:
        with torch.no_grad():
            for index, (name, tensor, owner) in enumerate(own):
                array = np.asarray(stored[str(index)])
                value = torch.as_tensor(array, dtype=tensor.dtype)
                expected = tuple((owner._to_keras_layout(name, tensor) if owner else tensor).shape)
                if tuple(value.shape) != expected:
                    message = (f"Layer {where!r} weight {name!r} has shape {expected} in the model "
                               f"but {tuple(value.shape)} in the file.")
                    if not skip_mismatch:
                        raise ValueError(message + " Pass skip_mismatch=True to skip it.")
                    warnings.warn(message + " Skipping it.", stacklevel=4)
                    continue
                if owner is not None:
                    value = owner._from_keras_layout(name, value)
                tensor.copy_(value.to(tensor.device))
    if isinstance(module, Layer):
        children = group["layers"] if "layers" in group else {}
        for key, child in child_keys(module):
            if key not in children:
                message = f"Layer {key!r} of {where!r} has no weights in the file."
                if not skip_mismatch:
                    raise ValueError(message + " Pass skip_mismatch=True to leave it as it is.")
                warnings.warn(message + " Skipping it.", stacklevel=4)
                continue
            read_weights(child, children[key], skip_mismatch, f"{path}/{key}".lstrip("/"))


def open_h5(path: str | os.PathLike, purpose: str) -> h5py.File:
    """Open an HDF5 file for reading, turning h5py's errors into ones that say what to do."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"No file found at {str(path)!r}; cannot {purpose}.")
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise FileFormatError(
            f"{str(path)!r} is not a readable HDF5 file (it may be truncated, still being written, "
            f"or of another format), so Lamina cannot {purpose}. Original error: {error}"
        ) from None
