"""One-cycle: the schedule against fastai's closed form, and momentum cycling in real fits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import lamina
from lamina import layers
from lamina.optimizers import schedules
from lamina.training.one_cycle import OneCycleScheduler


def fastai_combined_cos(pct_start, start, middle, end):
    """fastai's `combined_cos`: `SchedCos(start, middle)` over the first `pct_start` of
    training and `SchedCos(middle, end)` over the rest, where
    `SchedCos(a, b)(pos) = a + (1 + cos(pi * (1 - pos))) * (b - a) / 2`."""
    def cos_sched(a, b, pos):
        return a + (1 + math.cos(math.pi * (1 - pos))) * (b - a) / 2

    def value(pos):
        if pos < pct_start:
            return cos_sched(start, middle, pos / pct_start)
        return cos_sched(middle, end, (pos - pct_start) / (1 - pct_start))
    return value


@pytest.mark.parametrize("max_lr, total, pct_start, div, div_final", [
    (1e-2, 100, 0.25, 25.0, 1e5),     # fit_one_cycle's defaults
    (0.3, 37, 0.3, 10.0, 1e4),
    (1.0, 8, 0.5, 4.0, 100.0),
])
def test_fastai_convention_matches_fastais_closed_form(max_lr, total, pct_start, div, div_final):
    schedule = schedules.OneCycle(max_lr, total, pct_start=pct_start, div_factor=div,
                                  final_div_factor=div_final, convention="fastai")
    # fastai's ParamScheduler evaluates at pct_train = train_iter / total_iters.
    reference = fastai_combined_cos(pct_start, max_lr / div, max_lr, max_lr / div_final)
    momentum = fastai_combined_cos(pct_start, 0.95, 0.85, 0.95)
    for step in range(total):
        assert schedule(step) == pytest.approx(reference(step / total), rel=1e-12, abs=1e-15)
        assert schedule.cycle(step, 0.95, 0.85, 0.95) == pytest.approx(momentum(step / total),
                                                                       rel=1e-12)
    assert schedule(total + 5) == schedule(total - 1)   # held past the end


def test_convention_round_trips_and_bad_values_are_named():
    schedule = schedules.OneCycle(0.1, 20, pct_start=0.25, final_div_factor=1e5,
                                  convention="fastai")
    again = schedules.deserialize(schedules.serialize(schedule))
    assert again.get_config() == schedule.get_config()
    assert [again(s) for s in range(20)] == [schedule(s) for s in range(20)]
    assert schedules.OneCycle(0.1, 20).get_config()["convention"] == "torch"
    with pytest.raises(ValueError, match=r"`convention` must be 'torch' or 'fastai'\. Received: convention='keras'"):
        schedules.OneCycle(0.1, 20, convention="keras")
    with pytest.raises(ValueError, match="fastai's one-cycle has two phases"):
        schedules.OneCycle(0.1, 20, three_phase=True, convention="fastai")
    with pytest.raises(ValueError, match=r"`moms` must be three momentums in \[0, 1\).*Received: moms=\(0\.9, 0\.8\)"):
        OneCycleScheduler(0.1, moms=(0.9, 0.8))


def test_torch_convention_momentum_matches_torch_one_cycle_lr():
    schedule = schedules.OneCycle(0.1, 30)
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=0.1, momentum=0.9)
    torch_schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=30,
                                                         base_momentum=0.85, max_momentum=0.95)
    for step in range(30):
        assert schedule.cycle(step, 0.95, 0.85, 0.95) == pytest.approx(
            optimizer.param_groups[0]["momentum"], rel=1e-12)
        optimizer.step()
        torch_schedule.step()


class Recorder(lamina.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seen = []

    def on_train_batch_end(self, batch, logs=None):
        group = self.model.optimizer.torch_optimizer.param_groups[0]
        momentum = group["betas"][0] if "betas" in group else group["momentum"]
        self.seen.append((group["lr"], momentum))


def _regression(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5]]) + 0.3).astype(np.float32)
    return x, y


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_fit_one_cycle_cycles_lr_and_momentum_then_restores_them(optimizer):
    x, y = _regression()
    lamina.set_random_seed(0)
    model = lamina.Sequential([layers.Input((3,)), layers.Dense(1)])
    compiled = (lamina.optimizers.SGD(0.01, momentum=0.9) if optimizer == "sgd"
                else lamina.optimizers.Adam(0.01))
    model.compile(optimizer=compiled, loss="mse")
    recorder = Recorder()
    model.fit_one_cycle(x, y, epochs=3, max_lr=0.05, batch_size=8, shuffle=False, verbose=0,
                        callbacks=[recorder])
    total = 3 * 5
    lr = fastai_combined_cos(0.25, 0.05 / 25, 0.05, 0.05 / 1e5)
    momentum = fastai_combined_cos(0.25, 0.95, 0.85, 0.95)
    assert len(recorder.seen) == total
    for step, (seen_lr, seen_momentum) in enumerate(recorder.seen):
        assert seen_lr == pytest.approx(lr(step / total), rel=1e-9)
        assert seen_momentum == pytest.approx(momentum(step / total), rel=1e-9)
    # The compiled learning rate and momentum are back for the next fit.
    assert model.optimizer.learning_rate == 0.01
    group = model.optimizer.torch_optimizer.param_groups[0]
    assert (group["betas"][0] if optimizer == "adam" else group["momentum"]) == 0.9


def test_sgd_one_cycle_update_is_kerass_momentum_rule_step_by_step():
    """The weights after fit_one_cycle equal a NumPy loop of Keras's SGD rule
    `v = m_t * v - lr_t * g; w = w + v` fed fastai's lr and momentum per step."""
    x, y = _regression(1)
    lamina.set_random_seed(0)
    model = lamina.Sequential([layers.Input((3,)), layers.Dense(1)])
    model.compile(optimizer=lamina.optimizers.SGD(0.01, momentum=0.5), loss="mse")
    kernel, bias = [w.astype(np.float64) for w in model.get_weights()]
    model.fit_one_cycle(x, y, epochs=2, max_lr=0.1, batch_size=10, shuffle=False, verbose=0)
    total = 2 * 4
    lr = fastai_combined_cos(0.25, 0.1 / 25, 0.1, 0.1 / 1e5)
    momentum = fastai_combined_cos(0.25, 0.95, 0.85, 0.95)
    velocity_k, velocity_b = np.zeros_like(kernel), np.zeros_like(bias)
    xs, ys = x.astype(np.float64), y.astype(np.float64)
    for step in range(total):
        batch = slice((step % 4) * 10, (step % 4) * 10 + 10)
        error = xs[batch] @ kernel + bias - ys[batch]
        grad_k = 2 * xs[batch].T @ error / len(error)
        grad_b = 2 * error.sum(axis=0) / len(error)
        m, rate = momentum(step / total), lr(step / total)
        velocity_k = m * velocity_k - rate * grad_k
        velocity_b = m * velocity_b - rate * grad_b
        kernel, bias = kernel + velocity_k, bias + velocity_b
    got_kernel, got_bias = model.get_weights()
    np.testing.assert_allclose(got_kernel, kernel, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got_bias, bias, rtol=1e-4, atol=1e-5)


