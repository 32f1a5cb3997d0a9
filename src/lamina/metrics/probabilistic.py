"""Probabilistic and hinge metrics: those losses of `lamina.losses` streamed as weighted means.

Useful to watch a cross-entropy (or a hinge) on validation data next to a different training
loss; each class is a door onto the loss function of the same name.
"""

from __future__ import annotations

import torch

from lamina import _registry, losses
from lamina.metrics.reduction import _FunctionMean


def _check_label_smoothing(label_smoothing: float) -> None:
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float)) or not (
        0 <= label_smoothing <= 1
    ):
        raise ValueError(
            "`label_smoothing` must be a number in [0, 1]. "
            f"Received: label_smoothing={label_smoothing!r}."
        )


@_registry.register("BinaryCrossentropy", "binary_crossentropy", "bce")
class BinaryCrossentropy(_FunctionMean):
    """Mean binary cross-entropy `-[y log(p) + (1 - y) log(1 - p)]` (see the loss).

    Args:
        name: name of the metric instance.
        dtype: dtype of the state and result.
        from_logits: `y_pred` are logits.
        label_smoothing: in [0, 1]; squeezes the labels towards 0.5.

    >>> m = BinaryCrossentropy()
    >>> m.update_state([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]])
    >>> round(float(m.result()), 4)
    0.8149
    """

    _direction = "down"
    _elementwise = True

    def __init__(
        self,
        name: str = "binary_crossentropy",
        dtype: str | torch.dtype | None = None,
        from_logits: bool = False,
        label_smoothing: float = 0,
    ) -> None:
        _check_label_smoothing(label_smoothing)
        super().__init__(
            losses.binary_crossentropy,
            name=name,
            dtype=dtype,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
        )


@_registry.register("CategoricalCrossentropy", "categorical_crossentropy")
class CategoricalCrossentropy(_FunctionMean):
    """Mean categorical cross-entropy `-sum(y * log(p))` over one-hot labels (see the loss).

    Args:
        name: name of the metric instance.
        dtype: dtype of the state and result.
        from_logits: `y_pred` are logits.
        label_smoothing: in [0, 1]; mixes the one-hot labels with the uniform distribution.
        axis: the class axis.

    >>> m = CategoricalCrossentropy()
    >>> m.update_state([[0, 1, 0], [0, 0, 1]], [[0.05, 0.95, 0], [0.1, 0.8, 0.1]])
    >>> round(float(m.result()), 4)
    1.1769
    """

    _direction = "down"

    def __init__(
        self,
        name: str = "categorical_crossentropy",
        dtype: str | torch.dtype | None = None,
        from_logits: bool = False,
        label_smoothing: float = 0,
        axis: int = -1,
    ) -> None:
        _check_label_smoothing(label_smoothing)
        super().__init__(
            losses.categorical_crossentropy,
            name=name,
            dtype=dtype,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            axis=axis,
        )


@_registry.register("SparseCategoricalCrossentropy", "sparse_categorical_crossentropy")
class SparseCategoricalCrossentropy(_FunctionMean):
    """Mean cross-entropy `-log(p[label])` over integer labels (see the loss).

    Args:
        name: name of the metric instance.
        dtype: dtype of the state and result.
        from_logits: `y_pred` are logits.
        axis: the class axis.

    >>> m = SparseCategoricalCrossentropy()
    >>> m.update_state([1, 2], [[0.05, 0.95, 0], [0.1, 0.8, 0.1]])
    >>> round(float(m.result()), 4)
    1.1769
    """

    _direction = "down"

    def __init__(
        self,
        name: str = "sparse_categorical_crossentropy",
        dtype: str | torch.dtype | None = None,
        from_logits: bool = False,
        axis: int = -1,
    ) -> None:
        super().__init__(
            losses.sparse_categorical_crossentropy,
            name=name,
            dtype=dtype,
            from_logits=from_logits,
            axis=axis,
        )


@_registry.register("KLDivergence", "kl_divergence", "kld")
class KLDivergence(_FunctionMean):
    """Mean Kullback-Leibler divergence `sum(y_true * log(y_true / y_pred))` (see the loss).

    >>> m = KLDivergence()
    >>> m.update_state([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]])
    >>> round(float(m.result()), 4)
    0.4581
    """

    _direction = "down"

    def __init__(self, name: str = "kl_divergence", dtype: str | torch.dtype | None = None) -> None:
        super().__init__(losses.kl_divergence, name=name, dtype=dtype)


@_registry.register("Poisson", "poisson")
class Poisson(_FunctionMean):
    """Mean Poisson negative log-likelihood `y_pred - y_true * log(y_pred)` (see the loss).

    >>> m = Poisson()
    >>> m.update_state([[0, 1], [0, 0]], [[1, 1], [0, 0]])
    >>> round(float(m.result()), 4)
    0.5
    """

    _direction = "down"
    _elementwise = True

    def __init__(self, name: str = "poisson", dtype: str | torch.dtype | None = None) -> None:
        super().__init__(losses.poisson, name=name, dtype=dtype)


@_registry.register("Hinge", "hinge")
class Hinge(_FunctionMean):
    """Mean hinge loss `max(1 - y_true * y_pred, 0)` with -1/+1 (or 0/1) labels.

    >>> m = Hinge()
    >>> m.update_state([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]])
    >>> round(float(m.result()), 4)
    1.3
    """

    _direction = "down"
    _elementwise = True

    def __init__(self, name: str = "hinge", dtype: str | torch.dtype | None = None) -> None:
        super().__init__(losses.hinge, name=name, dtype=dtype)


@_registry.register("SquaredHinge", "squared_hinge")
class SquaredHinge(_FunctionMean):
    """Mean squared hinge loss `max(1 - y_true * y_pred, 0)^2` with -1/+1 (or 0/1) labels.

    >>> m = SquaredHinge()
    >>> m.update_state([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]])
    >>> round(float(m.result()), 4)
    1.86
    """

    _direction = "down"
    _elementwise = True

    def __init__(self, name: str = "squared_hinge", dtype: str | torch.dtype | None = None) -> None:
        super().__init__(losses.squared_hinge, name=name, dtype=dtype)


@_registry.register("CategoricalHinge", "categorical_hinge")
class CategoricalHinge(_FunctionMean):
    """Mean categorical hinge `max(max((1 - y) * p) - sum(y * p) + 1, 0)` over one-hot labels.

    >>> m = CategoricalHinge()
    >>> m.update_state([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]])
    >>> round(float(m.result()), 4)
    1.4
    """

    _direction = "down"

    def __init__(
        self, name: str = "categorical_hinge", dtype: str | torch.dtype | None = None
    ) -> None:
        super().__init__(losses.categorical_hinge, name=name, dtype=dtype)
