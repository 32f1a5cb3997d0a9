"""The base optimizer: clipping, accumulation, EMA, weight decay, state, config, errors."""

from __future__ import annotations

import copy
import io
import json
import math

import numpy as np
import pytest
import torch

import lamina.optimizers as optimizers
from lamina.errors import UnknownNameError
from lamina.optimizers import schedules
from tests.optimizers import cases
from tests.optimizers.cases import DEFAULTS


def _parameters(*values: list[float]) -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.tensor(v, dtype=torch.float64)) for v in values]


def _grads(*values: list[float]) -> list[torch.Tensor]:
    return [torch.tensor(v, dtype=torch.float64) for v in values]


# --------------------------------------------------------------------------------- clipping


def test_clipnorm_scales_each_gradient_to_its_own_norm() -> None:
    w = _parameters([0.0, 0.0], [0.0, 0.0])
    optimizer = optimizers.SGD(1.0, clipnorm=1.0)
    optimizer.apply(_grads([3.0, 4.0], [0.3, 0.4]), w)
    # Keras: g * clipnorm / max(||g||, clipnorm); the small gradient is untouched.
    np.testing.assert_allclose(w[0].detach(), [-0.6, -0.8], rtol=1e-15)
    np.testing.assert_allclose(w[1].detach(), [-0.3, -0.4], rtol=1e-15)


def test_global_clipnorm_scales_all_gradients_together() -> None:
    w = _parameters([0.0, 0.0], [0.0])
    optimizer = optimizers.SGD(1.0, global_clipnorm=2.0)
    optimizer.apply(_grads([3.0, 4.0], [12.0]), w)
    scale = 2.0 / 13.0  # global norm sqrt(9 + 16 + 144) = 13
    np.testing.assert_allclose(w[0].detach(), [-3 * scale, -4 * scale], rtol=1e-15)
    np.testing.assert_allclose(w[1].detach(), [-12 * scale], rtol=1e-15)


def test_global_clipnorm_leaves_small_gradients_and_poisons_non_finite_ones() -> None:
    w = _parameters([0.0, 0.0])
    optimizers.SGD(1.0, global_clipnorm=10.0).apply(_grads([3.0, 4.0]), w)
    np.testing.assert_allclose(w[0].detach(), [-3.0, -4.0], rtol=1e-15)
    w = _parameters([0.0, 0.0])
    optimizers.SGD(1.0, global_clipnorm=10.0).apply(_grads([math.inf, 1.0]), w)
    assert torch.isnan(w[0]).all()


def test_clipvalue_clips_each_element() -> None:
    w = _parameters([0.0, 0.0, 0.0])
    optimizers.SGD(1.0, clipvalue=0.5).apply(_grads([2.0, -3.0, 0.25]), w)
    np.testing.assert_allclose(w[0].detach(), [-0.5, 0.5, -0.25])


def test_given_gradients_are_not_modified() -> None:
    w = _parameters([0.0, 0.0])
    gradient = torch.tensor([3.0, 4.0], dtype=torch.float64)
    optimizers.SGD(1.0, clipnorm=1.0, loss_scale_factor=2.0).apply([gradient], w)
    assert gradient.tolist() == [3.0, 4.0]


def test_loss_scale_factor_scales_the_loss_and_unscales_gradients() -> None:
    optimizer = optimizers.SGD(1.0, loss_scale_factor=8.0)
    w = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    optimizer.build([w])
    optimizer.scale_loss((3.0 * w).sum()).backward()
    assert w.grad.item() == 24.0
    optimizer.step()
    assert w.item() == pytest.approx(1.0 - 3.0)


# ------------------------------------------------------------------------------ accumulation


