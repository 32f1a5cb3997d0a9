"""How much memory rebuilding a model from a file or a config may allocate.

A config is data from whoever wrote the file: `units=100000` twice asks for a 40 GB kernel and
`Input(shape=(100000, 100000))` for a 40 GB probe, before any weight is read. While a model is
rebuilt, every weight, probe and graph-operation output is charged here first, and refused
before it is allocated when it exceeds the budget:

- a file's model (`load_budget`): its weights may total what the file's stored tensors can fill
  (plus a small slack), so a model larger than its weights is refused;
- a bare config (`config_budget`: `model_from_json`, `deserialize`): at most
  `DEFAULT_CONFIG_ELEMENTS` weight values unless the caller opts out;
- in both, one probe tensor or graph-operation output may hold at most `MAX_PROBE_ELEMENTS`.

Outside such a block every charge is one thread-local lookup. Probes and operation outputs are
sized on the `meta` device by shape inference (`lamina._symbolic._MetaMode`), which charges them
here before anything is allocated.

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
# A model rebuilt from a bare config (no weights to compare with) may hold 2**31 values: 8 GiB
# of float32, more than any model a JSON string is passed around for, far less than a bomb asks.
DEFAULT_CONFIG_ELEMENTS = 1 << 31

_state = threading.local()


class _Budget:
    __slots__ = ("remaining", "source", "model", "excess")

    def __init__(self, remaining: int, source: str, model: str, excess: str):
        self.remaining = remaining
        self.source = source
        self.model = model    # what the source describes when over the budget
        self.excess = excess  # why too many weights are refused, and what to do


@contextlib.contextmanager
def _installed(budget: _Budget) -> Iterator[None]:
    previous = getattr(_state, "budget", None)
    _state.budget = budget
    try:
        yield
    finally:
        _state.budget = previous


def load_budget(stored_elements: int, source: str) -> contextlib.AbstractContextManager[None]:
    """Within this block, weights may total `stored_elements` (+ slack) and each probe is capped.

    `source` names the file in error messages.
    """
    return _installed(_Budget(
        stored_elements + WEIGHT_SLACK_ELEMENTS, repr(source),
        "a model larger than the weights it holds", "exceeds what the file's weights can fill. The config was altered or does not belong "
        "to these weights; refusing to allocate it."))


def config_budget(max_elements: int, source: str = "The config"
                  ) -> contextlib.AbstractContextManager[None]:
    """Within this block, weights may total `max_elements` and each probe is capped: rebuilding
    a model from a bare config, which has no stored weights to bound it."""
    return _installed(_Budget(
        max_elements, source, "a model too large to rebuild", f"takes the model past {max_elements:,} values, the most a config is rebuilt with by "
        "default. If you trust the config, pass max_elements=None (or a larger bound) to "
        "model_from_json() or deserialize()."))


def active() -> bool:
    return getattr(_state, "budget", None) is not None


def charge_weight(num_elements: int, what: str) -> None:
    """Account for a weight about to be allocated; refuse it when over the budget."""
    budget = getattr(_state, "budget", None)
    if budget is None:
        return
    budget.remaining -= num_elements
    if budget.remaining < 0:
        raise FileFormatError(
            f"{budget.source} describes {budget.model}: creating {what} "
            f"({num_elements:,} values) {budget.excess}"
        )


def charge_probe(num_elements: int, shape: tuple) -> None:
    """Refuse a shape-inference probe larger than any real input while rebuilding."""
    budget = getattr(_state, "budget", None)
    if budget is None or num_elements <= MAX_PROBE_ELEMENTS:
        return
    raise FileFormatError(
        f"{budget.source} declares an input of shape {shape} ({num_elements:,} values in a "
        f"probe batch), more than the {MAX_PROBE_ELEMENTS:,} Lamina allows while rebuilding a saved "
        "model. The config was altered; refusing to allocate it."
    )


def charge_output(num_elements: int, shape: tuple, what: str) -> None:
    """Refuse an operation whose output, computed on a probe, would exceed the probe cap."""
    budget = getattr(_state, "budget", None)
    if budget is None or num_elements <= MAX_PROBE_ELEMENTS:
        return
    raise FileFormatError(
        f"{budget.source} describes an operation, {what}, whose output would have shape {shape} "
        f"({num_elements:,} values) for a batch of 2, more than the {MAX_PROBE_ELEMENTS:,} "
        "Lamina allows while rebuilding a saved model. The config was altered; refusing to "
        "allocate it."
    )

