"""BackupAndRestore: resume an interrupted `fit` exactly where its last completed epoch ended."""

from __future__ import annotations

import os
import random
import shutil
from typing import Any

import numpy as np
import torch

from lamina._registry import register
from lamina.callbacks.callback import Callback


@register("BackupAndRestore")
class BackupAndRestore(Callback):
    """Back up the whole training state at the end of every epoch (or every `save_freq` batches)
    to `backup_dir`; a later `fit` with the same callback restores it and continues.

    The state is the model's weights, the optimizer (moments, step count, learning rate), the
    random number generators (so shuffling and dropout continue as if never interrupted) and the
    state of the other callbacks (History, EarlyStopping, ...). After a completed `fit`, the
    backup is deleted (`delete_checkpoint=True`). Files are written atomically and hold no pickle.
    """

    def __init__(self, backup_dir: str, save_freq: str | int = "epoch",
                 delete_checkpoint: bool = True, double_checkpoint: bool = False):
        super().__init__()
        if not backup_dir:
            raise ValueError("`backup_dir` must be a directory path. Received an empty value.")
        if save_freq != "epoch" and (not isinstance(save_freq, int) or save_freq <= 0):
            raise ValueError(f"`save_freq` must be 'epoch' or a positive integer. Received: {save_freq!r}.")
        self.backup_dir = os.fspath(backup_dir)
        self.save_freq, self.delete_checkpoint = save_freq, delete_checkpoint
        self.resume_epoch: int | None = None
        self._path = os.path.join(self.backup_dir, "latest.state.h5")
        self._saved: dict[str, Any] | None = None
        self._epoch = 0
        self._batches = 0

    def on_train_begin(self, logs=None):
        self.resume_epoch = None
        self._saved = None
        if os.path.exists(self._path):
            from lamina.saving.state_file import load_state

            self._saved = load_state(self._path)
            self.resume_epoch = int(self._saved["epoch"]) + 1

    def restore_after_train_begin(self, callbacks: list[Callback]) -> None:
        """Called by CallbackList after every callback's on_train_begin (so nothing resets what
        is restored here)."""
        if self._saved is None:
            return
        state = self._saved
        self.model.load_state_dict(state["model"])
        self.model.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"]["torch"])
        if torch.cuda.is_available() and state["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        np.random.set_state(state["rng"]["numpy"])
        version, internal, gauss = state["rng"]["python"]
        random.setstate((version, tuple(internal), gauss))
        for key, callback in _keyed(callbacks, self):
            saved = state["callbacks"].get(key)
            if saved is not None:
                callback.load_state_dict(saved)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def backup_after_epoch_end(self, epoch: int, callbacks: list[Callback]) -> None:
        """Called by CallbackList after every callback's on_epoch_end (History included)."""
        if self.save_freq == "epoch":
            self._backup(epoch, callbacks)

    def on_train_batch_end(self, batch, logs=None):
        # A mid-epoch backup resumes at the start of the epoch it was taken in.
        if self.save_freq != "epoch":
            self._batches += 1
            if self._batches % self.save_freq == 0:
                self._backup(self._epoch - 1, self._callbacks)

    def attach(self, callbacks: list[Callback]) -> None:
        """Called by CallbackList with the full list, whose states the backup includes."""
        self._callbacks = callbacks

    def _backup(self, epoch: int, callbacks: list[Callback]) -> None:
        from lamina.saving.state_file import save_state

        numpy_state = np.random.get_state()
        python_state = random.getstate()
        state = {
            "epoch": epoch,
            "model": {k: v for k, v in self.model.state_dict().items()},
            "optimizer": self.model.optimizer.state_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                "numpy": numpy_state,
                "python": [python_state[0], list(python_state[1]), python_state[2]],
            },
            "callbacks": {key: c.state_dict() for key, c in _keyed(callbacks, self)},
        }
        save_state(self._path, state)

    def on_train_end(self, logs=None):
        if self.delete_checkpoint and os.path.isdir(self.backup_dir):
            shutil.rmtree(self.backup_dir, ignore_errors=True)


def _keyed(callbacks: list[Callback], exclude: Callback) -> list[tuple[str, Callback]]:
    """Key each callback by class name and occurrence ('History:0'), so a resumed run matches
    them even when its list differs (a crash-injecting callback gone, say)."""
    seen: dict[str, int] = {}
    keyed = []
    for callback in callbacks:
        if callback is exclude:
            continue
        name = type(callback).__name__
        keyed.append((f"{name}:{seen.get(name, 0)}", callback))
        seen[name] = seen.get(name, 0) + 1
    return keyed
