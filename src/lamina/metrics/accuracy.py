"""Accuracy metrics: how often predictions match labels, streamed as a weighted mean.

Each metric is a per-sample function first (`binary_accuracy(y_true, y_pred)`, also usable on
its own) and a `Metric` class over it. `'accuracy'` in `compile()` picks one of them from the
loss and the shapes: see `lamina.metrics.resolve`.
"""

from __future__ import annotations

import math
from typing import Any, NoReturn

import torch

from lamina import _registry
from lamina.errors import ShapeError
from lamina.losses.loss import get_mask
from lamina.metrics.metric import squeeze_or_expand_to_same_rank
from lamina.metrics.reduction import _FunctionMean


def _shape_error(
    kind: str, y_true: torch.Tensor, y_pred: torch.Tensor, expected: str
) -> NoReturn:
    raise ShapeError(
        f"{kind} received y_true.shape={tuple(y_true.shape)} and "
        f"y_pred.shape={tuple(y_pred.shape)}; it expects {expected}."
    )


Pair = tuple[torch.Tensor, torch.Tensor]


def _tensors(y_true: Any, y_pred: Any) -> Pair:
    """Both as tensors (lists and arrays welcome, as in Keras), `y_true` on `y_pred`'s device."""
    y_pred = torch.as_tensor(y_pred)
    return torch.as_tensor(y_true, device=y_pred.device), y_pred


def _same_shape(kind: str, y_true: Any, y_pred: Any) -> Pair:
    y_true, y_pred = squeeze_or_expand_to_same_rank(*_tensors(y_true, y_pred))
    if y_true.shape != y_pred.shape:
        _shape_error(kind, y_true, y_pred, "y_true and y_pred of the same shape")
    return y_true, y_pred


