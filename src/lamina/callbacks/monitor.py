"""`monitor`, `mode` and `min_delta`, decided once for every callback that watches a metric."""

from __future__ import annotations

import math
import warnings
from typing import Any


class Monitor:
    """Tracks the best value of one logged quantity.

    `mode='auto'` minimizes, except for names that read as scores (accuracy, AUC, precision,
    recall, F-scores), which it maximizes, as Keras does.
    """

    _MAXIMIZED = ("acc", "accuracy", "auc", "precision", "recall", "f1", "fbeta")

    def __init__(self, monitor: str, mode: str = "auto", min_delta: float = 0.0,
                 baseline: float | None = None, owner: str = "callback"):
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"{owner}: `mode` must be 'auto', 'min' or 'max'. Received: mode={mode!r}.")
        self.name = monitor
        self.owner = owner
        if mode == "auto":
            bare = monitor.removeprefix("val_")
            mode = "max" if any(bare == m or bare.endswith("_" + m) or bare.startswith(m)
                                for m in self._MAXIMIZED) else "min"
        self.mode = mode
        self.min_delta = abs(min_delta)
        self.baseline = baseline
        self.reset()

    def reset(self) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf

    def improved(self, current: float, reference: float | None = None) -> bool:
        reference = self.best if reference is None else reference
        if self.mode == "min":
            return current < reference - self.min_delta
        return current > reference + self.min_delta

    def value(self, logs: dict[str, Any] | None) -> float | None:
        logs = logs or {}
        if self.name not in logs:
            warnings.warn(
                f"{self.owner} is conditioned on metric {self.name!r}, which is not available. "
                f"Available metrics are: {', '.join(logs) or 'none'}.", stacklevel=3)
            return None
        return float(logs[self.name])

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state["best"]
