"""Image augmentation layers, active only in training: RandomFlip, RandomRotation,
RandomTranslation, RandomZoom, RandomContrast, RandomBrightness and RandomCrop.

A layer augments when called with `training=True`, inside a model in train mode (`fit`,
`model.train()`), or called on its own (or in a `Sequential` pipeline) with no `training`
argument, as Keras's random layers (`call(..., training=True)`) do in a data pipeline; in
`predict`/`evaluate`, with `training=False`, or after `.eval()` it passes images through
unchanged (RandomCrop then crops and resizes to its output size, as Keras). Each image of a batch draws its own parameters: from the layer's
own `torch.Generator` when `seed` is given, so a seeded layer repeats its sequence, or else from
torch's global generator, so `lamina.config.set_random_seed` makes runs repeatable.

The geometric layers build one affine matrix per image and resample with `F.affine_grid` and
`F.grid_sample`; Keras's fill modes map onto grid_sample's padding modes (see `_affine_sample`).
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from lamina._registry import register
from lamina.layers.preprocessing._image import (
    _BaseImageLayer,
    check_interpolation,
    check_positive_size,
    smart_resize,
)

Tensor = torch.Tensor

_FILL_MODES = ("reflect", "wrap", "constant", "nearest")
_AFFINE_INTERPOLATIONS = ("bilinear", "nearest")
# Keras fill mode -> grid_sample padding mode. With align_corners=False 'reflection' mirrors about
# the outer pixel edges, which is Keras's 'reflect' (d c b a | a b c d | d c b a).
_PADDING_MODES = {"reflect": "reflection", "nearest": "border", "constant": "zeros",
                  "wrap": "border"}
_FLIP_MODES = ("horizontal", "vertical", "horizontal_and_vertical")


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_seed(seed: Any) -> int | None:
    if seed is not None and (not isinstance(seed, numbers.Integral) or isinstance(seed, bool)
                             or seed < 0):
        raise ValueError(f"`seed` must be None or a non-negative integer. Received: seed={seed!r}.")
    return None if seed is None else int(seed)


def _factor_range(name: str, factor: Any, meaning: str) -> tuple[float, float]:
    """(lower, upper) of a Keras factor in [-1, 1]: a number f means (-|f|, |f|), a pair is
    sorted."""
    message = (f"`{name}` must be a number or a pair of numbers in [-1, 1] ({meaning}). "
               f"Received: {name}={factor!r}.")
    if isinstance(factor, (list, tuple)):
        if len(factor) != 2 or not all(_is_number(f) for f in factor):
            raise ValueError(message)
        lower, upper = sorted(float(f) for f in factor)
    elif _is_number(factor):
        lower, upper = -abs(float(factor)), abs(float(factor))
    else:
        raise ValueError(message)
    if lower < -1.0 or upper > 1.0:
        raise ValueError(message)
    return lower, upper


def _check_value_range(value_range: Any) -> list[float]:
    if (not isinstance(value_range, (list, tuple)) or len(value_range) != 2
            or not all(_is_number(v) for v in value_range) or value_range[0] >= value_range[1]):
        raise ValueError(
            "`value_range` must be a pair [low, high] with low < high, the range of the input "
            f"pixel values (e.g. (0, 255) or (0, 1)). Received: value_range={value_range!r}."
        )
    return [value_range[0], value_range[1]]


def _affine_sample(images: Tensor, theta: Tensor, interpolation: str, fill_mode: str,
                   fill_value: float) -> Tensor:
    """Resample each NCHW image at `theta @ (x, y, 1)` of every output pixel.

    Coordinates are normalized with align_corners=False (-1 and 1 are the outer pixel edges).
    Points outside the image are filled per Keras's `fill_mode`.
    """
    height, width = images.shape[-2:]
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    if fill_mode == "wrap":
        # Wrap the coordinates into the image, then sample a copy circularly padded by one pixel
        # so that bilinear weights reach across the seam to the opposite edge.
        grid = torch.remainder(grid + 1.0, 2.0) - 1.0
        grid = grid * grid.new_tensor([width / (width + 2), height / (height + 2)])
        images = F.pad(images, (1, 1, 1, 1), mode="circular")
    elif fill_mode == "constant" and fill_value != 0.0:
        # grid_sample pads with zeros: shifting the image by the fill value pads with it instead.
        shifted = F.grid_sample(images - fill_value, grid, mode=interpolation,
                                padding_mode="zeros", align_corners=False)
        return shifted + fill_value
    return F.grid_sample(images, grid, mode=interpolation, padding_mode=_PADDING_MODES[fill_mode],
                         align_corners=False)


class _BaseImageAugmentation(_BaseImageLayer):
    """Base of the random image layers: a seeded generator per device, the identity in inference,
    and `_augment(images)` on a float NCHW batch in training."""

    def __init__(self, seed: int | None = None, data_format: str | None = None, **kwargs: Any):
        super().__init__(data_format=data_format, **kwargs)
        self.seed = _check_seed(seed)
        self._generators: dict[torch.device, torch.Generator] = {}

    def call(self, inputs, training=True):
        images, single = self._batch(inputs)
        if training:
            images = self._augment(images)
        return self._unbatch(images, single)

    def _augment(self, images: Tensor) -> Tensor:
        raise NotImplementedError

    def _generator(self, device: torch.device) -> torch.Generator | None:
        if self.seed is None:
            return None
        generator = self._generators.get(device)
        if generator is None:
            generator = torch.Generator(device=device)
            generator.manual_seed(self.seed)
            self._generators[device] = generator
        return generator

    def _uniform(self, count: int, lower: float, upper: float, like: Tensor) -> Tensor:
        """`count` draws from U[lower, upper), on `like`'s device and in its dtype."""
        sample = torch.rand(count, generator=self._generator(like.device), device=like.device)
        return (sample * (upper - lower) + lower).to(like.dtype)

    def compute_output_shape(self, input_shape):
        self._check_rank(len(input_shape), input_shape)
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


