"""Symbolic tensors for the functional API: what `Input()` returns and layers record calls on.

A `KerasTensor` knows its shape (None for the batch axis and other free axes) and dtype, and the
`Node` that produced it. Shapes are found by running the real layer on two small concrete
"probe" tensors that differ in every free axis: an output axis that differs between the probes is
free (None), one that agrees is fixed. This needs no per-layer shape code, works for any
`nn.Module` and any torch function applied to a symbolic tensor, and gives masks for free (they
ride along on the probes).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch
from torch import nn

from lamina import config
from lamina import _load_budget
from lamina._load_budget import charge_probe
from lamina.errors import FileFormatError, ShapeError

Tensor = torch.Tensor

# Sizes substituted for free axes in the two probes. The batch axis uses (1, 2); other free axes
# (sequence length, image size of a fully convolutional net) need room for kernels and pooling.
_BATCH_PROBES = (1, 2)
_FREE_AXIS_PROBES = (32, 40)


class Node:
    """One call of a layer (or torch function) on symbolic inputs."""

    def __init__(self, layer: Any, args: tuple, kwargs: dict, outputs: list["KerasTensor"]):
        self.layer = layer
        self.args = args          # with KerasTensors in place
        self.kwargs = kwargs
        self.outputs = outputs
        self.inputs = [t for t in _flatten((args, kwargs)) if isinstance(t, KerasTensor)]


class KerasTensor:
    """A symbolic tensor: shape, dtype and history, no data.

    Torch functions and tensor operators accept it and record a node, so
    `x = torch.cat([a, b], dim=-1) * 2` works inside a functional model.
    """

    def __init__(self, shape: Sequence[int | None], dtype: torch.dtype, probes: tuple[Tensor, Tensor],
                 node: Node | None = None, index: int = 0, name: str | None = None):
        self.shape = tuple(shape)
        self.dtype = dtype
        self.probes = probes
        self.node = node
        self.index = index
        self.name = name

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        source = f", name={self.name}" if self.name else ""
        return f"<KerasTensor shape={self.shape}, dtype={config.dtype_name(self.dtype)}{source}>"

    def __bool__(self) -> bool:
        raise TypeError(
            "A symbolic tensor has no value, so it cannot be used in a Python `if`. Use torch.where "
            "or a layer whose call() takes the decision on real data. (A plain torch module called "
            "on a symbolic tensor ends here too: wrap it, lamina.layers.TorchModuleWrapper(module).)"
        )

    @property
    def device(self) -> Any:
        # Only a plain torch module's forward asks a symbolic tensor for its device (nn.LSTM
        # makes its initial state on it): say how to use such a module in a functional model.
        raise TypeError(_WRAP_MODULE_HINT)

    @classmethod
    def __torch_function__(cls, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None):
        return record_torch_op(func, args, kwargs or {})

    def __getattr__(self, name: str) -> Any:
        # Tensor methods (x.view, x.transpose, x.sum, ...) become recorded ops.
        if name.startswith("_") or not hasattr(Tensor, name):
            raise AttributeError(f"KerasTensor has no attribute {name!r}")
        method = getattr(Tensor, name)
        return lambda *args, **kwargs: record_torch_op(method, (self,) + args, kwargs)

    def size(self, dim: int | None = None) -> Any:
        if dim is None:
            return self.shape
        return self.shape[dim]

    def __getitem__(self, key: Any):
        return record_torch_op(Tensor.__getitem__, (self, key), {})

    def __len__(self) -> int:
        if self.shape and self.shape[0] is not None:
            return self.shape[0]
        raise TypeError("len() of a symbolic tensor whose first axis (the batch) is unknown.")


def _operator(name: str):
    method = getattr(Tensor, name)

    def op(self, *args):
        return record_torch_op(method, (self,) + args, {})

    op.__name__ = name
    return op


for _name in ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__",
              "__rtruediv__", "__matmul__", "__rmatmul__", "__pow__", "__rpow__", "__neg__",
              "__abs__", "__floordiv__", "__mod__", "__lt__", "__le__", "__gt__", "__ge__",
              "__and__", "__or__", "__invert__"):
    setattr(KerasTensor, _name, _operator(_name))


def make_probes(shape: Sequence[int | None], dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Two concrete tensors for a symbolic shape: free axes get different sizes in each."""
    probes = []
    for i in range(2):
        concrete = [
            (_BATCH_PROBES[i] if axis == 0 else _FREE_AXIS_PROBES[i]) if d is None else d
            for axis, d in enumerate(shape)
        ]
        charge_probe(math.prod(concrete), tuple(shape))
        if dtype.is_floating_point or dtype.is_complex:
            probes.append(torch.zeros(concrete, dtype=dtype))
        elif dtype == torch.bool:
            probes.append(torch.zeros(concrete, dtype=dtype))
        else:
            # Index 1 rather than 0 so embeddings with mask_zero produce non-empty sequences.
            probes.append(torch.ones(concrete, dtype=dtype))
    return probes[0], probes[1]


