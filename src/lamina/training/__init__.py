"""The training engine: one `Trainer` behind fit/evaluate/predict (see trainer.py).

The package imports nothing itself, so the models can import its leaves (`training.logs`) at
the top while the trainer imports the models: imports run one way, trainer -> models.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Trainer": "lamina.training.trainer",
    "pack_x_y_sample_weight": "lamina.training.data_adapters",
    "unpack_x_y_sample_weight": "lamina.training.data_adapters",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'lamina.training' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
