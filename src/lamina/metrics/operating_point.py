"""One rate at the best threshold where another rate reaches a target: SensitivityAtSpecificity,
SpecificityAtSensitivity, PrecisionAtRecall, RecallAtPrecision.

Each keeps the four confusion counts at `num_thresholds` evenly spaced thresholds in [0, 1]
(counted by one histogram, as AUC's), and returns the largest value of the reported rate over
the thresholds where the constrained rate is `>= value`; 0 if no threshold qualifies.
"""

from __future__ import annotations

from typing import Any

import torch

from lamina import _registry
from lamina.metrics.confusion import _is_int_at_least, _ThresholdCounts
from lamina.metrics.metric import divide_no_nan


def _rates(tp: torch.Tensor, fp: torch.Tensor, tn: torch.Tensor, fn: torch.Tensor) -> dict:
    return {
        "sensitivity": divide_no_nan(tp, tp + fn),
        "recall": divide_no_nan(tp, tp + fn),
        "specificity": divide_no_nan(tn, tn + fp),
        "precision": divide_no_nan(tp, tp + fp),
    }


class _OperatingPoint(_ThresholdCounts):
    """`max(reported rate where constrained rate >= value)` over the thresholds."""

    _direction = "up"
    _constrained = ""
    _reported = ""

    def __init__(
        self,
        value: float,
        num_thresholds: int = 200,
        class_id: int | None = None,
        name: str | None = None,
        dtype: str | torch.dtype | None = None,
    ) -> None:
        super().__init__(name=name, dtype=dtype)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ValueError(
                f"`{self._constrained}` must be a number in [0, 1]. "
                f"Received: {self._constrained}={value!r}."
            )
        if not _is_int_at_least(num_thresholds, 1):
            raise ValueError(
                "`num_thresholds` must be a positive integer. "
                f"Received: num_thresholds={num_thresholds!r}."
            )
        self.value = float(value)
        self.num_thresholds = num_thresholds
        thresholds = (
            [0.5] if num_thresholds == 1
            else [i / (num_thresholds - 1) for i in range(num_thresholds)]
        )
        self._thresholds_init(thresholds, None, class_id)
        size = (len(self.thresholds),)
        self.true_positives = self.add_variable("true_positives", shape=size)
        self.false_positives = self.add_variable("false_positives", shape=size)
        self.true_negatives = self.add_variable("true_negatives", shape=size)
        self.false_negatives = self.add_variable("false_negatives", shape=size)

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        tp, fp, positives, negatives = self._counts(y_true, y_pred, sample_weight)
        self.true_positives.add_(tp)
        self.false_positives.add_(fp)
        self.true_negatives.add_(negatives - fp)
        self.false_negatives.add_(positives - tp)

    def result(self) -> torch.Tensor:
        rates = _rates(
            self.true_positives, self.false_positives, self.true_negatives, self.false_negatives
        )
        feasible = rates[self._constrained] >= self.value
        reported = rates[self._reported]
        return torch.where(feasible, reported, torch.zeros_like(reported)).max().clamp_min(0)

    def get_config(self) -> dict[str, Any]:
        return {
            self._constrained: self.value,
            "num_thresholds": self.num_thresholds,
            "class_id": self.class_id,
            **super().get_config(),
        }


@_registry.register("SensitivityAtSpecificity", "sensitivity_at_specificity")
class SensitivityAtSpecificity(_OperatingPoint):
    """Best sensitivity `tp / (tp + fn)` among thresholds with specificity `>= specificity`.

    Args:
        specificity: the required specificity `tn / (tn + fp)`, in [0, 1].
        num_thresholds: number of evenly spaced thresholds in [0, 1] (1 means 0.5 only).
        class_id: compute the binary metric for this index of the last axis only.
        name: name of the metric instance.
        dtype: dtype of the state and result.

    >>> m = SensitivityAtSpecificity(0.5)
    >>> m.update_state([0, 0, 0, 1, 1], [0, 0.3, 0.8, 0.3, 0.8])
    >>> float(m.result())
    0.5
    """

    _constrained, _reported = "specificity", "sensitivity"

    def __init__(
        self,
        specificity: float,
        num_thresholds: int = 200,
        class_id: int | None = None,
        name: str | None = None,
        dtype: str | torch.dtype | None = None,
    ) -> None:
        super().__init__(specificity, num_thresholds, class_id, name, dtype)


@_registry.register("SpecificityAtSensitivity", "specificity_at_sensitivity")
class SpecificityAtSensitivity(_OperatingPoint):
    """Best specificity `tn / (tn + fp)` among thresholds with sensitivity `>= sensitivity`.

    Args are those of `SensitivityAtSpecificity` with the roles swapped.

    >>> m = SpecificityAtSensitivity(0.5)
    >>> m.update_state([0, 0, 0, 1, 1], [0, 0.3, 0.8, 0.3, 0.8])
    >>> round(float(m.result()), 4)
    0.6667
    """

    _constrained, _reported = "sensitivity", "specificity"

    def __init__(
        self,
        sensitivity: float,
        num_thresholds: int = 200,
        class_id: int | None = None,
        name: str | None = None,
        dtype: str | torch.dtype | None = None,
    ) -> None:
        super().__init__(sensitivity, num_thresholds, class_id, name, dtype)


@_registry.register("PrecisionAtRecall", "precision_at_recall")
class PrecisionAtRecall(_OperatingPoint):
    """Best precision `tp / (tp + fp)` among thresholds with recall `>= recall`.

    >>> m = PrecisionAtRecall(0.5)
    >>> m.update_state([0, 0, 0, 1, 1], [0, 0.3, 0.8, 0.3, 0.8])
    >>> float(m.result())
    0.5
    """

    _constrained, _reported = "recall", "precision"

    def __init__(
        self,
        recall: float,
        num_thresholds: int = 200,
        class_id: int | None = None,
        name: str | None = None,
        dtype: str | torch.dtype | None = None,
    ) -> None:
        super().__init__(recall, num_thresholds, class_id, name, dtype)


@_registry.register("RecallAtPrecision", "recall_at_precision")
class RecallAtPrecision(_OperatingPoint):
    """Best recall `tp / (tp + fn)` among thresholds with precision `>= precision`; 0 when no
    threshold reaches that precision.

    >>> m = RecallAtPrecision(0.8)
    >>> m.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9])
    >>> float(m.result())
    0.5
    """

    _constrained, _reported = "precision", "recall"

    def __init__(
        self,
        precision: float,
        num_thresholds: int = 200,
        class_id: int | None = None,
        name: str | None = None,
        dtype: str | torch.dtype | None = None,
    ) -> None:
        super().__init__(precision, num_thresholds, class_id, name, dtype)
