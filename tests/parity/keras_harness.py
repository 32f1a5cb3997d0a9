"""Shared pieces of the Keras 3 parity suite: the real Keras (torch backend) as an oracle.

Keras and Lamina share Keras's weight layouts, so a unit built in both on the same input shape
takes the same weights through `get_weights` / `set_weights`, and the two must then compute the
same numbers. A row that agrees less tightly than `TOLERANCE` says why; a unit with no row must
be listed, with its reason, among the exclusions.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

import numpy as np
import pytest
import torch

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":
    pytest.skip("the parity suite runs Keras on its torch backend", allow_module_level=True)

from lamina import _registry  # noqa: E402

TOLERANCE = 1e-5


def registered_classes(kind: str) -> dict[str, type]:
    """Each of Lamina's own registered classes of `kind` once, under its canonical name (classes
    that other tests register in the same process are theirs, not Lamina's)."""
    found: dict[str, type] = {}
    for name in _registry.names(kind):
        obj = _registry.lookup(kind, name)
        if inspect.isclass(obj) and obj.__module__.split(".")[0] == "lamina":
            found.setdefault(_registry.canonical_name(obj) or obj.__name__, obj)
    return found


def to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(keras.ops.convert_to_numpy(value))


# Losses and metrics are compared relatively: a loss of 3e-5 is as wrong at twice its value as one
# of 3.0, which an absolute 1e-5 would let through. The absolute floor only absorbs float32
# rounding of values that should be zero.
RELATIVE_FLOOR = 1e-9


def assert_close(lamina_value: Any, keras_value: Any, tolerance: float, what: str,
                 relative: bool = False) -> None:
    np.testing.assert_allclose(to_numpy(lamina_value), to_numpy(keras_value), rtol=tolerance,
                               atol=RELATIVE_FLOOR if relative else tolerance, err_msg=what)


def uncovered(registered: dict[str, type], rows: set[str], excluded: dict[str, str]) -> list[str]:
    """Registered names with neither a parity row nor a documented exclusion."""
    stale = set(excluded) - set(registered)
    assert not stale, f"exclusions for units that no longer exist: {sorted(stale)}"
    assert not set(rows) & set(excluded), "a unit has both a row and an exclusion"
    return sorted(set(registered) - rows - set(excluded))