def test_the_callback_alone_has_fastais_defaults():
    x, y = _regression(2)
    lamina.set_random_seed(0)
    model = lamina.Sequential([layers.Input((3,)), layers.Dense(1)])
    model.compile(optimizer=lamina.optimizers.SGD(0.01, momentum=0.9), loss="mse")
    recorder = Recorder()
    model.fit(x, y, epochs=2, batch_size=10, verbose=0,
              callbacks=[recorder, OneCycleScheduler(0.2)])
    lr = fastai_combined_cos(0.25, 0.2 / 25, 0.2, 0.2 / 1e5)
    momentum = fastai_combined_cos(0.25, 0.95, 0.85, 0.95)
    assert [s for s, _ in recorder.seen] == pytest.approx([lr(i / 8) for i in range(8)], rel=1e-9)
    assert [m for _, m in recorder.seen] == pytest.approx([momentum(i / 8) for i in range(8)],
                                                          rel=1e-9)


def test_a_torch_optimizers_own_lr_is_put_back():
    from lamina.optimizers.torch_optimizer import TorchOptimizer

    x, y = _regression(3)
    model = lamina.Sequential([layers.Input((3,)), layers.Dense(1)])
    model.compile(optimizer=TorchOptimizer(lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9)),
                  loss="mse")
    recorder = Recorder()
    model.fit_one_cycle(x, y, epochs=1, max_lr=0.1, batch_size=10, verbose=0,
                        callbacks=[recorder])
    lr = fastai_combined_cos(0.25, 0.1 / 25, 0.1, 0.1 / 1e5)
    assert [s for s, _ in recorder.seen] == pytest.approx([lr(i / 4) for i in range(4)], rel=1e-9)
    assert model.optimizer.torch_optimizer.param_groups[0]["lr"] == 0.01
    assert model.optimizer.torch_optimizer.param_groups[0]["momentum"] == 0.9
