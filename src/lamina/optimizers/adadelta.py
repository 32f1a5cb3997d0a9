"""Adadelta, on `torch.optim.Adadelta`."""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from lamina._registry import register
from lamina.optimizers.optimizer import Optimizer, check_float_range
from lamina.optimizers.schedules import LearningRateSchedule


@register("Adadelta")
class Adadelta(Optimizer):
    """Adadelta (Zeiler, 2012): steps scaled by the ratio of running RMS of updates and gradients.

    Keras's rule, which is also torch's, with both accumulators starting at zero:

    ```
    E[g**2] = rho * E[g**2] + (1 - rho) * g**2
    delta = -sqrt(E[dw**2] + epsilon) / sqrt(E[g**2] + epsilon) * g
    E[dw**2] = rho * E[dw**2] + (1 - rho) * delta**2
    w = w + learning_rate * delta
    ```

    Only the defaults differ: Keras (followed here) uses `learning_rate=0.001, rho=0.95,
    epsilon=1e-7`, torch `lr=1.0, rho=0.9, eps=1e-6`. The paper's form has `learning_rate=1`.

    Args:
        learning_rate: a float, a `LearningRateSchedule` or a callable. Defaults to 0.001.
        rho: decay rate of both running averages, in [0, 1].
        epsilon: added under both roots. Defaults to 1e-7.
        weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum,
        ema_overwrite_frequency, loss_scale_factor, gradient_accumulation_steps, name:
            see `lamina.optimizers.Optimizer`.
    """

    def __init__(
        self,
        learning_rate: float | LearningRateSchedule | Callable[[], float] = 0.001,
        rho: float = 0.95,
        epsilon: float = 1e-7,
        *,
        name: str = "adadelta",
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        check_float_range("rho", rho, 0.0, 1.0)
        check_float_range("epsilon", epsilon, 0.0, math.inf)
        self.rho = rho
        self.epsilon = epsilon

    def _create_torch_optimizer(
        self, variables: list[torch.Tensor], **kernel: bool
    ) -> torch.optim.Optimizer:
        return torch.optim.Adadelta(
            variables, lr=self._current_learning_rate(), rho=self.rho, eps=self.epsilon, **kernel
        )

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}