@pytest.mark.parametrize("cls", DEFAULTS, ids=lambda cls: cls.__name__)
def test_accumulated_steps_equal_one_step_on_the_mean_gradient(cls) -> None:
    generator = torch.Generator().manual_seed(0)
    grads = [torch.randn(3, generator=generator, dtype=torch.float64) for _ in range(6)]
    accumulated, plain = _parameters([1.0, -1.0, 0.5]), _parameters([1.0, -1.0, 0.5])
    with_accumulation = cls(learning_rate=0.1, gradient_accumulation_steps=3)
    without = cls(learning_rate=0.1)
    for index, gradient in enumerate(grads):
        before = accumulated[0].detach().clone()
        with_accumulation.apply([gradient], accumulated)
        if (index + 1) % 3:
            assert torch.equal(accumulated[0], before), "updated between accumulation steps"
        else:
            mean = torch.stack(grads[index - 2 : index + 1]).mean(0)
            without.apply([mean], plain)
            torch.testing.assert_close(accumulated[0], plain[0], rtol=1e-13, atol=1e-13)
    assert with_accumulation.iterations == without.iterations == 2


def test_accumulation_with_backward_uses_the_grad_of_each_call() -> None:
    w = torch.nn.Parameter(torch.tensor([0.0], dtype=torch.float64))
    optimizer = optimizers.SGD(1.0, gradient_accumulation_steps=2)
    optimizer.build([w])
    for scale in (1.0, 3.0):
        (scale * w).sum().backward()
        optimizer.step()
        assert w.grad is None
    assert w.item() == pytest.approx(-2.0)  # mean of 1 and 3


# ---------------------------------------------------------------------------------- EMA


def test_ema_follows_keras_average_and_finalize_copies_it() -> None:
    w = _parameters([1.0, 2.0])
    optimizer = optimizers.SGD(0.5, use_ema=True, ema_momentum=0.9)
    average = None
    for gradient in ([1.0, 1.0], [2.0, -1.0], [0.5, 0.5]):
        optimizer.apply(_grads(gradient), w)
        value = w[0].detach().clone()
        average = value if average is None else 0.9 * average + 0.1 * value
    assert not torch.allclose(w[0], average)
    optimizer.finalize_variable_values()
    torch.testing.assert_close(w[0].detach(), average, rtol=1e-14, atol=0)


def test_swap_ema_weights_twice_restores() -> None:
    w = _parameters([1.0, 2.0])
    optimizer = optimizers.Adam(0.1, use_ema=True)
    for _ in range(3):
        optimizer.apply(_grads([1.0, -1.0]), w)
    trained = w[0].detach().clone()
    optimizer.swap_ema_weights(w)
    assert not torch.equal(w[0], trained)
    optimizer.swap_ema_weights(w)
    assert torch.equal(w[0], trained)


def test_ema_overwrite_frequency_overwrites_the_weights() -> None:
    w = _parameters([1.0])
    optimizer = optimizers.SGD(1.0, use_ema=True, ema_momentum=0.5, ema_overwrite_frequency=2)
    optimizer.apply(_grads([1.0]), w)  # w = 0, average = 0 (copied)
    assert w.__getitem__(0).item() == 0.0
    optimizer.apply(_grads([1.0]), w)  # w = -1, average = -0.5, then overwritten
    assert w[0].item() == -0.5


def test_swap_ema_weights_without_ema_explains() -> None:
    optimizer = optimizers.SGD()
    optimizer.build(_parameters([1.0]))
    with pytest.raises(ValueError, match="use_ema=True"):
        optimizer.swap_ema_weights()


# ----------------------------------------------------------------------------- weight decay


def test_weight_decay_is_decoupled_and_uses_the_current_learning_rate() -> None:
    w = _parameters([2.0])
    optimizers.SGD(0.1, weight_decay=0.5).apply(_grads([1.0]), w)
    assert w[0].item() == pytest.approx(2.0 - 0.1 * 0.5 * 2.0 - 0.1 * 1.0, rel=1e-15)


def test_adam_weight_decay_is_adamw() -> None:
    adam_weights, adamw_weights = _parameters([2.0, -1.0]), _parameters([2.0, -1.0])
    adam = optimizers.Adam(0.1, weight_decay=0.3)
    adamw = optimizers.AdamW(0.1, weight_decay=0.3)
    for gradient in ([1.0, 0.5], [-0.5, 2.0]):
        adam.apply(_grads(gradient), adam_weights)
        adamw.apply(_grads(gradient), adamw_weights)
    assert torch.equal(adam_weights[0], adamw_weights[0])