class _BaseAffineAugmentation(_BaseImageAugmentation):
    """Base of the geometric layers: `_theta(images)` gives one (2, 3) matrix per image, mapping
    normalized output coordinates to the input coordinates sampled there."""

    def __init__(self, fill_mode: str = "reflect", interpolation: str = "bilinear",
                 seed: int | None = None, fill_value: float = 0.0,
                 data_format: str | None = None, **kwargs: Any):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        if fill_mode not in _FILL_MODES:
            raise ValueError(
                f"`fill_mode` must be one of {', '.join(repr(m) for m in _FILL_MODES)}. "
                f"Received: fill_mode={fill_mode!r}."
            )
        if not _is_number(fill_value):
            raise ValueError(f"`fill_value` must be a number. Received: fill_value={fill_value!r}.")
        self.fill_mode = fill_mode
        self.interpolation = check_interpolation(interpolation, _AFFINE_INTERPOLATIONS)
        self.fill_value = float(fill_value)

    def _augment(self, images):
        return _affine_sample(images, self._theta(images), self.interpolation, self.fill_mode,
                              self.fill_value)

    def _theta(self, images: Tensor) -> Tensor:
        raise NotImplementedError

    def get_config(self):
        return {**super().get_config(), "fill_mode": self.fill_mode,
                "interpolation": self.interpolation, "fill_value": self.fill_value}


