"""Spatial helpers: ZeroPadding1D/2D/3D, Cropping1D/2D/3D, UpSampling1D/2D/3D and
SpatialDropout1D/2D/3D, with Keras's arguments and data formats."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from lamina import config
from lamina._registry import register
from lamina.errors import ShapeError
from lamina.layers.convolutional._base import (
    SpatialLayout,
    check_rank,
    normalize_tuple,
    rank_error,
)
from lamina.layers.core import check_rate
from lamina.layers.layer import Layer

Tensor = torch.Tensor


def normalize_pairs(value: Any, rank: int, name: str) -> tuple[tuple[int, int], ...]:
    """Keras's padding/cropping argument as one (before, after) pair per spatial axis.

    Accepts an int (all sides), `rank` ints (symmetric per axis) or `rank` pairs; for 1-D, one
    int or one pair.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        pairs = [(value, value)] * rank
    elif rank == 1:
        pairs = [normalize_tuple(value, 2, name, allow_zero=True)]
    elif isinstance(value, (list, tuple)) and len(value) == rank:
        pairs = [(v, v) if isinstance(v, int) and not isinstance(v, bool)
                 else normalize_tuple(v, 2, name, allow_zero=True) for v in value]
    else:
        raise ValueError(
            f"`{name}` must be an int, a tuple of {rank} ints, or a tuple of {rank} "
            f"(before, after) pairs of non-negative ints. Received: {name}={value!r}."
        )
    return tuple(normalize_tuple(p, 2, name, allow_zero=True) for p in pairs)


def _as_config(pairs: tuple[tuple[int, int], ...], rank: int) -> Any:
    # Keras keeps the 1-D argument as one flat (before, after) pair.
    return pairs[0] if rank == 1 else pairs


