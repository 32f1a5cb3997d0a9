"""Activation layers with parameters: ReLU, LeakyReLU, PReLU, ELU, Softmax."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from lamina import activations
from lamina import initializers as initializers_module
from lamina._registry import register
from lamina.layers.core import serialize_argument
from lamina.layers.layer import Layer


@register("ReLU")
class ReLU(Layer):
    """`f(x) = max(0, x)`, with Keras's `max_value`, `negative_slope` and `threshold`."""

    def __init__(self, max_value: float | None = None, negative_slope: float = 0.0,
                 threshold: float = 0.0, **kwargs: Any):
        super().__init__(**kwargs)
        if max_value is not None and max_value < 0:
            raise ValueError(f"`max_value` must be >= 0. Received: max_value={max_value}.")
        if negative_slope < 0:
            raise ValueError(f"`negative_slope` must be >= 0. Received: {negative_slope}.")
        self.max_value, self.negative_slope, self.threshold = max_value, negative_slope, threshold
        self.supports_masking = True

    def call(self, inputs):
        return activations.relu(inputs, self.negative_slope, self.max_value, self.threshold)

    def get_config(self):
        return {**super().get_config(), "max_value": self.max_value,
                "negative_slope": self.negative_slope, "threshold": self.threshold}


@register("LeakyReLU")
class LeakyReLU(Layer):
    """`f(x) = max(alpha * x, x)`; Keras's layer default alpha is 0.3 (torch's is 0.01)."""

    def __init__(self, negative_slope: float = 0.3, **kwargs: Any):
        if "alpha" in kwargs:  # the Keras 2 name
            negative_slope = kwargs.pop("alpha")
        super().__init__(**kwargs)
        if negative_slope < 0:
            raise ValueError(f"`negative_slope` must be >= 0. Received: {negative_slope}.")
        self.negative_slope = float(negative_slope)
        self.supports_masking = True

    def call(self, inputs):
        return F.leaky_relu(inputs, self.negative_slope)

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


@register("PReLU")
class PReLU(Layer):
    """`f(x) = max(alpha * x, x)` with a learned alpha per feature (shared over `shared_axes`)."""

    def __init__(self, alpha_initializer: Any = "zeros", alpha_regularizer: Any = None,
                 alpha_constraint: Any = None, shared_axes: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.alpha_initializer = initializers_module.get(alpha_initializer)
        self.alpha_regularizer = alpha_regularizer
        self.alpha_constraint = alpha_constraint
        self.shared_axes = None if shared_axes is None else (
            [shared_axes] if isinstance(shared_axes, int) else list(shared_axes))
        self.supports_masking = True

    def build(self, input_shape):
        shape = list(input_shape[1:])
        for axis in self.shared_axes or []:
            shape[axis - 1] = 1
        self.alpha = self.add_weight(shape=tuple(shape), initializer=self.alpha_initializer,
                                     regularizer=self.alpha_regularizer,
                                     constraint=self.alpha_constraint, name="alpha")

    def call(self, inputs):
        # Keras's formula, so the gradient at exactly 0 is Keras's too (0, from relu'(0) = 0);
        # a where(x >= 0, ...) form would give 1 there.
        return F.relu(inputs) - self.alpha * F.relu(-inputs)

    def get_config(self):
        return {**super().get_config(),
                "alpha_initializer": serialize_argument(self.alpha_initializer),
                "alpha_regularizer": serialize_argument(self.alpha_regularizer),
                "alpha_constraint": serialize_argument(self.alpha_constraint),
                "shared_axes": self.shared_axes}


@register("ELU")
class ELU(Layer):
    """`f(x) = x if x > 0 else alpha * (e^x - 1)`."""

    def __init__(self, alpha: float = 1.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.alpha = float(alpha)
        self.supports_masking = True

    def call(self, inputs):
        return F.elu(inputs, self.alpha)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


@register("Softmax")
class Softmax(Layer):
    """Softmax over `axis`; a boolean `mask` (True = keep) sends masked positions to 0."""

    def __init__(self, axis: int = -1, **kwargs: Any):
        super().__init__(**kwargs)
        self.axis = axis
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is not None:
            inputs = inputs.masked_fill(~mask.bool(), torch.finfo(inputs.dtype).min)
        return activations.softmax(inputs, self.axis)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