def test_exclude_from_weight_decay_by_variable_and_by_name() -> None:
    kernel, bias, scale = _parameters([2.0], [2.0], [2.0])
    bias.path = "dense/bias"
    optimizer = optimizers.SGD(0.1, weight_decay=0.5)
    optimizer.exclude_from_weight_decay(var_list=[scale], var_names=["bias"])
    optimizer.apply(_grads([0.0], [0.0], [0.0]), [kernel, bias, scale])
    assert kernel.item() == pytest.approx(1.9)
    assert bias.item() == 2.0 and scale.item() == 2.0
    with pytest.raises(ValueError, match="before the optimizer is built"):
        optimizer.exclude_from_weight_decay(var_names=["kernel"])


# ----------------------------------------------------------------------------------- stepping


def test_step_clears_gradients_and_counts_iterations() -> None:
    variables = cases.make_variables()
    optimizer = optimizers.Adam()
    optimizer.build(variables)
    optimizer.build(variables)  # idempotent
    for expected in (1, 2):
        cases.loss(variables).backward()
        optimizer.step()
        assert optimizer.iterations == expected
        assert all(v.grad is None for v in variables)
    assert optimizer.variables == variables


# torch's optimizers with a fused (single-kernel) CPU implementation; the others have foreach only.
TORCH_FUSED = {torch.optim.SGD, torch.optim.Adagrad, torch.optim.Adam, torch.optim.AdamW}


@pytest.mark.parametrize("cls", DEFAULTS, ids=lambda cls: cls.__name__)
def test_cpu_variables_get_the_fused_kernel_where_torch_has_one(cls) -> None:
    optimizer = cls()
    with pytest.raises(ValueError, match="not built yet"):
        _ = optimizer.torch_optimizer
    optimizer.build(_parameters([1.0]))
    torch_optimizer = optimizer.torch_optimizer
    assert isinstance(torch_optimizer, torch.optim.Optimizer)
    group = torch_optimizer.param_groups[0]
    if type(torch_optimizer) in TORCH_FUSED:
        assert group["fused"] is True and not group.get("foreach")
    else:
        assert group.get("foreach", True) is True and not group.get("fused")


def _adam_runs(make, steps: int, torch_step_hook: bool):
    """Weights and moments after `steps` updates of a float32 and a float64 weight (one without a
    gradient on odd steps), with torch's step() forced by a no-op hook or not."""
    torch.manual_seed(0)
    weights = [torch.nn.Parameter(torch.randn(7, 3)), torch.nn.Parameter(torch.randn(5)),
               torch.nn.Parameter(torch.randn(4, dtype=torch.float64))]
    optimizer = make()
    optimizer.build(weights)
    if torch_step_hook:
        optimizer.torch_optimizer.register_step_post_hook(lambda *args: None)
    calls = []
    step = optimizer.torch_optimizer.step
    optimizer.torch_optimizer.step = lambda *a, **k: (calls.append(1), step(*a, **k))[1]
    for index in range(steps):
        loss = (weights[0] ** 3).sum() + weights[2].sin().sum()
        if index % 2 == 0:
            loss = loss + (weights[1] * torch.arange(5.0)).sum()
        loss.backward()
        optimizer.step()
    state = optimizer.torch_optimizer.state
    return weights, [state[w] for w in weights], len(calls)


@pytest.mark.parametrize("make", [
    lambda: optimizers.Adam(0.01),
    lambda: optimizers.Adam(0.01, amsgrad=True),
    lambda: optimizers.AdamW(0.01, weight_decay=0.1),
], ids=["adam", "amsgrad", "adamw"])
def test_adam_calls_torchs_fused_kernel_directly_with_torchs_own_result(make) -> None:
    # torch.optim's step() is ~50 us of Python around one kernel; after torch's first step has
    # created the state, Lamina calls the kernel itself. The result must be torch's, bit for bit.
    direct, direct_state, direct_calls = _adam_runs(make, 6, torch_step_hook=False)
    through_torch, torch_state, torch_calls = _adam_runs(make, 6, torch_step_hook=True)
    assert torch_calls == 6 and direct_calls == 1  # the first step creates torch's state
    for ours, theirs in zip(direct + direct_state, through_torch + torch_state):
        if isinstance(ours, dict):
            assert ours.keys() == theirs.keys()
            for key in ours:
                assert torch.equal(ours[key], theirs[key]), key
        else:
            assert torch.equal(ours, theirs)
    assert int(direct_state[0]["step"]) == 6 and int(direct_state[1]["step"]) == 3


