"""Keras's neural-network ops (`keras.ops.nn`) on torch.nn.functional: activations,
convolution and pooling with Keras's kernel layouts and channels_last default, normalization,
cross-entropies and attention."""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from lamina import _short_softmax, config
from lamina.ops._op import floating, op, public_names, standardize_dtype, to_tensor

Tensor = torch.Tensor


def _f(x: Any) -> Tensor:
    return floating(to_tensor(x))


# ---- activations -----------------------------------------------------------------------------

@op
def relu(x: Any) -> Tensor:
    """`max(x, 0)`."""
    return F.relu(_f(x))


@op
def relu6(x: Any) -> Tensor:
    """`min(max(x, 0), 6)`."""
    return F.relu6(_f(x))


@op
def sigmoid(x: Any) -> Tensor:
    """`1 / (1 + exp(-x))`."""
    return torch.sigmoid(_f(x))


@op
def sparse_sigmoid(x: Any) -> Tensor:
    """0 below -1, 1 above 1, `(x + 1) / 2` between."""
    return torch.clamp((_f(x) + 1.0) / 2.0, 0.0, 1.0)


@op
def softplus(x: Any) -> Tensor:
    """`log(1 + exp(x))`."""
    return F.softplus(_f(x))


@op
def softsign(x: Any) -> Tensor:
    """`x / (1 + |x|)`."""
    return F.softsign(_f(x))


@op
def soft_shrink(x: Any, threshold: float = 0.5) -> Tensor:
    """`x - threshold` above it, `x + threshold` below `-threshold`, 0 between."""
    return F.softshrink(_f(x), threshold)


@op
def hard_shrink(x: Any, threshold: float = 0.5) -> Tensor:
    """`x` where `|x| > threshold`, else 0."""
    return F.hardshrink(_f(x), threshold)


@op
def sparse_plus(x: Any) -> Tensor:
    """0 below -1, x above 1, `(x + 1)**2 / 4` between."""
    x = _f(x)
    return torch.where(x <= -1, torch.zeros_like(x),
                       torch.where(x >= 1, x, (x + 1) ** 2 / 4))


@op
def silu(x: Any) -> Tensor:
    """`x * sigmoid(x)`."""
    return F.silu(_f(x))


def _named(name: str, function: Any, doc: str) -> Any:
    function.__name__ = function.__qualname__ = name
    function.__doc__ = doc
    return op(function)


swish = _named("swish", lambda x: F.silu(_f(x)), "`x * sigmoid(x)` (the same as silu).")


@op
def squareplus(x: Any, b: float = 4) -> Tensor:
    """`(x + sqrt(x**2 + b)) / 2`."""
    x = _f(x)
    return (x + torch.sqrt(x * x + b)) / 2


@op
def tanh_shrink(x: Any) -> Tensor:
    """`x - tanh(x)`."""
    return F.tanhshrink(_f(x))


@op
def hard_tanh(x: Any) -> Tensor:
    """`clip(x, -1, 1)`."""
    return F.hardtanh(_f(x))


@op
def threshold(x: Any, threshold: float, default_value: float) -> Tensor:
    """`x` where `x > threshold`, else `default_value`."""
    return F.threshold(_f(x), threshold, default_value)


@op
def log_sigmoid(x: Any) -> Tensor:
    """`log(sigmoid(x))`, stably."""
    return F.logsigmoid(_f(x))


@op
def leaky_relu(x: Any, negative_slope: float = 0.2) -> Tensor:
    """`x` for x >= 0, `negative_slope * x` below."""
    return F.leaky_relu(_f(x), negative_slope)


@op
def hard_sigmoid(x: Any) -> Tensor:
    """`relu6(x + 3) / 6`."""
    return F.hardsigmoid(_f(x))


@op
def hard_silu(x: Any) -> Tensor:
    """`x * relu6(x + 3) / 6`."""
    return F.hardswish(_f(x))


hard_swish = _named("hard_swish", lambda x: F.hardswish(_f(x)), "`x * relu6(x + 3) / 6`.")


@op
def elu(x: Any, alpha: float = 1.0) -> Tensor:
    """`x` for x > 0, `alpha * (exp(x) - 1)` below."""
    return F.elu(_f(x), alpha)


