"""Adagrad, on `torch.optim.Adagrad`."""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from lamina._registry import register
from lamina.optimizers.optimizer import Optimizer, check_float_range
from lamina.optimizers.schedules import LearningRateSchedule


@register("Adagrad")
class Adagrad(Optimizer):
    """Adagrad (Duchi et al., 2011): per-parameter rates from the sum of squared gradients.

    The textbook rule (Duchi et al., 2011): `G = G + g**2; w = w - learning_rate * g / (sqrt(G) + epsilon)`, from
    `G = 0`. Keras's rule, followed here, starts from `G = initial_accumulator_value` and puts
    `epsilon` inside the root:

    ```
    G = G + g**2
    w = w - learning_rate * g / sqrt(G + epsilon)
    ```

    The two agree for `initial_accumulator_value=0, epsilon=0`. torch's Adagrad adds `eps`
    outside the root; it runs here with its accumulator started at
    `initial_accumulator_value + epsilon` and `eps=0`, which is Keras's rule exactly (its
    accumulator state therefore includes `epsilon`).

    Args:
        learning_rate: a float, a `LearningRateSchedule` or a callable. Defaults to 0.001.
        initial_accumulator_value: starting value of `G`, >= 0. Defaults to 0.1.
        epsilon: added to `G` under the root. Defaults to 1e-7.
        weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum,
        ema_overwrite_frequency, loss_scale_factor, gradient_accumulation_steps, name:
            see `lamina.optimizers.Optimizer`.
    """

    # torch's fused Adagrad gained its CUDA kernel only in 2025 (pytorch/pytorch#153038);
    # older builds reject fused CUDA Adagrad, so those use the foreach kernels.
    _fused_capable = tuple(int(part) for part in torch.__version__.split(".")[:2]) >= (2, 9)

    def __init__(
        self,
        learning_rate: float | LearningRateSchedule | Callable[[], float] = 0.001,
        initial_accumulator_value: float = 0.1,
        epsilon: float = 1e-7,
        *,
        name: str = "adagrad",
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        check_float_range("initial_accumulator_value", initial_accumulator_value, 0.0, math.inf)
        check_float_range("epsilon", epsilon, 0.0, math.inf)
        self.initial_accumulator_value = initial_accumulator_value
        self.epsilon = epsilon

    def _create_torch_optimizer(
        self, variables: list[torch.Tensor], **kernel: bool
    ) -> torch.optim.Optimizer:
        return torch.optim.Adagrad(
            variables,
            lr=self._current_learning_rate(),
            initial_accumulator_value=self.initial_accumulator_value + self.epsilon,
            eps=0.0,
            **kernel,
        )

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "initial_accumulator_value": self.initial_accumulator_value,
            "epsilon": self.epsilon,
        }
