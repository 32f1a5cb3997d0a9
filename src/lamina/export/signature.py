"""Example inputs and dynamic dimensions for tracing a model (torch.export and ONNX).

An `input_signature` is what Keras's `export` takes: None (the model's own input shapes), or
one entry per model input, each a shape tuple (None marks a dimension free to vary, such as
the batch), a `lamina.layers.InputSpec`-like object with `.shape` and `.dtype`, or an example
array or tensor (its batch axis is then the one dynamic dimension).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from lamina import config, tree

# torch.export specializes sizes 0 and 1, so a free dimension is traced at this size.
TRACE_SIZE = 2


class InferenceWrapper(torch.nn.Module):
    """`model` behind a one-argument `forward(inputs)`: a Layer's `forward(*args, **kwargs)`
    gives torch.export no named argument to attach dynamic shapes to."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        # A model of dict inputs gets the list (in `model.inputs`' sorted-key order) as a dict:
        # it refuses a list when its keys are not sorted (docs/keras-files.md).
        struct = getattr(model, "_inputs_struct", None)
        self._keys = [path[0] for path, _ in tree.flatten_with_path(dict.fromkeys(struct))] \
            if isinstance(struct, dict) and len(struct) > 1 else None

    def forward(self, inputs: Any) -> Any:
        if self._keys is not None and isinstance(inputs, (list, tuple)):
            inputs = dict(zip(self._keys, inputs))
        return self.model(inputs)


@contextlib.contextmanager
def quiet_torch_deprecations() -> Iterator[None]:
    """Silence the Future/DeprecationWarnings torch's exporters raise about their own internals
    (not the user's code, and fatal under `-W error`)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        yield


def _model_inputs(model: Any) -> list[Any]:
    """The model's symbolic inputs (shape and dtype), or its build shape(s)."""
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if inputs:
        return list(inputs)
    shape = getattr(model, "_build_input_shape", None)
    if shape is not None and not isinstance(shape, dict):
        shapes = [tuple(s) for s in shape] if shape and all(
            isinstance(s, (tuple, list)) for s in shape) else [tuple(shape)]
        # A subclassed model records no input dtype; one that starts with an Embedding reads
        # token ids.
        if _starts_with_embedding(model):
            return [_Spec(s, torch.int64) for s in shapes]
        return shapes
    raise ValueError(
        f"Model {getattr(model, 'name', '?')!r} has no known input shape, so it cannot be traced "
        "for export. Build it (call it on data, or give it an Input) or pass "
        "input_signature=[(None, ...)], one shape per input with None for the batch."
    )


class _Spec:
    def __init__(self, shape: tuple[int | None, ...], dtype: torch.dtype) -> None:
        self.shape, self.dtype = shape, dtype


def _starts_with_embedding(model: Any) -> bool:
    from lamina.layers.core import Embedding

    for module in model.modules():
        if isinstance(module, (Embedding, torch.nn.Embedding)):
            return True
        if module is not model and any(True for _ in module.parameters(recurse=False)):
            return False
    return False


def example_inputs(model: Any, input_signature: Any = None
                   ) -> tuple[tuple[Any, ...], tuple[Any, ...], list[str]]:
    """`(args, dynamic_shapes, names)` for `torch.export.export(model, args, dynamic_shapes=...)`.

    A model with several inputs takes them as one list argument, as `model([a, b])` does.
    """
    if input_signature is None:
        entries: list[Any] = _model_inputs(model)
    elif isinstance(input_signature, (list, tuple)) and input_signature and not all(
        isinstance(size, int) or size is None for size in input_signature
    ):
        entries = list(input_signature)
    else:
        entries = [input_signature]
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    tensors, dynamic = [], []
    batch = torch.export.Dim("batch")
    for index, entry in enumerate(entries):
        tensor, free = _example(entry, index, device)
        tensors.append(tensor)
        # Other free dimensions are dynamic where the traced code allows it; one it loops over
        # (an RNN's time axis) is fixed at the traced size: give it in the signature.
        dims = {axis: batch if axis == 0 else torch.export.Dim.AUTO for axis in free}
        dynamic.append(dims or None)
    names = [getattr(t, "name", None) or f"input_{i}" for i, t in enumerate(entries)]
    names = [name if isinstance(name, str) else f"input_{i}" for i, name in enumerate(names)]
    args = (tensors[0],) if len(tensors) == 1 else (tensors,)
    if not getattr(model, "built", True):
        # Weights are created on the first call; inside the tracer they would be fake tensors.
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                model(*args)
        finally:
            model.train(was_training)
    return args, ((dynamic[0],) if len(tensors) == 1 else (dynamic,)), names


def _example(entry: Any, index: int, device: torch.device) -> tuple[torch.Tensor, list[int]]:
    if isinstance(entry, (torch.Tensor, np.ndarray)):
        tensor = torch.as_tensor(entry, device=device)
        if tensor.is_floating_point() and tensor.dtype == torch.float64:
            tensor = tensor.to(config.torch_dtype(None))
        return tensor, [0] if tensor.dim() and tensor.shape[0] > 1 else []
    shape = getattr(entry, "shape", entry)
    dtype = config.torch_dtype(getattr(entry, "dtype", None) or None)
    shape = tuple(shape) if isinstance(shape, (tuple, list, torch.Size)) else shape
    if not isinstance(shape, (tuple, list)) or not all(
        size is None or (isinstance(size, int) and size > 0) for size in shape
    ):
        raise ValueError(
            f"input_signature entry {index} must be a shape tuple (None for a free dimension), "
            f"an object with .shape and .dtype, or an example array. Received: {entry!r}."
        )
    free = [axis for axis, size in enumerate(shape) if size is None]
    sizes = [TRACE_SIZE if size is None else size for size in shape]
    if dtype.is_floating_point:
        tensor = torch.rand(sizes, dtype=dtype, device=device)
    else:
        tensor = torch.zeros(sizes, dtype=dtype, device=device)
    return tensor, free
