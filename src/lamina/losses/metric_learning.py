"""Metric-learning losses: the triplet loss (Schroff et al., 2015) and its batch-mining forms
for `compile`.

`triplet_loss(anchor, positive, negative)` is the FaceNet formula on explicit triplets.
`TripletSemiHardLoss` and `TripletHardLoss` take `y_true` = integer labels of shape (batch,)
and `y_pred` = embeddings of shape (batch, dim) and mine the triplets inside the batch, as
TensorFlow Addons defined them (FaceNet, arXiv:1503.03832; Hermans et al., arXiv:1703.07737).
Their value is one scalar for the batch, so reductions and sample weights do not apply.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Union

import torch
import torch.nn.functional as F

from lamina._registry import register
from lamina.errors import ShapeError
from lamina.losses.loss import Loss, as_float_tensor

TRIPLET_DISTANCES = ("euclidean", "squared", "cosine")
DISTANCE_METRICS = ("L2", "squared-L2", "angular")
DistanceMetric = Union[str, Callable[[torch.Tensor], torch.Tensor]]


def _check_choice(argument: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(
            f"`{argument}` must be one of {', '.join(repr(c) for c in choices)}. "
            f"Received: {argument}={value!r}."
        )


def _distance(x: torch.Tensor, y: torch.Tensor, distance: str) -> torch.Tensor:
    if distance == "euclidean":
        # torch's own distance (eps=1e-6 inside the norm, as nn.TripletMarginLoss uses), so
        # the gradient stays finite when two embeddings coincide.
        return F.pairwise_distance(x, y, p=2.0, eps=1e-6)
    if distance == "squared":
        return (x - y).square().sum(dim=-1)
    return 1.0 - F.cosine_similarity(x, y, dim=-1)


def triplet_loss(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    margin: float = 1.0,
    distance: str = "euclidean",
) -> torch.Tensor:
    """Triplet loss per triplet: `L = max(0, d(anchor, positive) - d(anchor, negative) + margin)`.

    Args:
        anchor, positive, negative: embeddings of shape (batch, dim).
        margin: the gap wanted between the negative and the positive distance.
        distance: 'euclidean' (`||a - b||`), 'squared' (`||a - b||²`) or 'cosine'
            (`1 - cos(a, b)`).

    Returns:
        The loss of each triplet, shape (batch,).

    >>> a = torch.tensor([[0., 0.]]); p = torch.tensor([[0., 1.]]); n = torch.tensor([[3., 4.]])
    >>> triplet_loss(a, p, n, margin=5.0, distance="squared")
    tensor([0.])
    """
    _check_choice("distance", distance, TRIPLET_DISTANCES)
    anchor = as_float_tensor(anchor)
    positive = as_float_tensor(positive).to(anchor.dtype)
    negative = as_float_tensor(negative).to(anchor.dtype)
    if not anchor.shape == positive.shape == negative.shape:
        raise ShapeError(
            "`triplet_loss` needs anchor, positive and negative of the same shape. Received: "
            f"anchor.shape={tuple(anchor.shape)}, positive.shape={tuple(positive.shape)}, "
            f"negative.shape={tuple(negative.shape)}."
        )
    positive_distance = _distance(anchor, positive, distance)
    negative_distance = _distance(anchor, negative, distance)
    return (positive_distance - negative_distance + margin).clamp_min(0.0)


def pairwise_distance_matrix(
    embeddings: torch.Tensor, distance_metric: DistanceMetric = "L2"
) -> torch.Tensor:
    """(batch, batch) distances: 'L2' Euclidean, 'squared-L2', 'angular' (1 - cosine), or
    a callable mapping embeddings to that matrix. The diagonal is 0."""
    if callable(distance_metric):
        return distance_metric(embeddings)
    if distance_metric == "angular":
        unit = F.normalize(embeddings, p=2.0, dim=1)
        return (1.0 - unit @ unit.T).clamp_min(0.0)
    squared_norms = embeddings.square().sum(dim=1)
    squared = squared_norms[:, None] + squared_norms[None, :] - 2.0 * embeddings @ embeddings.T
    off_diagonal = ~torch.eye(len(embeddings), dtype=torch.bool, device=embeddings.device)
    squared = squared.clamp_min(0.0) * off_diagonal
    if distance_metric == "squared-L2":
        return squared
    # sqrt has an infinite slope at 0: nudge zeros before it and zero them again after.
    zero = squared <= 0.0
    return torch.sqrt(squared + zero * 1e-16) * ~zero


def _labels_and_embeddings(
    y_true: Any, y_pred: Any, loss_name: str
) -> tuple[torch.Tensor, torch.Tensor]:
    embeddings = as_float_tensor(y_pred)
    if embeddings.dtype in (torch.float16, torch.bfloat16):
        embeddings = embeddings.float()
    labels = torch.as_tensor(y_true, device=embeddings.device).reshape(-1)
    if embeddings.dim() != 2 or labels.numel() != embeddings.shape[0]:
        raise ShapeError(
            f"`{loss_name}` needs y_true = labels of shape (batch,) and y_pred = embeddings "
            f"of shape (batch, dim). Received: y_true.shape={tuple(torch.as_tensor(y_true).shape)}, "
            f"y_pred.shape={tuple(embeddings.shape)}."
        )
    return labels, embeddings


def _masked_minimum(data: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Row-wise minimum over `mask`; the row maximum where the mask is empty (as in TFA)."""
    return torch.where(mask.any(-1), torch.where(mask, data, torch.inf).amin(-1), data.amax(-1))