def _flatten(value: Any) -> list:
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in _flatten(v)]
    if isinstance(value, dict):
        return [x for v in value.values() for x in _flatten(v)]
    return [value]


def _substitute(value: Any, which: int) -> Any:
    """Replace each KerasTensor in a nested structure by its probe (with its mask attached)."""
    if isinstance(value, KerasTensor):
        probe = value.probes[which]
        mask = getattr(value, "mask_probes", None)
        if mask is not None:
            probe = probe.detach().clone()
            probe._keras_mask = mask[which]
        return probe
    if isinstance(value, list):
        return [_substitute(v, which) for v in value]
    if isinstance(value, tuple):
        return tuple(_substitute(v, which) for v in value)
    if isinstance(value, dict):
        return {k: _substitute(v, which) for k, v in value.items()}
    return value


def _symbolic_shape(a: Tensor, b: Tensor) -> tuple[int | None, ...]:
    if a.ndim != b.ndim:
        raise ShapeError(
            f"Could not infer a static rank: the two probe outputs have shapes {tuple(a.shape)} "
            f"and {tuple(b.shape)}."
        )
    return tuple(da if da == db else None for da, db in zip(a.shape, b.shape))


def _wrap_outputs(out_a: Any, out_b: Any, node_factory: Callable[[list[KerasTensor]], Node],
                  name: str) -> Any:
    """Turn the probe outputs into KerasTensors (same structure) and record their node."""
    created: list[KerasTensor] = []

    def wrap(a: Any, b: Any) -> Any:
        if isinstance(a, Tensor):
            tensor = KerasTensor(_symbolic_shape(a, b), a.dtype, (a.detach(), b.detach()),
                                 index=len(created), name=name)
            mask_a, mask_b = getattr(a, "_keras_mask", None), getattr(b, "_keras_mask", None)
            if mask_a is not None and mask_b is not None:
                tensor.mask_probes = (mask_a, mask_b)
            created.append(tensor)
            return tensor
        if isinstance(a, (list, tuple)):
            return type(a)(wrap(x, y) for x, y in zip(a, b))
        if isinstance(a, dict):
            return {k: wrap(a[k], b[k]) for k in a}
        return a

    outputs = wrap(out_a, out_b)
    node = node_factory(created)
    for tensor in created:
        tensor.node = node
    return outputs


_PROBING = 0


def is_probing() -> bool:
    """True while layers run on probe tensors to find symbolic shapes: layers with state across
    calls (stateful RNNs) must not keep what a probe leaves, and no layer records a probe's
    concrete shape as its output shape."""
    return _PROBING > 0


def _run_probes(fn: Callable[[int], Any], module: nn.Module | None) -> tuple[Any, Any]:
    global _PROBING
    modes = []
    if module is not None:
        modes = [(m, m.training) for m in module.modules()]
        module.train(False)
    _PROBING += 1
    try:
        with torch.no_grad(), _load_budget.sized_on_meta():
            return fn(0), fn(1)
    finally:
        _PROBING -= 1
        for m, mode in modes:
            m.training = mode


