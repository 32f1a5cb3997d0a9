"""Gradients that grow towards the input or over time, loss spikes, and non-finite steps."""

from __future__ import annotations

import numpy as np

from lamina.diagnostics.checks._common import depth_profile, initializer_remedy
from lamina.diagnostics.doctor import Diagnosis, Run, fmt

CODE = "exploding_gradients"
# Input-side gradient RMS above the output layer's by this many powers of ten.
ORDERS = 3.0
# The largest gradient RMS of a later sampled step over the median of the first three.
GROWTH = 1e3


def _remedies(run: Run, names: list[str]) -> list[str]:
    rate = run.optimizer.get("learning_rate")
    remedies = ["clip gradients: pass clipnorm=1.0 (or global_clipnorm=1.0) to the optimizer"]
    remedies.append(f"lower {run.learning_rate_text()} to {rate / 10:g}"
                    if isinstance(rate, (int, float)) else "lower the learning rate")
    init = initializer_remedy(run, names[:-1], "he_normal")
    if init:
        remedies.append(init)
    if not run.model.get("batchnorm"):
        remedies.append("add BatchNormalization between the weighted layers")
    remedies.append("regularize the weights (kernel_regularizer=regularizers.l2(1e-4))")
    return remedies


def check(run: Run) -> list[Diagnosis]:
    names = [run.units[i]["name"] for i in run.kernel_units()]
    for event in run.events:
        if event.get("kind") == "nonfinite_step":
            return [Diagnosis(CODE, "error", event["message"], _remedies(run, names),
                              epoch=event.get("epoch"), layer=event.get("layer"))]
    found = []
    if len(run.grad_rms):
        bad = ~np.isfinite(run.grad_rms)
        if bad.any():
            sample = int(np.flatnonzero(bad.any(axis=1))[0])
            unit = int(np.flatnonzero(bad[sample])[0])
            layer = run.units[unit]["name"]
            evidence = (f"non-finite gradients at {layer} (the first weighted layer, in "
                        f"forward order, to go NaN/Inf) in training batch "
                        f"{int(run.sample_batch[sample])} of epoch "
                        f"{int(run.sample_epoch[sample]) + 1}")
            return [Diagnosis(CODE, "error", evidence, _remedies(run, names),
                              epoch=int(run.sample_epoch[sample]), layer=layer)]
    profile = depth_profile(run)
    if profile is not None:
        kernels, median, _ = profile
        orders = np.log10(max(median[0], 1e-45) / median[-1])
        if orders >= ORDERS:
            evidence = (f"gradient RMS per weight grows from {fmt(median[-1])} at {names[-1]} "
                        f"(output side) to {fmt(median[0])} at {names[0]} (input side): "
                        f"{orders:.1f} orders of magnitude over {len(kernels)} weighted layers")
            found.append(Diagnosis(CODE, "warning", evidence, _remedies(run, names), epoch=0,
                                   layer=names[0]))
    if not found and len(run.grad_rms) >= 6:
        peak = np.nanmax(run.grad_rms, axis=1)
        start = np.median(peak[:3])
        later = int(np.nanargmax(peak[3:])) + 3 if np.isfinite(peak[3:]).any() else None
        if later is not None and start > 0 and peak[later] >= GROWTH * start:
            unit = int(np.nanargmax(run.grad_rms[later]))
            evidence = (f"the largest gradient RMS grew from {fmt(start)} (first sampled "
                        f"steps) to {fmt(peak[later])} at {run.units[unit]['name']} by epoch "
                        f"{int(run.sample_epoch[later]) + 1}")
            if len(run.sample_loss) and np.isfinite(run.sample_loss).any():
                evidence += (f"; sampled loss peaked at {fmt(np.nanmax(run.sample_loss))} "
                             f"(first: {fmt(run.sample_loss[0])})")
            found.append(Diagnosis(CODE, "warning", evidence, _remedies(run, names),
                                   epoch=int(run.sample_epoch[later]),
                                   layer=run.units[unit]["name"]))
    return found
