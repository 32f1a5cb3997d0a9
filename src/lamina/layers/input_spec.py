"""`InputSpec`: what a layer accepts as its first input (rank, shape, axes, dtype), checked on call.

A layer that sets `self.input_spec = InputSpec(ndim=4)` (or a list of specs, one per input)
gets Keras 3's checks and messages on every call, eager or symbolic. Layers without a spec pay
one attribute read per call.
"""

from __future__ import annotations

from typing import Any, Sequence

from lamina import config, tree
from lamina.errors import ShapeError


def _standardize_shape(shape: Sequence[Any]) -> tuple[int | None, ...]:
    if isinstance(shape, int) or not isinstance(shape, (list, tuple)):
        raise ValueError(f"Cannot convert '{shape}' to a shape: give a tuple of integers or None "
                         "(e.g. shape=(None, 28, 28, 1)).")
    dims = []
    for dim in shape:
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 0):
            raise ValueError(f"Cannot convert '{tuple(shape)}' to a shape: every axis is a "
                             f"non-negative integer or None. Found invalid entry '{dim}'.")
        dims.append(dim)
    return tuple(dims)


def _dtype_name(dtype: Any) -> str:
    return config.dtype_name(config.torch_dtype(dtype))


class InputSpec:
    """The rank, dtype and shape a layer's input must have (Keras's `keras.layers.InputSpec`).

    Args:
        dtype: expected dtype of the input.
        shape: expected shape, batch axis included; `None` entries match any size.
        ndim: expected rank.
        max_ndim: largest rank accepted.
        min_ndim: smallest rank accepted.
        axes: `{axis: size}` for axes whose size is fixed (`{-1: 3}`).
        allow_last_axis_squeeze: also accept rank N+1 with a last axis of 1, and rank N-1
            where the spec's last axis is 1.
        name: the key of this input when inputs come as a dict.
        optional: whether the input may be None.

    >>> InputSpec(ndim=4, axes={-1: 3})
    InputSpec(ndim=4, axes={-1: 3})
    """

    def __init__(
        self,
        dtype: Any = None,
        shape: Sequence[int | None] | None = None,
        ndim: int | None = None,
        max_ndim: int | None = None,
        min_ndim: int | None = None,
        axes: dict[int, int | None] | None = None,
        allow_last_axis_squeeze: bool = False,
        name: str | None = None,
        optional: bool = False,
    ):
        self.dtype = _dtype_name(dtype) if dtype is not None else None
        if shape is not None:
            self.shape: tuple[int | None, ...] | None = _standardize_shape(shape)
            self.ndim = len(self.shape)
        else:
            self.ndim = ndim
            self.shape = None
        self.max_ndim = max_ndim
        self.min_ndim = min_ndim
        self.name = name
        self.optional = optional
        self.allow_last_axis_squeeze = allow_last_axis_squeeze
        try:
            axes = axes or {}
            self.axes = {int(k): axes[k] for k in axes}
        except (ValueError, TypeError):
            raise TypeError(
                f"Argument `axes` must be a dict with integer keys. Received: axes={axes}"
            ) from None
        if self.axes and (self.ndim is not None or self.max_ndim is not None):
            max_dim = (self.ndim if self.ndim else self.max_ndim) - 1
            max_axis = max(self.axes)
            if max_axis > max_dim:
                raise ValueError(f"Axis {max_axis} is greater than the maximum allowed value: "
                                 f"{max_dim}")

    def __repr__(self) -> str:
        spec = [
            f"dtype={self.dtype}" if self.dtype else "",
            f"shape={self.shape}" if self.shape else "",
            f"ndim={self.ndim}" if self.ndim else "",
            f"max_ndim={self.max_ndim}" if self.max_ndim else "",
            f"min_ndim={self.min_ndim}" if self.min_ndim else "",
            f"axes={self.axes}" if self.axes else "",
        ]
        return f"InputSpec({', '.join(x for x in spec if x)})"

    def get_config(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "shape": self.shape, "ndim": self.ndim,
                "max_ndim": self.max_ndim, "min_ndim": self.min_ndim, "axes": self.axes,
                "optional": self.optional}

    @classmethod
    def from_config(cls, config_dict: dict[str, Any]) -> "InputSpec":
        return cls(**config_dict)