def test_adam_steps_through_torch_while_step_hooks_are_registered() -> None:
    from torch.optim.optimizer import register_optimizer_step_post_hook

    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = optimizers.Adam(0.1)
    optimizer.build([weight])
    seen = []

    def steps(count: int) -> None:
        for _ in range(count):
            weight.sum().backward()
            optimizer.step()

    steps(1)  # torch's state exists: the direct path is open from here on
    handle = register_optimizer_step_post_hook(lambda *args: seen.append("global"))
    try:
        steps(2)
    finally:
        handle.remove()
    optimizer.torch_optimizer.register_step_pre_hook(lambda *args: seen.append("own"))
    steps(2)
    assert seen == ["global", "global", "own", "own"]


def test_variables_off_the_cpu_and_cuda_get_the_foreach_kernels() -> None:
    # torch has no fused Adam for the meta device; asking for one would fail at build.
    optimizer = optimizers.Adam()
    optimizer.build([torch.nn.Parameter(torch.empty(3, device="meta"))])
    group = optimizer.torch_optimizer.param_groups[0]
    assert group["foreach"] is True and not group.get("fused")


def test_variables_without_gradient_are_left_alone() -> None:
    used, unused = _parameters([1.0], [1.0])
    optimizer = optimizers.Adam(0.1)
    optimizer.build([used, unused])
    (2 * used).sum().backward()
    optimizer.step()
    assert used.item() != 1.0 and unused.item() == 1.0


def test_zero_grad() -> None:
    w = _parameters([1.0])
    optimizer = optimizers.SGD()
    optimizer.build(w)
    (3 * w[0]).sum().backward()
    optimizer.zero_grad(set_to_none=False)
    assert w[0].grad.item() == 0.0
    optimizer.zero_grad()
    assert w[0].grad is None


def test_learning_rate_is_settable_with_a_float() -> None:
    w = _parameters([1.0])
    optimizer = optimizers.SGD(0.1)
    optimizer.learning_rate = 0.5
    assert optimizer.learning_rate == 0.5
    optimizer.apply(_grads([1.0]), w)
    assert w[0].item() == pytest.approx(0.5)


def test_callable_learning_rate_is_called_each_step() -> None:
    current = {"learning_rate": 0.5}
    w = _parameters([1.0])
    optimizer = optimizers.SGD(lambda: current["learning_rate"])
    optimizer.apply(_grads([1.0]), w)
    current["learning_rate"] = 0.25
    optimizer.apply(_grads([1.0]), w)
    assert w[0].item() == pytest.approx(1.0 - 0.5 - 0.25)


def test_apply_gradients_trains_a_linear_model_outside_fit() -> None:
    torch.manual_seed(0)
    x = torch.randn(64, 3)
    y = x @ torch.tensor([[1.5], [-2.0], [0.5]]) + 0.3
    model = torch.nn.Linear(3, 1)
    optimizer = optimizers.Adam(learning_rate=0.1)
    first = None
    for _ in range(150):
        loss = torch.nn.functional.mse_loss(model(x), y)
        first = loss.item() if first is None else first
        grads = torch.autograd.grad(loss, list(model.parameters()))
        optimizer.apply_gradients(zip(grads, model.parameters()))
    final = torch.nn.functional.mse_loss(model(x), y).item()
    assert final < 1e-3 * first
    assert optimizer.iterations == 150


# ------------------------------------------------------------------------------ state dicts

RESUMABLE = [
    *[(cls.__name__, lambda cls=cls: cls(learning_rate=0.05)) for cls in DEFAULTS],
    ("sgd-momentum-schedule", lambda: optimizers.SGD(schedules.ExponentialDecay(0.1, 2, 0.5), momentum=0.9)),
    ("adam-ema-accumulation", lambda: optimizers.Adam(0.05, use_ema=True, gradient_accumulation_steps=2)),
    ("rmsprop-centered-momentum", lambda: optimizers.RMSprop(0.05, momentum=0.5, centered=True)),
    ("adam-amsgrad-weight-decay", lambda: optimizers.Adam(0.05, amsgrad=True, weight_decay=0.1)),
]


