"""Metrics from confusion counts: TP/FP/TN/FN, Precision, Recall, AUC and a confusion matrix.

A prediction is positive at threshold `t` when `y_pred > t`. Each metric keeps weighted
counts per threshold on the device. With evenly spaced thresholds (AUC's default 200) the
counts come from one histogram of the predictions and a reversed cumulative sum, O(N + T),
instead of comparing every prediction with every threshold, O(N * T).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from lamina import _registry, config
from lamina.errors import ShapeError
from lamina.metrics.metric import (
    Metric,
    broadcast_weights,
    check_same_shape,
    divide_no_nan,
    squeeze_or_expand_to_same_rank,
)

# Keras's stand-in for -inf: the threshold that keeps every top-k prediction positive.
NEG_INF = -1e10


def _threshold_list(thresholds: Any, default: float) -> list[float]:
    """`thresholds` (a number or a sequence of numbers in [0, 1]) as a list."""
    if thresholds is None:
        return [default]
    values = list(thresholds) if isinstance(thresholds, (list, tuple)) else [thresholds]
    bad = [
        v for v in values
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1
    ]
    if bad or not values:
        raise ValueError(
            "`thresholds` must be a number or a non-empty list of numbers in [0, 1]. "
            f"Received: thresholds={thresholds!r}. For logits, use thresholds=0."
        )
    return [float(v) for v in values]


def _evenly_spaced(thresholds: Sequence[float]) -> bool:
    """True for `[0, 1/(T-1), ..., 1]` (T >= 3), where counting by histogram applies."""
    count = len(thresholds)
    if count < 3:
        return False
    return all(
        math.isclose(t, i / (count - 1), abs_tol=config.epsilon())
        for i, t in enumerate(thresholds)
    )


def _positive_counts(
    positive: torch.Tensor,
    scores: torch.Tensor,
    weights: torch.Tensor | None,
    thresholds: torch.Tensor,
    evenly_spaced: bool,
    with_epsilon: bool = False,
    multi_label: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weighted `(tp, fp, total_positive, total_negative)` per threshold.

    `positive` and `scores` are `(n,)`, or `(n, labels)` with `multi_label`; `tp` and `fp`
    are `(T,)` or `(T, labels)`. `with_epsilon` says the evenly spaced thresholds run from
    -eps to 1 + eps (AUC's) rather than from 0 to 1.
    """
    positive_weight = positive.to(scores.dtype)
    negative_weight = 1.0 - positive_weight
    if weights is not None:
        positive_weight = positive_weight * weights
        negative_weight = negative_weight * weights
    if evenly_spaced:
        count = thresholds.numel()
        # Bucket i + 1 holds scores in (t_i, t_{i+1}]: positive at t_0..t_i. Bucket 0 holds
        # scores positive at no threshold (<= 0, or NaN). With the -eps / 1 + eps endpoints
        # AUC uses, a score of 0 is still positive at t_0.
        clean = torch.nan_to_num(scores, nan=0.0).clamp(0.0, 1.0)
        bucket = torch.ceil(clean * (count - 1)).long()
        if with_epsilon:
            bucket = bucket.clamp_min(1)
        if multi_label:
            labels = scores.shape[-1]
            flat = bucket * labels + torch.arange(labels, device=scores.device)
            shape = (count + 1, labels)
        else:
            flat, shape = bucket, (count + 1,)

        def histogram(values: torch.Tensor) -> torch.Tensor:
            totals = torch.zeros(math.prod(shape), dtype=values.dtype, device=values.device)
            totals.scatter_add_(0, flat.reshape(-1), values.reshape(-1))
            # Reversed cumulative sum: a score counts at its bucket's threshold and all below.
            return totals.reshape(shape).flip(0).cumsum(0).flip(0)[1:]

        tp, fp = histogram(positive_weight), histogram(negative_weight)
    else:
        above = (scores.unsqueeze(0) > thresholds.reshape((-1,) + (1,) * scores.dim())).to(
            scores.dtype
        )
        if multi_label:
            tp = torch.einsum("tnl,nl->tl", above, positive_weight)
            fp = torch.einsum("tnl,nl->tl", above, negative_weight)
        else:
            tp, fp = above @ positive_weight, above @ negative_weight
    return tp, fp, positive_weight.sum(0), negative_weight.sum(0)


