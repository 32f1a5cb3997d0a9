"""Checks that run before `fit`, `evaluate` or `predict` touch the model.

Everything cheap to know up front is checked here, before any forward pass: the type and range
of every argument, and for in-memory data its dtype, finiteness, lengths, feature shapes against
the model's inputs and class labels against the model's output width. A bad call therefore never
changes weights, optimizer state or normalization statistics. Each finiteness check is one
`aminmax` pass per array per call (cost: docs/provenance.md), which
also gives the label range; streamed data is guarded step by step instead (see nonfinite.py).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import torch

from lamina import tree
from lamina.errors import DataError, ShapeError

Tensor = torch.Tensor


def check_count(name: str, value: Any, minimum: int = 1, allow_none: bool = False) -> None:
    """`value` is an int >= `minimum` (None allowed when `allow_none`)."""
    if value is None and allow_none:
        return
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < minimum:
        expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        none = " or None" if allow_none else ""
        raise (TypeError if not isinstance(value, numbers.Real) else ValueError)(
            f"`{name}` must be {expected}{none}. Received: {name}={value!r}."
        )


def check_verbose(verbose: Any) -> int:
    if verbose == "auto":
        return 1
    if isinstance(verbose, str) or verbose not in (0, 1, 2):
        raise ValueError(f"`verbose` must be 'auto', 0, 1 or 2. Received: verbose={verbose!r}.")
    return int(verbose)


def check_fit_arguments(*, batch_size: Any, epochs: Any, verbose: Any, validation_split: Any,
                        shuffle: Any, initial_epoch: Any, steps_per_epoch: Any,
                        validation_steps: Any, validation_batch_size: Any, validation_freq: Any,
                        class_weight: Any, sample_weight: Any) -> None:
    check_count("batch_size", batch_size, allow_none=True)
    check_count("epochs", epochs, minimum=0)
    check_verbose(verbose)
    if isinstance(validation_split, bool) or not isinstance(validation_split, numbers.Real) \
            or not 0.0 <= validation_split < 1.0:
        raise ValueError(
            "`validation_split` must be a float in [0, 1), the fraction of the samples held out "
            f"for validation. Received: validation_split={validation_split!r}."
        )
    if not (shuffle is True or shuffle is False or isinstance(shuffle, np.bool_)
            or shuffle == "batch"):
        raise ValueError(
            f"`shuffle` must be True, False or 'batch'. Received: shuffle={shuffle!r}."
        )
    check_count("initial_epoch", initial_epoch, minimum=0)
    if initial_epoch > epochs:
        raise ValueError(
            f"`initial_epoch` ({initial_epoch}) is past `epochs` ({epochs}), so nothing would "
            "train. `epochs` is the index of the last epoch, not a count of new ones: to train "
            f"3 more epochs pass epochs={initial_epoch + 3}."
        )
    check_count("steps_per_epoch", steps_per_epoch, allow_none=True)
    check_count("validation_steps", validation_steps, allow_none=True)
    check_count("validation_batch_size", validation_batch_size, allow_none=True)
    check_count("validation_freq", validation_freq)
    if class_weight is not None:
        check_class_weight(class_weight)
        if sample_weight is not None:
            raise ValueError(
                "Pass either class_weight or sample_weight, not both: multiply the class "
                "weights into sample_weight yourself to combine them."
            )


def check_class_weight(class_weight: Any) -> None:
    if not isinstance(class_weight, dict) or not class_weight:
        raise TypeError(
            "`class_weight` must be a non-empty dict {class index: weight}, e.g. "
            f"{{0: 1.0, 1: 5.0}}. Received: class_weight={class_weight!r:.80}."
        )
    for key, weight in class_weight.items():
        if isinstance(key, (bool, np.bool_)) or not isinstance(key, (int, np.integer)) or key < 0:
            raise ValueError(
                "`class_weight` keys must be class indices (integers >= 0). Received the key "
                f"{key!r}; map class names to indices first (e.g. with StringLookup)."
            )
        if isinstance(weight, bool) or not isinstance(weight, numbers.Real) \
                or not math.isfinite(weight) or weight < 0:
            raise ValueError(
                "`class_weight` values must be finite numbers >= 0. Received "
                f"class_weight[{key!r}]={weight!r}."
            )


def check_validation_data(validation_data: Any) -> Any:
    """A tuple/list must be `(x, y)` or `(x, y, sample_weight)`: `(x,)` would fail only after a
    whole epoch of training."""
    if isinstance(validation_data, (tuple, list)):
        if len(validation_data) not in (2, 3) or validation_data[1] is None:
            raise ValueError(
                "`validation_data` must be (x_val, y_val) or (x_val, y_val, sample_weight_val); "
                f"received a {type(validation_data).__name__} of length {len(validation_data)}"
                + (" with y_val=None" if len(validation_data) in (2, 3) else "")
                + ". Validation needs targets to compute the loss."
            )
    return validation_data


def check_array_dtype(array: np.ndarray, what: str) -> None:
    """Strings, objects and complex numbers cannot be trained on; say how to encode them."""
    kind = array.dtype.kind
    if kind in "USO":
        holds = "strings" if kind in "US" or _holds_strings(array) else "Python objects"
        raise DataError(
            f"`{what}` must be a numeric array; received dtype {array.dtype} holding {holds}"
            f" (shape {array.shape}). Encode text or categories as numbers first: "
            "lamina.layers.StringLookup or TextVectorization for strings, "
            "lamina.preprocessing.sequence.pad_sequences for ragged lists, "
            "np.asarray(x, dtype='float32') for numbers stored as objects."
        )
    if kind in "cVM":
        raise DataError(
            f"`{what}` must be a real numeric array; received dtype {array.dtype}. Convert it "
            "(e.g. split complex numbers into real and imaginary features)."
        )


def _holds_strings(array: np.ndarray) -> bool:
    flat = array.reshape(-1)
    return bool(flat.size) and isinstance(flat[0], str)


def named_leaves(structure: Any, name: str) -> list[tuple[str, Tensor]]:
    """(`"x[0]"`, tensor) pairs for the tensors of a nested structure."""
    if structure is None:
        return []
    if isinstance(structure, (list, tuple)):
        return [leaf for i, s in enumerate(structure) for leaf in named_leaves(s, f"{name}[{i}]")]
    if isinstance(structure, dict):
        # Keys in `lamina.tree`'s order (sorted), the order of a dict model's `inputs`.
        keys = [path[0] for path, _ in tree.flatten_with_path(dict.fromkeys(structure))]
        return [leaf for k in keys for leaf in named_leaves(structure[k], f"{name}[{k!r}]")]
    return [(name, structure)]


def check_values(tensor: Tensor, what: str, nonnegative: bool = False) -> tuple[float, float]:
    """(min, max) of a tensor; NaN/Inf (and negatives when `nonnegative`) raise a DataError
    naming the first bad sample."""
    if tensor.numel() == 0 or tensor.dtype == torch.bool:
        return 0.0, 0.0
    low, high = (float(v) for v in torch.aminmax(tensor.detach()))
    if not (math.isfinite(low) and math.isfinite(high)):
        finite = torch.isfinite(tensor.detach())
        nan = int(torch.isnan(tensor.detach()).sum())
        infinite = int((~finite).sum()) - nan
        first = _first_bad_sample(~finite)
        raise DataError(
            f"`{what}` holds {nan} NaN and {infinite} infinite values (the first in sample "
            f"{first}); one of them is enough to turn the loss and then every weight into NaN. "
            f"Drop or impute those samples first, e.g. keep = np.isfinite({_base(what)})"
            f".reshape(len({_base(what)}), -1).all(axis=1)."
        )
    if nonnegative and low < 0:
        first = _first_bad_sample(tensor.detach() < 0)
        raise DataError(
            f"`{what}` must be >= 0; received {low:g} (sample {first}). A negative weight "
            "makes training push that sample's loss up."
        )
    return low, high


def _base(what: str) -> str:
    return what.split("[")[0].split(" ")[-1]


def _first_bad_sample(bad: Tensor) -> int:
    rows = bad.reshape(bad.shape[0], -1).any(dim=1) if bad.ndim else bad.reshape(1)
    return int(rows.nonzero()[0, 0])


def check_data(x: Any, y: Any, sample_weight: Any, prefix: str = "",
               scan_x: bool = True) -> dict[str, tuple]:
    """Finiteness of every in-memory tensor; returns {name: (min, max)} for later checks.
    `scan_x=False` leaves the features to the caller (evaluate scans them only when a result
    comes out non-finite)."""
    ranges = {}
    for part, structure, nonnegative in (("x", x if scan_x else None, False), ("y", y, False),
                                         ("sample_weight", sample_weight, True)):
        for name, tensor in named_leaves(structure, prefix + part):
            if isinstance(tensor, Tensor):  # text (a StringTensor) has no range to check
                ranges[name] = check_values(tensor, name, nonnegative)
    return ranges


def model_input_shapes(model: Any) -> list[tuple] | None:
    """The batch shapes of the model's symbolic inputs, when the model has them."""
    try:
        inputs = model.inputs
    except (AttributeError, ValueError, TypeError):
        return None
    if not inputs or any(getattr(t, "shape", None) is None for t in inputs):
        return None
    return [tuple(t.shape) for t in inputs]


