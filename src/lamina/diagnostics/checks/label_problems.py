"""Targets that do not fit the loss: one-hot vs sparse, values outside the loss's range."""

from __future__ import annotations

from lamina.diagnostics.checks._common import loss_key
from lamina.diagnostics.doctor import Diagnosis, Run, fmt

CODE = "label_problems"
# How far one-hot rows may sum from 1 (label smoothing keeps the sum at 1).
ROW_SUM_TOLERANCE = 1e-3

_RANGES = {  # loss: (low, high, what the loss expects)
    "binary_crossentropy": (0.0, 1.0, "targets in [0, 1]"),
    "binary_focal_crossentropy": (0.0, 1.0, "targets in [0, 1]"),
    "categorical_crossentropy": (0.0, 1.0, "one-hot (or probability) rows"),
    "categorical_focal_crossentropy": (0.0, 1.0, "one-hot (or probability) rows"),
    "kl_divergence": (0.0, 1.0, "probabilities"),
    "poisson": (0.0, float("inf"), "counts >= 0"),
    "hinge": (-1.0, 1.0, "labels -1/1 (or 0/1)"),
    "squared_hinge": (-1.0, 1.0, "labels -1/1 (or 0/1)"),
}


def check(run: Run) -> list[Diagnosis]:
    for event in run.events:
        if event.get("kind") == "label_error":
            return [Diagnosis(CODE, "error", event["message"],
                              ["make the labels match the loss: integer class indices with "
                               "'sparse_categorical_crossentropy', one-hot rows with "
                               "'categorical_crossentropy' (lamina.utils.to_categorical)",
                               "give the output layer one unit per class"],
                              epoch=event.get("epoch"))]
    labels, key = run.labels, loss_key(run)
    if labels is None or key not in _RANGES:
        return []
    low, high, expects = _RANGES[key]
    problems, remedies = [], []
    if labels["min"] < low or labels["max"] > high:
        problems.append(f"the targets range over [{fmt(labels['min'])}, {fmt(labels['max'])}] "
                        f"but {key} expects {expects}")
        if key.startswith("binary") and labels["non_integer"] == 0:
            remedies.append("map the two classes to 0 and 1 (e.g. y - y.min()), or use "
                            "'sparse_categorical_crossentropy' with a softmax output for more "
                            "than two classes")
        elif key.endswith("hinge"):
            remedies.append("use labels -1/1 (or 0/1) for the hinge loss")
        else:
            remedies.append(f"rescale the targets to {expects}")
    if key.startswith("categorical") and labels["shape"] and labels["shape"][-1] > 1 and (
            labels["row_sum_min"] < 1 - ROW_SUM_TOLERANCE
            or labels["row_sum_max"] > 1 + ROW_SUM_TOLERANCE):
        problems.append(f"target rows sum to {fmt(labels['row_sum_min'])}.."
                        f"{fmt(labels['row_sum_max'])}, not 1: {key} expects one class per "
                        "sample")
        remedies.append("for several labels per sample (multi-label) use "
                        "'binary_crossentropy' with a sigmoid output; otherwise one-hot encode "
                        "a single class per row")
    if not problems:
        return []
    evidence = "; ".join(problems) + f" (over {labels['rows']:,} sampled rows)"
    return [Diagnosis(CODE, "error", evidence, remedies, epoch=0)]
