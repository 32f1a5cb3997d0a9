"""Optimizers: Keras's classes and arguments over `torch.optim`, plus schedules.

`get(identifier)` turns anything `compile(optimizer=...)` accepts into an optimizer: a name
('adam', 'sgd', ...), a config dict, a lamina optimizer, a `torch.optim.Optimizer` instance, or
a torch optimizer class / factory `callable(params)`.
"""

from __future__ import annotations

from typing import Any

import torch

from lamina._registry import canonical_name, lookup
from lamina.optimizers import schedules
from lamina.optimizers.adadelta import Adadelta
from lamina.optimizers.adagrad import Adagrad
from lamina.optimizers.adam import Adam
from lamina.optimizers.adamax import Adamax
from lamina.optimizers.adamw import AdamW
from lamina.optimizers.lion import Lion
from lamina.optimizers.nadam import Nadam
from lamina.optimizers.optimizer import Optimizer
from lamina.optimizers.rmsprop import RMSprop
from lamina.optimizers.sgd import SGD
from lamina.optimizers.torch_optimizer import TorchOptimizer

__all__ = [
    "SGD",
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "Lion",
    "Nadam",
    "Optimizer",
    "RMSprop",
    "TorchOptimizer",
    "deserialize",
    "get",
    "schedules",
    "serialize",
]


def serialize(optimizer: Optimizer) -> dict[str, Any]:
    """`{"module", "class_name", "config"}` describing an optimizer (no state)."""
    if not isinstance(optimizer, Optimizer):
        raise TypeError(
            "`serialize` expects a lamina optimizer. "
            f"Received: {optimizer!r} of type {type(optimizer).__name__}."
        )
    cls = type(optimizer)
    return {
        "module": "lamina.optimizers",
        "class_name": canonical_name(cls) or cls.__name__,
        "config": optimizer.get_config(),
    }


def deserialize(config: dict[str, Any], custom_objects: dict[str, Any] | None = None) -> Optimizer:
    """The optimizer described by a `serialize()` dict; class names are case-insensitive."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(
            "A serialized optimizer must be a dict with a 'class_name' and a 'config', e.g. "
            f"{{'class_name': 'Adam', 'config': {{'learning_rate': 0.001}}}}. Received: {config!r}."
        )
    cls = lookup("optimizer", config["class_name"], custom_objects)
    return cls.from_config(dict(config.get("config") or {}), custom_objects=custom_objects)


def get(identifier: Any) -> Optimizer | None:
    """An optimizer from a name, a config dict, an optimizer, or a torch optimizer / factory."""
    if identifier is None or isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        return deserialize({"class_name": identifier, "config": {}})
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        return identifier()
    if isinstance(identifier, torch.optim.Optimizer) or callable(identifier):
        return TorchOptimizer(identifier)
    raise TypeError(
        f"Could not interpret optimizer identifier: {identifier!r}. Pass a name such as "
        "'adam', a config dict, a lamina optimizer, a torch.optim.Optimizer, or a callable "
        "params -> torch.optim.Optimizer such as torch.optim.AdamW."
    )
