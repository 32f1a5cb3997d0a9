"""Keras 3's Model methods beyond fit/evaluate/predict, run side by side with the real Keras (torch
backend): `stateless_call`, `make_*_function`, `get_metrics_result`, `metrics_variables`,
`jit_compile`/`run_eagerly`, `get_compile_config`/`compile_from_config` and `add_metric`.

Each model is built in both with Keras's weights copied over, so both must compute the same
numbers; the cases Keras cannot run are checked against what the same model computes the plain
stateful way, or against torch.
"""

from __future__ import annotations

import copy
import json
import os
import warnings

import numpy as np
import pytest
import torch

import lamina
from lamina.errors import NotCompiledError

os.environ.setdefault("KERAS_BACKEND", "torch")

TOLERANCE = 1e-5
# Keras's own NumPy 2 deprecation warnings (its Variable's `__array__`) are not Lamina's to fix.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:keras")


@pytest.fixture(scope="module")
def keras():
    module = pytest.importorskip("keras")
    if module.backend.backend() != "torch":
        pytest.skip("Keras 3 runs here on its torch backend only (KERAS_BACKEND=torch)")
    return module


def _numpy(value) -> np.ndarray:
    # Keras's own numpy conversions warn under NumPy 2 (warnings are errors here).
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def _tensor(variable) -> torch.Tensor:
    """A variable's value as a plain tensor (Keras's variables wrap theirs)."""
    return variable.detach() if isinstance(variable, torch.Tensor) else variable.value.detach()


def _close(ours, theirs, what: str = "") -> None:
    np.testing.assert_allclose(_numpy(ours), _numpy(theirs), rtol=TOLERANCE, atol=TOLERANCE,
                               err_msg=what)


def _mlp(module, regularized: bool = False):
    """Dense -> BatchNormalization -> Dense: trainable weights and moving statistics; with
    `regularized`, an L2 penalty on the first kernel and an `add_loss` term of the call."""

    class Penalty(module.layers.Layer):
        def call(self, inputs):
            self.add_loss(0.01 * module.ops.sum(inputs ** 2))
            return inputs

    extra = {"kernel_regularizer": module.regularizers.L2(0.1)} if regularized else {}
    return module.Sequential([
        module.Input((3,)),
        module.layers.Dense(4, name="hidden", **extra),
        *([Penalty(name="penalty")] if regularized else []),
        module.layers.BatchNormalization(name="norm"),
        module.layers.Dense(2, name="head"),
    ])


def _pair(keras, regularized: bool = False):
    theirs = _mlp(keras, regularized)
    ours = _mlp(lamina, regularized)
    ours.set_weights([_numpy(v.value) for v in theirs.weights])
    return ours, theirs


def _data(seed: int = 0, rows: int = 12):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((rows, 3)).astype("float32"),
            rng.standard_normal((rows, 2)).astype("float32"))


def _new_values(model, seed: int):
    """Random values for every variable (variances positive), not the model's own."""
    rng = np.random.default_rng(seed)
    trainable = [rng.standard_normal(tuple(v.shape)).astype("float32")
                 for v in model.trainable_variables]
    non_trainable = [rng.random(tuple(v.shape)).astype("float32") + 0.5
                     for v in model.non_trainable_variables]
    return trainable, non_trainable


# ------------------------------------------------------------------- stateless_call

