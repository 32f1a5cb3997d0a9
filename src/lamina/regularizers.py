"""Weight penalties added to the training loss: `L1`, `L2`, `L1L2`, `OrthogonalRegularizer`.

A layer's `kernel_regularizer=` (and bias/activity/...) takes one of these or its name; the
engine adds `sum(model.losses)` to the loss, as Keras does.
"""

from __future__ import annotations

from typing import Any

import torch

from lamina._registry import lookup, register
from lamina.saving import serialization

Tensor = torch.Tensor


class Regularizer:
    """Base class: `regularizer(weight) -> scalar penalty`."""

    _registry_kind = "regularizer"

    def __call__(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Regularizer":
        return cls(**config)


def _check_factor(name: str, value: float) -> float:
    value = float(value)
    if value < 0:
        raise ValueError(f"`{name}` must be >= 0. Received: {name}={value}.")
    return value


@register("L1L2", "l1_l2")
class L1L2(Regularizer):
    """`l1 * sum(|w|) + l2 * sum(w^2)`."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        self.l1 = _check_factor("l1", l1)
        self.l2 = _check_factor("l2", l2)

    def __call__(self, x: Tensor) -> Tensor:
        penalty = x.new_zeros(())
        if self.l1:
            penalty = penalty + self.l1 * x.abs().sum()
        if self.l2:
            penalty = penalty + self.l2 * x.square().sum()
        return penalty

    def get_config(self) -> dict[str, Any]:
        return {"l1": self.l1, "l2": self.l2}


@register("L1", "l1")
class L1(Regularizer):
    """`l1 * sum(|w|)`."""

    def __init__(self, l1: float = 0.01):
        self.l1 = _check_factor("l1", l1)

    def __call__(self, x: Tensor) -> Tensor:
        return self.l1 * x.abs().sum()

    def get_config(self) -> dict[str, Any]:
        return {"l1": self.l1}


@register("L2", "l2")
class L2(Regularizer):
    """`l2 * sum(w^2)`: the L2 penalty `weight_decay * ||W||^2` as a loss term."""

    def __init__(self, l2: float = 0.01):
        self.l2 = _check_factor("l2", l2)

    def __call__(self, x: Tensor) -> Tensor:
        return self.l2 * x.square().sum()

    def get_config(self) -> dict[str, Any]:
        return {"l2": self.l2}


@register("OrthogonalRegularizer", "orthogonal_regularizer")
class OrthogonalRegularizer(Regularizer):
    """`factor * mean_{i != j} |w_i . w_j|` over the L2-normalised rows (or columns) `w_i` of a
    2-D kernel: zero exactly when they are orthogonal."""

    def __init__(self, factor: float = 0.01, mode: str = "rows"):
        self.factor = _check_factor("factor", factor)
        if mode not in ("rows", "columns"):
            raise ValueError(f"`mode` must be 'rows' or 'columns'. Received: mode={mode!r}.")
        self.mode = mode

    def __call__(self, x: Tensor) -> Tensor:
        if x.ndim != 2:
            raise ValueError(
                "OrthogonalRegularizer applies to 2-D kernels. "
                f"Received a weight of shape {tuple(x.shape)}."
            )
        if self.mode == "columns":
            x = x.t()
        x = torch.nn.functional.normalize(x, dim=1)
        product = x @ x.t()
        size = product.shape[0]
        # Only pairs of distinct rows count: a zero row (normalized to zeros) adds no penalty.
        off_diagonal = product * (1.0 - torch.eye(size, dtype=x.dtype, device=x.device))
        return self.factor * off_diagonal.abs().sum() / (size * (size - 1) or 1)

    def get_config(self) -> dict[str, Any]:
        return {"factor": self.factor, "mode": self.mode}


def get(identifier: Any) -> Regularizer | None:
    if identifier is None:
        return None
    if isinstance(identifier, str):
        return lookup("regularizer", identifier)()
    if isinstance(identifier, dict):
        return serialization.deserialize(identifier)
    if callable(identifier):
        return identifier
    raise TypeError(f"Could not interpret regularizer {identifier!r}.")


l1 = L1
l2 = L2
l1_l2 = L1L2
