"""Objects <-> JSON-able configs through the registry. No pickle anywhere: loading a config can
only construct registered classes, the listed modules of `torch.nn` (a plain `nn.Linear` used as
a layer), and a `Lambda` only with `safe_mode=False`. What a rebuilt model allocates is bounded
(`lamina._load_budget`)."""

from __future__ import annotations

import inspect
import json
from typing import Any

import torch
from torch import nn

from lamina import _load_budget, _registry
from lamina import config as config_module
from lamina.errors import UnknownNameError, UnsafeLoadError

# Plain torch.nn modules inside a model (nn.Linear, nn.Conv2d, ...) are saved under this kind:
# their class is looked up in torch.nn only, so loading constructs nothing else.
TORCH_MODULE_KIND = "torch_module"

# The torch.nn modules a config may rebuild, reviewed one by one: layers whose constructor takes
# sizes and options only, allocates nothing but its parameters and buffers, and does no I/O.
# Left out: containers (their children are positional modules), lazy modules, process-group
# modules (SyncBatchNorm, DataParallel), and modules whose output a constructor number scales
# without bound (padding, Upsample, Fold/Unfold): lamina's ZeroPadding2D, UpSampling2D, ... save.
SAFE_TORCH_MODULES = frozenset("""
    AdaptiveAvgPool1d AdaptiveAvgPool2d AdaptiveAvgPool3d AdaptiveMaxPool1d AdaptiveMaxPool2d
    AdaptiveMaxPool3d AlphaDropout AvgPool1d AvgPool2d AvgPool3d BatchNorm1d BatchNorm2d
    BatchNorm3d Bilinear CELU ChannelShuffle Conv1d Conv2d Conv3d ConvTranspose1d ConvTranspose2d
    ConvTranspose3d CosineSimilarity Dropout Dropout1d Dropout2d Dropout3d ELU Embedding
    EmbeddingBag FeatureAlphaDropout Flatten GELU GLU GRU GRUCell GroupNorm Hardshrink
    Hardsigmoid Hardswish Hardtanh Identity InstanceNorm1d InstanceNorm2d InstanceNorm3d LPPool1d
    LPPool2d LPPool3d LSTM LSTMCell LayerNorm LeakyReLU Linear LocalResponseNorm LogSigmoid
    LogSoftmax MaxPool1d MaxPool2d MaxPool3d Mish MultiheadAttention PReLU PairwiseDistance
    PixelShuffle PixelUnshuffle RMSNorm RNN RNNCell ReLU ReLU6 SELU SiLU Sigmoid Softmax
    Softmax2d Softmin Softplus Softshrink Softsign Tanh Tanhshrink Threshold Unflatten
""".split())


# Lamina writes its built-in classes under the Keras module that holds the class of the same
# name, without Lamina-only keys, so Keras 3 loads the file; reading maps Keras's modules back
# to registry tables (and only to them: a module named in a file is never imported).
KERAS_MODULES = {
    "layer": "keras.layers", "preprocessing": "keras.layers", "model": "keras.models",
    "initializer": "keras.initializers", "regularizer": "keras.regularizers",
    "constraint": "keras.constraints", "loss": "keras.losses", "metric": "keras.metrics",
    "metric_function": "keras.metrics", "optimizer": "keras.optimizers",
    "schedule": "keras.optimizers.schedules", "activation": "keras.activations",
    "callback": "keras.callbacks",
}
# Keras writes its model classes under these modules.
KERAS_MODEL_MODULES = {"Functional": "keras.src.models.functional", "Sequential": "keras",
                       "Model": "keras"}
