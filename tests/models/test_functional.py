"""The functional API: several inputs and outputs (lists and dicts), shared layers, nested models,
torch operations on symbolic tensors, and config round trips that rebuild identical models."""

from __future__ import annotations

import json
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lamina
from lamina import layers
from lamina.errors import ShapeError


def assert_same_outputs(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y)
    else:
        torch.testing.assert_close(a, b)


def round_trip(model):
    """The architecture from `get_config` through JSON, with the original weights."""
    config = json.loads(json.dumps(model.get_config()))
    clone = lamina.Model.from_config(config)
    assert type(clone) is type(model)
    clone.set_weights(model.get_weights())
    return clone


def two_inputs_two_outputs():
    tokens = lamina.Input(shape=(5,), name="tokens")
    extra = lamina.Input(shape=(3,), name="extra")
    shared = layers.Dense(4, activation="relu", name="shared")
    a, b = shared(tokens[:, :3] * 2.0), shared(extra)  # one layer, two calls: shared weights
    merged = layers.Concatenate(name="merge")([a, b, tokens])
    score = layers.Dense(1, name="score")(merged)
    label = layers.Dense(3, activation="softmax", name="label")(a + b)
    return tokens, extra, score, label


def test_list_inputs_and_outputs():
    tokens, extra, score, label = two_inputs_two_outputs()
    model = lamina.Model(inputs=[tokens, extra], outputs=[score, label])
    x, y = torch.randn(2, 5), torch.randn(2, 3)
    s, lab = model([x, y])
    assert s.shape == (2, 1) and lab.shape == (2, 3)
    shared = model.get_layer("shared")
    a, b = shared(x[:, :3] * 2.0), shared(y)
    torch.testing.assert_close(s, model.get_layer("score")(torch.cat([a, b, x], dim=-1)))
    assert model.input_names == ["tokens", "extra"]
    assert_same_outputs(model({"tokens": x, "extra": y}), [s, lab])  # inputs by name
    assert_same_outputs(round_trip(model)([x, y]), [s, lab])


def test_dict_inputs_and_outputs():
    tokens, extra, score, label = two_inputs_two_outputs()
    model = lamina.Model(inputs={"t": tokens, "e": extra}, outputs={"score": score, "label": label})
    x, y = torch.randn(2, 5), torch.randn(2, 3)
    out = model({"t": x, "e": y})
    assert set(out) == {"score", "label"} and out["label"].shape == (2, 3)
    assert_same_outputs(round_trip(model)({"t": x, "e": y}), out)


def test_shared_layer_has_one_set_of_weights():
    tokens, extra, score, label = two_inputs_two_outputs()
    model = lamina.Model([tokens, extra], [score, label])
    shared_kernels = [w for w in model.weights if tuple(w.shape) == (3, 4)]
    assert len(shared_kernels) == 1
    assert model.count_params() == (3 * 4 + 4) + (13 * 1 + 1) + (4 * 3 + 3)


def test_nested_models():
    inner = lamina.Sequential([layers.Dense(4, activation="relu", input_shape=(3,)),
                               layers.Dense(2)], name="inner")
    block_in = lamina.Input(shape=(2,))
    block = lamina.Model(block_in, layers.Dense(2, name="block_dense")(block_in) + block_in,
                         name="block")
    x = lamina.Input(shape=(3,))
    y = layers.Dense(1, name="out")(block(inner(x)))
    model = lamina.Model(x, y)
    data = torch.randn(4, 3)
    expected = model.get_layer("out")(block(inner(data)))
    torch.testing.assert_close(model(data), expected)
    assert model.count_params() == (3 * 4 + 4 + 4 * 2 + 2) + (2 * 2 + 2) + 3
    assert_same_outputs(round_trip(model)(data), expected)


def test_torch_operations_on_symbolic_tensors():
    a, b = lamina.Input(shape=(4,)), lamina.Input(shape=(6, 4))
    first = b[:, 0]                       # indexing
    pooled = b.mean(dim=1)                # a tensor method
    joined = torch.cat([a, first, pooled], dim=-1)
    out = F.relu(joined) * 0.5 + a.sum(dim=-1, keepdim=True)
    model = lamina.Model([a, b], layers.Dense(2)(out))
    assert joined.shape == (None, 12) and out.shape == (None, 12)
    x, y = torch.randn(3, 4), torch.randn(3, 6, 4)
    expected_hidden = F.relu(torch.cat([x, y[:, 0], y.mean(dim=1)], dim=-1)) * 0.5 + \
        x.sum(dim=-1, keepdim=True)
    torch.testing.assert_close(model([x, y]), model.layers[-1](expected_hidden))
    assert_same_outputs(round_trip(model)([x, y]), model([x, y]))


def test_free_axes_stay_symbolic():
    x = lamina.Input(shape=(None, 3))
    y = layers.Dense(2)(x)
    assert y.shape == (None, None, 2)
    model = lamina.Model(x, y.transpose(1, 2))
    assert model(torch.zeros(2, 7, 3)).shape == (2, 2, 7)


