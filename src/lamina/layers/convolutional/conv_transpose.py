"""Conv1DTranspose, Conv2DTranspose, Conv3DTranspose: the gradient of a convolution with
respect to its input, used to upsample (decoders, GAN generators, segmentation)."""

from __future__ import annotations

from typing import Any

import torch

from lamina import constraints as constraints_module
from lamina import initializers as initializers_module
from lamina import regularizers as regularizers_module
from lamina._registry import register
from lamina.layers.convolutional._base import (
    TORCH_CONV_TRANSPOSE,
    _BaseConvolution,
    effective_kernel,
    keras_to_torch_kernel,
    lift,
    normalize_tuple,
    torch_to_keras_kernel,
)
from lamina.layers.core import check_positive_int, serialize_argument

Tensor = torch.Tensor


def transpose_crop(kernel: int, stride: int, dilation: int, padding: str,
                   output_padding: int | None) -> tuple[int, int]:
    """How much Keras (TensorFlow) trims from each end of the full transposed convolution of
    length `(n - 1) * stride + k_eff`; a negative end means zeros added there.

    Keras's output length: 'valid' `(n - 1) * s + k_eff + output_padding` (output_padding
    defaulting to `max(k_eff, s) - k_eff`), 'same' `n * s` (or `(n - 1) * s + k_eff % 2 +
    output_padding` when given).
    """
    k = effective_kernel(kernel, dilation)
    if padding == "valid":
        extra = max(k, stride) - k if output_padding is None else output_padding
        before, after = k - 1, k - 1 + extra
    else:
        total = stride + k - 2 if output_padding is None else k + k % 2 - 2 + output_padding
        before = min(total // 2 + total % 2, k - 1)
        after = total - before
    return k - 1 - before, k - 1 - after


def transpose_output_length(size: int | None, kernel: int, stride: int, dilation: int,
                            padding: str, output_padding: int | None) -> int | None:
    if size is None:
        return None
    crop_start, crop_end = transpose_crop(kernel, stride, dilation, padding, output_padding)
    return (size - 1) * stride + effective_kernel(kernel, dilation) - crop_start - crop_end


class _BaseConvTranspose(_BaseConvolution):
    """Transposed convolution with a kernel of Keras shape `(*kernel_size, filters, in_channels)`,
    stored as torch's `(in_channels, filters, *kernel_size)`.

    Args:
        filters: number of output channels.
        kernel_size, strides, dilation_rate: as in the forward convolution.
        padding: 'valid' or 'same' ('same' gives `input * strides` outputs).
        output_padding: extra steps at the end of each output axis, each < its stride
            (None: Keras's default for the padding mode).
    """

    def __init__(
        self,
        filters: int,
        kernel_size: Any,
        strides: Any = 1,
        padding: str = "valid",
        output_padding: Any = None,
        data_format: str | None = None,
        dilation_rate: Any = 1,
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
        self.output_padding = None if output_padding is None else normalize_tuple(
            output_padding, self.rank, "output_padding", allow_zero=True)
        if self.output_padding is not None and any(
                p >= s for p, s in zip(self.output_padding, self.strides)):
            raise ValueError(
                f"{type(self).__name__}: each `output_padding` must be smaller than its stride. "
                f"Received: output_padding={self.output_padding}, strides={self.strides}."
            )
        self.kernel_initializer = initializers_module.get(
            "glorot_uniform" if kernel_initializer is None else kernel_initializer)
        self.kernel_regularizer = regularizers_module.get(kernel_regularizer)
        self.kernel_constraint = constraints_module.get(kernel_constraint)

    def _output_padding(self, axis: int) -> int | None:
        return None if self.output_padding is None else self.output_padding[axis]

    def _build_weights(self, in_channels: int) -> None:
        self.kernel = self._add_kernel(
            "kernel", self.kernel_size + (self.filters, in_channels),
            self.kernel_initializer, self.kernel_regularizer, self.kernel_constraint,
        )
        self.bias = self._add_bias(self.filters)
        self._conv_transpose = TORCH_CONV_TRANSPOSE[len(self._torch_kernel_size)]
        # Torch trims `padding` from both ends and adds `output_padding` (< stride) at the end;
        # whatever Keras trims beyond the symmetric part is sliced off the output (a view).
        padding, output_padding, crop = [], [], []
        for axis in range(self.rank):
            start, end = transpose_crop(self.kernel_size[axis], self.strides[axis],
                                        self.dilation_rate[axis], self.padding,
                                        self._output_padding(axis))
            symmetric = max(0, min(start, end))
            padding.append(symmetric)
            output_padding.append(max(0, symmetric - end))
            crop.append(slice(start - symmetric, -(end - symmetric) if end > symmetric else None))
        self._torch_padding = lift(tuple(padding), self.rank, 0)
        self._torch_output_padding = lift(tuple(output_padding), self.rank, 0)
        crop = lift(tuple(crop), self.rank, slice(None))
        self._crop = None if all(c == slice(0, None) or c == slice(None) for c in crop) \
            else (slice(None), slice(None)) + tuple(crop)

    def _check_fits(self, input_shape, window) -> None:
        # A transposed convolution's output is never smaller than its input.
        return None

    def _forward(self, x: Tensor) -> Tensor:
        y = self._conv_transpose(x, self.kernel, self.bias, self._torch_strides,
                                 self._torch_padding, self._torch_output_padding, 1,
                                 self._torch_dilation)
        return y if self._crop is None else y[self._crop]

    def _output_length(self, size: int | None, axis: int) -> int | None:
        return transpose_output_length(size, self.kernel_size[axis], self.strides[axis],
                                       self.dilation_rate[axis], self.padding,
                                       self._output_padding(axis))

    def _output_channels(self, in_channels: Any) -> Any:
        return self.filters

    def _from_keras_layout(self, name: str, value: Tensor) -> Tensor:
        # Keras (*k, filters, in) -> torch (in, filters, *k).
        return keras_to_torch_kernel(value, self.rank) if name == "kernel" else value

    def _to_keras_layout(self, name: str, value: Tensor) -> Tensor:
        return torch_to_keras_kernel(value, self.rank) if name == "kernel" else value

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "output_padding": self.output_padding,
            "kernel_initializer": serialize_argument(self.kernel_initializer),
            "kernel_regularizer": serialize_argument(self.kernel_regularizer),
            "kernel_constraint": serialize_argument(self.kernel_constraint),
        }


@register("Conv1DTranspose", "Convolution1DTranspose")
class Conv1DTranspose(_BaseConvTranspose):
    """1-D transposed convolution: `(batch, steps, channels) -> (batch, new_steps, filters)`,
    new_steps = `steps * strides` with padding='same'.

    >>> Conv1DTranspose(8, 3, strides=2, padding="same")(torch.zeros(2, 5, 4)).shape
    torch.Size([2, 10, 8])
    """

    rank = 1


@register("Conv2DTranspose", "Convolution2DTranspose")
class Conv2DTranspose(_BaseConvTranspose):
    """2-D transposed convolution ("deconvolution"): upsamples
    `(batch, height, width, channels)` to `(batch, h', w', filters)`; with padding='same',
    `h' = height * strides`.

    >>> Conv2DTranspose(16, 3, strides=2, padding="same")(torch.zeros(1, 7, 7, 32)).shape
    torch.Size([1, 14, 14, 16])
    """

    rank = 2


@register("Conv3DTranspose", "Convolution3DTranspose")
class Conv3DTranspose(_BaseConvTranspose):
    """3-D transposed convolution over volumes.

    >>> Conv3DTranspose(4, 2, strides=2)(torch.zeros(1, 3, 3, 3, 2)).shape
    torch.Size([1, 6, 6, 6, 4])
    """

    rank = 3