@pytest.mark.parametrize("training", [True, False, None])
def test_stateless_call_matches_keras_and_changes_nothing(keras, training):
    ours, theirs = _pair(keras, regularized=True)
    trainable, non_trainable = _new_values(theirs, seed=1)
    x = torch.tensor(_data()[0])
    kwargs = {} if training is None else {"training": training}
    own_before = [v.detach().clone() for v in ours.weights]

    results = []
    for model in (ours, theirs):
        given = [torch.tensor(a, requires_grad=True) for a in trainable]
        state = [torch.tensor(a) for a in non_trainable]
        outputs, new_state, losses = model.stateless_call(given, state, x, return_losses=True,
                                                          **kwargs)
        (outputs ** 2).sum().backward()
        for value, original in zip(state, non_trainable):  # the values given stay as they were
            np.testing.assert_array_equal(_numpy(value), original)
        results.append((outputs, new_state, losses, [g.grad for g in given]))
    (out, state, losses, grads), (k_out, k_state, k_losses, k_grads) = results

    _close(out, k_out, "outputs")
    assert len(state) == len(k_state) == 2
    for mine, reference in zip(state, k_state):
        _close(mine, reference, "moving statistics after the call")
    if training:  # the moving statistics moved, in the returned list only
        assert not np.allclose(_numpy(state[0]), non_trainable[0])
    # The add_loss term and the L2 penalty, both on the values given.
    _close(torch.stack(list(losses)).sum(), sum(_numpy(t) for t in k_losses), "losses")
    for mine, reference in zip(grads, k_grads):
        _close(mine, reference, "gradients of the values given")
    for before, after in zip(own_before, ours.weights):
        torch.testing.assert_close(after.detach(), before, rtol=0, atol=0)
    assert all(v.grad is None for v in ours.trainable_variables)


def test_stateless_call_keeps_no_add_loss_terms_as_keras(keras):
    """The call's terms are returned, not kept; the previous call's go, as a call drops them."""
    ours, theirs = _pair(keras, regularized=True)
    x = torch.tensor(_data()[0])
    trainable, non_trainable = _new_values(theirs, seed=2)
    for model in (ours, theirs):
        model(x)
        assert len(model.losses) == 2
        model.stateless_call([torch.tensor(a) for a in trainable],
                             [torch.tensor(a) for a in non_trainable], x, return_losses=True)
    # Only the L2 penalty on the model's own kernel, recomputed, is left.
    assert len(ours.losses) == len(theirs.losses) == 1
    _close(ours.losses[0], theirs.losses[0], "the penalty on the model's own kernel")


def test_stateless_call_under_torch_func_grad_as_a_jax_style_step(keras):
    """A JAX-style step (`grad` of a pure loss of the values, state threaded through) gives
    Keras's gradients and moving statistics."""
    ours, theirs = _pair(keras)
    x, y = (torch.tensor(a) for a in _data(seed=3))
    trainable, non_trainable = _new_values(theirs, seed=4)

    def loss_of(values, state):
        outputs, new_state = ours.stateless_call(values, state, x, training=True)
        return ((outputs - y) ** 2).mean(), new_state

    grads, new_state = torch.func.grad(loss_of, has_aux=True)(
        [torch.tensor(a) for a in trainable], [torch.tensor(a) for a in non_trainable])
    given = [torch.tensor(a, requires_grad=True) for a in trainable]
    k_out, k_state = theirs.stateless_call(given, [torch.tensor(a) for a in non_trainable], x,
                                           training=True)
    ((k_out - y) ** 2).mean().backward()
    for mine, reference in zip(grads, given):
        _close(mine, reference.grad, "gradient")
    for mine, reference in zip(new_state, k_state):
        _close(mine, reference, "moving statistics")


def test_stateless_call_refuses_what_keras_refuses(keras):
    ours, theirs = _pair(keras)
    x = torch.tensor(_data()[0])
    for model in (ours, theirs):
        trainable = [_tensor(v) for v in model.trainable_variables]
        state = [_tensor(v) for v in model.non_trainable_variables]
        with pytest.raises(ValueError, match="Received list with length 5, but expected 6"):
            model.stateless_call(trainable[:-1], state, x)
        with pytest.raises(ValueError, match="Received list with length 3, but expected 2"):
            model.stateless_call(trainable, state + state[:1], x)
        with pytest.raises(ValueError, match=r"shape"):
            model.stateless_call([torch.zeros(4, 3), *trainable[1:]], state, x)
    with pytest.raises(ValueError, match=r"shape \(4, 3\) for variable 'hidden/kernel', whose shape is \(3, 4\)"):
        ours.stateless_call([torch.zeros(4, 3), *ours.trainable_variables[1:]],
                            ours.non_trainable_variables, x)
    for module in (lamina, keras):
        unbuilt = module.Sequential([module.layers.Dense(2)])
        with pytest.raises(ValueError, match="must be built"):
            unbuilt.stateless_call([], [], x)