_KINDS_OF_KERAS_PACKAGE = {
    "layers": ("layer", "preprocessing", "model"), "models": ("model", "layer"),
    "initializers": ("initializer",), "regularizers": ("regularizer",),
    "constraints": ("constraint",), "losses": ("loss",), "metrics": ("metric", "metric_function"),
    "optimizers": ("optimizer", "schedule"), "activations": ("activation",),
    "callbacks": ("callback",),
}
_DTYPE_POLICIES = ("DTypePolicy", "FloatDTypePolicy")
# Arguments Keras 3 writes that Lamina's layers do not take: dropped when they hold the value
# that means "off" (anything else is passed on, and the layer says it does not support it).
KERAS_ONLY_DEFAULTS = {
    "optional": False, "ragged": False, "quantization_config": None, "renorm": False,
    "renorm_clipping": None, "renorm_momentum": 0.99, "sliding_window": None,
    "use_gate": False, "lora_rank": None, "lora_alpha": None, "synchronized": False,
    "input_axes": None, "output_axes": None,
}
# Arguments Lamina's classes write that Keras's class of the same name does not take: left out
# of the config while they hold their default (which is then what Lamina reads back).
LAMINA_ONLY_DEFAULTS = {"SimpleRNN": {"use_cudnn": "auto"}}


def _kinds_of_module(module: Any) -> tuple[str, ...] | None:
    """The registry tables a Keras module name points into (None for other modules)."""
    if not isinstance(module, str) or not (module == "keras" or module.startswith("keras.")):
        return None
    parts = module.split(".")
    if parts[1:2] == ["src"]:
        parts = parts[:1] + parts[2:]
    if len(parts) == 1:
        return ("model", "layer")
    if parts[1] == "optimizers" and parts[2:3] == ["schedules"]:
        return ("schedule",)
    return _KINDS_OF_KERAS_PACKAGE.get(parts[1])


def _from_keras_value(value: Any) -> Any:
    """A config value as Lamina's constructors take it: a Keras dtype policy becomes its
    dtype name (mixed policies keep theirs)."""
    if isinstance(value, dict) and value.get("class_name") in _DTYPE_POLICIES \
            and _kinds_of_module(value.get("module")) is not None:
        inner = value.get("config")
        if isinstance(inner, dict) and isinstance(inner.get("name"), str):
            return inner["name"]
    return value


def _from_keras_config(inner: Any) -> Any:
    if not isinstance(inner, dict):
        return inner
    return {key: _from_keras_value(value) for key, value in inner.items()
            if not (key in KERAS_ONLY_DEFAULTS and value == KERAS_ONLY_DEFAULTS[key]
                    and type(value) is type(KERAS_ONLY_DEFAULTS[key]))}


def register_keras_serializable(package: str = "Custom", name: str | None = None):
    """Register a custom class or function so models using it can be saved and loaded by name.

    >>> @register_keras_serializable(package="my_package")
    ... class MyLayer(lamina.layers.Layer): ...
    """

    def decorator(obj):
        kind = getattr(obj, "_registry_kind", None) or "function"
        registered = f"{package}>{name or obj.__name__}"
        _registry.register(registered, obj.__name__, kind=kind)(obj)
        return obj

    return decorator


def get_registered_name(obj: Any) -> str:
    return _registry.canonical_name(obj) or getattr(obj, "__name__", type(obj).__name__)


def serialize(obj: Any) -> Any:
    """A JSON-able description of a layer, model, loss, optimizer, initializer, function, ..."""
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if isinstance(obj, (list, tuple)):
        return [serialize(v) for v in obj]
    if isinstance(obj, dict):
        return {k: serialize(v) for k, v in obj.items()}
    if inspect.isfunction(obj) or inspect.isbuiltin(obj):
        name = _registry.canonical_name(obj)
        if name is None:
            raise ValueError(
                f"Cannot serialize the function {obj!r}: it is not registered. Decorate it with "
                "lamina.saving.register_keras_serializable() so saved models can name it."
            )
        kind = _registry._CANONICAL[id(obj)][0]
        if kind in KERAS_MODULES and ">" not in name:
            return {"module": KERAS_MODULES[kind], "class_name": "function", "config": name,
                    "registered_name": name}
        return {"class_name": "function", "kind": kind, "config": name}
    if not hasattr(obj, "get_config"):
        if isinstance(obj, nn.Module):
            return _serialize_torch_module(obj)
        raise ValueError(f"Cannot serialize {obj!r}: it has no get_config().")
    cls = type(obj)
    kind = getattr(cls, "_registry_kind", None)
    registered = get_registered_name(cls)
    if kind in KERAS_MODULES and registered == cls.__name__ and cls.__module__.startswith("lamina"):
        # A built-in class: written as Keras writes its class of the same name.
        inner = obj.get_config()
        absent = LAMINA_ONLY_DEFAULTS.get(cls.__name__, {})
        return {
            "module": KERAS_MODEL_MODULES.get(cls.__name__, KERAS_MODULES[kind]),
            "class_name": cls.__name__,
            "config": {k: v for k, v in inner.items() if k not in absent or v != absent[k]},
            "registered_name": None,
        }
    document = {
        "module": cls.__module__,
        "class_name": cls.__name__,
        "registered_name": get_registered_name(cls),
        "kind": kind,
        "config": obj.get_config(),
    }
    if getattr(cls, "_custom_build_config", False):
        # A layer whose state does not follow from its input shape alone: Keras's loader (and
        # Lamina's) rebuild it from this before loading its weights.
        build_config = obj.get_build_config()
        if build_config is not None:
            document["build_config"] = serialize(build_config)
    return document


