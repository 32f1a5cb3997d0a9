"""Every registered optimizer against Keras 3's: the same two-layer model, the same weights and
data, 20 `fit` steps (batch 8, no shuffling) in each; the trained weights must agree."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

import lamina
import lamina.optimizers as lamina_optimizers

from .keras_harness import assert_close, keras, registered_classes, uncovered

STEPS, BATCH = 20, 8


@dataclasses.dataclass(frozen=True)
class Row:
    name: str
    kwargs: dict[str, Any]
    # 20 steps compound float32 rounding differences of the two update orders.
    tolerance: float = 2e-5
    reason: str = ""


ROWS = [
    Row("SGD", {"learning_rate": 0.05}),
    Row("SGD", {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True}),
    Row("RMSprop", {"learning_rate": 0.01}),
    Row("RMSprop", {"learning_rate": 0.01, "momentum": 0.5, "centered": True}),
    Row("Adam", {"learning_rate": 0.01}),
    Row("Adam", {"learning_rate": 0.01, "amsgrad": True, "clipnorm": 0.5}),
    Row("AdamW", {"learning_rate": 0.01, "weight_decay": 0.1}),
    Row("Adamax", {"learning_rate": 0.01}),
    Row("Nadam", {"learning_rate": 0.01}),
    Row("Adagrad", {"learning_rate": 0.05}),
    Row("Adadelta", {"learning_rate": 1.0}),
    Row("Lion", {"learning_rate": 0.003, "weight_decay": 0.01}),
]

EXCLUDED = {
    "TorchOptimizer": "Lamina's adapter around any torch.optim optimizer; Keras has none "
                      "(its update rule is torch's, tested in tests/optimizers)",
}


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(STEPS * BATCH, 4)).astype(np.float32)
    y = (np.sin(x.sum(1, keepdims=True)) + 0.1 * rng.normal(size=(STEPS * BATCH, 1))).astype(
        np.float32)
    return x, y


def _model(module: Any) -> Any:
    model = module.Sequential([module.layers.Dense(8, activation="tanh"), module.layers.Dense(1)])
    model.build((None, 4))
    return model


@pytest.mark.parametrize("row", ROWS, ids=[f"{r.name}-{i}" for i, r in enumerate(ROWS)])
def test_twenty_fit_steps_agree_with_keras(row: Row) -> None:
    x, y = _data()
    keras_model, lamina_model = _model(keras), _model(lamina)
    weights = [np.random.default_rng(1).normal(scale=0.5, size=w.shape).astype(np.float32)
               for w in keras_model.get_weights()]
    keras_model.set_weights(weights)
    lamina_model.set_weights(weights)
    keras_model.compile(getattr(keras.optimizers, row.name)(**row.kwargs), loss="mse")
    lamina_model.compile(getattr(lamina_optimizers, row.name)(**row.kwargs), loss="mse")
    keras_model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    lamina_model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    for index, (got, expected) in enumerate(zip(lamina_model.get_weights(),
                                                keras_model.get_weights())):
        assert_close(got, expected, row.tolerance, f"{row.name} weight {index} {row.reason}")
    assert not np.allclose(lamina_model.get_weights()[0], weights[0])  # it trained


def test_every_registered_optimizer_has_a_row_or_a_reason() -> None:
    assert uncovered(registered_classes("optimizer"), {row.name for row in ROWS},
                     EXCLUDED) == []
