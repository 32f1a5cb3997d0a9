"""DepthwiseConv1D, DepthwiseConv2D: each input channel convolved with its own
`depth_multiplier` filters (MobileNet, Xception)."""

from __future__ import annotations

from typing import Any

import torch

from lamina import constraints as constraints_module
from lamina import initializers as initializers_module
from lamina import regularizers as regularizers_module
from lamina._registry import register
from lamina.layers.convolutional._base import (
    _BaseConvolution,
    keras_to_torch_kernel,
    torch_to_keras_kernel,
)
from lamina.layers.core import check_positive_int, serialize_argument

Tensor = torch.Tensor


def depthwise_to_torch(value: Tensor, rank: int) -> Tensor:
    """Keras `(*k, in, depth_multiplier)` -> torch `(in * depth_multiplier, 1, *k)`; output
    channel `c * depth_multiplier + m` is input channel c's m-th filter, as in Keras."""
    *kernel, channels, multiplier = value.shape
    return keras_to_torch_kernel(value.reshape(*kernel, 1, channels * multiplier), rank)


def depthwise_to_keras(value: Tensor, rank: int, channels: int) -> Tensor:
    value = torch_to_keras_kernel(value, rank)
    return value.reshape(*value.shape[:-2], channels, value.shape[-1] // channels)


class _BaseDepthwiseConv(_BaseConvolution):
    """Depthwise convolution: a grouped convolution with one group per input channel.

    Args:
        kernel_size, strides, padding ('valid' or 'same'), data_format, dilation_rate: as in
            `Conv2D`.
        depth_multiplier: filters per input channel; output channels = `in * depth_multiplier`.

    Kernel: Keras shape `(*kernel_size, in_channels, depth_multiplier)`, weight name 'kernel'.
    """

    def __init__(
        self,
        kernel_size: Any,
        strides: Any = 1,
        padding: str = "valid",
        depth_multiplier: int = 1,
        data_format: str | None = None,
        dilation_rate: Any = 1,
        activation: Any = None,
        use_bias: bool = True,
        depthwise_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        depthwise_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        depthwise_constraint: Any = None,
        bias_constraint: Any = None,
        **kwargs: Any,
    ):
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate, activation,
                         use_bias, bias_initializer, bias_regularizer, activity_regularizer,
                         bias_constraint, **kwargs)
        self.depth_multiplier = check_positive_int("depth_multiplier", depth_multiplier)
        self.depthwise_initializer = initializers_module.get(
            "glorot_uniform" if depthwise_initializer is None else depthwise_initializer)
        self.depthwise_regularizer = regularizers_module.get(depthwise_regularizer)
        self.depthwise_constraint = constraints_module.get(depthwise_constraint)

    def _build_weights(self, in_channels: int) -> None:
        self.kernel = self._add_kernel(
            "kernel", self.kernel_size + (in_channels, self.depth_multiplier),
            self.depthwise_initializer, self.depthwise_regularizer, self.depthwise_constraint,
        )
        self.bias = self._add_bias(in_channels * self.depth_multiplier)
        self._prepare_convolution()

    def _forward(self, x: Tensor) -> Tensor:
        return self._convolve(x, self.kernel, self.bias, self._in_channels)

    def _output_channels(self, in_channels: Any) -> Any:
        return None if in_channels is None else in_channels * self.depth_multiplier

    def _from_keras_layout(self, name: str, value: Tensor) -> Tensor:
        return depthwise_to_torch(value, self.rank) if name == "kernel" else value

    def _to_keras_layout(self, name: str, value: Tensor) -> Tensor:
        return depthwise_to_keras(value, self.rank, self._in_channels) if name == "kernel" \
            else value

    def get_config(self):
        return {
            **super().get_config(),
            "depth_multiplier": self.depth_multiplier,
            "depthwise_initializer": serialize_argument(self.depthwise_initializer),
            "depthwise_regularizer": serialize_argument(self.depthwise_regularizer),
            "depthwise_constraint": serialize_argument(self.depthwise_constraint),
        }


@register("DepthwiseConv1D")
class DepthwiseConv1D(_BaseDepthwiseConv):
    """1-D depthwise convolution: `(batch, steps, channels) ->
    (batch, new_steps, channels * depth_multiplier)`.

    >>> DepthwiseConv1D(3, depth_multiplier=2)(torch.zeros(2, 10, 4)).shape
    torch.Size([2, 8, 8])
    """

    rank = 1


@register("DepthwiseConv2D")
class DepthwiseConv2D(_BaseDepthwiseConv):
    """2-D depthwise convolution: `(batch, h, w, channels) ->
    (batch, h', w', channels * depth_multiplier)`.

    >>> DepthwiseConv2D(3, padding="same")(torch.zeros(2, 8, 8, 12)).shape
    torch.Size([2, 8, 8, 12])
    """

    rank = 2
