"""Objects <-> configs: layers with nested objects, registration, plain torch.nn modules (rebuilt
from their constructor arguments, verified), and the refusals that keep loading free of code."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from lamina import constraints, initializers, layers, regularizers
from lamina.errors import UnknownNameError, UnsafeLoadError
from lamina.layers.core import TorchOp
from lamina.saving import (
    deserialize,
    get_registered_name,
    register_keras_serializable,
    serialize,
)


def test_layer_with_nested_objects_round_trips_through_json():
    dense = layers.Dense(3, activation="gelu", kernel_initializer=initializers.HeNormal(seed=2),
                         kernel_regularizer=regularizers.L1L2(0.1, 0.2),
                         kernel_constraint=constraints.MaxNorm(3.0), name="rich")
    config = json.loads(json.dumps(serialize(dense)))
    # Keras's own layout for a built-in class: Keras 3 loads it.
    assert config["class_name"] == "Dense" and config["module"] == "keras.layers"
    assert config["registered_name"] is None and "kind" not in config
    clone = deserialize(config)
    assert clone.get_config() == dense.get_config()
    assert isinstance(clone.kernel_regularizer, regularizers.L1L2)
    dense(torch.zeros(1, 2)), clone(torch.zeros(1, 2))
    torch.testing.assert_close(clone.kernel, dense.kernel)  # same seeded initializer


def test_registration_names():
    @register_keras_serializable(package="pkg", name="Twice")
    class Doubler(layers.Layer):
        def call(self, inputs):
            return inputs * 2

    assert get_registered_name(Doubler) == "pkg>Twice"
    config = serialize(Doubler(name="d"))
    assert config["registered_name"] == "pkg>Twice"
    assert type(deserialize(config)) is Doubler


def test_unknown_class_says_how_to_provide_it():
    config = serialize(layers.Dense(2))
    config["class_name"] = config["registered_name"] = "Dens"
    with pytest.raises(UnknownNameError, match=r"Could not find the layer class 'Dens' while loading. If it is a custom class, pass it in custom_objects=\{'Dens': \.\.\.\}"):
        deserialize(config)
    assert type(deserialize(config, custom_objects={"Dens": layers.Dense})) is layers.Dense


def test_unregistered_function_cannot_be_named():
    def private_activation(x):
        return x

    with pytest.raises(ValueError, match="Cannot serialize the function .*private_activation.*register_keras_serializable"):
        serialize(private_activation)


# --------------------------------------------------------------------- torch.nn modules


TORCH_MODULES = [
    nn.Linear(3, 2),
    nn.Linear(3, 2, bias=False),
    nn.Linear(3, 2).double(),
    nn.Conv2d(3, 4, (3, 2), stride=2, padding=1, bias=False),
    nn.Conv1d(2, 3, 5, dilation=2, groups=1, padding_mode="reflect"),
    nn.LayerNorm((4, 5), eps=1e-3),
    nn.BatchNorm1d(4, momentum=0.2, affine=False),
    nn.Embedding(10, 3, padding_idx=0),
    nn.LSTM(3, 4, num_layers=2, batch_first=True),
    nn.GRU(3, 4, bidirectional=True),
    nn.MultiheadAttention(8, 2, batch_first=True),
    nn.GELU(approximate="tanh"),
    nn.Dropout(0.3),
    nn.LeakyReLU(0.05),
    nn.Flatten(start_dim=2),
    nn.Softmax(dim=1),
]


@pytest.mark.parametrize("module", TORCH_MODULES, ids=[repr(m).split("\n")[0] for m in TORCH_MODULES])
def test_torch_nn_modules_round_trip(module):
    config = json.loads(json.dumps(serialize(module)))
    assert config["kind"] == "torch_module" and config["module"] == "torch.nn"
    clone = deserialize(config)
    assert type(clone) is type(module) and repr(clone) == repr(module)
    assert {k: (v.shape, v.dtype) for k, v in clone.state_dict().items()} == \
        {k: (v.shape, v.dtype) for k, v in module.state_dict().items()}


@pytest.mark.parametrize("module, message", [
    (nn.Sequential(nn.Linear(2, 2)), "Cannot save the torch container Sequential used as a layer: its children are passed positionally"),
    (nn.RNN(3, 4, nonlinearity="relu"), "its constructor arguments cannot be recovered from its attributes"),
])
def test_torch_modules_that_a_config_cannot_describe(module, message):
    with pytest.raises(ValueError, match=message):
        serialize(module)


def test_user_torch_module_is_not_saved_as_code():
    class Mine(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(ValueError, match="Cannot save the torch module .*Mine used as a layer: only torch.nn's own modules .* can be rebuilt from a saved config without running code"):
        serialize(Mine())


@pytest.mark.parametrize("name", ["functional", "Parameter", "system", "init"])
def test_loading_constructs_only_torch_nn_modules(name):
    config = {"module": "torch.nn", "class_name": name, "kind": "torch_module", "config": {}}
    with pytest.raises(UnsafeLoadError, match=f"names the torch module '{name}', which is not a module of torch.nn"):
        deserialize(config)


def test_torch_op_loads_only_from_torch_namespaces():
    from lamina import Input

    op_config = serialize(TorchOp(torch.cat, ([Input((2,)), Input((2,))],), {"dim": -1}))
    op_config["config"]["function"] = "os.system"
    with pytest.raises(UnsafeLoadError, match="Refusing to load a torch operation from 'os'"):
        deserialize(op_config)


def test_lambda_needs_safe_mode_off():
    config = serialize(layers.Lambda(lambda x: x + 1))
    with pytest.raises(UnsafeLoadError, match="safe_mode=False"):
        deserialize(config)
    layer = deserialize(config, safe_mode=False)
    torch.testing.assert_close(layer(torch.zeros(1, 2)), torch.ones(1, 2))