@op
def selu(x: Any) -> Tensor:
    """`scale * elu(x, alpha)` with the self-normalizing constants."""
    return F.selu(_f(x))


@op
def celu(x: Any, alpha: float = 1.0) -> Tensor:
    """`max(0, x) + min(0, alpha * (exp(x / alpha) - 1))`."""
    return F.celu(_f(x), alpha)


@op
def gelu(x: Any, approximate: bool = True) -> Tensor:
    """`x * Phi(x)`; the tanh approximation by default, as in Keras's ops."""
    return F.gelu(_f(x), approximate="tanh" if approximate else "none")


@op
def glu(x: Any, axis: int = -1) -> Tensor:
    """`a * sigmoid(b)` with x split in halves a, b along `axis`."""
    return F.glu(_f(x), dim=axis)


@op
def softmax(x: Any, axis: Any = -1) -> Tensor:
    """`exp(x) / sum(exp(x))` along `axis` (a tuple of axes normalizes over them jointly)."""
    x = _f(x)
    if axis is None or isinstance(axis, (tuple, list)):
        return torch.exp(log_softmax(x, axis))
    return _short_softmax.softmax(x, axis)


@op
def log_softmax(x: Any, axis: Any = -1) -> Tensor:
    """`x - logsumexp(x)` along `axis`."""
    x = _f(x)
    if axis is None or isinstance(axis, (tuple, list)):
        dims = tuple(range(x.ndim)) if axis is None else tuple(axis)
        return x - torch.logsumexp(x, dim=dims, keepdim=True)
    return _short_softmax.log_softmax(x, axis)


@op
def sparsemax(x: Any, axis: int = -1) -> Tensor:
    """Euclidean projection of x onto the probability simplex along `axis` (sparse softmax)."""
    x = torch.movedim(_f(x), axis, -1)
    z = torch.sort(x, dim=-1, descending=True).values
    k = torch.arange(1, x.shape[-1] + 1, dtype=x.dtype, device=x.device)
    cumulative = torch.cumsum(z, dim=-1)
    support = (1 + k * z) > cumulative
    k_z = torch.sum(support, dim=-1, keepdim=True).to(x.dtype)
    tau = (torch.gather(cumulative, -1, k_z.long() - 1) - 1) / k_z
    return torch.movedim(torch.clamp(x - tau, min=0), -1, axis)


# ---- encodings -------------------------------------------------------------------------------

@op
def one_hot(x: Any, num_classes: int, axis: int = -1, dtype: Any = None,
            sparse: bool = False) -> Tensor:
    """One-hot encodings of integer `x` along a new `axis`; negative or out-of-range indices
    give all-zero rows."""
    if sparse:
        raise ValueError("`sparse=True` is not supported: Lamina's ops return dense tensors.")
    x = to_tensor(x).long()
    valid = (x >= 0) & (x < num_classes)
    encoded = F.one_hot(torch.where(valid, x, torch.zeros_like(x)), num_classes)
    encoded = encoded * valid.unsqueeze(-1)
    if axis != -1:
        encoded = torch.movedim(encoded, -1, axis)
    return encoded.to(standardize_dtype(dtype) or config.torch_dtype(None))


@op
def multi_hot(inputs: Any, num_classes: int | None = None, axis: int = -1, dtype: Any = None,
              sparse: bool = False, **kwargs: Any) -> Tensor:
    """1 at every index present in each row of `inputs` (a 1-D input is one row)."""
    num_classes = kwargs.pop("num_tokens", num_classes)
    if num_classes is None:
        raise ValueError("`multi_hot` needs `num_classes`.")
    x = to_tensor(inputs)
    single = x.ndim <= 1
    if single:
        x = x.unsqueeze(0)
    encoded = torch.amax(one_hot(x, num_classes, axis=-1, dtype=torch.int32), dim=-2)
    if axis != -1:
        encoded = torch.movedim(encoded, -1, axis)
    if single:
        encoded = encoded[0]
    return encoded.to(standardize_dtype(dtype) or config.torch_dtype(None))


# ---- normalization ---------------------------------------------------------------------------

