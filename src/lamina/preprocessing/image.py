"""Keras's legacy image augmentation: `ImageDataGenerator` and the iterators its `flow*` return.

The iterators are `lamina.utils.PyDataset`s, so `fit` consumes them (with prefetching workers).
Randomness is drawn per batch from a generator seeded by (seed, epoch, batch index), so a batch
is the same whichever worker thread builds it and `set_random_seed` makes runs reproducible.

One deliberate difference from Keras: `width_shift_range` shifts horizontally and
`height_shift_range` vertically, as documented; Keras's code swaps them
(keras-team/keras#17398) and centres non-square images off by the aspect difference.
"""

from __future__ import annotations

import math
import os
import threading
from typing import Any, Callable, Sequence

import numpy as np
from scipy import ndimage

from lamina import config
from lamina._registry import register
from lamina.utils.dataset_utils import (
    check_directory,
    check_same_image_size,
    class_subdirectories,
    list_files,
)
from lamina.utils.image_utils import (
    array_to_img,
    check_color_mode,
    check_interpolation,
    check_size,
    img_to_array,
    load_img,
    save_img,
)
from lamina.utils.py_dataset import PyDataset

__all__ = [
    "ImageDataGenerator",
    "Iterator",
    "NumpyArrayIterator",
    "DirectoryIterator",
    "apply_affine_transform",
    "apply_brightness_shift",
    "apply_channel_shift",
    "random_rotation",
    "random_shift",
    "random_shear",
    "random_zoom",
    "random_channel_shift",
    "random_brightness",
    "load_img",
    "img_to_array",
    "array_to_img",
    "save_img",
]

_FILL_MODES = ("constant", "nearest", "reflect", "wrap")


# --------------------------------------------------------------------------- transforms


def apply_affine_transform(
    x: np.ndarray,
    theta: float = 0,
    tx: float = 0,
    ty: float = 0,
    shear: float = 0,
    zx: float = 1,
    zy: float = 1,
    row_axis: int = 1,
    col_axis: int = 2,
    channel_axis: int = 0,
    fill_mode: str = "nearest",
    cval: float = 0.0,
    order: int = 1,
) -> np.ndarray:
    """Rotate, shift, shear and zoom one 3D image about its centre.

    With `(u, v)` = (column, row) measured from the image centre, each output pixel samples the
    input at `M @ (u, v, 1)`, `M = R(theta) @ T(tx, ty) @ S(shear) @ Z(zx, zy)`:
    `R = [[cos, -sin, 0], [sin, cos, 0]]`, `T = [[1, 0, tx], [0, 1, ty]]`,
    `S = [[1, -sin(shear), 0], [0, cos(shear), 0]]`, `Z = [[zx, 0, 0], [0, zy, 0]]`.
    So a positive `theta` (degrees) turns the content counter-clockwise, `tx = k` moves it
    k pixels left and `ty = k` k pixels up, and `zx > 1` shrinks it horizontally.

    Args:
        row_axis, col_axis, channel_axis: the axes of `x` (channels first or last).
        fill_mode: how points outside the input are filled: 'constant' (kkkk|abcd|kkkk with
            k = `cval`), 'nearest' (aaaa|abcd|dddd), 'reflect' (dcba|abcd|dcba) or 'wrap'
            (abcd|abcd|abcd, as Keras documents; its code used scipy's overlapping 'wrap').
        order: spline interpolation order (0 nearest, 1 bilinear, ... 5).
    """
    if sorted((row_axis, col_axis, channel_axis)) != [0, 1, 2]:
        raise ValueError(
            "`row_axis`, `col_axis` and `channel_axis` must be 0, 1 and 2 in some order. "
            f"Received: row_axis={row_axis}, col_axis={col_axis}, channel_axis={channel_axis}."
        )
    if np.ndim(x) != 3:
        raise ValueError(
            f"Expected one image with a channel axis (rank 3). Received shape {np.shape(x)}."
        )
    if channel_axis not in (0, 2):
        raise ValueError(f"Channels must be the first or last axis. Received: channel_axis={channel_axis}.")
    if fill_mode not in _FILL_MODES:
        raise ValueError(f"`fill_mode` must be one of {_FILL_MODES}. Received: fill_mode={fill_mode!r}.")

    matrix = np.eye(3)
    if theta:
        angle = np.deg2rad(theta)
        matrix = matrix @ np.array(
            [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
        )
    if tx or ty:
        matrix = matrix @ np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]])
    if shear:
        angle = np.deg2rad(shear)
        matrix = matrix @ np.array([[1, -np.sin(angle), 0], [0, np.cos(angle), 0], [0, 0, 1]])
    if zx != 1 or zy != 1:
        matrix = matrix @ np.array([[zx, 0, 0], [0, zy, 0], [0, 0, 1]])
    if np.array_equal(matrix, np.eye(3)):
        return x

    # The matrix acts on (u, v) = (column, row); ndimage indexes (row, column): swap both.
    swap = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]])
    matrix = swap @ matrix @ swap
    height, width = x.shape[row_axis], x.shape[col_axis]
    center = np.array([(height - 1) / 2, (width - 1) / 2])
    linear, translation = matrix[:2, :2], matrix[:2, 2]
    offset = center + translation - linear @ center

    mode = "grid-wrap" if fill_mode == "wrap" else fill_mode
    channels_first = np.moveaxis(x, channel_axis, 0)  # (channels, row/col, col/row)
    transpose = row_axis > col_axis
    if transpose:
        channels_first = channels_first.transpose(0, 2, 1)
    transformed = np.stack(
        [
            ndimage.affine_transform(
                channel, linear, offset, order=order, mode=mode, cval=cval
            )
            for channel in channels_first
        ]
    )
    if transpose:
        transformed = transformed.transpose(0, 2, 1)
    return np.moveaxis(transformed, 0, channel_axis)


