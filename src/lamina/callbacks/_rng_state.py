"""Every random number generator a training run draws from, captured and put back.

The global ones (torch on the CPU and each CUDA device, NumPy's legacy global state, Python's
`random`), the generators a data pipeline owns (a DataLoader's), and the private generators of
seeded layers (`Dropout(seed=...)`, seeded augmentation), found by walking the model. States
are plain tensors, arrays, numbers and strings, so `lamina.saving.state_file` stores them.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from torch import nn


def capture(model: nn.Module, generators: list[torch.Generator]) -> dict[str, Any]:
    """The state of every generator the next training step or data draw can use."""
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "numpy": np.random.get_state(),
        "python": [version, list(internal), gauss],
        "data": [g.get_state() for g in generators],
        "layers": [[path, attribute, str(g.device), g.get_state()]
                   for path, attribute, g in _layer_generators(model)],
    }


def restore(state: dict[str, Any], model: nn.Module,
            generators: list[torch.Generator] | None) -> None:
    """Put back `capture()`'s states (the model and data pipeline must be built the same way);
    `generators=None` leaves the data pipeline's for later (it is not known yet)."""
    torch.set_rng_state(state["torch"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])
    np.random.set_state(state["numpy"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    modules = dict(model.named_modules())
    for path, attribute, device, saved in state["layers"]:
        _put_generator(modules.get(path), attribute, torch.device(device), saved)
    if generators is not None:
        restore_data(state, generators)


def restore_data(state: dict[str, Any], generators: list[torch.Generator]) -> None:
    """Put back only the data pipeline's generators of `capture()`'s states."""
    if len(state["data"]) != len(generators):
        raise ValueError(
            f"The backup holds the states of {len(state['data'])} data generators but the data "
            f"passed to fit has {len(generators)}. Resume with the same data pipeline (a "
            "DataLoader with the same `generator` argument).")
    for generator, saved in zip(generators, state["data"]):
        generator.set_state(saved)


def _layer_generators(model: nn.Module) -> list[tuple[str, str, torch.Generator]]:
    """(module path, attribute, generator) for each generator a layer holds, directly or in a
    dict by device (seeded augmentation layers keep one per device)."""
    found = []
    for path, module in model.named_modules():
        for attribute, value in vars(module).items():
            if isinstance(value, torch.Generator):
                found.append((path, attribute, value))
            elif isinstance(value, dict) and value and all(
                    isinstance(g, torch.Generator) for g in value.values()):
                found.extend((path, attribute, g) for g in value.values())
    return found


def _put_generator(module: nn.Module | None, attribute: str, device: torch.device,
                   saved: torch.Tensor) -> None:
    # A seeded layer makes its generator at its first random draw; in a fresh process that has
    # not happened yet, so the generator is made here, on the device the backup names.
    if module is None:
        return
    current = getattr(module, attribute, None)
    if isinstance(current, dict):
        generator = current.get(device)
        if generator is None:
            generator = current[device] = torch.Generator(device=device)
    elif isinstance(current, torch.Generator) and current.device == device:
        generator = current
    else:
        generator = torch.Generator(device=device)
        setattr(module, attribute, generator)
    generator.set_state(saved)
