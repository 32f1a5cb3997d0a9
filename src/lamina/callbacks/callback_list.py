"""`CallbackList`: the engine's one handle on the callbacks of a `fit`, `evaluate` or `predict`.

Per-batch hooks are called only when some callback overrides them, and batch logs hold device
tensors that are read (synced) only by whoever looks at them.
"""

from __future__ import annotations

from typing import Any, Iterable

from lamina.callbacks.callback import Callback, History
from lamina.callbacks.progbar_logger import ProgbarLogger
from lamina.distribution import is_chief

_BATCH_HOOKS = {
    "wants_batch_begin": ("on_train_batch_begin", "on_batch_begin"),
    "wants_batch_end": ("on_train_batch_end", "on_batch_end"),
    "wants_test_batch": ("on_test_batch_begin", "on_test_batch_end"),
    "wants_predict_batch": ("on_predict_batch_begin", "on_predict_batch_end"),
}


def _overrides(callback: Callback, names: tuple[str, ...]) -> bool:
    return any(name in callback.__dict__ or getattr(type(callback), name) is not getattr(Callback, name)
               for name in names)


class CallbackList:
    """Dispatches each hook to every callback, in order."""

    def __init__(self, callbacks: Iterable[Callback] | None = None, add_history: bool = False,
                 add_progbar: bool = False, model=None, mode: str = "train", **params: Any):
        self.callbacks = list(callbacks or [])
        for callback in self.callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(
                    f"callbacks must be lamina.callbacks.Callback instances. Received: {callback!r}."
                )
        self.history: History | None = None
        if add_history:
            existing = [c for c in self.callbacks if isinstance(c, History)]
            self.history = existing[0] if existing else History()
            if not existing:
                self.callbacks.append(self.history)
        if add_progbar:
            if not any(isinstance(c, ProgbarLogger) for c in self.callbacks):
                self.callbacks.insert(0, ProgbarLogger(mode=mode))
        if self.callbacks and not is_chief():  # no callbacks (predict, verbose=0): no query
            # Rank 0 of a distributed run prints and writes the logs; the others train quietly.
            self.callbacks = [c for c in self.callbacks if not getattr(c, "_chief_only", False)]
        # A callback that backs up the others' states (BackupAndRestore) runs after them at
        # every hook: its backups then include this step's updates, and what it restores at
        # train begin is not reset by another callback's on_train_begin.
        self.callbacks.sort(key=lambda c: getattr(c, "_runs_last", False))
        self.model = model
        params = {"verbose": params.get("verbose", 1), "epochs": params.get("epochs", 1),
                  "steps": params.get("steps")}
        for callback in self.callbacks:
            callback.set_model(model)
            callback.set_params(params)
        for callback in self.callbacks:
            if hasattr(callback, "attach"):
                callback.attach(self.callbacks)
        for flag, names in _BATCH_HOOKS.items():
            setattr(self, flag, any(_overrides(c, names) for c in self.callbacks))

    def initial_epoch(self, requested: int) -> int:
        """The epoch to start at: a callback restoring an interrupted run may move it."""
        epoch = requested
        for callback in self.callbacks:
            resume = getattr(callback, "resume_epoch", None)
            if resume is not None:
                epoch = max(epoch, resume)
        return epoch

    def epoch_batches(self, epoch: int, data) -> tuple[int, Any]:
        """The epoch's first batch index and its batches (from `data`, a training adapter):
        0 and all of them, unless a callback resumes an interrupted epoch part-way."""
        for callback in self.callbacks:
            resume = getattr(callback, "epoch_batches", None)
            if resume is not None:
                return resume(epoch, data)
        return 0, data.batches()

    def _call(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(*args)

    def on_train_begin(self, logs=None): self._call("on_train_begin", logs)
    def on_train_end(self, logs=None): self._call("on_train_end", logs)
    def on_epoch_begin(self, epoch, logs=None): self._call("on_epoch_begin", epoch, logs)
    def on_epoch_end(self, epoch, logs=None): self._call("on_epoch_end", epoch, logs)

    def on_train_batch_begin(self, batch, logs=None): self._call("on_train_batch_begin", batch, logs)
    def on_train_batch_end(self, batch, logs=None): self._call("on_train_batch_end", batch, logs)
    def on_test_begin(self, logs=None): self._call("on_test_begin", logs)
    def on_test_end(self, logs=None): self._call("on_test_end", logs)
    def on_test_batch_begin(self, batch, logs=None): self._call("on_test_batch_begin", batch, logs)
    def on_test_batch_end(self, batch, logs=None): self._call("on_test_batch_end", batch, logs)
    def on_predict_begin(self, logs=None): self._call("on_predict_begin", logs)
    def on_predict_end(self, logs=None): self._call("on_predict_end", logs)
    def on_predict_batch_end(self, batch, logs=None): self._call("on_predict_batch_end", batch, logs)