def apply_channel_shift(x: np.ndarray, intensity: float, channel_axis: int = 0) -> np.ndarray:
    """Add `intensity` to every channel, clipped to the image's original [min, max]."""
    return np.clip(x + intensity, np.min(x), np.max(x))


def apply_brightness_shift(x: np.ndarray, brightness: float, scale: bool = True) -> np.ndarray:
    """Multiply brightness by `brightness` in the [0, 255] range: `clip(x * brightness, 0, 255)`.

    Images outside [0, 255], or any image when `scale`, are first stretched to [0, 255]; with
    `scale=False` the result is mapped back to the original range. (Keras rounds through an
    8-bit PIL image here; this keeps full precision.)
    """
    low, high = float(np.min(x)), float(np.max(x))
    stretch = scale or low < 0 or high > 255
    if stretch:
        span = high - low
        x = (x - low) / span * 255 if span else x - low
    brightened = np.clip(x * brightness, 0, 255)
    if stretch and not scale:
        brightened = brightened / 255 * (high - low) + low
    return brightened


def flip_axis(x: np.ndarray, axis: int) -> np.ndarray:
    return np.flip(x, axis).copy()


def random_rotation(
    x: np.ndarray,
    rg: float,
    row_axis: int = 1,
    col_axis: int = 2,
    channel_axis: int = 0,
    fill_mode: str = "nearest",
    cval: float = 0.0,
    interpolation_order: int = 1,
) -> np.ndarray:
    """Rotate by a uniform random angle in [-rg, rg] degrees."""
    return apply_affine_transform(
        x, theta=np.random.uniform(-rg, rg), row_axis=row_axis, col_axis=col_axis,
        channel_axis=channel_axis, fill_mode=fill_mode, cval=cval, order=interpolation_order,
    )


def random_shift(
    x: np.ndarray,
    wrg: float,
    hrg: float,
    row_axis: int = 1,
    col_axis: int = 2,
    channel_axis: int = 0,
    fill_mode: str = "nearest",
    cval: float = 0.0,
    interpolation_order: int = 1,
) -> np.ndarray:
    """Shift by uniform random fractions in [-wrg, wrg] of the width and [-hrg, hrg] of the height."""
    tx = np.random.uniform(-wrg, wrg) * x.shape[col_axis]
    ty = np.random.uniform(-hrg, hrg) * x.shape[row_axis]
    return apply_affine_transform(
        x, tx=tx, ty=ty, row_axis=row_axis, col_axis=col_axis, channel_axis=channel_axis,
        fill_mode=fill_mode, cval=cval, order=interpolation_order,
    )


def random_shear(
    x: np.ndarray,
    intensity: float,
    row_axis: int = 1,
    col_axis: int = 2,
    channel_axis: int = 0,
    fill_mode: str = "nearest",
    cval: float = 0.0,
    interpolation_order: int = 1,
) -> np.ndarray:
    """Shear by a uniform random angle in [-intensity, intensity] degrees."""
    return apply_affine_transform(
        x, shear=np.random.uniform(-intensity, intensity), row_axis=row_axis, col_axis=col_axis,
        channel_axis=channel_axis, fill_mode=fill_mode, cval=cval, order=interpolation_order,
    )


def random_zoom(
    x: np.ndarray,
    zoom_range: Sequence[float],
    row_axis: int = 1,
    col_axis: int = 2,
    channel_axis: int = 0,
    fill_mode: str = "nearest",
    cval: float = 0.0,
    interpolation_order: int = 1,
) -> np.ndarray:
    """Zoom each axis by a uniform random factor in `zoom_range = (low, high)`."""
    low, high = _check_zoom_range(zoom_range)
    zx, zy = (1.0, 1.0) if low == high == 1 else np.random.uniform(low, high, 2)
    return apply_affine_transform(
        x, zx=zx, zy=zy, row_axis=row_axis, col_axis=col_axis, channel_axis=channel_axis,
        fill_mode=fill_mode, cval=cval, order=interpolation_order,
    )


def random_channel_shift(x: np.ndarray, intensity_range: float, channel_axis: int = 0) -> np.ndarray:
    """`apply_channel_shift` by a uniform random intensity in [-intensity_range, intensity_range]."""
    intensity = np.random.uniform(-intensity_range, intensity_range)
    return apply_channel_shift(x, intensity, channel_axis=channel_axis)


def random_brightness(x: np.ndarray, brightness_range: Sequence[float], scale: bool = True) -> np.ndarray:
    """`apply_brightness_shift` by a uniform random factor in `brightness_range = (low, high)`."""
    low, high = _check_pair(brightness_range, "brightness_range")
    return apply_brightness_shift(x, np.random.uniform(low, high), scale)


