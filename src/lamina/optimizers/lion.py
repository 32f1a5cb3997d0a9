"""Lion (torch has none), as foreach tensor ops."""

from __future__ import annotations

from typing import Any, Callable

import torch

from lamina._registry import register
from lamina.optimizers.optimizer import Optimizer, check_float_range
from lamina.optimizers.schedules import LearningRateSchedule


def lion_update(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    momentums: list[torch.Tensor],
    *,
    learning_rate: float,
    beta_1: float,
    beta_2: float,
) -> None:
    """One Lion step in place."""
    directions = torch._foreach_lerp(momentums, grads, 1.0 - beta_1)
    torch._foreach_sign_(directions)
    torch._foreach_add_(params, directions, alpha=-learning_rate)
    torch._foreach_lerp_(momentums, grads, 1.0 - beta_2)


class _Lion(torch.optim.Optimizer):
    """A `torch.optim.Optimizer` running `lion_update` (state: momentum per parameter)."""

    def __init__(self, params: Any, lr: float, beta_1: float, beta_2: float) -> None:
        super().__init__(params, {"lr": lr, "beta_1": beta_1, "beta_2": beta_2})

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads, momentums = [], [], []
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state["momentum"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                params.append(param)
                grads.append(param.grad)
                momentums.append(state["momentum"])
            if params:
                lion_update(
                    params,
                    grads,
                    momentums,
                    learning_rate=group["lr"],
                    beta_1=group["beta_1"],
                    beta_2=group["beta_2"],
                )
        return loss


@register("Lion")
class Lion(Optimizer):
    """Lion, EvoLved Sign Momentum (Chen et al., 2023): the sign of an interpolated momentum.

    Keras's rule (the paper's), with `m` starting at zero:

    ```
    w = w - learning_rate * sign(beta_1 * m + (1 - beta_1) * g)
    m = beta_2 * m + (1 - beta_2) * g
    ```

    `weight_decay` is Keras's decoupled decay applied first, which equals the paper's
    `w -= learning_rate * weight_decay * w` term. The update has unit magnitude per element, so
    Lion wants a learning rate 3-10x smaller than AdamW's and a weight decay 3-10x larger.

    Args:
        learning_rate: a float, a `LearningRateSchedule` or a callable. Defaults to 0.001.
        beta_1: interpolation weight of the momentum in the update, in (0, 1].
        beta_2: decay rate of the momentum, in [0, 1].
        weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum,
        ema_overwrite_frequency, loss_scale_factor, gradient_accumulation_steps, name:
            see `lamina.optimizers.Optimizer`.

    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([1.0, 1.0]))
    >>> _ = Lion(learning_rate=0.1).apply_gradients([(torch.tensor([3.0, -0.01]), w)])
    >>> [round(x, 4) for x in w.tolist()]  # learning_rate against the sign of each gradient
    [0.9, 1.1]
    """

    def __init__(
        self,
        learning_rate: float | LearningRateSchedule | Callable[[], float] = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.99,
        *,
        name: str = "lion",
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if isinstance(beta_1, bool) or not isinstance(beta_1, (int, float)) or not 0 < beta_1 <= 1:
            raise ValueError(
                "Argument `beta_1` must be in the (0, 1] range. Otherwise, the optimizer "
                f"degenerates to SignSGD. Received: beta_1={beta_1!r}."
            )
        check_float_range("beta_2", beta_2, 0.0, 1.0)
        self.beta_1 = beta_1
        self.beta_2 = beta_2

    def _create_torch_optimizer(
        self, variables: list[torch.Tensor], **kernel: bool
    ) -> torch.optim.Optimizer:
        return _Lion(
            variables, lr=self._current_learning_rate(), beta_1=self.beta_1, beta_2=self.beta_2
        )

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2}
