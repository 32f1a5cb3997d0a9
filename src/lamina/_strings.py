"""Text as data: `StringTensor`, the stand-in for a string tensor (torch has no string dtype).

A leaf module (NumPy only) so that symbolic inputs, data pipelines and the engine can all use
it without importing one another.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# The dtype of a string `Input` and its symbolic tensor, as Keras spells it.
STRING = "string"


class StringTensor(np.ndarray):
    """A NumPy object array of `str`: what a string tensor is here (torch has no string dtype).

    `.numpy()` returns it as a plain NumPy array, so Keras code written for `tf.string` tensors
    (`text_batch.numpy()[0]`) runs; elements are `str`, not the `bytes` TensorFlow returns.
    """

    def numpy(self) -> np.ndarray:
        return self.view(np.ndarray)


def is_string_array(value: Any) -> bool:
    """Whether `value` is a NumPy array of text (unicode, bytes, or objects that are `str`)."""
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "USO":
        return False
    if value.dtype.kind != "O":
        return True
    flat = value.reshape(-1)
    return flat.size == 0 or isinstance(flat[0], (str, bytes))


def as_strings(value: Any) -> StringTensor:
    """Text (a `str`, a list or array of them) as a `StringTensor` of `str` (bytes decoded)."""
    array = np.asarray(value)
    if array.dtype.kind == "S":
        array = np.char.decode(array, "utf-8")
    out = np.empty(array.shape, dtype=object)
    out[...] = array.astype(object) if array.dtype.kind != "O" else array
    if out.dtype.kind == "O" and out.size and isinstance(out.reshape(-1)[0], bytes):
        out = np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(out)
    return out.view(StringTensor)
