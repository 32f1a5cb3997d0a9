"""Every constructor default of Lamina's registered layers, losses, metrics, optimizers and
callbacks equals Keras 3's default for the argument of the same name, read from Keras's own
signatures: a changed default (LayerNormalization's epsilon, GroupNormalization's groups) fails
here even where every numeric test passes an explicit value."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from .keras_harness import keras, registered_classes

KINDS = {"layer": "layers", "loss": "losses", "metric": "metrics", "optimizer": "optimizers",
         "callback": "callbacks"}
# Keras derives an optimizer's default name from its class; Lamina writes it out.
NOT_COMPARED = {"name"}


def _same(lamina_default: Any, keras_default: Any) -> bool:
    """Equal up to Keras's own equivalent spellings: `1` for `(1, 1)`, `(1, 1)` for
    `((1, 1), (1, 1))`, `'zeros'` for `'Zeros'`."""
    if lamina_default == keras_default:
        return True
    if isinstance(lamina_default, str) and isinstance(keras_default, str):
        return lamina_default.lower() == keras_default.lower()
    if isinstance(keras_default, tuple) and keras_default:
        return all(_same(lamina_default[i] if isinstance(lamina_default, tuple) else
                         lamina_default, k) for i, k in enumerate(keras_default)) and (
            not isinstance(lamina_default, tuple) or len(lamina_default) == len(keras_default))
    if isinstance(keras_default, int) and isinstance(lamina_default, tuple):
        return all(_same(v, keras_default) for v in lamina_default)
    return False


def _pairs() -> list[tuple[str, type, type]]:
    pairs = []
    for kind, module in KINDS.items():
        for name, cls in registered_classes(kind).items():
            keras_cls = getattr(getattr(keras, module), name, None)
            if inspect.isclass(keras_cls):
                pairs.append((f"{kind}:{name}", cls, keras_cls))
    return pairs


PAIRS = _pairs()


def test_the_comparison_covers_the_normalization_layers_and_most_units():
    names = {pair[0] for pair in PAIRS}
    assert {"layer:LayerNormalization", "layer:GroupNormalization",
            "layer:BatchNormalization"} <= names
    assert len(PAIRS) > 150


@pytest.mark.parametrize("name, cls, keras_cls", PAIRS, ids=[p[0] for p in PAIRS])
def test_defaults_equal_keras(name: str, cls: type, keras_cls: type) -> None:
    ours = inspect.signature(cls.__init__).parameters
    theirs = inspect.signature(keras_cls.__init__).parameters
    different = {
        argument: (ours[argument].default, parameter.default)
        for argument, parameter in theirs.items()
        if argument in ours and argument not in NOT_COMPARED
        and parameter.default is not inspect.Parameter.empty
        and not callable(parameter.default) and not callable(ours[argument].default)
        and not _same(ours[argument].default, parameter.default)
    }
    assert different == {}, f"{name}: (Lamina's default, Keras's default) per argument"
