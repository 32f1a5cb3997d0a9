"""Image files <-> arrays with Pillow: `load_img`, `img_to_array`, `array_to_img`, `save_img`."""

from __future__ import annotations

import io
import os
import pathlib
import warnings
from typing import Any

import numpy as np
from PIL import Image

from lamina import config

PIL_INTERPOLATION_METHODS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "hamming": Image.Resampling.HAMMING,
    "box": Image.Resampling.BOX,
    "lanczos": Image.Resampling.LANCZOS,
}
_COLOR_MODES = {"grayscale": 1, "rgb": 3, "rgba": 4}


def check_color_mode(color_mode: str) -> int:
    """The number of channels of a Keras color mode, or a ValueError naming the valid ones."""
    if color_mode not in _COLOR_MODES:
        raise ValueError(
            "`color_mode` must be 'grayscale', 'rgb' or 'rgba'. "
            f"Received: color_mode={color_mode!r}."
        )
    return _COLOR_MODES[color_mode]


def check_interpolation(interpolation: str, supported: dict[str, Any] = PIL_INTERPOLATION_METHODS) -> Any:
    if interpolation not in supported:
        raise ValueError(
            f"Invalid interpolation {interpolation!r}. Supported methods are: "
            f"{', '.join(supported)}."
        )
    return supported[interpolation]


def load_img(
    path: str | os.PathLike | bytes | io.BytesIO,
    color_mode: str = "rgb",
    target_size: tuple[int, int] | None = None,
    interpolation: str = "nearest",
    keep_aspect_ratio: bool = False,
) -> Image.Image:
    """Load an image file as a PIL image, converted to `color_mode` and resized to `target_size`.

    Args:
        path: a file path or an `io.BytesIO`.
        color_mode: 'grayscale' (8-bit, or 16/32-bit grayscale files kept as such), 'rgb', 'rgba'.
        target_size: `(height, width)`, or None to keep the file's size.
        interpolation: the resampling filter: 'nearest', 'bilinear', 'bicubic', 'hamming',
            'box' or 'lanczos'.
        keep_aspect_ratio: crop the centre to the target aspect ratio before resizing, instead
            of stretching.
    """
    check_color_mode(color_mode)
    if isinstance(path, io.BytesIO):
        image = Image.open(path)
    elif isinstance(path, (str, bytes, os.PathLike)):
        path = os.fsdecode(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"No image file at {path!r}.")
        # Read the bytes first so the file is closed before the lazy PIL decode finishes.
        with open(path, "rb") as file:
            image = Image.open(io.BytesIO(file.read()))
    else:
        raise TypeError(
            f"`path` must be a file path or an io.BytesIO. Received: {type(path).__name__}."
        )
    if color_mode == "grayscale":
        # 16- and 32-bit grayscale files keep their depth; everything else becomes 8-bit L.
        if image.mode not in ("L", "I;16", "I"):
            image = image.convert("L")
    elif color_mode == "rgba":
        if image.mode != "RGBA":
            image = image.convert("RGBA")
    elif image.mode != "RGB":
        image = image.convert("RGB")
    if target_size is not None:
        height, width = check_size(target_size, "target_size")
        if image.size != (width, height):
            resample = check_interpolation(interpolation)
            box = center_crop_box(image.size, (height, width)) if keep_aspect_ratio else None
            image = image.resize((width, height), resample, box=box)
    return image


def check_size(size: Any, name: str) -> tuple[int, int]:
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or not all(isinstance(side, (int, np.integer)) and not isinstance(side, bool) and side > 0 for side in size)
    ):
        raise ValueError(
            f"`{name}` must be a pair of positive integers (height, width). Received: {name}={size!r}."
        )
    return int(size[0]), int(size[1])


def center_crop_box(
    image_size: tuple[int, int], target: tuple[int, int]
) -> tuple[int, int, int, int]:
    """The largest centred (left, top, right, bottom) box of the target's aspect ratio."""
    width, height = image_size
    target_height, target_width = target
    crop_height = min(height, (width * target_height) // target_width)
    crop_width = min(width, (height * target_width) // target_height)
    top = (height - crop_height) // 2
    left = (width - crop_width) // 2
    return (left, top, left + crop_width, top + crop_height)


def img_to_array(img: Image.Image, data_format: str | None = None, dtype: Any = None) -> np.ndarray:
    """A PIL image as a 3D array: `(height, width, channels)` for channels_last."""
    data_format = config.standardize_data_format(data_format)
    array = np.asarray(img, dtype=dtype or config.floatx())
    if array.ndim == 2:
        array = array[:, :, np.newaxis]
    elif array.ndim != 3:
        raise ValueError(f"Unsupported image shape: {array.shape}. Expected (height, width[, channels]).")
    if data_format == "channels_first":
        array = array.transpose(2, 0, 1)
    return array


def array_to_img(
    x: Any, data_format: str | None = None, scale: bool = True, dtype: Any = None
) -> Image.Image:
    """A 3D image array as a PIL image (1 channel -> 'L' or 32-bit 'I', 3 -> 'RGB', 4 -> 'RGBA').

    Args:
        scale: stretch the values to [0, 255] first (`(x - min) / (max - min) * 255`).
    """
    data_format = config.standardize_data_format(data_format)
    array = np.asarray(x, dtype=dtype or config.floatx())
    if array.ndim != 3:
        raise ValueError(
            f"Expected an image array of rank 3 (one image). Received an array of shape {array.shape}."
        )
    if data_format == "channels_first":
        array = array.transpose(1, 2, 0)
    if scale:
        array = array - np.min(array)
        peak = np.max(array)
        if peak != 0:
            array = array / peak
        array = array * 255
    channels = array.shape[2]
    if channels == 4:
        return Image.fromarray(array.astype(np.uint8), "RGBA")
    if channels == 3:
        return Image.fromarray(array.astype(np.uint8), "RGB")
    if channels == 1:
        if np.max(array) > 255:
            # More than 8 bits of grayscale: PIL's 32-bit signed integer mode keeps them.
            return Image.fromarray(array[:, :, 0].astype(np.int32), "I")
        return Image.fromarray(array[:, :, 0].astype(np.uint8), "L")
    raise ValueError(
        f"Unsupported channel count: {channels} (image shape {array.shape}). Expected 1, 3 or 4 "
        "channels; check `data_format`."
    )


def save_img(
    path: str | os.PathLike | io.IOBase,
    x: Any,
    data_format: str | None = None,
    file_format: str | None = None,
    scale: bool = True,
    **kwargs: Any,
) -> None:
    """Save an image array to a file; the format comes from the file extension by default."""
    image = array_to_img(x, data_format=data_format, scale=scale)
    if file_format is None and isinstance(path, (str, os.PathLike)):
        file_format = pathlib.Path(path).suffix[1:].lower() or None
    if file_format == "jpg":
        file_format = "jpeg"
    if image.mode == "RGBA" and file_format == "jpeg":
        warnings.warn("The JPEG format does not support RGBA images; converting to RGB.", stacklevel=2)
        image = image.convert("RGB")
    image.save(path, format=file_format, **kwargs)
