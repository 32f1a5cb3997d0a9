"""A model's compile arguments in its saved config: written as JSON where they can be described,
and read back so a loaded model is compiled again.

A leaf of lamina.saving: it needs serialization only, not the training engine, so saving a
model never imports the trainer."""

from __future__ import annotations

from typing import Any

import torch

from lamina import tree
from lamina.saving.serialization import deserialize, serialize

# compile()'s keyword arguments that Keras does not have.
LAMINA_COMPILE_ARGUMENTS = ("device", "mixed_precision")


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
        "steps_per_execution", "jit_compile", "auto_scale_loss", *LAMINA_COMPILE_ARGUMENTS)}


