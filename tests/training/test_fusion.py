"""The default train step trains a final softmax/sigmoid through the loss's logits twin.

Gradients are read from one SGD step with learning rate 1 (weights before minus after) and
compared with torch autograd on the same weights; the saturated cases separate the fused path
(exact logits gradient) from the unfused one (the clipped probability has zero gradient)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lamina as keras
from lamina import activations, layers


def _dense_model(units: int, activation: str, inputs: int = 6, scale: float = 1.0,
                 functional: bool = False):
    torch.manual_seed(0)
    if functional:
        x = keras.Input(shape=(inputs,))
        model = keras.Model(x, layers.Dense(units, activation=activation)(x))
    else:
        model = keras.Sequential([layers.Dense(units, activation=activation,
                                               input_shape=(inputs,))])
    kernel, bias = model.get_weights()
    model.set_weights([kernel * scale, bias + 0.1])
    return model


def _step(model, loss, x, y, metrics=None):
    """(logged values, kernel gradient, bias gradient, weights before) of one SGD(1.0) step."""
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0), loss=loss, metrics=metrics)
    before = [w.copy() for w in model.get_weights()]
    logs = model.train_on_batch(x, y, return_dict=True)
    after = model.get_weights()
    return logs, before[0] - after[0], before[1] - after[1], before


def _torch_grads(before, x, loss_of_logits):
    kernel = torch.tensor(before[0], dtype=torch.float64, requires_grad=True)
    bias = torch.tensor(before[1], dtype=torch.float64, requires_grad=True)
    loss = loss_of_logits(torch.tensor(x, dtype=torch.float64) @ kernel + bias)
    loss.backward()
    return float(loss.detach()), kernel.grad.numpy(), bias.grad.numpy()


def _data(classes: int = 4, samples: int = 16):
    rng = np.random.default_rng(1)
    return rng.normal(size=(samples, 6)).astype("float32"), rng.integers(0, classes, samples)


@pytest.mark.parametrize("functional", [False, True])
@pytest.mark.parametrize("scale", [1.0, 60.0])  # 60: softmax saturates far outside [eps, 1-eps]
def test_softmax_sparse_crossentropy_trains_on_logits(functional, scale):
    x, y = _data()
    model = _dense_model(4, "softmax", scale=scale, functional=functional)
    logs, d_kernel, d_bias, before = _step(model, "sparse_categorical_crossentropy", x, y,
                                           metrics=["accuracy"])
    value, g_kernel, g_bias = _torch_grads(before, x, lambda z: F.cross_entropy(
        z, torch.tensor(y)))
    np.testing.assert_allclose(d_kernel, g_kernel, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(d_bias, g_bias, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(logs["loss"], value, rtol=1e-5)
    logits = x @ before[0] + before[1]
    assert logs["accuracy"] == pytest.approx(np.mean(logits.argmax(-1) == y))
    assert model.layers[-1].activation is activations.softmax


def test_unsaturated_fused_step_equals_the_probability_form():
    """Where the probabilities stay inside [eps, 1-eps] the fused loss and gradients are those
    of Keras's clipped probability form, computed here by torch."""
    x, y = _data()
    model = _dense_model(4, "softmax", scale=0.5)
    logs, d_kernel, _, before = _step(model, "sparse_categorical_crossentropy", x, y)
    value, g_kernel, _ = _torch_grads(before, x, lambda z: F.nll_loss(
        torch.log(torch.softmax(z, -1).clamp(1e-7, 1 - 1e-7)), torch.tensor(y)))
    np.testing.assert_allclose(d_kernel, g_kernel, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(logs["loss"], value, rtol=1e-5)


@pytest.mark.parametrize("scale", [1.0, 60.0])
def test_sigmoid_binary_crossentropy_trains_on_logits(scale):
    x, y = _data(classes=2)
    model = _dense_model(1, "sigmoid", scale=scale)
    logs, d_kernel, d_bias, before = _step(model, "binary_crossentropy", x, y,
                                           metrics=["accuracy"])
    target = torch.tensor(y, dtype=torch.float64).reshape(-1, 1)
    value, g_kernel, g_bias = _torch_grads(
        before, x, lambda z: F.binary_cross_entropy_with_logits(z, target))
    np.testing.assert_allclose(d_kernel, g_kernel, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(logs["loss"], value, rtol=1e-5)
    probabilities = torch.sigmoid(torch.tensor(x @ before[0] + before[1])).numpy()
    assert logs["binary_accuracy" if "binary_accuracy" in logs else "accuracy"] == \
        pytest.approx(np.mean((probabilities[:, 0] > 0.5) == y))


def test_predict_and_evaluate_keep_the_probabilities():
    x, y = _data()
    model = _dense_model(4, "softmax", scale=60.0)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    kernel, bias = model.get_weights()
    expected = torch.softmax(torch.tensor(x @ kernel + bias), -1).numpy()
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-7)
    # evaluate reports Keras's clipped probability loss, not the logits twin's.
    clipped = -np.log(np.clip(expected[np.arange(len(y)), y], 1e-7, 1 - 1e-7)).mean()
    assert model.evaluate(x, y, verbose=0) == pytest.approx(clipped, rel=1e-5)


def test_metrics_other_than_accuracy_get_probabilities():
    x, y = _data()
    one_hot = np.eye(4, dtype="float32")[y]
    model = _dense_model(4, "softmax")
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0),
                  loss="categorical_crossentropy", metrics=["mse", "accuracy"])
    logs = model.train_on_batch(x, one_hot, return_dict=True)
    assert model._lamina_trainer._fused is not None
    kernel, bias = model.get_weights()
    probabilities = torch.softmax(torch.tensor(x @ kernel + bias), -1).numpy()
    assert logs["mse"] == pytest.approx(np.mean((probabilities - one_hot) ** 2), rel=1e-5)
    assert logs["accuracy"] == pytest.approx(np.mean(probabilities.argmax(-1) == y))


