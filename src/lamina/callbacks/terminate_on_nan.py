"""TerminateOnNaN: stop at the first batch whose loss is NaN or infinite, and say which."""

from __future__ import annotations

import math

from lamina._registry import register
from lamina.callbacks.callback import Callback


@register("TerminateOnNaN")
class TerminateOnNaN(Callback):
    """Checks the loss after every batch (one host sync per batch, the price of the check).

    With it in the callbacks, `fit` checks every step and skips the update of a batch whose
    loss or gradients are NaN/Inf, so training stops with the model as it was before that
    batch (Keras would keep the NaN weights); without it, `fit` raises `NonFiniteError`.
    """

    def __init__(self):
        super().__init__()
        self.terminated_at: tuple[int, int] | None = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        value = float(loss)
        if math.isnan(value) or math.isinf(value):
            self.terminated_at = (self._epoch, batch)
            print(f"Epoch {self._epoch + 1}, batch {batch}: invalid loss {value}, terminating "
                  "training.")
            self.model.stop_training = True