def _sparse_labels(kind: str, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """Integer labels of shape `y_pred.shape[:-1]` (a trailing axis of 1 is dropped)."""
    if y_true.dim() == y_pred.dim() and y_true.shape[-1:] == (1,):
        y_true = y_true.squeeze(-1)
    if y_true.shape != y_pred.shape[:-1]:
        _shape_error(
            kind,
            y_true,
            y_pred,
            "integer labels of shape y_pred.shape[:-1] (or with a trailing 1) and scores "
            "with a last axis of classes; for one-hot labels use the non-sparse metric",
        )
    return y_true


def _in_top_k(labels: torch.Tensor, scores: torch.Tensor, k: int) -> torch.Tensor:
    """True where the label's score is among the `k` largest; ties at the k-th score count."""
    k = min(k, scores.shape[-1])
    kth_largest = torch.topk(scores, k, dim=-1).values[..., -1:]
    label_score = torch.gather(scores, -1, labels.long().unsqueeze(-1))
    return (label_score >= kth_largest).squeeze(-1)


def accuracy(y_true: Any, y_pred: Any) -> torch.Tensor:
    """Fraction of exact matches per sample: `mean(y_true == y_pred, axis=-1)`."""
    y_true, y_pred = _same_shape("accuracy", y_true, y_pred)
    return (y_true.to(y_pred.dtype) == y_pred).float().mean(dim=-1)


def binary_accuracy(
    y_true: Any, y_pred: Any, threshold: float = 0.5, *, from_logits: bool = False
) -> torch.Tensor:
    """Fraction of matches after thresholding: `mean(y_true == (y_pred > threshold), axis=-1)`.

    With `from_logits=True` the threshold applies to `sigmoid(y_pred)`, that is
    `y_pred > log(threshold / (1 - threshold))`.
    """
    y_true, y_pred = _same_shape("binary_accuracy", y_true, y_pred)
    cut = math.log(threshold / (1.0 - threshold)) if from_logits else threshold
    predicted = (y_pred > cut).to(y_true.dtype)
    return (y_true == predicted).float().mean(dim=-1)


def categorical_accuracy(y_true: Any, y_pred: Any) -> torch.Tensor:
    """1 where the one-hot label's class is the top score: `argmax(y_true) == argmax(y_pred)`."""
    y_true, y_pred = _tensors(y_true, y_pred)
    if y_true.shape != y_pred.shape:
        _shape_error(
            "categorical_accuracy",
            y_true,
            y_pred,
            "one-hot labels of the same shape as y_pred; for integer labels use "
            "sparse_categorical_accuracy",
        )
    matches = y_true.argmax(dim=-1) == y_pred.argmax(dim=-1)
    return matches.float()


def sparse_categorical_accuracy(y_true: Any, y_pred: Any) -> torch.Tensor:
    """1 where the integer label is the top score: `y_true == argmax(y_pred)`."""
    y_true, y_pred = _tensors(y_true, y_pred)
    y_true = _sparse_labels("sparse_categorical_accuracy", y_true, y_pred)
    matches = y_pred.argmax(dim=-1).to(y_true.dtype) == y_true
    return matches.float()


def top_k_categorical_accuracy(y_true: Any, y_pred: Any, k: int = 5) -> torch.Tensor:
    """1 where the one-hot label's class is among the `k` top scores."""
    y_true, y_pred = _tensors(y_true, y_pred)
    if y_true.shape != y_pred.shape:
        _shape_error(
            "top_k_categorical_accuracy",
            y_true,
            y_pred,
            "one-hot labels of the same shape as y_pred; for integer labels use "
            "sparse_top_k_categorical_accuracy",
        )
    return _in_top_k(y_true.argmax(dim=-1), y_pred, k).float()


def sparse_top_k_categorical_accuracy(
    y_true: Any, y_pred: Any, k: int = 5, from_sorted_ids: bool = False
) -> torch.Tensor:
    """1 where the integer label is among the `k` top scores.

    With `from_sorted_ids=True`, `y_pred` holds class ids sorted by decreasing score
    (shape `(..., >= k)`), and a match is the label among the first `k` ids.
    """
    y_true, y_pred = _tensors(y_true, y_pred)
    y_true = _sparse_labels("sparse_top_k_categorical_accuracy", y_true, y_pred)
    if from_sorted_ids:
        matches = (y_pred[..., :k] == y_true.unsqueeze(-1).to(y_pred.dtype)).any(dim=-1)
    else:
        matches = _in_top_k(y_true, y_pred, k)
    return matches.float()


def _plain_batch(y_true: Any, y_pred: Any, sample_weight: Any) -> bool:
    """The training step's common case: unweighted, unmasked `(batch, classes)` scores."""
    return (sample_weight is None and isinstance(y_pred, torch.Tensor)
            and isinstance(y_true, torch.Tensor) and y_pred.dim() == 2
            and y_true.device == y_pred.device and get_mask(y_pred) is None)


def _check_k(k: Any) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"`k` must be a positive integer. Received: k={k!r}.")


@_registry.register("Accuracy", "accuracy", "acc")
class Accuracy(_FunctionMean):
    """How often predictions equal labels exactly (`accuracy`), as a weighted mean.

    >>> m = Accuracy()
    >>> m.update_state([[1], [2], [3], [4]], [[0], [2], [3], [4]])
    >>> float(m.result())
    0.75
    """

    _direction = "up"
    _elementwise = True

    def __init__(self, name: str = "accuracy", dtype: str | torch.dtype | None = None) -> None:
        super().__init__(accuracy, name=name, dtype=dtype)


@_registry.register("BinaryAccuracy", "binary_accuracy")
class BinaryAccuracy(_FunctionMean):
    """How often thresholded predictions match binary labels (`binary_accuracy`).

    Args:
        name: name of the metric instance.
        dtype: dtype of the state and result.
        threshold: a prediction above it counts as 1, in (0, 1).
        from_logits: `y_pred` are logits; the threshold applies to `sigmoid(y_pred)`.
            (Keyword-only; Lamina's addition.)

    >>> m = BinaryAccuracy()
    >>> m.update_state([[1], [1], [0], [0]], [[0.98], [1], [0], [0.6]])
    >>> float(m.result())
    0.75
    """

    _direction = "up"
    _elementwise = True

    def __init__(
        self,
        name: str = "binary_accuracy",
        dtype: str | torch.dtype | None = None,
        threshold: float = 0.5,
        *,
        from_logits: bool = False,
    ) -> None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not (
            0 < threshold < 1
        ):
            raise ValueError(
                "`threshold` must be a number in the open interval (0, 1). "
                f"Received: threshold={threshold!r}. For logits, keep 0.5 and pass "
                "from_logits=True."
            )
        super().__init__(
            binary_accuracy, name=name, dtype=dtype, threshold=threshold, from_logits=from_logits
        )


