"""Keras's Variable API on the tensors `Layer.add_weight` creates.

A Keras 3 weight is a `keras.Variable` (`.value`, `.assign`, `.numpy()`, `.path`, ...); a lamina
weight is a torch tensor, so optimizers, `state_dict`, `torch.compile` and hand-written loops see
exactly what they expect. `Variable` (trainable weights) and `StateVariable` (non-trainable
weights, registered as buffers) are `nn.Parameter` subclasses with Keras's methods as plain
Python attributes on the class: nothing runs per operation, because `nn.Parameter` disables
`__torch_function__`, so every op on them returns an ordinary tensor.

Deliberate difference: `.dtype` stays the torch dtype (`torch.float32`), since torch itself
reads it; `lamina.config.dtype_name(v.dtype)` gives Keras's string.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from lamina._symbolic import is_probing

Tensor = torch.Tensor


def _assign_value(variable: Tensor, value: Any) -> Tensor:
    if isinstance(value, Tensor):
        value = value.detach()
    value = torch.as_tensor(np.asarray(value) if not isinstance(value, Tensor) else value,
                            dtype=variable.dtype, device=variable.device)
    if value.shape != variable.shape and value.numel() != 1:
        raise ValueError(
            f"Cannot assign a value of shape {tuple(value.shape)} to variable "
            f"{_path_of(variable)!r} of shape {tuple(variable.shape)}. Pass a value of the "
            "variable's shape (or a scalar)."
        )
    return value


def _path_of(variable: Tensor) -> str:
    return variable.__dict__.get("_keras_path") or variable.__dict__.get("_keras_name", "variable")


class _VariableMethods:
    """The methods both variable kinds share (Keras's `keras.Variable` API)."""

    __slots__ = ()

    @property
    def value(self) -> Tensor:
        """The tensor itself (Keras's `variable.value`); `v.value.grad` reads its gradient."""
        return self  # type: ignore[return-value]

    def assign(self, value: Any) -> Tensor:
        """Set the value in place (no gradient is recorded); returns the variable. A call
        run only to find shapes (building a functional model) changes nothing, as Keras's
        symbolic calls change no variable."""
        if is_probing():
            return self  # type: ignore[return-value]
        with torch.no_grad():
            self.copy_(_assign_value(self, value))  # type: ignore[attr-defined]
        return self  # type: ignore[return-value]

    def assign_add(self, value: Any) -> Tensor:
        if is_probing():
            return self  # type: ignore[return-value]
        with torch.no_grad():
            self.add_(_assign_value(self, value))  # type: ignore[attr-defined]
        return self  # type: ignore[return-value]

    def assign_sub(self, value: Any) -> Tensor:
        if is_probing():
            return self  # type: ignore[return-value]
        with torch.no_grad():
            self.sub_(_assign_value(self, value))  # type: ignore[attr-defined]
        return self  # type: ignore[return-value]

    def numpy(self, *, force: bool = False) -> np.ndarray:
        """A NumPy copy of the value (detached, on the CPU), as Keras's `variable.numpy()`."""
        return self.detach().cpu().numpy().copy()  # type: ignore[attr-defined]

    @property
    def name(self) -> str:
        """The name given to `add_weight` (`"kernel"`)."""
        return self.__dict__.get("_keras_name", "variable")

    @property
    def path(self) -> str:
        """`"<layer name>/<weight name>"`, as Keras's `variable.path`."""
        return _path_of(self)  # type: ignore[arg-type]

    def _set_keras_names(self, name: str, path: str) -> None:
        self.__dict__["_keras_name"] = name
        self.__dict__["_keras_path"] = path


class Variable(_VariableMethods, nn.Parameter):
    """A trainable weight: an `nn.Parameter` with Keras's Variable methods."""

    @property
    def trainable(self) -> bool:
        return self.requires_grad

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self.requires_grad_(bool(value))

    def __deepcopy__(self, memo: dict) -> "Variable":
        # nn.Parameter's deepcopy keeps the class but drops the instance dict (the names).
        if id(self) in memo:
            return memo[id(self)]
        result = super().__deepcopy__(memo)
        result.__dict__.update(self.__dict__)
        return result

    def __reduce_ex__(self, protocol: int) -> Any:
        # nn.Parameter pickles as a plain Parameter: keep the class and the names.
        return (_rebuild_variable, (type(self), self.data, self.requires_grad,
                                    dict(self.__dict__)))


class StateVariable(Variable):
    """A non-trainable weight (a buffer: moving statistics, counters) with Keras's Variable
    methods. It is a `Variable` that never requires grad, registered as a buffer: torch's
    compiler traces `nn.Parameter` subclasses as plain tensors, not as tensor subclasses."""

    @property
    def trainable(self) -> bool:
        return False

    @trainable.setter
    def trainable(self, value: bool) -> None:
        if value:
            raise ValueError(
                f"Variable {_path_of(self)!r} is a non-trainable weight (layer state, such as "
                "moving statistics); it cannot be made trainable."
            )


def _rebuild_variable(cls: type, data: Tensor, requires_grad: bool, state: dict) -> Variable:
    variable = cls(data, requires_grad=requires_grad)
    variable.__dict__.update(state)
    return variable


def as_state_variable(tensor: Tensor, name: str, path: str) -> StateVariable:
    """The buffer `tensor` (sharing its storage) as a `StateVariable` named `name`."""
    variable = StateVariable(tensor.detach(), requires_grad=False)
    variable._set_keras_names(name, path)
    return variable