def _train(optimizer, variables, steps: int) -> None:
    for _ in range(steps):
        cases.loss(variables).backward()
        optimizer.step()


def _via_bytes(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("name, make", RESUMABLE, ids=lambda v: v if isinstance(v, str) else "")
@pytest.mark.parametrize("build_first", [True, False], ids=["built", "deferred"])
def test_state_dict_resumes_exactly(name, make, build_first) -> None:
    variables, optimizer = cases.make_variables(), make()
    optimizer.build(variables)
    _train(optimizer, variables, 3)
    state = _via_bytes(optimizer.state_dict())
    weights = [v.detach().clone() for v in variables]
    _train(optimizer, variables, 3)

    resumed_variables = [torch.nn.Parameter(w.clone()) for w in weights]
    resumed = make()
    if build_first:
        resumed.build(resumed_variables)
    resumed.load_state_dict(state)
    assert resumed.iterations == 3 // (optimizer.gradient_accumulation_steps or 1)
    resumed.build(resumed_variables)
    _train(resumed, resumed_variables, 3)
    for original, again in zip(variables, resumed_variables):
        assert torch.equal(original, again), name
    if optimizer.use_ema:
        optimizer.finalize_variable_values()
        resumed.finalize_variable_values()
        assert torch.equal(variables[0], resumed_variables[0])


def test_state_dict_keeps_a_learning_rate_set_by_a_callback() -> None:
    optimizer = optimizers.SGD(0.1)
    optimizer.learning_rate = 0.01
    resumed = optimizers.SGD(0.1)
    resumed.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    assert resumed.learning_rate == 0.01


# ----------------------------------------------------------------------------------- config

CONFIGURED = [
    *[cls() for cls in DEFAULTS],
    optimizers.SGD(0.1, momentum=0.9, nesterov=True, weight_decay=1e-4, clipnorm=1.0),
    optimizers.Adam(schedules.CosineDecay(1e-3, 100, warmup_target=1e-2, warmup_steps=10), amsgrad=True),
    optimizers.RMSprop(0.01, centered=True, global_clipnorm=2.0, use_ema=True, ema_overwrite_frequency=5),
    optimizers.Lion(schedules.OneCycle(1e-3, 100), clipvalue=0.5, gradient_accumulation_steps=4),
    optimizers.AdamW(0.002, weight_decay=0.1, loss_scale_factor=128.0, name="custom"),
]


@pytest.mark.parametrize("optimizer", CONFIGURED, ids=lambda o: type(o).__name__)
def test_config_round_trip(optimizer) -> None:
    config = optimizer.get_config()
    clone = type(optimizer).from_config(config)
    assert clone.get_config() == config
    serialized = optimizers.serialize(optimizer)
    text = json.dumps(serialized)
    assert optimizers.deserialize(json.loads(text)).get_config() == config


@pytest.mark.parametrize("cls", DEFAULTS, ids=lambda cls: cls.__name__)
def test_config_holds_exactly_the_init_arguments(cls) -> None:
    import inspect

    parameters = set(inspect.signature(cls.__init__).parameters) - {"self", "kwargs"}
    assert set(cls().get_config()) == parameters


# ---------------------------------------------------------------------------------- get()


@pytest.mark.parametrize(
    "identifier, cls",
    [
        ("adam", optimizers.Adam),
        ("Adam", optimizers.Adam),
        ("sgd", optimizers.SGD),
        ("rmsprop", optimizers.RMSprop),
        ("adamw", optimizers.AdamW),
        ("NAdam", optimizers.Nadam),
        ("lion", optimizers.Lion),
        ({"class_name": "Adagrad", "config": {"learning_rate": 0.5}}, optimizers.Adagrad),
        (optimizers.Adamax, optimizers.Adamax),
    ],
)
def test_get_resolves_names_configs_and_classes(identifier, cls) -> None:
    assert type(optimizers.get(identifier)) is cls


def test_get_passes_instances_and_wraps_torch_optimizers() -> None:
    optimizer = optimizers.Adadelta()
    assert optimizers.get(optimizer) is optimizer
    assert optimizers.get(None) is None
    w = torch.nn.Parameter(torch.zeros(2))
    torch_optimizer = torch.optim.SGD([w], lr=0.1)
    wrapped = optimizers.get(torch_optimizer)
    assert isinstance(wrapped, optimizers.TorchOptimizer) and wrapped.optimizer is torch_optimizer
    factory = optimizers.get(torch.optim.AdamW)
    assert isinstance(factory, optimizers.TorchOptimizer)
    factory.build([w])
    assert isinstance(factory.torch_optimizer, torch.optim.AdamW)


# --------------------------------------------------------------------------------- errors

ERRORS = [
    (lambda: optimizers.SGD(-0.1), ValueError, r"`learning_rate` must be a finite non-negative float\. Received: learning_rate=-0\.1"),
    (lambda: optimizers.Adam("fast"), TypeError, r"`learning_rate` must be a float, a LearningRateSchedule.*Received: learning_rate='fast'"),
    (lambda: optimizers.get("adamm"), UnknownNameError, r"Unknown optimizer name 'adamm'\. Did you mean .*'Adam'.*Valid names are: .*SGD"),
    (lambda: optimizers.get(42), TypeError, r"Could not interpret optimizer identifier: 42"),
    (lambda: optimizers.SGD(clipnorm=1.0, global_clipnorm=1.0), ValueError, r"Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set\. Received: clipnorm=1\.0, clipvalue=None, global_clipnorm=1\.0"),
    (lambda: optimizers.SGD(clipnorm=-1.0), ValueError, r"`clipnorm` must be a positive float or None\. Received: clipnorm=-1\.0"),
    (lambda: optimizers.SGD(momentum=1.5), ValueError, r"`momentum` must be a float in \[0, 1\]\. Received: momentum=1\.5"),
    (lambda: optimizers.RMSprop(momentum=-0.1), ValueError, r"`momentum` must be a float in \[0, 1\]\. Received: momentum=-0\.1"),
    (lambda: optimizers.Adam(beta_1=1.0), ValueError, r"`beta_1` must be a float in \[0, 1\)\. Received: beta_1=1\.0"),
    (lambda: optimizers.Nadam(beta_2=2), ValueError, r"`beta_2` must be a float in \[0, 1\)\. Received: beta_2=2"),
    (lambda: optimizers.Adagrad(initial_accumulator_value=-1.0), ValueError, r"`initial_accumulator_value` must be a float in \[0, inf\]"),
    (lambda: optimizers.Adadelta(epsilon=-1e-7), ValueError, r"`epsilon` must be a float in \[0, inf\]\. Received: epsilon=-1e-07"),
    (lambda: optimizers.Lion(beta_1=0.0), ValueError, r"Argument `beta_1` must be in the \(0, 1\] range\. Otherwise, the optimizer degenerates to SignSGD\. Received: beta_1=0\.0"),
    (lambda: optimizers.AdamW(weight_decay=None), ValueError, r"Argument `weight_decay` must be a float\. Received: weight_decay=None"),
    (lambda: optimizers.SGD(weight_decay=-1.0), ValueError, r"`weight_decay` must be a non-negative float or None\. Received: weight_decay=-1\.0"),
    (lambda: optimizers.SGD(use_ema=True, ema_momentum=1.5), ValueError, r"`ema_momentum` must be a float in \[0, 1\]\. Received: ema_momentum=1\.5"),
    (lambda: optimizers.SGD(use_ema=True, ema_overwrite_frequency=0), ValueError, r"`ema_overwrite_frequency` must be an integer >= 1 or None\. Received: ema_overwrite_frequency=0"),
    (lambda: optimizers.SGD(gradient_accumulation_steps=1), ValueError, r"`gradient_accumulation_steps` must be an integer >= 2 or None\. Received: gradient_accumulation_steps=1"),
    (lambda: optimizers.Adam(lr=0.1), TypeError, r"Adam got unknown argument\(s\) \['lr'\] \(`lr` is spelled learning_rate in lamina, as in Keras\)"),
    (lambda: optimizers.SGD().step(), ValueError, r"Optimizer 'SGD' is not built\. Call `optimizer\.build\(variables\)`"),
    (lambda: optimizers.SGD().build([]), ValueError, r"was built with an empty list of variables"),
    (lambda: optimizers.SGD().build([torch.zeros(2, dtype=torch.long)]), TypeError, r"must be floating-point torch tensors.*index 0"),
    (lambda: optimizers.SGD().apply([torch.ones(1)]), ValueError, r"the optimizer must already be built"),
    (lambda: optimizers.TorchOptimizer("sgd"), TypeError, r"`optimizer` must be a torch\.optim\.Optimizer or a callable.*Received: 'sgd'"),
    (lambda: optimizers.deserialize({"config": {}}), ValueError, r"must be a dict with a 'class_name'"),
    (lambda: optimizers.SGD().load_state_dict({"iterations": 1}), ValueError, r"expects the dict of a lamina optimizer's `state_dict\(\)`"),
]


@pytest.mark.parametrize("make, error, message", ERRORS, ids=[str(i) for i in range(len(ERRORS))])
def test_bad_input_raises_a_helpful_error(make, error, message) -> None:
    with pytest.raises(error, match=message):
        make()


def test_rebuilding_with_other_variables_raises() -> None:
    optimizer = optimizers.SGD()
    optimizer.build(_parameters([1.0]))
    with pytest.raises(ValueError, match="already built for 1 variables.*create a new optimizer"):
        optimizer.build(_parameters([1.0]))
    with pytest.raises(ValueError, match="Unknown variable"):
        optimizer.apply(_grads([1.0]), _parameters([1.0]))


def test_step_without_any_gradient_raises() -> None:
    optimizer = optimizers.SGD()
    optimizer.build(_parameters([1.0]))
    with pytest.raises(ValueError, match=r"No gradients provided for any variable.*loss\.backward\(\)"):
        optimizer.step()
    # The step switches grad mode off while it runs; a raising step leaves it as it was.
    assert torch.is_grad_enabled()


@pytest.mark.parametrize("grad_mode", [True, False])
def test_step_updates_without_recording_and_restores_grad_mode(grad_mode: bool) -> None:
    w = _parameters([1.0, 2.0])
    optimizer = optimizers.SGD(0.5, weight_decay=0.1, use_ema=True)
    optimizer.build(w)
    (3 * w[0]).sum().backward()
    with torch.set_grad_enabled(grad_mode):
        optimizer.step()
        assert torch.is_grad_enabled() is grad_mode
    # Keras's order: decay w *= 1 - lr * wd, then w -= lr * g (a recorded update would have
    # given w a grad_fn).
    np.testing.assert_allclose(w[0].detach(), [1.0 * 0.95 - 1.5, 2.0 * 0.95 - 1.5], rtol=1e-15)
    assert w[0].grad_fn is None and w[0].requires_grad
    assert not optimizer._averages[0].requires_grad


def test_setting_a_float_learning_rate_on_a_schedule_raises() -> None:
    optimizer = optimizers.SGD(schedules.ExponentialDecay(0.1, 10, 0.9))
    with pytest.raises(TypeError, match="not settable"):
        optimizer.learning_rate = 0.5
    with pytest.raises(ValueError, match="non-negative"):
        optimizers.SGD().learning_rate = -1.0


@pytest.mark.parametrize("cls", DEFAULTS, ids=lambda cls: cls.__name__)
def test_common_arguments_are_declared_once_and_shown_in_every_signature(cls) -> None:
    import inspect

    parameters = inspect.signature(cls.__init__).parameters
    common = ["clipnorm", "clipvalue", "global_clipnorm", "use_ema", "ema_momentum",
              "ema_overwrite_frequency", "loss_scale_factor", "gradient_accumulation_steps"]
    assert all(parameters[name].kind is inspect.Parameter.KEYWORD_ONLY for name in common)
    assert list(parameters)[-2:] == ["name", "kwargs"]
    # Each reaches the base through **kwargs and is validated there.
    assert cls(clipvalue=0.5, gradient_accumulation_steps=3).get_config()["clipvalue"] == 0.5
    with pytest.raises(ValueError, match="`clipnorm` must be a positive float or None"):
        cls(clipnorm=-1.0)