@register("RandomFlip")
class RandomFlip(_BaseImageAugmentation):
    """Flips each image left-right and/or top-bottom with probability 1/2, in training.

    Args:
        mode: 'horizontal' (left-right), 'vertical' (top-bottom) or 'horizontal_and_vertical'
            (each direction drawn independently, as tf.keras; Keras 3 draws one coin for both).
        seed: makes the sequence of flips repeatable.
        data_format: 'channels_last' (default) or 'channels_first'.

    Input and output shape: `(N, H, W, C)` or `(H, W, C)` (channels_last).
    """

    def __init__(self, mode: str = "horizontal_and_vertical", seed: int | None = None,
                 data_format: str | None = None, **kwargs: Any):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        if mode not in _FLIP_MODES:
            raise ValueError(
                f"`mode` must be one of {', '.join(repr(m) for m in _FLIP_MODES)}. "
                f"Received: mode={mode!r}."
            )
        self.mode = mode
        self._horizontal = mode != "vertical"
        self._vertical = mode != "horizontal"

    def _augment(self, images):
        count = images.shape[0]
        if self._horizontal:
            flip = self._uniform(count, 0.0, 1.0, images) < 0.5
            images = torch.where(flip.view(count, 1, 1, 1), images.flip(-1), images)
        if self._vertical:
            flip = self._uniform(count, 0.0, 1.0, images) < 0.5
            images = torch.where(flip.view(count, 1, 1, 1), images.flip(-2), images)
        return images

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@register("RandomRotation")
class RandomRotation(_BaseAffineAugmentation):
    """Rotates each image about its centre by a random angle `factor * 2*pi`, in training.

    Args:
        factor: a fraction of a full turn in [-1, 1], or a pair (lower, upper). A number f draws
            from [-f, f]; positive angles rotate counter-clockwise (`factor=(0.25, 0.25)` turns
            every image by exactly 90 degrees, as `np.rot90`).
        fill_mode: how points outside the input are filled: 'reflect' (d c b a | a b c d),
            'wrap' (a b c d | a b c d), 'constant' (`fill_value`) or 'nearest' (a a | a b c d).
        interpolation: 'bilinear' or 'nearest'.
        seed: makes the sequence of angles repeatable.
        fill_value: the value outside the input when `fill_mode='constant'`.
        data_format: 'channels_last' (default) or 'channels_first'.

    Input and output shape: `(N, H, W, C)` or `(H, W, C)` (channels_last).
    """

    def __init__(self, factor: float | Sequence[float], fill_mode: str = "reflect",
                 interpolation: str = "bilinear", seed: int | None = None,
                 fill_value: float = 0.0, data_format: str | None = None, **kwargs: Any):
        super().__init__(fill_mode=fill_mode, interpolation=interpolation, seed=seed,
                         fill_value=fill_value, data_format=data_format, **kwargs)
        self._lower, self._upper = _factor_range("factor", factor, "a fraction of a full turn")
        self.factor = list(factor) if isinstance(factor, (list, tuple)) else factor

    def _theta(self, images):
        count, _, height, width = images.shape
        angle = self._uniform(count, self._lower, self._upper, images) * (2.0 * math.pi)
        cos, sin = angle.cos(), angle.sin()
        # In pixels about the centre (y pointing down), output (x, y) samples the input at
        # (cos x - sin y, sin x + cos y). Normalized coordinates scale x by 2/W and y by 2/H,
        # hence the aspect terms off the diagonal.
        theta = images.new_zeros(count, 2, 3)
        theta[:, 0, 0] = cos
        theta[:, 0, 1] = -sin * (height / width)
        theta[:, 1, 0] = sin * (width / height)
        theta[:, 1, 1] = cos
        return theta

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


@register("RandomTranslation")
class RandomTranslation(_BaseAffineAugmentation):
    """Shifts each image by a random fraction of its height and width, in training.

    Args:
        height_factor: fraction of the height in [-1, 1], or a pair (lower, upper); a number f
            draws from [-f, f]. Positive values shift the image down.
        width_factor: the same for the width; positive values shift the image right.
        fill_mode, interpolation, seed, fill_value, data_format: as `RandomRotation`.

    Input and output shape: `(N, H, W, C)` or `(H, W, C)` (channels_last).
    """

    def __init__(self, height_factor: float | Sequence[float],
                 width_factor: float | Sequence[float], fill_mode: str = "reflect",
                 interpolation: str = "bilinear", seed: int | None = None,
                 fill_value: float = 0.0,
                 data_format: str | None = None, **kwargs: Any):
        super().__init__(fill_mode=fill_mode, interpolation=interpolation, seed=seed,
                         fill_value=fill_value, data_format=data_format, **kwargs)
        self._height_range = _factor_range("height_factor", height_factor,
                                           "a fraction of the height")
        self._width_range = _factor_range("width_factor", width_factor,
                                          "a fraction of the width")
        self.height_factor = list(height_factor) if isinstance(height_factor, (list, tuple)) \
            else height_factor
        self.width_factor = list(width_factor) if isinstance(width_factor, (list, tuple)) \
            else width_factor

    def _theta(self, images):
        count = images.shape[0]
        # A shift of f * H pixels is 2 * f in normalized coordinates; output (x, y) samples the
        # input at (x - dx, y - dy).
        theta = images.new_zeros(count, 2, 3)
        theta[:, 0, 0] = 1.0
        theta[:, 1, 1] = 1.0
        theta[:, 0, 2] = -2.0 * self._uniform(count, *self._width_range, images)
        theta[:, 1, 2] = -2.0 * self._uniform(count, *self._height_range, images)
        return theta

    def get_config(self):
        return {**super().get_config(), "height_factor": self.height_factor,
                "width_factor": self.width_factor}