def test_plain_torch_modules_in_a_functional_model():
    x = lamina.Input(shape=(5, 3))
    lstm, linear = nn.LSTM(3, 4, batch_first=True), nn.Linear(4, 2)
    sequence, (h, c) = layers.TorchModuleWrapper(lstm, name="lstm")(x)
    out = layers.TorchModuleWrapper(linear)(sequence[:, -1]) + nn.ReLU()(h[0])[:, :2]
    model = lamina.Model(x, layers.Activation("tanh")(out))
    assert sequence.shape == (None, 5, 4) and h.shape == (1, None, 4)
    data = torch.randn(2, 5, 3)
    seq_data, (h_data, _) = lstm(data)
    torch.testing.assert_close(model(data),
                               torch.tanh(linear(seq_data[:, -1]) + torch.relu(h_data[0])[:, :2]))
    # The modules' weights are the model's: trained, counted, saved.
    assert {id(p) for p in lstm.parameters()} <= {id(p) for p in model.parameters()}
    assert model.count_params() == sum(p.numel() for p in model.parameters())
    assert len(model.get_weights()) == 4 + 2
    assert_same_outputs(round_trip(model)(data), model(data))


def test_calling_a_plain_module_on_a_symbolic_tensor_says_to_wrap_it():
    x = lamina.Input(shape=(5, 3))
    with pytest.raises(TypeError, match=re.escape("lamina.layers.TorchModuleWrapper(module)(x)")):
        nn.LSTM(3, 4, batch_first=True)(x)
    with pytest.raises(TypeError, match="linear was applied to a symbolic tensor and a trainable weight"):
        nn.Linear(3, 2)(x)
    with pytest.raises(TypeError, match="`module` must be a torch.nn.Module. Received: 3"):
        layers.TorchModuleWrapper(3)


def test_model_from_config_clone_and_json():
    tokens, extra, score, label = two_inputs_two_outputs()
    model = lamina.Model([tokens, extra], [score, label])
    clone = lamina.models.clone_model(model)
    assert clone.get_config() == model.get_config()
    assert clone.count_params() == model.count_params()
    from_json = lamina.models.model_from_json(model.to_json())
    assert [layer.name for layer in from_json.layers] == [layer.name for layer in model.layers]


def test_layers_and_summary_order():
    tokens, extra, score, label = two_inputs_two_outputs()
    model = lamina.Model([tokens, extra], [score, label])
    names = [getattr(layer, "name", None) for layer in model.layers]
    assert names[:2] == ["tokens", "extra"] or names[0] == "tokens"
    assert {"shared", "merge", "score", "label"} <= set(names)
    assert model.output_shape == [(None, 1), (None, 3)]


# --------------------------------------------------------------------------------- errors


def test_wrong_number_of_inputs():
    tokens, extra, score, label = two_inputs_two_outputs()
    model = lamina.Model([tokens, extra], [score, label], name="two")
    with pytest.raises(ValueError, match="Model 'two' expects 2 inputs, but it received 1 input tensors"):
        model(torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"Model 'two' expects inputs named \['tokens', 'extra'\]; missing \['extra'\]"):
        model({"tokens": torch.zeros(2, 5)})


def test_inputs_must_be_inputs_and_complete():
    x = lamina.Input(shape=(3,))
    hidden = layers.Dense(2)(x)
    with pytest.raises(ValueError, match="Every model input must come from lamina.Input()"):
        lamina.Model(hidden, layers.Dense(1)(hidden))
    other = lamina.Input(shape=(2,), name="forgotten")
    with pytest.raises(ValueError, match="The graph needs input 'forgotten', which is not among the model's inputs"):
        lamina.Model(x, hidden + other)
    with pytest.raises(TypeError, match="Model\\(inputs, outputs\\) takes symbolic tensors made from lamina.Input"):
        lamina.Model(x, torch.zeros(2))


def test_duplicate_layer_names():
    x = lamina.Input(shape=(3,))
    y = layers.Dense(2, name="same")(layers.Dense(3, name="same")(x))
    with pytest.raises(ValueError, match="The name 'same' is used 2 times in the model"):
        lamina.Model(x, y)


def test_symbolic_tensor_in_python_if():
    x = lamina.Input(shape=(3,))
    with pytest.raises(TypeError, match="A symbolic tensor has no value, so it cannot be used in a Python `if`"):
        if x.sum() > 0:
            pass


def test_shape_error_while_building_names_layer_and_symbolic_shapes():
    x = lamina.Input(shape=(3,))
    dense = layers.Dense(2, name="d")
    dense(x)
    with pytest.raises(ShapeError, match=re.escape("Input 0 of layer 'd' (Dense) is incompatible: expected the last axis to have size 3, but received an input of shape (None, 5).")):
        dense(lamina.Input(shape=(5,)))
    with pytest.raises(ShapeError, match=r"Layer 'torch_cat.*cannot be called on inputs of shape \(None, 3\), \(None, 4, 2\)"):
        torch.cat([x, lamina.Input(shape=(4, 2))], dim=-1)


def test_unsavable_torch_function_says_what_to_do():
    x = lamina.Input(shape=(3,))
    model = lamina.Model(x, torch.special.expit(x))
    with pytest.raises(ValueError, match="Cannot save the torch operation .* only functions of torch, torch.nn.functional and torch.Tensor"):
        model.get_config()


def test_input_layer_takes_keras_2s_input_shape_and_batch_input_shape():
    from lamina.layers import InputLayer

    assert InputLayer(input_shape=(3, 4)).batch_shape == (None, 3, 4)
    assert InputLayer(batch_input_shape=(8, 3)).batch_shape == (8, 3)
    layer = InputLayer(input_shape=(5,), name="features")
    model = lamina.Model(layer.output_tensor, lamina.layers.Dense(2)(layer.output_tensor))
    assert model(torch.zeros(4, 5)).shape == (4, 2)
    with pytest.raises(ValueError, match=r"both `shape`=\(3,\) and `input_shape`=\(4,\)"):
        InputLayer(shape=(3,), input_shape=(4,))
