"""Conv1D, Conv2D, Conv3D: `outputs = activation(conv(inputs, kernel) + bias)`."""

from __future__ import annotations

from typing import Any

import torch

from lamina import constraints as constraints_module
from lamina import initializers as initializers_module
from lamina import regularizers as regularizers_module
from lamina._registry import register
from lamina.errors import ShapeError
from lamina.layers.convolutional._base import (
    _BaseConvolution,
    keras_to_torch_kernel,
    torch_to_keras_kernel,
)
from lamina.layers.core import check_positive_int, serialize_argument

Tensor = torch.Tensor


class _BaseConv(_BaseConvolution):
    """N-D convolution (cross-correlation, as in Keras and torch) with a kernel of Keras shape
    `(*kernel_size, in_channels // groups, filters)`, stored as torch's
    `(filters, in_channels // groups, *kernel_size)`.

    Args:
        filters: number of output channels.
        kernel_size: size of the window, an int or one int per spatial axis.
        strides: step of the window; `strides > 1` excludes `dilation_rate > 1`.
        padding: 'valid' (none), 'same' (output size `ceil(input / strides)`; an odd total
            padding puts the extra step at the end, as Keras/TensorFlow do) or, for Conv1D,
            'causal' (`dilation_rate * (kernel_size - 1)` zeros at the start only: output step t
            sees no input after t).
        data_format: 'channels_last' (Keras's default, `(batch, *spatial, channels)`) or
            'channels_first' (torch's `(batch, channels, *spatial)`).
        dilation_rate: spacing between kernel taps (atrous convolution).
        groups: split the channels into this many groups convolved separately; input channels
            and `filters` must both be divisible by it.
        activation: applied to the output (None: linear).
        use_bias: add a bias per filter.
    """

    _allow_causal = True

    def __init__(
        self,
        filters: int,
        kernel_size: Any,
        strides: Any = 1,
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate: Any = 1,
        groups: int = 1,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        **kwargs: Any,
    ):
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate, activation,
                         use_bias, bias_initializer, bias_regularizer, activity_regularizer,
                         bias_constraint, **kwargs)
        self.filters = check_positive_int("filters", filters)
        self.groups = check_positive_int("groups", groups)
        if self.filters % self.groups:
            raise ValueError(
                f"{type(self).__name__}: `filters` must be divisible by `groups`. Received: "
                f"filters={self.filters}, groups={self.groups}."
            )
        self.kernel_initializer = initializers_module.get(
            "glorot_uniform" if kernel_initializer is None else kernel_initializer)
        self.kernel_regularizer = regularizers_module.get(kernel_regularizer)
        self.kernel_constraint = constraints_module.get(kernel_constraint)

    def _build_weights(self, in_channels: int) -> None:
        if in_channels % self.groups:
            raise ShapeError(
                f"Layer {self.name!r} ({type(self).__name__}): the number of input channels "
                f"({in_channels}) must be divisible by groups={self.groups}."
            )
        self.kernel = self._add_kernel(
            "kernel", self.kernel_size + (in_channels // self.groups, self.filters),
            self.kernel_initializer, self.kernel_regularizer, self.kernel_constraint,
        )
        self.bias = self._add_bias(self.filters)
        self._prepare_convolution()

    def _forward(self, x: Tensor) -> Tensor:
        return self._convolve(x, self.kernel, self.bias, self.groups)

    def _output_channels(self, in_channels: Any) -> Any:
        return self.filters

    def _from_keras_layout(self, name: str, value: Tensor) -> Tensor:
        return keras_to_torch_kernel(value, self.rank) if name == "kernel" else value

    def _to_keras_layout(self, name: str, value: Tensor) -> Tensor:
        return torch_to_keras_kernel(value, self.rank) if name == "kernel" else value

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "groups": self.groups,
            "kernel_initializer": serialize_argument(self.kernel_initializer),
            "kernel_regularizer": serialize_argument(self.kernel_regularizer),
            "kernel_constraint": serialize_argument(self.kernel_constraint),
        }


@register("Conv1D", "Convolution1D")
class Conv1D(_BaseConv):
    """1-D convolution over steps: `(batch, steps, channels) -> (batch, new_steps, filters)`.

    Arguments as `Conv2D`, each an int; `padding='causal'` pads the start only, so output step t
    depends on inputs up to t (WaveNet, temporal convolutional networks).

    >>> Conv1D(64, 3, activation="relu")(torch.zeros(4, 10, 128)).shape
    torch.Size([4, 8, 64])
    """

    rank = 1


@register("Conv2D", "Convolution2D")
class Conv2D(_BaseConv):
    """2-D convolution over images: `activation(conv2d(inputs, kernel) + bias)`.

    Input `(batch, height, width, channels)` (channels_last, Keras's default) or
    `(batch, channels, height, width)`; output `(batch, new_height, new_width, filters)`, where
    new size = `ceil(size / strides)` ('same') or `floor((size - dilation * (k - 1) - 1) /
    strides) + 1` ('valid'). Kernel: Keras shape `(kh, kw, in_channels // groups, filters)`.

    >>> Conv2D(32, (3, 3), activation="relu", padding="same")(torch.zeros(2, 28, 28, 1)).shape
    torch.Size([2, 28, 28, 32])
    """

    rank = 2


@register("Conv3D", "Convolution3D")
class Conv3D(_BaseConv):
    """3-D convolution over volumes or video:
    `(batch, depth, height, width, channels) -> (batch, d', h', w', filters)`.

    >>> Conv3D(8, 3)(torch.zeros(1, 5, 6, 7, 2)).shape
    torch.Size([1, 3, 4, 5, 8])
    """

    rank = 3