def _is_int_at_least(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _filter_top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Scores outside the `k` largest of the last axis set to NEG_INF (ties: lower index wins)."""
    order = torch.argsort(scores, dim=-1, descending=True, stable=True)[..., :k]
    keep = torch.zeros_like(scores, dtype=torch.bool).scatter_(-1, order, True)
    return torch.where(keep, scores, torch.full_like(scores, NEG_INF))


class _ThresholdCounts(Metric):
    """Shared input handling for the metrics that count (y_true, y_pred > t) per threshold."""

    def _thresholds_init(self, thresholds: Any, top_k: int | None, class_id: int | None) -> None:
        if top_k is not None and not _is_int_at_least(top_k, 1):
            raise ValueError(
                f"`top_k` must be a positive integer or None. Received: top_k={top_k!r}."
            )
        if class_id is not None and not _is_int_at_least(class_id, 0):
            raise ValueError(
                "`class_id` must be a non-negative integer (an index into the last axis of "
                f"y_pred) or None. Received: class_id={class_id!r}."
            )
        self.init_thresholds = thresholds
        self.top_k = top_k
        self.class_id = class_id
        self.thresholds = _threshold_list(thresholds, 0.5 if top_k is None else NEG_INF)
        self._evenly_spaced = _evenly_spaced(self.thresholds)
        self._threshold_tensor = torch.tensor(self.thresholds, dtype=self._torch_dtype)

    def _counts(
        self, y_true: Any, y_pred: Any, sample_weight: Any
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        y_pred = self._tensor(y_pred).to(self._torch_dtype)
        y_true = self._tensor(y_true)
        y_pred, y_true = squeeze_or_expand_to_same_rank(y_pred, y_true)
        check_same_shape(self, y_true, y_pred)
        weights = None
        if sample_weight is not None:
            weights = self._tensor(sample_weight, dtype=self._torch_dtype)
            weights = broadcast_weights(self, weights, y_pred.shape)
        if self.top_k is not None:
            y_pred = _filter_top_k(y_pred, self.top_k)
        if self.class_id is not None:
            if y_pred.dim() < 2 or self.class_id >= y_pred.shape[-1]:
                raise ValueError(
                    f"{type(self).__name__} ({self.name!r}) has class_id={self.class_id}, so "
                    "y_pred must have shape (batch, num_classes) with num_classes > class_id. "
                    f"Received: y_pred.shape={tuple(y_pred.shape)}."
                )
            y_true, y_pred = y_true[..., self.class_id], y_pred[..., self.class_id]
            weights = None if weights is None else weights[..., self.class_id]
        return _positive_counts(
            (y_true != 0).reshape(-1),
            y_pred.reshape(-1),
            None if weights is None else weights.reshape(-1),
            self._threshold_tensor,
            self._evenly_spaced,
        )

    def _per_threshold(self, values: torch.Tensor) -> torch.Tensor:
        return values[0].clone() if len(self.thresholds) == 1 else values.clone()


class _ConfusionCount(_ThresholdCounts):
    """Weighted count of one confusion-matrix cell per threshold."""

    _cell = ""

    def __init__(
        self,
        thresholds: float | Sequence[float] | None = None,
        name: str | None = None,
        dtype: str | torch.dtype | None = None,
    ) -> None:
        super().__init__(name=name, dtype=dtype)
        self._thresholds_init(thresholds, None, None)
        self.accumulator = self.add_variable("accumulator", shape=(len(self.thresholds),))

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        tp, fp, positives, negatives = self._counts(y_true, y_pred, sample_weight)
        cells = {"tp": tp, "fp": fp, "fn": positives - tp, "tn": negatives - fp}
        self.accumulator.add_(cells[self._cell])

    def result(self) -> torch.Tensor:
        return self._per_threshold(self.accumulator)

    def get_config(self) -> dict[str, Any]:
        return {"thresholds": self.init_thresholds, **super().get_config()}


@_registry.register("TruePositives", "true_positives")
class TruePositives(_ConfusionCount):
    """Weighted count of `y_true == 1` and `y_pred > threshold`, per threshold.

    >>> m = TruePositives()
    >>> m.update_state([0, 1, 1, 1], [1, 0, 1, 1])
    >>> float(m.result())
    2.0
    """

    _cell = "tp"


@_registry.register("FalsePositives", "false_positives")
class FalsePositives(_ConfusionCount):
    """Weighted count of `y_true == 0` and `y_pred > threshold`, per threshold.

    >>> m = FalsePositives()
    >>> m.update_state([0, 1, 0, 0], [0, 0, 1, 1])
    >>> float(m.result())
    2.0
    """

    _cell = "fp"


@_registry.register("TrueNegatives", "true_negatives")
class TrueNegatives(_ConfusionCount):
    """Weighted count of `y_true == 0` and `y_pred <= threshold`, per threshold.

    >>> m = TrueNegatives()
    >>> m.update_state([0, 1, 0, 0], [1, 1, 0, 0])
    >>> float(m.result())
    2.0
    """

    _cell = "tn"


@_registry.register("FalseNegatives", "false_negatives")
class FalseNegatives(_ConfusionCount):
    """Weighted count of `y_true == 1` and `y_pred <= threshold`, per threshold.

    >>> m = FalseNegatives()
    >>> m.update_state([0, 1, 1, 1], [0, 1, 0, 0])
    >>> float(m.result())
    2.0
    """

    _cell = "fn"


class _PrecisionRecall(_ThresholdCounts):
    """Precision `tp / (tp + fp)` or recall `tp / (tp + fn)`, per threshold."""

    _direction = "up"
    _other = ""

    def __init__(
        self,
        thresholds: float | Sequence[float] | None = None,
        top_k: int | None = None,
        class_id: int | None = None,
        name: str | None = None,
        dtype: str | torch.dtype | None = None,
    ) -> None:
        super().__init__(name=name, dtype=dtype)
        self._thresholds_init(thresholds, top_k, class_id)
        size = (len(self.thresholds),)
        self.true_positives = self.add_variable("true_positives", shape=size)
        self._misses = self.add_variable(self._other, shape=size)

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        tp, fp, positives, _ = self._counts(y_true, y_pred, sample_weight)
        self.true_positives.add_(tp)
        self._misses.add_(fp if self._other == "false_positives" else positives - tp)

    def result(self) -> torch.Tensor:
        value = divide_no_nan(self.true_positives, self.true_positives + self._misses)
        return self._per_threshold(value)

    def get_config(self) -> dict[str, Any]:
        return {
            "thresholds": self.init_thresholds,
            "top_k": self.top_k,
            "class_id": self.class_id,
            **super().get_config(),
        }


@_registry.register("Precision", "precision")
class Precision(_PrecisionRecall):
    """Precision `tp / (tp + fp)`: the fraction of positive predictions that are right.

    Args:
        thresholds: a prediction above a threshold is positive; a number or a list in [0, 1]
            (one result per threshold). Defaults to 0.5, or to "every top-k prediction"
            when `top_k` is set. For logits use 0.
        top_k: only the `k` highest scores of the last axis count as predicted positive.
        class_id: compute the binary metric for this index of the last axis only.
        name: name of the metric instance.
        dtype: dtype of the state and result.

    >>> m = Precision()
    >>> m.update_state([0, 1, 1, 1], [1, 0, 1, 1])
    >>> round(float(m.result()), 4)
    0.6667
    """

    _other = "false_positives"

    @property
    def false_positives(self) -> torch.Tensor:
        return self._misses


@_registry.register("Recall", "recall")
class Recall(_PrecisionRecall):
    """Recall `tp / (tp + fn)`: the fraction of true positives that are found.

    Arguments as `Precision`.

    >>> m = Recall()
    >>> m.update_state([0, 1, 1, 1], [1, 0, 1, 1])
    >>> round(float(m.result()), 4)
    0.6667
    """

    _other = "false_negatives"

    @property
    def false_negatives(self) -> torch.Tensor:
        return self._misses


_CURVES = {"roc": "ROC", "pr": "PR"}
_SUMMATIONS = ("interpolation", "majoring", "minoring")


@_registry.register("AUC", "auc")
class AUC(Metric):
    """Area under the ROC or precision-recall curve, from confusion counts at fixed thresholds.

    ROC: `sum_i (fpr_i - fpr_{i+1}) * (tpr_i + tpr_{i+1}) / 2` over thresholds `t_i`
    (`tpr = tp / (tp + fn)`, `fpr = fp / (fp + tn)`). PR with 'interpolation' integrates
    precision while interpolating tp and fp linearly between thresholds (Davis & Goadrich,
    2006, https://www.biostat.wisc.edu/~page/rocpr.pdf); 'minoring'/'majoring' take the
    lower/upper of each interval's ends, bounding the discretization error.

    Args:
        num_thresholds: number of thresholds, evenly spaced in [0, 1] (> 1).
        curve: 'ROC' or 'PR'.
        summation_method: 'interpolation', 'minoring' or 'majoring'.
        name: name of the metric instance.
        dtype: dtype of the state and result.
        thresholds: explicit thresholds in [0, 1] instead of `num_thresholds`; -eps and 1 + eps
            are added so predictions of exactly 0 and 1 fall inside.
        multi_label: one AUC per label (last axis), averaged; else all labels are pooled.
        num_labels: number of labels with `multi_label` (else taken from the first batch).
        label_weights: non-negative weights per label: weights of the average with
            `multi_label`, weights of each label's predictions without.
        from_logits: `y_pred` are logits (a sigmoid is applied first).

    >>> m = AUC(num_thresholds=3)
    >>> m.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9])
    >>> float(m.result())
    0.75
    """

    _direction = "up"

    def __init__(
        self,
        num_thresholds: int = 200,
        curve: str = "ROC",
        summation_method: str = "interpolation",
        name: str | None = None,
        dtype: str | torch.dtype | None = None,
        thresholds: Sequence[float] | None = None,
        multi_label: bool = False,
        num_labels: int | None = None,
        label_weights: Sequence[float] | torch.Tensor | None = None,
        from_logits: bool = False,
    ) -> None:
        super().__init__(name=name, dtype=dtype)
        if not isinstance(curve, str) or curve.lower() not in _CURVES:
            raise ValueError(f"`curve` must be 'ROC' or 'PR'. Received: curve={curve!r}.")
        if not isinstance(summation_method, str) or summation_method.lower() not in _SUMMATIONS:
            raise ValueError(
                "`summation_method` must be one of 'interpolation', 'majoring', 'minoring'. "
                f"Received: summation_method={summation_method!r}."
            )
        if thresholds is not None:
            inner = sorted(_threshold_list(list(thresholds), 0.5))
            num_thresholds = len(inner) + 2
            evenly = _evenly_spaced([0.0] + inner + [1.0])
        else:
            if not _is_int_at_least(num_thresholds, 2):
                raise ValueError(
                    "`num_thresholds` must be an integer > 1. "
                    f"Received: num_thresholds={num_thresholds!r}."
                )
            inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
            evenly = True
        if num_labels is not None:
            if not multi_label:
                raise ValueError(
                    "`num_labels` is only used with multi_label=True. "
                    f"Received: num_labels={num_labels!r}, multi_label={multi_label!r}."
                )
            if not _is_int_at_least(num_labels, 1):
                raise ValueError(
                    "`num_labels` must be a positive integer. "
                    f"Received: num_labels={num_labels!r}."
                )
        if label_weights is not None:
            label_weights = torch.as_tensor(label_weights).tolist()
            if not isinstance(label_weights, list) or any(w < 0 for w in label_weights):
                raise ValueError(
                    "`label_weights` must be a list of non-negative numbers, one per label. "
                    f"Received: label_weights={label_weights!r}."
                )
        self.num_thresholds = num_thresholds
        self.curve = _CURVES[curve.lower()]
        self.summation_method = summation_method.lower()
        self.multi_label = multi_label
        self.num_labels = num_labels
        self.label_weights = label_weights
        self.from_logits = from_logits
        self._init_thresholds = None if thresholds is None else inner
        self._evenly_spaced = evenly
        epsilon = config.epsilon()
        self._threshold_values = [0.0 - epsilon] + inner + [1.0 + epsilon]
        self._threshold_tensor = torch.tensor(self._threshold_values, dtype=self._torch_dtype)
        self._label_weight_tensor = (
            None if label_weights is None
            else torch.tensor(label_weights, dtype=self._torch_dtype)
        )
        self._built = False
        if not multi_label:
            self._build(None)
        elif num_labels is not None:
            self._build(num_labels)

    @property
    def thresholds(self) -> list[float]:
        """The thresholds, endpoints -eps and 1 + eps included."""
        return list(self._threshold_values)

    def _build(self, num_labels: int | None) -> None:
        shape = (self.num_thresholds,) if num_labels is None else (self.num_thresholds, num_labels)
        self._num_labels = num_labels
        self.true_positives = self.add_variable("true_positives", shape=shape)
        self.false_positives = self.add_variable("false_positives", shape=shape)
        self.true_negatives = self.add_variable("true_negatives", shape=shape)
        self.false_negatives = self.add_variable("false_negatives", shape=shape)
        self._built = True

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        y_pred = self._tensor(y_pred).to(self._torch_dtype)
        y_true = self._tensor(y_true)
        y_pred, y_true = squeeze_or_expand_to_same_rank(y_pred, y_true)
        check_same_shape(self, y_true, y_pred)
        if self.multi_label:
            if y_pred.dim() != 2:
                raise ValueError(
                    f"AUC ({self.name!r}) with multi_label=True needs y_pred of shape "
                    f"(batch, num_labels). Received: y_pred.shape={tuple(y_pred.shape)}."
                )
            if not self._built:
                self._build(y_pred.shape[1])
            if y_pred.shape[1] != self._num_labels:
                raise ValueError(
                    f"AUC ({self.name!r}) was built for {self._num_labels} labels but received "
                    f"y_pred.shape={tuple(y_pred.shape)}. Use one AUC per output, or "
                    "reset it with the right num_labels."
                )
        weights = None
        if sample_weight is not None:
            weights = broadcast_weights(
                self, self._tensor(sample_weight, dtype=self._torch_dtype), y_pred.shape
            )
        if self._label_weight_tensor is not None and not self.multi_label:
            if y_pred.dim() == 0 or y_pred.shape[-1] != self._label_weight_tensor.numel():
                raise ValueError(
                    f"AUC ({self.name!r}) has {self._label_weight_tensor.numel()} label_weights "
                    f"but y_pred.shape={tuple(y_pred.shape)} has a different last axis."
                )
            label_weights = self._label_weight_tensor.expand(y_pred.shape)
            weights = label_weights if weights is None else weights * label_weights
        if self.from_logits:
            y_pred = torch.sigmoid(y_pred)
        if not self.multi_label:
            y_true, y_pred = y_true.reshape(-1), y_pred.reshape(-1)
            weights = None if weights is None else weights.reshape(-1)
        tp, fp, positives, negatives = _positive_counts(
            y_true != 0, y_pred, weights, self._threshold_tensor, self._evenly_spaced,
            with_epsilon=True, multi_label=self.multi_label,
        )
        self.true_positives.add_(tp)
        self.false_positives.add_(fp)
        self.true_negatives.add_(negatives - fp)
        self.false_negatives.add_(positives - tp)

    def _average_labels(self, per_threshold: torch.Tensor) -> torch.Tensor:
        """Sum the Riemann terms over thresholds, then average labels (multi-label)."""
        by_label = per_threshold.sum(0)
        if not self.multi_label:
            return by_label
        if self._label_weight_tensor is None:
            return by_label.mean()
        weights = self._label_weight_tensor
        return divide_no_nan((by_label * weights).sum(), weights.sum())

    def _interpolated_pr_auc(self) -> torch.Tensor:
        """PR-AUC with tp and p = tp + fp linear between thresholds A, B (slope = dtp / dp).

        Precision = (intercept + slope * p) / p integrates over [A, B] to
        `slope * (dtp + intercept * log(p_A / p_B))`; divided by the positives it is the
        area. Where p_B = 0 the log term vanishes: constant precision over the first bucket.
        """
        tp, fp, fn = self.true_positives, self.false_positives, self.false_negatives
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        dp = p[:-1] - p[1:]
        slope = divide_no_nan(dtp, dp.clamp_min(0))
        intercept = tp[1:] - slope * p[1:]
        both_positive = (p[:-1] > 0) & (p[1:] > 0)
        ratio = torch.where(
            both_positive, divide_no_nan(p[:-1], p[1:].clamp_min(0)), torch.ones_like(p[1:])
        )
        area = divide_no_nan(
            slope * (dtp + intercept * torch.log(ratio)), (tp[1:] + fn[1:]).clamp_min(0)
        )
        return self._average_labels(area)

    def result(self) -> torch.Tensor:
        if not self._built:
            return torch.zeros((), dtype=self._torch_dtype, device=self.device)
        if self.curve == "PR" and self.summation_method == "interpolation":
            return self._interpolated_pr_auc()
        tp, fp = self.true_positives, self.false_positives
        recall = divide_no_nan(tp, tp + self.false_negatives)
        if self.curve == "ROC":
            x, y = divide_no_nan(fp, fp + self.true_negatives), recall
        else:
            x, y = recall, divide_no_nan(tp, tp + fp)
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2
        elif self.summation_method == "minoring":
            heights = torch.minimum(y[:-1], y[1:])
        else:
            heights = torch.maximum(y[:-1], y[1:])
        return self._average_labels((x[:-1] - x[1:]) * heights)

    def get_config(self) -> dict[str, Any]:
        return {
            "num_thresholds": self.num_thresholds,
            "curve": self.curve,
            "summation_method": self.summation_method,
            **super().get_config(),
            "thresholds": self._init_thresholds,
            "multi_label": self.multi_label,
            "num_labels": self.num_labels,
            "label_weights": self.label_weights,
            "from_logits": self.from_logits,
        }


def confusion_matrix(
    y_true: torch.Tensor,
    y_pred: torch.Tensor,
    num_classes: int,
    sample_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Weighted counts `(num_classes, num_classes)`: row = true class, column = predicted.

    `y_true` and `y_pred` are integer labels of the same shape; pairs with a label outside
    `[0, num_classes)` are not counted.
    """
    y_true, y_pred = y_true.reshape(-1).long(), y_pred.reshape(-1).long()
    weights = (
        torch.ones_like(y_true, dtype=torch.get_default_dtype())
        if sample_weight is None else sample_weight.reshape(-1)
    )
    valid = (y_true >= 0) & (y_true < num_classes) & (y_pred >= 0) & (y_pred < num_classes)
    # Invalid pairs go to cell 0 with weight 0: dropping them by mask would need a host sync.
    index = torch.where(valid, y_true * num_classes + y_pred, torch.zeros_like(y_true))
    counts = torch.zeros(num_classes * num_classes, dtype=weights.dtype, device=weights.device)
    counts.scatter_add_(0, index, torch.where(valid, weights, torch.zeros_like(weights)))
    return counts.reshape(num_classes, num_classes)


