"""SGD with optional (Nesterov) momentum, on `torch.optim.SGD`."""

from __future__ import annotations

from typing import Any, Callable

import torch

from lamina._registry import register
from lamina.optimizers.optimizer import Optimizer, check_float_range
from lamina.optimizers.schedules import LearningRateSchedule


@register("SGD")
class SGD(Optimizer):
    """Gradient descent, with momentum and Nesterov momentum.

    The textbook rules: `W = W - learning_rate * gradient`; momentum
    `v = momentum * v + gradient; W = W - learning_rate * v`; NAG
    `v = momentum * v + learning_rate * gradient(W - momentum * v); W = W - v`.

    Keras's rules, which this follows exactly:

    ```
    velocity = momentum * velocity - learning_rate * g
    w = w + velocity                                  # nesterov=False
    w = w + momentum * velocity - learning_rate * g   # nesterov=True
    ```

    Keras's momentum rule is the textbook one with `velocity = -learning_rate * v` while the learning
    rate is constant; its Nesterov rule is NAG tracked at the look-ahead point
    `W - momentum * v` (Sutskever et al. 2013), which needs no second gradient evaluation.
    torch's SGD keeps the learning rate out of its buffer (`buf = momentum * buf + g;
    w -= lr * buf`), which is the same only while the learning rate is constant; under a
    schedule the buffers are rescaled by `lr_before / lr_now` so that the Keras rule holds.

    Args:
        learning_rate: a float, a `LearningRateSchedule` or a callable. Defaults to 0.01.
        momentum: in [0, 1]; 0 is plain gradient descent.
        nesterov: whether to apply Nesterov momentum.
        weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum,
        ema_overwrite_frequency, loss_scale_factor, gradient_accumulation_steps, name:
            see `lamina.optimizers.Optimizer`.

    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([1.0]))
    >>> opt = SGD(learning_rate=0.1)
    >>> _ = opt.apply_gradients([(torch.tensor([2.0]), w)])
    >>> round(w.item(), 6)
    0.8
    """

    _fused_capable = True

    def __init__(
        self,
        learning_rate: float | LearningRateSchedule | Callable[[], float] = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        *,
        name: str = "SGD",
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        check_float_range("momentum", momentum, 0.0, 1.0)
        self.momentum = momentum
        self.nesterov = nesterov
        # The learning rate the torch momentum buffers are expressed in: Keras's velocity is
        # `-buffer_learning_rate * buffer`. None until the first update.
        self._buffer_learning_rate: float | None = None

    def _create_torch_optimizer(
        self, variables: list[torch.Tensor], **kernel: bool
    ) -> torch.optim.Optimizer:
        return torch.optim.SGD(
            variables,
            lr=self._current_learning_rate(),
            momentum=self.momentum,
            nesterov=bool(self.nesterov and self.momentum),
            **kernel,
        )

    def _prepare_update(self, learning_rate: float, gradients: list[torch.Tensor]) -> None:
        if self.momentum:
            learning_rate = self._keep_keras_velocity(learning_rate, gradients)
        self._torch.param_groups[0]["lr"] = learning_rate

    def _keep_keras_velocity(self, learning_rate: float, gradients: list[torch.Tensor]) -> float:
        """The lr to give torch so that its step is Keras's, rescaling buffers if needed."""
        previous = self._buffer_learning_rate
        if previous is None or learning_rate == previous:
            self._buffer_learning_rate = learning_rate
            return learning_rate
        if learning_rate == 0.0:
            # Keras still moves by the decayed velocity: a torch step on zero gradients at
            # the buffers' learning rate is exactly that.
            torch._foreach_zero_(gradients)
            return previous
        states = self._torch.state
        buffers = [
            states[v]["momentum_buffer"]
            for v in self._variables
            if states.get(v, {}).get("momentum_buffer") is not None
        ]
        if buffers:
            torch._foreach_mul_(buffers, previous / learning_rate)
        self._buffer_learning_rate = learning_rate
        return learning_rate

    def _extra_state(self) -> dict[str, Any]:
        return {"buffer_learning_rate": self._buffer_learning_rate}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self._buffer_learning_rate = state.get("buffer_learning_rate")

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}