class _BaseZeroPadding(Layer):
    """Pads the spatial axes with zeros.

    Args:
        padding: an int (every side), one int per spatial axis (both sides of it), or one
            (before, after) pair per axis, e.g. `((top, bottom), (left, right))`.
        data_format: 'channels_last' (Keras's default) or 'channels_first'.
    """

    rank = 2

    def __init__(self, padding: Any = 1, data_format: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.padding = normalize_pairs(padding, self.rank, "padding")
        self.data_format = config.standardize_data_format(data_format)

    def build(self, input_shape):
        self._layout = SpatialLayout(self.rank, self.data_format)
        check_rank(self, input_shape, self._layout)
        pairs = list(self.padding)
        if self.data_format == "channels_last":
            pairs.append((0, 0))
        # F.pad lists the last axis first.
        self._pads = tuple(v for pair in reversed(pairs) for v in pair)

    def call(self, inputs):
        if inputs.ndim != self.rank + 2:
            raise rank_error(self, tuple(inputs.shape), self._layout)
        return F.pad(inputs, self._pads)

    def compute_output_shape(self, input_shape):
        layout = SpatialLayout(self.rank, self.data_format)
        check_rank(self, input_shape, layout)
        spatial = [None if n is None else n + before + after
                   for n, (before, after) in zip(layout.spatial(input_shape), self.padding)]
        return layout.shape(input_shape[0], spatial, layout.channels(input_shape))

    def get_config(self):
        return {**super().get_config(), "padding": _as_config(self.padding, self.rank),
                "data_format": self.data_format}


@register("ZeroPadding1D")
class ZeroPadding1D(_BaseZeroPadding):
    """Zeros before and after the steps: `(batch, steps, features) ->
    (batch, steps + before + after, features)`.

    >>> ZeroPadding1D(2)(torch.ones(1, 3, 4)).shape
    torch.Size([1, 7, 4])
    """

    rank = 1


@register("ZeroPadding2D")
class ZeroPadding2D(_BaseZeroPadding):
    """Zero rows and columns around an image.

    >>> ZeroPadding2D(((1, 2), (3, 4)))(torch.ones(1, 5, 5, 3)).shape
    torch.Size([1, 8, 12, 3])
    """

    rank = 2

    def __init__(self, padding: Any = (1, 1), data_format: str | None = None, **kwargs: Any):
        super().__init__(padding, data_format, **kwargs)


@register("ZeroPadding3D")
class ZeroPadding3D(_BaseZeroPadding):
    """Zeros around a volume.

    >>> ZeroPadding3D(1)(torch.ones(1, 2, 3, 4, 5)).shape
    torch.Size([1, 4, 5, 6, 5])
    """

    rank = 3

    def __init__(self, padding: Any = (1, 1, 1), data_format: str | None = None, **kwargs: Any):
        super().__init__(padding, data_format, **kwargs)


class _BaseCropping(Layer):
    """Removes steps/rows/columns from the ends of the spatial axes (a view, no copy).

    Args:
        cropping: an int (every side), one int per spatial axis, or one (before, after) pair
            per axis.
        data_format: 'channels_last' (Keras's default) or 'channels_first'.
    """

    rank = 2

    def __init__(self, cropping: Any = ((0, 0), (0, 0)), data_format: str | None = None,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.cropping = normalize_pairs(cropping, self.rank, "cropping")
        self.data_format = config.standardize_data_format(data_format)

    def build(self, input_shape):
        self._layout = SpatialLayout(self.rank, self.data_format)
        check_rank(self, input_shape, self._layout)
        self._check_size(tuple(input_shape))
        index: list[slice] = [slice(None)] * (self.rank + 2)
        for axis, (before, after) in zip(self._layout.spatial_axes, self.cropping):
            index[axis] = slice(before, -after if after else None)
        self._index = tuple(index)
        self._totals = tuple((axis, before + after) for axis, (before, after) in
                             zip(self._layout.spatial_axes, self.cropping))

    def _check_size(self, shape: tuple[Any, ...]) -> None:
        spatial = self._layout.spatial(shape)
        if any(n is not None and n <= before + after
               for n, (before, after) in zip(spatial, self.cropping)):
            raise ShapeError(
                f"Layer {self.name!r} ({type(self).__name__}): cropping "
                f"{_as_config(self.cropping, self.rank)} removes every element of a spatial "
                f"axis of an input of shape {shape} ({self._layout.describe()}). Each axis "
                "must be longer than its before + after cropping."
            )

    def call(self, inputs):
        shape = inputs.shape
        if len(shape) != self.rank + 2:
            raise rank_error(self, tuple(shape), self._layout)
        for axis, total in self._totals:
            if shape[axis] <= total:
                self._check_size(tuple(shape))
        return inputs[self._index]

    def compute_output_shape(self, input_shape):
        layout = SpatialLayout(self.rank, self.data_format)
        check_rank(self, input_shape, layout)
        spatial = [None if n is None else n - before - after
                   for n, (before, after) in zip(layout.spatial(input_shape), self.cropping)]
        return layout.shape(input_shape[0], spatial, layout.channels(input_shape))

    def get_config(self):
        return {**super().get_config(), "cropping": _as_config(self.cropping, self.rank),
                "data_format": self.data_format}


@register("Cropping1D")
class Cropping1D(_BaseCropping):
    """Crops steps: `(batch, steps, features) -> (batch, steps - before - after, features)`.

    >>> Cropping1D((1, 2))(torch.ones(1, 6, 4)).shape
    torch.Size([1, 3, 4])
    """

    rank = 1

    def __init__(self, cropping: Any = (1, 1), **kwargs: Any):
        super().__init__(cropping, "channels_last", **kwargs)

    def get_config(self):
        config_dict = super().get_config()
        del config_dict["data_format"]
        return config_dict


@register("Cropping2D")
class Cropping2D(_BaseCropping):
    """Crops rows and columns: `cropping=((top, bottom), (left, right))`.

    >>> Cropping2D(((2, 2), (4, 4)))(torch.ones(1, 28, 28, 3)).shape
    torch.Size([1, 24, 20, 3])
    """

    rank = 2


@register("Cropping3D")
class Cropping3D(_BaseCropping):
    """Crops the three spatial axes of a volume.

    >>> Cropping3D()(torch.ones(1, 4, 5, 6, 2)).shape
    torch.Size([1, 2, 3, 4, 2])
    """

    rank = 3

    def __init__(self, cropping: Any = ((1, 1), (1, 1), (1, 1)), data_format: str | None = None,
                 **kwargs: Any):
        super().__init__(cropping, data_format, **kwargs)


_INTERPOLATIONS = ("nearest", "bilinear")


class _BaseUpSampling(Layer):
    """Repeats each spatial element `size` times along each spatial axis ('nearest'), or, for
    2-D, interpolates bilinearly (TensorFlow's half-pixel resize, torch's
    `align_corners=False`).

    Args:
        size: upsampling factor, an int or one per spatial axis.
        data_format: 'channels_last' (Keras's default) or 'channels_first'.
    """

    rank = 2

    def __init__(self, size: Any = 2, data_format: str | None = None,
                 interpolation: str = "nearest", **kwargs: Any):
        super().__init__(**kwargs)
        self.size = normalize_tuple(size, self.rank, "size")
        self.data_format = config.standardize_data_format(data_format)
        mode = interpolation.lower() if isinstance(interpolation, str) else interpolation
        if mode not in _INTERPOLATIONS:
            raise ValueError(
                f"`interpolation` must be one of {', '.join(repr(m) for m in _INTERPOLATIONS)}. "
                f"Received: interpolation={interpolation!r}. (Keras's 'bicubic' and 'lanczos' "
                "resizes use TensorFlow's kernels, which torch does not reproduce exactly; use "
                "layers.Resizing for those.)"
            )
        self.interpolation = mode

    def build(self, input_shape):
        self._layout = SpatialLayout(self.rank, self.data_format)
        check_rank(self, input_shape, self._layout)
        self._scale = tuple(float(s) for s in self.size)

    def call(self, inputs):
        if inputs.ndim != self.rank + 2:
            raise rank_error(self, tuple(inputs.shape), self._layout)
        if self.rank == 1:
            axis = self._layout.spatial_axes[0]
            return inputs.repeat_interleave(self.size[0], dim=axis)
        x = self._layout.to_torch(inputs)
        if self.interpolation == "nearest":
            y = F.interpolate(x, scale_factor=self._scale, mode="nearest")
        else:
            y = F.interpolate(x, scale_factor=self._scale, mode="bilinear", align_corners=False)
        return self._layout.from_torch(y)

    def compute_output_shape(self, input_shape):
        layout = SpatialLayout(self.rank, self.data_format)
        check_rank(self, input_shape, layout)
        spatial = [None if n is None else n * s
                   for n, s in zip(layout.spatial(input_shape), self.size)]
        return layout.shape(input_shape[0], spatial, layout.channels(input_shape))

    def get_config(self):
        return {**super().get_config(), "size": self.size, "data_format": self.data_format,
                "interpolation": self.interpolation}


@register("UpSampling1D")
class UpSampling1D(_BaseUpSampling):
    """Repeats each step `size` times: `(batch, steps, features) -> (batch, steps * size,
    features)`.

    >>> UpSampling1D(3)(torch.ones(1, 2, 4)).shape
    torch.Size([1, 6, 4])
    """

    rank = 1

    def __init__(self, size: int = 2, **kwargs: Any):
        super().__init__(size, "channels_last", "nearest", **kwargs)

    def get_config(self):
        config_dict = super().get_config()
        del config_dict["data_format"], config_dict["interpolation"]
        config_dict["size"] = self.size[0]
        return config_dict


@register("UpSampling2D")
class UpSampling2D(_BaseUpSampling):
    """Upsamples rows and columns by `size`, repeating pixels ('nearest') or interpolating
    ('bilinear'): `(batch, h, w, c) -> (batch, h * size[0], w * size[1], c)`.

    >>> UpSampling2D((2, 2))(torch.ones(1, 7, 7, 3)).shape
    torch.Size([1, 14, 14, 3])
    """

    rank = 2

    def __init__(self, size: Any = (2, 2), data_format: str | None = None,
                 interpolation: str = "nearest", **kwargs: Any):
        super().__init__(size, data_format, interpolation, **kwargs)


@register("UpSampling3D")
class UpSampling3D(_BaseUpSampling):
    """Repeats the elements of a volume `size` times along each spatial axis.

    >>> UpSampling3D(2)(torch.ones(1, 2, 2, 2, 3)).shape
    torch.Size([1, 4, 4, 4, 3])
    """

    rank = 3

    def __init__(self, size: Any = (2, 2, 2), data_format: str | None = None, **kwargs: Any):
        super().__init__(size, data_format, "nearest", **kwargs)

    def get_config(self):
        config_dict = super().get_config()
        del config_dict["interpolation"]
        return config_dict


class _BaseSpatialDropout(Layer):
    """Dropout of whole channels: in training, each (sample, channel) is kept with probability
    `1 - rate` for every position and scaled by `1 / (1 - rate)`; neighbouring positions are
    correlated in images and sequences, so dropping single values regularizes little.

    Args:
        rate: fraction of channels to drop, in [0, 1).
        data_format: 'channels_last' (Keras's default) or 'channels_first' (2-D and 3-D).
        seed: makes the sequence of masks reproducible.
    """

    rank = 2

    def __init__(self, rate: float, data_format: str | None = None, seed: int | None = None,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.rate = check_rate("rate", rate)
        self.data_format = config.standardize_data_format(data_format)
        self.seed = seed
        self._generator: torch.Generator | None = None
        self.supports_masking = True

    def build(self, input_shape):
        self._layout = SpatialLayout(self.rank, self.data_format)
        check_rank(self, input_shape, self._layout)

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        if inputs.ndim != self.rank + 2:
            raise rank_error(self, tuple(inputs.shape), self._layout)
        channel_axis = self._layout.channel_axis
        # (batch, 1, ..., channels): one keep/drop draw per sample and channel.
        shape = [1] * inputs.ndim
        shape[0], shape[channel_axis] = inputs.shape[0], inputs.shape[channel_axis]
        keep = torch.empty(shape, dtype=inputs.dtype, device=inputs.device)
        keep.bernoulli_(1.0 - self.rate, generator=self._seeded_generator(inputs.device))
        return inputs * keep.div_(1.0 - self.rate)

    def _seeded_generator(self, device: torch.device) -> torch.Generator | None:
        if self.seed is None:
            return None
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device).manual_seed(self.seed)
        return self._generator

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "data_format": self.data_format,
                "seed": self.seed}


@register("SpatialDropout1D")
class SpatialDropout1D(_BaseSpatialDropout):
    """Drops whole feature channels of a sequence `(batch, steps, features)` in training.

    >>> SpatialDropout1D(0.5)(torch.ones(2, 3, 4)).shape
    torch.Size([2, 3, 4])
    """

    rank = 1

    def __init__(self, rate: float, seed: int | None = None, **kwargs: Any):
        super().__init__(rate, "channels_last", seed, **kwargs)

    def get_config(self):
        config_dict = super().get_config()
        del config_dict["data_format"]
        return config_dict


@register("SpatialDropout2D")
class SpatialDropout2D(_BaseSpatialDropout):
    """Drops whole feature maps of an image in training.

    >>> SpatialDropout2D(0.2)(torch.ones(2, 5, 5, 8)).shape
    torch.Size([2, 5, 5, 8])
    """

    rank = 2


@register("SpatialDropout3D")
class SpatialDropout3D(_BaseSpatialDropout):
    """Drops whole feature maps of a volume in training.

    >>> SpatialDropout3D(0.2)(torch.ones(1, 2, 3, 4, 5)).shape
    torch.Size([1, 2, 3, 4, 5])
    """

    rank = 3
