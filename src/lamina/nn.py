"""Torch-style doors onto lamina's losses: `criterion(input, target)`, `reduction='mean'`.

Each module calls the same pure function as the Keras class (`lamina.losses`), so there is one
implementation of every formula; only the conventions differ: torch's argument order
(prediction first), its reductions ('mean' | 'sum' | 'none', where 'none' keeps one value per
element as `nn.BCEWithLogitsLoss` does), and channels-first class axes (`(N, C, d1, ...)`).

>>> criterion = FocalLoss(task="multiclass")
>>> logits = torch.tensor([[4.0, 0.0, 0.0]]); target = torch.tensor([0])
>>> criterion(logits, target) < torch.nn.functional.cross_entropy(logits, target)
tensor(True)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn as torch_nn

from lamina.losses.metric_learning import TRIPLET_DISTANCES, triplet_loss
from lamina.losses.probabilistic import binary_focal_crossentropy, categorical_focal_crossentropy
from lamina.losses.regression import huber, log_cosh
from lamina.losses.robust import _check_open_unit, categorical_generalized_cross_entropy, circle
from lamina.losses.segmentation import dice, tversky

_REDUCTIONS = ("mean", "sum", "none")


class _TorchStyleLoss(torch_nn.Module):
    """Validates and applies torch's `reduction`."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(
                f"`reduction` must be one of 'mean', 'sum', 'none'. Received: reduction={reduction!r}."
            )
        self.reduction = reduction

    def _reduce(self, values: torch.Tensor) -> torch.Tensor:
        if self.reduction == "mean":
            return values.mean()
        if self.reduction == "sum":
            return values.sum()
        return values

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


def _elementwise(loss_fn, input: torch.Tensor, target: torch.Tensor, **kwargs) -> torch.Tensor:
    """A Keras loss (mean over the last axis) evaluated per element: a trailing axis of 1."""
    return loss_fn(target.unsqueeze(-1), input.unsqueeze(-1), **kwargs)


class FocalLoss(_TorchStyleLoss):
    """Focal loss on logits (Lin et al., 2017): `L = -α_t * (1 - p_t)^γ * log(p_t)`.

    task='binary': `input` holds logits of any shape, `target` 0/1 (or soft) labels of the
    same shape; `p = sigmoid(input)`, `α_t = alpha` for label 1 and `1 - alpha` for label 0
    (`alpha=None` disables the weighting), as torchvision's `sigmoid_focal_loss`.
    task='multiclass': `input` holds logits `(N, C)` or `(N, C, d1, ...)`, `target` class
    indices `(N)` or `(N, d1, ...)`; `p = softmax(input, dim=1)`, `alpha` a scalar or one
    weight per class (None: 1). Targets equal to `ignore_index` are left out, as in
    `nn.CrossEntropyLoss`.

    Both call `lamina.losses.binary_focal_crossentropy` / `categorical_focal_crossentropy`.
    """

    def __init__(
        self,
        alpha: float | Sequence[float] | None = 0.25,
        gamma: float = 2.0,
        reduction: str = "mean",
        *,
        task: str = "binary",
        ignore_index: int = -100,
    ) -> None:
        super().__init__(reduction)
        if task not in ("binary", "multiclass"):
            raise ValueError(
                f"`task` must be 'binary' or 'multiclass'. Received: task={task!r}."
            )
        if task == "binary" and alpha is not None and not isinstance(alpha, (int, float)):
            raise ValueError(
                "A binary focal loss takes a scalar `alpha` (the weight of label 1) or None. "
                f"Received: alpha={alpha!r}."
            )
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or gamma < 0:
            raise ValueError(f"`gamma` must be a number >= 0. Received: gamma={gamma!r}.")
        self.alpha = alpha
        self.gamma = gamma
        self.task = task
        self.ignore_index = ignore_index

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.task == "binary":
            values = _elementwise(
                binary_focal_crossentropy,
                input,
                target.to(input.dtype),
                apply_class_balancing=self.alpha is not None,
                alpha=0.25 if self.alpha is None else self.alpha,
                gamma=self.gamma,
                from_logits=True,
            )
            return self._reduce(values)
        num_classes = input.shape[1]
        valid = target != self.ignore_index
        classes = torch.arange(num_classes, device=input.device).view(
            1, num_classes, *([1] * (input.dim() - 2))
        )
        # One-hot by comparison: no host sync, and an ignored target matches no class.
        one_hot = (target.unsqueeze(1) == classes).to(input.dtype)
        values = categorical_focal_crossentropy(
            one_hot,
            input,
            alpha=1.0 if self.alpha is None else self.alpha,
            gamma=self.gamma,
            from_logits=True,
            axis=1,
        )
        if self.reduction == "mean":
            # Average over the non-ignored targets, as nn.CrossEntropyLoss does.
            return values.sum() / valid.sum().clamp_min(1)
        return self._reduce(values)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha!r}, gamma={self.gamma!r}, task={self.task!r}, {super().extra_repr()}"


def _dims(input: torch.Tensor, dims: Sequence[int] | None) -> tuple[int, ...]:
    return tuple(range(1, input.dim())) if dims is None else tuple(dims)


def _probabilities(input: torch.Tensor, from_logits: bool) -> torch.Tensor:
    return torch.sigmoid(input) if from_logits else input


