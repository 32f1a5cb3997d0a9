"""`model.compile`: resolve optimizer, losses and metrics, and remember the arguments so a saved
model can be compiled again when loaded."""

from __future__ import annotations

import warnings
from typing import Any

import torch

from lamina import losses as losses_module
from lamina import metrics as metrics_module
from lamina import optimizers as optimizers_module
from lamina import tree
from lamina.saving.serialization import deserialize, serialize
from lamina.training.trainer import Trainer

_KNOWN_EXTRA = ("device", "mixed_precision")


def compile_model(model, optimizer: Any = "rmsprop", loss: Any = None, loss_weights: Any = None,
                  metrics: Any = None, weighted_metrics: Any = None, run_eagerly: bool = False,
                  steps_per_execution: int = 1, jit_compile: Any = "auto",
                  auto_scale_loss: bool = True, **kwargs: Any) -> None:
    unknown = set(kwargs) - set(_KNOWN_EXTRA)
    if unknown:
        raise TypeError(
            f"Invalid keyword arguments to compile(): {sorted(unknown)}. Lamina's own additions "
            f"are {list(_KNOWN_EXTRA)}."
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


def _serialize_node(value: Any) -> Any:
    # Bottom-up: containers arrive with their items serialized (json writes a tuple as a list).
    if value is None or isinstance(value, (str, int, float, bool, list, tuple, dict)):
        return None  # kept as it is
    if isinstance(value, torch.optim.Optimizer) or callable(value) and not hasattr(value, "get_config"):
        raise ValueError("not serializable")
    return serialize(value)


def _serialize_value(value: Any) -> Any:
    return tree.traverse(_serialize_node, value, top_down=False)


def serialize_compile_config(compile_config: dict[str, Any]) -> dict[str, Any] | None:
    """A JSON-able compile config; entries that cannot be described (a torch optimizer, a lambda
    loss) are left out, and the loaded model is then recompiled without them."""
    document = {}
    for key, value in compile_config.items():
        try:
            document[key] = _serialize_value(value)
        except ValueError:
            continue
    return document


def deserialize_compile_config(document: dict[str, Any],
                               custom_objects: dict | None = None) -> dict[str, Any]:
    def revive(value: Any) -> Any:
        # Top-down: a serialized object is rebuilt whole; other lists and dicts are walked.
        if isinstance(value, dict) and "class_name" in value:
            return deserialize(value, custom_objects)
        return None

    return {k: tree.traverse(revive, v) for k, v in document.items() if k in (
        "optimizer", "loss", "loss_weights", "metrics", "weighted_metrics", "run_eagerly",
        "steps_per_execution", "jit_compile", "auto_scale_loss", *_KNOWN_EXTRA)}


