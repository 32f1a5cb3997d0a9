"""Probabilistic losses: the cross-entropies, their focal forms, KL divergence and Poisson.

Numerics. On probabilities (`from_logits=False`) predictions are clipped to
`[epsilon, 1 - epsilon]` (epsilon = `lamina.config.epsilon()`, 1e-7) exactly as Keras does, so
probabilities of exactly 0 or 1 give finite values. On logits (`from_logits=True`) nothing is
clipped: `log_softmax`, `F.cross_entropy` and `F.binary_cross_entropy_with_logits` are exact
for any logit and their gradients never vanish through a saturated activation.

Fusing a final activation into the loss. A model whose last operation is a sigmoid (for
`binary_crossentropy` and `binary_focal_crossentropy`) or a softmax over the loss's `axis`
(for `categorical_crossentropy`, `sparse_categorical_crossentropy` and
`categorical_focal_crossentropy`) followed by that loss with `from_logits=False` computes
`loss(y_true, activation(z))`. The engine may instead compute
`logits_equivalent(loss)(y_true, z)` on the pre-activation `z`: the value is the same wherever
the probabilities lie inside `[epsilon, 1 - epsilon]`, and outside it the logits form is the
exact one (the probability form is clipped and its gradient is zero there). `predict` must
still apply the activation. `logits_equivalent` returns None for every other loss, for a loss
already on logits, and for a sigmoid/softmax mismatch (see `fusable_activation`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from lamina import _short_softmax, activations, config
from lamina._registry import register
from lamina.errors import DataError, ShapeError
from lamina.losses.loss import Loss, as_float_tensor, set_mask, standardize_pair


def _check_label_smoothing(label_smoothing: float) -> None:
    if isinstance(label_smoothing, bool) or not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(
            "`label_smoothing` must be a float in [0, 1]. "
            f"Received: label_smoothing={label_smoothing!r}."
        )


def _check_axis(axis: Any) -> None:
    if not isinstance(axis, int) or isinstance(axis, bool):
        raise ValueError(f"`axis` must be an integer. Received: axis={axis!r}.")


def _binary_crossentropy_on_probabilities(
    y_true: torch.Tensor, y_pred: torch.Tensor
) -> torch.Tensor:
    """Elementwise `-[y log p + (1 - y) log(1 - p)]` with p clipped to [eps, 1 - eps].

    Written out rather than `F.binary_cross_entropy`, which autocast refuses to run.
    """
    epsilon = config.epsilon()
    p = y_pred.clamp(epsilon, 1.0 - epsilon)
    return -(y_true * torch.log(p) + (1.0 - y_true) * torch.log1p(-p))


@register("binary_crossentropy", "bce", "BCE", kind="loss")
def binary_crossentropy(
    y_true: Any,
    y_pred: Any,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> torch.Tensor:
    """Binary cross-entropy, the mean along `axis` of

        L = -[y_true * log(y_pred) + (1 - y_true) * log(1 - y_pred)]

    Args:
        from_logits: `y_pred` holds logits (sigmoid applied inside, exactly).
        label_smoothing: squeezes labels towards 0.5: `y * (1 - s) + 0.5 * s`.
        axis: the axis the mean is taken over.

    >>> binary_crossentropy(torch.tensor([[0., 1.], [0., 0.]]), torch.tensor([[0.6, 0.4], [0.4, 0.6]]))
    tensor([0.9163, 0.7136])
    """
    _check_label_smoothing(label_smoothing)
    y_true, y_pred = standardize_pair(y_true, y_pred, "binary_crossentropy")
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        losses = F.binary_cross_entropy_with_logits(y_pred, y_true, reduction="none")
    else:
        losses = _binary_crossentropy_on_probabilities(y_true, y_pred)
    return losses.mean(dim=axis)


def _warn_single_class(y_pred: torch.Tensor, axis: int, loss_name: str) -> None:
    if y_pred.dim() > 0 and y_pred.shape[axis] == 1:
        warnings.warn(
            f"In loss {loss_name}, expected y_pred.shape to be (batch_size, num_classes) with "
            f"num_classes > 1. Received: y_pred.shape={tuple(y_pred.shape)}. The loss of a "
            "single class is always 0; use 'binary_crossentropy' for two classes.",
            UserWarning,
            stacklevel=3,
        )


def _smooth_one_hot(y_true: torch.Tensor, label_smoothing: float, axis: int) -> torch.Tensor:
    num_classes = y_true.shape[axis]
    return y_true * (1.0 - label_smoothing) + label_smoothing / num_classes


def _log_probabilities(y_pred: torch.Tensor, from_logits: bool, axis: int) -> torch.Tensor:
    """log p along `axis`: log_softmax on logits; on probabilities, renormalize then clip."""
    if from_logits:
        return activations.log_softmax(y_pred, axis)
    epsilon = config.epsilon()
    # Keras renormalizes so that unnormalized scores still form a distribution.
    probabilities = y_pred / y_pred.sum(dim=axis, keepdim=True)
    return torch.log(probabilities.clamp(epsilon, 1.0 - epsilon))


@register("categorical_crossentropy", kind="loss")
def categorical_crossentropy(
    y_true: Any,
    y_pred: Any,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> torch.Tensor:
    """Categorical cross-entropy over one-hot (or soft) labels: `L = -Σ(y_true * log(y_pred))`.

    Args:
        from_logits: `y_pred` holds logits (log_softmax inside).
        label_smoothing: `y * (1 - s) + s / num_classes`.
        axis: the class axis.

    >>> categorical_crossentropy(torch.tensor([[0., 1., 0.], [0., 0., 1.]]),
    ...                          torch.tensor([[0.05, 0.95, 0.], [0.1, 0.8, 0.1]]))
    tensor([0.0513, 2.3026])
    """
    _check_label_smoothing(label_smoothing)
    _check_axis(axis)
    y_true, y_pred = standardize_pair(y_true, y_pred, "categorical_crossentropy")
    _warn_single_class(y_pred, axis, "categorical_crossentropy")
    if label_smoothing:
        y_true = _smooth_one_hot(y_true, label_smoothing, axis)
    return -(y_true * _log_probabilities(y_pred, from_logits, axis)).sum(dim=axis)


def _sparse_labels(
    y_true: Any, y_pred: torch.Tensor, axis: int, loss_name: str
) -> torch.Tensor:
    """Integer labels of shape `y_pred.shape` without `axis`, accepting a trailing 1 axis."""
    if not isinstance(y_true, torch.Tensor):
        y_true = torch.as_tensor(y_true)
    y_true = y_true.to(device=y_pred.device)
    if y_true.dim() == y_pred.dim() and y_true.dim() > 0 and y_true.shape[-1] == 1:
        y_true = y_true.squeeze(-1)
    if y_pred.dim() == 0:
        raise ShapeError(
            f"`{loss_name}` needs y_pred with a class axis, e.g. (batch, num_classes). "
            "Received a scalar y_pred."
        )
    expected = y_pred.shape[:axis] + y_pred.shape[axis:][1:]
    if y_true.shape != expected:
        raise ShapeError(
            f"`{loss_name}` needs integer labels of shape {tuple(expected)} (y_pred's shape "
            f"without the class axis) for y_pred.shape={tuple(y_pred.shape)}. Received: "
            f"y_true.shape={tuple(y_true.shape)}. For one-hot labels use "
            "'categorical_crossentropy'."
        )
    if y_true.dtype != torch.long:
        y_true = y_true.long()
    return y_true


def check_label_range(
    labels: torch.Tensor, num_classes: int, ignore_class: int | None, loss_name: str
) -> None:
    """Raise a `DataError` naming the range and a bad label (one host sync)."""
    bad = (labels < 0) | (labels >= num_classes)
    if ignore_class is not None:
        bad &= labels != ignore_class
    if bool(bad.any()):
        first_bad = int(labels[bad][0])
        ignore_hint = f" or ignore_class={ignore_class}" if ignore_class is not None else ""
        raise DataError(
            f"`{loss_name}` received label {first_bad}, outside the valid range "
            f"[0, {num_classes - 1}]{ignore_hint} for y_pred with {num_classes} classes "
            f"({int(bad.sum())} bad labels in all). Use class indices 0..{num_classes - 1}, "
            "give the model one output unit per class, or set `ignore_class` for a void label."
        )


@register("sparse_categorical_crossentropy", kind="loss")
def sparse_categorical_crossentropy(
    y_true: Any,
    y_pred: Any,
    from_logits: bool = False,
    ignore_class: int | None = None,
    axis: int = -1,
    *,
    validate: bool = False,
) -> torch.Tensor:
    """Cross-entropy over integer labels: `L = -log(y_pred[class_index])`.

    Args:
        from_logits: `y_pred` holds logits (`F.cross_entropy` inside).
        ignore_class: a label value (e.g. -1 or 255) whose positions get loss 0 and are
            marked in the result's Keras mask, so `Loss` reductions average over the rest.
        axis: the class axis of `y_pred`.
        validate: check that every label lies in [0, num_classes) (costs one host sync).

    >>> sparse_categorical_crossentropy(torch.tensor([1, 2]),
    ...                                 torch.tensor([[0.05, 0.95, 0.], [0.1, 0.8, 0.1]]))
    tensor([0.0513, 2.3026])
    """
    _check_axis(axis)
    y_pred = as_float_tensor(y_pred)
    labels = _sparse_labels(y_true, y_pred, axis, "sparse_categorical_crossentropy")
    num_classes = y_pred.shape[axis]
    if validate:
        check_label_range(labels, num_classes, ignore_class, "sparse_categorical_crossentropy")
    valid = None
    if ignore_class is not None:
        valid = labels != ignore_class
        labels = torch.where(valid, labels, torch.zeros_like(labels))
    # (batch, classes, d1, ...) is the layout torch's fused kernels expect.
    # (batch, classes) is already in that layout: a no-op movedim would still add a graph node.
    moved = y_pred.dim() > 2 and axis % y_pred.dim() != 1
    class_first = y_pred.movedim(axis, 1) if moved else y_pred
    if from_logits:
        losses = _short_softmax.cross_entropy(class_first, labels, reduction="none")
    else:
        log_p = _log_probabilities(class_first, False, 1 if y_pred.dim() > 1 else 0)
        losses = F.nll_loss(log_p, labels, reduction="none")
    if valid is not None:
        losses = set_mask(torch.where(valid, losses, torch.zeros_like(losses)), valid)
    return losses


def _one_minus_p_and_log_terms(
    y_true: torch.Tensor, y_pred: torch.Tensor, from_logits: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """`(1 - p_t, bce)` elementwise, where `p_t = p` for label 1 and `1 - p` for label 0."""
    if from_logits:
        bce = F.binary_cross_entropy_with_logits(y_pred, y_true, reduction="none")
        # sigmoid(-z) is 1 - sigmoid(z) without the cancellation near p = 1.
        p, one_minus_p = torch.sigmoid(y_pred), torch.sigmoid(-y_pred)
    else:
        bce = _binary_crossentropy_on_probabilities(y_true, y_pred)
        p, one_minus_p = y_pred, 1.0 - y_pred
    return y_true * one_minus_p + (1.0 - y_true) * p, bce


@register("binary_focal_crossentropy", kind="loss")
def binary_focal_crossentropy(
    y_true: Any,
    y_pred: Any,
    apply_class_balancing: bool = False,
    alpha: float = 0.25,
    gamma: float = 2.0,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> torch.Tensor:
    """Binary focal cross-entropy (Lin et al., 2017), the mean along `axis` of

        L = -α_t * (1 - p_t)^γ * log(p_t),   p_t = y_pred if y_true == 1 else 1 - y_pred

    with `α_t = alpha` for label 1 and `1 - alpha` for label 0 when `apply_class_balancing`,
    else 1. `gamma=0` and no balancing give `binary_crossentropy`.

    >>> binary_focal_crossentropy(torch.tensor([[0., 1.], [0., 0.]]),
    ...                           torch.tensor([[0.6, 0.4], [0.4, 0.6]]))
    tensor([0.3299, 0.2058])
    """
    _check_label_smoothing(label_smoothing)
    y_true, y_pred = standardize_pair(y_true, y_pred, "binary_focal_crossentropy")
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    one_minus_p_t, bce = _one_minus_p_and_log_terms(y_true, y_pred, from_logits)
    focal = one_minus_p_t.pow(gamma) * bce
    if apply_class_balancing:
        focal = (y_true * alpha + (1.0 - y_true) * (1.0 - alpha)) * focal
    return focal.mean(dim=axis)


def _class_weights(
    alpha: float | Sequence[float] | torch.Tensor, y_pred: torch.Tensor, axis: int
) -> float | torch.Tensor:
    """A scalar alpha as is; a per-class alpha as a tensor broadcasting along `axis`."""
    if isinstance(alpha, (int, float)):
        return alpha
    weights = torch.as_tensor(alpha, dtype=y_pred.dtype, device=y_pred.device).reshape(-1)
    num_classes = y_pred.shape[axis]
    if weights.numel() != num_classes:
        raise ValueError(
            f"A per-class `alpha` needs one weight per class: {num_classes} for "
            f"y_pred.shape={tuple(y_pred.shape)}. Received {weights.numel()} weights."
        )
    shape = [1] * y_pred.dim()
    shape[axis] = num_classes
    return weights.reshape(shape)


@register("categorical_focal_crossentropy", kind="loss")
def categorical_focal_crossentropy(
    y_true: Any,
    y_pred: Any,
    alpha: float | Sequence[float] = 0.25,
    gamma: float = 2.0,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> torch.Tensor:
    """Categorical focal cross-entropy: `L = -Σ α * (1 - p)^γ * y_true * log(p)` along `axis`.

    `alpha` is a scalar or one weight per class; `gamma=0, alpha=1` gives
    `categorical_crossentropy`.

    >>> categorical_focal_crossentropy(torch.tensor([[0., 1., 0.], [0., 0., 1.]]),
    ...                                torch.tensor([[0.05, 0.9, 0.05], [0.1, 0.85, 0.05]]))
    tensor([2.6340e-04, 6.7591e-01])
    """
    _check_label_smoothing(label_smoothing)
    _check_axis(axis)
    y_true, y_pred = standardize_pair(y_true, y_pred, "categorical_focal_crossentropy")
    _warn_single_class(y_pred, axis, "categorical_focal_crossentropy")
    if label_smoothing:
        y_true = _smooth_one_hot(y_true, label_smoothing, axis)
    log_p = _log_probabilities(y_pred, from_logits, axis)
    modulating = (1.0 - log_p.exp()).pow(gamma)
    weights = _class_weights(alpha, y_pred, axis)
    return -(weights * modulating * y_true * log_p).sum(dim=axis)


@register("kl_divergence", "kld", "KLD", "kullback_leibler_divergence", kind="loss")
def kl_divergence(y_true: Any, y_pred: Any) -> torch.Tensor:
    """Kullback-Leibler divergence `L = Σ y_true * log(y_true / y_pred)` over the last axis.

    Both are clipped to [epsilon, 1] first, as in Keras, so zeros stay finite.

    >>> kl_divergence(torch.tensor([[0.5, 0.5]]), torch.tensor([[0.25, 0.75]]))
    tensor([0.1438])
    """
    y_true, y_pred = standardize_pair(y_true, y_pred, "kl_divergence")
    epsilon = config.epsilon()
    y_true = y_true.clamp(epsilon, 1.0)
    y_pred = y_pred.clamp(epsilon, 1.0)
    return (y_true * (torch.log(y_true) - torch.log(y_pred))).sum(dim=-1)


@register("poisson", kind="loss")
def poisson(y_true: Any, y_pred: Any) -> torch.Tensor:
    """Poisson negative log-likelihood: `L = mean(y_pred - y_true * log(y_pred + epsilon))`.

    >>> poisson(torch.tensor([[1., 2.]]), torch.tensor([[1., 2.]]))
    tensor([0.8069])
    """
    y_true, y_pred = standardize_pair(y_true, y_pred, "poisson")
    return (y_pred - y_true * torch.log(y_pred + config.epsilon())).mean(dim=-1)


class _CrossentropyLoss(Loss):
    """The first-call check shared by the cross-entropy classes: probabilities look like ones.

    Binary losses need y_pred in [0, 1]; categorical ones renormalize, so they only need
    y_pred >= 0. Anything else means logits were passed with from_logits=False, which Keras
    would silently clip into a wrong loss.
    """

    _probability_upper_bound = 1.0

    def check_inputs(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> None:
        super().check_inputs(y_true, y_pred)
        if self.from_logits or y_pred.numel() == 0:
            return
        slack = 1e-3
        low, high = float(y_pred.min()), float(y_pred.max())
        if low < -slack or high > self._probability_upper_bound + slack:
            expected = "[0, 1]" if self._probability_upper_bound == 1.0 else ">= 0"
            raise DataError(
                f"`{self.name}` has from_logits=False, so y_pred must hold probabilities "
                f"({expected}); received values from {low:.4g} to {high:.4g}, which look like "
                "logits. Pass from_logits=True, or end the model with a sigmoid/softmax "
                "activation."
            )


@register("BinaryCrossentropy")
class BinaryCrossentropy(_CrossentropyLoss):
    """Binary cross-entropy between 0/1 labels and probabilities (or logits); see
    `binary_crossentropy`.

    Args:
        from_logits: `y_pred` holds logits; preferred, as it is exact for every logit.
        label_smoothing: in [0, 1]; squeezes the labels towards 0.5.
        axis: the axis the mean is taken over.
    """

    def __init__(
        self,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str = "binary_crossentropy",
        dtype: str | None = None,
    ) -> None:
        _check_label_smoothing(label_smoothing)
        _check_axis(axis)
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing
        self.axis = axis

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        return binary_crossentropy(
            y_true, y_pred, self.from_logits, self.label_smoothing, self.axis
        )

    def get_config(self) -> dict[str, Any]:
        return {
            "from_logits": self.from_logits,
            "label_smoothing": self.label_smoothing,
            "axis": self.axis,
            **super().get_config(),
        }


@register("BinaryFocalCrossentropy")
class BinaryFocalCrossentropy(_CrossentropyLoss):
    """Binary focal cross-entropy; see `binary_focal_crossentropy`.

    Args:
        apply_class_balancing: weight label 1 by `alpha` and label 0 by `1 - alpha`.
        alpha: the weight of class 1 when balancing.
        gamma: the focusing parameter; 0 gives plain binary cross-entropy.
        from_logits, label_smoothing, axis: as in `BinaryCrossentropy`.
    """

    def __init__(
        self,
        apply_class_balancing: bool = False,
        alpha: float = 0.25,
        gamma: float = 2.0,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str = "binary_focal_crossentropy",
        dtype: str | None = None,
    ) -> None:
        _check_label_smoothing(label_smoothing)
        _check_axis(axis)
        _check_focal(alpha, gamma)
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.apply_class_balancing = apply_class_balancing
        self.alpha = alpha
        self.gamma = gamma
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing
        self.axis = axis

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        return binary_focal_crossentropy(
            y_true,
            y_pred,
            apply_class_balancing=self.apply_class_balancing,
            alpha=self.alpha,
            gamma=self.gamma,
            from_logits=self.from_logits,
            label_smoothing=self.label_smoothing,
            axis=self.axis,
        )

    def get_config(self) -> dict[str, Any]:
        return {
            "apply_class_balancing": self.apply_class_balancing,
            "alpha": self.alpha,
            "gamma": self.gamma,
            "from_logits": self.from_logits,
            "label_smoothing": self.label_smoothing,
            "axis": self.axis,
            **super().get_config(),
        }


def _check_focal(alpha: Any, gamma: Any) -> None:
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or gamma < 0:
        raise ValueError(f"`gamma` must be a number >= 0. Received: gamma={gamma!r}.")
    if isinstance(alpha, (int, float)) and not isinstance(alpha, bool):
        if alpha < 0:
            raise ValueError(f"`alpha` must be >= 0. Received: alpha={alpha!r}.")
        return
    if not isinstance(alpha, (list, tuple)) or not all(
        isinstance(a, (int, float)) and not isinstance(a, bool) and a >= 0 for a in alpha
    ):
        raise ValueError(
            "`alpha` must be a number >= 0 or a list of per-class weights >= 0. "
            f"Received: alpha={alpha!r}."
        )


@register("CategoricalCrossentropy")
class CategoricalCrossentropy(_CrossentropyLoss):
    """Cross-entropy between one-hot labels and class probabilities (or logits); see
    `categorical_crossentropy`.

    Args:
        from_logits: `y_pred` holds logits.
        label_smoothing: in [0, 1]; `y * (1 - s) + s / num_classes`.
        axis: the class axis.
    """

    _probability_upper_bound = float("inf")

    def __init__(
        self,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str = "categorical_crossentropy",
        dtype: str | None = None,
    ) -> None:
        _check_label_smoothing(label_smoothing)
        _check_axis(axis)
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing
        self.axis = axis

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        return categorical_crossentropy(
            y_true, y_pred, self.from_logits, self.label_smoothing, self.axis
        )

    def get_config(self) -> dict[str, Any]:
        return {
            "from_logits": self.from_logits,
            "label_smoothing": self.label_smoothing,
            "axis": self.axis,
            **super().get_config(),
        }


@register("CategoricalFocalCrossentropy")
class CategoricalFocalCrossentropy(_CrossentropyLoss):
    """Categorical focal cross-entropy; see `categorical_focal_crossentropy`.

    Args:
        alpha: a weight for all classes, or a list of one weight per class.
        gamma: the focusing parameter.
        from_logits, label_smoothing, axis: as in `CategoricalCrossentropy`.
    """

    _probability_upper_bound = float("inf")

    def __init__(
        self,
        alpha: float | Sequence[float] = 0.25,
        gamma: float = 2.0,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str = "categorical_focal_crossentropy",
        dtype: str | None = None,
    ) -> None:
        _check_label_smoothing(label_smoothing)
        _check_axis(axis)
        _check_focal(alpha, gamma)
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.alpha = list(alpha) if isinstance(alpha, tuple) else alpha
        self.gamma = gamma
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing
        self.axis = axis

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        return categorical_focal_crossentropy(
            y_true,
            y_pred,
            alpha=self.alpha,
            gamma=self.gamma,
            from_logits=self.from_logits,
            label_smoothing=self.label_smoothing,
            axis=self.axis,
        )

    def get_config(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "gamma": self.gamma,
            "from_logits": self.from_logits,
            "label_smoothing": self.label_smoothing,
            "axis": self.axis,
            **super().get_config(),
        }


@register("SparseCategoricalCrossentropy")
class SparseCategoricalCrossentropy(_CrossentropyLoss):
    """Cross-entropy between integer labels and class probabilities (or logits); see
    `sparse_categorical_crossentropy`.

    The first call checks every label against the number of classes (one host sync) and
    raises a `DataError` naming the bad label; later calls add no sync.

    Args:
        from_logits: `y_pred` holds logits.
        ignore_class: a label value whose positions are left out of the loss and its mean.
    """

    _probability_upper_bound = float("inf")

    def __init__(
        self,
        from_logits: bool = False,
        ignore_class: int | None = None,
        reduction: str | None = "sum_over_batch_size",
        name: str = "sparse_categorical_crossentropy",
        dtype: str | None = None,
    ) -> None:
        if ignore_class is not None and (
            not isinstance(ignore_class, int) or isinstance(ignore_class, bool)
        ):
            raise ValueError(
                f"`ignore_class` must be an integer or None. Received: ignore_class={ignore_class!r}."
            )
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits = from_logits
        self.ignore_class = ignore_class

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        return sparse_categorical_crossentropy(
            y_true, y_pred, from_logits=self.from_logits, ignore_class=self.ignore_class
        )

    def _batch_mean(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor | None:
        # torch's own mean reduction: per-sample values then `mean` cost two more kernels
        # forward and three backward, ~1% of the sheet's MLP step.
        if not self.from_logits or self.ignore_class is not None or y_pred.dim() != 2:
            return None
        return _short_softmax.cross_entropy(y_pred, _sparse_labels(y_true, y_pred, -1, self.name))

    def check_inputs(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> None:
        super().check_inputs(y_true, y_pred)
        labels = _sparse_labels(y_true, y_pred, -1, self.name)
        if y_true.is_floating_point() and bool((labels != y_true.reshape(labels.shape)).any()):
            raise DataError(
                f"`{self.name}` needs integer class labels; y_true holds non-integer values. "
                "For one-hot or soft labels use 'categorical_crossentropy'."
            )
        check_label_range(labels, y_pred.shape[-1], self.ignore_class, self.name)

    def get_config(self) -> dict[str, Any]:
        return {
            "from_logits": self.from_logits,
            "ignore_class": self.ignore_class,
            **super().get_config(),
        }


@register("KLDivergence")
class KLDivergence(Loss):
    """Kullback-Leibler divergence `loss = y_true * log(y_true / y_pred)`; see `kl_divergence`."""

    def __init__(
        self,
        reduction: str | None = "sum_over_batch_size",
        name: str = "kl_divergence",
        dtype: str | None = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        return kl_divergence(y_true, y_pred)


@register("Poisson")
class Poisson(Loss):
    """Poisson loss `loss = y_pred - y_true * log(y_pred)`; see `poisson`."""

    def __init__(
        self,
        reduction: str | None = "sum_over_batch_size",
        name: str = "poisson",
        dtype: str | None = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        return poisson(y_true, y_pred)


_SIGMOID_LOSSES = (BinaryCrossentropy, BinaryFocalCrossentropy)
_SOFTMAX_LOSSES = (CategoricalCrossentropy, SparseCategoricalCrossentropy, CategoricalFocalCrossentropy)


def fusable_activation(loss: Loss) -> str | None:
    """'sigmoid' or 'softmax': the final activation `logits_equivalent(loss)` may absorb."""
    if isinstance(loss, _SIGMOID_LOSSES):
        return "sigmoid"
    if isinstance(loss, _SOFTMAX_LOSSES):
        return "softmax"
    return None


def logits_equivalent(loss: Loss, activation: str | None = None) -> Loss | None:
    """The `from_logits=True` twin of a probability-based cross-entropy, or None.

    Args:
        loss: a `Loss` instance.
        activation: when given ('sigmoid' or 'softmax'), the model's final activation; the
            twin is returned only if that activation is the one the loss can absorb.

    See the module docstring for the rule. The twin keeps every other argument (name,
    reduction, label smoothing, focal parameters, axis).

    >>> logits_equivalent(BinaryCrossentropy(label_smoothing=0.1)).get_config()["from_logits"]
    True
    >>> logits_equivalent(CategoricalCrossentropy(), activation="sigmoid") is None
    True
    """
    expected = fusable_activation(loss)
    if expected is None or loss.from_logits:
        return None
    if activation is not None and activation != expected:
        return None
    return type(loss).from_config({**loss.get_config(), "from_logits": True})
