"""compile()'s Keras arguments that steer the engine (jit_compile, run_eagerly,
steps_per_execution, auto_scale_loss) and the loss-scaled step, checked against plain torch."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import lamina as keras
from lamina import layers
from lamina.callbacks import Callback
from lamina.training.precision import Precision, scaled_step


def _model():
    keras.set_random_seed(3)
    return keras.Sequential([layers.Dense(3, input_shape=(4,)), layers.Dense(1)])


def _data(n=40):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype("float32")
    return x, x.sum(axis=1, keepdims=True)


def _bound_sgd(model, **kwargs):
    optimizer = keras.optimizers.SGD(learning_rate=0.1, **kwargs)
    optimizer.build([p for p in model.parameters()])
    return optimizer


def _grads(model, scaler=None, times=1.0):
    x, y = (torch.as_tensor(a) for a in _data(8))
    loss = torch.nn.functional.mse_loss(model(x), y) * times
    (loss if scaler is None else scaler.scale(loss)).backward()


def test_scaled_step_matches_an_unscaled_step_with_clipping_on_unscaled_gradients():
    reference, scaled = _model(), _model()
    scaled.load_state_dict(reference.state_dict())
    _grads(reference)
    _bound_sgd(reference, clipnorm=0.05).step()
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    _grads(scaled, scaler)
    scaled_step(scaler, _bound_sgd(scaled, clipnorm=0.05))
    # Clipping saw unscaled gradients: the update equals the plain one.
    for a, b in zip(reference.parameters(), scaled.parameters()):
        np.testing.assert_allclose(b.detach().numpy(), a.detach().numpy(), rtol=1e-6, atol=1e-7)
    assert all(p.grad is None for p in scaled.parameters())


def test_scaled_step_skips_an_overflowed_update_clears_gradients_and_halves_the_scale():
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 127)
    _grads(model, scaler, times=1e30)  # the scaled gradients overflow float32
    optimizer = _bound_sgd(model)
    scaled_step(scaler, optimizer)
    for a, b in zip(before, model.parameters()):
        assert torch.equal(a, b.detach())
    assert all(p.grad is None for p in model.parameters())
    assert scaler.get_scale() == 2.0 ** 126
    assert optimizer.iterations == 0


def test_auto_scale_loss_false_trains_float16_without_a_scaler():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's note that this machine has no CUDA
        assert isinstance(Precision(torch.float16, torch.device("cuda")).scaler,
                          torch.amp.GradScaler)
    assert Precision(torch.float16, torch.device("cuda"), scale_loss=False).scaler is None
    model = _model()
    model.compile("sgd", "mse", auto_scale_loss=False)
    assert model._lamina_trainer.auto_scale_loss is False
    assert model._compile_config["auto_scale_loss"] is False


def test_jit_compile_auto_runs_eagerly_as_keras_torch_backend_does():
    model = _model()
    model.compile("sgd", "mse")  # jit_compile="auto"
    model.fit(*_data(), epochs=1, verbose=0)
    assert model._lamina_trainer._forward is None


def test_run_eagerly_overrides_jit_compile_with_keras_warning():
    model = _model()
    with pytest.warns(UserWarning, match="`run_eagerly` is True, then `jit_compile` cannot"):
        model.compile("sgd", "mse", jit_compile=True, run_eagerly=True)
    model.fit(*_data(), epochs=1, verbose=0)
    assert model._lamina_trainer._forward is None


def test_bad_jit_compile_names_the_value():
    with pytest.raises(ValueError, match=r"True, False or 'auto'. Received: jit_compile='xla'"):
        _model().compile("sgd", "mse", jit_compile="xla")


def test_steps_per_execution_calls_batch_hooks_once_per_execution():
    seen = []

    class Record(Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(("begin", batch))

        def on_train_batch_end(self, batch, logs=None):
            seen.append(("end", batch))

    model = _model()
    model.compile("sgd", "mse", steps_per_execution=3)
    model.fit(*_data(48), batch_size=8, epochs=1, verbose=0, callbacks=[Record()])
    # 6 batches in executions of 3: Keras reports the first batch on begin, the last on end.
    assert seen == [("begin", 0), ("end", 2), ("begin", 3), ("end", 5)]


def test_compile_without_warnings_by_default():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _model().compile("sgd", "mse", run_eagerly=True)
