"""fastai's one-cycle training: `Model.fit_one_cycle` and the `OneCycleScheduler` callback.

The learning rate follows `OneCycle(..., convention="fastai")` (cosine from `max_lr / div` up to
`max_lr` over `pct_start` of the steps, then down to `max_lr / div_final`) and the momentum runs
the same shape the other way, `0.95 -> 0.85 -> 0.95`: SGD's and RMSprop's `momentum`, the
Adam family's `beta_1`.
"""

from __future__ import annotations

from typing import Any

from lamina.callbacks.callback import Callback
from lamina.optimizers.schedules import OneCycle


def _check_moms(moms: Any) -> tuple[float, float, float]:
    if (not isinstance(moms, (list, tuple)) or len(moms) != 3
            or not all(isinstance(m, (int, float)) and not isinstance(m, bool) and 0 <= m < 1
                       for m in moms)):
        raise ValueError(
            "`moms` must be three momentums in [0, 1): (start, middle, end), e.g. "
            f"(0.95, 0.85, 0.95). Received: moms={moms!r}."
        )
    return tuple(float(m) for m in moms)  # type: ignore[return-value]


def set_momentum(optimizer: Any, value: float) -> bool:
    """Set the momentum the next step uses: `beta_1` where the optimizer has betas, else its
    `momentum`. Returns False for an optimizer with neither (Adagrad, Adadelta)."""
    groups = optimizer.torch_optimizer.param_groups
    if "betas" in groups[0]:
        for group in groups:
            group["betas"] = (value, group["betas"][1])
        optimizer.beta_1 = value
        return True
    if "momentum" in groups[0]:
        for group in groups:
            group["momentum"] = value
        # SGD reads its own `momentum` to keep Keras's velocity across lr changes.
        optimizer.momentum = value
        return True
    return False


def get_momentum(optimizer: Any) -> float | None:
    group = optimizer.torch_optimizer.param_groups[0]
    if "betas" in group:
        return float(group["betas"][0])
    if "momentum" in group:
        return float(group["momentum"])
    return None


class OneCycleScheduler(Callback):
    """Drive the learning rate and momentum through one cycle over the whole `fit`.

    The cycle spans `epochs * steps` of the fit it is passed to; the optimizer's own learning
    rate and momentum are put back when the fit ends, so a later `fit` trains as compiled.

    Args:
        max_lr: the peak learning rate.
        pct_start: the fraction of the steps spent rising to `max_lr`.
        div: the first learning rate is `max_lr / div`.
        div_final: the last is `max_lr / div_final`.
        moms: the momentum at the start, at the peak learning rate, and at the end.
    """

    def __init__(self, max_lr: float, pct_start: float = 0.25, div: float = 25.0,
                 div_final: float = 1e5, moms: Any = (0.95, 0.85, 0.95)) -> None:
        super().__init__()
        # OneCycle validates the rates and fractions with its own messages.
        OneCycle(max_lr, 1, pct_start=pct_start, div_factor=div, final_div_factor=div_final,
                 convention="fastai")
        self.max_lr, self.pct_start, self.div, self.div_final = max_lr, pct_start, div, div_final
        self.moms = _check_moms(moms)
        self.schedule: OneCycle | None = None
        self.step = 0
        self._saved: tuple[Any, float | None, list[float]] | None = None

    def on_train_begin(self, logs=None):
        steps, epochs = self.params.get("steps"), self.params.get("epochs")
        if not steps:
            raise ValueError(
                "OneCycleScheduler needs the number of steps per epoch: pass data with a "
                "length, or steps_per_epoch= to fit."
            )
        self.schedule = OneCycle(self.max_lr, int(steps) * int(epochs), pct_start=self.pct_start,
                                 div_factor=self.div, final_div_factor=self.div_final,
                                 convention="fastai")
        self.step = 0
        self._saved = None

    def on_train_batch_begin(self, batch, logs=None):
        optimizer = self.model.optimizer
        if self._saved is None:
            # The optimizer is built by now (at the first batch): remember what to put back.
            # The param groups' lrs too: a TorchOptimizer without a learning_rate keeps its
            # own there.
            groups = optimizer.torch_optimizer.param_groups
            self._saved = (optimizer._learning_rate, get_momentum(optimizer),
                           [group["lr"] for group in groups])
        schedule, step = self.schedule, self.step
        # A callable learning rate is evaluated by the optimizer at its step, schedules or not.
        value = schedule(step)
        optimizer._learning_rate = lambda: value
        set_momentum(optimizer, schedule.cycle(step, *self.moms))
        self.step += 1

    def on_train_end(self, logs=None):
        if self._saved is not None:
            optimizer = self.model.optimizer
            optimizer._learning_rate, momentum, rates = self._saved
            for group, rate in zip(optimizer.torch_optimizer.param_groups, rates):
                group["lr"] = rate
            if momentum is not None:
                set_momentum(optimizer, momentum)
            self._saved = None


def fit_one_cycle(model: Any, x: Any = None, y: Any = None, epochs: int = 1,
                  max_lr: float | None = None, *, pct_start: float = 0.25, div: float = 25.0,
                  div_final: float = 1e5, moms: Any = (0.95, 0.85, 0.95),
                  callbacks: Any = None, **fit_kwargs: Any) -> Any:
    """`fit` under a `OneCycleScheduler`; `max_lr=None` takes the optimizer's learning rate."""
    if max_lr is None:
        max_lr = model._trainer().optimizer.learning_rate  # NotCompiledError before compile
    scheduler = OneCycleScheduler(max_lr, pct_start=pct_start, div=div, div_final=div_final,
                                  moms=moms)
    return model.fit(x, y, epochs=epochs, callbacks=[*(callbacks or []), scheduler], **fit_kwargs)
