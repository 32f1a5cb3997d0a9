"""The optimizer's state inside a model file, where Keras 3 keeps it: `optimizer/vars/<i>` next
to the layers' weights, in the order of Keras's `optimizer.variables` (iterations, learning rate,
then the slots of each trainable weight in the model's order). Lamina adds attributes to that
group for an exact resume (the float64 learning rate, per-weight step counts); Keras ignores
them.

Reading follows the weights' rule: every array is checked (dtype, finite values, count) while
the file is open, and nothing reaches the optimizer unless the whole file is valid.
"""

from __future__ import annotations

import json
import math
from typing import Any

import h5py
import numpy as np

from lamina.errors import FileFormatError
from lamina.saving.file_format import WeightsInventory

GROUP = "optimizer/vars"
# The attributes Lamina writes (and reads back) on the group; any other is ignored.
ATTRIBUTES = ("lamina_slots", "lamina_learning_rate", "lamina_steps", "lamina_extra")
MAX_ATTRIBUTE_CHARS = 1 << 16


def write_optimizer_state(model, root: h5py.Group) -> None:
    """Write the model's optimizer state (when it has a built one) under `optimizer/vars`."""
    optimizer = model.optimizer if getattr(model, "_compile_config", None) is not None else None
    if optimizer is None or not getattr(optimizer, "built", False) \
            or not hasattr(optimizer, "keras_variables"):
        return
    arrays, attributes = optimizer.keras_variables(model.trainable_weights)
    group = root.require_group(GROUP)
    group.attrs["name"] = str(optimizer.name)
    for key, value in attributes.items():
        group.attrs[key] = value
    for index, array in enumerate(arrays):
        group.create_dataset(str(index), data=array)


def stage_optimizer_state(inventory: WeightsInventory, group: h5py.Group | None
                          ) -> tuple[list[np.ndarray], dict[str, Any]] | None:
    """Read and check the optimizer variables of a file (None when it has none)."""
    stored = inventory.children.get(GROUP)
    if not stored:
        return None
    source = inventory.source
    if stored != {str(i) for i in range(len(stored))}:
        raise FileFormatError(f"{source!r}: the optimizer variables are named {sorted(stored)[:8]} "
                              f"instead of 0..{len(stored) - 1}; the file is damaged.")
    arrays = []
    for index in range(len(stored)):
        path = f"{GROUP}/{index}"
        dataset = inventory.datasets.get(path)
        if dataset is None:
            raise FileFormatError(f"{source!r}: {path!r} is a group where an optimizer variable "
                                  "belongs; the file is damaged.")
        array = np.asarray(dataset[()])
        if array.dtype.kind not in "fiu":
            raise FileFormatError(f"{source!r}: the optimizer variable {path!r} has dtype "
                                  f"{array.dtype}; optimizer state is numbers.")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise FileFormatError(f"{source!r}: the optimizer variable {path!r} holds NaN or "
                                  "infinite values; the file is damaged or crafted.")
        arrays.append(array)
    if arrays[0].shape != () or arrays[0].dtype.kind not in "iu" or int(arrays[0]) < 0:
        raise FileFormatError(f"{source!r}: the optimizer's first variable (iterations) must be "
                              f"a non-negative integer scalar; it is {arrays[0].dtype} of shape "
                              f"{arrays[0].shape}.")
    return arrays, _attributes(group, source) if group is not None else {}


def _attributes(group: h5py.Group, source: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for key in ATTRIBUTES:
        if key not in group.attrs:
            continue
        value = group.attrs[key]
        if key == "lamina_steps":
            value = np.asarray(value)
            if value.ndim != 1 or value.dtype.kind != "f" or not np.isfinite(value).all() \
                    or (value < 0).any():
                raise FileFormatError(f"{source!r}: the optimizer attribute {key!r} is not a "
                                      "list of step counts.")
        elif key == "lamina_learning_rate":
            if not isinstance(value, (float, np.floating)) or math.isinf(value):
                raise FileFormatError(f"{source!r}: the optimizer attribute {key!r} is not a "
                                      "learning rate.")
            value = float(value)
        else:
            if not isinstance(value, str) or len(value) > MAX_ATTRIBUTE_CHARS:
                raise FileFormatError(f"{source!r}: the optimizer attribute {key!r} is not short "
                                      "text.")
            try:
                parsed = json.loads(value)
            except ValueError:
                raise FileFormatError(f"{source!r}: the optimizer attribute {key!r} is not "
                                      "JSON.") from None
            if key == "lamina_slots" and not (isinstance(parsed, list) and all(
                    isinstance(b, list) and all(isinstance(k, str) for k in b) for b in parsed)):
                raise FileFormatError(f"{source!r}: the optimizer attribute {key!r} is not a "
                                      "list of slot names.")
            if key == "lamina_extra" and not isinstance(parsed, dict):
                raise FileFormatError(f"{source!r}: the optimizer attribute {key!r} is not an "
                                      "object.")
        attributes[key] = value
    return attributes


def restore_optimizer_state(model, staged: tuple[list[np.ndarray], dict[str, Any]] | None,
                            source: str, weights: list | None = None) -> None:
    """Hand staged optimizer variables to the (compiled) model's optimizer; it applies them
    when it is built, at the first step. `weights`: the trainable weights in the file's order,
    when it is not the model's (`file_format.format1_trainable_weights`)."""
    optimizer = getattr(model, "optimizer", None)
    if staged is None or optimizer is None or not hasattr(optimizer, "load_keras_variables"):
        return
    arrays, attributes = staged
    try:
        optimizer.load_keras_variables(model.trainable_weights if weights is None else weights,
                                       arrays, attributes)
    except ValueError as error:
        raise FileFormatError(f"{source!r}: {error}") from None
