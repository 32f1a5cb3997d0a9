"""Softmax over short rows on the CPU's vector path.

torch's float32 CPU kernels for softmax, log_softmax and cross_entropy over the last axis take
a row shorter than one SIMD vector (16 floats with AVX-512, 8 with AVX2) element by element: on
1024 x 10 logits each runs 5-6x as long as on 1024 x 16, about 17 ns an element. Padding such
rows with -inf to a full vector changes no value (`exp(-inf) = 0` adds nothing to a row's sum;
an all -inf or NaN row stays NaN) and puts them on the vector path. Under autograd the pad and
slice nodes cost more than the kernels save below about 5,000 elements (128-256 rows of 10
classes), so training takes the padded path only on larger batches of 5 or more classes;
evaluate, predict and metrics take it from 2,048 elements. Figures: docs/benchmarks.md, "Short
softmax rows".
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

Tensor = torch.Tensor

# Float32 lanes of one vector, by the kernels torch dispatched to; others were not measured.
_VECTOR_WIDTH = {"AVX512": 16, "AVX2": 8}
# Below about 2,048 elements the pad's own cost eats the gain (a 128 x 5 batch breaks even);
# with a backward pass, below about 5,000, and at any size for 3-4 classes.
_MIN_ELEMENTS = 2048
_MIN_ELEMENTS_WITH_GRAD, _MIN_CLASSES_WITH_GRAD = 5000, 5


@functools.cache
def _vector_width() -> int:
    return _VECTOR_WIDTH.get(torch.backends.cpu.get_cpu_capability(), 0)


def padding(x: Tensor, axis: int = -1) -> int:
    """How many -inf columns put a softmax over `x`'s `axis` on the vector path: 0 wherever
    that was not measured to pay (any axis but the last). torch.compile and export keep the
    plain kernel: a graph would bake the branch in, or guard on a dynamic batch size."""
    if torch.compiler.is_compiling() or not x.ndim or axis not in (-1, x.ndim - 1):
        return 0
    classes, elements = x.shape[-1], x.numel()
    if type(classes) is not int or type(elements) is not int:
        return 0
    width = _vector_width()
    if not 3 <= classes < width or elements < _MIN_ELEMENTS:
        return 0
    if x.dtype is not torch.float32 or not x.is_cpu:
        return 0
    if x.requires_grad and torch.is_grad_enabled() and (
            elements < _MIN_ELEMENTS_WITH_GRAD or classes < _MIN_CLASSES_WITH_GRAD):
        return 0
    return width - classes


def _on_vector_path(kernel, x: Tensor, pad: int) -> Tensor:
    """`kernel` over the padded rows, as a view of the original width."""
    return kernel(F.pad(x, (0, pad), value=float("-inf")), dim=-1)[..., :x.shape[-1]]


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """`torch.softmax(x, dim=axis)`."""
    pad = padding(x, axis)
    if not pad:
        return torch.softmax(x, dim=axis)
    return _on_vector_path(torch.softmax, x, pad).contiguous()


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """`torch.log_softmax(x, dim=axis)`."""
    pad = padding(x, axis)
    if not pad:
        return torch.log_softmax(x, dim=axis)
    return _on_vector_path(torch.log_softmax, x, pad).contiguous()


def cross_entropy(logits: Tensor, labels: Tensor, reduction: str = "mean") -> Tensor:
    """`F.cross_entropy` on `(batch, classes)` logits and class indices. The padded path reads
    the log-probabilities through a view of the real columns, so a label past them still gets
    torch's out-of-bounds error rather than an infinite loss."""
    pad = padding(logits) if logits.ndim == 2 else 0
    if not pad:
        return F.cross_entropy(logits, labels, reduction=reduction)
    return F.nll_loss(_on_vector_path(torch.log_softmax, logits, pad), labels,
                      reduction=reduction)