def _check_pair(value: Any, name: str) -> tuple[float, float]:
    if (
        not isinstance(value, (tuple, list, np.ndarray))
        or len(value) != 2
        or not all(isinstance(bound, (int, float, np.number)) for bound in value)
        or value[0] > value[1]
    ):
        raise ValueError(
            f"`{name}` must be a pair of numbers (low, high) with low <= high. Received: {name}={value!r}."
        )
    return float(value[0]), float(value[1])


def _check_zoom_range(zoom_range: Any) -> tuple[float, float]:
    if isinstance(zoom_range, (int, float)) and not isinstance(zoom_range, bool):
        low, high = 1 - zoom_range, 1 + zoom_range
    else:
        low, high = _check_pair(zoom_range, "zoom_range")
    if low <= 0 or high < low:
        raise ValueError(
            "`zoom_range` must be a number in [0, 1) (zoom factors in [1 - z, 1 + z]) or a pair "
            f"of positive factors (low, high). Received: zoom_range={zoom_range!r}."
        )
    return low, high


def _check_shift_range(value: Any, name: str) -> None:
    if isinstance(value, (tuple, list, np.ndarray)):
        if len(value) == 0 or not all(isinstance(v, (int, float, np.number)) for v in value):
            raise ValueError(f"`{name}` must be a number or a non-empty list of numbers. Received: {name}={value!r}.")
    elif isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(
            f"`{name}` must be a non-negative number (a fraction of the size if < 1, pixels if "
            f">= 1) or a list of allowed shifts. Received: {name}={value!r}."
        )


