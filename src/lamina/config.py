"""Global defaults: float type, image data format, epsilon, seeds."""

from __future__ import annotations

import random

import numpy as np
import torch

_FLOATX = "float32"
_IMAGE_DATA_FORMAT = "channels_last"
_EPSILON = 1e-7

_DTYPES = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "int16": torch.int16,
    "int32": torch.int32,
    "int64": torch.int64,
    "bool": torch.bool,
}


def floatx() -> str:
    """The default float type of weights and inputs, as a string ('float32')."""
    return _FLOATX


def set_floatx(value: str) -> None:
    global _FLOATX
    if value not in ("float16", "bfloat16", "float32", "float64"):
        raise ValueError(
            "`floatx` must be one of 'float16', 'bfloat16', 'float32', 'float64'. "
            f"Received: {value!r}."
        )
    _FLOATX = value


def image_data_format() -> str:
    """'channels_last' (Keras's default, NHWC) or 'channels_first' (torch's NCHW)."""
    return _IMAGE_DATA_FORMAT


def set_image_data_format(value: str) -> None:
    global _IMAGE_DATA_FORMAT
    _IMAGE_DATA_FORMAT = standardize_data_format(value)


def standardize_data_format(value: str | None) -> str:
    if value is None:
        return _IMAGE_DATA_FORMAT
    value = value.lower()
    if value not in ("channels_last", "channels_first"):
        raise ValueError(
            "`data_format` must be 'channels_last' or 'channels_first'. "
            f"Received: data_format={value!r}."
        )
    return value


def epsilon() -> float:
    """The fuzz factor Keras adds to denominators and clips probabilities with (1e-7)."""
    return _EPSILON


def set_epsilon(value: float) -> None:
    global _EPSILON
    _EPSILON = float(value)


def torch_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    """A torch dtype from a Keras dtype string, a torch dtype, or None (floatx)."""
    if dtype is None:
        return _DTYPES[_FLOATX]
    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, np.dtype) or (isinstance(dtype, type) and issubclass(dtype, np.generic)):
        dtype = np.dtype(dtype).name
    if dtype in _DTYPES:
        return _DTYPES[dtype]
    raise ValueError(f"Unknown dtype {dtype!r}. Valid dtypes are: {', '.join(_DTYPES)}.")


def dtype_name(dtype: torch.dtype) -> str:
    """The Keras string of a torch dtype ('float32')."""
    return str(dtype).removeprefix("torch.")


def set_random_seed(seed: int) -> None:
    """Seed Python, NumPy and torch at once, as `keras.utils.set_random_seed` does."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def default_device() -> torch.device:
    """CUDA when available, else CPU: where `fit` puts a model that was not moved by hand."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
