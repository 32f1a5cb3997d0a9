"""References for the convolution, pooling and spatial layer tables (tests/support/layer_test.py
runs them): `torch.nn.functional` ops (or numpy) that read the layer's weights through
`get_weights()` in Keras's layout, written from the definitions (TensorFlow's 'same' padding,
the transposed convolution as the gradient of a convolution).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

Tensor = torch.Tensor


# ------------------------------------------------------------------- references


def to_channels_first(x: Tensor, data_format: str) -> Tensor:
    return x.movedim(-1, 1).contiguous() if data_format == "channels_last" else x


def from_channels_first(y: Tensor, data_format: str) -> Tensor:
    return y.movedim(1, -1) if data_format == "channels_last" else y


def tf_same_pads(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's SAME padding: output ceil(n / s), the odd pad at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def explicit_pads(spatial: tuple[int, ...], kernel: tuple[int, ...], strides: tuple[int, ...],
                  dilation: tuple[int, ...], padding: str) -> list[int]:
    """The F.pad argument (last axis first) for Keras's padding of a channels-first input."""
    pads = []
    for n, k, s, d in zip(spatial, kernel, strides, dilation):
        if padding == "same":
            pads.append(tf_same_pads(n, k, s, d))
        elif padding == "causal":
            pads.append(((k - 1) * d, 0))
        else:
            pads.append((0, 0))
    return [v for pair in reversed(pads) for v in pair]


_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def as_tuple(value: Any, rank: int) -> tuple[int, ...]:
    return (value,) * rank if isinstance(value, int) else tuple(value)


def keras_conv(x: Tensor, kernel: np.ndarray, bias: np.ndarray | None, *, strides: Any = 1,
               padding: str = "valid", dilation_rate: Any = 1, groups: int = 1,
               data_format: str = "channels_last") -> Tensor:
    """Keras's convolution with a kernel of Keras layout `(*k, in // groups, out)`."""
    rank = kernel.ndim - 2
    strides, dilation = as_tuple(strides, rank), as_tuple(dilation_rate, rank)
    w = torch.as_tensor(kernel).permute(rank + 1, rank, *range(rank))
    xc = to_channels_first(x, data_format)
    xc = F.pad(xc, explicit_pads(tuple(xc.shape[2:]), kernel.shape[:rank], strides, dilation,
                                 padding))
    b = None if bias is None else torch.as_tensor(bias)
    return from_channels_first(_CONV[rank](xc, w, b, strides, 0, dilation, groups), data_format)


def conv_reference(layer: Any, x: Tensor) -> Tensor:
    weights = layer.get_weights()
    return layer.activation(keras_conv(
        x, weights[0], weights[1] if layer.use_bias else None, strides=layer.strides,
        padding=layer.padding, dilation_rate=layer.dilation_rate, groups=layer.groups,
        data_format=layer.data_format))


def depthwise_as_grouped(kernel: np.ndarray) -> np.ndarray:
    """Keras depthwise `(*k, in, m)` as a grouped-conv kernel `(*k, 1, in * m)`, channel c*m+j."""
    *spatial, channels, multiplier = kernel.shape
    out = np.zeros((*spatial, 1, channels * multiplier))
    for c in range(channels):
        for j in range(multiplier):
            out[..., 0, c * multiplier + j] = kernel[..., c, j]
    return out


def depthwise_reference(layer: Any, x: Tensor) -> Tensor:
    weights = layer.get_weights()
    channels = weights[0].shape[-2]
    return layer.activation(keras_conv(
        x, depthwise_as_grouped(weights[0]), weights[1] if layer.use_bias else None,
        strides=layer.strides, padding=layer.padding, dilation_rate=layer.dilation_rate,
        groups=channels, data_format=layer.data_format))


def separable_reference(layer: Any, x: Tensor) -> Tensor:
    weights = layer.get_weights()
    depthwise, pointwise = weights[0], weights[1]
    channels = depthwise.shape[-2]
    hidden = keras_conv(x, depthwise_as_grouped(depthwise), None, strides=layer.strides,
                        padding=layer.padding, dilation_rate=layer.dilation_rate,
                        groups=channels, data_format=layer.data_format)
    hidden = to_channels_first(hidden, layer.data_format)
    mixed = torch.einsum("nc...,cf->nf...", hidden, torch.as_tensor(pointwise.reshape(
        pointwise.shape[-2:])))
    if layer.use_bias:
        mixed = mixed + torch.as_tensor(weights[2]).reshape((1, -1) + (1,) * (mixed.ndim - 2))
    return layer.activation(from_channels_first(mixed, layer.data_format))


def keras_transpose_length(n: int, kernel: int, stride: int, dilation: int, padding: str,
                           output_padding: int | None) -> int:
    """Keras's documented output length of a transposed convolution."""
    k = (kernel - 1) * dilation + 1
    if padding == "valid":
        extra = max(k, stride) - k if output_padding is None else output_padding
        return (n - 1) * stride + k + extra
    if output_padding is None:
        return n * stride
    return (n - 1) * stride + k % 2 + output_padding


def conv_transpose_reference(layer: Any, x: Tensor) -> Tensor:
    """TensorFlow's definition: the gradient, with respect to its input, of the forward
    convolution (same kernel, strides, padding) whose input has the transposed output's size."""
    weights = layer.get_weights()
    rank = layer.rank
    xc = to_channels_first(x, layer.data_format)
    output_padding = layer.output_padding or (None,) * rank
    out = [keras_transpose_length(n, k, s, d, layer.padding, p) for n, k, s, d, p in zip(
        xc.shape[2:], layer.kernel_size, layer.strides, layer.dilation_rate, output_padding)]
    probe = torch.zeros((xc.shape[0], layer.filters, *out), dtype=x.dtype, requires_grad=True)
    forward = keras_conv(probe, weights[0], None, strides=layer.strides, padding=layer.padding,
                         dilation_rate=layer.dilation_rate, data_format="channels_first")
    assert forward.shape == xc.shape, "the case is outside TensorFlow's definition"
    (y,) = torch.autograd.grad(forward, probe, grad_outputs=xc)
    if layer.use_bias:
        y = y + torch.as_tensor(weights[1]).reshape((1, -1) + (1,) * rank)
    return layer.activation(from_channels_first(y, layer.data_format))


def pool_reference(layer: Any, x: Tensor) -> Tensor:
    """Pooling with explicit TensorFlow padding: padded values never win a max and are not
    counted in an average (sum of real values / number of real values under the window)."""
    rank = layer.rank
    xc = to_channels_first(x, layer.data_format)
    pads = explicit_pads(tuple(xc.shape[2:]), layer.pool_size, layer.strides, (1,) * rank,
                         layer.padding)
    pool = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[rank]
    if "Max" in type(layer).__name__:
        y = pool(F.pad(xc, pads, value=float("-inf")), layer.pool_size, layer.strides)
    else:
        avg = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[rank]
        window = float(np.prod(layer.pool_size))
        sums = avg(F.pad(xc, pads), layer.pool_size, layer.strides) * window
        counts = avg(F.pad(torch.ones_like(xc[:1, :1]), pads), layer.pool_size,
                     layer.strides) * window
        y = sums / counts
    return from_channels_first(y, layer.data_format)
