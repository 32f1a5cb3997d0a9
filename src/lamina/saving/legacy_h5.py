"""Keras's legacy `.h5` weights layout: `model_weights` lists its layers in the `layer_names`
attribute; each layer's group lists its weights in `weight_names`, each a dataset at that path.
Layers are matched by order (the model's layers that have weights, in `model.layers` order),
and a layer's weights are its trainable ones, then its non-trainable ones, as Keras matches
them. Lamina writes this layout in `.h5` model files so Keras 3's `load_model` reads them, and
reads it (through the same inspect/stage/commit steps as every weights file) from Keras's.
"""

from __future__ import annotations

from typing import Any

import h5py
import numpy as np
import torch
from torch import nn

from lamina.errors import FileFormatError
from lamina.layers.layer import Layer

# An attribute naming more layers or weights than this, or names longer than this, is not a
# model's: the caps bound what a hostile file can make Lamina read before it is checked.
MAX_NAMES = 200_000
MAX_NAME_CHARS = 4096
# HDF5 keeps attributes in an object header of at most 64 KiB; Keras splits longer name lists
# into numbered chunks (`layer_names0`, `layer_names1`, ...), and so does Lamina.
ATTRIBUTE_CHUNK_BYTES = 60_000


def legacy_weights(layer: nn.Module) -> list[tuple[Any, str, torch.Tensor]]:
    """(owner, Keras weight name, tensor): trainable weights first, then the others."""
    if isinstance(layer, Layer):
        entries = layer._weight_entries()
    else:
        entries = [(layer, name, tensor)
                   for name, tensor in layer.state_dict(keep_vars=True).items()]

    def trainable(tensor: torch.Tensor) -> bool:
        return isinstance(tensor, nn.Parameter) and tensor.requires_grad

    return [e for e in entries if trainable(e[2])] + [e for e in entries if not trainable(e[2])]


def _layer_name(layer: nn.Module, index: int) -> str:
    name = getattr(layer, "name", None)
    return name if isinstance(name, str) else f"{type(layer).__name__.lower()}_{index}"


def _save_names(node: h5py.Group, attribute: str, names: list[str]) -> None:
    encoded = [n.encode("utf8") for n in names]
    chunks, current, size = [], [], 0
    for name in encoded:
        if current and size + len(name) > ATTRIBUTE_CHUNK_BYTES:
            chunks.append(current)
            current, size = [], 0
        current.append(name)
        size += len(name)
    chunks.append(current)
    if len(chunks) == 1:
        node.attrs[attribute] = np.asarray(chunks[0])
        return
    for index, chunk in enumerate(chunks):
        node.attrs[f"{attribute}{index}"] = np.asarray(chunk)


def write_legacy_weights(model: nn.Module, group: h5py.Group) -> None:
    """Write `model`'s weights under `group` in Keras's legacy `model_weights` layout."""
    layers = list(getattr(model, "layers", [])) or [model]
    names = [_layer_name(layer, i) for i, layer in enumerate(layers)]
    _save_names(group, "layer_names", names)
    group.attrs["backend"] = "torch"
    for layer, layer_name in zip(layers, names):
        layer_group = group.create_group(layer_name)
        weight_names: list[str] = []
        for owner, name, tensor in legacy_weights(layer):
            owner_name = getattr(owner, "name", None)
            path = f"{layer_name}/{name}" if owner is layer or not isinstance(owner_name, str) \
                else f"{layer_name}/{owner_name}/{name}"
            unique, count = path, 1
            while unique in weight_names:
                unique, count = f"{path}_{count}", count + 1
            weight_names.append(unique)
            value = owner._to_keras_layout(name, tensor) if isinstance(owner, Layer) else tensor
            layer_group.create_dataset(unique, data=value.detach().cpu().numpy())
        _save_names(layer_group, "weight_names", weight_names)


def read_names(node: h5py.Group, attribute: str, source: str) -> list[str] | None:
    """A name-list attribute (chunked or not), checked against the caps; None when absent."""
    if attribute in node.attrs:
        parts = [attribute]
    else:
        parts = []
        while f"{attribute}{len(parts)}" in node.attrs:
            parts.append(f"{attribute}{len(parts)}")
            if len(parts) > MAX_NAMES:
                break
        if not parts:
            return None
    names: list[str] = []
    for part in parts:
        attribute_id = node.attrs.get_id(part)
        dtype = attribute_id.dtype
        count = int(np.prod(attribute_id.shape)) if attribute_id.shape else 1
        is_text = h5py.check_string_dtype(dtype) is not None or dtype.kind in "SU"
        if not is_text and count or len(attribute_id.shape or ()) > 1:
            raise FileFormatError(f"{source!r}: the attribute {part!r} is not a list of names.")
        if count + len(names) > MAX_NAMES or dtype.kind in "SU" and dtype.itemsize > MAX_NAME_CHARS:
            raise FileFormatError(f"{source!r}: the attribute {part!r} names more (or longer) "
                                  f"entries than a model has (at most {MAX_NAMES:,} of "
                                  f"{MAX_NAME_CHARS:,} characters).")
        for value in np.atleast_1d(node.attrs[part]):
            text = value.decode("utf8", errors="strict") if isinstance(value, bytes) else value
            if not isinstance(text, str) or len(text) > MAX_NAME_CHARS or not text:
                raise FileFormatError(f"{source!r}: the attribute {part!r} holds an entry that "
                                      "is not a name.")
            names.append(text)
    return names


def read_layout(group: h5py.Group, source: str) -> list[tuple[str, list[str]]] | None:
    """[(layer name, weight paths)] of a legacy `model_weights` group; None if it is not one."""
    layer_names = read_names(group, "layer_names", source)
    if layer_names is None:
        return None
    layout = []
    for name in layer_names:
        link = group.get(name, getlink=True)
        if link is None:
            raise FileFormatError(f"{source!r}: the layer {name!r} listed in `layer_names` has no "
                                  "group; the file is damaged.")
        if not isinstance(link, h5py.HardLink) or not isinstance(group[name], h5py.Group):
            raise FileFormatError(f"{source!r}: the layer {name!r} is not a group stored in the "
                                  "file.")
        weights = read_names(group[name], "weight_names", source) or []
        layout.append((name, [f"{name}/{weight}" for weight in weights]))
    return layout
