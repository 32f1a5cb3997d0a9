"""`load_torch_state_dict`: a PyTorch `state_dict` into the lamina model of the same
architecture (torchvision's ResNets, the reference LeNet/AlexNet/VGG modules of
docs/provenance.md, ...).

Each torch module prefix (`layer1.0.conv1` of `layer1.0.conv1.weight`) is matched to a lamina
layer: by name first (the torchvision-style ResNets name their layers after torchvision's module
paths, '.' written '_'), else, when every prefix cannot be named, by position (the n-th torch
module with weights to the n-th lamina layer with weights, which is how an `nn.Sequential`'s
numbered keys map). Tensors then move to Keras's layouts: a convolution weight
`(out, in, *kernel)` becomes `(*kernel, in, out)`, a linear weight `(out, in)` becomes `(in, out)`
(with the input re-ordered from torch's channel-major flattening to the `(height, width, channel)`
order of `Flatten` when the dense layer reads a flattened feature map), batch norm
`weight, bias, running_mean, running_var` become `gamma, beta, moving_mean, moving_variance`.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from lamina._symbolic import KerasTensor
from lamina.applications._builder import _weighted_layers
from lamina.layers.core import Activation, Dense, Dropout, Embedding
from lamina.layers.convolutional.conv import _BaseConv
from lamina.layers.layer import Layer
from lamina.layers.normalization import BatchNormalization, LayerNormalization
from lamina.layers.reshaping import Flatten

# Keras weight name -> torch parameter/buffer name, per layer kind.
_TORCH_NAMES = {
    "kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias",
    "moving_mean": "running_mean", "moving_variance": "running_var", "embeddings": "weight",
}
_CONVERTIBLE = (_BaseConv, Dense, BatchNormalization, LayerNormalization, Embedding)
# torch buffers with no Keras counterpart.
_IGNORED_SUFFIXES = ("num_batches_tracked",)
# Wrappers whose prefixes are not part of the architecture: DataParallel's `module.`.
_WRAPPER_PREFIXES = ("module.",)
# Other spellings of torchvision's module names (common PyTorch code calls the projection
# `shortcut`).
_ALIASES = (("shortcut", "downsample"),)


def load_torch_state_dict(model: Layer, state_dict: Mapping[str, Any]) -> None:
    """Copy a torch `state_dict` into `model`, converting layouts; raise on anything that does
    not fit (a missing or extra tensor, a shape mismatch), naming the torch key and the layer.

    >>> import lamina
    >>> model = lamina.applications.resnet18(num_classes=10)
    >>> load_torch_state_dict(model, reference.state_dict())  # doctest: +SKIP
    """
    groups = _group_by_module(state_dict)
    layers = _weighted_layers(model)
    unsupported = [layer for layer in layers if not isinstance(layer, _CONVERTIBLE)]
    if unsupported:
        raise ValueError(
            "load_torch_state_dict converts convolution, Dense, BatchNormalization, "
            "LayerNormalization and Embedding weights; model "
            f"{getattr(model, 'name', '?')!r} also has "
            f"{', '.join(f'{l.name!r} ({type(l).__name__})' for l in unsupported[:5])}. Set those "
            "layers' weights with set_weights()."
        )
    pairs = _pair_by_name(groups, layers) or _pair_by_position(groups, layers, model)
    flattened = _flattened_inputs(model)
    for prefix, tensors, layer in pairs:
        _load_layer(prefix, tensors, layer, flattened.get(id(layer)))


def _group_by_module(state_dict: Mapping[str, Any]) -> dict[str, dict[str, torch.Tensor]]:
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state_dict.items():
        for wrapper in _WRAPPER_PREFIXES:
            key = key.removeprefix(wrapper)
        prefix, _, attribute = key.rpartition(".")
        if attribute in _IGNORED_SUFFIXES:
            continue
        groups.setdefault(prefix, {})[attribute] = torch.as_tensor(value).detach()
    return groups


def _candidate_names(prefix: str) -> list[str]:
    names = [prefix.replace(".", "_")]
    for old, new in _ALIASES:
        names.append(names[0].replace(old, new))
    return names


def _pair_by_name(groups: dict[str, dict[str, torch.Tensor]],
                  layers: list[Layer]) -> list[tuple[str, dict, Layer]] | None:
    by_name = {layer.name: layer for layer in layers}
    pairs = []
    for prefix, tensors in groups.items():
        layer = next((by_name[n] for n in _candidate_names(prefix) if n in by_name), None)
        if layer is None:
            return None
        pairs.append((prefix, tensors, layer))
    named = {id(layer) for _, _, layer in pairs}
    missing = [layer.name for layer in layers if id(layer) not in named]
    if missing:
        raise ValueError(
            f"The state_dict has no tensors for layers {missing[:8]} of the model: it comes from "
            "a different architecture (another depth, or a model without that part)."
        )
    return pairs


def _pair_by_position(groups: dict[str, dict[str, torch.Tensor]], layers: list[Layer],
                      model: Layer) -> list[tuple[str, dict, Layer]]:
    if len(groups) != len(layers):
        raise ValueError(
            f"Cannot match the state_dict to model {getattr(model, 'name', '?')!r}: its module "
            f"names ({', '.join(list(groups)[:6])}, ...) are not the model's layer names, and it "
            f"has {len(groups)} modules with weights where the model has {len(layers)} layers "
            "with weights. Load a state_dict of the same architecture."
        )
    return [(prefix, tensors, layer) for (prefix, tensors), layer in zip(groups.items(), layers)]


def _flattened_inputs(model: Layer) -> dict[int, tuple[int, ...]]:
    """For each Dense layer fed (through dropout/activations) by a Flatten of a feature map:
    the map's (height, width, ..., channels) sizes, so torch's channel-major flattening can
    be re-ordered."""
    found: dict[int, tuple[int, ...]] = {}
    for module in model.modules():
        outputs = _outputs_of(module)
        seen: set[int] = set()
        stack = list(outputs)
        while stack:
            tensor = stack.pop()
            node = tensor.node
            if node is None or id(node) in seen:
                continue
            seen.add(id(node))
            stack.extend(node.inputs)
            if isinstance(node.layer, Dense) and node.inputs:
                source = node.inputs[0]
                while isinstance(source.node.layer, (Dropout, Activation)) and source.node.inputs:
                    source = source.node.inputs[0]
                flatten = source.node.layer
                if isinstance(flatten, Flatten) and len(source.node.inputs[0].shape) > 2:
                    shape = tuple(source.node.inputs[0].shape[1:])
                    if flatten.data_format == "channels_first":
                        shape = shape[1:] + shape[:1]
                    found[id(node.layer)] = shape
    return found


def _outputs_of(module: Any) -> list[KerasTensor]:
    from lamina.models.model import Model

    if not isinstance(module, Model) or not module.built:
        return []
    try:
        outputs = module.outputs
    except AttributeError:
        return []
    return [t for t in outputs if isinstance(t, KerasTensor)]


def _load_layer(prefix: str, tensors: dict[str, torch.Tensor], layer: Layer,
                flattened_shape: tuple[int, ...] | None) -> None:
    arrays = []
    used = set()
    for keras_name, _ in layer._own_weights():
        torch_name = _TORCH_NAMES.get(keras_name)
        if torch_name not in tensors:
            raise ValueError(
                f"Layer {layer.name!r} ({type(layer).__name__}) needs {keras_name!r}, but the "
                f"state_dict has no {prefix}.{torch_name} (it has "
                f"{', '.join(f'{prefix}.{k}' for k in tensors)})."
            )
        used.add(torch_name)
        value = tensors[torch_name]
        if keras_name == "kernel":
            value = _keras_kernel(value, layer, prefix, flattened_shape)
        arrays.append(value.cpu().numpy())
    extra = sorted(set(tensors) - used)
    if extra:
        raise ValueError(
            f"The state_dict has {', '.join(f'{prefix}.{k}' for k in extra)}, which layer "
            f"{layer.name!r} ({type(layer).__name__}) does not have (e.g. a convolution bias "
            "where the layer has use_bias=False): the architectures differ."
        )
    expected = [tuple(w.shape) for w in layer.get_weights()]
    received = [tuple(a.shape) for a in arrays]
    if expected != received:
        raise ValueError(
            f"The tensors of {prefix!r} have shapes {received} in Keras's layout, but layer "
            f"{layer.name!r} ({type(layer).__name__}) has weights of shapes {expected}."
        )
    layer.set_weights([np.ascontiguousarray(a) for a in arrays])


def _keras_kernel(value: torch.Tensor, layer: Layer, prefix: str,
                  flattened_shape: tuple[int, ...] | None) -> torch.Tensor:
    if isinstance(layer, _BaseConv):
        if value.ndim != layer.rank + 2:
            raise ValueError(
                f"{prefix}.weight has shape {tuple(value.shape)}; a {type(layer).__name__} "
                f"kernel comes from a torch weight of rank {layer.rank + 2}."
            )
        # (out, in, *kernel) -> (*kernel, in, out)
        return value.permute(*range(2, value.ndim), 1, 0)
    if value.ndim != 2:
        raise ValueError(f"{prefix}.weight has shape {tuple(value.shape)}; a Dense kernel comes "
                         "from a 2-D torch Linear weight.")
    if flattened_shape is not None and int(np.prod(flattened_shape)) == value.shape[1]:
        # torch flattened (channels, *spatial); Flatten gives (*spatial, channels).
        *spatial, channels = flattened_shape
        value = value.reshape(value.shape[0], channels, *spatial)
        value = value.permute(0, *range(2, value.ndim), 1).reshape(value.shape[0], -1)
    return value.t()
