"""The optimizer base: Keras's optimizer API over a `torch.optim` optimizer.

An `Optimizer` is configured Keras-style (no variables at construction), bound to a list of
torch tensors by `build(variables)`, and then stepped torch-style: `loss.backward();
opt.step()`. Around the torch update it does what Keras's optimizers do: gradient accumulation,
loss-scale unscaling, clipping, the learning-rate schedule, decoupled weight decay and the
exponential moving average (EMA) of the weights. All of it is foreach tensor math and plain
float arithmetic: nothing in `step()` reads a value back from the device.

Subclasses implement `_create_torch_optimizer(variables, **kernel)` (the torch optimizer that
does the update, foreach or fused) and, when Keras's formula needs a per-step torch
hyperparameter, `_prepare_update(learning_rate, gradients)`.
"""

from __future__ import annotations

import inspect
import json
import math
import numbers
import re
import warnings
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from lamina._grad_mode import call_without_grad
from lamina._naming import to_snake_case
from lamina.optimizers.schedules import LearningRateSchedule
from lamina.optimizers.schedules import deserialize as deserialize_schedule
from lamina.optimizers.schedules import serialize as serialize_schedule

# Torch spellings of Keras arguments, named in the error a torch habit would otherwise get.
_TORCH_SPELLINGS = {
    "lr": "learning_rate",
    "betas": "beta_1 and beta_2",
    "eps": "epsilon",
    "alpha": "rho",
    "decay": "a LearningRateSchedule as `learning_rate`",
}


