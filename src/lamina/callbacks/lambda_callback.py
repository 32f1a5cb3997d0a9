"""LambdaCallback: a callback made of functions."""

from __future__ import annotations

from typing import Callable

from lamina._registry import register
from lamina.callbacks.callback import Callback

_HOOKS = ("on_epoch_begin", "on_epoch_end", "on_train_begin", "on_train_end",
          "on_train_batch_begin", "on_train_batch_end", "on_batch_begin", "on_batch_end")


@register("LambdaCallback")
class LambdaCallback(Callback):
    """`LambdaCallback(on_epoch_end=lambda epoch, logs: ...)`; any Keras hook name works."""

    def __init__(self, **hooks: Callable):
        super().__init__()
        unknown = set(hooks) - set(_HOOKS) - {
            "on_test_begin", "on_test_end", "on_predict_begin", "on_predict_end"}
        if unknown:
            raise ValueError(f"Unknown hooks {sorted(unknown)}. Valid hooks: {', '.join(_HOOKS)}.")
        # Bind on the instance so CallbackList sees which batch hooks are really implemented.
        for name, function in hooks.items():
            if function is not None:
                setattr(self, name, function)
        self._hooks = {k for k, v in hooks.items() if v is not None}
