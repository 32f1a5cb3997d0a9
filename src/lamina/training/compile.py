"""`model.compile`: resolve optimizer, losses and metrics, and remember the arguments so a saved
model can be compiled again when loaded (lamina.saving.compile_config writes and reads them)."""

from __future__ import annotations

import warnings
from typing import Any

from lamina import losses as losses_module
from lamina import metrics as metrics_module
from lamina import optimizers as optimizers_module
from lamina import tree
from lamina.saving.compile_config import LAMINA_COMPILE_ARGUMENTS
from lamina.training.trainer import Trainer


def compile_model(model, optimizer: Any = "rmsprop", loss: Any = None, loss_weights: Any = None,
                  metrics: Any = None, weighted_metrics: Any = None, run_eagerly: bool = False,
                  steps_per_execution: int = 1, jit_compile: Any = "auto",
                  auto_scale_loss: bool = True, **kwargs: Any) -> None:
    unknown = set(kwargs) - set(LAMINA_COMPILE_ARGUMENTS)
    if unknown:
        raise TypeError(
            f"Invalid keyword arguments to compile(): {sorted(unknown)}. Lamina's own additions "
            f"are {list(LAMINA_COMPILE_ARGUMENTS)}."
        )
    if not isinstance(steps_per_execution, int) or steps_per_execution < 1:
        raise ValueError(
            "`steps_per_execution` must be a positive integer. "
            f"Received: steps_per_execution={steps_per_execution!r}."
        )
    resolved_jit_compile = _resolve_jit_compile(jit_compile, run_eagerly)

    # Resolve names now: a typo in a loss or metric name would otherwise surface only at the
    # first training step (UnknownNameError lists the close valid names).
    for name in _names(loss):
        losses_module.get(name)
    for name in _names(metrics) + _names(weighted_metrics):
        if name.lower() not in metrics_module._ACCURACY_NAMES:  # resolved against the loss later
            metrics_module.get(name)
    model._compile_config = {
        "optimizer": optimizer, "loss": loss, "loss_weights": loss_weights, "metrics": metrics,
        "weighted_metrics": weighted_metrics, "run_eagerly": run_eagerly,
        "steps_per_execution": steps_per_execution, "jit_compile": jit_compile,
        "auto_scale_loss": auto_scale_loss, **kwargs,
    }
    object.__setattr__(model, "_lamina_trainer", Trainer(
        model, optimizer=optimizers_module.get(optimizer), loss=loss, loss_weights=loss_weights,
        metrics=metrics, weighted_metrics=weighted_metrics,
        steps_per_execution=steps_per_execution, jit_compile=resolved_jit_compile,
        device=kwargs.get("device"), mixed_precision=kwargs.get("mixed_precision"),
        auto_scale_loss=bool(auto_scale_loss),
    ))


def _resolve_jit_compile(jit_compile: Any, run_eagerly: bool) -> bool:
    """Keras's rules: 'auto' is eager on the torch backend, and `run_eagerly=True` wins over
    `jit_compile=True` with a warning. Lamina's step always runs eagerly otherwise, so
    `run_eagerly` has no other effect."""
    if jit_compile == "auto":
        return False
    if not isinstance(jit_compile, bool):
        raise ValueError(
            "`jit_compile` must be True, False or 'auto'. "
            f"Received: jit_compile={jit_compile!r}."
        )
    if jit_compile and run_eagerly:
        warnings.warn("If `run_eagerly` is True, then `jit_compile` cannot also be True. "
                      "Disabling `jit_compile`.", stacklevel=4)
        return False
    return jit_compile


def _names(argument: Any) -> list[str]:
    """The string identifiers inside a compile argument (a name, or lists/dicts of them)."""
    return [leaf for leaf in tree.flatten(argument) if isinstance(leaf, str)]
