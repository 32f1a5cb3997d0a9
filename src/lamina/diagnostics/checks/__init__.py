"""One check per common training problem; each is `check(run) -> list[Diagnosis]` over a run
record (see `lamina.diagnostics.doctor.Run`), with its thresholds as module constants."""

from __future__ import annotations

from lamina.diagnostics.checks import (
    class_imbalance,
    dead_relu,
    exploding_gradients,
    label_problems,
    lr_too_high,
    lr_too_low,
    nonfinite_inputs,
    overfitting,
    saturated_activations,
    underfitting,
    unnormalized_inputs,
    vanishing_gradients,
)

_MODULES = (vanishing_gradients, exploding_gradients, dead_relu, saturated_activations,
            lr_too_high, lr_too_low, overfitting, underfitting, unnormalized_inputs,
            class_imbalance, label_problems, nonfinite_inputs)
CHECKS = [(module.CODE, module.check) for module in _MODULES]
CODES = tuple(code for code, _ in CHECKS)