def test_stateless_call_on_a_shared_layer_maps_each_weight_once():
    """A layer used twice has its weights under two names in torch's module tree; the values
    given replace both (checked against the same model called with those weights set)."""
    dense = lamina.layers.Dense(3, name="shared")
    inputs = lamina.Input((3,))
    model = lamina.Model(inputs, dense(dense(inputs)))
    reference = lamina.Model.from_config(model.get_config())
    x = torch.tensor(_data()[0])
    trainable, _ = _new_values(model, seed=5)
    outputs, state = model.stateless_call([torch.tensor(a) for a in trainable], [], x)
    reference.set_weights(trainable)
    torch.testing.assert_close(outputs, reference(x))
    kernel, bias = (torch.tensor(a) for a in trainable)
    torch.testing.assert_close(outputs, (x @ kernel + bias) @ kernel + bias)
    assert state == []


def test_stateless_call_returns_a_torch_batchnorm_state_as_torch_computes_it():
    """A plain torch module inside (its running statistics and its int64 step count are
    non-trainable variables) updates the copies given, exactly as torch updates its own."""
    norm = torch.nn.BatchNorm1d(3)
    model = lamina.Sequential([lamina.Input((3,)), norm, lamina.layers.Dense(2)])
    reference = copy.deepcopy(norm)
    x = torch.tensor(_data(seed=12)[0])
    model.train()
    outputs, state = model.stateless_call(model.trainable_variables,
                                          model.non_trainable_variables, x)
    expected = reference.train()(x)
    for value, own, wanted in zip(state, (norm.running_mean, norm.running_var,
                                          norm.num_batches_tracked),
                                  (reference.running_mean, reference.running_var,
                                   reference.num_batches_tracked), strict=True):
        torch.testing.assert_close(value, wanted)
        assert value is not own
    dense = model.layers[-1]
    torch.testing.assert_close(outputs, dense(expected))
    assert int(norm.num_batches_tracked) == 0 and float(norm.running_var.sum()) == 3.0


# ------------------------------------------------------------------- make_*_function

def _compiled_pair(keras):
    ours, theirs = _pair(keras)
    for module, model in ((lamina, ours), (keras, theirs)):
        model.compile(optimizer=module.optimizers.SGD(0.1), loss="mse", metrics=["mae"])
    return ours, theirs


def _batches(rows: int = 12, size: int = 4):
    x, y = _data(seed=6, rows=rows)
    return [(torch.tensor(x[i:i + size]), torch.tensor(y[i:i + size]))
            for i in range(0, rows, size)]


def test_train_test_and_predict_functions_match_keras(keras):
    ours, theirs = _compiled_pair(keras)
    iterated = _mlp(lamina)
    iterated.set_weights(ours.get_weights())
    iterated.compile(optimizer=lamina.optimizers.SGD(0.1), loss="mse", metrics=["mae"])
    theirs.make_train_function()
    assert ours.make_train_function() is ours.train_function
    iterator = iter(_batches())
    for batch in _batches():
        logs, k_logs = ours.train_function([batch]), theirs.train_function([batch])
        assert set(logs) == set(k_logs) == {"loss", "mae"}
        for name in logs:
            _close(logs[name], k_logs[name], f"train logs {name}")
        iterated.make_train_function()(iterator)  # Keras's TF/JAX trainers pass an iterator
    for mine, other, reference in zip(ours.weights, iterated.weights, theirs.weights):
        _close(mine, reference.value, "weights after three train_function steps")
        torch.testing.assert_close(other, mine, rtol=0, atol=0)

    assert not ours.training  # the train function put back the mode it found

    for model in (ours, theirs):
        model.reset_metrics()
        model.make_test_function()
        model.make_predict_function()
    weights = [w.detach().clone() for w in ours.weights]
    ours.train()  # as inside fit: the test and predict steps still run in inference mode
    for batch in _batches():
        logs, k_logs = ours.test_function([batch]), theirs.test_function([batch])
        for name in ("loss", "mae"):
            _close(logs[name], k_logs[name], f"test logs {name}")
        outputs = ours.predict_function([(batch[0],)])
        assert isinstance(outputs, torch.Tensor) and not outputs.requires_grad
        _close(outputs, theirs.predict_function([(batch[0],)]), "predict_function outputs")
    for before, after in zip(weights, ours.weights):  # test and predict change nothing
        torch.testing.assert_close(after.detach(), before, rtol=0, atol=0)
    assert ours.training

    for module, model in ((lamina, ours), (keras, theirs)):
        model.compile(optimizer="sgd", loss="mse")
        assert model.train_function is None and model.test_function is None


