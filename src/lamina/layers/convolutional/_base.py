"""What the convolution, pooling and spatial layers share: argument normalization, the move
between Keras's layouts and the ones torch's kernels want, and Keras's padding modes.

Layouts. A channels_last input `(batch, *spatial, channels)` becomes torch's
`(batch, channels, *spatial)` by `permute`, a view in torch's channels_last memory format that
torch's CPU and CUDA kernels read directly, so no copy is made per call. 1-D layers run as 2-D
ones over a unit height: torch's channels_last 2-D kernels are faster than `conv1d` on a
permuted `(batch, steps, channels)` input (docs/provenance.md).

Padding. Keras's 'same' is TensorFlow's: a total of `max((ceil(n / s) - 1) * s + k_eff - n, 0)`
with the odd one at the end, so it can be asymmetric, and with `strides > 1` it depends on the
input size. Torch pads symmetrically; the extra step is added with `F.pad` (convolutions) or
found with torch's `ceil_mode` (pooling, where padding must not count as values).

`_BaseConvolution` is the underscore base of the four convolution families.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from lamina import activations, config
from lamina import constraints as constraints_module
from lamina import initializers as initializers_module
from lamina import regularizers as regularizers_module
from lamina.errors import ShapeError
from lamina.layers.core import serialize_argument
from lamina.layers.layer import Layer

Tensor = torch.Tensor

_SPATIAL_NAMES = {1: ("steps",), 2: ("height", "width"), 3: ("depth", "height", "width")}


def normalize_tuple(value: Any, rank: int, name: str, *,
                    allow_zero: bool = False) -> tuple[int, ...]:
    """An int or a sequence of `rank` ints as a tuple of `rank` ints, validated."""
    items = (value,) * rank if isinstance(value, int) and not isinstance(value, bool) else value
    try:
        items = tuple(items)
    except TypeError:
        items = None
    smallest = 0 if allow_zero else 1
    if items is None or len(items) != rank or any(
        isinstance(v, bool) or not isinstance(v, int) or v < smallest for v in items
    ):
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(
            f"`{name}` must be a {kind} integer or a tuple of {rank} {kind} integers. "
            f"Received: {name}={value!r}."
        )
    return items


def normalize_padding(value: Any, *, allow_causal: bool = False) -> str:
    """'valid', 'same' (any case) and, for 1-D convolutions, 'causal'."""
    valid = ("valid", "same", "causal") if allow_causal else ("valid", "same")
    padding = value.lower() if isinstance(value, str) else value
    if padding not in valid:
        raise ValueError(
            f"`padding` must be one of {', '.join(repr(v) for v in valid)}. "
            f"Received: padding={value!r}."
        )
    return padding


def effective_kernel(kernel: int, dilation: int) -> int:
    """The extent of a dilated kernel: `dilation * (kernel - 1) + 1`."""
    return dilation * (kernel - 1) + 1


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """Keras's (TensorFlow's) 'same' padding of one axis as (before, after); after >= before."""
    outputs = -(-size // stride)
    total = max((outputs - 1) * stride + effective_kernel(kernel, dilation) - size, 0)
    return total // 2, total - total // 2


def conv_output_length(size: int | None, kernel: int, stride: int, dilation: int,
                       padding: str) -> int | None:
    """Output length of a convolution or pooling axis (Keras's formula)."""
    if size is None:
        return None
    if padding == "valid":
        return (size - effective_kernel(kernel, dilation)) // stride + 1
    return -(-size // stride)


def lift(values: tuple[int, ...], rank: int, fill: int) -> tuple[int, ...]:
    """Per-axis arguments of a 1-D layer with the unit height axis it runs on prepended."""
    return (fill,) + values if rank == 1 else values


class SpatialLayout:
    """Moves inputs between a Keras data format and torch's `(batch, channels, *spatial)`.

    Both directions are views: channels_last inputs become tensors in torch's channels_last
    memory format, which torch's kernels consume without copying.
    """

    def __init__(self, rank: int, data_format: str):
        self.rank = rank
        self.data_format = data_format
        self.lift = rank == 1
        torch_ndim = max(rank, 2) + 2
        if data_format == "channels_last":
            self.to_order: tuple[int, ...] | None = (0, torch_ndim - 1) + tuple(
                range(1, torch_ndim - 1))
            self.from_order: tuple[int, ...] | None = (0,) + tuple(range(2, torch_ndim)) + (1,)
            self.lift_axis = 1
            self.channel_axis = rank + 1
        else:
            self.to_order = self.from_order = None
            self.lift_axis = 2
            self.channel_axis = 1
        self.spatial_axes = tuple(range(1, rank + 1)) if data_format == "channels_last" \
            else tuple(range(2, rank + 2))

    def to_torch(self, x: Tensor) -> Tensor:
        if self.lift:
            x = x.unsqueeze(self.lift_axis)
        return x if self.to_order is None else x.permute(self.to_order)

    def from_torch(self, y: Tensor) -> Tensor:
        if self.from_order is not None:
            y = y.permute(self.from_order)
        return y.squeeze(self.lift_axis) if self.lift else y

    def spatial(self, shape: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(shape[a] for a in self.spatial_axes)

    def channels(self, shape: Sequence[Any]) -> Any:
        return shape[self.channel_axis]

    def shape(self, batch: Any, spatial: Sequence[Any], channels: Any) -> tuple[Any, ...]:
        """A Keras-layout shape from its parts."""
        if self.data_format == "channels_last":
            return (batch, *spatial, channels)
        return (batch, channels, *spatial)

    def describe(self) -> str:
        """The expected input layout in words, for error messages."""
        names = _SPATIAL_NAMES[self.rank]
        return "(" + ", ".join(self.shape("batch", names, "channels")) + ")"


class ConvPadding:
    """Keras's padding of a convolution as torch's symmetric `padding` plus, when Keras pads
    one step more at the end ('same') or only at the start ('causal'), an `F.pad` of the rest.

    Arguments are per torch spatial axis (1-D layers lifted). The plan is fixed at construction
    unless 'same' padding meets a stride > 1, where it depends on the input size: `resolve`
    then replans only when that size changes.
    """

    def __init__(self, padding: str, kernel: tuple[int, ...], strides: tuple[int, ...],
                 dilation: tuple[int, ...]):
        self.padding, self.kernel, self.strides, self.dilation = padding, kernel, strides, dilation
        self.static = padding != "same" or all(s == 1 for s in strides)
        self.size: tuple[int, ...] | None = None
        self.symmetric: tuple[int, ...] = (0,) * len(kernel)
        self.explicit: tuple[int, ...] | None = None
        if self.static:
            self._plan((1,) * len(kernel))

    def resolve(self, x: Tensor) -> None:
        size = x.shape[2:]
        if size != self.size:
            self._plan(tuple(size))

    def _plan(self, size: tuple[int, ...]) -> None:
        pads = []
        for n, k, s, d in zip(size, self.kernel, self.strides, self.dilation):
            if self.padding == "valid":
                pads.append((0, 0))
            elif self.padding == "causal":
                pads.append((effective_kernel(k, d) - 1, 0))
            else:
                pads.append(same_padding(n, k, s, d))
        self.symmetric = tuple(min(before, after) for before, after in pads)
        rest = [(before - m, after - m) for (before, after), m in zip(pads, self.symmetric)]
        # F.pad lists the last axis first.
        self.explicit = tuple(v for pair in reversed(rest) for v in pair) if any(
            b or a for b, a in rest) else None
        self.size = size


class PoolPadding:
    """Keras's pooling padding with torch's pooling alone, never padding the input.

    Per axis with a total 'same' padding T: T even pads T/2 each side; T odd with stride >= 2
    pads T//2 and lets `ceil_mode` add the last, overhanging window; T odd with stride 1 pads
    (T+1)/2 and drops the first output. Torch's average pooling with `count_include_pad=False`
    divides by the real elements under each window, so padding never counts, as in Keras.
    """

    def __init__(self, padding: str, pool_size: tuple[int, ...], strides: tuple[int, ...]):
        self.padding, self.pool_size, self.strides = padding, pool_size, strides
        self.static = padding == "valid" or all(s == 1 for s in strides)
        self.size: tuple[int, ...] | None = None
        self.symmetric: tuple[int, ...] = (0,) * len(pool_size)
        self.ceil_mode = False
        self.crop: tuple[slice, ...] | None = None
        if self.static:
            self._plan((1,) * len(pool_size))

    def resolve(self, x: Tensor) -> None:
        size = x.shape[2:]
        if size != self.size:
            self._plan(tuple(size))

    def _plan(self, size: tuple[int, ...]) -> None:
        symmetric, drop_first, ceil_mode = [], [], False
        for n, k, s in zip(size, self.pool_size, self.strides):
            total = 0 if self.padding == "valid" else sum(same_padding(n, k, s))
            if total % 2 == 0:
                symmetric.append(total // 2)
                drop_first.append(False)
            elif s >= 2:
                symmetric.append(total // 2)
                drop_first.append(False)
                ceil_mode = True
            else:
                symmetric.append(total // 2 + 1)
                drop_first.append(True)
        self.symmetric, self.ceil_mode = tuple(symmetric), ceil_mode
        self.crop = (slice(None), slice(None)) + tuple(
            slice(1, None) if drop else slice(None) for drop in drop_first
        ) if any(drop_first) else None
        self.size = size


class InKerasLayout:
    """Applies a regularizer or constraint to a weight in Keras's layout.

    Layers store kernels in torch's layout; an axis-dependent constraint (a per-filter
    `MaxNorm(axis=[0, 1, 2])`) must still see Keras's `(*kernel_size, in, filters)`.
    """

    def __init__(self, function: Callable[[Tensor], Tensor], layer: Any, name: str, *,
                 constraint: bool):
        self.function, self.layer, self.name, self.constraint = function, layer, name, constraint

    def __call__(self, weight: Tensor) -> Tensor:
        value = self.function(self.layer._to_keras_layout(self.name, weight))
        return self.layer._from_keras_layout(self.name, value) if self.constraint else value


def check_spatial_fits(layer: Any, input_shape: Sequence[Any], layout: SpatialLayout,
                       window: tuple[int, ...], padding: str, what: str) -> None:
    """ShapeError when a 'valid' window is larger than the (known) input along an axis."""
    if padding != "valid":
        return
    spatial = layout.spatial(input_shape)
    if any(n is not None and n < w for n, w in zip(spatial, window)):
        raise ShapeError(
            f"Layer {layer.name!r} ({type(layer).__name__}): the {what} {window} is larger than "
            f"the input's spatial size {tuple(spatial)} with padding='valid', so the output "
            f"would be empty. Received an input of shape {tuple(input_shape)}; expected "
            f"{layout.describe()}. Use padding='same', a smaller {what}, or a larger input."
        )


def rank_error(layer: Any, input_shape: Sequence[Any], layout: SpatialLayout) -> ShapeError:
    return ShapeError(
        f"Input 0 of layer {layer.name!r} ({type(layer).__name__}) is incompatible: expected "
        f"rank {layout.rank + 2} {layout.describe()} with data_format={layout.data_format!r}, "
        f"but received an input of shape {tuple(input_shape)}."
    )


def check_rank(layer: Any, input_shape: Sequence[Any], layout: SpatialLayout) -> None:
    if len(input_shape) != layout.rank + 2:
        raise rank_error(layer, input_shape, layout)


def known_channels(layer: Any, input_shape: Sequence[Any], layout: SpatialLayout) -> int:
    channels = layout.channels(input_shape)
    if channels is None:
        raise ShapeError(
            f"Layer {layer.name!r} ({type(layer).__name__}) needs the channel axis of its input "
            f"to be known. Received an input of shape {tuple(input_shape)}; expected "
            f"{layout.describe()}."
        )
    return int(channels)


class _BaseConvolution(Layer):
    """What every convolution shares: window arguments, bias, activation, layouts, the output
    shape, and error messages that name the layer and the shapes.

    Subclasses set `rank`, create their weights in `_build_weights(in_channels)`, compute in
    `_forward(x)` on torch's layout, and give `_output_channels(in_channels)`.
    """

    rank = 2
    _allow_causal = False

    def __init__(self, kernel_size: Any, strides: Any, padding: str, data_format: str | None,
                 dilation_rate: Any, activation: Any, use_bias: bool, bias_initializer: Any,
                 bias_regularizer: Any, activity_regularizer: Any, bias_constraint: Any,
                 **kwargs: Any):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        rank = self.rank
        self.kernel_size = normalize_tuple(kernel_size, rank, "kernel_size")
        self.strides = normalize_tuple(strides, rank, "strides")
        self.padding = normalize_padding(padding, allow_causal=self._allow_causal and rank == 1)
        self.data_format = config.standardize_data_format(data_format)
        self.dilation_rate = normalize_tuple(dilation_rate, rank, "dilation_rate")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(
                f"{type(self).__name__}: `strides > 1` is not supported together with "
                f"`dilation_rate > 1`. Received: strides={self.strides} and "
                f"dilation_rate={self.dilation_rate}. Set one of them to 1."
            )
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.bias_initializer = initializers_module.get(
            "zeros" if bias_initializer is None else bias_initializer)
        self.bias_regularizer = regularizers_module.get(bias_regularizer)
        self.bias_constraint = constraints_module.get(bias_constraint)

    # ----------------------------------------------------------------- hooks

    def _build_weights(self, in_channels: int) -> None:
        raise NotImplementedError

    def _forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _output_channels(self, in_channels: Any) -> Any:
        raise NotImplementedError

    def _output_length(self, size: int | None, axis: int) -> int | None:
        return conv_output_length(size, self.kernel_size[axis], self.strides[axis],
                                  self.dilation_rate[axis], self.padding)

    # ----------------------------------------------------------------- the contract

    def build(self, input_shape):
        self._layout = SpatialLayout(self.rank, self.data_format)
        check_rank(self, input_shape, self._layout)
        self._in_channels = known_channels(self, input_shape, self._layout)
        window = tuple(effective_kernel(k, d) for k, d in zip(self.kernel_size, self.dilation_rate))
        self._check_fits(input_shape, window)
        self._torch_kernel_size = lift(self.kernel_size, self.rank, 1)
        self._torch_strides = lift(self.strides, self.rank, 1)
        self._torch_dilation = lift(self.dilation_rate, self.rank, 1)
        self._build_weights(self._in_channels)

    def _check_fits(self, input_shape: Sequence[Any], window: tuple[int, ...]) -> None:
        check_spatial_fits(self, input_shape, self._layout, window, self.padding, "kernel_size")

    def call(self, inputs):
        try:
            outputs = self._layout.from_torch(self._forward(self._layout.to_torch(inputs)))
        except RuntimeError as error:
            explained = self._explain(tuple(inputs.shape))
            if explained is None:
                raise
            raise explained from error
        return self.activation(outputs)

    def _explain(self, shape: tuple[int, ...]) -> ShapeError | None:
        """A ShapeError saying what is wrong with an input shape torch refused, or None."""
        layout = self._layout
        if len(shape) != layout.rank + 2:
            return rank_error(self, shape, layout)
        if layout.channels(shape) != self._in_channels:
            return ShapeError(
                f"Input 0 of layer {self.name!r} ({type(self).__name__}) is incompatible: the "
                f"layer was built for {self._in_channels} input channels on axis "
                f"{layout.channel_axis} ({layout.describe()}), but received an input of shape "
                f"{shape}."
            )
        try:
            self._check_fits(shape, tuple(
                effective_kernel(k, d) for k, d in zip(self.kernel_size, self.dilation_rate)))
        except ShapeError as error:
            return error
        return None

    def compute_output_shape(self, input_shape):
        layout = SpatialLayout(self.rank, self.data_format)
        check_rank(self, input_shape, layout)
        spatial = [self._output_length(n, axis)
                   for axis, n in enumerate(layout.spatial(input_shape))]
        channels = self._output_channels(layout.channels(input_shape))
        return layout.shape(input_shape[0], spatial, channels)

    def _prepare_convolution(self) -> None:
        """Pick torch's convolution and plan the padding (forward convolutions)."""
        self._conv = TORCH_CONV[len(self._torch_kernel_size)]
        self._padding = ConvPadding(self.padding, self._torch_kernel_size, self._torch_strides,
                                    self._torch_dilation)

    def _convolve(self, x: Tensor, weight: Tensor, bias: Tensor | None, groups: int) -> Tensor:
        """Torch's convolution of a torch-layout input with Keras's padding."""
        padding = self._padding
        if not padding.static:
            padding.resolve(x)
        if padding.explicit is not None:
            x = F.pad(x, padding.explicit)
        return self._conv(x, weight, bias, self._torch_strides, padding.symmetric,
                          self._torch_dilation, groups)

    def _add_kernel(self, name: str, shape: tuple[int, ...], initializer: Any, regularizer: Any,
                    constraint: Any) -> Tensor:
        """add_weight for a kernel stored in torch's layout, whose regularizer and constraint
        still see Keras's layout."""
        kernel = self.add_weight(
            shape=shape, initializer=initializer, name=name,
            regularizer=None if regularizer is None
            else InKerasLayout(regularizer, self, name, constraint=False),
            constraint=None if constraint is None
            else InKerasLayout(constraint, self, name, constraint=True),
        )
        kernel.data = gradient_layout(kernel.data, self.data_format)
        return kernel

    def _add_bias(self, size: int) -> Tensor | None:
        if not self.use_bias:
            return None
        return self.add_weight(shape=(size,), initializer=self.bias_initializer, name="bias",
                               regularizer=self.bias_regularizer, constraint=self.bias_constraint)

    def get_config(self):
        return {
            **super().get_config(),
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "bias_initializer": serialize_argument(self.bias_initializer),
            "bias_regularizer": serialize_argument(self.bias_regularizer),
            "bias_constraint": serialize_argument(self.bias_constraint),
        }


def keras_to_torch_kernel(value: Tensor, rank: int) -> Tensor:
    """Keras `(*kernel_size, a, b)` -> torch `(b, a, *kernel_size)`, 1-D lifted to a unit height."""
    value = value.permute(rank + 1, rank, *range(rank))
    if rank == 1:
        value = value.unsqueeze(2)
    return value.contiguous()


def gradient_layout(kernel: Tensor, data_format: str) -> Tensor:
    """`kernel` (torch layout) with the strides torch's convolutions give its gradient.

    A channels_last input gets its weight gradient in channels_last strides. Where those differ
    from the contiguous ones only in unit axes (1 input channel, 1x1 kernels, depthwise
    kernels) autograd keeps the gradient as it comes, and DDP, which copies each gradient into a
    bucket laid out like its weight, warns at every run that the strides do not match. FSDP2
    takes contiguous weights only, so a kernel whose channels_last strides are not contiguous
    too keeps the contiguous ones, into which autograd copies its gradient.
    """
    if data_format == "channels_last":
        laid = torch.empty_like(kernel, memory_format=_CHANNELS_LAST[kernel.dim()])
        if laid.is_contiguous():
            return laid.copy_(kernel)
    # Contiguous strides as computed from the shape: a permuted tensor that torch already calls
    # contiguous can carry other strides in its unit axes.
    return torch.empty_like(kernel, memory_format=torch.contiguous_format).copy_(kernel)


_CHANNELS_LAST = {4: torch.channels_last, 5: torch.channels_last_3d}


def torch_to_keras_kernel(value: Tensor, rank: int) -> Tensor:
    """Inverse of `keras_to_torch_kernel`."""
    if rank == 1:
        value = value.squeeze(2)
    return value.permute(*range(2, rank + 2), 1, 0)


TORCH_CONV = {2: F.conv2d, 3: F.conv3d}
TORCH_CONV_TRANSPOSE = {2: F.conv_transpose2d, 3: F.conv_transpose3d}
