"""EarlyStopping: stop when a monitored quantity stops improving."""

from __future__ import annotations


import torch

from lamina._registry import register
from lamina.callbacks.callback import Callback
from lamina.callbacks.monitor import Monitor


@register("EarlyStopping")
class EarlyStopping(Callback):
    """Stop training after `patience` epochs without an improvement larger than `min_delta`.

    Args:
        monitor: the logged quantity ('val_loss').
        patience: epochs without improvement before stopping.
        baseline: training stops if the monitor does not beat it within `patience` epochs.
        restore_best_weights: at the end, put back the weights of the best epoch.
        start_from_epoch: epochs to wait before counting (warm-up).
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0,
                 verbose: int = 0, mode: str = "auto", baseline: float | None = None,
                 restore_best_weights: bool = False, start_from_epoch: int = 0):
        super().__init__()
        if patience < 0:
            raise ValueError(f"`patience` must be >= 0. Received: patience={patience}.")
        self.monitor = monitor
        self.patience, self.verbose = patience, verbose
        self.restore_best_weights, self.start_from_epoch = restore_best_weights, start_from_epoch
        self.tracker = Monitor(monitor, mode, min_delta, baseline, owner="EarlyStopping")
        self.wait = 0
        self.stopped_epoch = 0
        self.best_epoch = 0
        self.best_weights = None

    @property
    def best(self) -> float:
        return self.tracker.best

    def on_train_begin(self, logs=None):
        self.wait, self.stopped_epoch, self.best_epoch = 0, 0, 0
        self.tracker.reset()
        self.best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        current = self.tracker.value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = _copy_state(self.model)
        self.wait += 1
        if self.tracker.improved(current):
            self.tracker.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = _copy_state(self.model)
            if self.tracker.baseline is None or self.tracker.improved(current, self.tracker.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.load_state_dict(self.best_weights)

    def state_dict(self):
        return {"wait": self.wait, "best_epoch": self.best_epoch,
                "stopped_epoch": self.stopped_epoch, "best_weights": self.best_weights,
                **self.tracker.state_dict()}

    def load_state_dict(self, state):
        self.wait, self.best_epoch = state["wait"], state["best_epoch"]
        self.stopped_epoch = state["stopped_epoch"]
        self.tracker.load_state_dict(state)
        saved = state["best_weights"]
        # Placed like the model's own tensors, as _copy_state keeps them.
        devices = {key: value.device for key, value in self.model.state_dict().items()}
        self.best_weights = None if saved is None else {
            key: value.to(devices.get(key, value.device)) for key, value in saved.items()}


def _copy_state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


