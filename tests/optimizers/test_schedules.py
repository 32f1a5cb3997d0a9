"""Every schedule's lr per step equals its formula, written out here (one row per schedule)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from lamina.optimizers import schedules

STEPS = range(0, 60)


def _restarts(initial, first, t_mul, m_mul, alpha):
    def formula(step):
        start, length, index = 0, first, 0
        while step >= start + length:  # walk the periods
            start, length, index = start + length, length * t_mul, index + 1
        fraction = (step - start) / length
        cosine = m_mul**index * 0.5 * (1 + math.cos(math.pi * fraction))
        return initial * ((1 - alpha) * cosine + alpha)

    return formula


ROWS = [
    ("exponential", schedules.ExponentialDecay(0.1, 10, 0.5), lambda s: 0.1 * 0.5 ** (s / 10)),
    ("exponential-staircase", schedules.ExponentialDecay(0.1, 10, 0.5, staircase=True), lambda s: 0.1 * 0.5 ** (s // 10)),
    ("piecewise", schedules.PiecewiseConstantDecay([5, 10], [1.0, 0.5, 0.1]), lambda s: 1.0 if s <= 5 else 0.5 if s <= 10 else 0.1),
    ("polynomial", schedules.PolynomialDecay(0.1, 10, 0.01, power=2.0), lambda s: 0.09 * (1 - min(s, 10) / 10) ** 2 + 0.01),
    ("polynomial-cycle", schedules.PolynomialDecay(0.1, 10, 0.01, cycle=True), lambda s: 0.09 * (1 - s / (10 * max(1, math.ceil(s / 10)))) + 0.01),
    ("inverse-time", schedules.InverseTimeDecay(0.1, 5, 0.5), lambda s: 0.1 / (1 + 0.5 * s / 5)),
    ("inverse-time-staircase", schedules.InverseTimeDecay(0.1, 5, 0.5, staircase=True), lambda s: 0.1 / (1 + 0.5 * (s // 5))),
    ("cosine", schedules.CosineDecay(0.1, 20, alpha=0.1), lambda s: 0.1 * (0.9 * 0.5 * (1 + math.cos(math.pi * min(s, 20) / 20)) + 0.1)),
    ("cosine-warmup", schedules.CosineDecay(0.0, 20, warmup_target=0.1, warmup_steps=5), lambda s: 0.1 * s / 5 if s < 5 else 0.1 * 0.5 * (1 + math.cos(math.pi * min(s - 5, 20) / 20))),
    ("restarts", schedules.CosineDecayRestarts(0.1, 10, t_mul=2.0, m_mul=0.5, alpha=0.1), _restarts(0.1, 10, 2.0, 0.5, 0.1)),
    ("restarts-t3", schedules.CosineDecayRestarts(0.1, 4, t_mul=3.0), _restarts(0.1, 4, 3.0, 1.0, 0.0)),
    ("restarts-constant-period", schedules.CosineDecayRestarts(0.1, 7, t_mul=1.0), _restarts(0.1, 7, 1.0, 1.0, 0.0)),
    ("step", schedules.StepDecay(0.1, 7, gamma=0.5), lambda s: 0.1 * 0.5 ** math.floor(s / 7)),
    # The sheet's exponential decay, `initial_lr * exp(-k * step)`, is ExponentialDecay with
    # decay_rate = exp(-k * decay_steps).
    ("sheet-exponential", schedules.ExponentialDecay(0.1, 10, math.exp(-0.05 * 10)), lambda s: 0.1 * math.exp(-0.05 * s)),
    # The sheet's cosine annealing `lr_min + (lr_max - lr_min) * (1 + cos(pi * t / T)) / 2` is
    # CosineDecay with alpha = lr_min / lr_max (within the T steps; it then holds lr_min).
    ("sheet-cosine-annealing", schedules.CosineDecay(0.1, 30, alpha=0.002 / 0.1), lambda s: 0.002 + (0.1 - 0.002) * (1 + math.cos(math.pi * min(s, 30) / 30)) / 2),
]


@pytest.mark.parametrize("name, schedule, formula", ROWS, ids=[row[0] for row in ROWS])
def test_learning_rate_per_step_equals_the_formula(name, schedule, formula) -> None:
    for step in STEPS:
        value = schedule(step)
        assert type(value) is float, f"{name} returned {type(value).__name__}"
        assert value == pytest.approx(formula(step), rel=1e-12, abs=1e-15), f"{name} at step {step}"


def _torch_learning_rates(make_scheduler, steps: int) -> list[float]:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = make_scheduler(optimizer)
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


PARITY = [
    ("one-cycle-cos", schedules.OneCycle(0.1, 50), lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=50, cycle_momentum=False), 50),
    ("one-cycle-linear-three-phase", schedules.OneCycle(0.2, 40, pct_start=0.25, anneal_strategy="linear", div_factor=10.0, final_div_factor=100.0, three_phase=True), lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.2, total_steps=40, pct_start=0.25, anneal_strategy="linear", div_factor=10.0, final_div_factor=100.0, three_phase=True, cycle_momentum=False), 40),
    ("step", schedules.StepDecay(0.1, 7, gamma=0.5), lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=7, gamma=0.5), 40),
    ("restarts", schedules.CosineDecayRestarts(0.1, 5, t_mul=2.0, alpha=0.1), lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=2, eta_min=0.01), 40),
    ("cosine", schedules.CosineDecay(0.1, 30, alpha=0.1), lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=30, eta_min=0.01), 31),
    ("exponential", schedules.ExponentialDecay(0.1, 1, 0.9), lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.9), 40),
]


@pytest.mark.parametrize(
    "schedule",
    [row[1] for row in ROWS] + [row[1] for row in PARITY],
    ids=[row[0] for row in ROWS] + ["parity-" + row[0] for row in PARITY],
)
def test_config_round_trip(schedule) -> None:
    config = schedule.get_config()
    clone = type(schedule).from_config(config)
    assert clone.get_config() == config
    again = schedules.deserialize(json.loads(json.dumps(schedules.serialize(schedule))))
    assert type(again) is type(schedule) and again.get_config() == config
    assert [again(step) for step in STEPS] == [schedule(step) for step in STEPS]


@pytest.mark.parametrize("name, schedule, make_scheduler, steps", PARITY, ids=[row[0] for row in PARITY])
def test_matches_the_torch_scheduler(name, schedule, make_scheduler, steps) -> None:
    expected = _torch_learning_rates(make_scheduler, steps)
    assert [schedule(step) for step in range(steps)] == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_one_cycle_holds_its_final_value_past_the_end() -> None:
    schedule = schedules.OneCycle(0.1, 10)
    assert schedule(10) == schedule(100) == schedule(9) == pytest.approx(0.1 / 25 / 1e4)


def test_restarts_land_exactly_on_period_starts() -> None:
    schedule = schedules.CosineDecayRestarts(1.0, 3, t_mul=3.0)
    for start in (3, 12, 39, 120):  # 3, 3 + 9, 3 + 9 + 27, ...
        assert schedule(start) == 1.0


def test_custom_schedule_subclass() -> None:
    class Halving(schedules.LearningRateSchedule):
        def __init__(self, initial_learning_rate):
            self.initial_learning_rate = initial_learning_rate

        def __call__(self, step):
            return self.initial_learning_rate / 2**step

        def get_config(self):
            return {"initial_learning_rate": self.initial_learning_rate}

    serialized = schedules.serialize(Halving(1.0))
    clone = schedules.deserialize(serialized, custom_objects={"Halving": Halving})
    assert clone(3) == 0.125
    with pytest.raises(NotImplementedError, match="must override `__call__"):
        schedules.LearningRateSchedule()(0)


ERRORS = [
    (lambda: schedules.ExponentialDecay(0.1, 0, 0.5), r"Argument `decay_steps` must be > 0\. Received: decay_steps=0"),
    (lambda: schedules.ExponentialDecay(-0.1, 10, 0.5), r"`initial_learning_rate` must be a non-negative float\. Received: initial_learning_rate=-0\.1"),
    (lambda: schedules.PiecewiseConstantDecay([1, 2], [0.1, 0.2]), r"The length of boundaries should be 1 less than the length of values"),
    (lambda: schedules.PiecewiseConstantDecay([2, 1], [0.1, 0.2, 0.3]), r"`boundaries` must be strictly increasing\. Received: boundaries=\[2, 1\]"),
    (lambda: schedules.PolynomialDecay(0.1, -5), r"Argument `decay_steps` must be > 0\. Received: decay_steps=-5"),
    (lambda: schedules.CosineDecay(0.1, 10, alpha=2.0), r"`alpha` must be a float in \[0, 1\]\. Received: alpha=2\.0"),
    (lambda: schedules.CosineDecay(0.1, 10, warmup_steps=-1), r"`warmup_steps` must be a non-negative integer"),
    (lambda: schedules.CosineDecayRestarts(0.1, 0), r"Argument `first_decay_steps` must be > 0"),
    (lambda: schedules.CosineDecayRestarts(0.1, 10, t_mul=0.5), r"`t_mul` must be a float >= 1.*Received: t_mul=0\.5"),
    (lambda: schedules.StepDecay(0.1, 0), r"`step_size` must be a positive integer\. Received: step_size=0"),
    (lambda: schedules.OneCycle(0.1, 0), r"`total_steps` must be a positive integer\. Received: total_steps=0"),
    (lambda: schedules.OneCycle(0.1, 10, anneal_strategy="exp"), r"`anneal_strategy` must be 'cos' or 'linear'\. Received: anneal_strategy='exp'"),
    (lambda: schedules.OneCycle(0.1, 10, pct_start=1.5), r"`pct_start` must be a float in \[0, 1\]"),
    (lambda: schedules.deserialize({"class_name": "CosineDecy", "config": {}}), r"Unknown schedule name 'CosineDecy'\. Did you mean 'CosineDecay'"),
    (lambda: schedules.deserialize("cosine"), r"must be a dict with a 'class_name'"),
]


@pytest.mark.parametrize("make, message", ERRORS, ids=[str(i) for i in range(len(ERRORS))])
def test_bad_arguments_raise_a_helpful_error(make, message) -> None:
    with pytest.raises(ValueError, match=message):
        make()
