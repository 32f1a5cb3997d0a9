"""Streaming metrics whose state stays on the device: `update_state`, `result`, `reset_state`.

`get` turns whatever `compile(metrics=[...])` receives into a `Metric`: a name ('accuracy',
'mae', 'auc', 'Precision', ...), a `Metric`, a config dict, a `Metric` class, or a function
`fn(y_true, y_pred)` returning per-sample values (a loss used as a metric). `resolve` is what
`compile` uses: like `get`, but 'accuracy'/'acc' become the binary, categorical or sparse
categorical accuracy that the loss and the shapes call for, as Keras does.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from lamina import _registry, losses
from lamina.errors import UnknownNameError
from lamina.metrics.accuracy import (
    Accuracy,
    BinaryAccuracy,
    CategoricalAccuracy,
    SparseCategoricalAccuracy,
    SparseTopKCategoricalAccuracy,
    TopKCategoricalAccuracy,
    accuracy,
    binary_accuracy,
    categorical_accuracy,
    sparse_categorical_accuracy,
    sparse_top_k_categorical_accuracy,
    top_k_categorical_accuracy,
)
from lamina.metrics.confusion import (
    AUC,
    ConfusionMatrix,
    FalseNegatives,
    FalsePositives,
    Precision,
    Recall,
    TrueNegatives,
    TruePositives,
    confusion_matrix,
)
from lamina.metrics.correlation import (
    ConcordanceCorrelation,
    PearsonCorrelation,
    concordance_correlation,
    pearson_correlation,
)
from lamina.metrics.f_score import F1Score, FBetaScore
from lamina.metrics.iou import BinaryIoU, IoU, MeanIoU, OneHotIoU, OneHotMeanIoU
from lamina.metrics.metric import Metric, to_snake_case
from lamina.metrics.operating_point import (
    PrecisionAtRecall,
    RecallAtPrecision,
    SensitivityAtSpecificity,
    SpecificityAtSensitivity,
)
from lamina.metrics.probabilistic import (
    BinaryCrossentropy,
    CategoricalCrossentropy,
    CategoricalHinge,
    Hinge,
    KLDivergence,
    Poisson,
    SparseCategoricalCrossentropy,
    SquaredHinge,
)
from lamina.metrics.reduction import Mean, MeanMetricWrapper, Sum, function_by_name
from lamina.metrics.regression import (
    CosineSimilarity,
    LogCoshError,
    MeanAbsoluteError,
    MeanAbsolutePercentageError,
    MeanSquaredError,
    MeanSquaredLogarithmicError,
    R2Score,
    RootMeanSquaredError,
    cosine_similarity,
)

_ACCURACY_NAMES = ("accuracy", "acc")
# Losses that say which accuracy 'accuracy' means, by their snake_case name.
_BINARY_LOSSES = {"binary_crossentropy", "bce", "binary_focal_crossentropy"}
_SPARSE_LOSSES = {"sparse_categorical_crossentropy"}
_CATEGORICAL_LOSSES = {"categorical_crossentropy", "categorical_focal_crossentropy"}


def serialize(metric: Metric) -> dict[str, Any]:
    """A metric as `{"class_name": ..., "config": ...}`; `deserialize` is the inverse."""
    if not isinstance(metric, Metric):
        raise TypeError(
            f"`serialize` takes a Metric. Received: {metric!r} of type {type(metric).__name__}. "
            "Wrap a function in MeanMetricWrapper(fn) first."
        )
    return {
        "class_name": _registry.canonical_name(type(metric)) or type(metric).__name__,
        "config": metric.get_config(),
    }


def deserialize(config: dict[str, Any], custom_objects: dict[str, Any] | None = None) -> Metric:
    """The metric a `serialize` dict describes (Keras's 'module'/'registered_name' ignored)."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(
            "A serialized metric is a dict with 'class_name' and 'config'. "
            f"Received: {config!r}."
        )
    cls = _registry.lookup("metric", config["class_name"], custom_objects)
    if not (inspect.isclass(cls) and issubclass(cls, Metric)):
        raise TypeError(
            f"{config['class_name']!r} does not name a Metric class (it is {cls!r})."
        )
    return cls.from_config(dict(config.get("config") or {}))


