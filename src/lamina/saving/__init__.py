"""Saving and loading: `.keras` archives, `.h5` files and weights; configs through the registry.

`serialization` is a leaf that layers, losses and initializers import; `saving_api` reads and
writes model files, so it imports the layers, and is loaded on first use of its four names: the
layers can then import `lamina.saving.serialization` at the top of their modules without a cycle.
"""

from __future__ import annotations

import importlib
from typing import Any

from lamina.saving.serialization import (
    deserialize,
    get_registered_name,
    register_keras_serializable,
    serialize,
)

deserialize_keras_object = deserialize
serialize_keras_object = serialize

_SAVING_API = ("load_model", "load_weights", "save_model", "save_weights")

__all__ = [*_SAVING_API, "deserialize", "serialize", "register_keras_serializable",
           "get_registered_name", "deserialize_keras_object", "serialize_keras_object"]


def __getattr__(name: str) -> Any:
    if name in _SAVING_API:
        return getattr(importlib.import_module("lamina.saving.saving_api"), name)
    raise AttributeError(f"module 'lamina.saving' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SAVING_API))
