"""How much memory rebuilding a model from a file may allocate.

A config is data from whoever wrote the file: `units=100000` twice asks for a 40 GB kernel and
`Input(shape=(100000, 100000))` for a 40 GB probe, before any weight is read. While a file's
model is rebuilt, every weight and probe tensor is charged here first; the budget is what the
file's own weights can fill, so a model larger than its weights is refused before it allocates.

A leaf module: layers import it, and it imports nothing of Lamina's but the errors.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator

from lamina.errors import FileFormatError

# Weights created outside the file's stored tensors (non-persistent buffers, optimizer-free
# helpers) stay small; this slack keeps such models loadable without opening the door to bombs.
WEIGHT_SLACK_ELEMENTS = 1 << 20
# One probe tensor (an input's concrete stand-in while shapes are inferred) may not exceed this:
# 2**27 float32 elements is 512 MiB, beyond any image or sequence input a saved model needs.
MAX_PROBE_ELEMENTS = 1 << 27

_state = threading.local()


@contextlib.contextmanager
def load_budget(stored_elements: int, source: str) -> Iterator[None]:
    """Within this block, weights may total `stored_elements` (+ slack) and each probe is capped.

    `source` names the file in error messages.
    """
    previous = getattr(_state, "budget", None)
    _state.budget = [stored_elements + WEIGHT_SLACK_ELEMENTS, source]
    try:
        yield
    finally:
        _state.budget = previous


def active() -> bool:
    return getattr(_state, "budget", None) is not None


def charge_weight(num_elements: int, what: str) -> None:
    """Account for a weight about to be allocated; refuse it when the file cannot fill it."""
    budget = getattr(_state, "budget", None)
    if budget is None:
        return
    budget[0] -= num_elements
    if budget[0] < 0:
        raise FileFormatError(
            f"{budget[1]!r} describes a model larger than the weights it holds: creating {what} "
            f"({num_elements:,} values) exceeds what the file's weights can fill. The config was "
            "altered or does not belong to these weights; refusing to allocate it."
        )


def charge_probe(num_elements: int, shape: tuple) -> None:
    """Refuse a shape-inference probe larger than any real input while loading a file."""
    budget = getattr(_state, "budget", None)
    if budget is None or num_elements <= MAX_PROBE_ELEMENTS:
        return
    raise FileFormatError(
        f"{budget[1]!r} declares an input of shape {shape} ({num_elements:,} values per sample), "
        f"more than the {MAX_PROBE_ELEMENTS:,} Lamina allows while loading a file. The config "
        "was altered; refusing to allocate it."
    )
