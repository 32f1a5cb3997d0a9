"""Read the pickled parts of dataset files without letting them run code.

CIFAR's batches are Python pickles and IMDB's `.npz` stores ragged sequences as object arrays
(pickles inside the `.npy` members). Rebuilding those needs only NumPy's array constructors;
an unpickler that resolves nothing else refuses a tampered file's `os.system`-style gadgets.
"""

from __future__ import annotations

import codecs
import io
import pickle
import zipfile
from typing import Any, BinaryIO

import numpy as np

try:  # NumPy 2 moved the module; pickles written by NumPy 1 still name numpy.core.
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - NumPy < 2
    from numpy.core import multiarray as _multiarray

_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    # Protocol-2 pickles written by Python 3 spell bytes as _codecs.encode(text, 'latin1');
    # a codec only transforms data.
    ("_codecs", "encode"): codecs.encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can build NumPy arrays and builtin containers, and nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[(module, name)]
        raise pickle.UnpicklingError(
            f"Refusing to load `{module}.{name}` from a dataset file: only NumPy arrays and "
            "builtin types are allowed. The file is corrupt or was tampered with; delete it so "
            "it is downloaded again."
        )


def load_pickle(file: BinaryIO, encoding: str = "ASCII") -> Any:
    """`pickle.load` restricted to NumPy arrays and builtins."""
    return RestrictedUnpickler(file, encoding=encoding).load()


def load_npz(path: str) -> dict[str, np.ndarray]:
    """All arrays of an `.npz` file; object arrays are unpickled with `RestrictedUnpickler`."""
    arrays = {}
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            if not member.endswith(".npy"):
                continue
            with archive.open(member) as raw:
                arrays[member[: -len(".npy")]] = _read_npy(io.BytesIO(raw.read()))
    return arrays


def _read_npy(buffer: io.BytesIO) -> np.ndarray:
    version = np.lib.format.read_magic(buffer)
    if version == (1, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(buffer)
    else:
        # Versions 2 and 3 differ from 1 only in the header's length field and text encoding.
        shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(buffer)
    if dtype.hasobject:
        return load_pickle(buffer, encoding="latin1")
    buffer.seek(0)
    return np.lib.format.read_array(buffer, allow_pickle=False)
