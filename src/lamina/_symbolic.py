"""Symbolic tensors for the functional API: what `Input()` returns and layers record calls on.

A `KerasTensor` knows its shape (None for the batch axis and other free axes) and dtype, and the
`Node` that produced it. Shapes are found by running the layer itself on two "probe" tensors that
differ in every free axis: an output axis that differs between the probes is free (None), one
that agrees is fixed. The probes live on the `meta` device and every tensor operation of the
call is dispatched there (`_MetaMode`): shapes and dtypes without data, memory or arithmetic, as
Keras 3's torch backend computes its output specs. This needs no per-layer shape code, works for
any `nn.Module` and any torch function applied to a symbolic tensor, and gives masks for free
(they ride along on the probes). A call that needs data (see `_run_probes`) runs on small real
tensors instead.

Below the layers: layers import this module, never the reverse. The layer that records a torch
function applied to symbolic tensors (`TorchOp`) is found through the registry.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import threading
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin
from torch.utils._python_dispatch import TorchDispatchMode

from lamina import _load_budget, _registry, config, tree
from lamina._load_budget import charge_output, charge_probe
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
        # Insertion order: the graph is walked (and its layers keyed) in it, as always, so
        # state dicts keep their keys; files name tensors by `symbolic_leaves`' order.
        self.inputs = symbolic_leaves((args, kwargs), insertion_ordered=True)


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


def symbolic_leaves(structure: Any, *, insertion_ordered: bool = False) -> list[KerasTensor]:
    """The KerasTensors of a structure, dicts in sorted-key order as Keras 3 flattens them: the
    order in which a layer numbers its outputs and a saved config names them (by index).
    Files of Lamina's format 1 numbered them in insertion order (`insertion_ordered=True`)."""
    return [t for t in tree.flatten(structure, insertion_ordered=insertion_ordered)
            if isinstance(t, KerasTensor)]


_INSERTION_ORDERED_FILE = contextvars.ContextVar("lamina_insertion_ordered_file", default=False)


@contextlib.contextmanager
def reading_insertion_ordered_file(insertion_ordered: bool = True) -> Iterator[None]:
    """While a file of Lamina's format 1 is read: the tensor indices of its config count a
    layer's dict outputs in insertion order (docs/keras-files.md)."""
    token = _INSERTION_ORDERED_FILE.set(insertion_ordered)
    try:
        yield
    finally:
        _INSERTION_ORDERED_FILE.reset(token)


def file_is_insertion_ordered() -> bool:
    """Whether the config being read numbers dict outputs in insertion order (format 1)."""
    return _INSERTION_ORDERED_FILE.get()


