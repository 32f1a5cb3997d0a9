"""The `Loss` base class: Keras's reductions, sample weights and masks over a per-sample `call`.

A loss is the pure function of its family file (`mean_squared_error`, ...) behind a thin class.
`Loss.__call__` turns the per-sample values of `call(y_true, y_pred)` into one scalar:

    reduction="sum_over_batch_size" (default, alias "mean"):
        sum(sample_weight * mask * losses) / count, where count is the number of loss values,
        or the number of unmasked values when a mask is present (Keras 3's `apply_mask`).
    reduction="sum":          sum(sample_weight * mask * losses)
    reduction="mean_with_sample_weight":  sum(sample_weight * losses) / sum(sample_weight)
    reduction="none" or None: the weighted per-sample values themselves.

Masks come, as in Keras, from a `_keras_mask` attribute on `y_pred` (set by masking layers) or
on the values a loss returns (`sparse_categorical_crossentropy(..., ignore_class=k)` marks the
ignored positions), or from the keyword-only `mask=` argument of `__call__`.
"""

from __future__ import annotations

from typing import Any

import torch

from lamina import config
from lamina._naming import to_snake_case
from lamina._registry import canonical_name, lookup, register
from lamina.errors import DataError, ShapeError

REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)

# The attribute Keras uses to carry a mask on a tensor; torch tensors accept attributes too.
MASK_ATTRIBUTE = "_keras_mask"


def standardize_reduction(reduction: str | None) -> str | None:
    """Validate `reduction` against Keras 3's list; `'mean'` and `None` are accepted as Keras does."""
    if reduction not in REDUCTIONS:
        raise ValueError(
            "Invalid value for argument `reduction`. Expected one of "
            f"{', '.join(repr(r) for r in REDUCTIONS)}. Received: reduction={reduction!r}."
        )
    return reduction


def get_mask(x: Any) -> torch.Tensor | None:
    """The Keras mask carried by a tensor, or None."""
    return getattr(x, MASK_ATTRIBUTE, None)


