"""Weighted means and sums over a stream: `Mean`, `Sum`, and `MeanMetricWrapper`.

`MeanMetricWrapper` turns any per-sample function `fn(y_true, y_pred) -> (batch,)` (a loss, an
accuracy) into a streaming metric: the weighted mean of `fn` over every sample seen.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from lamina import _registry, losses
from lamina.errors import UnknownNameError
from lamina.losses.loss import get_mask
from lamina.metrics.metric import (
    Metric,
    broadcast_weights,
    divide_no_nan,
    squeeze_or_expand_to_same_rank,
)

MetricFunction = Callable[..., torch.Tensor]


class _Reduce(Metric):
    """Accumulates `total` (and `count`) of per-sample values; subclasses pick mean or sum."""

    _reduce: Callable[..., torch.Tensor] = staticmethod(torch.mean)

    def __init__(self, name: str | None = None, dtype: str | torch.dtype | None = None) -> None:
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable("total", shape=())
        self.count = self.add_variable("count", shape=())

    def _accumulate(self, values: Any, sample_weight: Any = None) -> None:
        """Fold per-sample values into `total`/`count`; extra axes are reduced per sample."""
        values = self._tensor(values).to(self._torch_dtype)
        if sample_weight is not None and isinstance(sample_weight, (int, float)) and (
            values.dim() == 0
        ):
            # A loss tracker's `(scalar loss, batch_size)` every step: two in-place adds.
            self.total.add_(values, alpha=sample_weight)
            self.count.add_(sample_weight)
            return
        values, weights = self._per_sample(values, sample_weight)
        self.total.add_(values.sum())
        if weights is not None:
            self.count.add_(weights.sum())
        else:
            self.count.add_(values.shape[0] if values.dim() else 1)

    def _per_sample(
        self, values: torch.Tensor, sample_weight: Any
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Weighted values of shape `(batch,)` (or `()`), and the matching weights."""
        reduce = type(self)._reduce
        weights = None
        if sample_weight is not None:
            weights = self._tensor(sample_weight, dtype=self._torch_dtype)
            values, weights = squeeze_or_expand_to_same_rank(values, weights)
            if values.dim() > weights.dim():
                values = reduce(values, dim=tuple(range(weights.dim(), values.dim())))
            weights = broadcast_weights(self, weights, values.shape)
            values = values * weights
            if weights.dim() > 1:
                weights = reduce(weights, dim=tuple(range(1, weights.dim())))
        if values.dim() > 1:
            values = reduce(values, dim=tuple(range(1, values.dim())))
        return values, weights


@_registry.register("Mean", "mean")
class Mean(_Reduce):
    """The weighted mean of the values seen: `sum(w * x) / sum(w)`.

    Values of rank > 1 are averaged per sample first; `sample_weight` is one weight per sample
    (or per element).

    >>> m = Mean()
    >>> m.update_state([1, 3, 5, 7], sample_weight=[1, 1, 0, 0])
    >>> float(m.result())
    2.0
    """

    def __init__(self, name: str = "mean", dtype: str | torch.dtype | None = None) -> None:
        super().__init__(name=name, dtype=dtype)

    def update_state(self, values: Any, sample_weight: Any = None) -> None:
        self._accumulate(values, sample_weight)

    def result(self) -> torch.Tensor:
        return divide_no_nan(self.total, self.count)


@_registry.register("Sum", "sum")
class Sum(_Reduce):
    """The weighted sum of the values seen: `sum(w * x)`.

    >>> m = Sum()
    >>> m.update_state([1, 3, 5, 7], sample_weight=[1, 1, 0, 0])
    >>> float(m.result())
    4.0
    """

    _reduce = staticmethod(torch.sum)

    def __init__(self, name: str = "sum", dtype: str | torch.dtype | None = None) -> None:
        super().__init__(name=name, dtype=dtype)

    def update_state(self, values: Any, sample_weight: Any = None) -> None:
        values, _ = self._per_sample(self._tensor(values).to(self._torch_dtype), sample_weight)
        self.total.add_(values.sum())

    def result(self) -> torch.Tensor:
        return self.total.clone()


