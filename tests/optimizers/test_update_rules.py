"""Every optimizer's iterates on a fixed quadratic equal its rule written out (cases.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lamina.optimizers as optimizers
from lamina.optimizers import schedules
from tests.optimizers import cases
from tests.optimizers.cases import CASES, KERAS_DEFAULTS, Case


def _assert_iterates(got: list[np.ndarray], want: list[np.ndarray], tolerance: float) -> None:
    assert len(got) == len(want)
    for step, (actual, expected) in enumerate(zip(got, want), start=1):
        np.testing.assert_allclose(
            actual, expected, rtol=tolerance, atol=tolerance, err_msg=f"after step {step}"
        )


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_iterates_follow_the_written_rule(case: Case) -> None:
    _assert_iterates(cases.run(case.make()), case.reference(), case.tolerance)


@pytest.mark.parametrize(
    "case", [case for case in CASES if case.torch_reference], ids=lambda case: case.id
)
def test_iterates_match_torch_where_the_formulas_agree(case: Case) -> None:
    _assert_iterates(cases.run(case.make()), cases.run_torch(case.torch_reference), 1e-12)


def test_the_problem_moves_every_variable() -> None:
    # Guards the table against a degenerate problem on which every rule looks alike.
    first = cases.gradient_descent(cases.constant(cases.LR))[0]
    assert np.all(np.abs(first - cases.X0) > 1e-4)


# Where Keras and torch write the rule differently, lamina follows Keras: with a large epsilon
# the two visibly disagree.
KERAS_VERSUS_TORCH = [
    ("rmsprop", lambda: optimizers.RMSprop(0.05, epsilon=0.5), lambda p: torch.optim.RMSprop(p, lr=0.05, alpha=0.9, eps=0.5)),
    ("adagrad", lambda: optimizers.Adagrad(0.3, initial_accumulator_value=0.0, epsilon=0.5), lambda p: torch.optim.Adagrad(p, lr=0.3, eps=0.5)),
    ("adam", lambda: optimizers.Adam(0.05, epsilon=0.5), lambda p: torch.optim.Adam(p, lr=0.05, eps=0.5)),
    ("adamax", lambda: optimizers.Adamax(0.05, epsilon=0.5), lambda p: torch.optim.Adamax(p, lr=0.05, eps=0.5)),
    ("nadam", lambda: optimizers.Nadam(0.05), lambda p: torch.optim.NAdam(p, lr=0.05, eps=1e-7)),
]


@pytest.mark.parametrize("name, make, make_torch", KERAS_VERSUS_TORCH, ids=lambda v: v if isinstance(v, str) else "")
def test_keras_rule_differs_from_torch_default_rule(name, make, make_torch) -> None:
    ours, theirs = cases.run(make())[-1], cases.run_torch(make_torch)[-1]
    assert np.max(np.abs(ours - theirs)) > 1e-4, name


@pytest.mark.parametrize("cls", list(KERAS_DEFAULTS), ids=lambda cls: cls.__name__)
def test_keras_defaults(cls) -> None:
    learning_rate, expected = KERAS_DEFAULTS[cls]
    config = cls().get_config()
    assert config["learning_rate"] == learning_rate
    for key, value in expected.items():
        assert config[key] == value, key


# ------------------------------------------------------------------- schedules as learning rate

WITH_ZERO = schedules.PiecewiseConstantDecay([1, 3], [0.1, 0.0, 0.05])
WARMUP = schedules.CosineDecay(0.0, 4, warmup_target=0.1, warmup_steps=2)
DECAY = schedules.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5)

SCHEDULED = [
    ("sgd-momentum-zero-lr", lambda s: optimizers.SGD(s, momentum=0.9), lambda s: cases.keras_sgd(s, 0.9), WITH_ZERO),
    ("sgd-momentum-warmup", lambda s: optimizers.SGD(s, momentum=0.9), lambda s: cases.keras_sgd(s, 0.9), WARMUP),
    ("sgd-nesterov-zero-lr", lambda s: optimizers.SGD(s, momentum=0.8, nesterov=True), lambda s: cases.keras_sgd(s, 0.8, nesterov=True), WITH_ZERO),
    ("sgd-nesterov-decay-wd", lambda s: optimizers.SGD(s, momentum=0.8, nesterov=True, weight_decay=0.3), lambda s: cases.keras_sgd(s, 0.8, nesterov=True, weight_decay=0.3), DECAY),
    ("rmsprop-momentum", lambda s: optimizers.RMSprop(s, momentum=0.9, epsilon=0.1), lambda s: cases.keras_rmsprop(s, 0.9, 0.9, 0.1, False), DECAY),
    ("adam", lambda s: optimizers.Adam(s, epsilon=0.1), lambda s: cases.keras_adam(s, 0.9, 0.999, 0.1), WARMUP),
    ("adamw", lambda s: optimizers.AdamW(s, weight_decay=0.5), lambda s: cases.keras_adam(s, 0.9, 0.999, 1e-7, weight_decay=0.5), DECAY),
    ("lion", lambda s: optimizers.Lion(s), lambda s: cases.keras_lion(s, 0.9, 0.99), WITH_ZERO),
]


@pytest.mark.parametrize("name, make, reference, schedule", SCHEDULED, ids=lambda v: v if isinstance(v, str) else "")
def test_schedule_as_learning_rate_follows_keras_rule(name, make, reference, schedule) -> None:
    _assert_iterates(cases.run(make(schedule)), reference(schedule), 1e-12)


def test_sgd_momentum_under_a_schedule_is_keras_not_torch() -> None:
    # torch keeps the lr outside its momentum buffer; under a changing lr that is another rule.
    def make_torch(params):
        optimizer = torch.optim.SGD(params, lr=DECAY(0), momentum=0.9)
        original = optimizer.step
        calls = {"n": 0}

        def step():
            for group in optimizer.param_groups:
                group["lr"] = DECAY(calls["n"])
            calls["n"] += 1
            return original()

        optimizer.step = step
        return optimizer

    ours = cases.run(optimizers.SGD(DECAY, momentum=0.9))[-1]
    assert np.max(np.abs(ours - cases.run_torch(make_torch)[-1])) > 1e-4
    np.testing.assert_allclose(ours, cases.keras_sgd(DECAY, 0.9)[-1], rtol=1e-12)


def test_learning_rate_property_evaluates_the_schedule_at_each_step() -> None:
    optimizer = optimizers.SGD(DECAY)
    seen = []
    variables = cases.make_variables()
    optimizer.build(variables)
    for _ in range(4):
        seen.append(optimizer.learning_rate)
        cases.loss(variables).backward()
        optimizer.step()
    assert seen == [DECAY(step) for step in range(4)]
    assert all(type(value) is float for value in seen)
