"""Regression metrics: the regression losses of `lamina.losses` streamed as weighted means.

Each class is a door onto the loss function of the same name (one implementation of each
formula); `RootMeanSquaredError` takes the square root of the streamed mean squared error.
"""

from __future__ import annotations

from typing import Any

import torch

from lamina import _registry, losses
from lamina.metrics.reduction import _FunctionMean


@_registry.register("MeanSquaredError", "mean_squared_error", "mse")
class MeanSquaredError(_FunctionMean):
    """Mean squared error: `mean((y_true - y_pred)^2)` over every value seen.

    >>> m = MeanSquaredError()
    >>> m.update_state([[0, 1], [0, 0]], [[1, 1], [0, 0]])
    >>> float(m.result())
    0.25
    """

    _direction = "down"
    _elementwise = True

    def __init__(
        self, name: str = "mean_squared_error", dtype: str | torch.dtype | None = None
    ) -> None:
        super().__init__(losses.mean_squared_error, name=name, dtype=dtype)


@_registry.register("MeanAbsoluteError", "mean_absolute_error", "mae")
class MeanAbsoluteError(_FunctionMean):
    """Mean absolute error: `mean(|y_true - y_pred|)` over every value seen.

    >>> m = MeanAbsoluteError()
    >>> m.update_state([[0, 1], [0, 0]], [[1, 1], [0, 0]], sample_weight=[1, 0])
    >>> float(m.result())
    0.5
    """

    _direction = "down"
    _elementwise = True

    def __init__(
        self, name: str = "mean_absolute_error", dtype: str | torch.dtype | None = None
    ) -> None:
        super().__init__(losses.mean_absolute_error, name=name, dtype=dtype)


@_registry.register("RootMeanSquaredError", "root_mean_squared_error", "rmse")
class RootMeanSquaredError(_FunctionMean):
    """Root mean squared error: `sqrt(mean((y_true - y_pred)^2))` over every value seen.

    The mean is streamed and the root taken at the end, so it is the RMSE of all the data,
    not a mean of per-batch roots.

    >>> m = RootMeanSquaredError()
    >>> m.update_state([[0, 1], [0, 0]], [[1, 1], [0, 0]])
    >>> float(m.result())
    0.5
    """

    _direction = "down"
    _elementwise = True

    def __init__(
        self, name: str = "root_mean_squared_error", dtype: str | torch.dtype | None = None
    ) -> None:
        super().__init__(losses.mean_squared_error, name=name, dtype=dtype)

    def result(self) -> torch.Tensor:
        return super().result().sqrt()


@_registry.register(
    "MeanAbsolutePercentageError", "mean_absolute_percentage_error", "mape"
)
class MeanAbsolutePercentageError(_FunctionMean):
    """Mean absolute percentage error: `100 * mean(|y_true - y_pred| / max(|y_true|, eps))`.

    >>> m = MeanAbsolutePercentageError()
    >>> m.update_state([[2.0, 4.0]], [[1.0, 5.0]])
    >>> float(m.result())
    37.5
    """

    _direction = "down"
    _elementwise = True

    def __init__(
        self,
        name: str = "mean_absolute_percentage_error",
        dtype: str | torch.dtype | None = None,
    ) -> None:
        super().__init__(losses.mean_absolute_percentage_error, name=name, dtype=dtype)


@_registry.register(
    "MeanSquaredLogarithmicError", "mean_squared_logarithmic_error", "msle"
)
class MeanSquaredLogarithmicError(_FunctionMean):
    """Mean squared logarithmic error: `mean((log(1 + y_true) - log(1 + y_pred))^2)`.

    >>> m = MeanSquaredLogarithmicError()
    >>> m.update_state([[0, 1], [0, 0]], [[1, 1], [0, 0]])
    >>> round(float(m.result()), 4)
    0.1201
    """

    _direction = "down"
    _elementwise = True

    def __init__(
        self,
        name: str = "mean_squared_logarithmic_error",
        dtype: str | torch.dtype | None = None,
    ) -> None:
        super().__init__(losses.mean_squared_logarithmic_error, name=name, dtype=dtype)


@_registry.register("LogCoshError", "log_cosh_error", "logcosh")
class LogCoshError(_FunctionMean):
    """Mean log-cosh error: `mean(log(cosh(y_pred - y_true)))`.

    >>> m = LogCoshError()
    >>> m.update_state([[0, 1], [0, 0]], [[1, 1], [0, 0]])
    >>> round(float(m.result()), 4)
    0.1084
    """

    _direction = "down"
    _elementwise = True

    def __init__(self, name: str = "logcosh", dtype: str | torch.dtype | None = None) -> None:
        super().__init__(losses.log_cosh, name=name, dtype=dtype)


def cosine_similarity(y_true: Any, y_pred: Any, axis: int = -1) -> torch.Tensor:
    """`sum(l2_normalize(y_true) * l2_normalize(y_pred), axis)`: 1 for parallel vectors.

    The negative of the loss `lamina.losses.cosine_similarity`, which is minimized.
    """
    return -losses.cosine_similarity(y_true, y_pred, axis=axis)


@_registry.register("CosineSimilarity", "cosine_similarity")
class CosineSimilarity(_FunctionMean):
    """Mean cosine similarity between label and prediction vectors along `axis`.

    >>> m = CosineSimilarity(axis=1)
    >>> m.update_state([[0.0, 1.0], [1.0, 1.0]], [[1.0, 0.0], [1.0, 1.0]])
    >>> round(float(m.result()), 4)
    0.5
    """

    _direction = "up"

    def __init__(
        self,
        name: str = "cosine_similarity",
        dtype: str | torch.dtype | None = None,
        axis: int = -1,
    ) -> None:
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise TypeError(f"`axis` must be an integer. Received: axis={axis!r}.")
        super().__init__(cosine_similarity, name=name, dtype=dtype, axis=axis)


_registry.register("cosine_similarity", kind="metric_function")(cosine_similarity)