@register("RandomZoom")
class RandomZoom(_BaseAffineAugmentation):
    """Zooms each image about its centre by a random factor, in training.

    Args:
        height_factor: in [-1, 1], or a pair (lower, upper); a number f draws from [-f, f]. The
            output shows `1 + factor` times the input's height: positive values zoom out,
            negative values zoom in (`(-0.3, -0.2)` zooms in by 20% to 30%).
        width_factor: the same for the width; None (default) keeps the aspect ratio by using the
            height's zoom.
        fill_mode, interpolation, seed, fill_value, data_format: as `RandomRotation`.

    Input and output shape: `(N, H, W, C)` or `(H, W, C)` (channels_last).
    """

    def __init__(self, height_factor: float | Sequence[float],
                 width_factor: float | Sequence[float] | None = None, fill_mode: str = "reflect",
                 interpolation: str = "bilinear", seed: int | None = None,
                 fill_value: float = 0.0, data_format: str | None = None, **kwargs: Any):
        super().__init__(fill_mode=fill_mode, interpolation=interpolation, seed=seed,
                         fill_value=fill_value, data_format=data_format, **kwargs)
        self._height_range = _factor_range("height_factor", height_factor, "a relative zoom")
        self._width_range = None if width_factor is None else \
            _factor_range("width_factor", width_factor, "a relative zoom")
        self.height_factor = list(height_factor) if isinstance(height_factor, (list, tuple)) \
            else height_factor
        self.width_factor = list(width_factor) if isinstance(width_factor, (list, tuple)) \
            else width_factor

    def _theta(self, images):
        count = images.shape[0]
        height_zoom = 1.0 + self._uniform(count, *self._height_range, images)
        width_zoom = height_zoom if self._width_range is None else \
            1.0 + self._uniform(count, *self._width_range, images)
        # About the centre, output (x, y) samples the input at (zx * x, zy * y).
        theta = images.new_zeros(count, 2, 3)
        theta[:, 0, 0] = width_zoom
        theta[:, 1, 1] = height_zoom
        return theta

    def get_config(self):
        return {**super().get_config(), "height_factor": self.height_factor,
                "width_factor": self.width_factor}


@register("RandomContrast")
class RandomContrast(_BaseImageAugmentation):
    """Scales each image's deviation from its per-channel mean by a random factor, in training:
    `(x - mean) * c + mean`, clipped to `value_range`.

    Args:
        factor: a number f in [0, 1] draws c from [1 - f, 1 + f]; a pair (lower, upper) from
            [1 - lower, 1 + upper].
        value_range: the range of the pixel values, (0, 255) or (0, 1); outputs are clipped to it.
        seed: makes the sequence of factors repeatable.

    Input and output shape: `(N, H, W, C)` or `(H, W, C)` (channels_last).
    """

    def __init__(self, factor: float | Sequence[float], value_range: Sequence[float] = (0, 255),
                 seed: int | None = None, data_format: str | None = None, **kwargs: Any):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        pair = factor if isinstance(factor, (list, tuple)) else (factor, factor)
        if len(pair) != 2 or not all(_is_number(f) and 0.0 <= f <= 1.0 for f in pair):
            raise ValueError(
                "`factor` must be a number or a pair (lower, upper) of numbers in [0, 1]; the "
                "contrast factor is drawn from [1 - lower, 1 + upper]. "
                f"Received: factor={factor!r}."
            )
        self._range = (1.0 - float(pair[0]), 1.0 + float(pair[1]))
        self.factor = list(factor) if isinstance(factor, (list, tuple)) else factor
        self.value_range = _check_value_range(value_range)

    def _augment(self, images):
        count = images.shape[0]
        factor = self._uniform(count, *self._range, images).view(count, 1, 1, 1)
        mean = images.mean(dim=(-2, -1), keepdim=True)
        return ((images - mean) * factor + mean).clamp(*self.value_range)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "value_range": self.value_range}


