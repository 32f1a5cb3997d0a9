"""Keras-style progress: `Epoch 3/10`, a per-step bar with ETA and the running metrics.

The bar is tqdm's: its text bar in a terminal, its widget bar in a Jupyter notebook (JupyterLab,
VS Code, Colab; the text bar there when ipywidgets is missing). Metric values are read from the
device at most every `interval` seconds, so showing progress costs a handful of host syncs per
epoch, not one per step. `verbose=2` prints one line per epoch; when output is neither a terminal
nor a notebook, verbose=1 prints only each epoch's final line, as Keras does in logs.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from lamina._registry import register
from lamina.callbacks.callback import Callback


def format_logs(logs: dict[str, Any]) -> str:
    return " - ".join(f"{k}: {float(v):.4f}" for k, v in logs.items())


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel, whose output is no terminal yet shows bars.

    IPython is looked up, never imported: a kernel has always imported it already.
    """
    ipython = sys.modules.get("IPython")
    shell = getattr(ipython, "get_ipython", lambda: None)() if ipython is not None else None
    if shell is None:
        return False
    return "IPKernelApp" in getattr(shell, "config", {}) or hasattr(shell, "kernel")


def progress_bar_class() -> type:
    """tqdm's notebook widget bar in a Jupyter kernel that can show widgets, its text bar
    elsewhere (chosen at each bar, unlike `tqdm.auto`, which decides once at import)."""
    from tqdm.std import tqdm

    # Qt consoles and Spyder run kernels but draw no widgets (tqdm.autonotebook's rule).
    console = any(key == "QT_API" or key.startswith("SPYDER") for key in os.environ)
    if in_notebook() and not console:
        from tqdm import notebook

        if notebook.IProgress is not None:  # None when ipywidgets is not installed
            return notebook.tqdm
    return tqdm


@register("ProgbarLogger")
class ProgbarLogger(Callback):
    """Prints progress and metrics to stdout."""

    def __init__(self, count_mode: str = "steps", mode: str = "train", interval: float = 0.25):
        super().__init__()
        self.mode = mode
        self.interval = interval
        self._bar = None
        self._epoch_start = 0.0

    def _interactive(self) -> bool:
        return self.params.get("verbose", 1) == 1 and (sys.stdout.isatty() or in_notebook())

    def on_epoch_begin(self, epoch, logs=None):
        epochs = self.params.get("epochs", 1)
        if self.params.get("verbose", 1):
            print(f"Epoch {epoch + 1}/{epochs}", flush=True)
        self._start_bar()

    def on_test_begin(self, logs=None):
        if self.mode == "test":
            self._start_bar()

    def on_predict_begin(self, logs=None):
        self._start_bar()

    def _start_bar(self) -> None:
        self._epoch_start = time.monotonic()
        self._last = self._epoch_start
        self._done = 0
        if self._interactive():
            bar = progress_bar_class()
            self._bar = bar(total=self.params.get("steps"), unit="step", file=sys.stdout,
                            leave=True, dynamic_ncols=True, mininterval=self.interval)

    def on_train_batch_end(self, batch, logs=None):
        self._advance(batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        if self.mode == "test":
            self._advance(batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._advance(batch, None)

    def _advance(self, batch: int, logs: Any) -> None:
        if self._bar is None:
            return
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._bar.update(batch + 1 - self._done)
        self._done = batch + 1
        if logs:
            self._bar.set_postfix_str(format_logs(dict(logs.items())), refresh=False)
        self._last = now

    def _finish(self, logs: dict[str, Any] | None) -> None:
        elapsed = time.monotonic() - self._epoch_start
        steps = self.params.get("steps") or max(self._done, 1)
        timing = f"{elapsed:.0f}s {1000 * elapsed / max(steps, 1):.0f}ms/step"
        if self._bar is not None:
            self._bar.update(steps - self._done)
            if logs:
                self._bar.set_postfix_str(format_logs(logs), refresh=True)
            self._bar.close()
            self._bar = None
        elif self.params.get("verbose", 1):
            print(f"{steps}/{steps} - {timing}" + (f" - {format_logs(logs)}" if logs else ""),
                  flush=True)

    def on_epoch_end(self, epoch, logs=None):
        self._finish(logs)

    def on_test_end(self, logs=None):
        if self.mode == "test":
            self._finish(logs)

    def on_predict_end(self, logs=None):
        if self.mode == "predict":
            self._finish(None)
