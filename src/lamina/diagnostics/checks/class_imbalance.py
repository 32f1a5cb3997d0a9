"""A skewed label distribution, and the accuracy of always predicting the majority class."""

from __future__ import annotations

import numpy as np

from lamina.diagnostics.checks._common import class_shares
from lamina.diagnostics.doctor import Diagnosis, Run

CODE = "class_imbalance"
# Largest over smallest (present) class share: 1:5 and beyond.
RATIO = 5.0
# Enough sampled labels that the ratio is not sampling noise: this many per class.
PER_CLASS = 10
# An error when the model's accuracy is no more than this above the majority baseline.
MARGIN = 0.02


def check(run: Run) -> list[Diagnosis]:
    shares = class_shares(run)
    if shares is None or run.labels["rows"] < PER_CLASS * len(shares):
        return []
    present = np.flatnonzero(shares > 0)
    if len(present) < 2:
        return []
    major = int(present[np.argmax(shares[present])])
    minor = int(present[np.argmin(shares[present])])
    ratio = shares[major] / shares[minor]
    if ratio < RATIO:
        return []
    accuracy_key = next((k for k in ("val_accuracy", "accuracy", "val_binary_accuracy",
                                     "binary_accuracy", "val_sparse_categorical_accuracy",
                                     "sparse_categorical_accuracy") if k in run.history), None)
    accuracy = run.series(accuracy_key)[-1] if accuracy_key else None
    beats = ""
    severity = "warning"
    if accuracy is not None and np.isfinite(accuracy):
        beats = f"; the model's {accuracy_key}: {accuracy:.3f}"
        if accuracy <= shares[major] + MARGIN:
            severity = "error"
            beats += " (no better than that)"
    weights = {int(c): round(float(1 / (len(present) * shares[c])), 2) for c in present}
    evidence = (f"class {major} is {shares[major]:.1%} of {run.labels['rows']:,} sampled labels "
                f"and class {minor} {shares[minor]:.1%} ({ratio:.0f}:1); always predicting "
                f"class {major} scores {shares[major]:.3f} accuracy, the score to beat{beats}")
    remedies = [f"weight the classes in fit: class_weight={weights}",
                "or resample: oversample the rare classes / undersample the common ones",
                "judge the model by precision, recall, F1 or AUC (metrics=[...]) rather than "
                "accuracy"]
    if len(shares) == 2:
        remedies.append("or use loss='binary_focal_crossentropy'")
    return [Diagnosis(CODE, severity, evidence, remedies, epoch=0)]
