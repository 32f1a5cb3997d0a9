"""Merging layers: Concatenate, Add, Subtract, Multiply, Average, Maximum, Minimum, Dot.

Each takes a list of tensors. The element-wise ones broadcast as torch does; a mask on any input
is combined (a step is kept if it is kept in any input, as Keras does).
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F

from lamina._registry import register
from lamina.errors import ShapeError
from lamina.layers.layer import Layer


class _Merge(Layer):
    """Base of the element-wise merges: `combine` reduces the list of inputs."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.supports_masking = True

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) < self._min_inputs or \
                not all(isinstance(s, (list, tuple)) for s in input_shape):
            raise ValueError(
                f"Layer {self.name!r} ({type(self).__name__}) must be called on a list of at "
                f"least {self._min_inputs} tensors. Received input shape: {input_shape}."
            )

    _min_inputs = 2

    def call(self, inputs):
        return self.combine(list(inputs))

    def combine(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def compute_mask(self, inputs, mask=None):
        masks = [getattr(x, "_keras_mask", None) for x in inputs]
        masks = [m for m in masks if m is not None]
        if not masks:
            return None
        return functools.reduce(torch.logical_or, masks)


@register("Add")
class Add(_Merge):
    """Element-wise sum of the inputs (the residual connection of ResNet and the Transformer)."""

    def combine(self, inputs):
        return functools.reduce(torch.add, inputs)


@register("Subtract")
class Subtract(_Merge):
    """`inputs[0] - inputs[1]`."""

    def build(self, input_shape):
        super().build(input_shape)
        if len(input_shape) != 2:
            raise ValueError(f"Subtract takes exactly 2 inputs. Received {len(input_shape)}.")

    def combine(self, inputs):
        return inputs[0] - inputs[1]


@register("Multiply")
class Multiply(_Merge):
    """Element-wise product of the inputs."""

    def combine(self, inputs):
        return functools.reduce(torch.mul, inputs)


@register("Average")
class Average(_Merge):
    """Element-wise mean of the inputs."""

    def combine(self, inputs):
        return functools.reduce(torch.add, inputs) / len(inputs)


@register("Maximum")
class Maximum(_Merge):
    """Element-wise maximum of the inputs."""

    def combine(self, inputs):
        return functools.reduce(torch.maximum, inputs)


@register("Minimum")
class Minimum(_Merge):
    """Element-wise minimum of the inputs."""

    def combine(self, inputs):
        return functools.reduce(torch.minimum, inputs)


@register("Concatenate")
class Concatenate(_Merge):
    """Concatenates the inputs along `axis` (default: the last)."""

    def __init__(self, axis: int = -1, **kwargs: Any):
        super().__init__(**kwargs)
        self.axis = axis

    def build(self, input_shape):
        super().build(input_shape)
        rank = len(input_shape[0])
        axis = self.axis % rank
        for shape in input_shape[1:]:
            if len(shape) != rank or any(
                a != b and a is not None and b is not None
                for i, (a, b) in enumerate(zip(shape, input_shape[0])) if i != axis
            ):
                raise ShapeError(
                    f"Layer {self.name!r} (Concatenate) needs inputs with matching shapes except "
                    f"on the concat axis {self.axis}. Received: input_shape={input_shape}."
                )

    def combine(self, inputs):
        return torch.cat(inputs, dim=self.axis)

    def compute_mask(self, inputs, mask=None):
        masks = [getattr(x, "_keras_mask", None) for x in inputs]
        if all(m is None for m in masks):
            return None
        if self.axis % inputs[0].ndim == inputs[0].ndim - 1:
            # Concatenating features: a step is kept where any input keeps it.
            return functools.reduce(torch.logical_or, [m for m in masks if m is not None])
        filled = [torch.ones(x.shape[:-1], dtype=torch.bool, device=x.device) if m is None else m
                  for x, m in zip(inputs, masks)]
        return torch.cat(filled, dim=self.axis)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


@register("Dot")
class Dot(_Merge):
    """Dot product of two inputs along `axes`; `normalize=True` gives the cosine similarity."""

    def __init__(self, axes: int | tuple[int, int], normalize: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.axes = axes
        self.normalize = normalize
        self.supports_masking = False

    def combine(self, inputs):
        a, b = inputs
        axes = (self.axes, self.axes) if isinstance(self.axes, int) else tuple(self.axes)
        if self.normalize:
            a, b = F.normalize(a, dim=axes[0]), F.normalize(b, dim=axes[1])
        a = a.movedim(axes[0], -1)
        b = b.movedim(axes[1], 1 if b.ndim > 2 else -1)
        if a.ndim == 2 and b.ndim == 2:
            return (a * b).sum(dim=-1, keepdim=True)
        return torch.matmul(a, b)

    def get_config(self):
        axes = self.axes if isinstance(self.axes, int) else list(self.axes)
        return {**super().get_config(), "axes": axes, "normalize": self.normalize}


def add(inputs: list, **kwargs: Any):
    """Functional form of `Add`."""
    return Add(**kwargs)(inputs)


def concatenate(inputs: list, axis: int = -1, **kwargs: Any):
    """Functional form of `Concatenate`."""
    return Concatenate(axis=axis, **kwargs)(inputs)


def multiply(inputs: list, **kwargs: Any):
    """Functional form of `Multiply`."""
    return Multiply(**kwargs)(inputs)


def average(inputs: list, **kwargs: Any):
    """Functional form of `Average`."""
    return Average(**kwargs)(inputs)