def set_mask(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Attach a Keras mask to a tensor (in place) and return the tensor."""
    setattr(x, MASK_ATTRIBUTE, mask)
    return x


def as_float_tensor(x: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
    """`x` as a floating tensor: `dtype` when given, else its own float dtype, else floatx."""
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(x)
    if dtype is not None:
        return x if x.dtype is dtype else x.to(dtype)
    if not x.is_floating_point():
        return x.to(config.torch_dtype(None))
    return x


def squeeze_or_expand_to_same_rank(
    x1: torch.Tensor, x2: torch.Tensor, expand_rank_1: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Make ranks equal when they differ by one trailing axis of size 1, as Keras does.

    `(batch,)` against `(batch, 1)` becomes `(batch, 1)` against `(batch, 1)` (or `(batch,)`
    twice when `expand_rank_1=False`); a higher-rank pair such as `(batch, t)` against
    `(batch, t, 1)` loses the trailing axis instead. Any other mismatch is left for the caller
    to reject.
    """
    rank1, rank2 = x1.dim(), x2.dim()
    if rank1 == rank2 + 1 and x1.shape[-1] == 1:
        if rank2 == 1 and expand_rank_1:
            x2 = x2.unsqueeze(-1)
        else:
            x1 = x1.squeeze(-1)
    elif rank2 == rank1 + 1 and x2.shape[-1] == 1:
        if rank1 == 1 and expand_rank_1:
            x1 = x1.unsqueeze(-1)
        else:
            x2 = x2.squeeze(-1)
    return x1, x2


def standardize_pair(
    y_true: Any, y_pred: Any, loss_name: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """`y_pred` as a float tensor, `y_true` cast to its dtype and device, ranks reconciled.

    Raises a `ShapeError` naming both shapes when they still differ: an elementwise loss on
    `(batch, 3)` against `(batch, 1)` would otherwise broadcast into a silently wrong value.
    """
    y_pred = as_float_tensor(y_pred)
    if not isinstance(y_true, torch.Tensor):
        y_true = torch.as_tensor(y_true)
    y_true = y_true.to(device=y_pred.device, dtype=y_pred.dtype)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    if y_true.shape != y_pred.shape:
        raise ShapeError(
            f"`{loss_name}` needs `y_true` and `y_pred` of the same shape (a trailing axis of "
            f"size 1 is added or dropped as needed). Received: y_true.shape="
            f"{tuple(y_true.shape)}, y_pred.shape={tuple(y_pred.shape)}. Check that the "
            "model's output units match the labels (one-hot labels need "
            "'categorical_crossentropy', integer labels 'sparse_categorical_crossentropy')."
        )
    return y_true, y_pred


def _weights_like(
    sample_weight: torch.Tensor, values: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reconcile ranks, then let `(batch,)` weights cover every trailing axis of `values`."""
    values, sample_weight = squeeze_or_expand_to_same_rank(values, sample_weight)
    while sample_weight.dim() < values.dim():
        sample_weight = sample_weight.unsqueeze(-1)
    try:
        torch.broadcast_shapes(sample_weight.shape, values.shape)
    except RuntimeError:
        raise ShapeError(
            f"`sample_weight` of shape {tuple(sample_weight.shape)} cannot be broadcast to the "
            f"per-sample losses of shape {tuple(values.shape)}. Pass one weight per sample, "
            "shape (batch,), or one per loss value."
        ) from None
    return sample_weight, values


def reduce_weighted_values(
    values: torch.Tensor,
    sample_weight: Any = None,
    mask: torch.Tensor | None = None,
    reduction: str | None = "sum_over_batch_size",
) -> torch.Tensor:
    """Apply mask and sample weights to per-sample `values`, then reduce (see module docstring)."""
    reduction = standardize_reduction(reduction)
    if sample_weight is None and mask is None and reduction in ("sum_over_batch_size", "mean") \
            and values.dim() > 0:
        # The training step's common case: one kernel (and one backward node) instead of two.
        return values.mean()
    if sample_weight is not None:
        sample_weight = as_float_tensor(sample_weight).to(values.device, values.dtype)
    if mask is not None:
        mask = mask.to(device=values.device, dtype=values.dtype)
        if reduction in ("sum_over_batch_size", "mean"):
            # Scale kept entries by total/valid so the division by the element count below
            # yields a mean over the valid entries only; all-masked gives 0, not NaN.
            valid = mask.sum()
            scale = torch.where(valid > 0, mask.numel() / valid.clamp_min(1), 0.0)
            mask = mask * scale
        if sample_weight is None:
            sample_weight = mask
        else:
            sample_weight, mask = _weights_like(sample_weight, mask)
            sample_weight = sample_weight * mask
    if sample_weight is not None:
        sample_weight, values = _weights_like(sample_weight, values)
        values = values * sample_weight
    if reduction in (None, "none") or values.dim() == 0:
        return values
    total = values.sum()
    if reduction == "sum":
        return total
    if reduction == "mean_with_sample_weight" and sample_weight is not None:
        weight_sum = sample_weight.expand_as(values).sum()
        return torch.where(weight_sum != 0, total / weight_sum, torch.zeros_like(total))
    # The element count is a Python int: dividing by it costs no device round trip.
    return total / max(values.numel(), 1)


class Loss:
    """Base class of every loss: subclasses implement `call(y_true, y_pred)` -> per-sample values.

    Args:
        name: name of the loss instance (the snake_case class name by default).
        reduction: "sum_over_batch_size" (default), "sum", "mean", "mean_with_sample_weight",
            "none" or None; see the module docstring.
        dtype: dtype of the computation. None uses `y_pred`'s float dtype, promoting float16
            and bfloat16 to float32 so mixed-precision losses keep their precision.

    >>> class MeanSquare(Loss):
    ...     def call(self, y_true, y_pred):
    ...         return ((y_pred - y_true) ** 2).mean(dim=-1)
    >>> float(MeanSquare()(torch.zeros(2, 2), torch.ones(2, 2)))
    1.0
    """

    _registry_kind = "loss"

    def __init__(
        self,
        name: str | None = None,
        reduction: str | None = "sum_over_batch_size",
        dtype: str | torch.dtype | None = None,
    ) -> None:
        if dtype is not None:
            config.torch_dtype(dtype)
        self.name = name or to_snake_case(type(self).__name__)
        self.reduction = standardize_reduction(reduction)
        self.dtype = dtype
        self._inputs_checked = False

    def __call__(
        self,
        y_true: Any,
        y_pred: Any,
        sample_weight: Any = None,
        *,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The reduced loss: a scalar tensor unless `reduction` is "none"/None."""
        in_mask = mask if mask is not None else get_mask(y_pred)
        y_pred = as_float_tensor(y_pred, self._compute_dtype(y_pred))
        if not isinstance(y_true, torch.Tensor):
            y_true = torch.as_tensor(y_true, device=y_pred.device)
        if not self._inputs_checked:
            # One host sync, on calls until one passes: the cheapest place to catch
            # NaN labels or out-of-range classes before they become a silent NaN loss.
            if not torch.compiler.is_compiling():
                self.check_inputs(y_true.detach(), y_pred.detach())
            self._inputs_checked = True
        if sample_weight is None and in_mask is None \
                and self.reduction in ("sum_over_batch_size", "mean"):
            mean = self._batch_mean(y_true, y_pred)
            if mean is not None:
                return mean
        losses = self.call(y_true, y_pred)
        out_mask = get_mask(losses)
        if in_mask is not None and out_mask is not None:
            in_mask, out_mask = squeeze_or_expand_to_same_rank(in_mask.bool(), out_mask.bool())
            loss_mask = in_mask & out_mask
        else:
            loss_mask = in_mask if in_mask is not None else out_mask
        return reduce_weighted_values(losses, sample_weight, loss_mask, self.reduction)

    def _batch_mean(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor | None:
        """The mean of `call`'s per-sample values in one kernel, where a subclass has one (an
        unweighted, unmasked batch); None: compute them and reduce."""
        return None

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(
            f"{type(self).__name__} must implement `call(y_true, y_pred)` returning the "
            "per-sample loss values."
        )

    def check_inputs(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> None:
        """Validate data on the first call (host sync allowed); subclasses extend it."""
        check_finite(y_true, "y_true", self.name)
        check_finite(y_pred, "y_pred", self.name)

    def _compute_dtype(self, y_pred: Any) -> torch.dtype:
        if self.dtype is not None:
            return config.torch_dtype(self.dtype)
        if isinstance(y_pred, torch.Tensor) and y_pred.is_floating_point():
            if y_pred.dtype in (torch.float16, torch.bfloat16):
                return torch.float32
            return y_pred.dtype
        return config.torch_dtype(None)

    def get_config(self) -> dict[str, Any]:
        dtype = self.dtype
        if isinstance(dtype, torch.dtype):
            dtype = config.dtype_name(dtype)
        return {"name": self.name, "reduction": self.reduction, "dtype": dtype}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Loss:
        return cls(**config)

    def __repr__(self) -> str:
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({arguments})"


def check_finite(x: torch.Tensor, argument: str, loss_name: str) -> None:
    """Raise a `DataError` when a floating tensor holds NaN (one host sync)."""
    if not x.is_floating_point() or x.numel() == 0:
        return
    bad = torch.isnan(x)
    if bool(bad.any()):
        count = int(bad.sum())
        raise DataError(
            f"`{loss_name}` received NaN values in `{argument}`: {count} of {x.numel()} "
            f"entries are NaN, which would make the loss NaN. "
            + (
                "Remove or impute the NaN labels before training."
                if argument == "y_true"
                else "Check the model inputs for NaN (e.g. np.isnan(x).any()) and clean them."
            )
        )


@register("LossFunctionWrapper")
class LossFunctionWrapper(Loss):
    """A `Loss` around any function `fn(y_true, y_pred, **kwargs)` returning per-sample values.

    Ranks are reconciled first (`(batch,)` against `(batch, 1)`), as Keras's wrapper does.

    >>> wrapped = LossFunctionWrapper(lambda t, p: (p - t).abs().mean(dim=-1), name="l1")
    >>> float(wrapped(torch.zeros(2, 3), torch.ones(2, 3)))
    1.0
    """

    def __init__(
        self,
        fn: Any,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = None,
        dtype: str | None = None,
        **kwargs: Any,
    ) -> None:
        if not callable(fn):
            raise TypeError(
                f"`fn` must be a callable fn(y_true, y_pred). Received: fn={fn!r} of type "
                f"{type(fn).__name__}."
            )
        super().__init__(name=name or getattr(fn, "__name__", None), reduction=reduction, dtype=dtype)
        self.fn = fn
        self.fn_kwargs = kwargs

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        return self.fn(y_true, y_pred, **self.fn_kwargs)

    def get_config(self) -> dict[str, Any]:
        # A registered function serializes as its name; anything else stays the object and
        # needs `custom_objects` (or registration) to be saved.
        fn = canonical_name(self.fn) or self.fn
        return {"fn": fn, **super().get_config(), **self.fn_kwargs}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LossFunctionWrapper:
        config = dict(config)
        if isinstance(config.get("fn"), str):
            config["fn"] = lookup("loss", config["fn"])
        return cls(**config)


class TorchCriterion(Loss):
    """A torch-style criterion (`nn.MSELoss()`, `lamina.nn.FocalLoss()`, ...) as a `Loss`.

    Torch criteria take `(input, target)`, Keras losses `(y_true, y_pred)`: this door swaps
    them. The criterion applies its own reduction; per-sample weights need one built with
    `reduction='none'`.

    >>> float(TorchCriterion(torch.nn.L1Loss())(torch.zeros(2), torch.ones(2)))
    1.0
    """

    def __init__(
        self,
        criterion: torch.nn.Module,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = None,
        dtype: str | None = None,
    ) -> None:
        if not isinstance(criterion, torch.nn.Module):
            raise TypeError(
                "`criterion` must be a torch.nn.Module called as criterion(input, target). "
                f"Received: {criterion!r}."
            )
        super().__init__(
            name=name or to_snake_case(type(criterion).__name__), reduction=reduction, dtype=dtype
        )
        self.criterion = criterion

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        return self.criterion(y_pred, y_true)

    def get_config(self) -> dict[str, Any]:
        return {"criterion": self.criterion, **super().get_config()}