@op
def moments(x: Any, axes: Any, keepdims: bool = False, synchronized: bool = False
            ) -> tuple[Tensor, Tensor]:
    """Mean and (population) variance over `axes`; float16 is computed in float32."""
    x = _f(to_tensor(x))
    compute = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    axes = tuple(axes) if isinstance(axes, (list, tuple)) else (axes,)
    values = x.to(compute)
    mean_ = torch.mean(values, dim=axes, keepdim=True)
    variance = torch.mean(torch.square(values - mean_), dim=axes, keepdim=keepdims)
    if not keepdims:
        mean_ = torch.squeeze(mean_, dim=axes)
    return mean_.to(x.dtype), variance.to(x.dtype)


@op
def batch_normalization(x: Any, mean: Any, variance: Any, axis: int, offset: Any = None,
                        scale: Any = None, epsilon: float = 1e-3) -> Tensor:
    """`(x - mean) / sqrt(variance + epsilon) * scale + offset`, statistics along `axis`."""
    x = _f(x)
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]

    def along(value: Any) -> Tensor:
        return to_tensor(value, x.dtype, x.device).reshape(shape)

    out = (x - along(mean)) * torch.rsqrt(along(variance) + epsilon)
    if scale is not None:
        out = out * along(scale)
    if offset is not None:
        out = out + along(offset)
    return out


@op
def layer_normalization(x: Any, gamma: Any = None, beta: Any = None, axis: Any = -1,
                        epsilon: float | None = None, **kwargs: Any) -> Tensor:
    """Normalizes over `axis` to zero mean and unit variance, then `* gamma + beta`."""
    x = _f(x)
    epsilon = 1e-3 if epsilon is None else epsilon
    axes = tuple(axis) if isinstance(axis, (list, tuple)) else (axis,)
    mean_, variance = moments(x, axes, keepdims=True)
    out = (x - mean_) * torch.rsqrt(variance + epsilon)
    if gamma is not None:
        out = out * to_tensor(gamma, x.dtype, x.device)
    if beta is not None:
        out = out + to_tensor(beta, x.dtype, x.device)
    return out


@op
def rms_normalization(x: Any, scale: Any = None, axis: Any = -1,
                      epsilon: float | None = None) -> Tensor:
    """`x / sqrt(mean(x**2) + epsilon) * scale` over `axis`."""
    x = _f(x)
    epsilon = config.epsilon() if epsilon is None else epsilon
    axes = tuple(axis) if isinstance(axis, (list, tuple)) else (axis,)
    out = x * torch.rsqrt(torch.mean(x * x, dim=axes, keepdim=True) + epsilon)
    return out if scale is None else out * to_tensor(scale, x.dtype, x.device)


@op
def normalize(x: Any, axis: int = -1, order: int = 2, epsilon: float | None = None) -> Tensor:
    """`x / max(norm(x, order), epsilon)` along `axis`."""
    x = _f(x)
    epsilon = config.epsilon() if epsilon is None else epsilon
    norm = torch.linalg.vector_norm(x, ord=order, dim=axis, keepdim=True)
    return x / torch.clamp(norm, min=epsilon)


# ---- losses ----------------------------------------------------------------------------------

def _check_same_shape(target: Tensor, output: Tensor) -> None:
    if target.shape != output.shape:
        raise ValueError(
            f"`target` and `output` must have the same shape. Received target.shape="
            f"{tuple(target.shape)}, output.shape={tuple(output.shape)}.")


@op
def binary_crossentropy(target: Any, output: Any, from_logits: bool = False) -> Tensor:
    """Element-wise `-(t log p + (1 - t) log(1 - p))`; probabilities clipped by epsilon."""
    output = _f(output)
    target = to_tensor(target, output.dtype, output.device)
    _check_same_shape(target, output)
    if from_logits:
        return F.binary_cross_entropy_with_logits(output, target, reduction="none")
    eps = config.epsilon()
    output = torch.clamp(output, eps, 1 - eps)
    return -(target * torch.log(output) + (1 - target) * torch.log(1 - output))


