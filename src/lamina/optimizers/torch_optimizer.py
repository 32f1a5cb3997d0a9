"""Any `torch.optim` optimizer behind the lamina optimizer interface."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import torch

from lamina._registry import register
from lamina.optimizers.optimizer import Optimizer, _standardize_learning_rate
from lamina.optimizers.schedules import LearningRateSchedule

TorchOptimizerFactory = Callable[[list[torch.Tensor]], torch.optim.Optimizer]


@register("TorchOptimizer")
class TorchOptimizer(Optimizer):
    """Adapter that lets `compile`, `fit` and callbacks drive a plain torch optimizer.

    The torch optimizer does the update with its own formula and hyperparameters (including its
    own `weight_decay`); this adds lamina's clipping, gradient accumulation, loss-scale
    unscaling, EMA, `iterations`, `learning_rate` and a resumable `state_dict()` around it.

    Args:
        optimizer: a `torch.optim.Optimizer` that already holds its parameters (then `build()`
            binds to those and ignores its argument), or a callable
            `optimizer(params) -> torch.optim.Optimizer` (a torch optimizer class, a
            `functools.partial`, a lambda) that `build(variables)` calls.
        learning_rate: None (default) leaves the learning rate to the torch optimizer (and any
            torch LR scheduler you step yourself); setting `opt.learning_rate` to a float then
            rescales every param group's lr by the same factor. A float, `LearningRateSchedule`
            or callable instead sets the lr of every param group before each update.
        clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum, ema_overwrite_frequency,
        loss_scale_factor, gradient_accumulation_steps, name: see `lamina.optimizers.Optimizer`.

    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([1.0]))
    >>> opt = TorchOptimizer(torch.optim.SGD([w], lr=0.5), clipvalue=1.0)
    >>> _ = opt.apply_gradients([(torch.tensor([4.0]), w)])
    >>> w.item(), opt.iterations
    (0.5, 1)
    """

    _not_accepted = ("weight_decay",)

    def __init__(
        self,
        optimizer: torch.optim.Optimizer | TorchOptimizerFactory,
        *,
        learning_rate: float | LearningRateSchedule | Callable[[], float] | None = None,
        name: str = "torch_optimizer",
        **kwargs: Any,
    ) -> None:
        if not (isinstance(optimizer, torch.optim.Optimizer) or callable(optimizer)):
            raise TypeError(
                "`optimizer` must be a torch.optim.Optimizer or a callable params -> "
                f"torch.optim.Optimizer (e.g. torch.optim.AdamW). Received: {optimizer!r} of "
                f"type {type(optimizer).__name__}."
            )
        if "weight_decay" in kwargs:
            raise TypeError(
                "TorchOptimizer takes no `weight_decay`: the torch optimizer applies its own. "
                "Pass it to the torch optimizer instead, e.g. "
                "TorchOptimizer(functools.partial(torch.optim.AdamW, weight_decay=0.01))."
            )
        super().__init__(learning_rate=0.0 if learning_rate is None else learning_rate,
                         name=name, **kwargs)
        self.optimizer = optimizer
        # None: the torch optimizer's param groups own the learning rate.
        self._learning_rate = None if learning_rate is None else self._learning_rate

    def _torch_optimizer(self) -> torch.optim.Optimizer | None:
        if self.built:
            return self._torch
        if isinstance(self.optimizer, torch.optim.Optimizer):
            return self.optimizer
        return None

    def _current_learning_rate(self) -> float:
        if self._learning_rate is not None:
            return super()._current_learning_rate()
        torch_optimizer = self._torch_optimizer()
        if torch_optimizer is None:
            raise ValueError(
                f"Optimizer '{self.name}' has no learning rate yet: it belongs to the torch "
                "optimizer that `build()` will create. Build it first, or pass "
                "`learning_rate=` to TorchOptimizer."
            )
        return float(torch_optimizer.param_groups[0]["lr"])

    @Optimizer.learning_rate.setter  # type: ignore[attr-defined]
    def learning_rate(self, value: float | LearningRateSchedule | Callable[[], float]) -> None:
        torch_optimizer = self._torch_optimizer()
        if (
            self._learning_rate is not None
            or torch_optimizer is None
            or isinstance(value, LearningRateSchedule)
            or callable(value)
        ):
            Optimizer.learning_rate.fset(self, value)  # type: ignore[attr-defined]
            return
        value = _standardize_learning_rate(value)
        groups = torch_optimizer.param_groups
        reference = float(groups[0]["lr"])
        for group in groups:
            new = value * float(group["lr"]) / reference if reference else value
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(new)
            else:
                group["lr"] = new

    def build(self, variables: Iterable[torch.Tensor] | None = None) -> None:
        """Bind to the torch optimizer's parameters (an instance) or call the factory."""
        if isinstance(self.optimizer, torch.optim.Optimizer):
            variables = [p for group in self.optimizer.param_groups for p in group["params"]]
        elif variables is None:
            raise ValueError(
                f"Optimizer '{self.name}' wraps a factory and needs the variables to give it: "
                "call `build(variables)`."
            )
        super().build(variables)

    def step(self) -> None:
        # A wrapped instance already knows its variables, so it builds itself on first use.
        if not self.built and isinstance(self.optimizer, torch.optim.Optimizer):
            self.build()
        super().step()

    def apply(
        self,
        grads: Sequence[torch.Tensor | None],
        trainable_variables: Sequence[torch.Tensor] | None = None,
    ) -> None:
        if not self.built and isinstance(self.optimizer, torch.optim.Optimizer):
            self.build()
        super().apply(grads, trainable_variables)

    def _create_torch_optimizer(
        self, variables: list[torch.Tensor], **kernel: bool
    ) -> torch.optim.Optimizer:
        if isinstance(self.optimizer, torch.optim.Optimizer):
            return self.optimizer
        created = self.optimizer(variables)
        if not isinstance(created, torch.optim.Optimizer):
            raise TypeError(
                "The optimizer factory given to TorchOptimizer must return a "
                f"torch.optim.Optimizer. {self.optimizer!r} returned {created!r} of type "
                f"{type(created).__name__}."
            )
        return created

    def _prepare_update(self, learning_rate: float, gradients: list[torch.Tensor]) -> None:
        if self._learning_rate is not None:
            super()._prepare_update(learning_rate, gradients)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        del config["weight_decay"]
        return {"optimizer": self.optimizer, **config}
