"""Hinge losses for maximum-margin classifiers: hinge, squared hinge, categorical hinge.

Labels are -1/+1; 0/1 labels are mapped to -1/+1 first, as Keras does (decided on the device,
without a host sync).
"""

from __future__ import annotations

from typing import Any

import torch

from lamina._registry import register
from lamina.losses.loss import Loss, standardize_pair


def _signed_labels(y_true: torch.Tensor) -> torch.Tensor:
    """0/1 labels as -1/+1; any other labels unchanged."""
    is_binary = ((y_true == 0) | (y_true == 1)).all()
    return torch.where(is_binary, 2.0 * y_true - 1.0, y_true)


@register("hinge", kind="loss")
def hinge(y_true: Any, y_pred: Any) -> torch.Tensor:
    """Hinge loss: `L = mean(max(1 - y_true * y_pred, 0))` over the last axis.

    >>> hinge(torch.tensor([[1., -1.]]), torch.tensor([[0.5, 0.5]]))
    tensor([1.])
    """
    y_true, y_pred = standardize_pair(y_true, y_pred, "hinge")
    y_true = _signed_labels(y_true)
    return (1.0 - y_true * y_pred).clamp_min(0.0).mean(dim=-1)


@register("squared_hinge", kind="loss")
def squared_hinge(y_true: Any, y_pred: Any) -> torch.Tensor:
    """Squared hinge loss: `L = mean(max(1 - y_true * y_pred, 0)²)` over the last axis.

    >>> squared_hinge(torch.tensor([[1., -1.]]), torch.tensor([[0.5, 0.5]]))
    tensor([1.2500])
    """
    y_true, y_pred = standardize_pair(y_true, y_pred, "squared_hinge")
    y_true = _signed_labels(y_true)
    return (1.0 - y_true * y_pred).clamp_min(0.0).square().mean(dim=-1)


@register("categorical_hinge", kind="loss")
def categorical_hinge(y_true: Any, y_pred: Any) -> torch.Tensor:
    """Categorical hinge: `L = max(neg - pos + 1, 0)` with `pos = Σ y_true * y_pred` and
    `neg = max((1 - y_true) * y_pred)` over the last (class) axis.

    >>> categorical_hinge(torch.tensor([[0., 1., 0.]]), torch.tensor([[0.3, 0.6, 0.1]]))
    tensor([0.7000])
    """
    y_true, y_pred = standardize_pair(y_true, y_pred, "categorical_hinge")
    positive = (y_true * y_pred).sum(dim=-1)
    negative = ((1.0 - y_true) * y_pred).amax(dim=-1)
    return (negative - positive + 1.0).clamp_min(0.0)


@register("Hinge")
class Hinge(Loss):
    """Hinge loss `loss = maximum(1 - y_true * y_pred, 0)`; see `hinge`."""

    def __init__(
        self,
        reduction: str | None = "sum_over_batch_size",
        name: str = "hinge",
        dtype: str | None = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        return hinge(y_true, y_pred)


@register("SquaredHinge")
class SquaredHinge(Loss):
    """Squared hinge loss `loss = square(maximum(1 - y_true * y_pred, 0))`; see `squared_hinge`."""

    def __init__(
        self,
        reduction: str | None = "sum_over_batch_size",
        name: str = "squared_hinge",
        dtype: str | None = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        return squared_hinge(y_true, y_pred)


@register("CategoricalHinge")
class CategoricalHinge(Loss):
    """Categorical hinge `loss = maximum(neg - pos + 1, 0)`; see `categorical_hinge`."""

    def __init__(
        self,
        reduction: str | None = "sum_over_batch_size",
        name: str = "categorical_hinge",
        dtype: str | None = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        return categorical_hinge(y_true, y_pred)