@register("RandomBrightness")
class RandomBrightness(_BaseImageAugmentation):
    """Adds a random offset `delta * (high - low)` to each image, in training, clipped to
    `value_range = (low, high)`.

    Args:
        factor: a number f in [-1, 1] draws delta from [-f, f]; a pair (lower, upper) from it.
            -1 turns an image black, 1 white.
        value_range: the range of the pixel values, (0, 255) or (0, 1).
        seed: makes the sequence of offsets repeatable.

    Input and output shape: `(N, H, W, C)` or `(H, W, C)` (channels_last).
    """

    def __init__(self, factor: float | Sequence[float], value_range: Sequence[float] = (0, 255),
                 seed: int | None = None, data_format: str | None = None, **kwargs: Any):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self._range = _factor_range("factor", factor, "a fraction of the value range")
        self.factor = list(factor) if isinstance(factor, (list, tuple)) else factor
        self.value_range = _check_value_range(value_range)

    def _augment(self, images):
        count = images.shape[0]
        low, high = self.value_range
        delta = self._uniform(count, *self._range, images).view(count, 1, 1, 1) * (high - low)
        return (images + delta).clamp(low, high)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "value_range": self.value_range}


@register("RandomCrop")
class RandomCrop(_BaseImageAugmentation):
    """Crops a random `(height, width)` window of each image in training.

    In inference, and in training for an image smaller than the target, the image is cropped to
    its largest centred window of the target aspect ratio and resized to `(height, width)`, as
    Keras documents (a plain centre crop when the aspect ratios already agree and the image has
    the target size).

    Args:
        height, width: the output size in pixels.
        seed: makes the sequence of crop positions repeatable.
        data_format: 'channels_last' (default) or 'channels_first'.

    Input shape: `(N, H, W, C)` or `(H, W, C)`. Output shape: `(N, height, width, C)` or
    `(height, width, C)` (channels_last).
    """

    def __init__(self, height: int, width: int, seed: int | None = None,
                 data_format: str | None = None, **kwargs: Any):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.height = check_positive_size("height", height)
        self.width = check_positive_size("width", width)

    def call(self, inputs, training=True):
        images, single = self._batch(inputs)
        height, width = images.shape[-2:]
        if training and height >= self.height and width >= self.width:
            outputs = self._random_crop(images)
        else:
            outputs = smart_resize(images, (self.height, self.width))
        return self._unbatch(outputs, single)

    def _random_crop(self, images: Tensor) -> Tensor:
        count, _, height, width = images.shape
        device = images.device
        generator = self._generator(device)
        top = torch.randint(0, height - self.height + 1, (count,), generator=generator,
                            device=device)
        left = torch.randint(0, width - self.width + 1, (count,), generator=generator,
                             device=device)
        rows = top[:, None, None] + torch.arange(self.height, device=device)[None, :, None]
        columns = left[:, None, None] + torch.arange(self.width, device=device)[None, None, :]
        batch = torch.arange(count, device=device)[:, None, None]
        # One gather for the whole batch: (N, H, W, C)[batch, rows, columns] -> (N, h, w, C).
        crops = images.permute(0, 2, 3, 1)[batch, rows, columns]
        return crops.permute(0, 3, 1, 2)

    def compute_output_shape(self, input_shape):
        return self._output_shape_for(input_shape, self.height, self.width)

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width}


__all__ = ["RandomBrightness", "RandomContrast", "RandomCrop", "RandomFlip", "RandomRotation",
           "RandomTranslation", "RandomZoom"]
