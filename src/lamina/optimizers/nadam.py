"""Nadam: Adam with Nesterov momentum, on `torch.optim.NAdam`."""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from lamina._registry import register
from lamina.optimizers.optimizer import Optimizer, check_float_range
from lamina.optimizers.schedules import LearningRateSchedule


@register("Nadam")
class Nadam(Optimizer):
    """Nadam (Dozat, 2016): Adam whose first moment takes a Nesterov look-ahead.

    Keras's rule, followed here, with a momentum schedule `u_t = beta_1 * (1 - 0.5 * 0.96**t)`
    and `prod_t = u_1 * ... * u_t`:

    ```
    m = beta_1 * m + (1 - beta_1) * g
    v = beta_2 * v + (1 - beta_2) * g**2
    m_hat = u_{t+1} * m / (1 - prod_t * u_{t+1}) + (1 - u_t) * g / (1 - prod_t)
    v_hat = v / (1 - beta_2**t)
    w = w - learning_rate * m_hat / (sqrt(v_hat) + epsilon)
    ```

    `torch.optim.NAdam` computes the same update with `u_t = beta_1 * (1 - 0.5 *
    0.96**(t * momentum_decay))` and defaults to `momentum_decay=0.004`, a far slower momentum
    warm-up than Keras's; it is run here with `momentum_decay=1.0`, which is Keras's schedule.
    Unlike Adam, Keras's Nadam adds `epsilon` after the bias correction, as torch does. torch
    keeps `prod_t` as a float32 scalar, so float64 variables follow the rule to about 1e-7.

    Args:
        learning_rate: a float, a `LearningRateSchedule` or a callable. Defaults to 0.001.
        beta_1: decay rate of the first moment, in [0, 1).
        beta_2: decay rate of the second moment, in [0, 1).
        epsilon: added to `sqrt(v_hat)`. Defaults to 1e-7.
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
        name: str = "nadam",
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        check_float_range("beta_1", beta_1, 0.0, 1.0, high_open=True)
        check_float_range("beta_2", beta_2, 0.0, 1.0, high_open=True)
        check_float_range("epsilon", epsilon, 0.0, math.inf)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon

    def _create_torch_optimizer(
        self, variables: list[torch.Tensor], **kernel: bool
    ) -> torch.optim.Optimizer:
        return torch.optim.NAdam(
            variables,
            lr=self._current_learning_rate(),
            betas=(self.beta_1, self.beta_2),
            eps=self.epsilon,
            momentum_decay=1.0,
            **kernel,
        )

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        # torch's load_state_dict casts every floating state tensor to its parameter's dtype,
        # but NAdam keeps `mu_product` in torch's scalar dtype; restore that dtype so that a
        # resumed run continues bit for bit.
        default_is_double = torch.get_default_dtype() == torch.float64
        scalar_dtype = torch.float64 if default_is_double else torch.float32
        for state_of_variable in self._torch.state.values():
            if "mu_product" in state_of_variable:
                state_of_variable["mu_product"] = state_of_variable["mu_product"].to(scalar_dtype)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
        }
