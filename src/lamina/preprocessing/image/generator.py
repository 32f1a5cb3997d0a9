"""`ImageDataGenerator`: Keras's legacy real-time augmentation and normalization."""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import numpy as np

from lamina import config
from lamina._registry import register
from lamina.preprocessing.image.affine import (
    FILL_MODES,
    _check_non_negative,
    _check_pair,
    _check_shift_range,
    _check_zoom_range,
    _fresh_seed,
    _sample_shift,
    apply_affine_transform,
    apply_brightness_shift,
    apply_channel_shift,
    flip_axis,
)
from lamina.preprocessing.image.iterators import DirectoryIterator, NumpyArrayIterator


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
        shear_range: shear angles (degrees) are uniform in [-shear_range, shear_range].
        zoom_range: z (factors uniform in [1 - z, 1 + z]) or (low, high).
        channel_shift_range: channel shift intensities are uniform in [-range, range].
        fill_mode, cval: filling outside the input: 'constant' (cval), 'nearest', 'reflect', 'wrap'.
        rescale: multiply by this (after augmentation); None or 0 for none.
        preprocessing_function: applied to each image first in `standardize`, after augmentation.
        data_format: 'channels_last' (default) or 'channels_first'.
        validation_split: fraction of the data `subset='validation'` gets (the first part).
        interpolation_order: interpolation of the affine transforms, 0 (nearest) or 1 (bilinear).
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
        if fill_mode not in FILL_MODES:
            raise ValueError(f"`fill_mode` must be one of {FILL_MODES}. Received: fill_mode={fill_mode!r}.")
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
        if isinstance(interpolation_order, bool) or interpolation_order not in (0, 1):
            raise ValueError(
                "`interpolation_order` must be 0 (nearest) or 1 (bilinear); Keras's SciPy "
                "spline orders 2 to 5 are not offered. "
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
