"""Losses: pure functions `f(y_true, y_pred)`, their Keras classes, and `get`.

`get` turns whatever `compile(loss=...)` receives into a `Loss`: a name ('mse',
'sparse_categorical_crossentropy', 'BinaryCrossentropy', ...), a `Loss`, a config dict, a
function `fn(y_true, y_pred)` (wrapped), or a torch criterion such as `nn.MSELoss()`
(called with its torch argument order). See `probabilistic` for `logits_equivalent`, the
rule by which a final sigmoid/softmax may be fused into a cross-entropy.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from lamina._registry import canonical_name, lookup
from lamina.losses.ctc import CTC, ctc
from lamina.losses.hinge import (
    CategoricalHinge,
    Hinge,
    SquaredHinge,
    categorical_hinge,
    hinge,
    squared_hinge,
)
from lamina.losses.loss import (
    Loss,
    LossFunctionWrapper,
    TorchCriterion,
    reduce_weighted_values,
    squeeze_or_expand_to_same_rank,
    standardize_reduction,
)
from lamina.losses.metric_learning import (
    TripletHardLoss,
    TripletSemiHardLoss,
    pairwise_distance_matrix,
    triplet_hard_loss,
    triplet_loss,
    triplet_semihard_loss,
)
from lamina.losses.probabilistic import (
    BinaryCrossentropy,
    BinaryFocalCrossentropy,
    CategoricalCrossentropy,
    CategoricalFocalCrossentropy,
    KLDivergence,
    Poisson,
    SparseCategoricalCrossentropy,
    binary_crossentropy,
    binary_focal_crossentropy,
    categorical_crossentropy,
    categorical_focal_crossentropy,
    fusable_activation,
    kl_divergence,
    logits_equivalent,
    poisson,
    sparse_categorical_crossentropy,
)
from lamina.losses.regression import (
    CosineSimilarity,
    Huber,
    LogCosh,
    MeanAbsoluteError,
    MeanAbsolutePercentageError,
    MeanSquaredError,
    MeanSquaredLogarithmicError,
    cosine_similarity,
    huber,
    log_cosh,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    mean_squared_logarithmic_error,
)
from lamina.losses.robust import (
    CategoricalGeneralizedCrossEntropy,
    Circle,
    categorical_generalized_cross_entropy,
    circle,
)
from lamina.losses.segmentation import Dice, Tversky, dice, tversky

# Keras's short names, as `keras.losses` exports them.
MSE = mse = mean_squared_error
MAE = mae = mean_absolute_error
MAPE = mape = mean_absolute_percentage_error
MSLE = msle = mean_squared_logarithmic_error
KLD = kld = kullback_leibler_divergence = kl_divergence
logcosh = log_cosh

# The class behind each function, so `get('mse')` gives a configurable, serializable Loss.
_CLASS_OF_FUNCTION = {
    mean_squared_error: MeanSquaredError,
    mean_absolute_error: MeanAbsoluteError,
    mean_absolute_percentage_error: MeanAbsolutePercentageError,
    mean_squared_logarithmic_error: MeanSquaredLogarithmicError,
    huber: Huber,
    log_cosh: LogCosh,
    cosine_similarity: CosineSimilarity,
    binary_crossentropy: BinaryCrossentropy,
    binary_focal_crossentropy: BinaryFocalCrossentropy,
    categorical_crossentropy: CategoricalCrossentropy,
    categorical_focal_crossentropy: CategoricalFocalCrossentropy,
    sparse_categorical_crossentropy: SparseCategoricalCrossentropy,
    kl_divergence: KLDivergence,
    poisson: Poisson,
    hinge: Hinge,
    squared_hinge: SquaredHinge,
    categorical_hinge: CategoricalHinge,
    dice: Dice,
    tversky: Tversky,
    ctc: CTC,
    circle: Circle,
    categorical_generalized_cross_entropy: CategoricalGeneralizedCrossEntropy,
    triplet_semihard_loss: TripletSemiHardLoss,
    triplet_hard_loss: TripletHardLoss,
}


def serialize(loss: Loss | Any) -> dict[str, Any]:
    """A JSON-able description of a `Loss` or a registered loss function.

    The layout is the one `lamina.saving.serialization` writes for every object, so either
    side reads the other's output.
    """
    if isinstance(loss, Loss):
        cls = type(loss)
        return {
            "module": cls.__module__,
            "class_name": cls.__name__,
            "registered_name": canonical_name(cls) or cls.__name__,
            "kind": "loss",
            "config": loss.get_config(),
        }
    name = canonical_name(loss)
    if name is None:
        raise TypeError(
            f"Cannot serialize the loss {loss!r}: it is neither a `Loss` nor a registered loss "
            "function. Register it with lamina.saving.register_keras_serializable()."
        )
    return {"class_name": "function", "kind": "loss", "config": name}


def deserialize(config: dict[str, Any] | str, custom_objects: dict[str, Any] | None = None) -> Any:
    """The inverse of `serialize`; a bare name gives the registered function or class."""
    if isinstance(config, str):
        return lookup("loss", config, custom_objects)
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(
            "A serialized loss is a name or a dict with 'class_name' and 'config', as "
            f"`lamina.losses.serialize` writes. Received: {config!r}."
        )
    if config["class_name"] == "function":
        return lookup("loss", config["config"], custom_objects)
    name = config.get("registered_name") or config["class_name"]
    cls = lookup("loss", name, custom_objects)
    if not (inspect.isclass(cls) and issubclass(cls, Loss)):
        raise TypeError(
            f"{name!r} names the loss function {cls!r}, not a `Loss` class. Serialize "
            "functions as {'class_name': 'function', 'config': name}."
        )
    return cls.from_config(dict(config.get("config", {})))


def get(identifier: Any, custom_objects: dict[str, Any] | None = None) -> Loss | None:
    """A `Loss` from a name, a `Loss` (returned as is), a config dict, a `Loss` class, a torch
    criterion (`nn.Module`), or a callable `fn(y_true, y_pred)`; None gives None.

    >>> get("mse")
    MeanSquaredError(name='mean_squared_error', reduction='sum_over_batch_size', dtype=None)
    """
    if identifier is None or isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier, custom_objects)
    if isinstance(identifier, str):
        identifier = lookup("loss", identifier, custom_objects)
    if inspect.isclass(identifier) and issubclass(identifier, Loss):
        return identifier()
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, torch.nn.Module):
        return TorchCriterion(identifier)
    if identifier in _CLASS_OF_FUNCTION:
        return _CLASS_OF_FUNCTION[identifier]()
    if callable(identifier) and not inspect.isclass(identifier):
        return LossFunctionWrapper(identifier)
    raise TypeError(
        f"Could not interpret loss identifier {identifier!r}: expected a loss name such as "
        "'mse', a `Loss` instance, a config dict, or a function fn(y_true, y_pred)."
    )


__all__ = [
    "BinaryCrossentropy",
    "BinaryFocalCrossentropy",
    "CTC",
    "CategoricalCrossentropy",
    "CategoricalFocalCrossentropy",
    "CategoricalGeneralizedCrossEntropy",
    "CategoricalHinge",
    "Circle",
    "CosineSimilarity",
    "Dice",
    "Hinge",
    "Huber",
    "KLD",
    "KLDivergence",
    "LogCosh",
    "Loss",
    "LossFunctionWrapper",
    "MAE",
    "MAPE",
    "MSE",
    "MSLE",
    "MeanAbsoluteError",
    "MeanAbsolutePercentageError",
    "MeanSquaredError",
    "MeanSquaredLogarithmicError",
    "Poisson",
    "SparseCategoricalCrossentropy",
    "SquaredHinge",
    "TorchCriterion",
    "TripletHardLoss",
    "TripletSemiHardLoss",
    "Tversky",
    "binary_crossentropy",
    "binary_focal_crossentropy",
    "categorical_crossentropy",
    "categorical_focal_crossentropy",
    "categorical_generalized_cross_entropy",
    "categorical_hinge",
    "circle",
    "cosine_similarity",
    "ctc",
    "deserialize",
    "dice",
    "fusable_activation",
    "get",
    "hinge",
    "huber",
    "kl_divergence",
    "kld",
    "kullback_leibler_divergence",
    "log_cosh",
    "logcosh",
    "logits_equivalent",
    "mae",
    "mape",
    "mean_absolute_error",
    "mean_absolute_percentage_error",
    "mean_squared_error",
    "mean_squared_logarithmic_error",
    "mse",
    "msle",
    "pairwise_distance_matrix",
    "poisson",
    "reduce_weighted_values",
    "serialize",
    "sparse_categorical_crossentropy",
    "squared_hinge",
    "squeeze_or_expand_to_same_rank",
    "standardize_reduction",
    "triplet_hard_loss",
    "triplet_loss",
    "triplet_semihard_loss",
    "tversky",
]
