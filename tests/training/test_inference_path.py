"""predict/evaluate after the batch-1 cost cuts of issue #15: same behaviour, checked against
torch itself (no timings here)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import lamina
from lamina import callbacks as callbacks_module
from lamina import layers
from lamina.training.concurrency import _training_modules
from lamina.training.trainer import _device_of


def _mlp() -> lamina.Sequential:
    torch.manual_seed(0)
    return lamina.Sequential([layers.Dense(8, activation="relu", input_shape=(4,)),
                              layers.Dropout(0.5), layers.Dense(3)])


def _reference(model: nn.Module, x: np.ndarray) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def test_predict_sees_an_input_changed_in_place_between_calls():
    model = _mlp()
    x = np.random.default_rng(0).random((1, 4), dtype=np.float32)
    first = model.predict(x, verbose=0)
    x[0, :] = [5.0, -3.0, 2.0, 7.0]  # the same array object, new values
    second = model.predict(x, verbose=0)
    assert not np.allclose(first, second)
    np.testing.assert_allclose(second, _reference(model, x), rtol=1e-6)


def test_predict_result_is_a_fresh_numpy_array_even_for_an_identity_model():
    inputs = lamina.Input(shape=(3,))
    model = lamina.Model(inputs, layers.Identity()(inputs))
    x = torch.ones(2, 3)
    out = model.predict(x, verbose=0)
    assert isinstance(out, np.ndarray)
    out[:] = 7.0
    assert torch.equal(x, torch.ones(2, 3))  # the caller's input is not aliased


def test_predict_still_calls_callbacks_and_restores_training_mode():
    model = _mlp()
    model.train()
    model.layers[1].eval()  # a frozen submodule stays frozen afterwards
    seen: list[tuple[str, int]] = []

    class Recorder(callbacks_module.Callback):
        def on_predict_begin(self, logs=None):
            seen.append(("begin", -1))

        def on_predict_batch_end(self, batch, logs=None):
            assert not self.model.training and not self.model.layers[0].training
            seen.append(("batch", batch))

        def on_predict_end(self, logs=None):
            seen.append(("end", -1))

    x = np.random.default_rng(1).random((5, 4), dtype=np.float32)
    out = model.predict(x, batch_size=2, verbose=0, callbacks=[Recorder()])
    assert seen == [("begin", -1), ("batch", 0), ("batch", 1), ("batch", 2), ("end", -1)]
    assert model.training and model.layers[0].training and not model.layers[1].training
    np.testing.assert_allclose(out, _reference(model, x), rtol=1e-6)


def test_training_modules_match_torch_modules_with_shared_and_frozen_children():
    shared = nn.Linear(2, 2)
    model = nn.Sequential(shared, nn.ReLU(), shared, nn.Sequential(nn.Dropout(), nn.Tanh()))
    model[3][0].eval()
    assert _training_modules(model) == [m for m in model.modules() if m.training]


def test_device_of_matches_the_first_parameter_and_defaults_to_cpu():
    model = _mlp()
    assert _device_of(model) == next(model.parameters()).device
    model = nn.Sequential(nn.ReLU(), nn.Sequential(nn.Linear(2, 2).to(torch.float64)))
    assert _device_of(model) == next(model.parameters()).device
    assert _device_of(nn.Sequential(nn.ReLU())) == torch.device("cpu")


def test_evaluate_on_numpy_and_tensor_inputs_agrees_with_torch():
    model = _mlp()
    model.compile(optimizer="sgd", loss=lamina.losses.SparseCategoricalCrossentropy(
        from_logits=True), metrics=["accuracy"])
    rng = np.random.default_rng(2)
    x = rng.random((10, 4), dtype=np.float32)
    y = rng.integers(0, 3, 10)
    logits = torch.from_numpy(_reference(model, x))
    expected_loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y)).item()
    expected_accuracy = (logits.argmax(1).numpy() == y).mean()
    for data in ((x, y), (torch.from_numpy(x), torch.from_numpy(y))):
        loss, accuracy = model.evaluate(*data, batch_size=4, verbose=0)
        np.testing.assert_allclose(loss, expected_loss, rtol=1e-5)
        np.testing.assert_allclose(accuracy, expected_accuracy, rtol=1e-6)


def test_predict_keeps_a_numpy_string_array_as_text():
    # Keras's StringLookup: index 0 is the out-of-vocabulary token, the vocabulary follows.
    model = lamina.Sequential([layers.StringLookup(vocabulary=["a", "b", "c"])])
    out = model.predict(np.array([["a"], ["c"], ["zz"]]), verbose=0)
    np.testing.assert_array_equal(out, [[1], [3], [0]])