def get(identifier: Any, custom_objects: dict[str, Any] | None = None) -> Metric | None:
    """A `Metric` from a name, a `Metric` (returned as is), a config dict, a `Metric` class,
    a function `fn(y_true, y_pred)` or a `Loss` (its per-sample values averaged by
    `MeanMetricWrapper`); None gives None.

    Names are the metric classes' names and snake_case names, Keras's short names ('acc',
    'mse', 'mae', 'rmse', 'auc', ...) and any loss name (the loss averaged as a metric).

    >>> get("mae")
    <MeanAbsoluteError name=mean_absolute_error>
    """
    if identifier is None or isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier, custom_objects)
    if isinstance(identifier, str):
        return _from_name(identifier, custom_objects)
    if inspect.isclass(identifier) and issubclass(identifier, Metric):
        return identifier()
    if isinstance(identifier, torch.nn.Module):
        identifier = losses.TorchCriterion(identifier)
    if isinstance(identifier, losses.Loss):
        return MeanMetricWrapper(identifier)
    if callable(identifier) and not inspect.isclass(identifier):
        return MeanMetricWrapper(identifier)
    raise TypeError(
        f"Could not interpret metric identifier {identifier!r}: expected a metric name such as "
        "'accuracy', a Metric instance or class, a config dict, or a function "
        "fn(y_true, y_pred) returning per-sample values."
    )


