"""Mixed precision: Keras's policy names over `torch.autocast`.

`lamina.mixed_precision.set_global_policy("mixed_bfloat16")` (or `compile(...,
mixed_precision="bfloat16")`) runs the forward pass and loss under autocast while weights stay
float32, as Keras's mixed policies do. float16 on CUDA adds loss scaling with a `GradScaler`
unless `compile(auto_scale_loss=False)`; bfloat16 needs none.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

_POLICIES = {
    "float32": None,
    "mixed_float16": torch.float16,
    "mixed_bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}
_GLOBAL_POLICY = "float32"


class DTypePolicy:
    """A named precision policy: `compute_dtype` under autocast, variables in float32."""

    def __init__(self, name: str):
        if name not in _POLICIES:
            raise ValueError(
                f"Unknown dtype policy {name!r}. Valid policies are: {', '.join(_POLICIES)}."
            )
        self.name = name

    @property
    def compute_dtype(self) -> str:
        dtype = _POLICIES[self.name]
        return "float32" if dtype is None else str(dtype).removeprefix("torch.")

    @property
    def variable_dtype(self) -> str:
        return "float32"

    def __repr__(self) -> str:
        return f'<DTypePolicy "{self.name}">'


def set_global_policy(policy: str | DTypePolicy) -> None:
    """Set the precision every model compiled afterwards trains with."""
    global _GLOBAL_POLICY
    name = policy.name if isinstance(policy, DTypePolicy) else str(policy)
    DTypePolicy(name)
    _GLOBAL_POLICY = name


def global_policy() -> DTypePolicy:
    return DTypePolicy(_GLOBAL_POLICY)


def resolve_autocast_dtype(mixed_precision: Any) -> torch.dtype | None:
    """The autocast dtype for a compile argument (None: the global policy)."""
    if mixed_precision is None:
        return _POLICIES[_GLOBAL_POLICY]
    if mixed_precision is False:
        return None
    key = mixed_precision if isinstance(mixed_precision, str) else str(mixed_precision).removeprefix("torch.")
    if key in ("fp16", "16-mixed"):
        key = "float16"
    if key in ("bf16", "bf16-mixed"):
        key = "bfloat16"
    if key not in _POLICIES:
        raise ValueError(
            f"Unknown mixed_precision {mixed_precision!r}. Use 'bfloat16', 'float16' or None."
        )
    return _POLICIES[key]


class Precision:
    """The autocast context and gradient scaler one trainer uses.

    `scale_loss=False` (Keras's `compile(auto_scale_loss=False)`) trains float16 without a
    `GradScaler`, as Keras then does without its `LossScaleOptimizer`.
    """

    def __init__(self, dtype: torch.dtype | None, device: torch.device, scale_loss: bool = True):
        if dtype == torch.float16 and device.type == "cpu":
            raise ValueError(
                "float16 mixed precision needs a CUDA device; on CPU use 'bfloat16', which is "
                "also faster here."
            )
        self.dtype = dtype
        self.device_type = device.type
        self.scaler = (torch.amp.GradScaler(device.type)
                       if dtype == torch.float16 and scale_loss else None)

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)


class _ScalerView:
    """What `GradScaler.step` needs of an optimizer: the torch optimizer's parameter groups (to
    unscale in place) and a `step()` that runs Lamina's whole update (clipping, accumulation,
    EMA) on the unscaled gradients."""

    def __init__(self, optimizer: Any) -> None:
        self._optimizer = optimizer
        self.param_groups = optimizer.torch_optimizer.param_groups

    def step(self) -> None:
        self._optimizer.step()


def scaled_step(scaler: torch.amp.GradScaler, optimizer: Any) -> None:
    """Step `optimizer` (a built lamina optimizer) on gradients of a loss scaled by `scaler`:
    unscale, skip the update when a scaled gradient overflowed, and adjust the scale.

    GradScaler reads its overflow flag back once per step to decide whether to skip; that read
    is inherent to skipping an update and is the only one."""
    scaler.step(_ScalerView(optimizer))
    scaler.update()
    # A skipped step leaves the overflowed gradients in place; the next backward must not add
    # to them (a taken step has cleared them already).
    optimizer.zero_grad()
