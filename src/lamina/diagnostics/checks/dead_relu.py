"""ReLU units that never fire over a window of sampled batches."""

from __future__ import annotations

from lamina.diagnostics.doctor import Diagnosis, Run

CODE = "dead_relu"
# A layer is reported when at least this fraction of its units gave no positive output on any
# sample of the last epoch's sampled batches (a few percent is normal; half is not).
DEAD_FRACTION = 0.5


def check(run: Run) -> list[Diagnosis]:
    if not run.epoch_stats:
        return []
    last = run.epoch_stats[-1]
    by_name = {u["name"]: u for u in run.units}
    found = []
    for name, dead in last.get("dead", {}).items():
        if dead is None or dead < DEAD_FRACTION:
            continue
        epoch = next(e["epoch"] for e in run.epoch_stats
                     if (e.get("dead", {}).get(name) or 0) >= DEAD_FRACTION)
        unit = by_name.get(name, {})
        remedies = [f"use LeakyReLU (or ELU) instead of relu in {name}"]
        rate = run.optimizer.get("learning_rate")
        if isinstance(rate, (int, float)):
            remedies.append(f"lower {run.learning_rate_text()} (large steps push units into "
                            "the dead zone)")
        bias = unit.get("bias_initializer")
        if bias not in (None, "Zeros", "zeros"):
            remedies.append(f"initialize {name}'s bias to zeros (now {bias}) and its kernel "
                            "with he_normal")
        else:
            remedies.append(f"use kernel_initializer='he_normal' in {name}")
        if not run.model.get("batchnorm"):
            remedies.append(f"add BatchNormalization before {name}'s activation")
        evidence = (f"{dead:.0%} of {name}'s units were never active (output > 0) over the "
                    f"{len(last.get('steps', []))} sampled batches of epoch {last['epoch'] + 1}")
        found.append(Diagnosis(CODE, "warning", evidence, remedies, epoch=epoch, layer=name))
    return found