def _from_name(name: str, custom_objects: dict[str, Any] | None) -> Metric:
    try:
        found = _registry.lookup("metric", name, custom_objects)
    except UnknownNameError:
        try:
            return MeanMetricWrapper(function_by_name(name), name=name)
        except UnknownNameError:
            pass
        valid = _registry.names("metric") + [
            n for n in _registry.names("loss")
            if not inspect.isclass(_registry.lookup("loss", n))
        ]
        raise UnknownNameError(_registry.unknown_name_message("metric", name, valid)) from None
    if inspect.isclass(found) and issubclass(found, Metric):
        required = [
            p.name for p in list(inspect.signature(found).parameters.values())
            if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        if required:
            raise TypeError(
                f"The metric {name!r} ({found.__name__}) needs arguments: "
                f"{', '.join(required)}. Pass an instance instead, e.g. "
                f"metrics=[lamina.metrics.{found.__name__}({required[0]}=...)]."
            )
        return found()
    return get(found)


def resolve(
    identifier: Any,
    loss: Any = None,
    y_true: Any = None,
    y_pred: Any = None,
) -> Metric:
    """The `Metric` that `compile(metrics=[identifier])` means for this loss and these outputs.

    'accuracy' and 'acc' pick, as Keras does: `BinaryAccuracy` for a binary cross-entropy
    loss or one score per sample (`from_logits` carried over from the loss), else
    `SparseCategoricalAccuracy` for integer labels (`y_true` of lower rank than `y_pred`, or
    a trailing axis of 1 against several classes), else `CategoricalAccuracy`. Without shapes,
    a (sparse) categorical cross-entropy loss decides. A string identifier also names the
    metric (its key in the logs), as in Keras.

    Args:
        identifier: anything `get` accepts.
        loss: the compiled loss: a name, a `Loss`, or a loss function.
        y_true: the labels, or their shape.
        y_pred: the model's output, or its shape.
    """
    if identifier is None:
        raise ValueError(
            "`resolve` needs a metric identifier; received None. Leave None out of the "
            "metrics list instead."
        )
    if isinstance(identifier, str) and identifier.lower() in _ACCURACY_NAMES:
        return _resolve_accuracy(identifier, loss, y_true, y_pred)
    metric = get(identifier)
    if isinstance(identifier, str):
        metric.name = identifier
    return metric


def _resolve_accuracy(name: str, loss: Any, y_true: Any, y_pred: Any) -> Metric:
    loss_name = _loss_name(loss)
    if loss_name in _BINARY_LOSSES:
        return BinaryAccuracy(name=name, from_logits=_from_logits(loss))
    true_shape, pred_shape = _shape(y_true), _shape(y_pred)
    if true_shape is not None and pred_shape is not None:
        # One score per sample: Keras checks for a last axis of 1; a rank-1 output is the same.
        if len(pred_shape) <= 1 or pred_shape[-1:] == (1,):
            return BinaryAccuracy(name=name, from_logits=_from_logits(loss))
        sparse = len(true_shape) < len(pred_shape) or (
            true_shape[-1:] == (1,) and pred_shape[-1:] != (1,)
        )
        return SparseCategoricalAccuracy(name=name) if sparse else CategoricalAccuracy(name=name)
    if loss_name in _SPARSE_LOSSES:
        return SparseCategoricalAccuracy(name=name)
    if loss_name in _CATEGORICAL_LOSSES:
        return CategoricalAccuracy(name=name)
    raise ValueError(
        f"Cannot tell which accuracy {name!r} means: the loss ({loss!r}) does not say, and the "
        "shapes of y_true and y_pred were not given. Pass y_true and y_pred (or their shapes) "
        "to resolve(), or name the metric: 'binary_accuracy', 'categorical_accuracy' or "
        "'sparse_categorical_accuracy'."
    )


def _loss_name(loss: Any) -> str | None:
    """The snake_case name of a loss given as a name, a function or a `Loss` object."""
    if loss is None:
        return None
    if isinstance(loss, str):
        return to_snake_case(loss)
    if inspect.isfunction(loss) or inspect.isclass(loss):
        target = loss
    elif callable(getattr(loss, "fn", None)):
        target = loss.fn  # a LossFunctionWrapper is named by its function
    else:
        target = type(loss)
    return to_snake_case(_registry.canonical_name(target) or getattr(target, "__name__", ""))


def _from_logits(loss: Any) -> bool:
    return bool(getattr(loss, "from_logits", False) or getattr(loss, "fn_kwargs", {}).get(
        "from_logits", False
    ))


def _shape(value: Any) -> tuple[int, ...] | None:
    if value is None:
        return None
    shape = getattr(value, "shape", value)
    return tuple(int(size) for size in shape)


__all__ = [
    "AUC",
    "Accuracy",
    "BinaryAccuracy",
    "BinaryCrossentropy",
    "BinaryIoU",
    "CategoricalAccuracy",
    "CategoricalCrossentropy",
    "CategoricalHinge",
    "ConcordanceCorrelation",
    "ConfusionMatrix",
    "CosineSimilarity",
    "F1Score",
    "FBetaScore",
    "FalseNegatives",
    "FalsePositives",
    "Hinge",
    "IoU",
    "KLDivergence",
    "LogCoshError",
    "Mean",
    "MeanAbsoluteError",
    "MeanAbsolutePercentageError",
    "MeanIoU",
    "MeanMetricWrapper",
    "MeanSquaredError",
    "MeanSquaredLogarithmicError",
    "Metric",
    "OneHotIoU",
    "OneHotMeanIoU",
    "PearsonCorrelation",
    "Poisson",
    "Precision",
    "PrecisionAtRecall",
    "R2Score",
    "Recall",
    "RecallAtPrecision",
    "RootMeanSquaredError",
    "SensitivityAtSpecificity",
    "SparseCategoricalAccuracy",
    "SparseCategoricalCrossentropy",
    "SparseTopKCategoricalAccuracy",
    "SpecificityAtSensitivity",
    "SquaredHinge",
    "Sum",
    "TopKCategoricalAccuracy",
    "TrueNegatives",
    "TruePositives",
    "accuracy",
    "binary_accuracy",
    "categorical_accuracy",
    "concordance_correlation",
    "confusion_matrix",
    "cosine_similarity",
    "deserialize",
    "get",
    "pearson_correlation",
    "resolve",
    "serialize",
    "sparse_categorical_accuracy",
    "sparse_top_k_categorical_accuracy",
    "top_k_categorical_accuracy",
]