def make_probes(shape: Sequence[int | None], dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Two probe tensors for a symbolic shape: free axes get different sizes in each. On the
    `meta` device, except inside a run that needs real tensors (`_run_probes`)."""
    probes = []
    for i in range(2):
        concrete = [
            (_BATCH_PROBES[i] if axis == 0 else _FREE_AXIS_PROBES[i]) if d is None else d
            for axis, d in enumerate(shape)
        ]
        # A declared input this large is refused while loading, though a meta probe is free:
        # the config was altered, and a real-tensor fallback would allocate it.
        charge_probe(math.prod(concrete), tuple(shape))
        meta = torch.empty(concrete, dtype=dtype, device="meta")
        probes.append(_real_probe(meta) if _STATE.real_probes else meta)
    return probes[0], probes[1]


def _real_probe(meta: Tensor) -> Tensor:
    """A real stand-in for a meta probe: zeros, but ones for integers, so that embeddings with
    mask_zero produce non-empty sequences."""
    charge_probe(meta.numel(), tuple(meta.shape))
    if meta.dtype.is_floating_point or meta.dtype.is_complex or meta.dtype == torch.bool:
        return torch.zeros(meta.shape, dtype=meta.dtype)
    return torch.ones(meta.shape, dtype=meta.dtype)


def _leaf_to_meta(value: Any) -> Any:
    return _to_meta(value) if isinstance(value, Tensor) else value


def _to_meta(tensor: Tensor) -> Tensor:
    return tensor if tensor.is_meta else torch.empty_strided(
        tensor.shape, tensor.stride(), dtype=tensor.dtype, device="meta")


def _substitute(value: Any, which: int) -> Any:
    """Replace each KerasTensor in a nested structure by its probe (with its mask attached)."""
    return tree.map_structure(lambda leaf: _probe_of(leaf, which), value)


def _probe_of(value: Any, which: int) -> Any:
    if not isinstance(value, KerasTensor):
        return value
    probe = value.probes[which]
    real = _STATE.real_probes and isinstance(probe, Tensor) and probe.is_meta
    if real:
        probe = _real_probe(probe)
    mask = getattr(value, "mask_probes", None)
    if mask is not None:
        # A tensor of its own: the stored probe never carries a mask between calls.
        probe = probe if real else probe.detach()
        mask = mask[which]
        probe._keras_mask = torch.ones(mask.shape, dtype=mask.dtype) \
            if _STATE.real_probes and mask.is_meta else mask
    return probe


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
        if not isinstance(a, Tensor):
            return a
        # Kept on meta: a graph holds no activations, whichever way its shapes were found.
        tensor = KerasTensor(_symbolic_shape(a, b), a.dtype, (_to_meta(a), _to_meta(b)),
                             index=len(created), name=name)
        mask_a, mask_b = getattr(a, "_keras_mask", None), getattr(b, "_keras_mask", None)
        if mask_a is not None and mask_b is not None:
            tensor.mask_probes = (_to_meta(mask_a), _to_meta(mask_b))
        created.append(tensor)
        return tensor

    # Numbered in `symbolic_leaves`' order (sorted keys), which a config's tensor indices follow.
    outputs = tree.map_structure(wrap, out_a, out_b)
    node = node_factory(created)
    for tensor in created:
        tensor.node = node
    return outputs


class _ProbeState(threading.local):
    """Per thread: how deep in probe runs we are, whether the probes are real tensors (a call
    that cannot run on meta), and how deep in builds that must create real weights."""

    depth = 0
    real_probes = False
    real_weights = 0


_STATE = _ProbeState()


def is_probing() -> bool:
    """True while layers run on probe tensors to find symbolic shapes: a probe call changes no
    state (stateful RNNs, variables, seed generators, losses) and no layer records a probe's
    concrete shape as its output shape."""
    return _STATE.depth > 0


@contextlib.contextmanager
def real_weights() -> Iterator[None]:
    """Tensors made inside are real even within a meta probe run: a layer built on its first
    call inside another layer's probe creates its weights here, on the real device and from
    the real random generator, exactly as an eager first call would."""
    _STATE.real_weights += 1
    try:
        yield
    finally:
        _STATE.real_weights -= 1


class _NeedsData(RuntimeError):
    """An operation inside a meta probe run whose result depends on tensor values."""


class _MetaMode(TorchDispatchMode):
    """Every tensor operation inside runs on the `meta` device first, its inputs replaced by
    meta tensors of the same shape, dtype and strides, and the output is charged to the load
    budget when one is active (`UpSampling2D(size=10**4)` or `RepeatVector(10**9)` in a file
    is refused before anything is allocated; views allocate nothing and are not charged).

    `compute=False` (shape inference): the meta output is the result; an operation meta cannot
    run (no meta kernel, a shape that depends on the data, `.item()`) or one that would write
    into a real tensor raises, and the caller runs real tensors instead.
    `compute=True` (that real run, under a load budget): after sizing, the operation runs on
    its real inputs; one that meta cannot size runs as it is.
    """

    def __init__(self, compute: bool):
        super().__init__()
        self.compute = compute

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # Otherwise torch wraps the dispatch in dynamo's `disable`: a wrapper around every
        # operation, for nothing, since nothing is compiled inside a probe.
        return False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if _STATE.real_weights:
            return func(*args, **kwargs)
        info = _op_info(func)
        if not self.compute:
            if info.mutable and _writes_real_tensor(func._schema, args, kwargs):
                raise _NeedsData(f"{func} writes into a real tensor")
            if info.returns_value:
                raise _NeedsData(f"{func} returns a value computed from the data")
        meta_args, meta_kwargs = tree.map_structure(_leaf_to_meta, (args, kwargs))
        if info.factory:
            meta_kwargs["device"] = torch.device("meta")  # zeros, empty, arange, ...
        if self.compute:
            try:
                sized = func(*meta_args, **meta_kwargs)
            except Exception:  # no meta kernel, or a shape that depends on the data
                sized = None
        else:
            sized = _cached_meta_call(func, info, meta_args, meta_kwargs)
        if sized is not None and _load_budget.active():
            returns = func._schema.returns
            for index, output in enumerate(tree.flatten(sized)):
                aliases = index < len(returns) and returns[index].alias_info is not None
                if isinstance(output, Tensor) and not aliases:
                    charge_output(output.numel(), tuple(output.shape), str(func.overloadpacket))
        return func(*args, **kwargs) if self.compute else sized


class _OpInfo:
    __slots__ = ("mutable", "returns_value", "factory")

    def __init__(self, schema: Any):
        self.mutable = schema.is_mutable
        self.returns_value = any("Tensor" not in str(ret.type) for ret in schema.returns)
        self.factory = any(argument.name == "device" for argument in schema.arguments)


_OP_INFOS: dict[Any, _OpInfo] = {}


def _op_info(func: Any) -> _OpInfo:
    info = _OP_INFOS.get(func)
    if info is None:
        info = _OP_INFOS[func] = _OpInfo(func._schema)
    return info


# Meta output layouts by operation and input layouts. Many meta kernels are Python
# decompositions (batch norm, relu: about a millisecond each), and a model repeats the same
# operation on the same shapes block after block, model after model; a layout is all a meta
# result holds, so a repeated call is answered from here.
_META_CACHE: dict[tuple, Any] = {}
_META_CACHE_SIZE = 4096


class _Uncacheable(Exception):
    pass


def _layout_key(value: Any) -> Any:
    if isinstance(value, Tensor):
        return (Tensor, tuple(value.shape), value.stride(), value.storage_offset(), value.dtype)
    if isinstance(value, (list, tuple)):
        return (type(value), tuple(_layout_key(v) for v in value))
    if isinstance(value, dict):
        return (dict, tuple((k, _layout_key(v)) for k, v in sorted(value.items())))
    if value is None or isinstance(value, (bool, int, float, str, torch.dtype, torch.device,
                                           torch.memory_format, torch.layout)):
        return (type(value), value)
    raise _Uncacheable


def _layout_of(output: Any) -> Any:
    if isinstance(output, Tensor):
        if output.storage_offset():
            raise _Uncacheable
        return (tuple(output.shape), output.stride(), output.dtype)
    if isinstance(output, (list, tuple)):
        return (type(output), tuple(_layout_of(o) for o in output))
    raise _Uncacheable


def _from_layout(layout: Any) -> Any:
    if isinstance(layout[0], type):
        return layout[0](tuple(_from_layout(item) for item in layout[1]))
    shape, stride, dtype = layout
    return torch.empty_strided(shape, stride, dtype=dtype, device="meta")


def _cached_meta_call(func: Any, info: _OpInfo, args: tuple, kwargs: dict) -> Any:
    if info.mutable:  # an in-place result is its input itself
        return func(*args, **kwargs)
    try:
        # The default dtype decides factories without a dtype and Python-scalar promotion.
        key = (func, torch.get_default_dtype(), _layout_key(args), _layout_key(kwargs))
    except _Uncacheable:
        return func(*args, **kwargs)
    layout = _META_CACHE.get(key)
    if layout is not None:
        return _from_layout(layout)
    output = func(*args, **kwargs)
    try:
        layout = _layout_of(output)
    except _Uncacheable:
        return output
    if len(_META_CACHE) >= _META_CACHE_SIZE:
        _META_CACHE.clear()
    _META_CACHE[key] = layout
    return output


def _writes_real_tensor(schema: Any, args: tuple, kwargs: dict) -> bool:
    for index, argument in enumerate(schema.arguments):
        info = argument.alias_info
        if info is None or not info.is_write:
            continue
        value = args[index] if index < len(args) else kwargs.get(argument.name)
        if any(isinstance(t, Tensor) and not t.is_meta for t in tree.flatten(value)):
            return True
    return False


def _runs_on_meta(module: nn.Module | None) -> bool:
    # torch's lazy modules (nn.LazyLinear, ...) create their weights inside forward, where
    # meta would make them meta tensors: they take real probes until they are initialised.
    return module is None or not any(
        isinstance(m, LazyModuleMixin) and m.has_uninitialized_params() for m in module.modules())


def _both(fn: Callable[[int], Any]) -> tuple[Any, Any]:
    # The larger probe (batch 2) first: a load budget refuses the batch its message names.
    second = fn(1)
    return fn(0), second


def _run_probes(fn: Callable[[int], Any], module: nn.Module | None) -> tuple[Any, Any]:
    """`fn(0), fn(1)`: a call on each probe, `module` in inference mode, changing no state.

    On `meta` first. A call that meta cannot run is run again on small real tensors: one of
    its operations needs data (`.item()`, a Python `if` on a tensor, `nonzero`), has no meta
    kernel, or writes into a real tensor; or the call is wrong, and the real run reports the
    layer's own error. Of Lamina's layers (tests/layers/test_meta_shapes.py lists them all):
    CategoryEncoding, which checks the token ids' values. (torch's fused `lstm`/`rnn_tanh`
    kernels refuse real weights with a meta input before the meta mode sees the call, so the
    recurrent layers answer a probe from their configuration: `_BaseRNN._meta_outputs`.)
    """
    modes = []
    if module is not None:
        modes = [(m, m.training) for m in module.modules()]
        module.train(False)
    _STATE.depth += 1
    try:
        with torch.no_grad():
            if _runs_on_meta(module):
                try:
                    with _MetaMode(compute=False):
                        return _both(fn)
                except (FileFormatError, ShapeError):
                    raise  # the budget's refusal, or the layer's own check of a shape
                except Exception:  # noqa: BLE001 - the real run below answers or reports
                    pass
            budget = _MetaMode(compute=True) if _load_budget.active() else contextlib.nullcontext()
            previous, _STATE.real_probes = _STATE.real_probes, True
            try:
                with budget:
                    return _both(fn)
            finally:
                _STATE.real_probes = previous
    finally:
        _STATE.depth -= 1
        for m, mode in modes:
            m.training = mode


def symbolic_call(layer: nn.Module, args: tuple, kwargs: dict,
                  probe_kwargs: dict | None = None) -> Any:
    """Call a built layer (or any module) on KerasTensors: run it on the probes, record a node.

    `probe_kwargs` are passed to the probe calls where `kwargs` does not set them, and are not
    recorded (a layer's `training=False`)."""
    def run(which: int) -> Any:
        call_kwargs = _substitute(kwargs, which)
        if probe_kwargs:
            call_kwargs = {**probe_kwargs, **call_kwargs}
        return layer(*_substitute(args, which), **call_kwargs)

    try:
        out_a, out_b = _run_probes(run, layer)
    except FileFormatError:
        raise  # a load budget's refusal names what to fix already
    except ShapeError as error:
        raise ShapeError(_symbolic_shapes_in(str(error), args, kwargs)) from error
    except Exception as error:  # a shape mismatch inside torch: say which layer and which shapes
        shapes = [t.shape for t in symbolic_leaves((args, kwargs))]
        name = getattr(layer, "name", type(layer).__name__)
        raise ShapeError(
            f"Layer {name!r} ({type(layer).__name__}) cannot be called on inputs of shape "
            f"{', '.join(str(s) for s in shapes)}: {error}"
        ) from error
    return _wrap_outputs(out_a, out_b, lambda created: Node(layer, args, kwargs, created),
                         getattr(layer, "name", None))


def _symbolic_shapes_in(message: str, args: tuple, kwargs: dict) -> str:
    """A layer's shape error names a probe's shape, (2, 5); the user wrote (None, 5)."""
    for tensor in symbolic_leaves((args, kwargs)):
        for probe in tensor.probes:
            message = message.replace(str(tuple(probe.shape)), str(tensor.shape))
    return message


def shapes_of(value: Any) -> Any:
    """The shapes of the KerasTensors in a structure (None for anything else)."""
    return tree.map_structure(lambda v: v.shape if isinstance(v, KerasTensor) else None, value)


_WRAP_MODULE_HINT = (
    "A plain torch module was called on a symbolic tensor. In a functional model, wrap it so the "
    "model tracks, trains and saves its weights: lamina.layers.TorchModuleWrapper(module)(x). "
    "(In a Sequential model plain modules work as they are.)"
)


def record_torch_op(func: Callable, args: tuple, kwargs: dict) -> Any:
    """Apply a torch function to symbolic tensors: a `TorchOp` node wraps it."""
    if any(isinstance(v, nn.Parameter) for v in tree.flatten((args, kwargs))):
        # A module's weight would be baked into the graph as a constant: never trained or saved.
        raise TypeError(
            f"{getattr(func, '__name__', func)} was applied to a symbolic tensor and a trainable "
            f"weight. {_WRAP_MODULE_HINT} A weight of your own belongs in a Layer's build()."
        )
    # TorchOp is a layer, above this module: found by name so that imports run one way.
    return _registry.lookup("layer", "TorchOp")(func, args, kwargs)._record()


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

