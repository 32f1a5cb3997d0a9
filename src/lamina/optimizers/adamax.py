"""Adamax with Keras's update rule, as foreach tensor ops."""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from lamina._registry import register
from lamina.optimizers.optimizer import Optimizer, check_float_range
from lamina.optimizers.schedules import LearningRateSchedule


def adamax_update(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    momentums: list[torch.Tensor],
    norms: list[torch.Tensor],
    *,
    learning_rate: float,
    beta_1: float,
    beta_2: float,
    epsilon: float,
    step: int,
) -> None:
    """One Keras Adamax step in place; `step` counts from 1."""
    torch._foreach_lerp_(momentums, grads, 1.0 - beta_1)
    torch._foreach_mul_(norms, beta_2)
    torch._foreach_maximum_(norms, torch._foreach_abs(grads))
    denominators = torch._foreach_add(norms, epsilon)
    step_size = learning_rate / (1.0 - beta_1**step)
    torch._foreach_addcdiv_(params, momentums, denominators, value=-step_size)


class _KerasAdamax(torch.optim.Optimizer):
    """A `torch.optim.Optimizer` running `adamax_update` (state: momentum, norm per parameter;
    the step count lives in the param group, shared as Keras's is)."""

    def __init__(
        self, params: Any, lr: float, beta_1: float, beta_2: float, epsilon: float
    ) -> None:
        defaults = {"lr": lr, "beta_1": beta_1, "beta_2": beta_2, "epsilon": epsilon, "step": 0}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads, momentums, norms = [], [], [], []
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state["momentum"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                    state["norm"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                params.append(param)
                grads.append(param.grad)
                momentums.append(state["momentum"])
                norms.append(state["norm"])
            if params:
                group["step"] += 1
                adamax_update(
                    params,
                    grads,
                    momentums,
                    norms,
                    learning_rate=group["lr"],
                    beta_1=group["beta_1"],
                    beta_2=group["beta_2"],
                    epsilon=group["epsilon"],
                    step=group["step"],
                )
        return loss


@register("Adamax")
class Adamax(Optimizer):
    """Adamax (Kingma & Ba, 2014, section 7.1): Adam with the infinity norm.

    Keras's rule, followed here, with `m` and `u` starting at zero:

    ```
    m = beta_1 * m + (1 - beta_1) * g
    u = max(beta_2 * u, |g|)
    w = w - learning_rate / (1 - beta_1**t) * m / (u + epsilon)
    ```

    `torch.optim.Adamax` puts `eps` inside the maximum (`u = max(beta_2 * u, |g| + eps)`,
    divided by `u`), which is the same only for `epsilon=0`; Keras's rule is therefore written
    here with torch foreach ops.

    Args:
        learning_rate: a float, a `LearningRateSchedule` or a callable. Defaults to 0.001.
        beta_1: decay rate of the first moment, in [0, 1).
        beta_2: decay rate of the infinity norm, in [0, 1].
        epsilon: added to `u`. Defaults to 1e-7.
        weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum,
        ema_overwrite_frequency, loss_scale_factor, gradient_accumulation_steps, name:
            see `lamina.optimizers.Optimizer`.
    """

    def __init__(
        self,
        learning_rate: float | LearningRateSchedule | Callable[[], float] = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        *,
        name: str = "adamax",
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        check_float_range("beta_1", beta_1, 0.0, 1.0, high_open=True)
        check_float_range("beta_2", beta_2, 0.0, 1.0)
        check_float_range("epsilon", epsilon, 0.0, math.inf)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon

    def _create_torch_optimizer(
        self, variables: list[torch.Tensor], **kernel: bool
    ) -> torch.optim.Optimizer:
        return _KerasAdamax(
            variables,
            lr=self._current_learning_rate(),
            beta_1=self.beta_1,
            beta_2=self.beta_2,
            epsilon=self.epsilon,
        )

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
        }
