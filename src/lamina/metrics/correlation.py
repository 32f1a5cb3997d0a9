"""Correlation metrics: Pearson's and Lin's concordance coefficient per sample, averaged over
samples (Keras's definition: the coefficient is taken along `axis` within each sample, not
over the whole data set)."""

from __future__ import annotations

from typing import Any

import torch

from lamina import _registry, config
from lamina.metrics.metric import squeeze_or_expand_to_same_rank
from lamina.metrics.reduction import _FunctionMean


def _as_pair(y_true: Any, y_pred: Any) -> tuple[torch.Tensor, torch.Tensor]:
    y_pred = torch.as_tensor(y_pred)
    if not y_pred.is_floating_point():
        y_pred = y_pred.to(config.torch_dtype(None))
    y_true = torch.as_tensor(y_true, dtype=y_pred.dtype, device=y_pred.device)
    return squeeze_or_expand_to_same_rank(y_true, y_pred)


def pearson_correlation(y_true: Any, y_pred: Any, axis: int = -1) -> torch.Tensor:
    """Pearson's r along `axis`: `mean(z(y_true) * z(y_pred))`, `z(x) = (x - mean) / std`.

    The standard deviation is the population one (divided by n); a constant row gives NaN,
    as in Keras.
    """
    y_true, y_pred = _as_pair(y_true, y_pred)
    true_centered = y_true - y_true.mean(dim=axis, keepdim=True)
    pred_centered = y_pred - y_pred.mean(dim=axis, keepdim=True)
    true_z = true_centered / true_centered.std(dim=axis, keepdim=True, correction=0)
    pred_z = pred_centered / pred_centered.std(dim=axis, keepdim=True, correction=0)
    return (true_z * pred_z).mean(dim=axis)


def concordance_correlation(y_true: Any, y_pred: Any, axis: int = -1) -> torch.Tensor:
    """Lin's concordance along `axis`:
    `2 cov(t, p) / (var(t) + var(p) + (mean(t) - mean(p))^2 + eps)` (population moments).
    """
    y_true, y_pred = _as_pair(y_true, y_pred)
    true_mean = y_true.mean(dim=axis, keepdim=True)
    pred_mean = y_pred.mean(dim=axis, keepdim=True)
    true_var = y_true.var(dim=axis, keepdim=True, correction=0)
    pred_var = y_pred.var(dim=axis, keepdim=True, correction=0)
    covariance = (y_true - true_mean) * (y_pred - pred_mean)
    norm = true_var + pred_var + (true_mean - pred_mean) ** 2
    return (2 * covariance / (norm + config.epsilon())).mean(dim=axis)


class _Correlation(_FunctionMean):
    _direction = "up"

    def __init__(self, fn: Any, name: str, dtype: str | torch.dtype | None, axis: int) -> None:
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise TypeError(f"`axis` must be an integer. Received: axis={axis!r}.")
        super().__init__(fn, name=name, dtype=dtype, axis=axis)
        self.axis = axis


@_registry.register("PearsonCorrelation", "pearson_correlation")
class PearsonCorrelation(_Correlation):
    """Mean over samples of Pearson's correlation coefficient along `axis`.

    >>> m = PearsonCorrelation()
    >>> m.update_state([[1.0, 2.0, 3.0]], [[2.0, 4.0, 7.0]])
    >>> round(float(m.result()), 4)
    0.9934
    """

    def __init__(
        self,
        name: str = "pearson_correlation",
        dtype: str | torch.dtype | None = None,
        axis: int = -1,
    ) -> None:
        super().__init__(pearson_correlation, name, dtype, axis)


@_registry.register("ConcordanceCorrelation", "concordance_correlation")
class ConcordanceCorrelation(_Correlation):
    """Mean over samples of Lin's concordance correlation coefficient along `axis`.

    >>> m = ConcordanceCorrelation()
    >>> m.update_state([[1.0, 2.0, 3.0]], [[1.0, 2.0, 3.0]])
    >>> round(float(m.result()), 4)
    1.0
    """

    def __init__(
        self,
        name: str = "concordance_correlation",
        dtype: str | torch.dtype | None = None,
        axis: int = -1,
    ) -> None:
        super().__init__(concordance_correlation, name, dtype, axis)


_registry.register("pearson_correlation", kind="metric_function")(pearson_correlation)
_registry.register("concordance_correlation", kind="metric_function")(concordance_correlation)
