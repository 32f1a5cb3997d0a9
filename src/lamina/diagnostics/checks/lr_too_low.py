"""Weights that barely move and a loss that barely falls."""

from __future__ import annotations

import numpy as np

from lamina.diagnostics.doctor import Diagnosis, Run, fmt

CODE = "lr_too_low"
# Median per-step update/weight norm ratio of the weighted layers below this (about 1e-3 is
# the usual healthy value) ...
UPDATE_RATIO = 1e-4
# ... and the best epoch loss still above this fraction of the first step's.
NO_PROGRESS = 0.9
MIN_EPOCHS = 2


def check(run: Run) -> list[Diagnosis]:
    kernels = run.kernel_units()
    losses = run.series("loss")
    finite = losses[np.isfinite(losses)]
    if not kernels or len(finite) < MIN_EPOCHS or not len(run.update_ratio) \
            or not len(run.sample_loss) or not np.isfinite(run.sample_loss[0]):
        return []
    ratios = run.update_ratio[:, kernels]
    # A ratio of exactly 0 is a layer without gradient (dead units, a frozen path), not a
    # small step: those are other findings.
    moving = ratios[np.isfinite(ratios) & (ratios > 0)]
    ratio = float(np.median(moving)) if len(moving) else None
    initial = run.sample_loss[0]
    if ratio is None or ratio >= UPDATE_RATIO or initial <= 0 \
            or finite.min() < NO_PROGRESS * initial:
        return []
    rate = run.optimizer.get("learning_rate")
    remedies = [f"raise {run.learning_rate_text()} 10-100x (e.g. to {rate * 30:g}; Adam's "
                "default is 0.001)" if isinstance(rate, (int, float)) else
                "raise the learning rate 10-100x"]
    remedies.append("find the rate with a short range test: train a few hundred steps while "
                    "raising it exponentially and take ~1/10 of where the loss falls fastest")
    evidence = (f"each step moved the weights by a median {fmt(ratio)} of their norm (healthy: "
                f"~1e-3), and after {len(finite)} epochs the best loss {fmt(finite.min())} is "
                f"{finite.min() / initial:.0%} of the first step's {fmt(initial)}")
    return [Diagnosis(CODE, "warning", evidence, remedies, epoch=MIN_EPOCHS - 1)]