@op
def categorical_crossentropy(target: Any, output: Any, from_logits: bool = False,
                             axis: int = -1) -> Tensor:
    """`-sum(t log p)` along `axis`; probabilities are renormalized and clipped by epsilon."""
    output = _f(output)
    target = to_tensor(target, output.dtype, output.device)
    _check_same_shape(target, output)
    if from_logits:
        log_probabilities = torch.log_softmax(output, dim=axis)
    else:
        output = output / torch.sum(output, dim=axis, keepdim=True)
        eps = config.epsilon()
        log_probabilities = torch.log(torch.clamp(output, eps, 1 - eps))
    return -torch.sum(target * log_probabilities, dim=axis)


@op
def sparse_categorical_crossentropy(target: Any, output: Any, from_logits: bool = False,
                                    axis: int = -1) -> Tensor:
    """`-log p[target]` along `axis` for integer targets."""
    output = _f(output)
    target = to_tensor(target, device=output.device).long()
    if target.ndim == output.ndim and target.shape[-1] == 1:
        target = target.squeeze(-1)
    num_classes = output.shape[axis]
    return categorical_crossentropy(one_hot(target, num_classes, axis=axis, dtype=output.dtype),
                                    output, from_logits=from_logits, axis=axis)


@op
def psnr(x1: Any, x2: Any, max_val: float) -> Tensor:
    """Peak signal-to-noise ratio in dB: `20 log10(max_val) - 10 log10(mse)`."""
    a, b = _f(x1), _f(x2)
    if a.shape != b.shape:
        raise ValueError(f"`x1` and `x2` must have the same shape. Received {tuple(a.shape)} "
                         f"and {tuple(b.shape)}.")
    mse = torch.mean((a - b) ** 2)
    return 20 * math.log10(max_val) - 10 * torch.log10(mse)


@op
def ctc_loss(target: Any, output: Any, target_length: Any, output_length: Any,
             mask_index: int = 0) -> Tensor:
    """Connectionist temporal classification loss per sample; `output` holds logits of shape
    (batch, time, classes), `mask_index` is the blank class."""
    logits = _f(output)
    log_probabilities = torch.log_softmax(logits, dim=-1).transpose(0, 1)
    device = logits.device
    return F.ctc_loss(log_probabilities, to_tensor(target, device=device).long(),
                      to_tensor(output_length, device=device).long(),
                      to_tensor(target_length, device=device).long(),
                      blank=mask_index, reduction="none", zero_infinity=False)


@op
def ctc_decode(inputs: Any, sequence_lengths: Any, strategy: str = "greedy",
               beam_width: int = 100, top_paths: int = 1, merge_repeated: bool = True,
               mask_index: int = 0) -> tuple[Tensor, Tensor]:
    """Greedy CTC decoding of (batch, time, classes) scores: the best class per step, repeats
    merged, blanks (`mask_index`) dropped. Returns the labels (1, batch, time), left-aligned and
    padded with -1, and the negated sum of the chosen scores (batch, 1)."""
    if strategy != "greedy":
        raise ValueError(f"Only strategy='greedy' is supported. Received: strategy={strategy!r}. "
                         "For beam search, decode with the greedy result or a dedicated "
                         "decoder (e.g. torchaudio's ctc_decoder).")
    scores = floating(to_tensor(inputs))
    lengths = to_tensor(sequence_lengths, device=scores.device).long()
    batch, steps, _ = scores.shape
    best, labels = torch.max(scores, dim=-1)
    beyond = torch.arange(steps, device=scores.device)[None, :] >= lengths[:, None]
    labels = torch.where(beyond, mask_index, labels)
    best = torch.where(beyond, torch.zeros_like(best), best)
    if merge_repeated:
        repeated = F.pad(labels[:, 1:] == labels[:, :-1], (1, 0))
        labels = torch.where(repeated, mask_index, labels)
    blank = labels == mask_index
    # A stable sort on "is blank" moves the kept labels left, in order.
    order = torch.argsort(blank.to(torch.int8), dim=-1, stable=True)
    decoded = torch.take_along_dim(torch.where(blank, -1, labels), order, dim=-1)
    return decoded.to(torch.int32)[None], -torch.sum(best, dim=1, keepdim=True)


# ---- convolution and pooling (Keras layouts) -------------------------------------------------

