"""Overlap losses for segmentation: Dice and Tversky.

`axis` chooses the axes summed over: None (Keras's default) pools the whole batch into one
value; `axis=(1, 2, 3)` on `(batch, height, width, channels)` gives one value per sample.
The keyword-only `smooth` (our addition, 0 keeps Keras's formula exactly) is added to the
numerator and denominator: with `smooth=1` an empty mask predicted empty scores a perfect 0
instead of 1.
"""

from __future__ import annotations

from typing import Any

import torch

from lamina import config
from lamina._registry import register
from lamina.losses.loss import Loss, standardize_pair

Axis = int | tuple[int, ...] | list[int] | None


def _sum(x: torch.Tensor, axis: Axis) -> torch.Tensor:
    return x.sum() if axis is None else x.sum(dim=tuple(axis) if isinstance(axis, list) else axis)


@register("dice", kind="loss")
def dice(y_true: Any, y_pred: Any, axis: Axis = None, *, smooth: float = 0.0) -> torch.Tensor:
    """Dice loss: `L = 1 - (2 * |X ∩ Y|) / (|X| + |Y|)`, computed as

        L = 1 - (2 * Σ(y_true * y_pred) + smooth) / (Σy_true + Σy_pred + smooth + epsilon)

    over `axis`. The range is [0, 1].

    >>> dice(torch.tensor([[1., 1., 0., 0.]]), torch.tensor([[0., 1., 0., 1.]]))
    tensor(0.5000)
    """
    y_true, y_pred = standardize_pair(y_true, y_pred, "dice")
    intersection = _sum(y_true * y_pred, axis)
    total = _sum(y_true, axis) + _sum(y_pred, axis)
    return 1.0 - (2.0 * intersection + smooth) / (total + smooth + config.epsilon())


@register("tversky", kind="loss")
def tversky(
    y_true: Any,
    y_pred: Any,
    alpha: float = 0.5,
    beta: float = 0.5,
    axis: Axis = None,
    *,
    smooth: float = 0.0,
) -> torch.Tensor:
    """Tversky loss (Salehi et al., 2017): `L = 1 - (TP + smooth) / (TP + α·FP + β·FN + smooth + ε)`

    with `TP = Σ y_true·y_pred`, `FP = Σ (1 - y_true)·y_pred`, `FN = Σ y_true·(1 - y_pred)`
    over `axis`: `alpha` penalizes false positives, `beta` false negatives, as documented
    by Keras (keras-team/keras#23333 fixed its code to match). `alpha = beta = 0.5` is Dice.

    >>> tversky(torch.tensor([[1., 1., 0., 0.]]), torch.tensor([[0., 1., 0., 1.]]), alpha=0.0)
    tensor(0.3333)
    """
    y_true, y_pred = standardize_pair(y_true, y_pred, "tversky")
    true_positives = _sum(y_true * y_pred, axis)
    false_positives = _sum((1.0 - y_true) * y_pred, axis)
    false_negatives = _sum(y_true * (1.0 - y_pred), axis)
    denominator = true_positives + alpha * false_positives + beta * false_negatives
    return 1.0 - (true_positives + smooth) / (denominator + smooth + config.epsilon())


def _check_axis(axis: Any) -> Axis:
    if axis is None or (isinstance(axis, int) and not isinstance(axis, bool)):
        return axis
    if isinstance(axis, (tuple, list)) and all(
        isinstance(a, int) and not isinstance(a, bool) for a in axis
    ):
        return tuple(axis)
    raise ValueError(
        f"`axis` must be None, an integer or a tuple of integers. Received: axis={axis!r}."
    )


@register("Dice")
class Dice(Loss):
    """Dice loss `loss = 1 - 2 * sum(y_true * y_pred) / (sum(y_true) + sum(y_pred))`; see `dice`.

    Args:
        axis: the axes to sum over; None pools everything into one value.
    """

    def __init__(
        self,
        reduction: str | None = "sum_over_batch_size",
        name: str = "dice",
        axis: Axis = None,
        dtype: str | None = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.axis = _check_axis(axis)

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        return dice(y_true, y_pred, axis=self.axis)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis}


@register("Tversky")
class Tversky(Loss):
    """Tversky loss; see `tversky`.

    Args:
        alpha: the weight of false positives.
        beta: the weight of false negatives.
        axis: the axes to sum over; None pools everything into one value.
    """

    def __init__(
        self,
        alpha: float = 0.5,
        beta: float = 0.5,
        reduction: str | None = "sum_over_batch_size",
        name: str = "tversky",
        axis: Axis = None,
        dtype: str | None = None,
    ) -> None:
        for argument, value in (("alpha", alpha), ("beta", beta)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(
                    f"`{argument}` must be a number >= 0. Received: {argument}={value!r}."
                )
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.alpha = alpha
        self.beta = beta
        self.axis = _check_axis(axis)

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        return tversky(y_true, y_pred, alpha=self.alpha, beta=self.beta, axis=self.axis)

    def get_config(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "beta": self.beta, **super().get_config(), "axis": self.axis}
