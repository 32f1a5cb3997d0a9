"""Adam (and the shared base of Adam and AdamW), on `torch.optim.Adam`."""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch.optim.optimizer import _global_optimizer_post_hooks, _global_optimizer_pre_hooks

from lamina._registry import register
from lamina.optimizers.optimizer import Optimizer, check_float_range
from lamina.optimizers.schedules import LearningRateSchedule

# torch.optim's hooks registered for every optimizer (register_optimizer_step_pre/post_hook).
_GLOBAL_STEP_HOOKS = (_global_optimizer_pre_hooks, _global_optimizer_post_hooks)


class _AdamBase(Optimizer):
    """Keras's Adam update on torch's fused/foreach Adam kernels.

    Keras adds `epsilon` to `sqrt(v)` before the bias correction of `v` ("epsilon hat" of Kingma
    & Ba, just before their section 2.1):

        w -= learning_rate * sqrt(1 - beta_2**t) / (1 - beta_1**t) * m / (sqrt(v) + epsilon)

    torch (and the paper's Algorithm 1) add it after: `w -= learning_rate * m_hat / (sqrt(v_hat) + eps)`.
    The two agree when torch's `eps` is `epsilon / sqrt(1 - beta_2**t)`, which is set on the
    torch param group before each update, so the Keras rule holds exactly.
    """

    _fused_capable = True

    def _set_adam_arguments(
        self, beta_1: float, beta_2: float, epsilon: float, amsgrad: bool
    ) -> None:
        check_float_range("beta_1", beta_1, 0.0, 1.0, high_open=True)
        check_float_range("beta_2", beta_2, 0.0, 1.0, high_open=True)
        check_float_range("epsilon", epsilon, 0.0, math.inf)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.amsgrad = amsgrad

    def _create_torch_optimizer(
        self, variables: list[torch.Tensor], **kernel: bool
    ) -> torch.optim.Optimizer:
        return torch.optim.Adam(
            variables,
            lr=self._current_learning_rate(),
            betas=(self.beta_1, self.beta_2),
            eps=self.epsilon,
            amsgrad=bool(self.amsgrad),
            **kernel,
        )

    def _torch_update(self) -> None:
        # torch.optim's step() spends ~50 us a step in Python around its one fused kernel
        # (profiler record, hooks, state setup, grouping): ~2.5% of the sheet's MLP step on the
        # CPU. Once torch has created the state (its first step), and while nothing depends on
        # that Python (one param group, no step hooks, no GradScaler), the kernel is called here
        # with torch's own arguments and state, so the update is torch's, bit for bit.
        optimizer = self._torch
        groups = optimizer.param_groups
        group = groups[0]
        if len(groups) != 1 or not group.get("fused") or group["capturable"] \
                or group["differentiable"] or optimizer._optimizer_step_pre_hooks \
                or optimizer._optimizer_step_post_hooks or _GLOBAL_STEP_HOOKS[0] \
                or _GLOBAL_STEP_HOOKS[1] or getattr(optimizer, "grad_scale", None) is not None \
                or getattr(optimizer, "found_inf", None) is not None:
            optimizer.step()
            return
        amsgrad = group["amsgrad"]
        states = optimizer.state
        params, grads, averages, squares, maxima, steps = [], [], [], [], [], []
        for param in group["params"]:
            grad = param.grad
            if grad is None:
                continue
            state = states.get(param)
            if not state or grad.is_sparse or param.is_complex():
                optimizer.step()  # torch creates the state, or refuses the gradient
                return
            params.append(param)
            grads.append(grad)
            averages.append(state["exp_avg"])
            squares.append(state["exp_avg_sq"])
            if amsgrad:
                maxima.append(state["max_exp_avg_sq"])
            steps.append(state["step"])
        beta_1, beta_2 = group["betas"]
        kernel = torch._fused_adamw_ if group["decoupled_weight_decay"] else torch._fused_adam_
        grouped = torch.optim.Optimizer._group_tensors_by_device_and_dtype(
            [params, grads, averages, squares, maxima, steps])
        for (params, grads, averages, squares, maxima, steps), _ in grouped.values():
            torch._foreach_add_(steps, 1)
            kernel(params, grads, averages, squares, maxima, steps, amsgrad=amsgrad,
                   lr=group["lr"], beta1=beta_1, beta2=beta_2,
                   weight_decay=group["weight_decay"], eps=group["eps"],
                   maximize=group["maximize"])

    def _prepare_update(self, learning_rate: float, gradients: list[torch.Tensor]) -> None:
        step = self.iterations + 1
        group = self._torch.param_groups[0]
        group["lr"] = learning_rate
        group["eps"] = self.epsilon / math.sqrt(1.0 - self.beta_2**step)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
            "amsgrad": self.amsgrad,
        }


@register("Adam")
class Adam(_AdamBase):
    """Adam: adaptive moment estimation (Kingma & Ba, 2014).

    The paper's rule:

    ```
    m = beta_1 * m + (1 - beta_1) * g          # first moment
    v = beta_2 * v + (1 - beta_2) * g**2       # second moment
    m_hat = m / (1 - beta_1**t); v_hat = v / (1 - beta_2**t)
    w = w - learning_rate * m_hat / (sqrt(v_hat) + epsilon)
    ```

    Keras's epsilon, followed here, is added before the bias correction of `v`:
    `w -= learning_rate * m_hat / (sqrt(v_hat) + epsilon / sqrt(1 - beta_2**t))`; the two rules
    are identical for `epsilon=0` and differ by far less than `epsilon` otherwise. With
    `amsgrad=True`, `v` in the update is replaced by its running maximum (Reddi et al., 2018).
    `weight_decay` applies Keras's decoupled decay, which makes this AdamW.

    Args:
        learning_rate: a float, a `LearningRateSchedule` or a callable. Defaults to 0.001.
        beta_1: decay rate of the first moment, in [0, 1).
        beta_2: decay rate of the second moment, in [0, 1).
        epsilon: Keras's "epsilon hat". Defaults to 1e-7 (torch: 1e-8, after the correction).
        amsgrad: whether to use the AMSGrad variant.
        weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum,
        ema_overwrite_frequency, loss_scale_factor, gradient_accumulation_steps, name:
            see `lamina.optimizers.Optimizer`.

    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([1.0]))
    >>> _ = Adam(learning_rate=0.1).apply_gradients([(torch.tensor([2.0]), w)])
    >>> round(w.item(), 4)  # the first Adam step moves by learning_rate * sign(g)
    0.9
    """

    def __init__(
        self,
        learning_rate: float | LearningRateSchedule | Callable[[], float] = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
        *,
        name: str = "adam",
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self._set_adam_arguments(beta_1, beta_2, epsilon, amsgrad)
