"""Keras 3's progress output for fit, evaluate and predict: `Epoch 3/10` (when there is more than
one epoch), then Keras's progress line (`lamina.utils.Progbar`) with the metrics sorted by name.

Metric values stay on the device between redraws: the bar reads them back only when it draws a
line (at most every `interval` seconds, and once at the end), not once per step.
"""

from __future__ import annotations

import sys
from typing import Any, Mapping

from lamina._registry import register
from lamina.callbacks.callback import Callback
from lamina.utils.progbar import Progbar


def _sorted_logs(logs: Mapping[str, Any] | None) -> dict[str, Any]:
    # Keras sorts the logs by name before any callback sees them; ours arrive in metric order.
    return {key: logs[key] for key in sorted(logs)} if logs else {}


@register("ProgbarLogger")
class ProgbarLogger(Callback):
    """Prints progress and metrics to stdout, as Keras does.

    Args:
        count_mode: accepted for Keras 2 code; steps are always counted.
        mode: the loop the engine made this logger for (`"train"`, `"test"`, `"predict"`).
        interval: minimum seconds between two redraws of the live line. Keras redraws every
            0.05 s; each redraw reads the metrics back from the device, so Lamina waits
            0.25 s (pass 0.05 for Keras's cadence; the lines themselves are the same).
    """

    _chief_only = True  # in a distributed run only rank 0 prints

    def __init__(self, count_mode: str = "steps", mode: str = "train", interval: float = 0.25):
        super().__init__()
        if count_mode not in ("steps", "samples"):
            raise ValueError(
                f'`count_mode` must be "steps" or "samples". Received: count_mode={count_mode!r}.'
            )
        self.mode = mode
        self.interval = interval
        self.progbar: Progbar | None = None
        self.seen = 0
        # Inside fit, the validation pass is silent, as in Keras.
        self._called_in_fit = False

    @property
    def verbose(self) -> int:
        verbose = self.params.get("verbose", 1)
        return 1 if verbose == "auto" else verbose

    def on_train_begin(self, logs=None):
        self._called_in_fit = True

    def on_train_end(self, logs=None):
        self._called_in_fit = False

    def on_epoch_begin(self, epoch, logs=None):
        self._start()
        epochs = self.params.get("epochs", 1)
        if self.verbose and epochs > 1:
            sys.stdout.write(f"Epoch {epoch + 1}/{epochs}\n")
            sys.stdout.flush()

    def on_test_begin(self, logs=None):
        if not self._called_in_fit:
            self._start()

    def on_predict_begin(self, logs=None):
        self._start()

    def on_train_batch_end(self, batch, logs=None):
        self._update(batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        if not self._called_in_fit:
            self._update(batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._update(batch, None)  # the predictions are no metrics

    def on_epoch_end(self, epoch, logs=None):
        self._finish(logs)

    def on_test_end(self, logs=None):
        if not self._called_in_fit:
            self._finish(logs)

    def on_predict_end(self, logs=None):
        self._finish(None)

    def _start(self) -> None:
        self.seen = 0
        self.progbar = Progbar(self.params.get("steps"), verbose=self.verbose,
                               interval=self.interval, stateless_metrics=())

    def _update(self, batch: int, logs: Mapping[str, Any] | None) -> None:
        if self.progbar is None:
            self._start()
        self.seen = batch + 1
        if self.verbose == 1:
            self.progbar.update_lazily(self.seen, lambda: _sorted_logs(logs), finalize=False)

    def _finish(self, logs: Mapping[str, Any] | None) -> None:
        if self.progbar is None:
            self._start()
        if self.progbar.target is None:
            self.progbar.target = self.seen
        self.progbar.update_lazily(self.progbar.target, lambda: _sorted_logs(logs), finalize=True)