def _check_non_negative(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or value < 0:
        raise ValueError(f"`{name}` must be a non-negative number. Received: {name}={value!r}.")


def _sample_shift(rng: np.random.Generator, shift_range: Any, size: int) -> float:
    """A shift in pixels: a float range is uniform, an int or list a signed random choice."""
    if isinstance(shift_range, (tuple, list, np.ndarray)):
        shift = rng.choice(np.asarray(shift_range)) * rng.choice([-1, 1])
    elif isinstance(shift_range, (int, np.integer)):
        # Integers: whole pixels from the open interval (-range, range), as Keras.
        shift = rng.integers(shift_range) * rng.choice([-1, 1])
    else:
        shift = rng.uniform(-shift_range, shift_range)
    if np.max(shift_range) < 1:
        shift *= size
    return float(shift)


def _fresh_seed() -> int:
    # Drawn from NumPy's global generator so that set_random_seed makes it reproducible.
    return int(np.random.randint(0, 2**31 - 1))


# --------------------------------------------------------------------------- generator


@register("ImageDataGenerator", kind="preprocessing")
class ImageDataGenerator:
    """Real-time image augmentation and normalization for `(batch, height, width, channels)` data.

    Each image gets a random affine transform (rotation, shifts, shear, zoom), channel shift,
    flips and brightness change, then `standardize`: `preprocessing_function`, `x * rescale`,
    sample-wise and feature-wise centring/normalization (`(x - mean) / (std + 1e-6)`), ZCA.
    `featurewise_std_normalization` and `zca_whitening` imply `featurewise_center`, and
    `samplewise_std_normalization` implies `samplewise_center`, as in Keras. Feature-wise
    statistics come from `fit(x)`; using them unfitted raises instead of silently skipping.

    Args:
        rotation_range: degrees; angles are uniform in [-rotation_range, rotation_range].
        width_shift_range, height_shift_range: float < 1: fraction of the width/height;
            float >= 1: pixels; int: whole pixels in (-range, range); list: allowed values.
        brightness_range: (low, high) brightness factors.
        shear_range: degrees, counter-clockwise.
        zoom_range: z (factors uniform in [1 - z, 1 + z]) or (low, high).
        channel_shift_range: channel shift intensities are uniform in [-range, range].
        fill_mode, cval: filling outside the input: 'constant' (cval), 'nearest', 'reflect', 'wrap'.
        rescale: multiply by this (after augmentation); None or 0 for none.
        preprocessing_function: applied to each image first in `standardize`, after augmentation.
        data_format: 'channels_last' (default) or 'channels_first'.
        validation_split: fraction of the data `subset='validation'` gets (the first part).
        interpolation_order: spline order of the affine transforms (1: bilinear).
        dtype: dtype of the batches (floatx by default).
    Other arguments as in `keras.preprocessing.image.ImageDataGenerator`.

    >>> datagen = ImageDataGenerator(rescale=1.0 / 255, horizontal_flip=True)
    >>> x, y = datagen.flow(np.zeros((10, 8, 8, 3)), np.arange(10), batch_size=4)[0]
    >>> x.shape, y.shape
    ((4, 8, 8, 3), (4,))
    """

    def __init__(
        self,
        featurewise_center: bool = False,
        samplewise_center: bool = False,
        featurewise_std_normalization: bool = False,
        samplewise_std_normalization: bool = False,
        zca_whitening: bool = False,
        zca_epsilon: float = 1e-6,
        rotation_range: float = 0,
        width_shift_range: float | Sequence[float] = 0.0,
        height_shift_range: float | Sequence[float] = 0.0,
        brightness_range: Sequence[float] | None = None,
        shear_range: float = 0.0,
        zoom_range: float | Sequence[float] = 0.0,
        channel_shift_range: float = 0.0,
        fill_mode: str = "nearest",
        cval: float = 0.0,
        horizontal_flip: bool = False,
        vertical_flip: bool = False,
        rescale: float | None = None,
        preprocessing_function: Callable[[np.ndarray], np.ndarray] | None = None,
        data_format: str | None = None,
        validation_split: float = 0.0,
        interpolation_order: int = 1,
        dtype: str | None = None,
    ) -> None:
        _check_non_negative(rotation_range, "rotation_range")
        _check_shift_range(width_shift_range, "width_shift_range")
        _check_shift_range(height_shift_range, "height_shift_range")
        if brightness_range is not None:
            _check_pair(brightness_range, "brightness_range")
        _check_non_negative(shear_range, "shear_range")
        self._zoom_range = _check_zoom_range(zoom_range)
        _check_non_negative(channel_shift_range, "channel_shift_range")
        if fill_mode not in _FILL_MODES:
            raise ValueError(f"`fill_mode` must be one of {_FILL_MODES}. Received: fill_mode={fill_mode!r}.")
        if rescale is not None and not isinstance(rescale, (int, float, np.number)):
            raise ValueError(f"`rescale` must be a number or None. Received: rescale={rescale!r}.")
        if preprocessing_function is not None and not callable(preprocessing_function):
            raise TypeError(
                "`preprocessing_function` must be a function of one image, or None. "
                f"Received: {preprocessing_function!r}."
            )
        if not isinstance(validation_split, (int, float)) or not 0 <= validation_split < 1:
            raise ValueError(
                "`validation_split` must be a float in [0, 1). "
                f"Received: validation_split={validation_split!r}."
            )
        if not isinstance(zca_epsilon, (int, float)) or zca_epsilon <= 0:
            raise ValueError(f"`zca_epsilon` must be a positive number. Received: zca_epsilon={zca_epsilon!r}.")
        if interpolation_order not in range(6):
            raise ValueError(
                "`interpolation_order` must be an integer spline order from 0 to 5. "
                f"Received: interpolation_order={interpolation_order!r}."
            )
        self.featurewise_center = featurewise_center
        self.samplewise_center = samplewise_center
        self.featurewise_std_normalization = featurewise_std_normalization
        self.samplewise_std_normalization = samplewise_std_normalization
        self.zca_whitening = zca_whitening
        self.zca_epsilon = zca_epsilon
        self.rotation_range = rotation_range
        self.width_shift_range = width_shift_range
        self.height_shift_range = height_shift_range
        self.brightness_range = brightness_range
        self.shear_range = shear_range
        self.zoom_range = zoom_range
        self.channel_shift_range = channel_shift_range
        self.fill_mode = fill_mode
        self.cval = cval
        self.horizontal_flip = horizontal_flip
        self.vertical_flip = vertical_flip
        self.rescale = rescale
        self.preprocessing_function = preprocessing_function
        self.data_format = config.standardize_data_format(data_format)
        self.validation_split = validation_split
        self.interpolation_order = interpolation_order
        self.dtype = np.dtype(dtype or config.floatx()).name
        # Axes of a batch; an image's are one less.
        if self.data_format == "channels_first":
            self.channel_axis, self.row_axis, self.col_axis = 1, 2, 3
        else:
            self.channel_axis, self.row_axis, self.col_axis = 3, 1, 2
        self._center = featurewise_center or featurewise_std_normalization or zca_whitening
        self._std_normalize = featurewise_std_normalization and not zca_whitening
        self._samplewise_center = samplewise_center or samplewise_std_normalization
        # Statistics set by fit().
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None
        self.zca_whitening_matrix: np.ndarray | None = None

    def get_config(self) -> dict[str, Any]:
        return {
            "featurewise_center": self.featurewise_center,
            "samplewise_center": self.samplewise_center,
            "featurewise_std_normalization": self.featurewise_std_normalization,
            "samplewise_std_normalization": self.samplewise_std_normalization,
            "zca_whitening": self.zca_whitening,
            "zca_epsilon": self.zca_epsilon,
            "rotation_range": self.rotation_range,
            "width_shift_range": self.width_shift_range,
            "height_shift_range": self.height_shift_range,
            "brightness_range": self.brightness_range,
            "shear_range": self.shear_range,
            "zoom_range": self.zoom_range,
            "channel_shift_range": self.channel_shift_range,
            "fill_mode": self.fill_mode,
            "cval": self.cval,
            "horizontal_flip": self.horizontal_flip,
            "vertical_flip": self.vertical_flip,
            "rescale": self.rescale,
            "preprocessing_function": self.preprocessing_function,
            "data_format": self.data_format,
            "validation_split": self.validation_split,
            "interpolation_order": self.interpolation_order,
            "dtype": self.dtype,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ImageDataGenerator:
        return cls(**config)

    def flow(
        self,
        x: Any,
        y: Any = None,
        batch_size: int = 32,
        shuffle: bool = True,
        sample_weight: Any = None,
        seed: int | None = None,
        save_to_dir: str | None = None,
        save_prefix: str = "",
        save_format: str = "png",
        ignore_class_split: bool = False,
        subset: str | None = None,
    ) -> NumpyArrayIterator:
        """A `PyDataset` of augmented `(x, y[, sample_weight])` batches (`x` only without `y`)."""
        return NumpyArrayIterator(
            x, y, self, batch_size=batch_size, shuffle=shuffle, sample_weight=sample_weight,
            seed=seed, data_format=self.data_format, save_to_dir=save_to_dir,
            save_prefix=save_prefix, save_format=save_format,
            ignore_class_split=ignore_class_split, subset=subset, dtype=self.dtype,
        )

    def flow_from_directory(
        self,
        directory: str | os.PathLike,
        target_size: tuple[int, int] | None = (256, 256),
        color_mode: str = "rgb",
        classes: Sequence[str] | None = None,
        class_mode: str | None = "categorical",
        batch_size: int = 32,
        shuffle: bool = True,
        seed: int | None = None,
        save_to_dir: str | None = None,
        save_prefix: str = "",
        save_format: str = "png",
        follow_links: bool = False,
        subset: str | None = None,
        interpolation: str = "nearest",
        keep_aspect_ratio: bool = False,
    ) -> DirectoryIterator:
        """A `PyDataset` of augmented batches read from `directory/<class>/<image>` files."""
        return DirectoryIterator(
            directory, self, target_size=target_size, color_mode=color_mode, classes=classes,
            class_mode=class_mode, batch_size=batch_size, shuffle=shuffle, seed=seed,
            data_format=self.data_format, save_to_dir=save_to_dir, save_prefix=save_prefix,
            save_format=save_format, follow_links=follow_links, subset=subset,
            interpolation=interpolation, keep_aspect_ratio=keep_aspect_ratio, dtype=self.dtype,
        )

    def standardize(self, x: np.ndarray) -> np.ndarray:
        """Normalize an image or batch (in place for arrays of this generator's dtype)."""
        x = np.asarray(x, dtype=self.dtype)
        if self.preprocessing_function:
            x = np.asarray(self.preprocessing_function(x), dtype=self.dtype)
        if self.rescale:
            x *= self.rescale
        if self._samplewise_center:
            x -= np.mean(x, keepdims=True)
        if self.samplewise_std_normalization:
            x /= np.std(x, keepdims=True) + 1e-6
        if self._center:
            self._check_fitted(self.mean)
            x -= self.mean
        if self._std_normalize:
            self._check_fitted(self.std)
            x /= self.std + 1e-6
        if self.zca_whitening:
            self._check_fitted(self.zca_whitening_matrix)
            flat = x.reshape(-1, int(np.prod(x.shape[-3:])))
            x = (flat @ self.zca_whitening_matrix).reshape(x.shape).astype(self.dtype)
        return x

    def _check_fitted(self, statistic: np.ndarray | None) -> None:
        if statistic is None:
            options = [
                f"`{name}`"
                for name in ("featurewise_center", "featurewise_std_normalization", "zca_whitening")
                if getattr(self, name)
            ]
            raise ValueError(
                f"This ImageDataGenerator uses {' and '.join(options)} but has not been fit on "
                "data, so it has no statistics to normalize with. Call `.fit(x_train)` first."
            )

    def get_random_transform(self, img_shape: Sequence[int], seed: int | None = None) -> dict[str, Any]:
        """Random parameters for `apply_transform` for one image of shape `img_shape`."""
        return self._random_transform(img_shape, np.random.default_rng(_fresh_seed() if seed is None else seed))

    def _random_transform(self, img_shape: Sequence[int], rng: np.random.Generator) -> dict[str, Any]:
        height, width = img_shape[self.row_axis - 1], img_shape[self.col_axis - 1]
        low_zoom, high_zoom = self._zoom_range
        if low_zoom == high_zoom == 1:
            zx, zy = 1.0, 1.0
        else:
            zx, zy = (float(z) for z in rng.uniform(low_zoom, high_zoom, 2))
        return {
            "theta": float(rng.uniform(-self.rotation_range, self.rotation_range)) if self.rotation_range else 0.0,
            "tx": _sample_shift(rng, self.width_shift_range, width) if np.any(self.width_shift_range) else 0.0,
            "ty": _sample_shift(rng, self.height_shift_range, height) if np.any(self.height_shift_range) else 0.0,
            "shear": float(rng.uniform(-self.shear_range, self.shear_range)) if self.shear_range else 0.0,
            "zx": zx,
            "zy": zy,
            "flip_horizontal": bool(self.horizontal_flip and rng.random() < 0.5),
            "flip_vertical": bool(self.vertical_flip and rng.random() < 0.5),
            "channel_shift_intensity": (
                float(rng.uniform(-self.channel_shift_range, self.channel_shift_range))
                if self.channel_shift_range
                else None
            ),
            "brightness": (
                float(rng.uniform(*self.brightness_range)) if self.brightness_range is not None else None
            ),
        }

    def apply_transform(self, x: np.ndarray, transform_parameters: dict[str, Any]) -> np.ndarray:
        """Transform one image by the parameters `get_random_transform` returns.

        Keys (all optional): 'theta' (degrees), 'tx', 'ty' (pixels), 'shear' (degrees), 'zx',
        'zy', 'flip_horizontal', 'flip_vertical', 'channel_shift_intensity', 'brightness'; see
        `apply_affine_transform` for directions.
        """
        row_axis, col_axis, channel_axis = self.row_axis - 1, self.col_axis - 1, self.channel_axis - 1
        x = apply_affine_transform(
            x,
            transform_parameters.get("theta", 0),
            transform_parameters.get("tx", 0),
            transform_parameters.get("ty", 0),
            transform_parameters.get("shear", 0),
            transform_parameters.get("zx", 1),
            transform_parameters.get("zy", 1),
            row_axis=row_axis,
            col_axis=col_axis,
            channel_axis=channel_axis,
            fill_mode=self.fill_mode,
            cval=self.cval,
            order=self.interpolation_order,
        )
        if transform_parameters.get("channel_shift_intensity") is not None:
            x = apply_channel_shift(x, transform_parameters["channel_shift_intensity"], channel_axis)
        if transform_parameters.get("flip_horizontal", False):
            x = flip_axis(x, col_axis)
        if transform_parameters.get("flip_vertical", False):
            x = flip_axis(x, row_axis)
        if transform_parameters.get("brightness") is not None:
            x = apply_brightness_shift(x, transform_parameters["brightness"], False)
        return x

    def random_transform(self, x: np.ndarray, seed: int | None = None) -> np.ndarray:
        """One image randomly transformed (`get_random_transform` then `apply_transform`)."""
        return self.apply_transform(x, self.get_random_transform(x.shape, seed))

    def fit(self, x: Any, augment: bool = False, rounds: int = 1, seed: int | None = None) -> None:
        """Compute the feature-wise statistics (per-channel mean and std, ZCA) from `x`.

        `rescale` is applied first; with `augment`, statistics come from `rounds` randomly
        transformed copies of `x`.
        """
        x = np.array(x, dtype=self.dtype)  # a copy: rescaling below must not touch the caller's data
        if x.ndim != 4:
            raise ValueError(
                f"`fit` expects a batch of images of rank 4. Received an array of shape {x.shape}."
            )
        if self.rescale:
            x *= self.rescale
        if augment:
            rng = np.random.default_rng(_fresh_seed() if seed is None else seed)
            x = np.stack(
                [self.apply_transform(image, self._random_transform(image.shape, rng)) for _ in range(rounds) for image in x]
            ).astype(self.dtype)
        broadcast_shape = [1, 1, 1]
        broadcast_shape[self.channel_axis - 1] = x.shape[self.channel_axis]
        axes = (0, self.row_axis, self.col_axis)
        if self._center:
            self.mean = np.mean(x, axis=axes).reshape(broadcast_shape).astype(self.dtype)
            x -= self.mean
        if self._std_normalize:
            self.std = np.std(x, axis=axes).reshape(broadcast_shape).astype(self.dtype)
            x /= self.std + 1e-6
        if self.zca_whitening:
            flat = x.reshape(len(x), -1).astype(np.float64)
            u, s, _ = np.linalg.svd(flat.T, full_matrices=False)
            # ZCA: U diag(sqrt(n) / (s + eps)) U^T whitens the centred data.
            self.zca_whitening_matrix = ((u * (np.sqrt(len(x)) / (s + self.zca_epsilon))) @ u.T).astype(self.dtype)


# --------------------------------------------------------------------------- iterators


class Iterator(PyDataset):
    """Base of the `flow*` iterators: `n` samples in batches, reshuffled every epoch.

    Indexing (`iterator[i]`) gives batch `i` of the current epoch; `next(iterator)` walks the
    batches endlessly, epoch after epoch, as Keras's iterators do.
    """

    white_list_formats = ("png", "jpg", "jpeg", "bmp", "ppm", "tif", "tiff")

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int | None) -> None:
        super().__init__()
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive integer. Received: batch_size={batch_size!r}.")
        self.n = n
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.batch_index = 0
        self.total_batches_seen = 0
        self.lock = threading.Lock()
        self._base_seed = _fresh_seed() if seed is None else seed
        self._index_array: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def __getitem__(self, idx: int) -> Any:
        if not 0 <= idx < len(self):
            raise IndexError(f"Asked for batch {idx}, but the iterator has {len(self)} batches.")
        return self._batch(self.epoch, idx)

    def _batch(self, epoch: int, idx: int) -> Any:
        index_array = self._epoch_index_array(epoch)[idx * self.batch_size : (idx + 1) * self.batch_size]
        rng = np.random.default_rng([self._base_seed, epoch, idx])
        return self._get_batches_of_transformed_samples(index_array, rng)

    def _epoch_index_array(self, epoch: int) -> np.ndarray:
        with self.lock:
            if self._index_array is None or self._index_array[0] != epoch:
                if self.shuffle:
                    order = np.random.default_rng([self._base_seed, epoch]).permutation(self.n)
                else:
                    order = np.arange(self.n)
                self._index_array = (epoch, order)
            return self._index_array[1]

    def on_epoch_end(self) -> None:
        self.epoch += 1

    def reset(self) -> None:
        self.batch_index = 0

    def __iter__(self) -> Iterator:
        return self

    def __next__(self) -> Any:
        if self.n == 0:
            raise StopIteration
        with self.lock:
            epoch, idx = self.epoch, self.batch_index
            self.batch_index += 1
            self.total_batches_seen += 1
            wrapped = self.batch_index >= len(self)
            if wrapped:
                self.batch_index = 0
        if wrapped:
            self.on_epoch_end()
        return self._batch(epoch, idx)

    def _get_batches_of_transformed_samples(self, index_array: np.ndarray, rng: np.random.Generator) -> Any:
        raise NotImplementedError

    def _save_batch(self, batch_x: np.ndarray, index_array: np.ndarray, rng: np.random.Generator) -> None:
        for image, index in zip(batch_x, index_array):
            name = f"{self.save_prefix}_{index}_{rng.integers(10**7)}.{self.save_format}"
            save_img(os.path.join(self.save_to_dir, name), image, data_format=self.data_format, scale=True)


class NumpyArrayIterator(Iterator):
    """Batches of augmented images from an in-memory array `x` (with labels `y`).

    `x` is a rank-4 array or a list of equally shaped 3D images; a tuple `(images, extra)`
    also yields the `extra` array(s) (batched, not augmented) beside the images, as in Keras.
    """

    def __init__(
        self,
        x: Any,
        y: Any,
        image_data_generator: ImageDataGenerator,
        batch_size: int = 32,
        shuffle: bool = False,
        sample_weight: Any = None,
        seed: int | None = None,
        data_format: str | None = None,
        save_to_dir: str | None = None,
        save_prefix: str = "",
        save_format: str = "png",
        subset: str | None = None,
        ignore_class_split: bool = False,
        dtype: str | None = None,
    ) -> None:
        self.dtype = np.dtype(dtype or config.floatx()).name
        self.data_format = config.standardize_data_format(data_format)
        if isinstance(x, tuple):
            extras = x[1] if isinstance(x[1], list) else [x[1]]
            x_misc = [np.asarray(extra) for extra in extras]
            x = x[0]
        else:
            x_misc = []
        x = _stack_images(x)
        for extra in x_misc:
            if len(extra) != len(x):
                raise ValueError(
                    f"All arrays in `x` must have the same length; the images have {len(x)} and an "
                    f"extra array {len(extra)}."
                )
        if y is not None:
            y = np.asarray(y)
            if len(y) != len(x):
                raise ValueError(
                    f"`x` (images) and `y` (labels) must have the same length. Received "
                    f"x.shape={x.shape}, y.shape={y.shape}."
                )
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight)
            if len(sample_weight) != len(x):
                raise ValueError(
                    f"`x` and `sample_weight` must have the same length. Received x.shape={x.shape}, "
                    f"sample_weight.shape={sample_weight.shape}."
                )
        if subset is not None:
            split = _split_index(len(x), image_data_generator, subset)
            if y is not None and not ignore_class_split and not np.array_equal(
                np.unique(y[:split]), np.unique(y[split:])
            ):
                raise ValueError(
                    "The training and validation subsets hold different classes after the split "
                    "(the validation subset is the first validation_split of the data). If the "
                    "arrays are sorted by label, shuffle them first, or pass ignore_class_split=True."
                )
            part = slice(0, split) if subset == "validation" else slice(split, len(x))
            x, x_misc = x[part], [extra[part] for extra in x_misc]
            y = None if y is None else y[part]
            sample_weight = None if sample_weight is None else sample_weight[part]
        if x.ndim != 4:
            raise ValueError(
                f"`x` must be a batch of images of rank 4 (batch, height, width, channels for "
                f"channels_last). Received an array of shape {x.shape}; for grayscale images of "
                "shape (batch, height, width) add a channel axis: x[..., None]."
            )
        if len(x) == 0:
            raise ValueError("`x` holds no images (after the subset split); nothing to iterate.")
        self.x = np.asarray(x, dtype=self.dtype)
        self.x_misc = x_misc
        self.y = y
        self.sample_weight = sample_weight
        self.image_data_generator = image_data_generator
        self.save_to_dir = save_to_dir
        self.save_prefix = save_prefix
        self.save_format = save_format
        super().__init__(len(self.x), batch_size, shuffle, seed)

    def _get_batches_of_transformed_samples(self, index_array: np.ndarray, rng: np.random.Generator) -> Any:
        generator = self.image_data_generator
        batch_x = np.zeros((len(index_array),) + self.x.shape[1:], dtype=self.dtype)
        for i, j in enumerate(index_array):
            image = self.x[j].copy()
            image = generator.apply_transform(image, generator._random_transform(image.shape, rng))
            batch_x[i] = generator.standardize(image)
        if self.save_to_dir:
            self._save_batch(batch_x, index_array, rng)
        inputs = [batch_x] + [extra[index_array] for extra in self.x_misc] if self.x_misc else batch_x
        if self.y is None:
            return inputs
        if self.sample_weight is None:
            return inputs, self.y[index_array]
        return inputs, self.y[index_array], self.sample_weight[index_array]


