"""ReduceLROnPlateau: multiply the learning rate by `factor` when a metric stops improving."""

from __future__ import annotations

from lamina._registry import register
from lamina.callbacks.callback import Callback
from lamina.callbacks.monitor import Monitor


@register("ReduceLROnPlateau")
class ReduceLROnPlateau(Callback):
    """After `patience` epochs without improvement: `lr = max(lr * factor, min_lr)`, then wait
    `cooldown` epochs before counting again."""

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 verbose: int = 0, mode: str = "auto", min_delta: float = 1e-4, cooldown: int = 0,
                 min_lr: float = 0.0, **kwargs):
        super().__init__()
        if factor >= 1.0 or factor <= 0:
            raise ValueError(
                f"ReduceLROnPlateau does not support a factor >= 1.0 or <= 0. Received: factor={factor}."
            )
        if "epsilon" in kwargs:  # the Keras 1 name of min_delta
            min_delta = kwargs.pop("epsilon")
        if kwargs:
            raise TypeError(f"Unrecognized arguments to ReduceLROnPlateau: {sorted(kwargs)}.")
        self.monitor, self.factor, self.patience, self.verbose = monitor, factor, patience, verbose
        self.cooldown, self.min_lr = cooldown, min_lr
        self.tracker = Monitor(monitor, mode, min_delta, owner="ReduceLROnPlateau")
        self.wait = 0
        self.cooldown_counter = 0

    @property
    def best(self) -> float:
        """The best monitored value since `on_train_begin`, as Keras's callback exposes it."""
        return self.tracker.best

    def on_train_begin(self, logs=None):
        self.wait, self.cooldown_counter = 0, 0
        self.tracker.reset()

    def on_epoch_end(self, epoch, logs=None):
        optimizer = self.model.optimizer
        if logs is not None:
            logs["learning_rate"] = optimizer.learning_rate
        current = self.tracker.value(logs)
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self.tracker.improved(current):
            self.tracker.best = current
            self.wait = 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                old = optimizer.learning_rate
                if old > self.min_lr:
                    new = max(old * self.factor, self.min_lr)
                    optimizer.learning_rate = new
                    if self.verbose:
                        print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0

    def state_dict(self):
        return {"wait": self.wait, "cooldown_counter": self.cooldown_counter,
                **self.tracker.state_dict()}

    def load_state_dict(self, state):
        self.wait, self.cooldown_counter = state["wait"], state["cooldown_counter"]
        self.tracker.load_state_dict(state)
