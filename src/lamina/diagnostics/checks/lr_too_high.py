"""A loss that diverges, or jumps around without making progress."""

from __future__ import annotations

import numpy as np

from lamina.diagnostics.doctor import Diagnosis, Run, fmt

CODE = "lr_too_high"
# Diverging: the last epoch's loss this many times the first step's.
DIVERGENCE = 1.5
# No progress: the best epoch loss above this fraction of the first step's loss ...
NO_PROGRESS = 0.9
# ... while some epoch or sampled step reached this many times the first step's loss, or the
# sampled losses of the run vary by this coefficient of variation.
SPIKE = 2.0
VOLATILITY = 0.25
MIN_EPOCHS = 2


def check(run: Run) -> list[Diagnosis]:
    losses = run.series("loss")
    finite = losses[np.isfinite(losses)]
    samples = run.sample_loss[np.isfinite(run.sample_loss)] if len(run.sample_loss) else \
        np.zeros(0)
    if len(finite) < MIN_EPOCHS or not len(samples) or samples[0] <= 0:
        return []
    initial = samples[0]
    rate = run.optimizer.get("learning_rate")
    remedies = [f"lower {run.learning_rate_text()} to {rate / 10:g} or less"
                if isinstance(rate, (int, float)) else "lower the learning rate 10x"]
    remedies += ["add ReduceLROnPlateau(monitor='val_loss', factor=0.5, patience=3) or a "
                 "warm-up schedule", "clip gradients (clipnorm=1.0)"]
    if finite[-1] >= DIVERGENCE * initial:
        evidence = (f"the loss diverged: {fmt(initial)} at the first step, {fmt(finite[-1])} in "
                    f"the last epoch ({finite[-1] / initial:.1f}x)")
        epoch = int(np.flatnonzero(losses >= DIVERGENCE * initial)[0])
        return [Diagnosis(CODE, "error", evidence, remedies, epoch=epoch)]
    peak = max(np.nanmax(samples), finite.max())
    volatility = samples[1:].std() / max(samples[1:].mean(), 1e-12) if len(samples) > 2 else 0
    if finite.min() >= NO_PROGRESS * initial and (peak >= SPIKE * initial
                                                  or volatility >= VOLATILITY):
        evidence = (f"no progress: the best epoch loss {fmt(finite.min())} is "
                    f"{finite.min() / initial:.0%} of the first step's {fmt(initial)}, while "
                    f"the loss jumped to {fmt(peak)} (sampled losses vary by "
                    f"{volatility:.0%}) with {run.learning_rate_text()}")
        return [Diagnosis(CODE, "warning", evidence, remedies, epoch=len(finite) - 1)]
    return []