def symbolic_call(layer: nn.Module, args: tuple, kwargs: dict) -> Any:
    """Call a layer on KerasTensors: build it, run it on the probes, record a node."""
    from lamina.layers.layer import Layer

    if isinstance(layer, Layer) and not layer.built:
        shapes = [t.shape for t in _flatten(args[:1] if args else list(kwargs.values())[:1])
                  if isinstance(t, KerasTensor)]
        first = args[0] if args else next(iter(kwargs.values()))
        input_shape = shapes[0] if isinstance(first, KerasTensor) else [
            t.shape if isinstance(t, KerasTensor) else None for t in first
        ]
        if isinstance(first, dict):
            input_shape = {k: v.shape for k, v in first.items() if isinstance(v, KerasTensor)}
        from lamina.layers.layer import _build_arity

        arity = _build_arity(layer)
        if arity >= 2 and len(args) >= 2:
            input_shape = tuple(a.shape for a in args[:arity] if isinstance(a, KerasTensor))
        layer._maybe_build(input_shape)
        if layer._initial_weights is not None:
            layer.set_weights(layer._initial_weights)
            layer._initial_weights = None

    def run(which: int) -> Any:
        call_kwargs = _substitute(kwargs, which)
        if isinstance(layer, Layer) and layer._call_takes_training and "training" not in call_kwargs:
            call_kwargs["training"] = False
        return layer(*_substitute(args, which), **call_kwargs)

    try:
        out_a, out_b = _run_probes(run, layer)
    except FileFormatError:
        raise  # a load budget's refusal names what to fix already
    except ShapeError as error:
        raise ShapeError(_symbolic_shapes_in(str(error), args, kwargs)) from error
    except Exception as error:  # a shape mismatch inside torch: say which layer and which shapes
        shapes = [t.shape for t in _flatten((args, kwargs)) if isinstance(t, KerasTensor)]
        name = getattr(layer, "name", type(layer).__name__)
        raise ShapeError(
            f"Layer {name!r} ({type(layer).__name__}) cannot be called on inputs of shape "
            f"{', '.join(str(s) for s in shapes)}: {error}"
        ) from error
    outputs = _wrap_outputs(out_a, out_b, lambda created: Node(layer, args, kwargs, created),
                            getattr(layer, "name", None))
    if isinstance(layer, Layer) and layer._output_shape is None:
        layer._output_shape = _shapes_of(outputs)
    return outputs


def _symbolic_shapes_in(message: str, args: tuple, kwargs: dict) -> str:
    """A layer's shape error names the probe's shape, (1, 5); the user wrote (None, 5)."""
    for tensor in _flatten((args, kwargs)):
        if isinstance(tensor, KerasTensor):
            message = message.replace(str(tuple(tensor.probes[0].shape)), str(tensor.shape))
    return message


def _shapes_of(value: Any) -> Any:
    if isinstance(value, KerasTensor):
        return value.shape
    if isinstance(value, (list, tuple)):
        return [_shapes_of(v) for v in value]
    if isinstance(value, dict):
        return {k: _shapes_of(v) for k, v in value.items()}
    return None


_WRAP_MODULE_HINT = (
    "A plain torch module was called on a symbolic tensor. In a functional model, wrap it so the "
    "model tracks, trains and saves its weights: lamina.layers.TorchModuleWrapper(module)(x). "
    "(In a Sequential model plain modules work as they are.)"
)


def record_torch_op(func: Callable, args: tuple, kwargs: dict) -> Any:
    """Apply a torch function to symbolic tensors: a `TorchOp` node wraps it."""
    from lamina.layers.core import TorchOp

    if any(isinstance(v, nn.Parameter) for v in _flatten((args, list(kwargs.values())))):
        # A module's weight would be baked into the graph as a constant: never trained or saved.
        raise TypeError(
            f"{getattr(func, '__name__', func)} was applied to a symbolic tensor and a trainable "
            f"weight. {_WRAP_MODULE_HINT} A weight of your own belongs in a Layer's build()."
        )
    return TorchOp(func, args, kwargs)._record()


def output_shape_by_probe(layer: nn.Module, input_shape: Any) -> Any:
    """Keras's `compute_output_shape`, answered by running the layer on probes of that shape."""
    def symbolic(shape: Any) -> Any:
        if isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], (list, tuple)):
            return [symbolic(s) for s in shape]
        shape = tuple(shape)
        return KerasTensor(shape, config.torch_dtype(None), make_probes(shape, config.torch_dtype(None)))

    inputs = symbolic(input_shape)
    out_a, out_b = _run_probes(
        lambda which: layer(_substitute(inputs, which)), layer
    )
    if isinstance(out_a, Tensor):
        return _symbolic_shape(out_a, out_b)
    return [_symbolic_shape(a, b) for a, b in zip(out_a, out_b)]


def num_elements(shape: Sequence[int | None]) -> int | None:
    if any(d is None for d in shape):
        return None
    return math.prod(shape)
