"""One name -> object table behind every `get()`, the zoo and deserialization.

Each kind of thing (layer, loss, metric, optimizer, ...) has its own table. Base classes name
their kind in a `_registry_kind` class attribute, so `@register("Dense")` on a `Layer` subclass
needs no kind; plain functions (activations, losses as functions) pass `kind=` explicitly.
"""

from __future__ import annotations

import difflib
from collections import defaultdict
from typing import Any, Callable, TypeVar

from lamina.errors import UnknownNameError

T = TypeVar("T")

_TABLES: dict[str, dict[str, Any]] = defaultdict(dict)
# The canonical (first) name of each registered object, used when serializing it.
_CANONICAL: dict[int, tuple[str, str]] = {}


def register(*names: str, kind: str | None = None) -> Callable[[T], T]:
    """Register an object under one or more names; the first is the canonical one.

    >>> @register("my_relu", kind="activation")
    ... def my_relu(x):
    ...     return x.clamp_min(0)
    """

    def decorator(obj: T) -> T:
        table_kind = kind or getattr(obj, "_registry_kind", None)
        if table_kind is None:
            raise TypeError(
                f"Cannot infer the registry kind of {obj!r}; pass kind= explicitly."
            )
        all_names = names or (obj.__name__,)
        for name in all_names:
            _TABLES[table_kind][name] = obj
        _CANONICAL.setdefault(id(obj), (table_kind, all_names[0]))
        return obj

    return decorator


def lookup(kind: str, name: str, custom_objects: dict[str, Any] | None = None) -> Any:
    """The object registered as `name` in `kind`, or an error that lists the close valid names."""
    if custom_objects and name in custom_objects:
        return custom_objects[name]
    table = _TABLES[kind]
    if name in table:
        return table[name]
    # Keras accepts names case-insensitively in a few places ('Adam', 'adam'); so do we.
    folded = {key.lower(): value for key, value in table.items()}
    if name.lower() in folded:
        return folded[name.lower()]
    raise UnknownNameError(unknown_name_message(kind, name, table))


def unknown_name_message(kind: str, name: str, valid: Any) -> str:
    valid = sorted(valid)
    close = difflib.get_close_matches(name, valid, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return (
        f"Unknown {kind} name {name!r}.{hint} Valid names are: {', '.join(valid)}. "
        f"For a custom {kind}, pass the object itself or register it with "
        f"lamina.saving.register_keras_serializable()."
    )


def names(kind: str) -> list[str]:
    """All registered names of a kind, sorted."""
    return sorted(_TABLES[kind])


def canonical_name(obj: Any) -> str | None:
    """The name an object was first registered under, or None."""
    entry = _CANONICAL.get(id(obj))
    return entry[1] if entry else None