def check_float_range(
    name: str,
    value: Any,
    low: float,
    high: float,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Raise a ValueError naming `name` unless `value` is a real number in the interval."""
    is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    above = is_number and (value > low if low_open else value >= low)
    below = is_number and (value < high if high_open else value <= high)
    if not (above and below):
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"`{name}` must be a float in {interval}. Received: {name}={value!r}.")


def _check_optional_positive(name: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(
            f"`{name}` must be a positive float or None. Received: {name}={value!r}."
        )


def _standardize_learning_rate(value: Any) -> float | LearningRateSchedule | Callable[[], float]:
    if isinstance(value, LearningRateSchedule):
        return value
    if callable(value):
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            "`learning_rate` must be a float, a LearningRateSchedule, or a callable that "
            f"takes no arguments and returns a float. Received: learning_rate={value!r} of "
            f"type {type(value).__name__}."
        )
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(
            "`learning_rate` must be a finite non-negative float. "
            f"Received: learning_rate={value!r}."
        )
    return float(value)


def _clip_by_norm_(gradients: list[torch.Tensor], clipnorm: float) -> None:
    """Keras's per-tensor clipping: `g * clipnorm / max(||g||, clipnorm)`, in place."""
    scales = torch._foreach_norm(gradients)
    torch._foreach_clamp_min_(scales, clipnorm)
    torch._foreach_reciprocal_(scales)
    torch._foreach_mul_(scales, clipnorm)
    torch._foreach_mul_(gradients, scales)


def _clip_by_global_norm_(gradients: list[torch.Tensor], clipnorm: float) -> None:
    """Keras's global clipping: every `g * clipnorm / max(global_norm, clipnorm)`, in place.

    Unlike `torch.nn.utils.clip_grad_norm_` (which divides by `norm + 1e-6`) this is exact, and
    a non-finite global norm turns every gradient into NaN, as in Keras, so a blown-up step is
    visible instead of being silently scaled to zero.
    """
    device = gradients[0].device
    norms = [norm.to(device) for norm in torch._foreach_norm(gradients)]
    total = torch.linalg.vector_norm(torch.stack(norms))
    scale = clipnorm / total.clamp_min(clipnorm) + (total - total)
    if all(gradient.device == device for gradient in gradients):
        torch._foreach_mul_(gradients, scale)
    else:
        for gradient in gradients:
            gradient.mul_(scale.to(gradient.device))


def _with_common_arguments(init: Callable, not_accepted: Sequence[str]) -> inspect.Signature:
    """`init`'s signature with the common optimizer arguments it receives through `**kwargs`
    written out, keyword-only, in Keras's order before `name`."""
    signature = inspect.signature(init)
    parameters = list(signature.parameters.values())
    if not any(p.kind is p.VAR_KEYWORD for p in parameters):
        return signature
    declared = {p.name for p in parameters}
    common = [p.replace(kind=p.KEYWORD_ONLY)
              for p in inspect.signature(Optimizer.__init__).parameters.values()
              if p.name not in ("self", "learning_rate", "name", "kwargs")
              and p.name not in declared and p.name not in not_accepted]
    own = [p for p in parameters if p.name != "name" and p.kind is not p.VAR_KEYWORD]
    name = [p.replace(kind=p.KEYWORD_ONLY) for p in parameters if p.name == "name"]
    keywords = [p for p in parameters if p.kind is p.VAR_KEYWORD]
    return signature.replace(parameters=own + common + name + keywords)


class Optimizer:
    """Base class of lamina optimizers: Keras's arguments and hooks over `torch.optim`.

    Args:
        learning_rate: a float, a `LearningRateSchedule` (evaluated at the number of `step()`
            calls, as Keras does), or a callable with no arguments that returns a float.
        weight_decay: if set, Keras's decoupled decay `w = w - learning_rate * weight_decay * w`
            is applied to each variable before its update.
        clipnorm: if set, each gradient is scaled so that its L2 norm is at most this value.
        clipvalue: if set, each gradient element is clipped to `[-clipvalue, clipvalue]`.
        global_clipnorm: if set, all gradients are scaled together so that their global L2 norm
            is at most this value. At most one of the three clipping arguments may be set.
        use_ema: keep an exponential moving average of the weights,
            `average = ema_momentum * average + (1 - ema_momentum) * w` after every step (the
            first step copies the weights).
        ema_momentum: the momentum of that average, in [0, 1].
        ema_overwrite_frequency: if set, the weights are overwritten by their average every
            this many updates; otherwise call `finalize_variable_values()` at the end.
        loss_scale_factor: if set, `scale_loss(loss)` multiplies the loss by it and the
            gradients are divided by it before anything else.
        gradient_accumulation_steps: if set (>= 2), only every N-th `step()` updates the weights,
            with the mean of the N gradients. `iterations` then counts updates, while the
            learning-rate schedule sees every call, as in Keras.
        name: a name for the optimizer.

    `opt.step()` uses the `.grad` of the variables given to `build()`, then sets them to None.
    `opt.apply_gradients(zip(grads, variables))` does the same with explicit gradients.
    """

    _registry_kind = "optimizer"
    # Whether torch has a fused (single-kernel) implementation of this algorithm; it is used
    # when every variable lives on CUDA or every one on the CPU, the foreach one otherwise.
    _fused_capable = False
    # Common arguments a subclass does not accept (TorchOptimizer: the torch optimizer decays).
    _not_accepted: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A Lamina optimizer's `__init__` declares only its own arguments (and its default
        `name`) and passes the common ones on through `**kwargs`, validated once here; its
        signature is rewritten to show them all, so `inspect.signature`, `help()` and
        `get_config()` agree with Keras's."""
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None and cls.__module__.startswith("lamina."):
            init.__signature__ = _with_common_arguments(init, cls._not_accepted)

    def __init__(
        self,
        learning_rate: float | LearningRateSchedule | Callable[[], float],
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: int | None = None,
        loss_scale_factor: float | None = None,
        gradient_accumulation_steps: int | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            hints = [
                f"`{key}` is spelled {_TORCH_SPELLINGS[key]}"
                for key in kwargs
                if key in _TORCH_SPELLINGS
            ]
            hint = f" ({'; '.join(hints)} in lamina, as in Keras)" if hints else ""
            raise TypeError(
                f"{type(self).__name__} got unknown argument(s) {sorted(kwargs)}{hint}."
            )
        if weight_decay is not None and (
            isinstance(weight_decay, bool)
            or not isinstance(weight_decay, numbers.Real)
            or not weight_decay >= 0
        ):
            raise ValueError(
                "`weight_decay` must be a non-negative float or None. "
                f"Received: weight_decay={weight_decay!r}."
            )
        for argument, value in (
            ("clipnorm", clipnorm),
            ("clipvalue", clipvalue),
            ("global_clipnorm", global_clipnorm),
            ("loss_scale_factor", loss_scale_factor),
        ):
            _check_optional_positive(argument, value)
        if sum(value is not None for value in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError(
                "Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. "
                f"Received: clipnorm={clipnorm}, clipvalue={clipvalue}, "
                f"global_clipnorm={global_clipnorm}."
            )
        if use_ema:
            check_float_range("ema_momentum", ema_momentum, 0.0, 1.0)
            if ema_overwrite_frequency is not None and (
                isinstance(ema_overwrite_frequency, bool)
                or not isinstance(ema_overwrite_frequency, int)
                or ema_overwrite_frequency < 1
            ):
                raise ValueError(
                    "`ema_overwrite_frequency` must be an integer >= 1 or None. "
                    f"Received: ema_overwrite_frequency={ema_overwrite_frequency!r}."
                )
        if gradient_accumulation_steps is not None and (
            isinstance(gradient_accumulation_steps, bool)
            or not isinstance(gradient_accumulation_steps, int)
            or gradient_accumulation_steps < 2
        ):
            raise ValueError(
                "`gradient_accumulation_steps` must be an integer >= 2 or None. "
                f"Received: gradient_accumulation_steps={gradient_accumulation_steps!r}."
            )
        self._learning_rate = _standardize_learning_rate(learning_rate)
        self.weight_decay = weight_decay
        self.clipnorm = clipnorm
        self.clipvalue = clipvalue
        self.global_clipnorm = global_clipnorm
        self.use_ema = use_ema
        self.ema_momentum = ema_momentum
        self.ema_overwrite_frequency = ema_overwrite_frequency
        self.loss_scale_factor = loss_scale_factor
        self.gradient_accumulation_steps = gradient_accumulation_steps
        self.name = name or to_snake_case(type(self).__name__)

        self.built = False
        self._iterations = 0  # calls to step(), accumulation steps included (Keras's counter)
        self._variables: list[torch.Tensor] = []
        self._excluded: list[torch.Tensor] = []  # held, not their id()s: see __setstate__
        self._exclude_pattern: re.Pattern[str] | None = None
        self._pending_state: dict[str, Any] | None = None
        self._pending_keras_state: tuple[list[int], list[np.ndarray], dict[str, Any]] | None = None

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        # A copy (deepcopy, pickle, torch.save of a compiled model) holds new tensors, so the
        # id()s of the decayed variables are the copy's, not the original's.
        if "_decayed" in state:
            self._decayed_ids = {id(v) for v in self._decayed}

    # ----------------------------------------------------------------------------- counters

    @property
    def iterations(self) -> int:
        """The number of updates applied (`step()` calls // gradient_accumulation_steps)."""
        if self.gradient_accumulation_steps:
            return self._iterations // self.gradient_accumulation_steps
        return self._iterations

    @property
    def learning_rate(self) -> float:
        """The learning rate of the next update, as a float (a schedule is evaluated)."""
        return self._current_learning_rate()

    @learning_rate.setter
    def learning_rate(self, value: float | LearningRateSchedule | Callable[[], float]) -> None:
        if isinstance(self._learning_rate, LearningRateSchedule) and not (
            isinstance(value, LearningRateSchedule) or callable(value)
        ):
            raise TypeError(
                "This optimizer was created with a `LearningRateSchedule` object as its "
                "`learning_rate` constructor argument, hence its learning rate is not "
                "settable. If you need the learning rate to be settable, you should "
                "instantiate the optimizer with a float `learning_rate` argument."
            )
        self._learning_rate = _standardize_learning_rate(value)

    def _current_learning_rate(self) -> float:
        learning_rate = self._learning_rate
        if learning_rate.__class__ is float:
            return learning_rate
        if isinstance(learning_rate, LearningRateSchedule):
            return float(learning_rate(self._iterations))
        return float(learning_rate())

    @property
    def variables(self) -> list[torch.Tensor]:
        """The tensors this optimizer updates (those given to `build()`)."""
        return list(self._variables)

    @property
    def torch_optimizer(self) -> torch.optim.Optimizer:
        """The torch optimizer that applies the update (created by `build()`)."""
        if not self.built:
            raise ValueError(
                f"Optimizer '{self.name}' is not built yet, so it has no torch optimizer. Call "
                "`optimizer.build(variables)` first."
            )
        return self._torch

    # ---------------------------------------------------------------------------- building

    def exclude_from_weight_decay(
        self, var_list: Iterable[torch.Tensor] | None = None, var_names: Iterable[str] | None = None
    ) -> None:
        """Exclude variables from weight decay; call before `build()`.

        Args:
            var_list: tensors to exclude.
            var_names: substrings (regular expressions); a variable whose `path` or `name`
                attribute contains one of them is excluded, e.g. `var_names=["bias"]`.
        """
        if self.built:
            raise ValueError(
                "`exclude_from_weight_decay()` can only be configured before the optimizer is "
                "built. Call it before `build()`, `compile()` or the first step."
            )
        self._excluded = list(var_list or ())
        names = list(var_names or ())
        self._exclude_pattern = re.compile("|".join(names)) if names else None

    def _use_weight_decay(self, variable: torch.Tensor) -> bool:
        if any(variable is excluded for excluded in self._excluded):
            return False
        if self._exclude_pattern is not None:
            name = getattr(variable, "path", None) or getattr(variable, "name", None)
            if name is not None and self._exclude_pattern.search(str(name)):
                return False
        return True

    def build(self, variables: Iterable[torch.Tensor]) -> None:
        """Bind the optimizer to `variables` and create its torch optimizer and state.

        Calling it again with the same tensors does nothing; other tensors need a new optimizer.
        """
        variables = list(variables)
        if self.built:
            if len(variables) == len(self._variables) and all(
                new is old for new, old in zip(variables, self._variables)
            ):
                return
            raise ValueError(
                f"Optimizer '{self.name}' is already built for {len(self._variables)} "
                f"variables and was called with {len(variables)} different ones. An optimizer "
                "can only update the variables it was built with; create a new optimizer for "
                "new variables."
            )
        if not variables:
            raise ValueError(
                f"Optimizer '{self.name}' was built with an empty list of variables. Pass the "
                "tensors to train, e.g. `optimizer.build(model.parameters())`."
            )
        for index, variable in enumerate(variables):
            if not isinstance(variable, torch.Tensor) or not variable.is_floating_point():
                raise TypeError(
                    "Optimizer variables must be floating-point torch tensors (e.g. "
                    f"torch.nn.Parameter). Received at index {index}: {variable!r:.80}."
                )
        self._variables = variables
        self._torch = self._create_torch_optimizer(variables, **self._kernel_flags(variables))
        self._decayed = [v for v in variables if self._use_weight_decay(v)]
        self._decayed_ids = {id(v) for v in self._decayed}
        self._accumulators = (
            [torch.zeros_like(v, memory_format=torch.preserve_format) for v in variables]
            if self.gradient_accumulation_steps
            else []
        )
        self._averages = [v.detach().clone() for v in variables] if self.use_ema else []
        self.built = True
        if self._pending_state is not None:
            state, self._pending_state = self._pending_state, None
            self.load_state_dict(state)
        if self._pending_keras_state is not None:
            pending, self._pending_keras_state = self._pending_keras_state, None
            self._apply_keras_state(*pending)

    def _kernel_flags(self, variables: Sequence[torch.Tensor]) -> dict[str, bool]:
        # torch's fused kernel updates every variable in one call with no per-variable Python
        # (foreach Adam reads each step counter back to the host): on the CPU it saves about
        # 0.2 ms a step of a small model (docs/benchmarks.md). A sharded weight (DTensor) on
        # the CPU keeps foreach, the path torch's distributed CPU tests cover.
        if self._fused_capable:
            if all(v.is_cuda for v in variables):
                return {"fused": True}
            if all(v.device.type == "cpu" and not hasattr(v, "to_local") for v in variables):
                return {"fused": True}
        return {"foreach": True}

    def _create_torch_optimizer(
        self, variables: list[torch.Tensor], **kernel: bool
    ) -> torch.optim.Optimizer:
        raise NotImplementedError(
            f"{type(self).__name__} must implement `_create_torch_optimizer(variables, "
            "**kernel)`, returning the torch.optim optimizer that applies its update."
        )

    def _prepare_update(self, learning_rate: float, gradients: list[torch.Tensor]) -> None:
        """Set the per-step hyperparameters of the torch optimizer before its step."""
        for group in self._torch.param_groups:
            group["lr"] = learning_rate

    def _torch_update(self) -> None:
        """The torch optimizer's update on the gradients in `.grad` (a subclass may call its
        kernel directly)."""
        self._torch.step()

    # ------------------------------------------------------------------------------ stepping

    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        """The loss multiplied by `loss_scale_factor` (unchanged when it is None)."""
        if self.loss_scale_factor is not None:
            return loss * self.loss_scale_factor
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of the bound variables."""
        if set_to_none:
            for variable in self._variables:
                variable.grad = None
            return
        gradients = [v.grad for v in self._variables if v.grad is not None]
        if gradients:
            torch._foreach_zero_(gradients)

    def step(self) -> None:
        """Apply one step with the `.grad` of the bound variables, then clear them.

        Order, as in Keras: unscale by `loss_scale_factor`; accumulate (only every N-th call
        updates, with the mean gradient); clip; decoupled weight decay at the current learning
        rate; the torch update; the EMA (and its periodic overwrite); `iterations` += 1.
        """
        if not self.built:
            raise ValueError(
                f"Optimizer '{self.name}' is not built. Call `optimizer.build(variables)` "
                "before `step()`, or use `apply_gradients(zip(gradients, variables))`."
            )
        call_without_grad(self._step)

    def _step(self) -> None:
        variables = self._variables
        params: list[torch.Tensor] = []
        gradients: list[torch.Tensor] = []
        for variable in variables:
            gradient = variable.grad
            if gradient is not None:
                params.append(variable)
                gradients.append(gradient)
        if not gradients:
            raise ValueError(
                f"No gradients provided for any variable of optimizer '{self.name}'. Call "
                "`loss.backward()` before `step()`, and check that the loss depends on the "
                "variables the optimizer was built with."
            )
        all_present = len(params) == len(variables)
        if self.loss_scale_factor is not None:
            torch._foreach_div_(gradients, self.loss_scale_factor)

        steps = self.gradient_accumulation_steps
        if steps is not None:
            accumulators = (
                self._accumulators
                if all_present
                else [a for v, a in zip(variables, self._accumulators) if v.grad is not None]
            )
            if (self._iterations + 1) % steps:
                torch._foreach_add_(accumulators, gradients)
                for param in params:
                    param.grad = None
                self._finish_step()
                return
            torch._foreach_add_(gradients, accumulators)
            torch._foreach_div_(gradients, steps)
            torch._foreach_zero_(self._accumulators)

        if self.clipnorm is not None:
            _clip_by_norm_(gradients, self.clipnorm)
        elif self.global_clipnorm is not None:
            _clip_by_global_norm_(gradients, self.global_clipnorm)
        elif self.clipvalue is not None:
            torch._foreach_clamp_min_(gradients, -self.clipvalue)
            torch._foreach_clamp_max_(gradients, self.clipvalue)

        learning_rate = self._current_learning_rate()
        if self.weight_decay:
            decayed = (
                self._decayed
                if all_present
                else [p for p in params if id(p) in self._decayed_ids]
            )
            if decayed:
                torch._foreach_mul_(decayed, 1.0 - learning_rate * self.weight_decay)
        self._prepare_update(learning_rate, gradients)
        self._torch_update()
        for param in params:
            param.grad = None
        self._finish_step()

    def _finish_step(self) -> None:
        if self.use_ema:
            self._update_averages()
        self._iterations += 1

    def _update_averages(self) -> None:
        # As in Keras, the average is refreshed on every call (accumulation steps included)
        # and the first update(s) copy the weights instead of averaging with zeros.
        iterations = self.iterations
        if iterations == 0:
            torch._foreach_copy_(self._averages, self._variables)
        else:
            torch._foreach_lerp_(self._averages, self._variables, 1.0 - self.ema_momentum)
        frequency = self.ema_overwrite_frequency
        if frequency and (iterations + 1) % frequency == 0:
            torch._foreach_copy_(self._variables, self._averages)

    @property
    def _modifies_gradients(self) -> bool:
        return bool(
            self.loss_scale_factor is not None
            or self.gradient_accumulation_steps
            or self.clipnorm is not None
            or self.global_clipnorm is not None
            or self.clipvalue is not None
        )

    def apply_gradients(
        self, grads_and_vars: Iterable[tuple[torch.Tensor | None, torch.Tensor]]
    ) -> int:
        """Apply `(gradient, variable)` pairs (building on first use); returns `iterations`."""
        pairs = list(grads_and_vars)
        if pairs:
            gradients, variables = zip(*pairs)
            self.apply(list(gradients), list(variables))
        return self.iterations

    def apply(
        self,
        grads: Sequence[torch.Tensor | None],
        trainable_variables: Sequence[torch.Tensor] | None = None,
    ) -> None:
        """Update the variables with the given gradients, one-to-one.

        Without `trainable_variables` the gradients match the variables of `build()` in order.
        Variables the call does not mention (or whose gradient is None) are not updated. The
        given gradient tensors are never modified.
        """
        grads = list(grads)
        if not grads:
            return
        if trainable_variables is None:
            if not self.built:
                raise ValueError(
                    "When passing `grads` without `variables`, the optimizer must already be "
                    "built on a list of variables. Call `optimizer.build(trainable_variables)` "
                    "first."
                )
            variables = self._variables
        else:
            variables = list(trainable_variables)
            if not self.built:
                self.build(variables)
        if len(grads) != len(variables):
            raise ValueError(
                f"`apply` needs one gradient per variable. Received {len(grads)} gradients for "
                f"{len(variables)} variables."
            )
        known = {id(v) for v in self._variables}
        for variable in variables:
            if id(variable) not in known:
                raise ValueError(
                    f"Unknown variable {variable!r:.80}: optimizer '{self.name}' can only "
                    "update the variables it was built with. Create a new optimizer for new "
                    "variables."
                )
        given = {id(v) for v in variables}
        for variable in self._variables:
            if id(variable) not in given:
                variable.grad = None
        copy = self._modifies_gradients
        for gradient, variable in zip(grads, variables):
            if gradient is None:
                variable.grad = None
                continue
            gradient = torch.as_tensor(gradient, dtype=variable.dtype, device=variable.device)
            gradient = gradient.detach()
            variable.grad = gradient.clone() if copy else gradient
        self.step()

    # ---------------------------------------------------------------------------------- EMA

    def _ema_targets(self, variables: Iterable[torch.Tensor] | None) -> list[torch.Tensor]:
        if not self.use_ema:
            raise ValueError(
                f"Optimizer '{self.name}' keeps no moving average of the weights. Create it "
                "with `use_ema=True`."
            )
        if not self.built:
            raise ValueError(
                f"Optimizer '{self.name}' is not built yet, so it has no moving average."
            )
        targets = self._variables if variables is None else list(variables)
        if len(targets) != len(self._averages):
            raise ValueError(
                f"The length of model variables ({len(targets)}) to override does not match "
                f"the length of model variables stored in the optimizer "
                f"({len(self._averages)}). Please check if the optimizer was called on your "
                "model."
            )
        return targets

    def swap_ema_weights(self, variables: Iterable[torch.Tensor] | None = None) -> None:
        """Exchange the weights and their moving average; calling it twice restores both."""
        targets = self._ema_targets(variables)
        with torch.no_grad():
            current = [v.detach().clone() for v in targets]
            torch._foreach_copy_(targets, self._averages)
            torch._foreach_copy_(self._averages, current)

    def finalize_variable_values(self, variables: Iterable[torch.Tensor] | None = None) -> None:
        """With `use_ema=True`, overwrite the weights with their moving average."""
        if not self.use_ema:
            return
        targets = self._ema_targets(variables)
        with torch.no_grad():
            torch._foreach_copy_(targets, self._averages)

    # -------------------------------------------------------------------------------- state

    def _extra_state(self) -> dict[str, Any]:
        """State a subclass keeps outside the torch optimizer."""
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore `_extra_state()`; runs after the torch optimizer's state is loaded."""
        del state

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs: counters, lr, torch state, accumulators, EMA.

        Like torch's `state_dict`, tensors are references: copy (or save) them before stepping
        on if you keep the dict in memory.
        """
        learning_rate = self._learning_rate
        return {
            "iterations": self._iterations,
            "learning_rate": learning_rate if learning_rate.__class__ is float else None,
            "optimizer": self._torch.state_dict() if self.built else None,
            "accumulators": list(self._accumulators) if self.built else [],
            "averages": list(self._averages) if self.built else [],
            "extra": self._extra_state(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a `state_dict()`; before `build()` it is kept and applied when built."""
        expected = {"iterations", "learning_rate", "optimizer", "accumulators", "averages"}
        if not isinstance(state_dict, dict) or not expected <= state_dict.keys():
            keys = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict)
            raise ValueError(
                "`load_state_dict` expects the dict of a lamina optimizer's `state_dict()`, "
                f"with keys {sorted(expected)}. Received keys: {keys}."
            )
        self._iterations = int(state_dict["iterations"])
        if state_dict["learning_rate"] is not None and self._learning_rate.__class__ is float:
            self._learning_rate = float(state_dict["learning_rate"])
        if not self.built:
            if state_dict["optimizer"] is not None:
                self._pending_state = state_dict
            return
        if state_dict["optimizer"] is not None:
            self._torch.load_state_dict(self._with_current_kernels(state_dict["optimizer"]))
        for name, own in (("accumulators", self._accumulators), ("averages", self._averages)):
            saved = state_dict[name]
            if len(saved) != len(own):
                raise ValueError(
                    f"The state dict holds {len(saved)} {name} but optimizer '{self.name}' "
                    f"has {len(own)}; was it saved with other settings "
                    "(gradient_accumulation_steps, use_ema) or other variables?"
                )
            with torch.no_grad():
                for target, value in zip(own, saved):
                    target.copy_(value)
        self._load_extra_state(state_dict.get("extra", {}))

    # ----------------------------------------------------------- Keras's variable layout

    def _keras_slot_blocks(self) -> list[list[str]]:
        """The torch state keys of the per-variable slots, grouped as Keras creates them: each
        block holds its slots interleaved per variable (Adam: momentum, velocity of the first
        variable, then of the second, ...), and the blocks follow each other."""
        torch_optimizer = self._torch
        if isinstance(torch_optimizer, (torch.optim.Adam, torch.optim.AdamW)):
            amsgrad = torch_optimizer.param_groups[0].get("amsgrad", False)
            return [["exp_avg", "exp_avg_sq"]] + ([["max_exp_avg_sq"]] if amsgrad else [])
        if type(self).__name__ == "RMSprop":
            return [["velocity"]] + ([["momentum"]] if self.momentum else []) + \
                ([["average_gradient"]] if self.centered else [])
        keys: list[str] = []
        for state in torch_optimizer.state.values():
            keys += [k for k, v in state.items() if k != "step" and isinstance(v, torch.Tensor)
                     and v.dim() > 0 and k not in keys]
        order = ("velocity", "momentum", "average_gradient")
        return [[k] for k in sorted(keys, key=lambda k: (order.index(k) if k in order else 3, k))]

    def keras_variables(self, model_variables: Sequence[torch.Tensor]
                        ) -> tuple[list[np.ndarray], dict[str, Any]]:
        """The state as Keras 3 saves an optimizer's variables: `iterations`, the learning rate
        (a float one), EMA averages, gradient accumulators, then the slots, for
        `model_variables` in the model's order. Also returns what only Lamina needs for an
        exact resume (float64 learning rate, per-variable step counts) as attributes."""
        if not self.built:
            raise ValueError(f"Optimizer '{self.name}' is not built, so it has no state to save.")
        position = {id(v): i for i, v in enumerate(self._variables)}
        indices = [position[id(v)] for v in model_variables if id(v) in position]
        arrays: list[np.ndarray] = [np.asarray(self._iterations, dtype=np.int64)]
        learning_rate = self._learning_rate
        if learning_rate.__class__ is float:
            arrays.append(np.asarray(learning_rate, dtype=np.float32))
        for block in (self._averages, self._accumulators):
            if block:
                arrays += [block[i].detach().cpu().numpy() for i in indices]
        state = self._torch.state
        blocks = self._keras_slot_blocks()
        for block in blocks:
            for i in indices:
                variable = self._variables[i]
                for key in block:
                    value = state.get(variable, {}).get(key)
                    arrays.append(np.zeros(tuple(variable.shape), np.float32) if value is None
                                  else value.detach().cpu().numpy())
        steps = [float(state.get(self._variables[i], {}).get("step", self.iterations))
                 for i in indices]
        attributes = {
            "lamina_slots": json.dumps(blocks),
            "lamina_learning_rate": float(learning_rate) if learning_rate.__class__ is float
            else float("nan"),
            "lamina_steps": np.asarray(steps, dtype=np.float64),
            "lamina_extra": json.dumps(self._extra_state()),
        }
        return arrays, attributes

    def load_keras_variables(self, model_variables: Sequence[torch.Tensor],
                             arrays: list[np.ndarray], attributes: dict[str, Any]) -> None:
        """Restore `keras_variables()` output (or a Keras 3 file's optimizer variables), for
        `model_variables` in the model's order; before `build()` it waits for the build."""
        pending = ([id(v) for v in model_variables], list(arrays), dict(attributes))
        if self.built:
            self._apply_keras_state(*pending)
        else:
            self._pending_keras_state = pending

    def _apply_keras_state(self, variable_ids: list[int], arrays: list[np.ndarray],
                           attributes: dict[str, Any]) -> None:
        position = {id(v): i for i, v in enumerate(self._variables)}
        indices = [position[i] for i in variable_ids if i in position]
        count = len(indices)
        has_rate = self._learning_rate.__class__ is float
        # The slots this optimizer's settings make; a generic optimizer knows them only once
        # its torch state exists, so before the first step it takes the ones Lamina recorded.
        blocks = self._keras_slot_blocks()
        if not blocks and "lamina_slots" in attributes:
            blocks = json.loads(attributes["lamina_slots"])
        slots = sum(len(block) for block in blocks)
        expected = 1 + has_rate + count * (bool(self._averages) + bool(self._accumulators) + slots)
        if len(arrays) != expected:
            # As Keras does: training goes on from a fresh optimizer state, with a warning.
            warnings.warn(
                f"Skipping the saved state of optimizer '{self.name}': it holds {len(arrays)} "
                f"variables, but this {type(self).__name__} with {count} model variables has "
                f"{expected}. Was it saved with other settings (use_ema, "
                "gradient_accumulation_steps, amsgrad, momentum) or by another optimizer? "
                "Recompile with the saved settings to resume exactly.", stacklevel=3)
            return
        # Where each saved array goes, in Keras's order; all are checked before any is applied.
        targets: list[tuple[Any, Any, torch.Tensor]] = []
        for block in (self._averages, self._accumulators):
            targets += [(block, i, self._variables[i]) for i in indices if block]
        for block in blocks:
            for i in indices:
                targets += [(None, key, self._variables[i]) for key in block]
        slot_arrays = arrays[1 + has_rate:]
        for (_, _, variable), value in zip(targets, slot_arrays):
            if tuple(value.shape) != tuple(variable.shape):
                warnings.warn(
                    f"Skipping the saved state of optimizer '{self.name}': it has a variable of "
                    f"shape {tuple(value.shape)} where the model's has "
                    f"{tuple(variable.shape)}; it was saved for another model.", stacklevel=3)
                return
        iterations = int(arrays[0])
        if has_rate:
            stored = float(arrays[1])
            exact = float(attributes.get("lamina_learning_rate", float("nan")))
            # A float32 copy of the learning rate that still matches the configured one keeps the
            # configured float64 value; one a callback changed since is taken from the file.
            if not math.isnan(exact):
                self._learning_rate = exact
            elif stored != float(np.float32(self._learning_rate)):
                self._learning_rate = stored
        steps = attributes.get("lamina_steps")
        steps = [float(s) for s in steps] if steps is not None and len(steps) == count \
            else [float(iterations // (self.gradient_accumulation_steps or 1))] * count
        state = self._torch.state
        with torch.no_grad():
            for (block, key, variable), array in zip(targets, slot_arrays):
                value = torch.from_numpy(np.array(array, copy=True)).to(
                    device=variable.device, dtype=variable.dtype)
                if block is None:
                    state[variable][key] = value
                else:
                    block[key].copy_(value)
            step_dtype = torch.float64 if torch.get_default_dtype() == torch.float64 \
                else torch.float32
            group = self._torch.param_groups[0]
            on_device = bool(group.get("fused") or group.get("capturable"))
            for i, step in zip(indices, steps):
                variable = self._variables[i]
                if variable in state:
                    state[variable]["step"] = torch.tensor(
                        step, dtype=step_dtype, device=variable.device if on_device else None)
        self._iterations = iterations
        self._load_extra_state(json.loads(attributes.get("lamina_extra") or "{}"))

    def _with_current_kernels(self, torch_state: dict[str, Any]) -> dict[str, Any]:
        # torch restores every param-group setting from the saved dict, kernel choice
        # included; keep the kernels chosen for where the variables live now. (A different
        # number of groups is left for torch's own error.)
        saved_groups = torch_state["param_groups"]
        if len(saved_groups) != len(self._torch.param_groups):
            return torch_state
        groups = [
            {**saved, **{key: current[key] for key in ("foreach", "fused") if key in current}}
            for saved, current in zip(saved_groups, self._torch.param_groups)
        ]
        return {**torch_state, "param_groups": groups}

    # ------------------------------------------------------------------------------- config

    def get_config(self) -> dict[str, Any]:
        learning_rate = self._learning_rate
        if isinstance(learning_rate, LearningRateSchedule):
            learning_rate = serialize_schedule(learning_rate)
        return {
            "name": self.name,
            "learning_rate": learning_rate,
            "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm,
            "global_clipnorm": self.global_clipnorm,
            "clipvalue": self.clipvalue,
            "use_ema": self.use_ema,
            "ema_momentum": self.ema_momentum,
            "ema_overwrite_frequency": self.ema_overwrite_frequency,
            "loss_scale_factor": self.loss_scale_factor,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
        }

    @classmethod
    def from_config(
        cls, config: dict[str, Any], custom_objects: dict[str, Any] | None = None
    ) -> Optimizer:
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = deserialize_schedule(config["learning_rate"], custom_objects)
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} learning_rate={self._learning_rate!r}>"
