"""Validation loss rising while the training loss keeps falling."""

from __future__ import annotations

import numpy as np

from lamina.diagnostics.doctor import Diagnosis, Run, fmt

CODE = "overfitting"
# The last validation loss at least this many times its minimum, ...
RISE = 1.25
# ... the epochs after the minimum on average this many times above it (not one noisy epoch),
SUSTAINED = 1.1
# ... at least this many epochs after the minimum, while the training loss fell by 10%.
AFTER = 2
TRAIN_FALL = 0.9


def check(run: Run) -> list[Diagnosis]:
    val, train = run.series("val_loss"), run.series("loss")
    if len(val) < 4 or len(train) != len(val) or not np.isfinite(val).all() \
            or not np.isfinite(train).all():
        return []
    best = int(np.argmin(val))
    last = len(val) - 1
    if last - best < AFTER or val[last] < RISE * val[best] \
            or val[best + 1:].mean() < SUSTAINED * val[best] \
            or train[last] > TRAIN_FALL * train[best]:
        return []
    gap = val[last] - train[last]
    remedies = [f"stop at the best epoch: EarlyStopping(monitor='val_loss', patience=3, "
                f"restore_best_weights=True) (best here: epoch {best + 1})"]
    if not run.model.get("dropout"):
        names = [run.units[i]["name"] for i in run.kernel_units()[:-1]]
        where = f" after {', '.join(names[-2:])}" if names else ""
        remedies.append(f"add Dropout(0.3){where}")
    remedies += ["add weight decay (AdamW(weight_decay=1e-4) or "
                 "kernel_regularizer=regularizers.l2(1e-4))",
                 "get more training data, or augment it (RandomFlip, RandomRotation, "
                 "RandomZoom for images)",
                 f"reduce the model's size ({run.model.get('params', 0):,} weights)"]
    evidence = (f"val_loss rose from {fmt(val[best])} (epoch {best + 1}) to {fmt(val[last])} "
                f"(epoch {last + 1}) while loss fell from {fmt(train[best])} to "
                f"{fmt(train[last])}; the gap is now {fmt(gap)}")
    return [Diagnosis(CODE, "warning", evidence, remedies, epoch=best + 1)]