def model_output_width(model: Any) -> int | None:
    """The size of the last axis of a single-output model, when the model knows it."""
    try:
        outputs = model.outputs
    except (AttributeError, ValueError, TypeError):
        return None
    if not outputs or len(outputs) != 1:
        return None
    shape = getattr(outputs[0], "shape", None)
    if not shape or shape[-1] is None:
        return None
    return int(shape[-1])


def check_against_model(model: Any, x: Any, y: Any, ranges: dict[str, tuple], sparse_loss: Any,
                        prefix: str = "") -> None:
    """Feature shapes against the model's `Input` shapes, and sparse labels against its output
    width (both only when the model knows them)."""
    expected = model_input_shapes(model)
    leaves = named_leaves(x, prefix + "x")
    if expected is not None and len(expected) == len(leaves):
        for (name, tensor), shape in zip(leaves, expected):
            received = tuple(tensor.shape)
            if len(received) == len(shape) - 1 and shape[-1] == 1:
                received += (1,)  # a functional model gives (n,) for Input(shape=(1,)) its axis
            if len(received) != len(shape) or any(
                    want is not None and want != got for want, got in zip(shape[1:], received[1:])):
                raise ShapeError(
                    f"`{name}` has shape {received}, but model {model.name!r} expects inputs of "
                    f"shape {shape} (None: any size). Each sample must have shape "
                    f"{tuple(shape[1:])}; reshape the data or change the model's Input shape."
                )
    width = model_output_width(model)
    if sparse_loss is None or width is None or not isinstance(y, Tensor):
        return
    low, high = ranges.get(prefix + "y", (0, 0))
    if y.is_floating_point() and bool((y != y.round()).any()):
        first = _first_bad_sample(y != y.round())
        raise DataError(
            f"`{prefix}y` must hold integer class indices for {type(sparse_loss).__name__}; "
            f"sample {first} has a fractional label. For one-hot or soft labels use "
            "'categorical_crossentropy'."
        )
    if 0 <= low and high < width:  # the range from the finiteness pass settles it
        return
    ignore = getattr(sparse_loss, "ignore_class", None)
    bad = (y < 0) | (y >= width)
    if ignore is not None:
        bad &= y != ignore
    if bool(bad.any()):
        first = _first_bad_sample(bad)
        value = y.reshape(y.shape[0], -1)[first][bad.reshape(y.shape[0], -1)[first]][0].item()
        raise DataError(
            f"`{prefix}y` holds class label {value:g} (sample {first}), outside [0, {width - 1}]: "
            f"model {model.name!r} has {width} output units and the loss is "
            f"{type(sparse_loss).__name__}. Use labels 0..{width - 1}, or give the model one "
            "output unit per class."
        )
