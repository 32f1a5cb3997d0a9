"""SeparableConv1D, SeparableConv2D: a depthwise convolution followed by a 1x1 (pointwise)
convolution that mixes channels; far fewer weights than a full convolution (Xception)."""

from __future__ import annotations

from typing import Any

import torch

from lamina import constraints as constraints_module
from lamina import initializers as initializers_module
from lamina import regularizers as regularizers_module
from lamina._registry import register
from lamina.layers.convolutional._base import (
    TORCH_CONV,
    _BaseConvolution,
    keras_to_torch_kernel,
    torch_to_keras_kernel,
)
from lamina.layers.convolutional.depthwise_conv import depthwise_to_keras, depthwise_to_torch
from lamina.layers.core import check_positive_int, serialize_argument

Tensor = torch.Tensor


class _BaseSeparableConv(_BaseConvolution):
    """Depthwise-separable convolution:
    `activation(pointwise(depthwise(inputs)) + bias)`.

    Args:
        filters: output channels of the pointwise convolution.
        kernel_size, strides, padding ('valid' or 'same'), data_format, dilation_rate: those of
            the depthwise convolution.
        depth_multiplier: depthwise filters per input channel.

    Weights (Keras shapes and order): depthwise_kernel `(*kernel_size, in, depth_multiplier)`,
    pointwise_kernel `(*(1,) * rank, in * depth_multiplier, filters)`, bias `(filters,)`.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: Any,
        strides: Any = 1,
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate: Any = 1,
        depth_multiplier: int = 1,
        activation: Any = None,
        use_bias: bool = True,
        depthwise_initializer: Any = "glorot_uniform",
        pointwise_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        depthwise_regularizer: Any = None,
        pointwise_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        depthwise_constraint: Any = None,
        pointwise_constraint: Any = None,
        bias_constraint: Any = None,
        **kwargs: Any,
    ):
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate, activation,
                         use_bias, bias_initializer, bias_regularizer, activity_regularizer,
                         bias_constraint, **kwargs)
        self.filters = check_positive_int("filters", filters)
        self.depth_multiplier = check_positive_int("depth_multiplier", depth_multiplier)
        self.depthwise_initializer = initializers_module.get(
            "glorot_uniform" if depthwise_initializer is None else depthwise_initializer)
        self.pointwise_initializer = initializers_module.get(
            "glorot_uniform" if pointwise_initializer is None else pointwise_initializer)
        self.depthwise_regularizer = regularizers_module.get(depthwise_regularizer)
        self.pointwise_regularizer = regularizers_module.get(pointwise_regularizer)
        self.depthwise_constraint = constraints_module.get(depthwise_constraint)
        self.pointwise_constraint = constraints_module.get(pointwise_constraint)

    def _build_weights(self, in_channels: int) -> None:
        self.depthwise_kernel = self._add_kernel(
            "depthwise_kernel", self.kernel_size + (in_channels, self.depth_multiplier),
            self.depthwise_initializer, self.depthwise_regularizer, self.depthwise_constraint,
        )
        self.pointwise_kernel = self._add_kernel(
            "pointwise_kernel", (1,) * self.rank + (in_channels * self.depth_multiplier,
                                                    self.filters),
            self.pointwise_initializer, self.pointwise_regularizer, self.pointwise_constraint,
        )
        self.bias = self._add_bias(self.filters)
        self._prepare_convolution()
        self._pointwise_conv = TORCH_CONV[len(self._torch_kernel_size)]

    def _forward(self, x: Tensor) -> Tensor:
        x = self._convolve(x, self.depthwise_kernel, None, self._in_channels)
        return self._pointwise_conv(x, self.pointwise_kernel, self.bias)

    def _output_channels(self, in_channels: Any) -> Any:
        return self.filters

    def _from_keras_layout(self, name: str, value: Tensor) -> Tensor:
        if name == "depthwise_kernel":
            return depthwise_to_torch(value, self.rank)
        if name == "pointwise_kernel":
            return keras_to_torch_kernel(value, self.rank)
        return value

    def _to_keras_layout(self, name: str, value: Tensor) -> Tensor:
        if name == "depthwise_kernel":
            return depthwise_to_keras(value, self.rank, self._in_channels)
        if name == "pointwise_kernel":
            return torch_to_keras_kernel(value, self.rank)
        return value

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "depth_multiplier": self.depth_multiplier,
            "depthwise_initializer": serialize_argument(self.depthwise_initializer),
            "pointwise_initializer": serialize_argument(self.pointwise_initializer),
            "depthwise_regularizer": serialize_argument(self.depthwise_regularizer),
            "pointwise_regularizer": serialize_argument(self.pointwise_regularizer),
            "depthwise_constraint": serialize_argument(self.depthwise_constraint),
            "pointwise_constraint": serialize_argument(self.pointwise_constraint),
        }


@register("SeparableConv1D", "SeparableConvolution1D")
class SeparableConv1D(_BaseSeparableConv):
    """1-D depthwise-separable convolution: `(batch, steps, channels) ->
    (batch, new_steps, filters)`.

    >>> SeparableConv1D(3, 4, strides=2, activation="relu")(torch.zeros(4, 10, 12)).shape
    torch.Size([4, 4, 3])
    """

    rank = 1


@register("SeparableConv2D", "SeparableConvolution2D")
class SeparableConv2D(_BaseSeparableConv):
    """2-D depthwise-separable convolution: `(batch, h, w, channels) -> (batch, h', w', filters)`.

    >>> SeparableConv2D(16, 3, padding="same")(torch.zeros(2, 8, 8, 4)).shape
    torch.Size([2, 8, 8, 16])
    """

    rank = 2