def deserialize(config: Any, custom_objects: dict[str, Any] | None = None,
                safe_mode: bool = True, *,
                max_elements: int | None = _load_budget.DEFAULT_CONFIG_ELEMENTS) -> Any:
    """Rebuild an object from `serialize`'s output (or a bare registered name).

    A config is data from whoever wrote it: the model it describes may hold at most
    `max_elements` weight values (2**31 by default; None lifts the bound), and no input or
    graph operation may exceed `lamina._load_budget.MAX_PROBE_ELEMENTS` values, checked before
    anything is allocated. Inside `load_model`, the file's own budget applies instead.
    """
    if max_elements is not None and not _load_budget.active():
        with _load_budget.config_budget(max_elements):
            return deserialize(config, custom_objects, safe_mode)
    if config is None or isinstance(config, (int, float, bool)):
        return config
    if isinstance(config, list):
        return [deserialize(c, custom_objects, safe_mode) for c in config]
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"Not a serialized object: {config!r}.")
    kind = config.get("kind")
    if kind == TORCH_MODULE_KIND:
        return _deserialize_torch_module(config)
    keras_kinds = _kinds_of_module(config.get("module"))
    kinds = (kind,) if kind else keras_kinds
    if config["class_name"] == "function":
        return _lookup(kinds or ("activation",), config["config"], custom_objects)
    name = config.get("registered_name") or config["class_name"]
    cls = _lookup(kinds, name, custom_objects, fallback=config["class_name"])
    inner = config.get("config", {})
    if keras_kinds is not None or "kind" not in config:
        # Keras's (or Keras's legacy `.h5` configs, which name no module at the top level);
        # Keras writes no "kind", also for a user's custom class (whose dtype is a policy).
        inner = _from_keras_config(inner)
    signature = inspect.signature(cls.from_config).parameters
    kwargs = {}
    if "custom_objects" in signature:
        kwargs["custom_objects"] = custom_objects
    if "safe_mode" in signature:
        kwargs["safe_mode"] = safe_mode
    instance = cls.from_config(inner, **kwargs)
    if getattr(cls, "_custom_build_config", False):
        instance._load_build_config(config.get("build_config"))
    return instance


def _lookup(kinds: tuple[str, ...] | str | None, name: str, custom_objects: dict | None,
            fallback: str | None = None):
    for candidate in (name, fallback):
        if candidate is None:
            continue
        if custom_objects and candidate in custom_objects:
            return custom_objects[candidate]
    kind = kinds if isinstance(kinds, str) or kinds is None else kinds[0]
    kinds = [kinds] if isinstance(kinds, str) else list(kinds or _registry._TABLES)
    for table_kind in kinds:
        if table_kind not in _registry._TABLES:
            continue
        for candidate in (name, fallback):
            if candidate is not None and candidate in _registry._TABLES[table_kind]:
                return _registry._TABLES[table_kind][candidate]
    raise UnknownNameError(
        f"Could not find the {kind or 'object'} class {name!r} while loading. If it is a custom "
        "class, pass it in custom_objects={'" + str(fallback or name) + "': ...} or decorate it with "
        "lamina.saving.register_keras_serializable()."
    )


