"""Dataset files in the layouts the real ones were written in."""

from __future__ import annotations

import io
import pickle
import struct


class Python2Pickler(pickle._Pickler):
    """Writes what Python 2's cPickle (protocol 2) wrote for CIFAR: every str as BINSTRING.

    Python 2 had no separate bytes type, so dict keys, file names and NumPy's raw array data
    were all `str` (SHORT_BINSTRING / BINSTRING), and NumPy 1 named `numpy.core.multiarray`.
    """

    dispatch = dict(pickle._Pickler.dispatch)

    def save_python2_str(self, obj: str | bytes) -> None:
        raw = obj.encode("latin-1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[str] = save_python2_str
    dispatch[bytes] = save_python2_str

    def save_global(self, obj, name=None):
        module = {"_reconstruct": "numpy.core.multiarray"}.get(obj.__name__, obj.__module__)
        self.write(pickle.GLOBAL + f"{module}\n{obj.__name__}\n".encode("ascii"))
        self.memoize(obj)


def python2_dumps(obj) -> bytes:
    buffer = io.BytesIO()
    Python2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()
