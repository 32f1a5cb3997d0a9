"""Weight constraints, applied to a weight in place after each optimizer step (Keras semantics)."""

from __future__ import annotations

from typing import Any

import torch

from lamina._registry import lookup, register
from lamina.saving import serialization

Tensor = torch.Tensor


class Constraint:
    """Base class: `constraint(weight) -> projected weight`."""

    _registry_kind = "constraint"

    def __call__(self, w: Tensor) -> Tensor:
        return w

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Constraint":
        return cls(**config)


def _norms(w: Tensor, axis: Any) -> Tensor:
    return w.square().sum(dim=axis, keepdim=True).sqrt()


@register("MaxNorm", "max_norm")
class MaxNorm(Constraint):
    """Rescale slices along `axis` whose L2 norm exceeds `max_value` down to it."""

    def __init__(self, max_value: float = 2.0, axis: int | list[int] = 0):
        self.max_value, self.axis = max_value, axis

    def __call__(self, w):
        norms = _norms(w, self.axis)
        desired = norms.clamp(0, self.max_value)
        return w * (desired / (norms + 1e-7))

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


@register("NonNeg", "non_neg")
class NonNeg(Constraint):
    """Zero out negative weights."""

    def __call__(self, w):
        return w.clamp_min(0)


@register("UnitNorm", "unit_norm")
class UnitNorm(Constraint):
    """Unit L2 norm along `axis`."""

    def __init__(self, axis: int | list[int] = 0):
        self.axis = axis

    def __call__(self, w):
        return w / (_norms(w, self.axis) + 1e-7)

    def get_config(self):
        return {"axis": self.axis}


@register("MinMaxNorm", "min_max_norm")
class MinMaxNorm(Constraint):
    """Norms along `axis` moved towards [min_value, max_value] at `rate` (1.0: strictly)."""

    def __init__(self, min_value: float = 0.0, max_value: float = 1.0, rate: float = 1.0,
                 axis: int | list[int] = 0):
        self.min_value, self.max_value, self.rate, self.axis = min_value, max_value, rate, axis

    def __call__(self, w):
        norms = _norms(w, self.axis)
        desired = self.rate * norms.clamp(self.min_value, self.max_value) + (1 - self.rate) * norms
        return w * (desired / (norms + 1e-7))

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate,
                "axis": self.axis}


def get(identifier: Any) -> Constraint | None:
    if identifier is None:
        return None
    if isinstance(identifier, str):
        return lookup("constraint", identifier)()
    if isinstance(identifier, dict):
        return serialization.deserialize(identifier)
    if callable(identifier):
        return identifier
    raise TypeError(f"Could not interpret constraint {identifier!r}.")