def _masked_maximum(data: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Row-wise maximum over `mask`; the row minimum where the mask is empty (as in TFA)."""
    return torch.where(mask.any(-1), torch.where(mask, data, -torch.inf).amax(-1), data.amin(-1))


@register("triplet_semihard_loss", kind="loss")
def triplet_semihard_loss(
    y_true: Any, y_pred: Any, margin: float = 1.0, distance_metric: DistanceMetric = "L2"
) -> torch.Tensor:
    """Triplet loss with semi-hard negative mining, one scalar for the batch.

    For every anchor a and positive p (same label, a != p) the negative n is the closest one
    farther than p (`d(a,n) > d(a,p)`), or the farthest negative when none is; then
    `L = mean over (a, p) of max(0, d(a,p) - d(a,n) + margin)`. A batch without positive
    pairs gives 0.

    >>> labels = torch.tensor([0, 0, 1, 1])
    >>> embeddings = torch.tensor([[0., 0.], [0., 0.1], [5., 5.], [5., 5.1]])
    >>> triplet_semihard_loss(labels, embeddings)
    tensor(0.)
    """
    labels, embeddings = _labels_and_embeddings(y_true, y_pred, "triplet_semihard_loss")
    distances = pairwise_distance_matrix(embeddings, distance_metric)  # (a, b)
    same = labels[:, None] == labels[None, :]
    different = ~same
    # (anchor, positive, negative): negatives farther from the anchor than the positive.
    farther = different[:, None, :] & (distances[:, None, :] > distances[:, :, None])
    semi_hard = _masked_minimum(distances[:, None, :].expand_as(farther), farther)
    farthest = _masked_maximum(distances, different)[:, None]
    negative_distance = torch.where(farther.any(-1), semi_hard, farthest)  # (anchor, positive)
    positives = same & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    losses = (margin + distances - negative_distance).clamp_min(0.0) * positives
    count = positives.sum()
    return losses.sum() / count.clamp_min(1)


@register("triplet_hard_loss", kind="loss")
def triplet_hard_loss(
    y_true: Any,
    y_pred: Any,
    margin: float = 1.0,
    soft: bool = False,
    distance_metric: DistanceMetric = "L2",
) -> torch.Tensor:
    """Batch-hard triplet loss, one scalar for the batch.

    For every anchor, the farthest positive and the closest negative:
    `L = mean over anchors of max(0, d(a, p_hardest) - d(a, n_hardest) + margin)`, or with
    `soft=True` the soft margin `log(1 + exp(d(a, p_hardest) - d(a, n_hardest)))`.

    >>> labels = torch.tensor([0, 0, 1, 1])
    >>> embeddings = torch.tensor([[0., 0.], [0., 1.], [0., 1.5], [0., 3.]])
    >>> triplet_hard_loss(labels, embeddings)
    tensor(1.1250)
    """
    labels, embeddings = _labels_and_embeddings(y_true, y_pred, "triplet_hard_loss")
    distances = pairwise_distance_matrix(embeddings, distance_metric)
    same = labels[:, None] == labels[None, :]
    positives = same & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    hardest_positive = _masked_maximum(distances, positives)
    hardest_negative = _masked_minimum(distances, ~same)
    gap = hardest_positive - hardest_negative
    losses = F.softplus(gap) if soft else (gap + margin).clamp_min(0.0)
    return losses.mean()


def _check_distance_metric(distance_metric: Any) -> None:
    if not callable(distance_metric):
        _check_choice("distance_metric", distance_metric, DISTANCE_METRICS)


@register("TripletSemiHardLoss")
class TripletSemiHardLoss(Loss):
    """Triplet loss with semi-hard negative mining over labelled embeddings; see
    `triplet_semihard_loss`. Embeddings are expected L2-normalized, as in TFA.

    Args:
        margin: the margin of the triplet loss.
        distance_metric: 'L2', 'squared-L2', 'angular' or a callable giving the
            (batch, batch) distance matrix.
    """

    def __init__(
        self,
        margin: float = 1.0,
        distance_metric: DistanceMetric = "L2",
        name: str = "triplet_semihard_loss",
        *,
        reduction: str | None = "sum_over_batch_size",
        dtype: str | None = None,
    ) -> None:
        _check_distance_metric(distance_metric)
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.margin = margin
        self.distance_metric = distance_metric

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        return triplet_semihard_loss(y_true, y_pred, self.margin, self.distance_metric)

    def get_config(self) -> dict[str, Any]:
        return {"margin": self.margin, "distance_metric": self.distance_metric, **super().get_config()}


@register("TripletHardLoss")
class TripletHardLoss(Loss):
    """Batch-hard triplet loss over labelled embeddings; see `triplet_hard_loss`.

    Args:
        margin: the margin of the triplet loss.
        soft: use the soft margin `log(1 + exp(gap))` instead of `max(gap + margin, 0)`.
        distance_metric: 'L2', 'squared-L2', 'angular' or a callable.
    """

    def __init__(
        self,
        margin: float = 1.0,
        soft: bool = False,
        distance_metric: DistanceMetric = "L2",
        name: str = "triplet_hard_loss",
        *,
        reduction: str | None = "sum_over_batch_size",
        dtype: str | None = None,
    ) -> None:
        _check_distance_metric(distance_metric)
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.margin = margin
        self.soft = soft
        self.distance_metric = distance_metric

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        return triplet_hard_loss(y_true, y_pred, self.margin, self.soft, self.distance_metric)

    def get_config(self) -> dict[str, Any]:
        return {
            "margin": self.margin,
            "soft": self.soft,
            "distance_metric": self.distance_metric,
            **super().get_config(),
        }
