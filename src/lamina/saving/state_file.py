"""Training state (optimizer moments, RNG states, callback counters) on disk without pickle:
the nested structure as JSON, every tensor or array as an HDF5 dataset it points to."""

from __future__ import annotations

import json
import os
from typing import Any

import h5py
import numpy as np
import torch

from lamina.saving.file_format import atomic_write, open_h5


def _encode(value: Any, arrays: list[np.ndarray]) -> Any:
    if isinstance(value, torch.Tensor):
        arrays.append(value.detach().cpu().numpy())
        return {"__tensor__": len(arrays) - 1, "dtype": str(value.dtype).removeprefix("torch.")}
    if isinstance(value, np.ndarray):
        arrays.append(value)
        return {"__array__": len(arrays) - 1}
    if isinstance(value, dict):
        return {"__dict__": [[_encode(k, arrays), _encode(v, arrays)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, arrays) for v in value]}
    if isinstance(value, list):
        return [_encode(v, arrays) for v in value]
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"Cannot store {type(value).__name__} in a training-state file.")


def _decode(value: Any, arrays: h5py.Group) -> Any:
    if isinstance(value, dict):
        if "__tensor__" in value:
            array = np.asarray(arrays[str(value["__tensor__"])])
            return torch.from_numpy(array.copy()).to(getattr(torch, value["dtype"]))
        if "__array__" in value:
            return np.asarray(arrays[str(value["__array__"])]).copy()
        if "__tuple__" in value:
            return tuple(_decode(v, arrays) for v in value["__tuple__"])
        if "__dict__" in value:
            return {_decode(k, arrays): _decode(v, arrays) for k, v in value["__dict__"]}
    if isinstance(value, list):
        return [_decode(v, arrays) for v in value]
    return value


def save_state(path: str | os.PathLike, state: Any) -> None:
    """Write `state` (dicts, lists, tuples, numbers, strings, tensors, arrays) atomically."""
    arrays: list[np.ndarray] = []
    document = json.dumps(_encode(state, arrays))

    def write(temporary: str) -> None:
        with h5py.File(temporary, "w") as h5:
            h5.attrs["state"] = document
            group = h5.create_group("arrays")
            for index, array in enumerate(arrays):
                group.create_dataset(str(index), data=array)

    atomic_write(path, write)


def load_state(path: str | os.PathLike) -> Any:
    with open_h5(path, "restore training state from it") as h5:
        return _decode(json.loads(h5.attrs["state"]), h5["arrays"])
