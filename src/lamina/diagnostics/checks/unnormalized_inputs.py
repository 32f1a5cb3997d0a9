"""Input features far from unit scale (large values or offsets)."""

from __future__ import annotations

import numpy as np

from lamina.diagnostics.doctor import Diagnosis, Run, fmt

CODE = "unnormalized_inputs"
# A feature whose root mean square (sqrt(mean^2 + std^2)) exceeds this is far from the unit
# scale that initializers and default learning rates assume.
SCALE = 5.0


def check(run: Run) -> list[Diagnosis]:
    if run.model.get("normalizes_inputs") or run.model.get("embeds_inputs"):
        return []
    found = []
    for name, stats in run.inputs.items():
        mean, std = np.asarray(stats["mean"]), np.asarray(stats["std"])
        scale = np.sqrt(mean ** 2 + std ** 2)
        large = np.flatnonzero(scale > SCALE)
        if not len(large):
            continue
        worst = int(np.argmax(scale))
        evidence = (f"{len(large)} of {len(mean)} features of {name} (last axis) have a scale "
                    f"above {SCALE:g}; the largest, feature {worst}, has mean {fmt(mean[worst])} "
                    f"and std {fmt(std[worst])} (over {stats['count']:,} sampled rows)")
        remedies = [f"add layers.Normalization() as the model's first layer and call "
                    f".adapt({name}) on the training data (per-feature mean/std)",
                    f"or standardize {name} yourself: ({name} - mean) / std per feature"]
        if mean.min() >= 0 and (mean + 3 * std).max() > 100:
            remedies.append("for 8-bit images: layers.Rescaling(1/255) first")
        found.append(Diagnosis(CODE, "warning", evidence, remedies, epoch=0))
    return found
