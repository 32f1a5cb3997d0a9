"""EarlyStopping and ReduceLROnPlateau against Keras 3's own callbacks: both are driven through
the same scripted run (the monitored value per epoch, over one or more `fit` calls reusing the
callback), and every epoch's decision must agree: whether training stops, the wait counter, the
best value so far and the learning rate. Sequences are chosen so that a callback that keeps its
state between `fit` calls, or ignores `cooldown`, decides differently."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import lamina

from .keras_harness import keras

# One list per `fit` call, one value per epoch; a call ends early when the callback stops it.
TWO_FITS = [[1.0, 0.5, 0.6, 0.7, 0.8], [0.9, 0.8, 0.85, 0.95, 0.97, 0.99]]
PLATEAU = [1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.85, 0.85, 0.85, 0.85, 0.85]


def _keras_model() -> Any:
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0), loss="mse")
    return model


def _lamina_model() -> Any:
    model = lamina.Sequential([lamina.Input((1,)), lamina.layers.Dense(1)])
    model.compile(optimizer=lamina.optimizers.SGD(learning_rate=1.0), loss="mse")
    return model


def _best(value: Any) -> float | None:
    # Keras starts from None, Lamina from +-inf: both mean "nothing seen yet".
    if value is None or (isinstance(value, float) and math.isinf(value)):
        return None
    return float(value)


def _drive(callback: Any, model: Any, fits: list[list[float]], monitor: str) -> list[tuple]:
    """Run the callback's hooks as `fit` would, once per list in `fits`; returns per epoch
    (fit, epoch, stopped, wait, best, learning rate)."""
    callback.set_model(model)
    trace = []
    for call, values in enumerate(fits):
        model.stop_training = False
        callback.on_train_begin()
        for epoch, value in enumerate(values):
            callback.on_epoch_begin(epoch)
            callback.on_epoch_end(epoch, {monitor: value, "loss": 1.0})
            lr = float(np.asarray(keras.ops.convert_to_numpy(model.optimizer.learning_rate)))
            trace.append((call, epoch, bool(model.stop_training), callback.wait,
                          _best(callback.best), pytest.approx(lr, rel=1e-6)))
            if model.stop_training:
                break
        callback.on_train_end()
    return trace


def _compare(name: str, kwargs: dict[str, Any], fits: list[list[float]],
             monitor: str = "val_loss") -> list[tuple]:
    theirs = _drive(getattr(keras.callbacks, name)(monitor=monitor, **kwargs), _keras_model(),
                    fits, monitor)
    ours = _drive(getattr(lamina.callbacks, name)(monitor=monitor, **kwargs), _lamina_model(),
                  fits, monitor)
    assert ours == theirs
    return ours


@pytest.mark.parametrize("kwargs, fits, monitor", [
    ({"patience": 2}, TWO_FITS, "val_loss"),
    ({"patience": 1, "min_delta": 0.15}, TWO_FITS, "val_loss"),
    ({"patience": 2, "baseline": 0.55}, TWO_FITS, "val_loss"),
    ({"patience": 1, "start_from_epoch": 2}, TWO_FITS, "val_loss"),
    ({"patience": 2, "mode": "max"}, [[0.5, 0.6, 0.7, 0.4, 0.3, 0.2], [0.1, 0.2, 0.1, 0.05]],
     "val_accuracy"),
    ({"patience": 3, "restore_best_weights": True}, TWO_FITS, "val_loss"),
], ids=["two-fits", "min-delta", "baseline", "start-from-epoch", "maximized", "restore-best"])
def test_early_stopping_decides_as_keras_across_fit_calls(kwargs, fits, monitor):
    trace = _compare("EarlyStopping", kwargs, fits, monitor)
    assert {row[0] for row in trace} == {0, 1}  # the second fit ran


def test_early_stopping_second_fit_starts_afresh():
    """The second call's values are all worse than the first call's best (0.5): only a callback
    that forgot that best (Keras resets it in on_train_begin) lets the second call improve."""
    trace = _compare("EarlyStopping", {"patience": 2}, TWO_FITS)
    second = [row for row in trace if row[0] == 1]
    assert second[0][4] == 0.9 and second[1][4] == 0.8
    assert [row[2] for row in second] == [False, False, False, True]


@pytest.mark.parametrize("kwargs", [
    {"patience": 2, "cooldown": 3, "factor": 0.5},
    {"patience": 1, "cooldown": 2, "factor": 0.5, "min_lr": 0.2},
    {"patience": 2, "cooldown": 0, "factor": 0.1, "min_delta": 0.06},
    {"patience": 3, "cooldown": 1, "factor": 0.5, "mode": "max"},
], ids=["cooldown", "cooldown-min-lr", "no-cooldown", "maximized"])
def test_reduce_lr_on_plateau_decides_as_keras(kwargs):
    _compare("ReduceLROnPlateau", kwargs, [PLATEAU, PLATEAU[:6]])


def test_reduce_lr_cooldown_holds_off_the_next_reduction():
    """patience=2, cooldown=3: reductions after epochs 3, 7 and 11 (without the cooldown: 3, 5,
    7, 9, ...), as Keras does."""
    trace = _compare("ReduceLROnPlateau", {"patience": 2, "cooldown": 3, "factor": 0.5},
                     [PLATEAU])
    rates = [row[5].expected for row in trace]
    assert rates == [1.0] * 3 + [0.5] * 4 + [0.25] * 4 + [0.125] * 3