def model_from_json(json_string: str, custom_objects: dict[str, Any] | None = None, *,
                    max_elements: int | None = _load_budget.DEFAULT_CONFIG_ELEMENTS):
    """A model (fresh weights) from `model.to_json()`, of at most `max_elements` weight values
    (None: no bound; see `deserialize`)."""
    return deserialize(json.loads(json_string), custom_objects, max_elements=max_elements)


def _serialize_torch_module(module: nn.Module) -> dict[str, Any]:
    """A torch.nn module's constructor arguments, read back from the attributes torch stores
    them in, and checked by rebuilding the module and comparing it with the original."""
    cls = type(module)
    if getattr(nn, cls.__name__, None) is not cls:
        raise ValueError(
            f"Cannot save the torch module {cls.__module__}.{cls.__qualname__} used as a layer: "
            "only torch.nn's own modules (nn.Linear, nn.Conv2d, ...) can be rebuilt from a saved "
            "config without running code. Give the module get_config() and from_config() and "
            "register it with lamina.saving.register_keras_serializable(), write it as a lamina "
            "Layer, or save only the weights with model.save_weights(path)."
        )
    parameters = _constructor_parameters(cls)
    if cls.__name__ not in SAFE_TORCH_MODULES:
        raise ValueError(
            f"Cannot save the torch module nn.{cls.__name__} used as a layer: it is not on "
            "Lamina's list of torch.nn modules a saved model may rebuild (see docs/security.md), "
            "so the file could not be loaded. Use the lamina layer that does the same (e.g. "
            "ZeroPadding2D, UpSampling2D), or save only the weights with "
            "model.save_weights(path)."
        )
    arguments: dict[str, Any] = {}
    for name, parameter in parameters.items():
        if parameter.kind is parameter.VAR_KEYWORD or name.startswith("_") or name == "device":
            continue
        if name == "dtype":
            floating = next((t.dtype for t in module.state_dict().values()
                             if t.is_floating_point()), None)
            if floating is not None:
                arguments["dtype"] = config_module.dtype_name(floating)
            continue
        if not hasattr(module, name):
            continue  # not stored by torch: the default applies, and the check below confirms it
        value = getattr(module, name)
        if isinstance(parameter.default, bool) and (value is None or isinstance(value, torch.Tensor)):
            value = value is not None  # `bias=True` is stored as the bias tensor itself
        if parameter.default is not parameter.empty and _is_plain(value) and \
                value == parameter.default and type(value) is type(parameter.default):
            continue  # defaults stay implicit (nn.GRU refuses even a default proj_size=0)
        arguments[name] = _encode_plain(value, cls.__name__, name)
    _check_rebuilds(module, arguments)
    return {"module": "torch.nn", "class_name": cls.__name__,
            "registered_name": f"torch.nn.{cls.__name__}", "kind": TORCH_MODULE_KIND,
            "config": arguments}


def _constructor_parameters(cls: type) -> dict[str, inspect.Parameter]:
    """The keyword parameters that construct `cls`. nn.LSTM and nn.GRU take `*args` and pass
    them on after a fixed leading argument (the RNN mode): use the base's signature without it."""
    own = list(inspect.signature(cls.__init__).parameters.values())[1:]
    if not any(p.kind is p.VAR_POSITIONAL for p in own):
        return {p.name: p for p in own}
    if any(p.kind is not p.VAR_KEYWORD and p.kind is not p.VAR_POSITIONAL for p in own):
        raise ValueError(
            f"Cannot save the torch container {cls.__name__} used as a layer: its children are "
            "passed positionally. Add its modules to the model one by one instead."
        )
    for base in cls.__mro__[1:]:
        if base is nn.Module:
            break
        inherited = list(inspect.signature(base.__init__).parameters.values())[1:]
        if inherited and not any(p.kind is p.VAR_POSITIONAL for p in inherited):
            # The first argument (the mode) is supplied by the subclass itself.
            return {p.name: p for p in inherited[1:]}
    raise ValueError(
        f"Cannot save the torch container {cls.__name__} used as a layer: its children are passed "
        "positionally. Add its modules to the model one by one instead."
    )


