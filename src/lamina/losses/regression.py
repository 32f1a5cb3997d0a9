"""Regression losses: MSE, MAE, MAPE, MSLE, Huber, log-cosh, cosine similarity.

Each pure function returns the per-sample loss, the mean over the last axis (Keras semantics),
so `(batch, d)` inputs give a `(batch,)` result; the Keras class after it is a thin door.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from lamina import config
from lamina._registry import register
from lamina.losses.loss import Loss, standardize_pair


@register("mean_squared_error", "mse", "MSE", kind="loss")
def mean_squared_error(y_true: Any, y_pred: Any) -> torch.Tensor:
    """Mean squared error: `L = (1/n) * Σ(y_true - y_pred)²` over the last axis.

    Derivative: `dL/dy_pred = 2(y_pred - y_true)/n`.

    >>> mean_squared_error(torch.tensor([[0., 1.]]), torch.tensor([[1., 1.]]))
    tensor([0.5000])
    """
    y_true, y_pred = standardize_pair(y_true, y_pred, "mean_squared_error")
    return (y_true - y_pred).square().mean(dim=-1)


@register("mean_absolute_error", "mae", "MAE", kind="loss")
def mean_absolute_error(y_true: Any, y_pred: Any) -> torch.Tensor:
    """Mean absolute error: `L = (1/n) * Σ|y_true - y_pred|` over the last axis.

    Derivative: `-1/n` where y_true > y_pred, `+1/n` where y_pred > y_true.

    >>> mean_absolute_error(torch.tensor([[0., 1.]]), torch.tensor([[1., 3.]]))
    tensor([1.5000])
    """
    y_true, y_pred = standardize_pair(y_true, y_pred, "mean_absolute_error")
    return (y_true - y_pred).abs().mean(dim=-1)


@register("mean_absolute_percentage_error", "mape", "MAPE", kind="loss")
def mean_absolute_percentage_error(y_true: Any, y_pred: Any) -> torch.Tensor:
    """`L = 100 * mean(|y_true - y_pred| / max(|y_true|, epsilon))` over the last axis.

    >>> mean_absolute_percentage_error(torch.tensor([[2., 4.]]), torch.tensor([[1., 5.]]))
    tensor([37.5000])
    """
    y_true, y_pred = standardize_pair(y_true, y_pred, "mean_absolute_percentage_error")
    # epsilon keeps a zero target from dividing by zero, as in Keras.
    relative = (y_true - y_pred).abs() / y_true.abs().clamp_min(config.epsilon())
    return 100.0 * relative.mean(dim=-1)


@register("mean_squared_logarithmic_error", "msle", "MSLE", kind="loss")
def mean_squared_logarithmic_error(y_true: Any, y_pred: Any) -> torch.Tensor:
    """`L = mean((log(y_true + 1) - log(y_pred + 1))²)` over the last axis.

    Values below epsilon are raised to epsilon first, as in Keras, so negatives stay finite.

    >>> mean_squared_logarithmic_error(torch.tensor([[0.]]), torch.tensor([[math.e - 1]]))
    tensor([1.0000])
    """
    y_true, y_pred = standardize_pair(y_true, y_pred, "mean_squared_logarithmic_error")
    epsilon = config.epsilon()
    log_pred = torch.log1p(y_pred.clamp_min(epsilon))
    log_true = torch.log1p(y_true.clamp_min(epsilon))
    return (log_pred - log_true).square().mean(dim=-1)


@register("huber", "huber_loss", kind="loss")
def huber(y_true: Any, y_pred: Any, delta: float = 1.0) -> torch.Tensor:
    """Huber loss, the mean over the last axis of, with `x = y_pred - y_true`:

        L = 0.5 * x²                   if |x| <= delta
        L = delta * |x| - 0.5 * delta² otherwise

    >>> huber(torch.tensor([[0., 0.]]), torch.tensor([[0.5, 3.]]))
    tensor([1.3125])
    """
    y_true, y_pred = standardize_pair(y_true, y_pred, "huber")
    error = y_pred - y_true
    abs_error = error.abs()
    quadratic = 0.5 * error.square()
    linear = delta * abs_error - 0.5 * delta * delta
    return torch.where(abs_error <= delta, quadratic, linear).mean(dim=-1)


_LOG_2 = math.log(2.0)


@register("log_cosh", "logcosh", kind="loss")
def log_cosh(y_true: Any, y_pred: Any) -> torch.Tensor:
    """`L = mean(log(cosh(y_pred - y_true)))` over the last axis.

    Computed as `x + softplus(-2x) - log 2`, which never overflows (cosh does for |x| > 89).

    >>> log_cosh(torch.tensor([[0.]]), torch.tensor([[1.]]))
    tensor([0.4338])
    """
    y_true, y_pred = standardize_pair(y_true, y_pred, "log_cosh")
    error = y_pred - y_true
    return (error + F.softplus(-2.0 * error) - _LOG_2).mean(dim=-1)


@register("cosine_similarity", kind="loss")
def cosine_similarity(y_true: Any, y_pred: Any, axis: int = -1) -> torch.Tensor:
    """`L = -Σ(l2_normalize(y_true) * l2_normalize(y_pred))` along `axis`.

    Ranges over [-1, 1]; -1 is perfect agreement. A zero vector has similarity 0 (norms are
    floored at epsilon).

    >>> cosine_similarity(torch.tensor([[0., 1.], [1., 1.]]), torch.tensor([[1., 0.], [1., 1.]]))
    tensor([-0.0000, -1.0000])
    """
    y_true, y_pred = standardize_pair(y_true, y_pred, "cosine_similarity")
    epsilon = config.epsilon()
    y_true = F.normalize(y_true, p=2.0, dim=axis, eps=epsilon)
    y_pred = F.normalize(y_pred, p=2.0, dim=axis, eps=epsilon)
    return -(y_true * y_pred).sum(dim=axis)


@register("MeanSquaredError")
class MeanSquaredError(Loss):
    """Mean of squares of errors: `loss = mean(square(y_true - y_pred))`; see `mean_squared_error`."""

    def __init__(
        self,
        reduction: str | None = "sum_over_batch_size",
        name: str = "mean_squared_error",
        dtype: str | None = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        return mean_squared_error(y_true, y_pred)


@register("MeanAbsoluteError")
class MeanAbsoluteError(Loss):
    """Mean of absolute errors: `loss = mean(abs(y_true - y_pred))`; see `mean_absolute_error`."""

    def __init__(
        self,
        reduction: str | None = "sum_over_batch_size",
        name: str = "mean_absolute_error",
        dtype: str | None = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        return mean_absolute_error(y_true, y_pred)


@register("MeanAbsolutePercentageError")
class MeanAbsolutePercentageError(Loss):
    """`loss = 100 * mean(abs((y_true - y_pred) / y_true))`; see `mean_absolute_percentage_error`."""

    def __init__(
        self,
        reduction: str | None = "sum_over_batch_size",
        name: str = "mean_absolute_percentage_error",
        dtype: str | None = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        return mean_absolute_percentage_error(y_true, y_pred)


@register("MeanSquaredLogarithmicError")
class MeanSquaredLogarithmicError(Loss):
    """`loss = mean(square(log(y_true + 1) - log(y_pred + 1)))`; see
    `mean_squared_logarithmic_error`."""

    def __init__(
        self,
        reduction: str | None = "sum_over_batch_size",
        name: str = "mean_squared_logarithmic_error",
        dtype: str | None = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        return mean_squared_logarithmic_error(y_true, y_pred)


@register("Huber")
class Huber(Loss):
    """Huber loss, quadratic within `delta` of the target and linear beyond; see `huber`.

    Args:
        delta: the point where the loss changes from quadratic to linear.
    """

    def __init__(
        self,
        delta: float = 1.0,
        reduction: str | None = "sum_over_batch_size",
        name: str = "huber_loss",
        dtype: str | None = None,
    ) -> None:
        if not isinstance(delta, (int, float)) or isinstance(delta, bool) or delta <= 0:
            raise ValueError(f"`delta` must be a positive number. Received: delta={delta!r}.")
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.delta = delta

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        return huber(y_true, y_pred, delta=self.delta)

    def get_config(self) -> dict[str, Any]:
        return {"delta": self.delta, **super().get_config()}


@register("LogCosh")
class LogCosh(Loss):
    """Logarithm of the hyperbolic cosine of the error; see `log_cosh`."""

    def __init__(
        self,
        reduction: str | None = "sum_over_batch_size",
        name: str = "log_cosh",
        dtype: str | None = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        return log_cosh(y_true, y_pred)


@register("CosineSimilarity")
class CosineSimilarity(Loss):
    """Negative cosine similarity along `axis`; see `cosine_similarity`.

    Args:
        axis: the axis along which the similarity is computed (the features axis).
    """

    def __init__(
        self,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str = "cosine_similarity",
        dtype: str | None = None,
    ) -> None:
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise ValueError(f"`axis` must be an integer. Received: axis={axis!r}.")
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.axis = axis

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        return cosine_similarity(y_true, y_pred, axis=self.axis)

    def get_config(self) -> dict[str, Any]:
        return {"axis": self.axis, **super().get_config()}
