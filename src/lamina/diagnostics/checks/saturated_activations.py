"""Hidden sigmoid/tanh outputs pinned near their bounds, where their gradient is ~0."""

from __future__ import annotations

from lamina.diagnostics.collector import SATURATION_MARGIN
from lamina.diagnostics.doctor import Diagnosis, Run

CODE = "saturated_activations"
# Fraction of a hidden layer's sampled outputs within SATURATION_MARGIN of a bound (sigmoid's
# 0/1, tanh's -1/1). At initialization with scaled inputs it is a few percent.
SATURATED_FRACTION = 0.4


def check(run: Run) -> list[Diagnosis]:
    if not run.epoch_stats:
        return []
    hidden = {t["name"]: t["kind"] for t in run.model.get("taps", [])
              if t["kind"] in ("sigmoid", "tanh") and t.get("hidden")}
    last = run.epoch_stats[-1]
    found = []
    for name, fraction in last.get("saturated", {}).items():
        if name not in hidden or fraction is None or fraction < SATURATED_FRACTION:
            continue
        kind = hidden[name]
        epoch = next(e["epoch"] for e in run.epoch_stats
                     if (e.get("saturated", {}).get(name) or 0) >= SATURATED_FRACTION)
        bounds = "0 or 1" if kind == "sigmoid" else "-1 or 1"
        remedies = [f"replace {kind} with relu in {name}"]
        if not run.model.get("normalizes_inputs"):
            remedies.append("scale the inputs to about [-1, 1] (layers.Normalization() first)")
        unit = next((u for u in run.units if u["name"] == name), {})
        init = unit.get("initializer")
        if init not in (None, "glorot_uniform", "glorot_normal"):
            remedies.append(f"use kernel_initializer='glorot_uniform' in {name} (now {init})")
        if not run.model.get("batchnorm"):
            remedies.append(f"add BatchNormalization before {name}'s activation")
        evidence = (f"{fraction:.0%} of {name}'s {kind} outputs were within "
                    f"{SATURATION_MARGIN:g} of {bounds} over the sampled batches of epoch "
                    f"{last['epoch'] + 1}")
        found.append(Diagnosis(CODE, "warning", evidence, remedies, epoch=epoch, layer=name))
    return found