def test_train_and_test_steps_called_by_hand_right_after_compile_match_keras(keras):
    # A custom loop may call the steps before any fit or evaluate: the engine sets itself up
    # (precision, built layers, the optimizer bound to the weights) on the first one.
    ours, theirs = _compiled_pair(keras)
    first, *rest = _batches()
    logs, k_logs = ours.test_step(first), theirs.test_step(first)
    for name in ("loss", "mae"):
        _close(logs[name], k_logs[name], f"test_step {name}")
    for batch in rest:
        logs, k_logs = ours.train_step(batch), theirs.train_step(batch)
        for name in ("loss", "mae"):  # running means over all the steps, as in Keras
            _close(logs[name], k_logs[name], f"train_step {name}")
    # BatchNormalization normalized with the batch's statistics and moved its averages.
    for mine, reference in zip(ours.weights, theirs.weights):
        _close(mine, reference.value, "weights after two train steps")
    assert not ours.training  # the mode it found is back


def test_test_and_predict_functions_run_torch_modules_in_eval_mode():
    """A torch module follows the module mode, not `training=`: inside fit (train mode) the
    test and predict steps still normalize with the running statistics, then the mode is back."""
    norm = torch.nn.BatchNorm1d(3)
    model = lamina.Sequential([lamina.Input((3,)), norm, lamina.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    with torch.no_grad():
        norm.running_mean.fill_(0.5)
        norm.running_var.fill_(4.0)
    x, y = (torch.tensor(a) for a in _data(seed=13, rows=6))
    kernel, bias = (torch.tensor(w) for w in model.layers[-1].get_weights())
    expected = ((x - 0.5) / torch.sqrt(torch.tensor(4.0 + norm.eps))) @ kernel + bias
    model.train()
    logs = model.make_test_function()([(x, y)])
    outputs = model.make_predict_function()([x])
    torch.testing.assert_close(outputs, expected)
    torch.testing.assert_close(logs["loss"], ((expected - y) ** 2).mean())
    assert model.training and norm.training and int(norm.num_batches_tracked) == 0


def test_step_functions_are_made_once_unless_forced(keras):
    ours, _ = _compiled_pair(keras)
    first = ours.make_test_function()
    assert ours.make_test_function() is first
    assert ours.make_test_function(force=True) is not first
    uncompiled = _mlp(lamina)
    predicted = uncompiled.make_predict_function()([torch.ones(2, 3)])  # as predict(): no compile
    torch.testing.assert_close(predicted, uncompiled(torch.ones(2, 3), training=False))
    with pytest.raises(NotCompiledError, match="compile"):
        uncompiled.make_train_function()


@pytest.mark.parametrize("data, error, message", [
    (lambda b: b, ValueError, r"list holding one batch.*tuple of 2 items.*\[\(x, y\)\]"),
    (lambda b: [b, b], ValueError, r"list of 2 items"),
    (lambda b: b[0], TypeError, r"Received: Tensor"),
])
def test_step_function_refuses_a_bare_batch(keras, data, error, message):
    ours, _ = _compiled_pair(keras)
    batch = _batches()[0]
    with pytest.raises(error, match=message):
        ours.make_train_function()(data(batch))


# ------------------------------------------------------------------- metrics

def test_metrics_result_and_variables_match_keras_after_fit(keras):
    ours, theirs = _compiled_pair(keras)
    x, y = _data(seed=7, rows=20)
    for model in (ours, theirs):
        model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    results, k_results = ours.get_metrics_result(), theirs.get_metrics_result()
    assert list(results) == list(k_results) == ["loss", "mae"]
    for name in results:
        _close(results[name], k_results[name], name)
    # Mean's (total, count) of the loss then of the mae, the epoch's five batches of 4 each.
    variables, k_variables = ours.metrics_variables, theirs.metrics_variables
    assert len(variables) == len(k_variables) == 4
    for mine, reference in zip(variables, k_variables):
        _close(mine, reference.value, "metric state")
    assert float(variables[1]) == 20.0
    for model in (ours, theirs):
        model.reset_metrics()
    assert all(float(v) == 0 for v in ours.metrics_variables)


def test_metrics_variables_are_the_live_state_of_the_loss_tracker(keras):
    ours, _ = _compiled_pair(keras)
    x, y = _data(seed=8, rows=8)
    ours.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    losses = ours.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    total, count = ours.metrics_variables[:2]
    assert float(count) == 8.0
    np.testing.assert_allclose(float(total) / float(count), losses["loss"], rtol=1e-6)
    np.testing.assert_allclose(float(ours.get_metrics_result()["loss"]), losses["loss"],
                               rtol=1e-6)
    total.zero_()  # the variables themselves, as Keras's `v.assign(...)` after a stateless step
    assert float(ours.get_metrics_result()["loss"]) == 0.0


def test_metrics_of_an_uncompiled_model_with_a_tracker_match_keras(keras):
    def tracked(module):
        class Tracked(module.Model):
            def __init__(self):
                super().__init__()
                self.dense = module.layers.Dense(1)
                self.tracker = module.metrics.Mean(name="tracked")

            def call(self, inputs):
                return self.dense(inputs)

        model = Tracked()
        model.tracker.update_state(np.array([1.0, 2.0, 6.0], dtype="float32"))
        return model

    ours, theirs = tracked(lamina), tracked(keras)
    assert list(ours.get_metrics_result()) == list(theirs.get_metrics_result()) == ["tracked"]
    _close(ours.get_metrics_result()["tracked"], theirs.get_metrics_result()["tracked"])
    for mine, reference in zip(ours.metrics_variables, theirs.metrics_variables, strict=True):
        _close(mine, reference.value)


def test_add_metric_is_gone_as_in_keras(keras):
    ours, theirs = _pair(keras)
    with pytest.raises(NotImplementedError) as raised:
        theirs.add_metric(1.0, name="m")
    with pytest.raises(NotImplementedError, match="compile\\(metrics=") as ours_raised:
        ours.add_metric(1.0, name="m")
    assert str(ours_raised.value) == str(raised.value)


# ------------------------------------------------------------------- jit_compile, run_eagerly

@pytest.mark.parametrize("arguments", [
    {}, {"jit_compile": True}, {"jit_compile": False}, {"run_eagerly": True},
    {"jit_compile": "auto", "run_eagerly": False},
])
def test_jit_compile_and_run_eagerly_read_as_keras_after_compile(keras, arguments):
    ours, theirs = _pair(keras)
    assert (ours.jit_compile, ours.run_eagerly) == (theirs.jit_compile, theirs.run_eagerly) \
        == (False, False)
    for model in (ours, theirs):
        model.compile(optimizer="sgd", loss="mse", **arguments)
    assert (ours.jit_compile, ours.run_eagerly) == (theirs.jit_compile, theirs.run_eagerly)


def test_run_eagerly_wins_over_jit_compile_with_keras_warning(keras):
    ours, theirs = _pair(keras)
    for model in (ours, theirs):
        with pytest.warns(UserWarning, match="cannot also be True"):
            model.compile(optimizer="sgd", loss="mse", run_eagerly=True, jit_compile=True)
    assert (ours.jit_compile, ours.run_eagerly) == (theirs.jit_compile, theirs.run_eagerly) \
        == (False, True)
    for model in (ours, theirs):
        model.jit_compile = True
        model.run_eagerly = False
    assert (ours.jit_compile, ours.run_eagerly) == (theirs.jit_compile, theirs.run_eagerly) \
        == (True, False)


@pytest.fixture
def compile_calls(monkeypatch):
    """torch.compile replaced by a recorder that returns the model uncompiled (fast)."""
    calls = []

    def recorder(module, *args, **kwargs):
        calls.append(module)
        return module

    monkeypatch.setattr(torch, "compile", recorder)
    return calls


def test_setting_jit_compile_decides_whether_fit_compiles(compile_calls):
    model = _mlp(lamina)
    x, y = _data(seed=9, rows=8)
    model.jit_compile = True  # before compile: compile's own argument replaces it
    model.compile(optimizer="sgd", loss="mse")
    assert model.jit_compile is False
    model.fit(x, y, batch_size=4, verbose=0)
    assert compile_calls == []
    model.jit_compile = True
    model.fit(x, y, batch_size=4, verbose=0)
    assert compile_calls == [model]
    model.jit_compile = False
    model.run_eagerly = True
    model.jit_compile = "auto"  # Keras's "auto" is eager on torch
    assert model.jit_compile is False
    history = model.fit(x, y, batch_size=4, verbose=0)
    assert compile_calls == [model] and np.isfinite(history.history["loss"][0])


def test_run_eagerly_true_turns_torch_compile_off(compile_calls):
    model = _mlp(lamina)
    model.compile(optimizer="sgd", loss="mse", jit_compile=True)
    model.run_eagerly = True
    assert model.jit_compile is False
    model.fit(*_data(seed=10, rows=8), batch_size=4, verbose=0)
    assert compile_calls == []


@pytest.mark.parametrize("name, value", [("jit_compile", "yes"), ("jit_compile", 1.5),
                                         ("run_eagerly", "no"), ("run_eagerly", None)])
def test_jit_compile_and_run_eagerly_refuse_other_values(name, value):
    model = _mlp(lamina)
    with pytest.raises(ValueError, match=f"`{name}` must be True.*Received: {name}="):
        setattr(model, name, value)


# ------------------------------------------------------------------- compile config

def test_get_compile_config_is_empty_then_json_as_keras(keras):
    ours, theirs = _pair(keras)
    assert ours.get_compile_config() == theirs.get_compile_config() == {}
    for module, model in ((lamina, ours), (keras, theirs)):
        model.compile(optimizer=module.optimizers.Adam(0.01), loss="mse", metrics=["mae"],
                      loss_weights=None)
    config, k_config = ours.get_compile_config(), theirs.get_compile_config()
    assert json.loads(json.dumps(config)) == config
    shared = set(k_config) - {"optimizer"}
    assert {k: config[k] for k in shared} == {k: k_config[k] for k in shared}
    assert config["optimizer"]["class_name"] == k_config["optimizer"]["class_name"] == "Adam"


@pytest.mark.parametrize("source", ["keras", "lamina"])
def test_compile_from_config_trains_as_the_original(keras, source):
    """A config (Keras's own, or ours) through JSON compiles a fresh model that trains exactly
    as Keras's model compiled with the original arguments."""
    ours, theirs = _pair(keras)
    fresh, _ = _pair(keras)
    fresh.set_weights(ours.get_weights())
    theirs.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss="mse",
                   metrics=["mae"])
    ours.compile(optimizer=lamina.optimizers.SGD(0.05, momentum=0.9), loss="mse",
                 metrics=["mae"])
    config = (theirs if source == "keras" else ours).get_compile_config()
    fresh.compile_from_config(json.loads(json.dumps(config)))
    assert fresh.optimizer.built  # as Keras builds it for a built model
    x, y = _data(seed=11, rows=16)
    for model in (fresh, theirs):
        model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    for mine, reference in zip(fresh.weights, theirs.weights):
        _close(mine, reference.value, "weights after fit")
    _close(fresh.get_metrics_result()["mae"], theirs.get_metrics_result()["mae"])


def test_compile_from_config_refuses_unknown_keys_as_keras(keras):
    ours, theirs = _pair(keras)
    with pytest.raises(TypeError, match="los"):
        theirs.compile_from_config({"optimizer": "sgd", "los": "mse"})
    with pytest.raises(TypeError, match=r"keys \['los'\].*Valid keys: \['optimizer', 'loss'"):
        ours.compile_from_config({"optimizer": "sgd", "los": "mse"})
    with pytest.raises(TypeError, match="takes the dict"):
        ours.compile_from_config('{"optimizer": "sgd"}')
    assert ours.optimizer is None


def test_compile_from_config_skips_a_custom_compile_with_keras_warning(keras):
    def custom(module):
        class CustomCompile(module.Sequential):
            def compile(self, *args, **kwargs):
                super().compile(*args, **kwargs)

        return CustomCompile([module.Input((3,)), module.layers.Dense(1)])

    for model in (custom(lamina), custom(keras)):
        with pytest.warns(UserWarning, match="compile\\(\\)` method is custom"):
            model.compile_from_config({"optimizer": "sgd", "loss": "mse"})
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert model.get_compile_config() == {}


@pytest.mark.parametrize("metrics", [
    [["mae"], ["mse", "mae", "msle"]],  # Keras sorts a multi-output model's metrics by name
    {"b": ["mse", "mae"], "z": ["msle"]},
    None,
])
def test_evaluate_and_the_on_batch_lists_come_in_kerass_order(keras, metrics):
    # Code that unpacks `loss, a_loss, ... = model.evaluate(...)` written against Keras must
    # get the same values in the same places.
    def build(K):
        inputs = K.Input((4,))
        outputs = [K.layers.Dense(2, name="z", kernel_initializer="ones")(inputs),
                   K.layers.Dense(3, name="b", kernel_initializer="ones")(inputs)]
        model = K.Model(inputs, outputs)
        model.compile("sgd", loss=["mse", "mae"], metrics=metrics)
        return model

    x = np.arange(32, dtype="float32").reshape(8, 4) / 10
    ys = [np.zeros((8, 2), "float32"), np.ones((8, 3), "float32")]
    ours, theirs = build(lamina), build(keras)
    np.testing.assert_allclose(ours.evaluate(x, ys, verbose=0), theirs.evaluate(x, ys, verbose=0),
                               rtol=1e-5)
    np.testing.assert_allclose(ours.test_on_batch(x, ys), theirs.test_on_batch(x, ys), rtol=1e-5)
    np.testing.assert_allclose(ours.train_on_batch(x, ys), theirs.train_on_batch(x, ys), rtol=1e-5)


def test_a_custom_test_steps_extra_logs_follow_the_metrics_sorted_as_in_keras(keras):
    def build(K):
        class Scored(K.Sequential):
            def test_step(self, data):
                logs = super().test_step(data)
                return {**logs, "zeta": 3.0, "alpha": 1.0}

        model = Scored([K.Input((2,)), K.layers.Dense(1, kernel_initializer="ones")])
        model.compile("sgd", "mse", metrics=["mse", "mae"])  # compile order, not sorted
        return model

    x, y = np.ones((4, 2), "float32"), np.zeros((4, 1), "float32")
    ours, theirs = build(lamina), build(keras)
    np.testing.assert_allclose(ours.evaluate(x, y, verbose=0), theirs.evaluate(x, y, verbose=0),
                               rtol=1e-6)


def test_layer_classes_named_like_model_attributes_build_as_in_keras(keras):
    # `AddLoss` and `Summary` become `add_loss` and `summary`: Model attributes, which torch
    # refuses to shadow with a submodule; Keras accepts such classes.
    def build(K):
        class AddLoss(K.layers.Layer):
            def call(self, x):
                return x * 2.0

        class Summary(K.layers.Layer):
            def call(self, x):
                return x + 1.0

        sequential = K.Sequential([K.Input((2,)), AddLoss(), Summary(),
                                   K.layers.Dense(1, kernel_initializer="ones", name="head")])
        inputs = K.Input((2,))
        functional = K.Model(inputs, Summary()(AddLoss()(inputs)))
        return sequential, functional

    x = np.array([[1.0, 2.0]], "float32")
    for ours, theirs in zip(build(lamina), build(keras)):
        names = [[layer.name for layer in model.layers if "input" not in layer.name]
                 for model in (ours, theirs)]
        assert names[0] == names[1]
        np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0))
    assert callable(ours.add_loss) and callable(ours.summary)  # the methods stay the methods
