"""Activation functions, each with its formula, by name and as callables.

`get("relu")`, `get(None)` (linear) and `get(callable)` resolve what a layer's `activation=`
argument accepts; `serialize` gives back the name stored in a model's config.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F

from lamina import _short_softmax
from lamina._registry import canonical_name, lookup, names, register
from lamina.saving import serialization

Tensor = torch.Tensor


@register("linear", kind="activation")
def linear(x: Tensor) -> Tensor:
    """Identity, `f(x) = x` (derivative 1): the regression output layer."""
    return x


@register("sigmoid", kind="activation")
def sigmoid(x: Tensor) -> Tensor:
    """`f(x) = 1 / (1 + e^(-x))`, range (0, 1), derivative `f(x) * (1 - f(x))`."""
    return torch.sigmoid(x)


@register("tanh", kind="activation")
def tanh(x: Tensor) -> Tensor:
    """`f(x) = (e^x - e^(-x)) / (e^x + e^(-x))`, range (-1, 1), derivative `1 - f(x)^2`."""
    return torch.tanh(x)


@register("relu", kind="activation")
def relu(
    x: Tensor, negative_slope: float = 0.0, max_value: float | None = None, threshold: float = 0.0
) -> Tensor:
    """`f(x) = max(0, x)`, derivative 1 if x > 0 else 0.

    Keras's extended form: `negative_slope * (x - threshold)` below `threshold`, capped at
    `max_value`.
    """
    if negative_slope == 0.0 and max_value is None and threshold == 0.0:
        return F.relu(x)
    below = negative_slope * (x - threshold) if negative_slope else torch.zeros_like(x)
    y = torch.where(x >= threshold, x, below)
    return y.clamp_max(max_value) if max_value is not None else y


@register("relu6", kind="activation")
def relu6(x: Tensor) -> Tensor:
    """`f(x) = min(max(0, x), 6)`."""
    return F.relu6(x)


@register("leaky_relu", kind="activation")
def leaky_relu(x: Tensor, negative_slope: float = 0.2) -> Tensor:
    """`f(x) = max(alpha * x, x)`, derivative 1 if x > 0 else alpha.

    torch's default alpha is 0.01; Keras's `leaky_relu` defaults to 0.2, which is kept here so
    Keras code behaves the same. Pass `negative_slope=0.01` for torch's value.
    """
    return F.leaky_relu(x, negative_slope)


@register("elu", kind="activation")
def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    """`f(x) = x if x > 0 else alpha * (e^x - 1)`."""
    return F.elu(x, alpha)


@register("selu", kind="activation")
def selu(x: Tensor) -> Tensor:
    """`f(x) = scale * elu(x, alpha)` with the self-normalising constants of Klambauer et al."""
    return F.selu(x)


@register("swish", "silu", kind="activation")
def swish(x: Tensor) -> Tensor:
    """`f(x) = x * sigmoid(x)`, derivative `sigmoid(x) + x * sigmoid(x) * (1 - sigmoid(x))`."""
    return F.silu(x)


silu = swish


@register("gelu", kind="activation")
def gelu(x: Tensor, approximate: bool = False) -> Tensor:
    """`f(x) = x * Phi(x)`, Phi the standard normal CDF.

    `approximate=True` uses `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`.
    """
    return F.gelu(x, approximate="tanh" if approximate else "none")


@register("softplus", kind="activation")
def softplus(x: Tensor) -> Tensor:
    """`f(x) = log(1 + e^x)`."""
    return F.softplus(x)


@register("softsign", kind="activation")
def softsign(x: Tensor) -> Tensor:
    """`f(x) = x / (1 + |x|)`."""
    return F.softsign(x)


@register("hard_sigmoid", kind="activation")
def hard_sigmoid(x: Tensor) -> Tensor:
    """`f(x) = relu6(x + 3) / 6`, the piecewise-linear sigmoid of Keras 3."""
    return F.hardsigmoid(x)


@register("hard_silu", "hard_swish", kind="activation")
def hard_silu(x: Tensor) -> Tensor:
    """`f(x) = x * hard_sigmoid(x)`."""
    return F.hardswish(x)


@register("mish", kind="activation")
def mish(x: Tensor) -> Tensor:
    """`f(x) = x * tanh(softplus(x))`."""
    return F.mish(x)


@register("exponential", kind="activation")
def exponential(x: Tensor) -> Tensor:
    """`f(x) = e^x`."""
    return torch.exp(x)


@register("softmax", kind="activation")
def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """`f(x_i) = e^x_i / sum_j e^x_j` along `axis`: each slice sums to 1."""
    return _short_softmax.softmax(x, axis)


@register("log_softmax", kind="activation")
def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """`f(x_i) = x_i - log(sum_j e^x_j)`, computed stably."""
    return _short_softmax.log_softmax(x, axis)


def get(identifier: Any) -> Callable[[Tensor], Tensor]:
    """Resolve an `activation=` argument: None (linear), a name, a config dict or a callable."""
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        if identifier in names("function"):
            # A custom activation registered with register_keras_serializable().
            return lookup("function", identifier)
        return lookup("activation", identifier)
    if isinstance(identifier, dict):
        return serialization.deserialize(identifier)
    if callable(identifier):
        return identifier
    raise TypeError(
        "An activation must be None, a name, or a callable. "
        f"Received: {identifier!r} of type {type(identifier).__name__}. "
        f"Valid names: {', '.join(names('activation'))}."
    )


def serialize(activation: Callable) -> Any:
    """The name of a built-in activation, or the serialized form of a custom one."""
    name = canonical_name(activation)
    if name is not None:
        return name
    return serialization.serialize(activation)
