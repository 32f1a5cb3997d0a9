"""`Callback` (Keras's hooks) and `History`; `CallbackList` dispatches to them (callback_list.py).

Callbacks observe the engine and steer it only through `model.stop_training` and the
optimizer's learning rate.
"""

from __future__ import annotations

from typing import Any

from lamina._registry import register
from lamina.evaluation.plots import plot_history


class Callback:
    """Base class: override any of the `on_*` hooks; `self.model` and `self.params` are set.

    A callback with state that should survive an interrupted run implements `state_dict()` and
    `load_state_dict()` (BackupAndRestore saves them).
    """

    _registry_kind = "callback"

    def __init__(self):
        self.model = None
        self.params: dict[str, Any] = {}

    def set_model(self, model) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    # Keras's hooks; all no-ops here.
    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_train_batch_begin(self, batch, logs=None): self.on_batch_begin(batch, logs)
    def on_train_batch_end(self, batch, logs=None): self.on_batch_end(batch, logs)
    def on_batch_begin(self, batch, logs=None): ...
    def on_batch_end(self, batch, logs=None): ...
    def on_test_begin(self, logs=None): ...
    def on_test_end(self, logs=None): ...
    def on_test_batch_begin(self, batch, logs=None): ...
    def on_test_batch_end(self, batch, logs=None): ...
    def on_predict_begin(self, logs=None): ...
    def on_predict_end(self, logs=None): ...
    def on_predict_batch_begin(self, batch, logs=None): ...
    def on_predict_batch_end(self, batch, logs=None): ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


@register("History")
class History(Callback):
    """Records each epoch's logs: `history.history['val_loss']` is the list over epochs."""

    def __init__(self):
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)
        if self.model is not None:
            self.model.history = self

    def plot(self, metrics: list[str] | str | None = None) -> Any:
        """The learning curves as a matplotlib `Figure`: a panel per metric with its `val_` pair,
        and the learning rate when a callback logged it; `metrics=` picks the panels."""
        return plot_history(self, metrics)

    def state_dict(self):
        return {"history": self.history, "epoch": self.epoch}

    def load_state_dict(self, state):
        self.history = {k: list(v) for k, v in state["history"].items()}
        self.epoch = list(state["epoch"])