def assert_input_compatibility(input_spec: Any, inputs: Any, layer_name: str,
                               check_dtype: bool = True) -> None:
    """Raise Keras's error (a `ShapeError`, which is a ValueError) when `inputs` do not meet
    `input_spec` (one InputSpec, or a nested structure of them, one per input tensor).

    `check_dtype=False` checks the structure and shapes only: before a layer casts its inputs
    to its dtype, the dtype an input arrives in is not yet the one the spec constrains."""
    if not input_spec:
        return
    if isinstance(input_spec, InputSpec) and hasattr(inputs, "shape"):
        # The usual case, one spec and one tensor, without walking structures.
        _check_one(input_spec, inputs, 0, layer_name, check_dtype)
        return
    specs = tree.flatten(input_spec)
    if isinstance(inputs, dict):
        names = [spec.name for spec in specs]
        if all(names):
            for name in names:
                if name not in inputs:
                    raise ValueError(
                        f'Missing data for input "{name}". You passed a data dictionary with '
                        f"keys {list(inputs.keys())}. Expected the following keys: {names}")
            inputs = [inputs[name] for name in names]
    flat = tree.flatten(inputs)
    if len(flat) != len(specs):
        spec_names = [spec.name for spec in specs if spec is not None]
        if len(spec_names) == len(specs) and all(spec_names):
            raise ShapeError(
                f'Layer "{layer_name}" expects {len(specs)} named input(s) with keys '
                f"{spec_names}, but it received {len(flat)} input tensors. Pass inputs as a "
                "dict, e.g. `layer({" + ", ".join(f"'{n}': ..." for n in spec_names) + "})`.")
        raise ShapeError(
            f'Layer "{layer_name}" expects {len(specs)} input(s), but it received {len(flat)} '
            f"input tensors. Inputs received: {flat}")
    for index, (value, spec) in enumerate(zip(flat, specs)):
        if spec is None or (value is None and spec.optional):
            continue
        _check_one(spec, value, index, layer_name, check_dtype)


def _check_one(spec: InputSpec, value: Any, index: int, layer_name: str,
               check_dtype: bool) -> None:
    if not hasattr(value, "shape"):
        raise ValueError(f"Inputs to a layer should be tensors. Got '{value}' (of type "
                         f"{type(value)}) as input for layer '{layer_name}'.")
    shape = tuple(None if d is None else int(d) for d in value.shape)
    ndim = len(shape)
    where = (f"Input {index} with name '{spec.name}' of layer '{layer_name}' is incompatible "
             "with the layer:")
    if spec.ndim is not None and not spec.allow_last_axis_squeeze and ndim != spec.ndim:
        raise ShapeError(f"{where} expected ndim={spec.ndim}, found ndim={ndim}. Full shape "
                         f"received: {shape}")
    if spec.max_ndim is not None and ndim > spec.max_ndim:
        raise ShapeError(f"{where} expected max_ndim={spec.max_ndim}, found ndim={ndim}")
    if spec.min_ndim is not None and ndim < spec.min_ndim:
        raise ShapeError(f"{where} expected min_ndim={spec.min_ndim}, found ndim={ndim}. Full "
                         f"shape received: {shape}")
    if check_dtype and spec.dtype is not None:
        dtype = _dtype_name(value.dtype)
        if dtype != spec.dtype:
            raise ShapeError(f"{where} expected dtype={spec.dtype}, found dtype={dtype}")
    for axis, size in spec.axes.items():
        if size is not None and (not -ndim <= axis < ndim or shape[axis] not in (size, None)):
            raise ShapeError(f"{where} expected axis {axis} of input shape to have value {size}, "
                             f"but received input with shape {shape}")
    if spec.shape is not None:
        spec_shape = spec.shape
        if spec.allow_last_axis_squeeze:
            if shape and shape[-1] == 1:
                shape = shape[:-1]
            if spec_shape and spec_shape[-1] == 1:
                spec_shape = spec_shape[:-1]
        for spec_dim, dim in zip(spec_shape, shape):
            if spec_dim is not None and dim is not None and spec_dim != dim:
                raise ShapeError(f"{where} expected shape={spec.shape}, found shape={shape}")
