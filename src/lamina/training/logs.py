"""What callbacks need from the engine, without importing it: the model's trainer and the logs
read back to the host.

A leaf (torch, NumPy and `lamina.errors` only), so the trainer and the callbacks both import it
at the top and imports run one way: the trainer imports the callbacks, never the reverse.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from lamina.errors import NotCompiledError

if TYPE_CHECKING:
    from lamina.training.trainer import Trainer


def trainer_of(model: Any) -> Trainer:
    """The trainer `compile` attached to `model`; NotCompiledError before `compile`."""
    trainer = model.__dict__.get("_lamina_trainer")
    if trainer is None:
        raise NotCompiledError(
            f"You must call compile() before using model {model.name!r} for training or "
            "evaluation, e.g. model.compile(optimizer='adam', loss='mse')."
        )
    return trainer


def logs_to_floats(logs: Mapping | None) -> dict[str, float]:
    """Read logs back to the host once (the only sync of an epoch)."""
    if not logs:
        return {}
    values = dict(logs.items())
    tensors = [(k, v) for k, v in values.items()
               if isinstance(v, torch.Tensor) and v.numel() == 1]
    if tensors:
        stacked = torch.stack([v.detach().float().reshape(()) for _, v in tensors]).cpu().tolist()
        values.update({k: x for (k, _), x in zip(tensors, stacked)})
    return {k: (float(v) if isinstance(v, (int, float, np.floating)) else v)
            for k, v in values.items()}
