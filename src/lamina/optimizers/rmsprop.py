"""RMSprop with Keras's update rule, as foreach tensor ops."""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from lamina._registry import register
from lamina.optimizers.optimizer import Optimizer, check_float_range
from lamina.optimizers.schedules import LearningRateSchedule


def rmsprop_update(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    velocities: list[torch.Tensor],
    momentums: list[torch.Tensor],
    average_grads: list[torch.Tensor],
    *,
    learning_rate: float,
    rho: float,
    momentum: float,
    epsilon: float,
    centered: bool,
) -> None:
    """One Keras RMSprop step in place (`momentums`/`average_grads` unused when off)."""
    torch._foreach_mul_(velocities, rho)
    torch._foreach_addcmul_(velocities, grads, grads, value=1.0 - rho)
    if centered:
        torch._foreach_lerp_(average_grads, grads, 1.0 - rho)
        denominators = torch._foreach_addcmul(velocities, average_grads, average_grads, value=-1.0)
        torch._foreach_add_(denominators, epsilon)
    else:
        denominators = torch._foreach_add(velocities, epsilon)
    torch._foreach_sqrt_(denominators)
    if momentum > 0:
        torch._foreach_mul_(momentums, momentum)
        torch._foreach_addcdiv_(momentums, grads, denominators, value=learning_rate)
        torch._foreach_sub_(params, momentums)
    else:
        torch._foreach_addcdiv_(params, grads, denominators, value=-learning_rate)


def _zeros_like(param: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(param, memory_format=torch.preserve_format)


class _KerasRMSprop(torch.optim.Optimizer):
    """A `torch.optim.Optimizer` running `rmsprop_update` (state: velocity, momentum,
    average_gradient per parameter)."""

    def __init__(
        self,
        params: Any,
        lr: float,
        rho: float,
        momentum: float,
        epsilon: float,
        centered: bool,
    ) -> None:
        defaults = {
            "lr": lr,
            "rho": rho,
            "momentum": momentum,
            "epsilon": epsilon,
            "centered": centered,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads, velocities, momentums, average_grads = [], [], [], [], []
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state["velocity"] = _zeros_like(param)
                    if group["momentum"] > 0:
                        state["momentum"] = _zeros_like(param)
                    if group["centered"]:
                        state["average_gradient"] = _zeros_like(param)
                params.append(param)
                grads.append(param.grad)
                velocities.append(state["velocity"])
                if group["momentum"] > 0:
                    momentums.append(state["momentum"])
                if group["centered"]:
                    average_grads.append(state["average_gradient"])
            if params:
                rmsprop_update(
                    params,
                    grads,
                    velocities,
                    momentums,
                    average_grads,
                    learning_rate=group["lr"],
                    rho=group["rho"],
                    momentum=group["momentum"],
                    epsilon=group["epsilon"],
                    centered=group["centered"],
                )
        return loss


@register("RMSprop")
class RMSprop(Optimizer):
    """RMSprop (Hinton, 2012): divide the gradient by a running RMS of recent gradients.

    The textbook rule (Hinton's lecture 6e): `G = rho * G + (1 - rho) * g**2; w = w - learning_rate * g / (sqrt(G) +
    epsilon)`. Keras's rule, followed here, puts `epsilon` inside the root and keeps the
    learning rate inside the momentum:

    ```
    G = rho * G + (1 - rho) * g**2
    A = rho * A + (1 - rho) * g                     # centered=True only
    increment = learning_rate * g / sqrt(G - A**2 + epsilon)   # G + epsilon if not centered
    velocity = momentum * velocity + increment      # momentum > 0 only
    w = w - velocity                                # w - increment if momentum == 0
    ```

    The textbook rule is this one with `epsilon=0, momentum=0`. `torch.optim.RMSprop` adds `eps`
    outside the root (`g / (sqrt(G) + eps)`) and multiplies its momentum buffer by the learning
    rate at each step, so it agrees only for `epsilon=0` and a constant learning rate; Keras's
    rule is therefore written here with torch foreach ops. torch's `alpha` is Keras's `rho`,
    and the defaults differ (Keras `rho=0.9, epsilon=1e-7, learning_rate=0.001`; torch
    `alpha=0.99, eps=1e-8, lr=0.01`).

    Args:
        learning_rate: a float, a `LearningRateSchedule` or a callable. Defaults to 0.001.
        rho: decay rate of the running averages, in [0, 1].
        momentum: in [0, 1]; 0 for none.
        epsilon: added under the root. Defaults to 1e-7.
        centered: normalize by the estimated variance `G - A**2` instead of `G`.
        weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum,
        ema_overwrite_frequency, loss_scale_factor, gradient_accumulation_steps, name:
            see `lamina.optimizers.Optimizer`.

    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([10.0]))
    >>> _ = RMSprop(learning_rate=0.1).apply_gradients([(torch.tensor([10.0]), w)])
    >>> round(w.item(), 4)  # Keras's doc example: 10 - 0.1 * 10 / sqrt(0.1 * 100 + 1e-7)
    9.6838
    """

    def __init__(
        self,
        learning_rate: float | LearningRateSchedule | Callable[[], float] = 0.001,
        rho: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-7,
        centered: bool = False,
        *,
        name: str = "rmsprop",
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        check_float_range("rho", rho, 0.0, 1.0)
        check_float_range("momentum", momentum, 0.0, 1.0)
        check_float_range("epsilon", epsilon, 0.0, math.inf)
        self.rho = rho
        self.momentum = momentum
        self.epsilon = epsilon
        self.centered = centered

    def _create_torch_optimizer(
        self, variables: list[torch.Tensor], **kernel: bool
    ) -> torch.optim.Optimizer:
        return _KerasRMSprop(
            variables,
            lr=self._current_learning_rate(),
            rho=self.rho,
            momentum=self.momentum,
            epsilon=self.epsilon,
            centered=bool(self.centered),
        )

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "rho": self.rho,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "centered": self.centered,
        }
