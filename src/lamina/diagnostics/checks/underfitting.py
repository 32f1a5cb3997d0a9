"""Training and validation both poor and flat, with a model too small for the task."""

from __future__ import annotations

import numpy as np

from lamina.diagnostics.checks._common import class_shares, loss_key
from lamina.diagnostics.doctor import Diagnosis, Run, fmt

CODE = "underfitting"
# Poor: the final loss at least this fraction of a constant predictor's (the label
# distribution's entropy for cross-entropy, the label variance for MSE).
POOR = 0.5
# Flat: the loss moved less than this (relative) over the second half of the epochs.
FLAT = 0.05
MIN_EPOCHS = 3


def _baseline(run: Run) -> float | None:
    key, labels = loss_key(run), run.labels
    if labels is None:
        return None
    if key in ("mean_squared_error",):
        return labels["var"]
    if key in ("binary_crossentropy",):
        p = min(max(labels["mean"], 1e-7), 1 - 1e-7)
        return float(-(p * np.log(p) + (1 - p) * np.log(1 - p)))
    if key in ("sparse_categorical_crossentropy", "categorical_crossentropy"):
        shares = class_shares(run)
        if shares is None:
            return None
        shares = shares[shares > 0]
        return float(-(shares * np.log(shares)).sum())
    return None


def _narrowest(run: Run) -> tuple[str, int] | None:
    """The narrowest hidden weighted layer when the model is small: no hidden layer at all
    (a linear model), or a hidden layer narrower than half the outputs (or than 3 units)."""
    kernels = run.kernel_units()
    if not kernels:
        return None
    if len(kernels) == 1:
        unit = run.units[kernels[0]]
        return unit["name"], 0
    hidden = [run.units[i] for i in kernels[:-1] if run.units[i].get("width")]
    if not hidden:
        return None
    unit = min(hidden, key=lambda u: u["width"])
    limit = max(3, (run.output_width or 1) // 2)
    return (unit["name"], unit["width"]) if unit["width"] < limit else None


def check(run: Run) -> list[Diagnosis]:
    train, val = run.series("loss"), run.series("val_loss")
    if len(train) < MIN_EPOCHS or not np.isfinite(train).all():
        return []
    baseline = _baseline(run)
    small = _narrowest(run)
    if not baseline or small is None:
        return []
    half = train[len(train) // 2]
    moved = abs(half - train[-1]) / max(abs(half), 1e-12)
    poor = train[-1] >= POOR * baseline and (not len(val) or not np.isfinite(val[-1])
                                             or val[-1] >= POOR * baseline)
    if not poor or moved >= FLAT:
        return []
    name, width = small
    if width == 0:
        capacity = f"the model is linear (one weighted layer, {name})"
        grow = "add hidden layers, e.g. Dense(64, activation='relu') before the output"
    else:
        capacity = f"its narrowest hidden layer {name} has {width} units"
        grow = f"widen {name} from {width} to 64+ units, or add hidden layers"
    remedies = [f"increase capacity: {grow}", "train longer once the model can fit the data"]
    if run.model.get("dropout"):
        remedies.append("reduce regularization (lower the Dropout rates)")
    remedies.append("add features that carry the signal")
    against = f" and val_loss {fmt(val[-1])}" if len(val) and np.isfinite(val[-1]) else ""
    evidence = (f"loss {fmt(train[-1])}{against} against {fmt(baseline)} for a constant "
                f"prediction ({train[-1] / baseline:.0%}); the loss moved {moved:.1%} over "
                f"the last {len(train) - len(train) // 2} epochs; {capacity}")
    return [Diagnosis(CODE, "warning", evidence, remedies, epoch=len(train) - 1, layer=name)]
