"""LearningRateScheduler: set the learning rate at each epoch's start from `schedule(epoch, lr)`."""

from __future__ import annotations

import inspect
from typing import Callable

from lamina._registry import register
from lamina.callbacks.callback import Callback


@register("LearningRateScheduler")
class LearningRateScheduler(Callback):
    """`schedule(epoch, lr) -> new_lr` (or `schedule(epoch)`); a `LearningRateSchedule` object
    from `lamina.optimizers.schedules` works too, evaluated at the epoch index (so the step,
    exponential and cosine schedules become per-epoch schedules)."""

    def __init__(self, schedule: Callable, verbose: int = 0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"`schedule` must be callable. Received: {schedule!r}.")
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        try:
            takes_lr = len(inspect.signature(self.schedule).parameters) >= 2
        except (TypeError, ValueError):
            takes_lr = False
        value = self.schedule(epoch, optimizer.learning_rate) if takes_lr else self.schedule(epoch)
        value = float(value)
        if value != value or value < 0:
            raise ValueError(
                f"The learning rate schedule must return a non-negative float. Got {value} at "
                f"epoch {epoch}."
            )
        optimizer.learning_rate = value
        if self.verbose:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {value}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = self.model.optimizer.learning_rate
