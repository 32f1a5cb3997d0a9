"""Keras's class-name-to-snake-case rule, shared by layers, losses, metrics and optimizers (a
leaf module: the standard library only)."""

from __future__ import annotations

import re


def to_snake_case(name: str) -> str:
    """'TopKCategoricalAccuracy' -> 'top_k_categorical_accuracy', 'AUC' -> 'auc' (Keras's
    `keras.src.utils.naming.to_snake_case`)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()
