"""Regression metrics: the regression losses of `lamina.losses` streamed as weighted means.

Each class is a door onto the loss function of the same name (one implementation of each
formula); `RootMeanSquaredError` takes the square root of the streamed mean squared error.
"""

from __future__ import annotations

from typing import Any

import torch

from lamina import _registry, losses
from lamina.metrics.metric import Metric, broadcast_weights, squeeze_or_expand_to_same_rank
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


_AGGREGATIONS = (None, "uniform_average", "variance_weighted_average")


@_registry.register("R2Score", "r2_score")
class R2Score(Metric):
    """Coefficient of determination `1 - SS_res / SS_tot` per output, over all data seen.

    Streams per-output sums of `w*y`, `w*y^2`, `w*(y - y_pred)^2` and `w`, so the result is
    that of the whole data set (not a mean of batch scores). Adjusted R2 with
    `num_regressors = p`: `1 - (1 - R2)(n - 1)/(n - p - 1)`, `n` the number of values seen
    (the plain R2 when `n <= p + 1`, where Keras warns).

    Args:
        class_aggregation: `"uniform_average"` (mean over outputs), `"variance_weighted_average"`
            (weighted by each output's total sum of squares) or None (one score per output).
        num_regressors: number of independent variables, for the adjusted R2; 0 for plain R2.
        name: name of the metric instance.
        dtype: dtype of the state and result.

    Input shape: `(batch, outputs)` for both `y_true` and `y_pred`.

    >>> m = R2Score()
    >>> m.update_state([[1.0], [2.0], [3.0]], [[1.0], [2.0], [4.0]])
    >>> float(m.result())
    0.5
    """

    _direction = "up"

    def __init__(
        self,
        class_aggregation: str | None = "uniform_average",
        num_regressors: int = 0,
        name: str = "r2_score",
        dtype: str | torch.dtype | None = None,
    ) -> None:
        super().__init__(name=name, dtype=dtype)
        if class_aggregation not in _AGGREGATIONS:
            raise ValueError(
                f"`class_aggregation` must be one of {_AGGREGATIONS}. "
                f"Received: class_aggregation={class_aggregation!r}."
            )
        if isinstance(num_regressors, bool) or not isinstance(num_regressors, int) or (
            num_regressors < 0
        ):
            raise ValueError(
                "`num_regressors` must be an integer >= 0. "
                f"Received: num_regressors={num_regressors!r}."
            )
        self.class_aggregation = class_aggregation
        self.num_regressors = num_regressors
        self.num_samples = self.add_variable("num_samples", shape=())
        self._outputs: int | None = None

    def _build(self, outputs: int) -> None:
        for name in ("squared_sum", "sum", "residual", "count"):
            setattr(self, name, self.add_variable(name, shape=(outputs,)))
        self._outputs = outputs

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        y_true = self._tensor(y_true, dtype=self._torch_dtype)
        y_pred = self._tensor(y_pred, dtype=self._torch_dtype)
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        if y_true.dim() != 2 or y_pred.shape != y_true.shape:
            raise ValueError(
                f"R2Score ({self.name!r}) needs y_true and y_pred of the same shape "
                f"(batch, outputs). Received: y_true.shape={tuple(y_true.shape)}, "
                f"y_pred.shape={tuple(y_pred.shape)}. Reshape 1-D targets to (batch, 1)."
            )
        if self._outputs is None:
            self._build(y_true.shape[1])
        elif y_true.shape[1] != self._outputs:
            raise ValueError(
                f"R2Score ({self.name!r}) was built for {self._outputs} outputs but received "
                f"y_true.shape={tuple(y_true.shape)}. Use one R2Score per output head."
            )
        if sample_weight is None:
            weights = torch.ones_like(y_true)
        else:
            weights = broadcast_weights(
                self, self._tensor(sample_weight, dtype=self._torch_dtype), y_true.shape
            )
        self.sum.add_((weights * y_true).sum(0))
        self.squared_sum.add_((weights * y_true * y_true).sum(0))
        self.residual.add_((weights * (y_true - y_pred) ** 2).sum(0))
        self.count.add_(weights.sum(0))
        self.num_samples.add_(y_true.numel())

    def result(self) -> torch.Tensor:
        if self._outputs is None:
            return torch.zeros((), dtype=self._torch_dtype, device=self.device)
        total = self.squared_sum - self.sum * (self.sum / self.count)
        raw = 1 - self.residual / total
        raw = torch.where(torch.isinf(raw), torch.zeros_like(raw), raw)
        if self.class_aggregation == "uniform_average":
            score = raw.mean()
        elif self.class_aggregation == "variance_weighted_average":
            score = (total * raw).sum() / total.sum()
        else:
            score = raw
        if self.num_regressors:
            # On the device, no host sync: with n <= p + 1 the adjusted R2 is undefined and
            # the plain R2 is returned.
            samples = self.num_samples
            denominator = samples - self.num_regressors - 1
            adjusted = 1 - (1 - score) * (samples - 1) / denominator.clamp_min(1)
            score = torch.where(denominator > 0, adjusted, score)
        return score

    def get_config(self) -> dict[str, Any]:
        return {
            "class_aggregation": self.class_aggregation,
            "num_regressors": self.num_regressors,
            **super().get_config(),
        }
