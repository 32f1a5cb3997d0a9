"""Objects <-> JSON-able configs through the registry. No pickle anywhere: loading a config can
only construct registered classes (and a `Lambda` only with `safe_mode=False`)."""

from __future__ import annotations

import inspect
import json
from typing import Any

from lamina import _registry
from lamina.errors import UnknownNameError


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
        return {"class_name": "function", "kind": kind, "config": name}
    if not hasattr(obj, "get_config"):
        raise ValueError(f"Cannot serialize {obj!r}: it has no get_config().")
    cls = type(obj)
    kind = getattr(cls, "_registry_kind", None)
    return {
        "module": cls.__module__,
        "class_name": cls.__name__,
        "registered_name": get_registered_name(cls),
        "kind": kind,
        "config": obj.get_config(),
    }


def deserialize(config: Any, custom_objects: dict[str, Any] | None = None,
                safe_mode: bool = True) -> Any:
    """Rebuild an object from `serialize`'s output (or a bare registered name)."""
    if config is None or isinstance(config, (int, float, bool)):
        return config
    if isinstance(config, list):
        return [deserialize(c, custom_objects, safe_mode) for c in config]
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"Not a serialized object: {config!r}.")
    kind = config.get("kind")
    if config["class_name"] == "function":
        return _lookup(kind or "activation", config["config"], custom_objects)
    name = config.get("registered_name") or config["class_name"]
    cls = _lookup(kind, name, custom_objects, fallback=config["class_name"])
    inner = config.get("config", {})
    signature = inspect.signature(cls.from_config).parameters
    kwargs = {}
    if "custom_objects" in signature:
        kwargs["custom_objects"] = custom_objects
    if "safe_mode" in signature:
        kwargs["safe_mode"] = safe_mode
    return cls.from_config(inner, **kwargs)


def _lookup(kind: str | None, name: str, custom_objects: dict | None, fallback: str | None = None):
    for candidate in (name, fallback):
        if candidate is None:
            continue
        if custom_objects and candidate in custom_objects:
            return custom_objects[candidate]
    kinds = [kind] if kind else list(_registry._TABLES)
    for table_kind in kinds:
        for candidate in (name, fallback):
            if candidate is not None and candidate in _registry._TABLES[table_kind]:
                return _registry._TABLES[table_kind][candidate]
    raise UnknownNameError(
        f"Could not find the {kind or 'object'} class {name!r} while loading. If it is a custom "
        "class, pass it in custom_objects={'" + str(fallback or name) + "': ...} or decorate it with "
        "lamina.saving.register_keras_serializable()."
    )


def model_from_json(json_string: str, custom_objects: dict[str, Any] | None = None):
    """A model (fresh weights) from `model.to_json()`."""
    return deserialize(json.loads(json_string), custom_objects)