@_registry.register("CategoricalAccuracy", "categorical_accuracy")
class CategoricalAccuracy(_FunctionMean):
    """How often the top score is the one-hot label's class (`categorical_accuracy`).

    >>> m = CategoricalAccuracy()
    >>> m.update_state([[0, 0, 1], [0, 1, 0]], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]])
    >>> float(m.result())
    0.5
    """

    _direction = "up"

    def __init__(
        self, name: str = "categorical_accuracy", dtype: str | torch.dtype | None = None
    ) -> None:
        super().__init__(categorical_accuracy, name=name, dtype=dtype)

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        if _plain_batch(y_true, y_pred, sample_weight) and y_true.shape == y_pred.shape:
            # Three kernels and the count (a Python int) instead of the general path's eight.
            self.total.add_((y_true.argmax(dim=-1) == y_pred.argmax(dim=-1)).sum())
            self.count.add_(y_pred.shape[0])
            return
        super().update_state(y_true, y_pred, sample_weight)


@_registry.register("SparseCategoricalAccuracy", "sparse_categorical_accuracy")
class SparseCategoricalAccuracy(_FunctionMean):
    """How often the top score is the integer label (`sparse_categorical_accuracy`).

    >>> m = SparseCategoricalAccuracy()
    >>> m.update_state([[2], [1]], [[0.1, 0.6, 0.3], [0.05, 0.95, 0]])
    >>> float(m.result())
    0.5
    """

    _direction = "up"

    def __init__(
        self, name: str = "sparse_categorical_accuracy", dtype: str | torch.dtype | None = None
    ) -> None:
        super().__init__(sparse_categorical_accuracy, name=name, dtype=dtype)

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        if _plain_batch(y_true, y_pred, sample_weight):
            labels = y_true.squeeze(-1) if y_true.dim() == 2 and y_true.shape[-1] == 1 \
                else y_true
            if labels.shape == y_pred.shape[:1]:
                # argmax, compare, count: the epoch's hits stay an exact integer sum.
                predicted = y_pred.argmax(dim=-1)
                if predicted.dtype != labels.dtype:
                    predicted = predicted.to(labels.dtype)
                self.total.add_((predicted == labels).sum())
                self.count.add_(labels.shape[0])
                return
        super().update_state(y_true, y_pred, sample_weight)


@_registry.register("TopKCategoricalAccuracy", "top_k_categorical_accuracy")
class TopKCategoricalAccuracy(_FunctionMean):
    """How often the one-hot label's class is among the `k` top scores.

    >>> m = TopKCategoricalAccuracy(k=1)
    >>> m.update_state([[0, 0, 1], [0, 1, 0]], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]])
    >>> float(m.result())
    0.5
    """

    _direction = "up"

    def __init__(
        self,
        k: int = 5,
        name: str = "top_k_categorical_accuracy",
        dtype: str | torch.dtype | None = None,
    ) -> None:
        _check_k(k)
        super().__init__(top_k_categorical_accuracy, name=name, dtype=dtype, k=k)


@_registry.register("SparseTopKCategoricalAccuracy", "sparse_top_k_categorical_accuracy")
class SparseTopKCategoricalAccuracy(_FunctionMean):
    """How often the integer label is among the `k` top scores.

    >>> m = SparseTopKCategoricalAccuracy(k=1)
    >>> m.update_state([2, 1], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]])
    >>> float(m.result())
    0.5
    """

    _direction = "up"

    def __init__(
        self,
        k: int = 5,
        name: str = "sparse_top_k_categorical_accuracy",
        dtype: str | torch.dtype | None = None,
        from_sorted_ids: bool = False,
    ) -> None:
        _check_k(k)
        super().__init__(
            sparse_top_k_categorical_accuracy,
            name=name,
            dtype=dtype,
            k=k,
            from_sorted_ids=from_sorted_ids,
        )


for _function in (
    accuracy,
    binary_accuracy,
    categorical_accuracy,
    sparse_categorical_accuracy,
    top_k_categorical_accuracy,
    sparse_top_k_categorical_accuracy,
):
    _registry.register(_function.__name__, kind="metric_function")(_function)
