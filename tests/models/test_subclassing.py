"""Subclassed models (the sheet's MyModel, as printed) and every model as a `torch.nn.Module`:
parameters, state_dict, dtype and device moves, train/eval, and a hand-written PyTorch loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import lamina
from lamina import layers
from lamina.errors import UnknownNameError
from lamina.saving import register_keras_serializable

keras = lamina


class MyModel(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense1 = layers.Dense(128, activation='relu')
        self.dense2 = layers.Dense(10, activation='softmax')
        self.dropout = layers.Dropout(0.2)

    def call(self, inputs, training=None):
        x = self.dense1(inputs)
        x = self.dropout(x, training=training)
        return self.dense2(x)


@register_keras_serializable(package="tests")
class Residual(keras.Model):
    """A subclassed model with an argument, registered so that it can be saved."""

    def __init__(self, units=4, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.inner = layers.Dense(units, activation="tanh")
        self.out = layers.Dense(units)

    def call(self, inputs):
        return inputs + self.out(self.inner(inputs))


def test_the_sheets_subclassed_model():
    model = MyModel()
    x = torch.randn(4, 784)
    out = model(x)
    assert out.shape == (4, 10) and model.built
    torch.testing.assert_close(out.sum(-1), torch.ones(4))
    assert model.count_params() == 101_770
    assert [w.shape for w in model.get_weights()] == [(784, 128), (128,), (128, 10), (10,)]
    assert torch.equal(model(x), out)  # inference: dropout off
    assert not torch.equal(model(x, training=True), out)
    torch.testing.assert_close(model(x, training=False), out)


def test_build_by_hand_creates_the_weights():
    model = MyModel()
    model.build((None, 784))
    assert model.built and model.dense1.built and model.count_params() == 101_770
    lines = []
    model.summary(print_fn=lines.append)
    assert any("Total params: 101,770" in line for line in lines)


def test_automatic_config_round_trip():
    model = Residual(units=3, name="res")
    assert model.get_config() == {"name": "res", "trainable": True, "dtype": "float32", "units": 3}
    clone = Residual.from_config(model.get_config())
    x = torch.randn(2, 3)
    model(x), clone(x)
    clone.set_weights(model.get_weights())
    torch.testing.assert_close(clone(x), model(x))
    assert MyModel.from_config(MyModel().get_config()).get_config() == {}


def test_registered_subclassed_model_saves_and_loads(tmp_path):
    model = Residual(units=3)
    x = torch.randn(2, 3)
    expected = model(x)
    model.save(tmp_path / "residual.keras")
    loaded = lamina.models.load_model(tmp_path / "residual.keras")
    assert type(loaded) is Residual and loaded.units == 3
    torch.testing.assert_close(loaded(x), expected)


def test_unregistered_subclassed_model_says_how_to_load(tmp_path):
    model = MyModel()
    model(torch.zeros(1, 784))
    model.save(tmp_path / "mine.keras")
    with pytest.raises(UnknownNameError, match=r"Could not find the layer class 'MyModel' while loading.*custom_objects=\{'MyModel': \.\.\.\}"):
        lamina.models.load_model(tmp_path / "mine.keras")
    loaded = lamina.models.load_model(tmp_path / "mine.keras", custom_objects={"MyModel": MyModel})
    x = torch.randn(2, 784)
    torch.testing.assert_close(loaded(x), model(x))


def test_model_arguments_that_init_does_not_take():
    with pytest.raises(TypeError, match="Could not rebuild model MyModel from its config"):
        MyModel.from_config({"units": 3})


# --------------------------------------------------------------------------- nn.Module


def models():
    sequential = keras.Sequential([layers.Dense(8, activation="relu", input_shape=(3,)),
                                   layers.BatchNormalization(), layers.Dropout(0.1),
                                   layers.Dense(1)])
    inputs = keras.Input(shape=(3,))
    hidden = layers.Dense(8, activation="relu")(inputs)
    functional = keras.Model(inputs, layers.Dense(1)(layers.BatchNormalization()(hidden)))
    subclassed = Residual(units=3)
    subclassed(torch.zeros(1, 3))
    return {"sequential": sequential, "functional": functional, "subclassed": subclassed}


@pytest.mark.parametrize("kind", ["sequential", "functional", "subclassed"])
def test_every_model_is_an_nn_module(kind):
    model = models()[kind]
    assert isinstance(model, nn.Module)
    parameters = list(model.parameters())
    assert sum(p.numel() for p in parameters) == sum(w.numel() for w in model.trainable_weights)
    state = model.state_dict()
    assert sum(v.numel() for v in state.values()) == model.count_params()
    clone = models()[kind]
    clone.load_state_dict(state)
    x = torch.randn(5, 3)
    torch.testing.assert_close(clone(x), model(x))
    model.train()
    assert all(m.training for m in model.modules())
    model.eval()
    assert not any(m.training for m in model.modules())
    model.to(torch.float64)
    assert all(p.dtype == torch.float64 for p in model.parameters())
    assert model(x.double()).dtype == torch.float64


@pytest.mark.parametrize("kind", ["sequential", "functional", "subclassed"])
def test_a_hand_written_pytorch_loop_trains_it(kind):
    torch.manual_seed(0)
    model = models()[kind]
    x = torch.randn(64, 3)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) if kind != "subclassed" else torch.sin(x)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    criterion = nn.MSELoss()
    model.train()
    with torch.no_grad():
        start = criterion(model(x), y).item()
    for _ in range(60):
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        end = criterion(model(x), y).item()
    assert end < 0.5 * start


def test_frozen_layers_get_no_gradient_in_a_torch_loop():
    model = models()["sequential"]
    model.layers[0].trainable = False
    frozen = model.layers[0].kernel.detach().clone()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model.train()
    loss = model(torch.randn(8, 3)).square().mean()
    loss.backward()
    optimizer.step()
    assert model.layers[0].kernel.grad is None
    torch.testing.assert_close(model.layers[0].kernel.detach(), frozen)
    assert not np.allclose(model.layers[-1].get_weights()[0], 0)