def _stack_images(x: Any) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, list) and x and all(hasattr(image, "shape") for image in x):
        shapes = [tuple(image.shape) for image in x]
        for position, shape in enumerate(shapes):
            if shape != shapes[0]:
                raise ValueError(
                    f"`x` holds images of different shapes: {shapes[0]} at position 0 and {shape} "
                    f"at position {position}. flow() batches images into one array, so they must "
                    "share a shape: resize them first (lamina.utils.load_img(path, target_size=...)) "
                    "or use flow_from_directory(target_size=...)."
                )
        return np.stack(x)
    return np.asarray(x)


def _split_index(count: int, generator: ImageDataGenerator, subset: str) -> int:
    if subset not in ("training", "validation"):
        raise ValueError(f"`subset` must be 'training' or 'validation'. Received: subset={subset!r}.")
    if not generator.validation_split:
        raise ValueError(
            f"subset={subset!r} needs a validation split: create the generator with "
            "ImageDataGenerator(validation_split=0.2, ...)."
        )
    return int(count * generator.validation_split)


class DirectoryIterator(Iterator):
    """Batches of augmented images read from `directory/<class>/<image>` files.

    Attributes after construction: `filenames` (relative to `directory`), `filepaths`,
    `classes` (int32 label per file), `class_indices` (name -> label), `num_classes`, `samples`.
    """

    allowed_class_modes = ("categorical", "binary", "sparse", "input", None)

    def __init__(
        self,
        directory: str | os.PathLike,
        image_data_generator: ImageDataGenerator | None,
        target_size: tuple[int, int] | None = (256, 256),
        color_mode: str = "rgb",
        classes: Sequence[str] | None = None,
        class_mode: str | None = "categorical",
        batch_size: int = 32,
        shuffle: bool = True,
        seed: int | None = None,
        data_format: str | None = None,
        save_to_dir: str | None = None,
        save_prefix: str = "",
        save_format: str = "png",
        follow_links: bool = False,
        subset: str | None = None,
        interpolation: str = "nearest",
        keep_aspect_ratio: bool = False,
        dtype: str | None = None,
    ) -> None:
        self.directory = check_directory(directory)
        channels = check_color_mode(color_mode)
        if class_mode not in self.allowed_class_modes:
            raise ValueError(
                f"Invalid class_mode {class_mode!r}; expected one of {self.allowed_class_modes}."
            )
        check_interpolation(interpolation)
        self.target_size = None if target_size is None else check_size(target_size, "target_size")
        self.color_mode = color_mode
        self.class_mode = class_mode
        self.data_format = config.standardize_data_format(data_format)
        self.dtype = np.dtype(dtype or config.floatx()).name
        self.image_data_generator = image_data_generator
        self.interpolation = interpolation
        self.keep_aspect_ratio = keep_aspect_ratio
        self.save_to_dir = save_to_dir
        self.save_prefix = save_prefix
        self.save_format = save_format
        self.subset = subset
        if subset is None:
            bounds = (0.0, 1.0)
        else:
            if image_data_generator is None:
                raise ValueError("`subset` needs an ImageDataGenerator with a validation_split.")
            split = image_data_generator.validation_split
            _split_index(1, image_data_generator, subset)
            bounds = (0.0, split) if subset == "validation" else (split, 1.0)

        class_names = class_subdirectories(self.directory, classes)
        self.class_indices = {name: index for index, name in enumerate(class_names)}
        self.num_classes = len(class_names)
        if class_mode == "binary" and self.num_classes != 2:
            raise ValueError(
                f"class_mode='binary' needs exactly 2 classes; found {self.num_classes}: "
                f"{class_names}. Use class_mode='categorical' or 'sparse'."
            )
        formats = tuple("." + extension for extension in self.white_list_formats)
        self.filenames: list[str] = []
        labels: list[int] = []
        total_found = 0
        for name in class_names:
            class_directory = os.path.join(self.directory, name)
            files = list_files(class_directory, formats, follow_links)
            total_found += len(files)
            # Each class is split separately so both subsets keep every class.
            start, stop = int(bounds[0] * len(files)), int(bounds[1] * len(files))
            for path in files[start:stop]:
                self.filenames.append(os.path.join(name, os.path.relpath(path, class_directory)))
                labels.append(self.class_indices[name])
        if total_found == 0:
            raise ValueError(
                f"No images found in the class subdirectories of {self.directory!r} "
                f"({', '.join(class_names)}). Allowed formats: {', '.join(self.white_list_formats)}."
            )
        if not self.filenames:
            raise ValueError(
                f"The {subset} subset of {self.directory!r} is empty ({total_found} images, "
                f"validation_split={image_data_generator.validation_split}). Add images or change "
                "validation_split."
            )
        self.classes = np.asarray(labels, dtype=np.int32)
        self.samples = len(self.filenames)
        self.filepaths = [os.path.join(self.directory, name) for name in self.filenames]
        print(f"Found {self.samples} images belonging to {self.num_classes} classes.")
        if self.target_size is None:
            check_same_image_size(self.filepaths, "target_size")
        size = self.target_size or _image_size(self.filepaths[0])
        self.image_shape = size + (channels,) if self.data_format == "channels_last" else (channels,) + size
        super().__init__(self.samples, batch_size, shuffle, seed)

    @property
    def labels(self) -> np.ndarray:
        return self.classes

    def _get_batches_of_transformed_samples(self, index_array: np.ndarray, rng: np.random.Generator) -> Any:
        batch_x = np.zeros((len(index_array),) + self.image_shape, dtype=self.dtype)
        generator = self.image_data_generator
        for i, j in enumerate(index_array):
            image = load_img(
                self.filepaths[j], color_mode=self.color_mode, target_size=self.target_size,
                interpolation=self.interpolation, keep_aspect_ratio=self.keep_aspect_ratio,
            )
            x = img_to_array(image, data_format=self.data_format, dtype=self.dtype)
            image.close()
            if generator is not None:
                x = generator.apply_transform(x, generator._random_transform(x.shape, rng))
                x = generator.standardize(x)
            batch_x[i] = x
        if self.save_to_dir:
            self._save_batch(batch_x, index_array, rng)
        if self.class_mode is None:
            return batch_x
        if self.class_mode == "input":
            return batch_x, batch_x.copy()
        if self.class_mode in ("binary", "sparse"):
            return batch_x, self.classes[index_array].astype(self.dtype)
        return batch_x, np.eye(self.num_classes, dtype=self.dtype)[self.classes[index_array]]


def _image_size(path: str) -> tuple[int, int]:
    with load_img(path) as image:
        return (image.height, image.width)
