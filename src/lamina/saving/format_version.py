"""The version of Lamina's file layout, written into every model, weights and training-state
file and checked before anything else is read, so that a file from a newer Lamina is refused
instead of read wrong."""

from __future__ import annotations

from typing import Any

import h5py

from lamina import __version__
from lamina.errors import FileFormatError
from lamina.saving.file_format import string_attribute

# 2: dicts of a functional model in sorted-key order, as Keras 3 writes them (its `layers`, so
# the numbering of same-class layers, and a layer's dict outputs); 1 kept insertion order.
FORMAT_VERSION = "2"
# What this code reads of models and weights. A file without a format_version is Keras's own
# (Keras records none) or Lamina's format 1 from before `.h5` files recorded it.
KNOWN_FORMAT_VERSIONS = ("1", "2")

# Training-state files (save_state) have their own layout and version.
STATE_FORMAT_VERSION = "1"


def check_format_version(format_version: Any, lamina_version: Any, source: str,
                         known: tuple[str, ...] = KNOWN_FORMAT_VERSIONS) -> None:
    """Refuse a file whose `format_version` is none of `known` (a newer Lamina's): a new format
    may change what the other checks cannot see, such as the order weights are matched in."""
    if format_version is None or format_version in known:
        return
    writer = f", written by Lamina {_short(lamina_version)}" \
        if isinstance(lamina_version, str) else ""
    raise FileFormatError(
        f"{source!r} has format_version {_short(format_version)}{writer}, which this Lamina "
        f"({__version__}) does not know: it reads format versions "
        f"{', '.join(map(repr, known))}. Read with older code, a newer format could give wrong "
        "results silently. Upgrade Lamina (pip install --upgrade lamina) to load it."
    )


def h5_versions(h5: h5py.File, source: str, known: tuple[str, ...] = KNOWN_FORMAT_VERSIONS
                ) -> tuple[str | None, str | None]:
    """An HDF5 file's `lamina_version` and `format_version` attributes, the format checked."""
    lamina_version = string_attribute(h5, "lamina_version", 64, source)
    format_version = string_attribute(h5, "format_version", 64, source)
    check_format_version(format_version, lamina_version, source, known)
    return lamina_version, format_version


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."
