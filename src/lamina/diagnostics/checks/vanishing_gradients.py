"""Gradients that shrink by orders of magnitude from the output layer towards the input."""

from __future__ import annotations

import numpy as np

from lamina.diagnostics.checks._common import depth_profile, hidden_names, initializer_remedy
from lamina.diagnostics.doctor import Diagnosis, Run, fmt, layer_range

CODE = "vanishing_gradients"
# Per-element gradient RMS of the input-side weighted layer below the output layer's by this
# many powers of ten (medians over the sampled steps). A healthy net stays within about one.
ORDERS = 3.0


def check(run: Run) -> list[Diagnosis]:
    profile = depth_profile(run)
    if profile is None:
        return []
    kernels, median, ratios = profile
    orders = np.log10(median[-1] / max(median[0], 1e-45))
    if not orders >= ORDERS:
        return []
    names = [run.units[i]["name"] for i in kernels]
    crossed = np.flatnonzero(ratios >= ORDERS)
    epoch = int(run.sample_epoch[crossed[0]]) if len(crossed) else 0
    faded = [n for n, g in zip(names[:-1], median[:-1]) if g < median[-1] / 10]
    remedies = []
    squashing = hidden_names(run, ("sigmoid", "tanh"))
    if squashing:
        kinds = {u.get("activation") for u in run.units if u["name"] in squashing}
        kinds |= {t["kind"] for t in run.model.get("taps", []) if t["name"] in squashing}
        kinds = "/".join(sorted(kinds & {"sigmoid", "tanh"}))
        if run.model.get("wrapped"):
            remedies.append(f"replace the {kinds} modules {layer_range(squashing)} with "
                            "nn.ReLU()")
        else:
            remedies.append(f"replace {kinds} with relu in layers {layer_range(squashing)}")
    remedies.append(initializer_remedy(run, names[:-1], "he_normal")
                    or "use he_normal initialization with relu layers")
    if not run.model.get("batchnorm"):
        remedies.append(f"add BatchNormalization after {layer_range(names[:-1])}")
    if len(kernels) >= 6 and not run.model.get("residual"):
        remedies.append("add residual connections (layers.Add) around blocks of 2-3 layers")
    evidence = (
        f"gradient RMS per weight falls from {fmt(median[-1])} at {names[-1]} (output side) to "
        f"{fmt(median[0])} at {names[0]} (input side): {orders:.1f} orders of magnitude over "
        f"{len(kernels)} weighted layers; {len(faded)} layers are more than 10x below the "
        "output layer"
    )
    return [Diagnosis(CODE, "warning", evidence, remedies, epoch=epoch, layer=names[0])]