def _tuple(value: Any, rank: int, name: str) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * rank
    value = tuple(int(v) for v in value)
    if len(value) != rank:
        raise ValueError(f"`{name}` must be an int or {rank} ints. Received: {name}={value!r}.")
    return value


def _to_channels_first(x: Tensor, data_format: str | None) -> tuple[Tensor, bool]:
    last = config.standardize_data_format(data_format) == "channels_last"
    return (torch.movedim(x, -1, 1) if last else x), last


def _from_channels_first(x: Tensor, last: bool) -> Tensor:
    return torch.movedim(x, 1, -1) if last else x


def _check_padding(padding: str) -> str:
    padding = padding.lower()
    if padding not in ("valid", "same"):
        raise ValueError(f"`padding` must be 'valid' or 'same'. Received: padding={padding!r}.")
    return padding


def _same_pads(sizes: Sequence[int], kernel: Sequence[int], strides: Sequence[int],
               dilation: Sequence[int]) -> list[int]:
    """TensorFlow's 'same' padding, extra on the right, as F.pad's flat (last axis first) list."""
    pads: list[int] = []
    for size, k, s, d in reversed(list(zip(sizes, kernel, strides, dilation))):
        effective = (k - 1) * d + 1
        out = -(-size // s)
        total = max((out - 1) * s + effective - size, 0)
        pads += [total // 2, total - total // 2]
    return pads


_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def _conv(x: Tensor, weight: Tensor, strides: Any, padding: str, dilation_rate: Any,
          groups: int) -> Tensor:
    rank = x.ndim - 2
    strides, dilation = _tuple(strides, rank, "strides"), _tuple(dilation_rate, rank,
                                                                 "dilation_rate")
    if _check_padding(padding) == "same":
        x = F.pad(x, _same_pads(x.shape[2:], weight.shape[2:], strides, dilation))
    return _CONV[rank](x, weight, stride=strides, dilation=dilation, groups=groups)


@op
def conv(inputs: Any, kernel: Any, strides: Any = 1, padding: str = "valid",
         data_format: str | None = None, dilation_rate: Any = 1) -> Tensor:
    """N-D convolution; `kernel` in Keras's layout `(*spatial, in_channels / groups,
    out_channels)`."""
    x, last = _to_channels_first(_f(inputs), data_format)
    kernel = to_tensor(kernel, x.dtype, x.device)
    weight = torch.movedim(torch.movedim(kernel, -1, 0), -1, 1)  # (out, in / groups, *spatial)
    groups = x.shape[1] // weight.shape[1]
    return _from_channels_first(_conv(x, weight, strides, padding, dilation_rate, groups), last)


@op
def depthwise_conv(inputs: Any, kernel: Any, strides: Any = 1, padding: str = "valid",
                   data_format: str | None = None, dilation_rate: Any = 1) -> Tensor:
    """Per-channel convolution; `kernel` of shape `(*spatial, in_channels, multiplier)`."""
    x, last = _to_channels_first(_f(inputs), data_format)
    kernel = to_tensor(kernel, x.dtype, x.device)
    rank = kernel.ndim - 2
    channels, multiplier = kernel.shape[-2], kernel.shape[-1]
    weight = kernel.reshape(kernel.shape[:rank] + (channels * multiplier, 1))
    weight = torch.movedim(torch.movedim(weight, -1, 0), -1, 0)  # (in * mult, 1, *spatial)
    return _from_channels_first(_conv(x, weight, strides, padding, dilation_rate, channels),
                                last)


@op
def separable_conv(inputs: Any, depthwise_kernel: Any, pointwise_kernel: Any, strides: Any = 1,
                   padding: str = "valid", data_format: str | None = None,
                   dilation_rate: Any = 1) -> Tensor:
    """A depthwise convolution followed by a 1x1 (pointwise) convolution."""
    depthwise = depthwise_conv(inputs, depthwise_kernel, strides, padding, data_format,
                               dilation_rate)
    return conv(depthwise, pointwise_kernel, 1, "valid", data_format)


_CONV_TRANSPOSE = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


@op
def conv_transpose(inputs: Any, kernel: Any, strides: Any = 1, padding: str = "valid",
                   output_padding: Any = None, data_format: str | None = None,
                   dilation_rate: Any = 1) -> Tensor:
    """Transposed convolution; `kernel` of shape `(*spatial, out_channels, in_channels)`.
    Output size per axis: `in * stride` ('same') or `in * stride + max(k - stride, 0)`
    ('valid'), as Keras computes it."""
    x, last = _to_channels_first(_f(inputs), data_format)
    kernel = to_tensor(kernel, x.dtype, x.device)
    rank = kernel.ndim - 2
    strides = _tuple(strides, rank, "strides")
    dilation = _tuple(dilation_rate, rank, "dilation_rate")
    weight = torch.movedim(torch.movedim(kernel, -1, 0), -1, 1)  # (in, out, *spatial)
    padding = _check_padding(padding)
    # The full transposed convolution, then Keras's cropping: 'same' drops (k - s) // 2 at the
    # start and keeps in * s; 'valid' keeps in * s + max(k - s, 0) (zeros past the full size).
    out = _CONV_TRANSPOSE[rank](x, weight, stride=strides, dilation=dilation)
    for i in range(rank):
        effective = (kernel.shape[i] - 1) * dilation[i] + 1
        size = x.shape[2 + i] * strides[i]
        extra = 0 if output_padding is None else _tuple(output_padding, rank,
                                                         "output_padding")[i]
        if padding == "same":
            start = max(effective - strides[i], 0) // 2
        else:
            start, size = 0, size + max(effective - strides[i], 0)
        size += extra
        out = out.narrow(2 + i, start, min(size, out.shape[2 + i] - start))
        missing = size - out.shape[2 + i]
        if missing > 0:
            pads = [0, 0] * (rank - 1 - i) + [0, missing]
            out = F.pad(out, pads)
    return _from_channels_first(out, last)


_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


@op
def max_pool(inputs: Any, pool_size: Any, strides: Any = None, padding: str = "valid",
             data_format: str | None = None) -> Tensor:
    """Max pooling over windows of `pool_size` (strides default to the pool size)."""
    x, last = _to_channels_first(to_tensor(inputs), data_format)
    rank = x.ndim - 2
    size = _tuple(pool_size, rank, "pool_size")
    strides = size if strides is None else _tuple(strides, rank, "strides")
    if _check_padding(padding) == "same":
        x = F.pad(x, _same_pads(x.shape[2:], size, strides, (1,) * rank), value=-math.inf)
    return _from_channels_first(_MAX_POOL[rank](x, size, strides), last)


@op
def average_pool(inputs: Any, pool_size: Any, strides: Any = None, padding: str = "valid",
                 data_format: str | None = None) -> Tensor:
    """Average pooling; with 'same' the padded positions are not counted, as in Keras."""
    x, last = _to_channels_first(_f(inputs), data_format)
    rank = x.ndim - 2
    size = _tuple(pool_size, rank, "pool_size")
    strides = size if strides is None else _tuple(strides, rank, "strides")
    if _check_padding(padding) == "valid":
        return _from_channels_first(_AVG_POOL[rank](x, size, strides), last)
    pads = _same_pads(x.shape[2:], size, strides, (1,) * rank)
    total = _AVG_POOL[rank](F.pad(x, pads), size, strides)
    count = _AVG_POOL[rank](F.pad(torch.ones_like(x[:1, :1]), pads), size, strides)
    return _from_channels_first(total / count, last)


def _adaptive(inputs: Any, output_size: Any, data_format: str | None, kind: str) -> Tensor:
    x, last = _to_channels_first(_f(inputs), data_format)
    rank = x.ndim - 2
    size = _tuple(output_size, rank, "output_size")
    pool = getattr(F, f"adaptive_{kind}_pool{rank}d")
    return _from_channels_first(pool(x, size), last)


@op
def adaptive_average_pool(inputs: Any, output_size: Any, data_format: str | None = None
                          ) -> Tensor:
    """Average pooling to a fixed output size."""
    return _adaptive(inputs, output_size, data_format, "avg")


@op
def adaptive_max_pool(inputs: Any, output_size: Any, data_format: str | None = None) -> Tensor:
    """Max pooling to a fixed output size."""
    return _adaptive(inputs, output_size, data_format, "max")


@op
def depth_to_space(x: Any, block_size: int, data_format: str = "channels_last") -> Tensor:
    """Moves channel blocks into `block_size x block_size` spatial blocks (pixel shuffle)."""
    x, last = _to_channels_first(to_tensor(x), data_format)
    batch, channels, height, width = x.shape
    b = block_size
    # TensorFlow's DCR order: the block offset is the outer part of the channel index.
    x = x.reshape(batch, b, b, channels // (b * b), height, width)
    x = x.permute(0, 3, 4, 1, 5, 2).reshape(batch, channels // (b * b), height * b, width * b)
    return _from_channels_first(x, last)


@op
def space_to_depth(x: Any, block_size: int, data_format: str = "channels_last") -> Tensor:
    """Moves `block_size x block_size` spatial blocks into channels (inverse of depth_to_space)."""
    x, last = _to_channels_first(to_tensor(x), data_format)
    batch, channels, height, width = x.shape
    b = block_size
    x = x.reshape(batch, channels, height // b, b, width // b, b)
    x = x.permute(0, 3, 5, 1, 2, 4).reshape(batch, channels * b * b, height // b, width // b)
    return _from_channels_first(x, last)


@op
def unfold(x: Any, kernel_size: Any, dilation: Any = 1, padding: Any = 0, stride: Any = 1
           ) -> Tensor:
    """Sliding local blocks of a (N, C, H, W) input as columns (torch's `unfold`)."""
    return F.unfold(_f(x), kernel_size, dilation=dilation, padding=padding, stride=stride)


@op
def fold(x: Any, output_size: Any, kernel_size: Any, dilation: Any = 1, padding: Any = 0,
         stride: Any = 1) -> Tensor:
    """Sums columns of sliding blocks back into a (N, C, H, W) tensor (inverse of `unfold`)."""
    return F.fold(_f(x), output_size, kernel_size, dilation=dilation, padding=padding,
                  stride=stride)


@op
def polar(abs_: Any, angle: Any) -> Tensor:
    """Complex numbers from magnitudes and angles: `abs_ * exp(i * angle)`."""
    magnitude, phase = _f(abs_), _f(angle)
    return torch.polar(magnitude, phase.to(magnitude.dtype))


# ---- attention -------------------------------------------------------------------------------

@op
def dot_product_attention(query: Any, key: Any, value: Any, bias: Any = None, mask: Any = None,
                          scale: float | None = None, is_causal: bool = False,
                          flash_attention: bool | None = None,
                          attn_logits_soft_cap: float | None = None) -> Tensor:
    """`softmax(q k^T * scale + bias, masked) v` on (batch, seq, heads, head_dim) inputs, the
    Keras layout; `scale` defaults to `1 / sqrt(head_dim)`."""
    q, k, v = _f(query), _f(key), _f(value)
    if q.ndim != 4:
        raise ValueError(f"`query` must have shape (batch, seq, heads, head_dim). Received "
                         f"{tuple(q.shape)}.")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    # (batch, heads, seq, head_dim)
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    if k.shape[1] != q.shape[1]:  # grouped-query attention: share each key head
        repeats = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(repeats, 1), v.repeat_interleave(repeats, 1)
    logits = torch.matmul(q, k.transpose(-1, -2)) * scale
    if attn_logits_soft_cap is not None:
        logits = attn_logits_soft_cap * torch.tanh(logits / attn_logits_soft_cap)
    if bias is not None:
        logits = logits + to_tensor(bias, logits.dtype, logits.device)
    keep = None
    if mask is not None:
        keep = to_tensor(mask, device=logits.device).bool()
    if is_causal:
        causal = torch.ones(q.shape[2], k.shape[2], dtype=torch.bool, device=q.device).tril()
        keep = causal if keep is None else keep & causal
    if keep is not None:
        logits = logits.masked_fill(~keep, torch.finfo(logits.dtype).min)
    weights = torch.softmax(logits, dim=-1)
    return torch.matmul(weights, v).transpose(1, 2)


__all__ = public_names(globals(), __name__)