class _FunctionMean(_Reduce):
    """The weighted mean over samples of a per-sample function `fn(y_true, y_pred, **kwargs)`."""

    # True when `fn` averages its last axis element-wise (accuracy, mse): then 1-D inputs are
    # one value per sample, not one sample, so each batch counts by its size.
    _elementwise = False

    def __init__(
        self,
        fn: MetricFunction,
        name: str | None = None,
        dtype: str | torch.dtype | None = None,
        **kwargs: Any,
    ) -> None:
        if not callable(fn):
            raise TypeError(
                f"`fn` must be a callable fn(y_true, y_pred) returning per-sample values. "
                f"Received: fn={fn!r} of type {type(fn).__name__}."
            )
        super().__init__(name=name, dtype=dtype)
        self._fn = fn
        self._fn_kwargs = kwargs

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        mask = get_mask(y_pred)
        y_pred = self._tensor(y_pred)
        y_true = self._tensor(y_true)
        if self._elementwise and y_true.dim() == 1 and y_pred.dim() == 1:
            y_true, y_pred = y_true.unsqueeze(-1), y_pred.unsqueeze(-1)
        values = self._fn(y_true, y_pred, **self._fn_kwargs)
        if mask is not None:
            # A Keras mask (padded time steps) zeroes the weight of what it hides, as in Keras.
            mask = self._tensor(mask, dtype=self._torch_dtype)
            if sample_weight is not None:
                weights = self._tensor(sample_weight, dtype=self._torch_dtype)
                mask = mask * broadcast_weights(self, weights, mask.shape)
            sample_weight = mask
        self._accumulate(values, sample_weight)

    def result(self) -> torch.Tensor:
        return divide_no_nan(self.total, self.count)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, **self._fn_kwargs}


@_registry.register("MeanMetricWrapper", "mean_metric_wrapper")
class MeanMetricWrapper(_FunctionMean):
    """Streams the weighted mean of any per-sample function, e.g. a loss used as a metric.

    `fn(y_true, y_pred, **kwargs)` returns one value per sample (shape `(batch,)`, or more axes
    that are averaged per sample); the result is `sum(w * fn) / sum(w)` over all batches.

    Args:
        fn: the per-sample function; the registered name of a loss or metric function; or a
            `lamina.losses.Loss` (its per-sample `call`, so batches are weighted by size),
            also as its serialized dict.
        name: defaults to the function's (or the loss's) name.
        dtype: dtype of the state and result.
        **kwargs: passed to `fn` on each call.

    >>> def squared_error(y_true, y_pred):
    ...     return (y_true - y_pred) ** 2
    >>> m = MeanMetricWrapper(squared_error)
    >>> m.update_state(torch.tensor([0.0, 1.0]), torch.tensor([1.0, 1.0]))
    >>> float(m.result())
    0.5
    """

    def __init__(
        self,
        fn: MetricFunction | losses.Loss | str | dict[str, Any],
        name: str | None = None,
        dtype: str | torch.dtype | None = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(fn, str):
            fn = function_by_name(fn)
        elif isinstance(fn, dict):
            fn = losses.deserialize(fn)
        self._loss = fn if isinstance(fn, losses.Loss) else None
        if self._loss is not None:
            name = name or self._loss.name
            fn = self._loss.call
        super().__init__(fn, name=name or _function_name(fn), dtype=dtype, **kwargs)

    def get_config(self) -> dict[str, Any]:
        if self._loss is not None:
            return {"fn": losses.serialize(self._loss), **super().get_config()}
        name = _registry.canonical_name(self._fn)
        if name is None:
            raise ValueError(
                f"Cannot serialize MeanMetricWrapper {self.name!r}: its function {self._fn!r} "
                "is not registered, and Lamina never saves code. Register the function with "
                "lamina.saving.register_keras_serializable() (or lamina._registry.register(..., "
                "kind='metric_function')) before saving."
            )
        return {"fn": name, **super().get_config()}


def function_by_name(name: str) -> MetricFunction:
    """A registered per-sample function: a metric function ('binary_accuracy') or a loss."""
    for kind in ("metric_function", "loss"):
        try:
            found = _registry.lookup(kind, name)
        except UnknownNameError:
            continue
        if isinstance(found, type):
            continue
        return found
    valid = _registry.names("metric_function") + [
        n for n in _registry.names("loss") if not isinstance(_registry.lookup("loss", n), type)
    ]
    raise UnknownNameError(_registry.unknown_name_message("metric function", name, valid))


def _function_name(fn: Any) -> str:
    return _registry.canonical_name(fn) or getattr(fn, "__name__", type(fn).__name__)
