"""HyperParameters against KerasTuner's documented semantics, sampled by real Optuna studies."""

from __future__ import annotations

import json
import math

import numpy as np
import optuna
import pytest

import lamina.tuner as kt


def _sample(build, n=300, seed=0):
    """Run `build(hp)` under `n` trials of a random-sampler study; the values it returned."""
    space = kt.HyperParameters()
    build(space)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    found = []
    for _ in range(n):
        trial = study.ask()
        hp = space.copy()
        hp._start_trial(trial, None, True)
        found.append(build(hp))
        study.tell(trial, 0.0)
    return found


def test_defaults_outside_a_trial_are_keras_tuners():
    hp = kt.HyperParameters()
    assert hp.Int("units", 32, 512, step=32) == 32           # min_value
    assert hp.Float("rate", 0.1, 0.5, default=0.3) == 0.3
    assert hp.Choice("act", ["relu", "tanh"]) == "relu"     # first value
    assert hp.Boolean("bn") is False
    assert hp.Fixed("epochs", 7) == 7
    assert hp.values == {"units": 32, "rate": 0.3, "act": "relu", "bn": False, "epochs": 7}
    assert hp["units"] == 32 and "act" in hp and "nope" not in hp
    # The second call of a name returns the registered value, not a new one.
    assert hp.Int("units", 64, 128) == 32
    assert len(hp.space) == 5


@pytest.mark.parametrize("make, expected", [
    # The examples of KerasTuner's docstrings.
    (lambda hp: hp.Int("n", 6, 13, step=3), [6, 9, 12]),
    (lambda hp: hp.Int("n", 2, 32, step=2, sampling="log"), [2, 4, 8, 16, 32]),
    (lambda hp: hp.Float("f", 0.001, 10, step=10, sampling="log"), [0.001, 0.01, 0.1, 1.0, 10.0]),
    (lambda hp: hp.Float("f", 0, 1, step=0.2), [0, 0.2, 0.4, 0.6, 0.8, 1.0]),
])
def test_stepped_ranges_take_exactly_the_documented_values(make, expected):
    hp = kt.HyperParameters()
    make(hp)
    assert np.allclose(hp.space[0].values(), expected)
    seen = set(_sample(make, n=200))
    assert all(any(math.isclose(v, e, rel_tol=1e-9, abs_tol=1e-12) for e in expected) for v in seen)
    assert len(seen) == len(expected)   # every value is reachable


def test_log_sampling_is_uniform_in_the_exponent():
    values = np.array(_sample(lambda hp: hp.Float("lr", 1e-5, 1e-1, sampling="log"), n=400))
    assert values.min() >= 1e-5 and values.max() <= 1e-1
    exponents = np.log10(values)
    # Four decades, ~100 draws each: a linear sampler would put ~99.9% in the top decade.
    counts = np.histogram(exponents, bins=[-5, -4, -3, -2, -1])[0]
    assert counts.min() > 60, counts


def test_reverse_log_is_dense_near_max_value():
    values = np.array(_sample(lambda hp: hp.Float("m", 0.01, 1.0, sampling="reverse_log"), n=400))
    assert values.min() >= 0.01 - 1e-12 and values.max() <= 1.0 + 1e-12
    # KerasTuner: max - min * ((max/min)**(1-u) - 1); half the mass lies above 0.91.
    median = 1.0 - 0.01 * ((1.0 / 0.01) ** 0.5 - 1)
    assert abs(np.median(values) - median) < 0.05
    assert np.mean(values > 0.5) > 0.8


def test_conditional_scopes_activate_only_with_their_parent():
    def build(hp):
        model_type = hp.Choice("model_type", ["mlp", "cnn"])
        with hp.conditional_scope("model_type", ["mlp"]):
            units = hp.Int("units", 8, 64)
        with hp.conditional_scope("model_type", ["cnn"]):
            filters = hp.Int("filters", 4, 16)
        return model_type, units, filters

    hp = kt.HyperParameters()
    assert build(hp) == ("mlp", 8, None)
    assert hp.is_active("units") and not hp.is_active("filters")
    with pytest.raises(ValueError, match="'filters' is currently inactive"):
        hp.get("filters")
    for model_type, units, filters in _sample(build, n=60):
        assert (units is None) == (model_type == "cnn")
        assert (filters is None) == (model_type == "mlp")
    with pytest.raises(ValueError, match="parent hyperparameter 'missing' is not defined"):
        with hp.conditional_scope("missing", ["a"]):
            pass


def test_name_scopes_and_parent_name_keywords():
    hp = kt.HyperParameters()
    with hp.name_scope("block1"):
        assert hp.Int("units", 4, 8) == 4
    hp.Boolean("deep")
    assert hp.Int("extra", 1, 3, parent_name="deep", parent_values=[True]) is None
    assert "block1/units" in hp.values and "extra" not in hp.values


def test_config_is_json_and_round_trips():
    hp = kt.sheet_space()
    hp.Choice("act", ["relu", "gelu"], default="gelu")
    with hp.conditional_scope("act", ["relu"]):
        hp.Fixed("slope", 0.0)
    text = json.dumps(hp.get_config())
    again = kt.HyperParameters.from_config(json.loads(text))
    assert again.get_config() == hp.get_config()
    assert [type(h).__name__ for h in again.space] == [type(h).__name__ for h in hp.space]


def test_sheet_space_holds_the_cheat_sheet_ranges():
    space = {hp.name: hp for hp in kt.sheet_space().space}
    lr, batch, dropout, decay = (space[n] for n in
                                 ("learning_rate", "batch_size", "dropout", "weight_decay"))
    assert (lr.min_value, lr.max_value, lr.sampling) == (1e-5, 1e-3, "log")
    assert batch.values() == [16, 32, 64, 128]
    assert (dropout.min_value, dropout.max_value, dropout.sampling) == (0.1, 0.5, "linear")
    assert (decay.min_value, decay.max_value, decay.sampling) == (1e-5, 1e-2, "log")


@pytest.mark.parametrize("make, error, message", [
    (lambda hp: hp.Int("n", 5, 1), ValueError, r"`min_value` must be <= `max_value`\. Received: min_value=5, max_value=1"),
    (lambda hp: hp.Int("n", 1.5, 4), ValueError, r"`min_value` must be a finite int\. Received: min_value=1\.5"),
    (lambda hp: hp.Float("lr", 0.0, 1.0, sampling="log"), ValueError, r"needs `min_value` > 0"),
    (lambda hp: hp.Float("lr", 0.1, 1.0, sampling="exp"), ValueError, r"`sampling` must be one of"),
    (lambda hp: hp.Int("n", 1, 8, step=1, sampling="log"), ValueError, r"`step` must be > 1"),
    (lambda hp: hp.Choice("c", []), ValueError, r"`values` must be a non-empty list"),
    (lambda hp: hp.Choice("c", [1, "a"]), TypeError, r"must all be ints/floats, all strings or all bools\. Received: values=\[1, .a.\]"),
    (lambda hp: hp.Choice("c", [1, 2], default=3), ValueError, r"`default` must be one of \[1, 2\]"),
    (lambda hp: hp.Float("f", 0.0, 1.0, default=2.0), ValueError, r"`default` must lie in \[0\.0, 1\.0\]"),
])
def test_bad_hyperparameters_are_refused_with_the_value(make, error, message):
    with pytest.raises(error, match=message):
        make(kt.HyperParameters())
