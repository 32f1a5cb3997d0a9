"""TorchOptimizer: any torch.optim optimizer behind the lamina interface."""

from __future__ import annotations

import copy
import functools

import numpy as np
import pytest
import torch

import lamina.optimizers as optimizers
from lamina.optimizers import schedules
from tests.optimizers import cases


def test_wrapped_instance_steps_exactly_like_torch() -> None:
    def make(params):
        return torch.optim.RMSprop(params, lr=0.01, momentum=0.5)

    variables = cases.make_variables()
    wrapped = optimizers.TorchOptimizer(make(variables))
    wrapped.build(None)
    got = []
    for _ in range(cases.STEPS):
        cases.loss(variables).backward()
        wrapped.step()
        got.append(cases.flatten(variables))
    for ours, theirs in zip(got, cases.run_torch(make)):
        np.testing.assert_array_equal(ours, theirs)
    assert wrapped.iterations == cases.STEPS
    assert wrapped.variables == variables


@pytest.mark.parametrize(
    "factory",
    [torch.optim.Adam, functools.partial(torch.optim.SGD, lr=0.1, momentum=0.9), lambda p: torch.optim.AdamW(p, lr=0.01)],
    ids=["class", "partial", "lambda"],
)
def test_factory_is_called_with_the_variables(factory) -> None:
    wrapped = optimizers.TorchOptimizer(factory)
    got = cases.run(wrapped)
    for ours, theirs in zip(got, cases.run_torch(factory)):
        np.testing.assert_array_equal(ours, theirs)


def test_learning_rate_belongs_to_torch_and_setting_it_keeps_group_ratios() -> None:
    head, body = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    torch_optimizer = torch.optim.SGD([{"params": [head], "lr": 0.2}, {"params": [body]}], lr=0.1)
    wrapped = optimizers.TorchOptimizer(torch_optimizer)
    assert wrapped.learning_rate == 0.2
    wrapped.learning_rate = 0.02  # what ReduceLROnPlateau does
    assert [group["lr"] for group in torch_optimizer.param_groups] == pytest.approx([0.02, 0.01])


def test_own_schedule_sets_every_group() -> None:
    schedule = schedules.ExponentialDecay(0.1, 1, 0.5)
    w = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    wrapped = optimizers.TorchOptimizer(torch.optim.SGD([w], lr=99.0), learning_rate=schedule)
    for step in range(3):
        assert wrapped.learning_rate == schedule(step)
        wrapped.apply_gradients([(torch.ones(1, dtype=torch.float64), w)])
    assert w.item() == pytest.approx(-(0.1 + 0.05 + 0.025))


def test_lamina_features_wrap_the_torch_update() -> None:
    w = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    wrapped = optimizers.TorchOptimizer(
        torch.optim.SGD([w], lr=1.0), clipnorm=1.0, gradient_accumulation_steps=2, use_ema=True
    )
    wrapped.apply([torch.tensor([3.0, 4.0], dtype=torch.float64)])
    assert w.tolist() == [0.0, 0.0]
    wrapped.apply([torch.tensor([3.0, 4.0], dtype=torch.float64)])
    np.testing.assert_allclose(w.detach(), [-0.6, -0.8])
    assert wrapped.iterations == 1
    wrapped.finalize_variable_values()


def test_state_dict_resumes_exactly() -> None:
    def make(params):
        return torch.optim.Adam(params, lr=0.05)

    variables = cases.make_variables()
    wrapped = optimizers.TorchOptimizer(make, use_ema=True)
    wrapped.build(variables)
    for _ in range(3):
        cases.loss(variables).backward()
        wrapped.step()
    state = copy.deepcopy(wrapped.state_dict())
    resumed_variables = [torch.nn.Parameter(v.detach().clone()) for v in variables]
    resumed = optimizers.TorchOptimizer(make, use_ema=True)
    resumed.build(resumed_variables)
    resumed.load_state_dict(state)
    for optimizer, tensors in ((wrapped, variables), (resumed, resumed_variables)):
        for _ in range(3):
            cases.loss(tensors).backward()
            optimizer.step()
    assert all(torch.equal(a, b) for a, b in zip(variables, resumed_variables))
    assert resumed.iterations == 6


def test_config_round_trip_in_memory() -> None:
    wrapped = optimizers.TorchOptimizer(torch.optim.AdamW, learning_rate=schedules.StepDecay(0.1, 5), clipvalue=1.0)
    config = wrapped.get_config()
    assert config["optimizer"] is torch.optim.AdamW and "weight_decay" not in config
    clone = optimizers.TorchOptimizer.from_config(config)
    assert clone.get_config() == config


def test_unbuilt_factory_has_no_learning_rate_yet() -> None:
    wrapped = optimizers.TorchOptimizer(torch.optim.SGD)
    with pytest.raises(ValueError, match="Build it first"):
        _ = wrapped.learning_rate
    with pytest.raises(ValueError, match="needs the variables"):
        wrapped.build()


def test_factory_returning_something_else_raises() -> None:
    wrapped = optimizers.TorchOptimizer(lambda params: "not an optimizer")
    with pytest.raises(TypeError, match="must return a torch.optim.Optimizer"):
        wrapped.build([torch.nn.Parameter(torch.zeros(1))])
