"""Losses for noisy labels and pair-based embedding learning: generalized cross-entropy
(Zhang & Sabuncu, 2018) and Circle loss (Sun et al., 2020)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from lamina._registry import register
from lamina.errors import ShapeError
from lamina.losses.loss import Loss, as_float_tensor, set_mask


def _check_open_unit(argument: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(
            f"`{argument}` must be a number in the open interval (0, 1). "
            f"Received: {argument}={value!r}."
        )


@register("categorical_generalized_cross_entropy", kind="loss")
def categorical_generalized_cross_entropy(y_true: Any, y_pred: Any, q: float) -> torch.Tensor:
    """Generalized cross-entropy: `L = (1 - p_y^q) / q`, `p_y` the probability of the true class.

    `q -> 0` recovers cross-entropy, `q = 1` the MAE (robust to label noise). `y_true` holds
    integer labels `(batch,)`; `y_pred` probabilities `(batch, num_classes)`.

    >>> categorical_generalized_cross_entropy(torch.tensor([0]), torch.tensor([[0.25, 0.75]]), 0.5)
    tensor([1.])
    """
    y_pred = as_float_tensor(y_pred)
    labels = torch.as_tensor(y_true, device=y_pred.device).long()
    if labels.dim() == y_pred.dim() and labels.shape[-1] == 1:
        labels = labels.squeeze(-1)
    if labels.shape != y_pred.shape[:-1]:
        raise ShapeError(
            "`categorical_generalized_cross_entropy` needs integer labels of shape "
            "y_pred.shape[:-1]. Received: "
            f"y_true.shape={tuple(labels.shape)}, y_pred.shape={tuple(y_pred.shape)}."
        )
    probability = y_pred.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return (1 - probability.pow(q)) / q


@register("CategoricalGeneralizedCrossEntropy")
class CategoricalGeneralizedCrossEntropy(Loss):
    """Generalized cross-entropy `(1 - p_y^q) / q`; see `categorical_generalized_cross_entropy`.

    Args:
        q: in (0, 1): near 0 behaves like cross-entropy, near 1 like MAE.
    """

    def __init__(
        self,
        q: float = 0.5,
        reduction: str | None = "sum_over_batch_size",
        name: str = "categorical_generalized_cross_entropy",
        dtype: str | None = None,
    ) -> None:
        _check_open_unit("q", q)
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.q = q

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        return categorical_generalized_cross_entropy(y_true, y_pred, self.q)

    def get_config(self) -> dict[str, Any]:
        return {"q": self.q, **super().get_config()}


@register("circle", kind="loss")
def circle(
    y_true: Any,
    y_pred: Any,
    ref_labels: Any = None,
    ref_embeddings: Any = None,
    remove_diagonal: bool = True,
    gamma: float = 80.0,
    margin: float = 0.4,
) -> torch.Tensor:
    """Circle loss per query: with cosine distances `d` (`1 - y_pred @ ref.T`, clipped at 0),

        L = softplus(logsumexp_pos(-γ·α_p·(m - d)) + logsumexp_neg(γ·α_n·(1 - m - d)))

    with `α_p = relu(m + d)` on same-label pairs and `α_n = relu(1 + m - d)` on the others.
    `y_pred` should be L2-normalized embeddings `(batch, dim)`; `y_true` labels `(batch,)`.
    The result carries a mask of its positive entries, so the class's mean skips queries
    with no loss (as Keras's does).
    """
    embeddings = as_float_tensor(y_pred)
    labels = torch.as_tensor(y_true, device=embeddings.device).reshape(-1)
    references = embeddings if ref_embeddings is None else as_float_tensor(ref_embeddings).to(
        embeddings.device, embeddings.dtype
    )
    reference_labels = labels if ref_labels is None else torch.as_tensor(
        ref_labels, device=embeddings.device
    ).reshape(-1)
    if embeddings.dim() != 2 or labels.numel() != embeddings.shape[0] or (
        references.dim() != 2 or reference_labels.numel() != references.shape[0]
    ):
        raise ShapeError(
            "`circle` needs y_true = labels (batch,) and y_pred = embeddings (batch, dim) "
            "(and, when given, ref_labels (refs,) with ref_embeddings (refs, dim)). Received: "
            f"y_true with {labels.numel()} labels, y_pred.shape={tuple(embeddings.shape)}."
        )
    distances = (1 - embeddings @ references.T).clamp_min(0.0)  # (batch, refs)
    positive = labels[:, None] == reference_labels[None, :]
    if remove_diagonal:
        positive = positive & ~torch.eye(
            *positive.shape, dtype=torch.bool, device=positive.device
        )
    negative = labels[:, None] != reference_labels[None, :]
    positive_weights = ((margin + distances) * positive).clamp_min(0.0)
    negative_weights = ((1 + margin - distances) * negative).clamp_min(0.0)
    positive_logits = -gamma * positive_weights * (margin - distances)
    negative_logits = gamma * negative_weights * (1 - margin - distances)
    minus_inf = torch.tensor(float("-inf"), dtype=distances.dtype, device=distances.device)
    positive_term = torch.logsumexp(torch.where(positive, positive_logits, minus_inf), dim=1)
    negative_term = torch.logsumexp(torch.where(negative, negative_logits, minus_inf), dim=1)
    losses = F.softplus(positive_term + negative_term)
    return set_mask(losses, losses > 0)


@register("Circle")
class Circle(Loss):
    """Circle loss on L2-normalized embeddings; see `circle`.

    Args:
        gamma: the scale factor γ.
        margin: the relaxation margin m.
        remove_diagonal: drop each query's pairing with itself from the positives.
    """

    def __init__(
        self,
        gamma: float = 80.0,
        margin: float = 0.4,
        remove_diagonal: bool = True,
        reduction: str | None = "sum_over_batch_size",
        name: str = "circle",
        dtype: str | None = None,
    ) -> None:
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or gamma <= 0:
            raise ValueError(f"`gamma` must be a number > 0. Received: gamma={gamma!r}.")
        if isinstance(margin, bool) or not isinstance(margin, (int, float)):
            raise ValueError(f"`margin` must be a number. Received: margin={margin!r}.")
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.gamma = gamma
        self.margin = margin
        self.remove_diagonal = bool(remove_diagonal)

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        return circle(
            y_true, y_pred, remove_diagonal=self.remove_diagonal, gamma=self.gamma,
            margin=self.margin,
        )

    def get_config(self) -> dict[str, Any]:
        return {
            "gamma": self.gamma,
            "margin": self.margin,
            "remove_diagonal": self.remove_diagonal,
            **super().get_config(),
        }
