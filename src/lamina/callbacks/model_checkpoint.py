"""ModelCheckpoint: save the model (or its weights) during training."""

from __future__ import annotations

import os

from lamina._registry import register
from lamina.callbacks.callback import Callback
from lamina.callbacks.monitor import Monitor
from lamina.distribution import is_chief
from lamina.training.logs import logs_to_floats


@register("ModelCheckpoint")
class ModelCheckpoint(Callback):
    """Save after every epoch (or every `save_freq` batches) to `filepath`, which may name the
    epoch and any logged value: `'model_{epoch:02d}-{val_loss:.2f}.keras'` (epochs count from 1).

    `save_best_only` keeps only improvements of `monitor`; `save_weights_only` writes
    `save_weights` files. Writes are atomic, so an interrupted save never corrupts the last good
    checkpoint.
    """

    def __init__(self, filepath: str, monitor: str = "val_loss", verbose: int = 0,
                 save_best_only: bool = False, save_weights_only: bool = False, mode: str = "auto",
                 save_freq: str | int = "epoch", initial_value_threshold: float | None = None):
        super().__init__()
        self.filepath = os.fspath(filepath)
        if save_weights_only and not self.filepath.endswith((".h5", ".hdf5")):
            raise ValueError(
                "When save_weights_only=True, `filepath` must end in `.weights.h5` (or `.h5`). "
                f"Received: filepath={self.filepath!r}."
            )
        if not save_weights_only and not self.filepath.endswith((".keras", ".h5", ".hdf5")):
            raise ValueError(
                "The filepath of ModelCheckpoint must end in `.keras` or `.h5` (or `.weights.h5` "
                f"with save_weights_only=True). Received: filepath={self.filepath!r}."
            )
        if save_freq != "epoch" and (not isinstance(save_freq, int) or save_freq <= 0):
            raise ValueError(f"`save_freq` must be 'epoch' or a positive integer. Received: {save_freq!r}.")
        self.monitor, self.verbose = monitor, verbose
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only
        self.save_freq = save_freq
        self.tracker = Monitor(monitor, mode, owner="ModelCheckpoint")
        if initial_value_threshold is not None:
            self.tracker.best = initial_value_threshold
        self._epoch = 0
        self._batches_seen = 0

    def on_train_begin(self, logs=None):
        self._batches_seen = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._batches_seen += 1
        if self._batches_seen % self.save_freq == 0:
            self._save(self._epoch, logs_to_floats(logs), batch=batch)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, logs or {})

    def _say(self, message: str) -> None:
        # Every process runs this callback (a sharded model's save needs them all), but the
        # job's output is rank 0's, as for the progress bar.
        if self.verbose and is_chief():
            print(message)

    def _save(self, epoch: int, logs: dict, batch: int | None = None) -> None:
        path = self._format_path(epoch, batch, logs)
        if self.save_best_only:
            current = self.tracker.value(logs)
            if current is None or not self.tracker.improved(current):
                if current is not None:
                    self._say(f"Epoch {epoch + 1}: {self.monitor} did not improve from {self.tracker.best:.5f}")
                return
            self._say(f"Epoch {epoch + 1}: {self.monitor} improved from {self.tracker.best:.5f} to "
                      f"{current:.5f}, saving model to {path}")
            self.tracker.best = current
        else:
            self._say(f"Epoch {epoch + 1}: saving model to {path}")
        if self.save_weights_only:
            self.model.save_weights(path, overwrite=True)
        else:
            self.model.save(path, overwrite=True)

    def _format_path(self, epoch: int, batch: int | None, logs: dict) -> str:
        values = {"epoch": epoch + 1, **logs}
        if batch is not None:
            values["batch"] = batch + 1
        try:
            return self.filepath.format(**values)
        except KeyError as error:
            raise KeyError(
                f"Failed to format the ModelCheckpoint filepath {self.filepath!r}: the key {error} "
                f"is not in the logs ({', '.join(values)})."
            ) from None

    def state_dict(self):
        return {"batches_seen": self._batches_seen, **self.tracker.state_dict()}

    def load_state_dict(self, state):
        self._batches_seen = state["batches_seen"]
        self.tracker.load_state_dict(state)


