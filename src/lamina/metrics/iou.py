"""Intersection-over-union metrics from a streamed confusion matrix: IoU, MeanIoU and their
binary and one-hot doors.

`iou_c = tp_c / (tp_c + fp_c + fn_c)` per class `c`, read off the confusion matrix as
`diag / (row_sum + column_sum - diag)`; the result is the mean over the target classes that
were seen (a class with an empty denominator is left out of the mean, as in Keras).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from lamina import _registry, config
from lamina.metrics.confusion import _is_int_at_least, confusion_matrix
from lamina.metrics.metric import Metric, broadcast_weights


class _IoUBase(Metric):
    """A weighted `(num_classes, num_classes)` confusion matrix and the IoU read off it.

    Unlike Keras (whose matrix defaults to an int dtype, truncating fractional weights),
    the matrix holds the metric's float dtype, so `sample_weight=0.3` counts 0.3.
    """

    _direction = "up"

    def _iou_init(
        self,
        num_classes: int,
        target_class_ids: Sequence[int],
        ignore_class: int | None,
        sparse_y_true: bool,
        sparse_y_pred: bool,
        axis: int,
    ) -> None:
        if not _is_int_at_least(num_classes, 1):
            raise ValueError(
                f"`num_classes` must be a positive integer. Received: num_classes={num_classes!r}."
            )
        ids = list(target_class_ids) if isinstance(target_class_ids, (list, tuple)) else None
        if not ids or any(not _is_int_at_least(i, 0) or i >= num_classes for i in ids):
            raise ValueError(
                f"`target_class_ids` must be a non-empty list of class ids in [0, {num_classes}). "
                f"Received: target_class_ids={target_class_ids!r}."
            )
        if ignore_class is not None and (
            isinstance(ignore_class, bool) or not isinstance(ignore_class, int)
        ):
            raise ValueError(
                f"`ignore_class` must be an integer or None. Received: ignore_class={ignore_class!r}."
            )
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise TypeError(f"`axis` must be an integer. Received: axis={axis!r}.")
        self.num_classes = num_classes
        self.target_class_ids = ids
        self.ignore_class = ignore_class
        self.sparse_y_true = bool(sparse_y_true)
        self.sparse_y_pred = bool(sparse_y_pred)
        self.axis = axis
        self._target_tensor = torch.tensor(ids, dtype=torch.long)
        self.total_cm = self.add_variable(
            "total_confusion_matrix", shape=(num_classes, num_classes)
        )

    def _labels(self, y_true: Any, y_pred: Any) -> tuple[torch.Tensor, torch.Tensor]:
        y_true, y_pred = self._tensor(y_true), self._tensor(y_pred)
        if not self.sparse_y_true:
            y_true = y_true.argmax(dim=self.axis)
        if not self.sparse_y_pred:
            y_pred = y_pred.argmax(dim=self.axis)
        return y_true, y_pred

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        y_true, y_pred = self._labels(y_true, y_pred)
        if sample_weight is None:
            weights = torch.ones(y_true.shape, dtype=self._torch_dtype, device=self.device)
        else:
            # Per-sample weights cover every pixel of a (batch, height, width) label map
            # (Keras flattens first and then cannot broadcast them).
            weights = self._tensor(sample_weight, dtype=self._torch_dtype)
            weights = broadcast_weights(self, weights, y_true.shape)
        y_true, y_pred, weights = y_true.reshape(-1), y_pred.reshape(-1), weights.reshape(-1)
        if self.ignore_class is not None:
            weights = torch.where(y_true == self.ignore_class, torch.zeros_like(weights), weights)
        # confusion_matrix drops pairs outside [0, num_classes), as Keras's bounds mask does.
        self.total_cm.add_(confusion_matrix(y_true, y_pred, self.num_classes, weights))

    def result(self) -> torch.Tensor:
        true_positives = torch.diagonal(self.total_cm)
        denominator = self.total_cm.sum(0) + self.total_cm.sum(1) - true_positives
        targets = self._target_tensor.to(self.device)
        true_positives, denominator = true_positives[targets], denominator[targets]
        valid = denominator > 1e-9
        epsilon = config.epsilon()
        iou = torch.where(valid, true_positives / (denominator + epsilon), 0.0)
        return iou.sum() / (valid.sum().to(iou.dtype) + epsilon)


@_registry.register("IoU", "iou")
class IoU(_IoUBase):
    """Mean intersection-over-union `tp / (tp + fp + fn)` of the classes in `target_class_ids`.

    Args:
        num_classes: number of classes (the confusion matrix is `num_classes` square).
        target_class_ids: the classes whose IoUs are averaged; one id gives that class's IoU.
        name: name of the metric instance.
        dtype: dtype of the state and result.
        ignore_class: a label in `y_true` not counted (a "void" class such as 255).
        sparse_y_true: labels are integers; if False, the argmax over `axis` is taken.
        sparse_y_pred: predictions are integers; if False, the argmax over `axis` is taken.
        axis: the class axis of dense labels or predictions.

    >>> m = IoU(num_classes=2, target_class_ids=[0])
    >>> m.update_state([0, 0, 1, 1], [0, 1, 0, 1])
    >>> round(float(m.result()), 4)
    0.3333
    """

    def __init__(
        self,
        num_classes: int,
        target_class_ids: Sequence[int],
        name: str | None = None,
        dtype: str | torch.dtype | None = None,
        ignore_class: int | None = None,
        sparse_y_true: bool = True,
        sparse_y_pred: bool = True,
        axis: int = -1,
    ) -> None:
        super().__init__(name=name, dtype=dtype)
        self._iou_init(
            num_classes, target_class_ids, ignore_class, sparse_y_true, sparse_y_pred, axis
        )

    def get_config(self) -> dict[str, Any]:
        return {
            "num_classes": self.num_classes,
            "target_class_ids": self.target_class_ids,
            **super().get_config(),
            "ignore_class": self.ignore_class,
            "sparse_y_true": self.sparse_y_true,
            "sparse_y_pred": self.sparse_y_pred,
            "axis": self.axis,
        }


@_registry.register("MeanIoU", "mean_iou")
class MeanIoU(_IoUBase):
    """Mean intersection-over-union over all `num_classes` classes.

    Args are those of `IoU`, without `target_class_ids` (every class is a target).

    >>> m = MeanIoU(num_classes=2)
    >>> m.update_state([0, 0, 1, 1], [0, 1, 0, 1])
    >>> round(float(m.result()), 4)
    0.3333
    """

    def __init__(
        self,
        num_classes: int,
        name: str | None = None,
        dtype: str | torch.dtype | None = None,
        ignore_class: int | None = None,
        sparse_y_true: bool = True,
        sparse_y_pred: bool = True,
        axis: int = -1,
    ) -> None:
        super().__init__(name=name, dtype=dtype)
        classes = list(range(num_classes)) if _is_int_at_least(num_classes, 1) else [0]
        self._iou_init(num_classes, classes, ignore_class, sparse_y_true, sparse_y_pred, axis)

    def get_config(self) -> dict[str, Any]:
        return {
            "num_classes": self.num_classes,
            **super().get_config(),
            "ignore_class": self.ignore_class,
            "sparse_y_true": self.sparse_y_true,
            "sparse_y_pred": self.sparse_y_pred,
            "axis": self.axis,
        }


@_registry.register("BinaryIoU", "binary_iou")
class BinaryIoU(_IoUBase):
    """IoU of a binary task: a prediction `>= threshold` is class 1, below it class 0.

    Args:
        target_class_ids: `[0]`, `[1]` or `[0, 1]` (the mean of both).
        threshold: the decision threshold on `y_pred` (0 for logits).
        name: name of the metric instance.
        dtype: dtype of the state and result.

    >>> m = BinaryIoU(target_class_ids=[0, 1], threshold=0.3)
    >>> m.update_state([0, 1, 0, 1], [0.1, 0.2, 0.4, 0.7])
    >>> round(float(m.result()), 4)
    0.3333
    """

    def __init__(
        self,
        target_class_ids: Sequence[int] = (0, 1),
        threshold: float = 0.5,
        name: str | None = None,
        dtype: str | torch.dtype | None = None,
    ) -> None:
        super().__init__(name=name, dtype=dtype)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise TypeError(f"`threshold` must be a number. Received: threshold={threshold!r}.")
        self._iou_init(2, list(target_class_ids), None, True, True, -1)
        self.threshold = float(threshold)

    def _labels(self, y_true: Any, y_pred: Any) -> tuple[torch.Tensor, torch.Tensor]:
        y_pred = self._tensor(y_pred, dtype=self._torch_dtype)
        return self._tensor(y_true), (y_pred >= self.threshold).long()

    def get_config(self) -> dict[str, Any]:
        return {
            "target_class_ids": self.target_class_ids,
            "threshold": self.threshold,
            **super().get_config(),
        }


@_registry.register("OneHotIoU", "one_hot_iou")
class OneHotIoU(_IoUBase):
    """`IoU` for one-hot labels: the argmax of `y_true` (and of `y_pred`) is the class.

    >>> m = OneHotIoU(num_classes=3, target_class_ids=[0, 2])
    >>> m.update_state([[0, 0, 1], [1, 0, 0]], [[0.2, 0.3, 0.5], [0.1, 0.2, 0.7]])
    >>> round(float(m.result()), 4)
    0.25
    """

    def __init__(
        self,
        num_classes: int,
        target_class_ids: Sequence[int],
        name: str | None = None,
        dtype: str | torch.dtype | None = None,
        ignore_class: int | None = None,
        sparse_y_pred: bool = False,
        axis: int = -1,
    ) -> None:
        super().__init__(name=name, dtype=dtype)
        self._iou_init(num_classes, target_class_ids, ignore_class, False, sparse_y_pred, axis)

    def get_config(self) -> dict[str, Any]:
        return {
            "num_classes": self.num_classes,
            "target_class_ids": self.target_class_ids,
            **super().get_config(),
            "ignore_class": self.ignore_class,
            "sparse_y_pred": self.sparse_y_pred,
            "axis": self.axis,
        }


@_registry.register("OneHotMeanIoU", "one_hot_mean_iou")
class OneHotMeanIoU(_IoUBase):
    """`MeanIoU` for one-hot labels: the argmax of `y_true` (and of `y_pred`) is the class.

    >>> m = OneHotMeanIoU(num_classes=3)
    >>> m.update_state([[0, 0, 1], [1, 0, 0]], [[0.2, 0.3, 0.5], [0.1, 0.2, 0.7]])
    >>> round(float(m.result()), 4)
    0.25
    """

    def __init__(
        self,
        num_classes: int,
        name: str | None = None,
        dtype: str | torch.dtype | None = None,
        ignore_class: int | None = None,
        sparse_y_pred: bool = False,
        axis: int = -1,
    ) -> None:
        super().__init__(name=name, dtype=dtype)
        classes = list(range(num_classes)) if _is_int_at_least(num_classes, 1) else [0]
        self._iou_init(num_classes, classes, ignore_class, False, sparse_y_pred, axis)

    def get_config(self) -> dict[str, Any]:
        return {
            "num_classes": self.num_classes,
            **super().get_config(),
            "ignore_class": self.ignore_class,
            "sparse_y_pred": self.sparse_y_pred,
            "axis": self.axis,
        }
