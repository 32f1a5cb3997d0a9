"""Mixed precision: Keras's policy names over `torch.autocast`.

`lamina.mixed_precision.set_global_policy("mixed_bfloat16")` before building a model (or
`compile(..., mixed_precision="bfloat16")`) runs the forward pass and loss under autocast while
weights stay float32, as Keras's mixed policies do. float16 on CUDA adds loss scaling with a
`GradScaler` unless `compile(auto_scale_loss=False)`; bfloat16 needs none.

Per-layer fallback to float32 ("islands": autocast off inside the layer, its low-precision
inputs cast up), in three cases:
- a layer whose own policy is not mixed inside a model that has mixed ones (created before
  `set_global_policy`, or `dtype="float32"`, Keras's way to keep an output layer in float32);
- under bf16 on a CPU without bf16 units (no `avx512_bf16` or `amx_bf16`), where oneDNN
  emulates bf16 and is slower than float32: every layer with weights;
- under bf16 on a CPU with bf16 units, a `Dense` call whose GEMM is too small to repay the
  conversions: bf16 runs only when rows x input_dim x units >= `CPU_BF16_MIN_DENSE_MACS`,
  decided per call from the input's rows (so `predict` on one sample runs float32 while
  `fit` at batch 512 runs bf16). bench/gemm.py's Dense table measures the rule's threshold;
  convolutions and recurrent layers stay bf16 (2.5x a small CNN, 1.2-1.6x an LSTM(128)).
`layer_compute_dtypes(model)` says which layers run in which dtype.

Calls outside the engine's steps (`model(x)`, an uncompiled `predict`, a custom step) get the
same autocast and islands from the outermost layer's call (layers/layer.py), which asks
`dtype_of_call` and `islands_of_call`.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from typing import Any, Callable

import torch

from lamina import mixed_precision as policies
from lamina.layers import layer as layer_module
from lamina.layers.core import Dense
from lamina.layers.layer import Layer, note_policy_change
from lamina.mixed_precision import _POLICIES
from lamina.models.model import Model


def resolve_autocast_dtype(mixed_precision: Any,
                           model: torch.nn.Module | None = None) -> torch.dtype | None:
    """The autocast dtype for a compile argument. None: the policy of the model's layers,
    fixed when each was created (Keras's semantics); a model without Lamina layers (a plain
    `nn.Module`) takes the global policy in force at compile time."""
    if mixed_precision is None:
        return _policy_dtype(model)
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
    # The compiled precision holds for the model's plain calls too (`policy_of_call`).
    note_policy_change(in_use=_POLICIES[key] is not None)
    return _POLICIES[key]


class Precision:
    """The autocast context and gradient scaler one trainer uses.

    `scale_loss=False` (Keras's `compile(auto_scale_loss=False)`) trains float16 without a
    `GradScaler`, as Keras then does without its `LossScaleOptimizer`.
    """

    def __init__(self, dtype: torch.dtype | None, device: torch.device, scale_loss: bool = True):
        if dtype == torch.float16 and device.type == "cpu":
            raise ValueError(
                "float16 mixed precision (a `mixed_float16` policy or "
                "compile(mixed_precision='float16')) needs a CUDA device, but the model runs on "
                "the CPU. On the CPU use 'mixed_bfloat16' (or mixed_precision='bfloat16'), "
                "which is also faster there."
            )
        self.dtype = dtype
        self.device_type = device.type
        self.scaler = (torch.amp.GradScaler(device.type)
                       if dtype == torch.float16 and scale_loss else None)

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def fall_back(self, model: torch.nn.Module, *, hooks_on_model: bool = True
                  ) -> Callable[[tuple], bool] | None:
        """Place the float32 islands of `model` (see the module docstring): hooks around each
        island layer, and around each `Dense` that bf16 on the CPU runs by its GEMM's size.
        Called again (after layers were added or built, or by a recompiled model's new
        trainer), it replaces the hooks placed before.

        `hooks_on_model=False`, for a call of `model` already under way (its own hooks have
        run): only the layers inside get hooks, and what those on `model` would decide comes
        back as a function of the call's positional arguments, True where the call runs under
        autocast (None: always)."""
        handles = model.__dict__.setdefault("_lamina_float32_hooks", [])
        for handle in handles:
            handle.remove()
        handles.clear()
        fixed, sized = _islands(model, self.dtype, self.device_type)
        leave = functools.partial(_exit_float32, self.device_type)
        rules: list[Callable[[tuple], bool]] = []
        for layer in fixed + sized:
            check = _kernel_macs(layer) if layer in sized else None
            if layer is model and not hooks_on_model:
                rules.append(functools.partial(_island_runs_low, check, layer))
                continue
            enter = functools.partial(_enter_float32, self.device_type, check)
            handles.append(layer.register_forward_pre_hook(enter))
            handles.append(layer.register_forward_hook(leave, always_call=True))
        batch_macs = _largest_dense_per_sample(model, fixed, sized)
        if batch_macs is not None:
            # Every layer with weights is an island or a Dense too small for this batch: the
            # whole forward runs without autocast, whose dispatch on every op costs ~4% of a
            # small MLP's step.
            if hooks_on_model:
                enter = functools.partial(_enter_float32_model, self.device_type, batch_macs)
                handles.append(model.register_forward_pre_hook(enter))
                handles.append(model.register_forward_hook(leave, always_call=True))
            else:
                rules.append(functools.partial(_batch_runs_low, batch_macs))
        if not rules:
            return None
        return rules[0] if len(rules) == 1 else functools.partial(_all_run_low, tuple(rules))


def dtype_of_call(layer: Layer) -> torch.dtype | None:
    """The autocast dtype of an outermost call of `layer` (a model or a lone layer) outside
    autocast, as `predict` of a compiled model uses: its compiled `mixed_precision=`, else its
    layers' policies (None: no autocast)."""
    trainer = layer.__dict__.get("_lamina_trainer")
    return trainer.autocast_dtype if trainer is not None else _policy_dtype(layer)


def islands_of_call(layer: Layer, dtype: torch.dtype, device_type: str
                    ) -> Callable[[tuple], bool] | None:
    """Place the float32 islands inside `layer` for its calls under `dtype` on `device_type`,
    and return the rule for `layer` itself (see `Precision.fall_back`)."""
    precision = Precision(dtype, torch.device(device_type), scale_loss=False)
    return precision.fall_back(layer, hooks_on_model=False)


# A Dense runs in bf16 on a CPU with bf16 units only when its GEMM does at least this many
# multiply-adds (rows x input_dim x units): below it, casting the input, the kernel and the
# gradients costs more than the faster product saves. Measured on a Zen 4 CPU (avx512_bf16,
# no AMX), forward + backward, bench/gemm.py --dense-only: every shape below 2^24 ran at
# 0.44-1.02x float32's speed (128x784->128, 12.8M: 1.02x; 128x128->128: 0.64x), every one from
# it at 1.17-1.66x (128x2048->64 and 1024x128->128, 16.8M: 1.17x and 1.25x). AMX makes the
# product faster still and the casts no cheaper, so where bf16 wins on Zen 4 it wins there too.
CPU_BF16_MIN_DENSE_MACS = 1 << 24


_CPUINFO = "/proc/cpuinfo"


@functools.cache
def cpu_has_bf16_units() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16, AMX-BF16, Arm's BF16), as the
    Linux kernel lists its features; False where they cannot be read."""
    try:
        with open(_CPUINFO) as file:
            text = file.read()
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            flags.update(line.partition(":")[2].split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def _islands(model: torch.nn.Module, dtype: torch.dtype | None, device_type: str
             ) -> tuple[list[torch.nn.Module], list[torch.nn.Module]]:
    """(the layers that always run in float32, the `Dense` layers that run in float32 when
    their GEMM is small) under `dtype` autocast on `device_type`."""
    if dtype is None:
        return [], []
    leaves = [m for m in model.modules() if isinstance(m, Layer) and not isinstance(m, Model)]
    fixed: list[torch.nn.Module] = []
    if any(m.__dict__.get("_autocast_policy") is not None for m in leaves):
        fixed = [m for m in leaves if m.__dict__.get("_autocast_policy") is None]
    if dtype != torch.bfloat16 or device_type != "cpu":
        return fixed, []
    if not cpu_has_bf16_units():
        return fixed + [m for m in leaves if m not in fixed
                        and next(m.parameters(), None) is not None], []
    return fixed, [m for m in leaves if isinstance(m, Dense) and m.built and m not in fixed]


def _kernel_macs(layer: torch.nn.Module) -> int:
    """input_dim x units of a Dense: its GEMM's multiply-adds per input row."""
    return layer.kernel.numel()


def _largest_dense_per_sample(model: torch.nn.Module, fixed: list, sized: list) -> int | None:
    """The most multiply-adds per sample of the batch that any sized Dense does, when every
    module with weights is an island or a sized Dense (else None: some layer runs bf16 at any
    batch size)."""
    if not sized:
        return None
    islands = {id(m) for m in fixed + sized}
    for module in model.modules():
        if id(module) in islands:
            continue
        if next(module.parameters(recurse=False), None) is not None and \
                not any(id(m) in islands for m in module.modules()):
            return None
    largest = 0
    for layer in sized:
        shape = layer.__dict__.get("_build_input_shape")
        if not isinstance(shape, (tuple, list)) or not all(
                isinstance(d, int) for d in shape[1:-1]):
            return None
        rows_per_sample = 1
        for d in shape[1:-1]:
            rows_per_sample *= d
        largest = max(largest, rows_per_sample * _kernel_macs(layer))
    return largest


def layer_compute_dtypes(model: torch.nn.Module) -> dict[str, str]:
    """`{layer name: dtype}` for each layer with weights: the dtype its matmuls and
    convolutions run in under the model's compiled precision (or its layers' policies). A
    `Dense` that bf16 runs by its GEMM's size reports the dtype of its last call (before any,
    the one a batch of 32, Keras's default batch size, would get)."""
    trainer = model.__dict__.get("_lamina_trainer")
    dtype = trainer.autocast_dtype if trainer is not None else _policy_dtype(model)
    parameter = next(model.parameters(), None)
    device_type = parameter.device.type if parameter is not None else "cpu"
    fixed, sized = _islands(model, dtype, device_type)
    name = "float32" if dtype is None else str(dtype).removeprefix("torch.")

    def runs(layer: torch.nn.Module) -> str:
        if dtype is None:
            # No autocast: each layer computes in its weights' dtype (float64 after .double()).
            return layer.variable_dtype if isinstance(layer, Layer) else \
                str(next(layer.parameters()).dtype).removeprefix("torch.")
        if layer in fixed:
            return layer.variable_dtype if isinstance(layer, Layer) else "float32"
        if layer in sized:
            ran_float32 = layer.__dict__.get("_lamina_ran_float32")
            if ran_float32 is None:
                ran_float32 = 32 * _kernel_macs(layer) < CPU_BF16_MIN_DENSE_MACS
            return "float32" if ran_float32 else name
        return name

    return {m.name: runs(m) for m in model.modules()
            if isinstance(m, Layer) and not isinstance(m, Model)
            and next(m.parameters(), None) is not None}


def _policy_dtype(model: torch.nn.Module | None) -> torch.dtype | None:
    """The autocast dtype of a model's layers' policies: the mixed one any of them has; the
    global policy's for a model without Lamina layers (or no model)."""
    layers = [m for m in model.modules() if isinstance(m, Layer)] if model is not None else []
    if not layers:
        return _POLICIES[policies._GLOBAL_POLICY]
    for layer in layers:
        found = policies.autocast_dtype(layer.__dict__.get("_autocast_policy"))
        if found is not None:
            return found
    return None


# The autocast contexts the fallback hooks entered, per thread (predict may run in several).
_ISLANDS = threading.local()


def _enter_float32(device_type: str, kernel_macs: int | None, module: torch.nn.Module,
                   args: tuple) -> tuple | None:
    """Enter a float32 island: always (`kernel_macs` None), or for a Dense whose GEMM on this
    input (rows x `kernel_macs` multiply-adds) is below `CPU_BF16_MIN_DENSE_MACS`."""
    stack = _ISLANDS.__dict__.setdefault("stack", [])
    if kernel_macs is not None and _island_runs_low(kernel_macs, module, args):
        stack.append(None)
        return None
    _autocast_off(device_type, stack)
    low = layer_module._LOW_PRECISION
    return tuple(a.float() if isinstance(a, torch.Tensor) and a.dtype in low else a for a in args)


def _island_runs_low(kernel_macs: int | None, module: torch.nn.Module, args: tuple) -> bool:
    """Whether an island layer runs in the low dtype on this input: never (`kernel_macs`
    None), or a Dense whose GEMM is at least `CPU_BF16_MIN_DENSE_MACS`."""
    if kernel_macs is None:
        return False
    first = args[0] if args else None
    rows = first.numel() // max(first.shape[-1], 1) if isinstance(first, torch.Tensor) \
        and first.ndim else 0
    small = rows * kernel_macs < CPU_BF16_MIN_DENSE_MACS
    module.__dict__["_lamina_ran_float32"] = small
    return not small


def _enter_float32_model(device_type: str, batch_macs: int, module: torch.nn.Module,
                         args: tuple) -> None:
    """Run a whole model's forward without autocast when its batch is too small for any of
    its Dense layers (`batch_macs` multiply-adds per sample at the most) to run in bf16."""
    stack = _ISLANDS.__dict__.setdefault("stack", [])
    if _batch_runs_low(batch_macs, args):
        stack.append(None)
    else:
        _autocast_off(device_type, stack)


def _batch_runs_low(batch_macs: int, args: tuple) -> bool:
    first = args[0] if args else None
    return not (isinstance(first, torch.Tensor) and first.ndim
                and first.shape[0] * batch_macs < CPU_BF16_MIN_DENSE_MACS)


def _all_run_low(rules: tuple, args: tuple) -> bool:
    return all(rule(args) for rule in rules)


def _autocast_off(device_type: str, stack: list) -> None:
    # The autocast flag itself, not a `torch.autocast(enabled=False)` context: the context
    # object costs ~10 us a call, a third of a small Dense's forward pass.
    enabled = torch.is_autocast_enabled(device_type)
    stack.append(enabled)
    torch.set_autocast_enabled(device_type, False)
    if enabled:
        # Tells the outermost call inside that autocast is off on purpose (layer.py).
        layer_module._CALL.islands += 1



def _exit_float32(device_type: str, module: torch.nn.Module, args: tuple, output: Any) -> None:
    enabled = _ISLANDS.stack.pop()
    if enabled is not None:
        torch.set_autocast_enabled(device_type, enabled)
        if enabled:
            layer_module._CALL.islands -= 1


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
