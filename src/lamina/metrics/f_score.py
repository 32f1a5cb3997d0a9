"""F-scores: the (weighted) harmonic mean of precision and recall, per class or averaged."""

from __future__ import annotations

from typing import Any

import torch

from lamina import _registry, config
from lamina.errors import ShapeError
from lamina.metrics.metric import Metric, broadcast_weights

_AVERAGES = (None, "micro", "macro", "weighted")


class _FBeta(Metric):
    """`(1 + b^2) * precision * recall / (b^2 * precision + recall)` over classes (last axis).

    State: weighted tp, fp, fn and support (`sum(y_true)`) per class, or summed over classes
    for 'micro'; created on the first batch, when the number of classes is known.
    """

    _direction = "up"

    def __init__(
        self,
        average: str | None,
        beta: float,
        threshold: float | None,
        name: str,
        dtype: str | torch.dtype | None,
    ) -> None:
        super().__init__(name=name, dtype=dtype)
        if average not in _AVERAGES:
            raise ValueError(
                "`average` must be one of None, 'micro', 'macro', 'weighted'. "
                f"Received: average={average!r}."
            )
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or beta <= 0:
            raise ValueError(f"`beta` must be a number > 0. Received: beta={beta!r}.")
        if threshold is not None and (
            isinstance(threshold, bool)
            or not isinstance(threshold, (int, float))
            or not 0 < threshold <= 1
        ):
            raise ValueError(
                "`threshold` must be None (the top score of each sample is the prediction) or "
                f"a number with 0 < threshold <= 1. Received: threshold={threshold!r}."
            )
        self.average = average
        self.beta = beta
        self.threshold = threshold
        self._built = False

    def _build(self, num_classes: int) -> None:
        shape = () if self.average == "micro" else (num_classes,)
        self._num_classes = num_classes
        self.true_positives = self.add_variable("true_positives", shape=shape)
        self.false_positives = self.add_variable("false_positives", shape=shape)
        self.false_negatives = self.add_variable("false_negatives", shape=shape)
        self.intermediate_weights = self.add_variable("intermediate_weights", shape=shape)
        self._built = True

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        y_pred = self._tensor(y_pred).to(self._torch_dtype)
        y_true = self._tensor(y_true).to(self._torch_dtype)
        if y_pred.dim() != 2 or y_true.shape != y_pred.shape:
            raise ShapeError(
                f"{type(self).__name__} ({self.name!r}) needs y_true and y_pred of the same shape "
                f"(batch, num_classes). Received: y_true.shape={tuple(y_true.shape)}, "
                f"y_pred.shape={tuple(y_pred.shape)}. One-hot encode integer labels first."
            )
        if not self._built:
            self._build(y_pred.shape[1])
        if y_pred.shape[1] != self._num_classes:
            raise ShapeError(
                f"{type(self).__name__} ({self.name!r}) was built for {self._num_classes} "
                f"classes but received y_pred.shape={tuple(y_pred.shape)}."
            )
        if self.threshold is None:
            # The top score is the prediction; an all-zero row predicts nothing.
            top = y_pred.amax(dim=-1, keepdim=True)
            predicted = (y_pred >= top) & (y_pred.abs() > 1e-9)
        else:
            predicted = y_pred > self.threshold
        predicted = predicted.to(self._torch_dtype)
        weights = None
        if sample_weight is not None:
            weights = broadcast_weights(
                self, self._tensor(sample_weight, dtype=self._torch_dtype), y_pred.shape
            )
        dims = None if self.average == "micro" else 0

        def weighted_sum(values: torch.Tensor) -> torch.Tensor:
            if weights is not None:
                values = values * weights
            return values.sum() if dims is None else values.sum(dims)

        self.true_positives.add_(weighted_sum(predicted * y_true))
        self.false_positives.add_(weighted_sum(predicted * (1 - y_true)))
        self.false_negatives.add_(weighted_sum((1 - predicted) * y_true))
        self.intermediate_weights.add_(weighted_sum(y_true))

    def result(self) -> torch.Tensor:
        if not self._built:
            return torch.zeros((), dtype=self._torch_dtype, device=self.device)
        epsilon = config.epsilon()
        tp = self.true_positives
        precision = tp / (tp + self.false_positives + epsilon)
        recall = tp / (tp + self.false_negatives + epsilon)
        beta_squared = self.beta**2
        score = (1 + beta_squared) * precision * recall / (
            beta_squared * precision + recall + epsilon
        )
        if self.average == "weighted":
            support = self.intermediate_weights
            return (score * support / (support.sum() + epsilon)).sum()
        if self.average is not None:
            return score.mean()
        return score


@_registry.register("FBetaScore", "fbeta_score", "f_beta_score")
class FBetaScore(_FBeta):
    """F-beta score: `(1 + b^2) * precision * recall / (b^2 * precision + recall)`.

    Recall counts `beta` times as much as precision. For multi-class and multi-label data of
    shape `(batch, num_classes)`.

    Args:
        average: None (one score per class), 'micro' (counts summed over classes first),
            'macro' (unweighted mean of class scores) or 'weighted' (mean weighted by each
            class's support, `sum(y_true)`).
        beta: weight of recall, > 0.
        threshold: predictions above it are positive; None takes each sample's top score.
        name: name of the metric instance.
        dtype: dtype of the state and result.

    >>> m = FBetaScore(beta=2.0, threshold=0.5)
    >>> m.update_state([[1, 1, 1], [1, 0, 0], [1, 1, 0]],
    ...                [[0.2, 0.6, 0.7], [0.2, 0.6, 0.6], [0.6, 0.8, 0.0]])
    >>> [round(v, 4) for v in m.result().tolist()]
    [0.3846, 0.9091, 0.8333]
    """

    def __init__(
        self,
        average: str | None = None,
        beta: float = 1.0,
        threshold: float | None = None,
        name: str = "fbeta_score",
        dtype: str | torch.dtype | None = None,
    ) -> None:
        super().__init__(average, beta, threshold, name, dtype)

    def get_config(self) -> dict[str, Any]:
        return {
            "average": self.average,
            "beta": self.beta,
            "threshold": self.threshold,
            **super().get_config(),
        }


@_registry.register("F1Score", "f1_score")
class F1Score(_FBeta):
    """F1 score, the harmonic mean of precision and recall: `2 * p * r / (p + r)`.

    Arguments as `FBetaScore`, with `beta=1`.

    >>> m = F1Score(threshold=0.5)
    >>> m.update_state([[1, 1, 1], [1, 0, 0], [1, 1, 0]],
    ...                [[0.2, 0.6, 0.7], [0.2, 0.6, 0.6], [0.6, 0.8, 0.0]])
    >>> [round(v, 4) for v in m.result().tolist()]
    [0.5, 0.8, 0.6667]
    """

    def __init__(
        self,
        average: str | None = None,
        threshold: float | None = None,
        name: str = "f1_score",
        dtype: str | torch.dtype | None = None,
    ) -> None:
        super().__init__(average, 1.0, threshold, name, dtype)

    def get_config(self) -> dict[str, Any]:
        return {"average": self.average, "threshold": self.threshold, **super().get_config()}
