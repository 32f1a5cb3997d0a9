"""The door every `lamina.ops` function goes through: eager on tensors, one graph node on
symbolic tensors, and the table a saved model may name.

A `lamina.ops` function applied to a `KerasTensor` records a single `TorchOp` node whose function
is the op itself, saved by its public name (`lamina.ops.mean`, `lamina.ops.image.resize`).
Loading resolves such a name only through `SAVEABLE`, which holds exactly the functions defined
with `@op` in this package: pure tensor math, reviewed like the torch table in layers/core.py.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np
import torch

from lamina import config

Tensor = torch.Tensor

# Public qualified name -> function; filled at import by `@op`, never from a file.
SAVEABLE: dict[str, Callable] = {}


_KERAS_TENSOR: type | None = None


def _keras_tensor_type() -> type:
    global _KERAS_TENSOR
    if _KERAS_TENSOR is None:
        from lamina._symbolic import KerasTensor

        _KERAS_TENSOR = KerasTensor
    return _KERAS_TENSOR


def any_symbolic(values: Any) -> bool:
    """True if a KerasTensor is anywhere in `values` (nested lists, tuples, dicts)."""
    kind = _keras_tensor_type()
    stack = [values]
    while stack:
        value = stack.pop()
        if isinstance(value, (Tensor, int, float, str)) or value is None:
            continue
        if isinstance(value, kind):
            return True
        if isinstance(value, (list, tuple)):
            stack.extend(value)
        elif isinstance(value, dict):
            stack.extend(value.values())
    return False


def op(function: Callable | None = None, *, group: str = "", saveable: bool = True) -> Any:
    """Make `function` a lamina op: on symbolic inputs it records one node; `saveable` ops are
    listed for loading by name (those taking Python callables are not: a file cannot hold one)."""
    def decorate(function: Callable) -> Callable:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if any_symbolic(args) or (kwargs and any_symbolic(kwargs)):
                from lamina._symbolic import record_torch_op

                return record_torch_op(wrapper, args, kwargs)
            return function(*args, **kwargs)

        qualified = "lamina.ops." + (f"{group}." if group else "") + function.__name__
        wrapper._lamina_op_name = qualified
        if saveable:
            SAVEABLE[qualified] = wrapper
        return wrapper

    return decorate if function is None else decorate(function)


def saved_name(function: Callable) -> str | None:
    """The qualified name a saved model stores for an op, or None if it is not one."""
    name = getattr(function, "_lamina_op_name", None)
    return name if name is not None and SAVEABLE.get(name) is function else None


def resolve(qualified_name: str) -> Callable | None:
    """The op a saved model names, looked up in SAVEABLE only (None when absent)."""
    import lamina.ops  # noqa: F401 - registers every op

    return SAVEABLE.get(qualified_name)


# ---- conversion and dtype rules (those of Keras's torch backend) -----------------------------

def _python_dtype(value: Any) -> torch.dtype:
    if isinstance(value, bool):
        return torch.bool
    if isinstance(value, int):
        return torch.int32
    if isinstance(value, complex):
        return torch.complex64
    return config.torch_dtype(None)


def _flat_scalars(value: Any) -> list:
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in _flat_scalars(v)]
    return [value]


def to_tensor(x: Any, dtype: Any = None, device: Any = None) -> Tensor:
    """A tensor from a tensor, numpy array, Python scalar or (nested) list.

    Python floats become floatx and ints int32, as in Keras; numpy arrays keep their dtype.
    A tensor stays where it is; new ones go to `device` (an op passes its tensor argument's),
    else torch's default device (`with torch.device("cuda"):` applies).
    """
    target = None if dtype is None else config.torch_dtype(standardize_dtype(dtype))
    if isinstance(x, Tensor):
        return x if target is None or x.dtype == target else x.to(target)
    tensor = _new_tensor(x, target)
    device = torch.get_default_device() if device is None else torch.device(device)
    return tensor if tensor.device == device else tensor.to(device)


def _new_tensor(x: Any, target: torch.dtype | None) -> Tensor:
    if isinstance(x, np.ndarray) or isinstance(x, np.generic):
        array = np.asarray(x)
        if array.dtype == np.uint16 or array.dtype == np.uint32:
            array = array.astype(np.int64)
        tensor = torch.from_numpy(np.ascontiguousarray(array)) if array.ndim else torch.tensor(
            array.item(), dtype=config.torch_dtype(array.dtype), device="cpu")
        return tensor if target is None else tensor.to(target)
    if isinstance(x, (list, tuple)):
        leaves = _flat_scalars(x)
        if any(isinstance(v, Tensor) for v in leaves):
            device = next(v.device for v in leaves if isinstance(v, Tensor))
            stacked = torch.stack([to_tensor(v, device=device) for v in x])
            return stacked if target is None else stacked.to(target)
        if target is None:
            target = _list_dtype(leaves)
        return torch.tensor(x, dtype=target, device="cpu")
    if isinstance(x, (bool, int, float, complex)):
        return torch.tensor(x, dtype=target or _python_dtype(x), device="cpu")
    if isinstance(x, _keras_tensor_type()):
        raise TypeError(
            "A symbolic tensor has no value, and this op decides on values in Python (cond, "
            "switch, while_loop, scan, ...). Call it inside a custom Layer's call(), where it "
            f"runs on real tensors. Received: {x!r}.")
    if hasattr(x, "__array__"):
        return _new_tensor(np.asarray(x), target)
    raise TypeError(
        f"Cannot convert {type(x).__name__} to a tensor: lamina.ops takes torch tensors, numpy "
        f"arrays, Python numbers and lists of them. Received: {x!r:.80}."
    )


def _list_dtype(leaves: list) -> torch.dtype:
    if not leaves:
        return config.torch_dtype(None)
    if any(isinstance(v, np.generic) or isinstance(v, np.ndarray) for v in leaves):
        return config.torch_dtype(np.result_type(*leaves).name)
    if all(isinstance(v, bool) for v in leaves):
        return torch.bool
    if all(isinstance(v, int) for v in leaves):
        return torch.int32
    return config.torch_dtype(None)


_KERAS_DTYPE_NAMES = {"float": None, "int": "int32", "bool": "bool", "uint32": "int64",
                      "uint16": "int32", "complex64": "complex64", "complex128": "complex128"}


def standardize_dtype(dtype: Any) -> Any:
    """A Keras dtype ('float32', np.float32, torch.float32, 'float') as torch understands it."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype is float:
        return config.torch_dtype(None)
    if dtype is int:
        return torch.int32
    if dtype is bool:
        return torch.bool
    if isinstance(dtype, str) and dtype in _KERAS_DTYPE_NAMES:
        name = _KERAS_DTYPE_NAMES[dtype]
        if name in ("complex64", "complex128"):
            return getattr(torch, name)
        return config.torch_dtype(name)
    if isinstance(dtype, str) and dtype.startswith("complex"):
        return getattr(torch, dtype)
    return config.torch_dtype(dtype)


def is_python_scalar(value: Any) -> bool:
    return isinstance(value, (bool, int, float, complex))


def floating(x: Tensor) -> Tensor:
    """Keras's promotion for float math: ints and bools compute in floatx."""
    if x.dtype.is_floating_point or x.dtype.is_complex:
        return x
    return x.to(config.torch_dtype(None))


def result_dtype(*values: Any) -> torch.dtype:
    """The dtype of a binary op's result, Python scalars being weak as in Keras (JAX's rules):
    `int32 tensor + 2` stays int32, `int32 tensor + 2.5` is floatx, `float16 + 2.5` float16."""
    tensors = [v for v in values if not is_python_scalar(v)]
    scalars = [v for v in values if is_python_scalar(v)]
    if not tensors:
        dtype = _python_dtype(scalars[0])
        for s in scalars[1:]:
            dtype = torch.promote_types(dtype, _python_dtype(s))
        return dtype
    dtype = to_tensor(tensors[0]).dtype if not isinstance(tensors[0], Tensor) else tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype if isinstance(t, Tensor) else to_tensor(t).dtype)
    for s in scalars:
        if isinstance(s, complex) and not dtype.is_complex:
            dtype = torch.complex64
        elif isinstance(s, float) and not (dtype.is_floating_point or dtype.is_complex):
            dtype = config.torch_dtype(None)
        elif isinstance(s, int) and not isinstance(s, bool) and dtype == torch.bool:
            dtype = torch.int32
    return dtype


def device_of(*values: Any) -> torch.device | None:
    """The device of the first tensor among `values` (nested lists too), or None."""
    stack = list(reversed(values))
    while stack:
        value = stack.pop()
        if isinstance(value, Tensor):
            return value.device
        if isinstance(value, (list, tuple)):
            stack.extend(reversed(value))
    return None


def promote(*values: Any, dtype: torch.dtype | None = None) -> list[Tensor]:
    """Tensors of the common dtype of `values` (see `result_dtype`), or `dtype`, on the device
    of the tensors among them."""
    dtype = result_dtype(*values) if dtype is None else dtype
    device = device_of(*values)
    return [to_tensor(v, dtype, device) if not isinstance(v, Tensor) else v.to(dtype)
            for v in values]


def canonical_axis(axis: Any) -> Any:
    """`axis` as torch wants it: None, an int, or a tuple of ints."""
    if axis is None or isinstance(axis, int):
        return axis
    return tuple(int(a) for a in axis)


def public_names(namespace: dict, module_name: str) -> list[str]:
    """A module's `__all__`: the public functions and classes it defines (not its imports)."""
    return sorted(name for name, value in namespace.items()
                  if not name.startswith("_") and callable(value)
                  and getattr(value, "__module__", None) == module_name)