class DiceLoss(_TorchStyleLoss):
    """Dice loss per sample: `L = 1 - (2 * |X ∩ Y| + smooth) / (|X| + |Y| + smooth)`.

    `input` holds probabilities (or logits with `from_logits=True`), `target` 0/1 masks of the
    same shape; sums run over `dims` (default: every axis but the batch axis), so 'none'
    gives one value per sample. The default `smooth=1` scores an empty mask predicted empty
    as 0. Calls `lamina.losses.dice`.
    """

    def __init__(
        self,
        smooth: float = 1.0,
        reduction: str = "mean",
        *,
        from_logits: bool = False,
        dims: Sequence[int] | None = None,
    ) -> None:
        super().__init__(reduction)
        if isinstance(smooth, bool) or not isinstance(smooth, (int, float)) or smooth < 0:
            raise ValueError(f"`smooth` must be a number >= 0. Received: smooth={smooth!r}.")
        self.smooth = smooth
        self.from_logits = from_logits
        self.dims = dims

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        values = dice(
            target,
            _probabilities(input, self.from_logits),
            axis=_dims(input, self.dims),
            smooth=self.smooth,
        )
        return self._reduce(values)


class TverskyLoss(_TorchStyleLoss):
    """Tversky loss per sample: `L = 1 - (TP + smooth) / (TP + α·FP + β·FN + smooth)`.

    `alpha` weighs false positives, `beta` false negatives; `alpha = beta = 0.5` is Dice.
    Same conventions as `DiceLoss`; calls `lamina.losses.tversky`.
    """

    def __init__(
        self,
        alpha: float = 0.5,
        beta: float = 0.5,
        smooth: float = 1.0,
        reduction: str = "mean",
        *,
        from_logits: bool = False,
        dims: Sequence[int] | None = None,
    ) -> None:
        super().__init__(reduction)
        for argument, value in (("alpha", alpha), ("beta", beta), ("smooth", smooth)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(
                    f"`{argument}` must be a number >= 0. Received: {argument}={value!r}."
                )
        self.alpha = alpha
        self.beta = beta
        self.smooth = smooth
        self.from_logits = from_logits
        self.dims = dims

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        values = tversky(
            target,
            _probabilities(input, self.from_logits),
            alpha=self.alpha,
            beta=self.beta,
            axis=_dims(input, self.dims),
            smooth=self.smooth,
        )
        return self._reduce(values)


class TripletLoss(_TorchStyleLoss):
    """Triplet loss `L = max(0, d(anchor, positive) - d(anchor, negative) + margin)`.

    `forward(anchor, positive, negative)` on `(N, D)` embeddings; `distance` is 'euclidean'
    (the default, equal to `nn.TripletMarginLoss`), 'squared' or 'cosine'. Calls
    `lamina.losses.triplet_loss`.
    """

    def __init__(
        self, margin: float = 1.0, distance: str = "euclidean", reduction: str = "mean"
    ) -> None:
        super().__init__(reduction)
        if distance not in TRIPLET_DISTANCES:
            raise ValueError(
                f"`distance` must be one of {', '.join(repr(d) for d in TRIPLET_DISTANCES)}. "
                f"Received: distance={distance!r}."
            )
        self.margin = margin
        self.distance = distance

    def forward(
        self, anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor
    ) -> torch.Tensor:
        values = triplet_loss(anchor, positive, negative, self.margin, self.distance)
        return self._reduce(values)


class HuberLoss(_TorchStyleLoss):
    """Huber loss per element, quadratic within `delta` and linear beyond; equal to
    `nn.HuberLoss`. Calls `lamina.losses.huber`."""

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction)
        if isinstance(delta, bool) or not isinstance(delta, (int, float)) or delta <= 0:
            raise ValueError(f"`delta` must be a positive number. Received: delta={delta!r}.")
        self.delta = delta

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self._reduce(_elementwise(huber, input, target, delta=self.delta))


class LogCoshLoss(_TorchStyleLoss):
    """`L = log(cosh(input - target))` per element. Calls `lamina.losses.log_cosh`."""

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self._reduce(_elementwise(log_cosh, input, target))


class GeneralizedCrossEntropyLoss(_TorchStyleLoss):
    """Generalized cross-entropy for noisy labels, `L = (1 - p_y^q) / q` with `p = softmax(input)`.

    `forward(input, target)`: logits `(N, C)` and class indices `(N,)`, as `nn.CrossEntropyLoss`.
    Calls `lamina.losses.categorical_generalized_cross_entropy`.
    """

    def __init__(self, q: float = 0.5, reduction: str = "mean") -> None:
        super().__init__(reduction)
        _check_open_unit("q", q)
        self.q = q

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        probabilities = torch.softmax(input, dim=-1)
        return self._reduce(categorical_generalized_cross_entropy(target, probabilities, self.q))


class CircleLoss(_TorchStyleLoss):
    """Circle loss (Sun et al., 2020) over every pair of a batch.

    `forward(embeddings, labels)`: embeddings `(N, D)` (L2-normalized here) and labels `(N,)`;
    one value per query. Calls `lamina.losses.circle`.
    """

    def __init__(self, gamma: float = 80.0, margin: float = 0.4, reduction: str = "mean") -> None:
        super().__init__(reduction)
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or gamma <= 0:
            raise ValueError(f"`gamma` must be a number > 0. Received: gamma={gamma!r}.")
        self.gamma = gamma
        self.margin = margin

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        unit = torch_nn.functional.normalize(embeddings, dim=-1)
        return self._reduce(circle(labels, unit, gamma=self.gamma, margin=self.margin))


__all__ = [
    "CircleLoss", "DiceLoss", "FocalLoss", "GeneralizedCrossEntropyLoss", "HuberLoss",
    "LogCoshLoss", "TripletLoss", "TverskyLoss",
]
