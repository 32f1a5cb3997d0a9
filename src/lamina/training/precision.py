"""Mixed precision: Keras's policy names over `torch.autocast`.

`lamina.mixed_precision.set_global_policy("mixed_bfloat16")` (or `compile(...,
mixed_precision="bfloat16")`) runs the forward pass and loss under autocast while weights stay
float32, as Keras's mixed policies do. float16 on CUDA adds loss scaling with a `GradScaler`
unless `compile(auto_scale_loss=False)`; bfloat16 needs none.

Per-layer fallback. On CPUs, bf16 wins on large GEMMs, convolutions and LSTMs (measured on an
AVX512-BF16 CPU without AMX: 1.5x a small CNN, 1.7x an LSTM(128), 1.3x a 784x128 Dense) but
loses on small GEMMs, where converting to bf16 and back costs more than the product saves (a
128x10 Dense ran at 0.48x). So under bf16 on the CPU a `Dense` with fewer than
`CPU_BF16_MIN_DENSE_WEIGHTS` kernel entries runs in float32 (its inputs cast up, autocast off
inside it). `layer_compute_dtypes(model)` says which layers run in which dtype.
"""

from __future__ import annotations

import contextlib
import functools
import threading
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

    def fall_back(self, model: torch.nn.Module) -> None:
        """Run the layers where this precision loses (`float32_layers`) in float32: hooks
        around each turn autocast off and cast its floating inputs to float32. Called again
        (after layers were added or built, or by a recompiled model's new trainer), it
        replaces the hooks placed before."""
        handles = model.__dict__.setdefault("_lamina_float32_hooks", [])
        for handle in handles:
            handle.remove()
        handles.clear()
        for layer in float32_layers(model, self.dtype, self.device_type):
            enter = functools.partial(_enter_float32, self.device_type)
            handles.append(layer.register_forward_pre_hook(enter))
            handles.append(layer.register_forward_hook(_exit_float32, always_call=True))


# Below this many kernel entries a Dense loses to bf16's conversions on the CPU (see above).
CPU_BF16_MIN_DENSE_WEIGHTS = 16384


def float32_layers(model: torch.nn.Module, dtype: torch.dtype | None,
                   device_type: str) -> list[torch.nn.Module]:
    """The layers that `dtype` autocast on `device_type` leaves in float32 (see the module
    docstring): small built `Dense` layers under bf16 on the CPU."""
    if dtype != torch.bfloat16 or device_type != "cpu":
        return []
    from lamina.layers.core import Dense

    return [m for m in model.modules() if isinstance(m, Dense) and m.built
            and m.kernel.numel() < CPU_BF16_MIN_DENSE_WEIGHTS]


def layer_compute_dtypes(model: torch.nn.Module) -> dict[str, str]:
    """`{layer name: dtype}` for each layer with weights: the dtype its matmuls and
    convolutions run in under the model's compiled precision (or the global policy)."""
    from lamina.layers.layer import Layer
    from lamina.models.model import Model

    trainer = model.__dict__.get("_lamina_trainer")
    dtype = trainer.autocast_dtype if trainer is not None else _POLICIES[_GLOBAL_POLICY]
    parameter = next(model.parameters(), None)
    device_type = parameter.device.type if parameter is not None else "cpu"
    islands = {id(m) for m in float32_layers(model, dtype, device_type)}
    name = "float32" if dtype is None else str(dtype).removeprefix("torch.")
    return {m.name: ("float32" if id(m) in islands else name)
            for m in model.modules() if isinstance(m, Layer) and not isinstance(m, Model)
            and next(m.parameters(), None) is not None}


# The autocast contexts the fallback hooks entered, per thread (predict may run in several).
_ISLANDS = threading.local()


def _enter_float32(device_type: str, module: torch.nn.Module, args: tuple) -> tuple:
    context = torch.autocast(device_type, enabled=False)
    context.__enter__()
    _ISLANDS.__dict__.setdefault("stack", []).append(context)
    return tuple(a.float() if isinstance(a, torch.Tensor) and a.dtype == torch.bfloat16 else a
                 for a in args)


def _exit_float32(module: torch.nn.Module, args: tuple, output: Any) -> None:
    _ISLANDS.stack.pop().__exit__(None, None, None)


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
