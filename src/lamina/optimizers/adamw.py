"""AdamW: Adam with decoupled weight decay."""

from __future__ import annotations

from typing import Any, Callable

from lamina._registry import register
from lamina.optimizers.adam import _AdamBase
from lamina.optimizers.schedules import LearningRateSchedule


@register("AdamW")
class AdamW(_AdamBase):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019).

    Each step first decays the weights, then applies Adam's update (see `Adam`):

    ```
    w = w - learning_rate * weight_decay * w
    w = w - learning_rate * m_hat / (sqrt(v_hat) + epsilon)
    ```

    This is the decoupled rule of the paper, of Keras and of `torch.optim.AdamW`. A common
    shorthand writes AdamW as `L_total = L_original + weight_decay * ||W||^2`, which is an L2 penalty: its
    gradient `2 * weight_decay * W` would pass through Adam's `1 / sqrt(v_hat)` scaling, so
    weights with large gradients would be decayed less. That is Adam with L2 regularization, not
    AdamW; decoupling the decay from the adaptive scaling is the point of AdamW.

    Args:
        learning_rate: a float, a `LearningRateSchedule` or a callable. Defaults to 0.001.
        weight_decay: the decoupled decay rate (required). Defaults to 0.004 (torch: 0.01).
        beta_1, beta_2, epsilon, amsgrad: as in `Adam`.
        clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum, ema_overwrite_frequency,
        loss_scale_factor, gradient_accumulation_steps, name: see `lamina.optimizers.Optimizer`.

    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([1.0]))
    >>> _ = AdamW(learning_rate=0.1, weight_decay=0.5).apply_gradients([(torch.tensor([2.0]), w)])
    >>> round(w.item(), 4)  # 1.0 * (1 - 0.1 * 0.5), then the first Adam step of -0.1
    0.85
    """

    def __init__(
        self,
        learning_rate: float | LearningRateSchedule | Callable[[], float] = 0.001,
        weight_decay: float = 0.004,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
        *,
        name: str = "adamw",
        **kwargs: Any,
    ) -> None:
        if weight_decay is None:
            raise ValueError(
                "Argument `weight_decay` must be a float. Received: weight_decay=None. "
                "Use `Adam` for no weight decay."
            )
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, name=name, **kwargs)
        self._set_adam_arguments(beta_1, beta_2, epsilon, amsgrad)
