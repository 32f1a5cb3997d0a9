"""`Sequential`: construction from a list, `add`, `pop`, building with and without an input
shape, config round trips, plain torch modules as layers, and its errors."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import nn

import lamina
from lamina import layers


def mlp(**first_kwargs):
    return [layers.Dense(8, activation="relu", name="hidden", **first_kwargs),
            layers.Dropout(0.2, name="drop"), layers.Dense(3, name="head")]


@pytest.mark.parametrize("start", ["input_shape", "keras_input", "add", "build", "first_call"])
def test_ways_to_build_give_the_same_model(start):
    x = torch.randn(5, 4)
    if start == "input_shape":
        model = lamina.Sequential(mlp(input_shape=(4,)))
        assert model.built
    elif start == "keras_input":
        model = lamina.Sequential([lamina.Input(shape=(4,))] + mlp())
        assert model.built
    elif start == "add":
        model = lamina.Sequential()
        model.add(lamina.Input(shape=(4,)))
        for layer in mlp():
            model.add(layer)
        assert model.built
    elif start == "build":
        model = lamina.Sequential(mlp())
        assert not model.built
        model.build((None, 4))
    else:
        model = lamina.Sequential(mlp())
        assert not model.built
        model(x)
    assert model.built and model.count_params() == 4 * 8 + 8 + 8 * 3 + 3
    assert [layer.name for layer in model.layers] == ["hidden", "drop", "head"]
    assert model.output_shape == (None, 3) and model.input.shape == (None, 4)
    assert [layer.output_shape for layer in model.layers] == [(None, 8), (None, 8), (None, 3)]
    assert model(x).shape == (5, 3)


def test_pop_removes_the_last_layer_and_rebuilds():
    model = lamina.Sequential(mlp(input_shape=(4,)))
    popped = model.pop()
    assert popped.name == "head" and [layer.name for layer in model.layers] == ["hidden", "drop"]
    assert model.output_shape == (None, 8) and model(torch.zeros(2, 4)).shape == (2, 8)
    assert "head" not in dict(model.named_children())
    model.add(layers.Dense(1, name="new_head"))
    assert model.output_shape == (None, 1) and model.count_params() == 4 * 8 + 8 + 9


def test_calls_are_the_layers_in_order():
    model = lamina.Sequential(mlp(input_shape=(4,)))
    x = torch.randn(3, 4)
    hidden, _, head = model.layers
    torch.testing.assert_close(model(x), head(hidden(x)))


def test_training_argument_reaches_dropout():
    model = lamina.Sequential([lamina.Input((100,)), layers.Dropout(0.5)])
    x = torch.ones(2, 100)
    assert torch.equal(model(x), x)
    assert (model(x, training=True) == 0).any()
    model.train()
    assert torch.equal(model(x, training=False), x)


def test_get_layer_by_name_and_index():
    model = lamina.Sequential(mlp(input_shape=(4,)))
    assert model.get_layer("drop") is model.layers[1]
    assert model.get_layer(index=-1).name == "head"
    with pytest.raises(ValueError, match=r"No such layer: 'nope'. Existing layers are: \['hidden', 'drop', 'head'\]"):
        model.get_layer("nope")
    with pytest.raises(ValueError, match="Was asked to retrieve layer at index 5 but model"):
        model.get_layer(index=5)


@pytest.mark.parametrize("with_input", [True, False])
def test_config_round_trip_gives_the_same_outputs(with_input):
    layers_ = ([lamina.Input((4,))] if with_input else []) + [
        layers.Dense(6, activation="tanh", input_shape=None if with_input else (4,)),
        layers.BatchNormalization(), layers.Dense(2, activation="softmax")]
    model = lamina.Sequential(layers_, name="seq")
    model.train()
    model(torch.randn(16, 4))  # moves the batch-norm statistics off their initial values
    model.eval()
    config = model.get_config()
    assert config["build_input_shape"] == [None, 4] and config["name"] == "seq"
    clone = lamina.Sequential.from_config(config)
    assert clone.get_config() == config
    clone.set_weights(model.get_weights())
    x = torch.randn(3, 4)
    torch.testing.assert_close(clone(x), model(x))


def test_unbuilt_model_config_round_trip():
    model = lamina.Sequential([layers.Dense(3), layers.Dense(1)])
    clone = lamina.Sequential.from_config(model.get_config())
    assert not clone.built and "build_input_shape" not in clone.get_config()
    assert clone(torch.zeros(2, 5)).shape == (2, 1)


def test_plain_torch_modules_are_layers():
    model = lamina.Sequential([lamina.Input((4,)), nn.Linear(4, 3), nn.ReLU(), layers.Dense(2)])
    x = torch.randn(5, 4)
    linear = model.layers[0]
    torch.testing.assert_close(model(x), model.layers[2](torch.relu(linear(x))))
    assert [w.shape for w in model.get_weights()] == [(3, 4), (3,), (3, 2), (2,)]
    assert model.count_params() == 15 + 8
    assert model.layers[1].__class__ is nn.ReLU
    clone = lamina.Sequential.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    torch.testing.assert_close(clone(x), model(x))


def test_numpy_inputs():
    model = lamina.Sequential(mlp(input_shape=(4,)))
    x = np.random.default_rng(0).normal(size=(2, 4))
    torch.testing.assert_close(model(x), model(torch.as_tensor(x, dtype=torch.float32)))


# --------------------------------------------------------------------------------- errors


def test_only_modules_can_be_added():
    with pytest.raises(TypeError, match=re.escape("Only layers (instances of lamina.layers.Layer or any torch.nn.Module) can be added to a Sequential model. Received: 3 of type int.")):
        lamina.Sequential([3])


def test_input_must_come_first_and_names_be_unique():
    with pytest.raises(ValueError, match="An Input can only be the first element of a Sequential model."):
        lamina.Sequential([layers.Dense(2), lamina.Input((3,))])
    with pytest.raises(ValueError, match="Name 'twin' is already the name of a layer in this model"):
        lamina.Sequential([layers.Dense(2, name="twin"), layers.Dense(2, name="twin")])


def test_pop_on_an_empty_model():
    with pytest.raises(TypeError, match="There are no layers in the model."):
        lamina.Sequential().pop()


def test_build_without_a_shape_says_how():
    with pytest.raises(ValueError, match="cannot be built without an input shape. Give the first layer input_shape="):
        lamina.Sequential([layers.Dense(2)]).build()


def test_a_layer_with_several_outputs_is_refused():
    class Split(layers.Layer):
        def call(self, inputs):
            return [inputs, inputs]

    with pytest.raises(ValueError, match="should have a single output, but layer 'split' has 2 outputs. Use the functional API."):
        lamina.Sequential([lamina.Input((2,)), Split(name="split")])


def test_wrong_input_shape_names_the_layer_expected_and_received():
    model = lamina.Sequential(mlp(input_shape=(4,)))
    with pytest.raises(ValueError, match=re.escape("Input 0 of layer 'hidden' (Dense) is incompatible: expected the last axis to have size 4, but received an input of shape (2, 5).")):
        model(torch.zeros(2, 5))


# ------------------------------------------------------------- building: cost, seeds, losses


class CountingDense(layers.Dense):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = []

    def call(self, inputs):
        self.calls.append(inputs.device.type)
        return super().call(inputs)


def test_building_runs_each_layer_once_on_meta():
    stack = [CountingDense(6, input_shape=(4,))] + [CountingDense(6) for _ in range(9)]
    model = lamina.Sequential(stack)
    # One symbolic call per layer: a call on each of the two probes, both on meta.
    assert [layer.calls for layer in stack] == [["meta", "meta"]] * 10
    extra = CountingDense(2)
    model.add(extra)
    model.pop()
    model.add(CountingDense(3))
    assert [layer.calls for layer in stack] == [["meta", "meta"]] * 10
    assert extra.calls == ["meta", "meta"] and model.output_shape == (None, 3)
    model.build((None, 4))  # the shape it has: nothing is called again
    assert [len(layer.calls) for layer in stack] == [2] * 10
    assert model(torch.zeros(2, 4)).shape == (2, 3)


def seeded_stack():
    return [layers.Conv2D(3, 3, input_shape=(6, 6, 2)), layers.BatchNormalization(),
            layers.Dropout(0.5), layers.Flatten(), layers.Dense(5),
            layers.Reshape((5, 1)), layers.LSTM(4), layers.Dense(2)]


def test_seeded_construction_draws_the_weights_an_eager_build_draws():
    # The oracle: the same layers built one by one on real data from the same seed. Shape
    # inference (meta, or the real-tensor fallback LSTM takes) must draw no random number.
    lamina.config.set_random_seed(7)
    model = lamina.Sequential(seeded_stack())
    lamina.config.set_random_seed(7)
    eager = seeded_stack()
    x = torch.zeros(1, 6, 6, 2)
    for layer in eager:
        x = layer(x)
    for built, reference in zip(model.layers, eager):
        for got, expected in zip(built.get_weights(), reference.get_weights()):
            np.testing.assert_array_equal(got, expected)
    lamina.config.set_random_seed(7)
    again = lamina.Sequential(seeded_stack())
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), again.get_weights()))


def test_activity_regularizer_losses_are_the_last_calls_only():
    dense = layers.Dense(3, activity_regularizer=lamina.regularizers.L2(0.01),
                         kernel_initializer="ones", bias_initializer="zeros")
    model = lamina.Sequential([lamina.Input((2,)), dense, layers.Dense(1)])
    assert model.losses == []  # shape inference adds none
    first, second = torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, -1.0], [0.5, 0.5]])
    model(first)
    model(second)
    # Dense with a ones kernel: each of the 3 outputs is the sum of the inputs.
    expected = 0.01 * 3 * (second.sum(dim=1) ** 2).sum() / 2  # per sample of the batch of 2
    assert len(model.losses) == 1
    torch.testing.assert_close(model.losses[0], expected)
    dense(first)  # an outermost call of the layer alone clears and adds its own term
    torch.testing.assert_close(dense.losses[0], torch.tensor(0.01 * 3 * 9.0))
    model(first)
    assert len(model.losses) == 1 and len(dense.losses) == 1
    lamina.Model(model.input, model.output)  # a functional model over it probes: no loss added
    assert len(model.losses) == 1