def test_softmax_with_mse_is_not_fused():
    x, y = _data()
    one_hot = np.eye(4, dtype="float32")[y]
    model = _dense_model(4, "softmax", scale=3.0)
    _, d_kernel, _, before = _step(model, "mse", x, one_hot)
    assert model._lamina_trainer._fused is None
    _, g_kernel, _ = _torch_grads(before, x, lambda z: F.mse_loss(
        torch.softmax(z, -1), torch.tensor(one_hot, dtype=torch.float64)))
    np.testing.assert_allclose(d_kernel, g_kernel, rtol=1e-4, atol=1e-6)


def _planned(model, loss, **compile_kwargs):
    x, y = _data(classes=2)
    model.compile(optimizer="sgd", loss=loss, **compile_kwargs)
    model.train_on_batch(x, y)
    return model._lamina_trainer._fused


@pytest.mark.parametrize("make, loss", [
    # the loss is already on logits
    (lambda: _dense_model(2, "softmax"),
     keras.losses.SparseCategoricalCrossentropy(from_logits=True)),
    # a softmax loss after a sigmoid
    (lambda: _dense_model(2, "sigmoid"), "sparse_categorical_crossentropy"),
    # the penalty of an activity regularizer reads the probabilities
    (lambda: keras.Sequential([layers.Dense(2, activation="softmax", input_shape=(6,),
                                            activity_regularizer="l2")]),
     "sparse_categorical_crossentropy"),
    # the final activation is not the last thing the layer does
    (lambda: keras.Sequential([keras.Input(shape=(6,)), layers.Reshape((3, 2)),
                               layers.SimpleRNN(1, activation="sigmoid")]),
     "binary_crossentropy"),
])
def test_not_fused(make, loss):
    assert _planned(make(), loss) is None


def test_shared_final_layer_is_not_fused():
    inputs = keras.Input(shape=(6,))
    shared = layers.Dense(6, activation="softmax")
    model = keras.Model(inputs, shared(shared(inputs)))
    assert _planned(model, "sparse_categorical_crossentropy") is None


def test_overridden_compute_loss_is_not_fused():
    class Custom(keras.Sequential):
        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            return super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight)

    model = Custom([layers.Dense(2, activation="softmax", input_shape=(6,))])
    assert _planned(model, "sparse_categorical_crossentropy") is None


def test_a_hook_on_the_final_layer_sees_probabilities_during_fit():
    """The training doctor watches sigmoid outputs through forward hooks: while one is on the
    final layer, that step runs unfused."""
    x, y = _data(classes=2)
    model = _dense_model(1, "sigmoid", scale=60.0)
    seen = []
    model.layers[-1].register_forward_hook(
        lambda module, inputs, output: seen.append(output.detach()))
    _, d_kernel, _, before = _step(model, "binary_crossentropy", x, y)
    assert all(float(o.min()) >= 0.0 and float(o.max()) <= 1.0 for o in seen)
    target = torch.tensor(y, dtype=torch.float64).reshape(-1, 1)
    _, g_kernel, _ = _torch_grads(before, x, lambda z: F.binary_cross_entropy(
        torch.sigmoid(z).clamp(1e-7, 1 - 1e-7), target))
    np.testing.assert_allclose(d_kernel, g_kernel, rtol=1e-4, atol=1e-6)
