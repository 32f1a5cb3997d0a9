"""What the doctor needs to know about a model: its weighted layers in forward order (the
gradient groups), the activations it can watch, and the facts remedies are written from.

Layers are named as a Keras user knows them (`dense_3`); inside `lamina.wrap(module)` models,
plain torch modules are named by their module path (`net.4`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from torch import nn

# Layer kinds whose gradients are sparse by nature (only the rows of the tokens seen): left out
# of the depth comparison, where they would look vanished.
_SPARSE_KINDS = ("Embedding", "EmbeddingBag")
_NORMALIZING_KINDS = ("Rescaling", "Normalization")
_RECURRENT_ATTRIBUTES = ("cell", "recurrent_activation")
_TORCH_ACTIVATIONS = {nn.ReLU: "relu", nn.Sigmoid: "sigmoid", nn.Tanh: "tanh"}


@dataclass
class Unit:
    """One weighted layer: the parameters the doctor groups its gradient statistics by."""

    name: str
    kind: str
    parameters: list = field(default_factory=list)
    activation: str | None = None
    width: int | None = None
    initializer: str | None = None
    bias_initializer: str | None = None

    @property
    def has_kernel(self) -> bool:
        return any(p.ndim >= 2 for p in self.parameters) and self.kind not in _SPARSE_KINDS

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "activation": self.activation,
                "width": self.width, "initializer": self.initializer,
                "bias_initializer": self.bias_initializer, "has_kernel": self.has_kernel,
                "params": int(sum(p.numel() for p in self.parameters))}


@dataclass
class Tap:
    """An activation output the doctor watches: relu units that may die, sigmoid/tanh outputs
    that may saturate."""

    name: str
    module: nn.Module
    kind: str
    unit_axis: int
    position: int


def _is_lamina_layer(module: nn.Module) -> bool:
    from lamina.layers.layer import Layer
    from lamina.models.model import Model

    return isinstance(module, Layer) and not isinstance(module, Model)


def display_name(model: nn.Module, path: str) -> str:
    """The Keras name of the outermost lamina layer on `path`, else the torch module path
    (without the wrapper's own `module.` prefix)."""
    from lamina.models.wrapped import WrappedModule

    parts = path.split(".") if path else []
    module = model
    for part in parts:
        module = getattr(module, part)
        if _is_lamina_layer(module):
            return module.name
    if isinstance(model, WrappedModule) and parts[:1] == ["module"]:
        parts = parts[1:]
    return ".".join(parts) or getattr(model, "name", type(model).__name__)


def _name_of(value: Any) -> str | None:
    if value is None:
        return None
    from lamina import activations

    try:
        name = activations.serialize(value)
    except (TypeError, ValueError):
        name = None
    if isinstance(name, str):
        return name
    if isinstance(value, str):
        return value
    return getattr(value, "__name__", None) or type(value).__name__


def _initializer_name(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    kind = type(value).__name__
    config = getattr(value, "get_config", lambda: {})()
    if kind == "VarianceScaling":
        scale, mode, dist = (config.get(k) for k in ("scale", "mode", "distribution"))
        known = {(2.0, "fan_in", "truncated_normal"): "he_normal",
                 (2.0, "fan_in", "uniform"): "he_uniform",
                 (1.0, "fan_avg", "uniform"): "glorot_uniform",
                 (1.0, "fan_avg", "truncated_normal"): "glorot_normal",
                 (1.0, "fan_in", "truncated_normal"): "lecun_normal"}
        return known.get((scale, mode, dist), kind)
    if kind in ("GlorotUniform", "GlorotNormal", "HeNormal", "HeUniform", "LecunNormal",
                "LecunUniform", "Zeros", "Ones", "Orthogonal"):
        return re.sub(r"(?<!^)(?=[A-Z])", "_", kind).lower()
    details = ", ".join(f"{k}={v:g}" for k, v in config.items()
                        if isinstance(v, (int, float)) and k != "seed" and v is not None)
    return f"{kind}({details})" if details else kind


def _width(module: nn.Module) -> int | None:
    for attribute in ("units", "filters", "out_features", "out_channels", "hidden_size",
                      "output_dim"):
        value = getattr(module, attribute, None)
        if isinstance(value, int):
            return value
    return None


def activation_kind(module: nn.Module) -> str | None:
    """'relu', 'sigmoid' or 'tanh' when the module's output is that activation's."""
    for cls, kind in _TORCH_ACTIVATIONS.items():
        if isinstance(module, cls):
            return kind
    if not _is_lamina_layer(module) or any(hasattr(module, a) for a in _RECURRENT_ATTRIBUTES):
        return None
    if type(module).__name__ == "ReLU":
        return "relu"
    name = _name_of(getattr(module, "activation", None))
    return name if name in ("relu", "sigmoid", "tanh") else None


def units_and_taps(model: nn.Module) -> tuple[list[Unit], list[Tap]]:
    """The weighted layers (merged by display name, in registration order, which is the forward
    order of Sequential, functional and `nn.Sequential` models) and the watched activations."""
    units: dict[str, Unit] = {}
    taps: list[Tap] = []
    for position, (path, module) in enumerate(model.named_modules()):
        parameters = [p for p in module.parameters(recurse=False) if p.requires_grad]
        if parameters and path:
            name = display_name(model, path)
            unit = units.get(name)
            if unit is None:
                owner = _owner(model, path)
                unit = units[name] = Unit(
                    name=name, kind=type(owner).__name__,
                    activation=_name_of(getattr(owner, "activation", None)),
                    width=_width(owner),
                    initializer=_initializer_name(getattr(owner, "kernel_initializer", None)),
                    bias_initializer=_initializer_name(getattr(owner, "bias_initializer", None)))
            unit.parameters.extend(parameters)
        kind = activation_kind(module) if path else None
        if kind is not None:
            channels_first = getattr(module, "data_format", None) == "channels_first" or \
                not _is_lamina_layer(module)
            taps.append(Tap(display_name(model, path), module, kind,
                            1 if channels_first else -1, position))
    return list(units.values()), taps


def _owner(model: nn.Module, path: str) -> nn.Module:
    """The module a unit is named after (an LSTM rather than its cell)."""
    module = model
    for part in path.split("."):
        module = getattr(module, part)
        if _is_lamina_layer(module):
            return module
    return module


def describe_model(model: nn.Module, units: list[Unit]) -> dict[str, Any]:
    from lamina.models.wrapped import WrappedModule

    kinds = [type(m).__name__ for m in model.modules()]
    return {
        "name": getattr(model, "name", type(model).__name__),
        "wrapped": isinstance(model, WrappedModule),
        "params": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
        "units": [u.describe() for u in units],
        "batchnorm": any("BatchNorm" in k or "LayerNorm" in k for k in kinds),
        "dropout": any("Dropout" in k for k in kinds),
        "normalizes_inputs": any(k in _NORMALIZING_KINDS for k in kinds),
        "embeds_inputs": any(k in _SPARSE_KINDS for k in kinds),
        "residual": any(k == "Add" for k in kinds),
    }