@_registry.register("ConfusionMatrix", "confusion_matrix")
class ConfusionMatrix(Metric):
    """Streaming confusion matrix `(num_classes, num_classes)`: row = true, column = predicted.

    Lamina's addition (Keras has none). `y_true` holds integer labels (a trailing axis of 1 is
    dropped); `y_pred` holds scores with a last axis of `num_classes` (argmax is taken),
    or integer labels; with `num_classes=2`, float predictions of `y_true`'s shape are
    probabilities, positive above `threshold`.

    >>> m = ConfusionMatrix(3)
    >>> m.update_state([0, 1, 2, 2], [[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0, 0, 1]])
    >>> m.result().tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 1.0]]
    """

    def __init__(
        self,
        num_classes: int,
        name: str = "confusion_matrix",
        dtype: str | torch.dtype | None = None,
        *,
        threshold: float = 0.5,
    ) -> None:
        super().__init__(name=name, dtype=dtype)
        if not _is_int_at_least(num_classes, 2):
            raise ValueError(
                f"`num_classes` must be an integer >= 2. Received: num_classes={num_classes!r}."
            )
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not (
            0 <= threshold <= 1
        ):
            raise ValueError(f"`threshold` must be in [0, 1]. Received: threshold={threshold!r}.")
        self.num_classes = num_classes
        self.threshold = threshold
        self.matrix = self.add_variable("matrix", shape=(num_classes, num_classes))

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        y_pred = self._tensor(y_pred)
        y_true = self._tensor(y_true)
        if y_true.dim() == y_pred.dim() and y_true.dim() > 0 and y_true.shape[-1] == 1 and (
            y_pred.shape[-1] == self.num_classes
        ):
            y_true = y_true.squeeze(-1)
        if y_pred.dim() == y_true.dim() + 1 and y_pred.shape[-1] == self.num_classes:
            predicted = y_pred.argmax(dim=-1)
        else:
            y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
            if y_true.shape != y_pred.shape:
                raise ShapeError(
                    f"ConfusionMatrix ({self.name!r}) with num_classes={self.num_classes} needs "
                    f"y_pred of shape y_true.shape + ({self.num_classes},) (scores) or of "
                    f"y_true's shape (labels). Received: y_true.shape={tuple(y_true.shape)}, "
                    f"y_pred.shape={tuple(y_pred.shape)}."
                )
            binary_scores = self.num_classes == 2 and y_pred.is_floating_point()
            predicted = (y_pred > self.threshold) if binary_scores else y_pred
        weights = None
        if sample_weight is not None:
            weights = broadcast_weights(
                self, self._tensor(sample_weight, dtype=self._torch_dtype), y_true.shape
            )
        else:
            weights = torch.ones(y_true.shape, dtype=self._torch_dtype, device=self.device)
        self.matrix.add_(confusion_matrix(y_true, predicted, self.num_classes, weights))

    def result(self) -> torch.Tensor:
        return self.matrix.clone()

    def get_config(self) -> dict[str, Any]:
        return {
            "num_classes": self.num_classes,
            **super().get_config(),
            "threshold": self.threshold,
        }
