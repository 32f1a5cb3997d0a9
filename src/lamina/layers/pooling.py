"""Pooling layers: MaxPooling1D/2D/3D, AveragePooling1D/2D/3D, and their global versions,
under Keras's names and short aliases (MaxPool2D, AvgPool2D, GlobalAvgPool2D, ...).

'same' padding is Keras's (TensorFlow's): padded positions never win a max and are never
counted in an average, which torch gives by `count_include_pad=False` and `ceil_mode` without
padding the input (see `PoolPadding`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from lamina import config
from lamina._registry import register
from lamina.errors import ShapeError
from lamina.layers.convolutional._base import (
    PoolPadding,
    SpatialLayout,
    check_rank,
    check_spatial_fits,
    conv_output_length,
    lift,
    normalize_padding,
    normalize_tuple,
    rank_error,
)
from lamina.layers.layer import Layer

Tensor = torch.Tensor

# The aten ops behind F.max_pool2d (a dispatch closure that pickle cannot store).
_MAX_POOL = {2: torch.max_pool2d, 3: torch.max_pool3d}
_AVG_POOL = {2: F.avg_pool2d, 3: F.avg_pool3d}


class _BasePooling(Layer):
    """Pooling over windows of `pool_size`, moved by `strides`.

    Args:
        pool_size: window size, an int or one per spatial axis.
        strides: window step (None: `pool_size`, non-overlapping windows).
        padding: 'valid' (windows inside the input; output `floor((n - pool) / strides) + 1`)
            or 'same' (output `ceil(n / strides)`; padding is ignored by max and average).
        data_format: 'channels_last' (Keras's default) or 'channels_first'.
    """

    rank = 2
    _average = False

    def __init__(self, pool_size: Any = 2, strides: Any = None, padding: str = "valid",
                 data_format: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.pool_size = normalize_tuple(pool_size, self.rank, "pool_size")
        self.strides = self.pool_size if strides is None else normalize_tuple(
            strides, self.rank, "strides")
        self.padding = normalize_padding(padding)
        self.data_format = config.standardize_data_format(data_format)

    def build(self, input_shape):
        self._layout = SpatialLayout(self.rank, self.data_format)
        check_rank(self, input_shape, self._layout)
        check_spatial_fits(self, input_shape, self._layout, self.pool_size, self.padding,
                           "pool_size")
        self._torch_pool_size = lift(self.pool_size, self.rank, 1)
        self._torch_strides = lift(self.strides, self.rank, 1)
        self._plan = PoolPadding(self.padding, self._torch_pool_size, self._torch_strides)
        ndim = len(self._torch_pool_size)
        self._pool = _AVG_POOL[ndim] if self._average else _MAX_POOL[ndim]

    def call(self, inputs):
        try:
            x = self._layout.to_torch(inputs)
            plan = self._plan
            if not plan.static:
                plan.resolve(x)
            if self._average:
                y = self._pool(x, self._torch_pool_size, self._torch_strides, plan.symmetric,
                               plan.ceil_mode, False)
            else:
                y = self._pool(x, self._torch_pool_size, self._torch_strides, plan.symmetric,
                               1, plan.ceil_mode)
        except RuntimeError as error:
            explained = self._explain(tuple(inputs.shape))
            if explained is None:
                raise
            raise explained from error
        if plan.crop is not None:
            y = y[plan.crop]
        return self._layout.from_torch(y)

    def _explain(self, shape: tuple[int, ...]) -> ShapeError | None:
        if len(shape) != self.rank + 2:
            return rank_error(self, shape, self._layout)
        try:
            check_spatial_fits(self, shape, self._layout, self.pool_size, self.padding,
                               "pool_size")
        except ShapeError as error:
            return error
        return None

    def compute_output_shape(self, input_shape):
        layout = SpatialLayout(self.rank, self.data_format)
        check_rank(self, input_shape, layout)
        spatial = [conv_output_length(n, k, s, 1, self.padding) for n, k, s in
                   zip(layout.spatial(input_shape), self.pool_size, self.strides)]
        return layout.shape(input_shape[0], spatial, layout.channels(input_shape))

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "strides": self.strides,
                "padding": self.padding, "data_format": self.data_format}


@register("MaxPooling1D", "MaxPool1D")
class MaxPooling1D(_BasePooling):
    """Max over windows of steps: `out[t] = max(x[t * s : t * s + pool_size])`.

    >>> MaxPooling1D(2)(torch.zeros(2, 10, 3)).shape
    torch.Size([2, 5, 3])
    """

    rank = 1


@register("MaxPooling2D", "MaxPool2D")
class MaxPooling2D(_BasePooling):
    """Max over `pool_size` windows of an image: `(batch, h, w, c) -> (batch, h', w', c)`.

    >>> MaxPooling2D((2, 2))(torch.zeros(2, 28, 28, 32)).shape
    torch.Size([2, 14, 14, 32])
    """

    rank = 2


@register("MaxPooling3D", "MaxPool3D")
class MaxPooling3D(_BasePooling):
    """Max over `pool_size` windows of a volume.

    >>> MaxPooling3D()(torch.zeros(1, 4, 4, 4, 2)).shape
    torch.Size([1, 2, 2, 2, 2])
    """

    rank = 3


@register("AveragePooling1D", "AvgPool1D")
class AveragePooling1D(_BasePooling):
    """Mean over windows of steps; with padding='same', padded steps are not counted.

    >>> AveragePooling1D(2)(torch.zeros(2, 10, 3)).shape
    torch.Size([2, 5, 3])
    """

    rank = 1
    _average = True


@register("AveragePooling2D", "AvgPool2D")
class AveragePooling2D(_BasePooling):
    """Mean over `pool_size` windows of an image (LeNet's subsampling); with padding='same',
    padded pixels are not counted.

    >>> AveragePooling2D(2)(torch.zeros(2, 28, 28, 6)).shape
    torch.Size([2, 14, 14, 6])
    """

    rank = 2
    _average = True


@register("AveragePooling3D", "AvgPool3D")
class AveragePooling3D(_BasePooling):
    """Mean over `pool_size` windows of a volume.

    >>> AveragePooling3D()(torch.zeros(1, 4, 4, 4, 2)).shape
    torch.Size([1, 2, 2, 2, 2])
    """

    rank = 3
    _average = True


class _BaseGlobalPooling(Layer):
    """Reduces all spatial axes: `(batch, *spatial, channels) -> (batch, channels)`.

    Args:
        data_format: 'channels_last' (Keras's default) or 'channels_first'.
        keepdims: keep the spatial axes with size 1, e.g. `(batch, 1, 1, channels)`.
    """

    rank = 2
    _average = True

    def __init__(self, data_format: str | None = None, keepdims: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.data_format = config.standardize_data_format(data_format)
        self.keepdims = bool(keepdims)

    def build(self, input_shape):
        self._layout = SpatialLayout(self.rank, self.data_format)
        check_rank(self, input_shape, self._layout)
        self._axes = self._layout.spatial_axes

    def call(self, inputs):
        if inputs.ndim != self.rank + 2:
            raise rank_error(self, tuple(inputs.shape), self._layout)
        if self._average:
            return inputs.mean(dim=self._axes, keepdim=self.keepdims)
        return inputs.amax(dim=self._axes, keepdim=self.keepdims)

    def compute_output_shape(self, input_shape):
        layout = SpatialLayout(self.rank, self.data_format)
        check_rank(self, input_shape, layout)
        if self.keepdims:
            return layout.shape(input_shape[0], (1,) * self.rank, layout.channels(input_shape))
        return (input_shape[0], layout.channels(input_shape))

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format,
                "keepdims": self.keepdims}


def _masked_steps(layer: _BaseGlobalPooling, inputs: Tensor, mask: Tensor) -> Tensor:
    """The (batch, steps) mask shaped to broadcast against the input, as a bool tensor."""
    if inputs.ndim != 3:
        raise rank_error(layer, tuple(inputs.shape), layer._layout)
    mask = mask.to(torch.bool)
    return mask.unsqueeze(-1) if layer.data_format == "channels_last" else mask.unsqueeze(1)


@register("GlobalAveragePooling1D", "GlobalAvgPool1D")
class GlobalAveragePooling1D(_BaseGlobalPooling):
    """Mean over steps: `(batch, steps, features) -> (batch, features)`.

    With a mask (from `Embedding(mask_zero=True)` or `Masking`), only real steps are averaged:
    `sum(mask * x) / sum(mask)`; a sequence with no real step gives zeros, not NaN.

    >>> GlobalAveragePooling1D()(torch.ones(2, 3, 4)).shape
    torch.Size([2, 4])
    """

    rank = 1

    def __init__(self, data_format: str | None = None, keepdims: bool = False, **kwargs: Any):
        super().__init__(data_format, keepdims, **kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            return super().call(inputs)
        keep = _masked_steps(self, inputs, mask)
        axis = self._axes
        total = torch.where(keep, inputs, 0).sum(dim=axis, keepdim=self.keepdims)
        count = keep.sum(dim=axis, keepdim=self.keepdims).clamp_min(1)
        return total / count.to(inputs.dtype)

    def compute_mask(self, inputs, mask=None):
        return None


@register("GlobalAveragePooling2D", "GlobalAvgPool2D")
class GlobalAveragePooling2D(_BaseGlobalPooling):
    """Mean over height and width: `(batch, h, w, c) -> (batch, c)`; the usual head of a
    modern CNN instead of Flatten.

    >>> GlobalAveragePooling2D()(torch.ones(2, 7, 7, 512)).shape
    torch.Size([2, 512])
    """

    rank = 2


@register("GlobalAveragePooling3D", "GlobalAvgPool3D")
class GlobalAveragePooling3D(_BaseGlobalPooling):
    """Mean over depth, height and width: `(batch, d, h, w, c) -> (batch, c)`.

    >>> GlobalAveragePooling3D()(torch.ones(2, 3, 4, 5, 6)).shape
    torch.Size([2, 6])
    """

    rank = 3


@register("GlobalMaxPooling1D", "GlobalMaxPool1D")
class GlobalMaxPooling1D(_BaseGlobalPooling):
    """Max over steps: `(batch, steps, features) -> (batch, features)`.

    With a mask, only real steps compete; a sequence with no real step gives zeros.

    >>> GlobalMaxPooling1D()(torch.ones(2, 3, 4)).shape
    torch.Size([2, 4])
    """

    rank = 1
    _average = False

    def __init__(self, data_format: str | None = None, keepdims: bool = False, **kwargs: Any):
        super().__init__(data_format, keepdims, **kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            return super().call(inputs)
        keep = _masked_steps(self, inputs, mask)
        axis = self._axes
        best = inputs.masked_fill(~keep, float("-inf")).amax(dim=axis, keepdim=self.keepdims)
        return torch.where(keep.any(dim=axis, keepdim=self.keepdims), best, 0)

    def compute_mask(self, inputs, mask=None):
        return None


@register("GlobalMaxPooling2D", "GlobalMaxPool2D")
class GlobalMaxPooling2D(_BaseGlobalPooling):
    """Max over height and width: `(batch, h, w, c) -> (batch, c)`.

    >>> GlobalMaxPooling2D()(torch.ones(2, 7, 7, 8)).shape
    torch.Size([2, 8])
    """

    rank = 2
    _average = False


@register("GlobalMaxPooling3D", "GlobalMaxPool3D")
class GlobalMaxPooling3D(_BaseGlobalPooling):
    """Max over depth, height and width: `(batch, d, h, w, c) -> (batch, c)`.

    >>> GlobalMaxPooling3D()(torch.ones(2, 3, 4, 5, 6)).shape
    torch.Size([2, 6])
    """

    rank = 3
    _average = False


# Keras's short names for the same classes.
MaxPool1D, MaxPool2D, MaxPool3D = MaxPooling1D, MaxPooling2D, MaxPooling3D
AvgPool1D, AvgPool2D, AvgPool3D = AveragePooling1D, AveragePooling2D, AveragePooling3D
GlobalAvgPool1D, GlobalAvgPool2D, GlobalAvgPool3D = (
    GlobalAveragePooling1D, GlobalAveragePooling2D, GlobalAveragePooling3D)
GlobalMaxPool1D, GlobalMaxPool2D, GlobalMaxPool3D = (
    GlobalMaxPooling1D, GlobalMaxPooling2D, GlobalMaxPooling3D)