def _plain_attributes(module: nn.Module) -> dict[str, Any]:
    return {k: v for k, v in vars(module).items()
            if not k.startswith("_") and k != "training" and _is_plain(v)}


def _is_plain(value: Any) -> bool:
    if value is None or isinstance(value, (str, int, float, bool)):
        return True
    return isinstance(value, (list, tuple)) and all(_is_plain(v) for v in value)


def _encode_plain(value: Any, class_name: str, argument: str) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, tuple):
        return {"__tuple__": [_encode_plain(v, class_name, argument) for v in value]}
    if isinstance(value, list):
        return [_encode_plain(v, class_name, argument) for v in value]
    raise ValueError(
        f"Cannot save the torch module {class_name} used as a layer: its argument {argument!r} "
        f"holds {type(value).__name__}, which a config cannot describe. Write the module as a "
        "lamina Layer with get_config(), or save only the weights with model.save_weights(path)."
    )


def _decode_plain(value: Any) -> Any:
    if isinstance(value, dict) and "__tuple__" in value:
        return tuple(_decode_plain(v) for v in value["__tuple__"])
    if isinstance(value, list):
        return [_decode_plain(v) for v in value]
    return value


def _torch_module_arguments(arguments: dict[str, Any]) -> dict[str, Any]:
    decoded = {k: _decode_plain(v) for k, v in arguments.items()}
    if "dtype" in decoded:
        decoded["dtype"] = config_module.torch_dtype(decoded["dtype"])
    return decoded


def _check_rebuilds(module: nn.Module, arguments: dict[str, Any]) -> None:
    # Built on the meta device: no memory is allocated however large the module.
    try:
        with torch.device("meta"):
            rebuilt = type(module)(**_torch_module_arguments(arguments))
    except Exception as error:  # the arguments read back do not construct the class
        rebuilt, reason = None, f"{type(error).__name__}: {error}"
    else:
        shapes = {k: tuple(v.shape) for k, v in module.state_dict().items()}
        rebuilt_shapes = {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()}
        same = (repr(rebuilt) == repr(module) and shapes == rebuilt_shapes
                and _plain_attributes(rebuilt) == _plain_attributes(module))
        reason = None if same else f"rebuilt as {rebuilt!r}"
    if reason is not None:
        raise ValueError(
            f"Cannot save the torch module {module!r} used as a layer: its constructor arguments "
            f"cannot be recovered from its attributes ({reason}). Write it as a lamina Layer with "
            "get_config(), or save only the weights with model.save_weights(path)."
        )


def _deserialize_torch_module(config: dict[str, Any]) -> nn.Module:
    name = config.get("class_name")
    if name not in SAFE_TORCH_MODULES:
        raise UnsafeLoadError(
            f"The file names the torch module {name!r}, which is not a module of torch.nn that "
            "loading may rebuild; loading constructs only listed torch.nn layers (see "
            "docs/security.md) and registered lamina classes. If the model needs it, write a "
            "lamina Layer registered with lamina.saving.register_keras_serializable()."
        )
    cls = getattr(nn, name)
    arguments = config.get("config", {})
    if not isinstance(arguments, dict) or "device" in arguments:
        raise UnsafeLoadError(
            f"The saved torch module nn.{name} must store its constructor arguments as an object "
            f"without `device` (a model loads on the CPU). Received: {arguments!r:.80}."
        )
    arguments = _torch_module_arguments(arguments)
    if _load_budget.active():
        # Sized on the meta device first: the budget refuses it before any memory is taken.
        with torch.device("meta"):
            sized = cls(**arguments)
        _load_budget.charge_weight(
            sum(t.numel() for t in (*sized.parameters(), *sized.buffers())), f"nn.{name}")
    return cls(**arguments)
