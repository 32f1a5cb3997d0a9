"""The `Layer` contract: lazy build, add_weight, call arguments, trainable, weights in Keras
layouts, config, default names, compute_output_shape, dtype, modes.

Layers here are written in the test, the way a user writes them; the sheet's `CustomLayer` is
copied as printed, with `torch.matmul` for `tf.matmul`.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import nn

import lamina
from lamina import layers
from lamina.errors import ShapeError
from lamina.layers.layer import check_input_rank, clear_session, to_snake_case


class CustomLayer(lamina.layers.Layer):
    def __init__(self, units=32, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units))
        self.b = self.add_weight(shape=(self.units,))

    def call(self, inputs):
        return torch.matmul(inputs, self.w) + self.b


class Recorder(layers.Layer):
    """Records the `training` and `mask` arguments the base passes to `call`."""

    def call(self, inputs, training=None, mask=None):
        self.seen = {"training": training, "mask": mask}
        return inputs


class NoArguments(layers.Layer):
    """Declares neither `training` nor `mask`: the base must not pass them."""

    def call(self, inputs):
        return inputs * 2


class TransposedDense(layers.Layer):
    """Stores its kernel as torch's (units, input_dim) but speaks Keras's (input_dim, units)."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.initializer_shapes = []

    def build(self, input_shape):
        def initializer(shape, dtype=None):
            self.initializer_shapes.append(tuple(shape))
            return torch.arange(np.prod(shape), dtype=dtype).reshape(shape)

        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), initializer=initializer,
                                      name="kernel")

    def _from_keras_layout(self, name, value):
        return value.t().contiguous() if name == "kernel" else value

    def _to_keras_layout(self, name, value):
        return value.t() if name == "kernel" else value

    def call(self, inputs):
        return torch.nn.functional.linear(inputs, self.kernel)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class WithTorchModules(layers.Layer):
    """A layer that keeps plain torch modules and a lamina layer inside."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.linear = nn.Linear(3, 4)
        self.dropout = nn.Dropout(0.5)
        self.dense = layers.Dense(2)

    def call(self, inputs):
        return self.dense(self.dropout(self.linear(inputs)))


# ------------------------------------------------------------------------------------ build


def test_build_is_lazy_and_happens_on_the_first_call():
    dense = layers.Dense(3)
    assert not dense.built and list(dense.parameters()) == []
    dense(torch.zeros(2, 5))
    assert dense.built and dense.input_shape == (2, 5)
    assert [tuple(w.shape) for w in dense.weights] == [(5, 3), (3,)]


def test_input_shape_and_input_dim_build_the_model_at_construction():
    for first in (layers.Dense(3, input_shape=(5,)), layers.Dense(3, input_dim=5),
                  layers.Dense(3, batch_input_shape=(None, 5))):
        model = lamina.Sequential([first, layers.Dense(1)])
        assert model.built and first.built
        assert model.count_params() == 5 * 3 + 3 + 3 + 1


def test_calling_build_by_hand_marks_the_layer_built():
    dense = layers.Dense(3)
    dense.build((None, 4))
    assert dense.built and dense.count_params() == 15
    dense(torch.zeros(2, 4))
    assert [name for name, _ in dense.named_parameters()] == ["kernel", "bias"]


def test_input_and_output_shape_exist_once_called():
    dense = layers.Dense(2)
    # AttributeError, so hasattr() and getattr(layer, name, default) work before the first call.
    assert not hasattr(dense, "input_shape") and getattr(dense, "output_shape", None) is None
    dense(torch.zeros(3, 4))
    assert dense.input_shape == (3, 4) and dense.output_shape == (None, 2)


# ------------------------------------------------------------------------------- add_weight


def test_add_weight_parameters_buffers_initializers_and_dtypes():
    class State(layers.Layer):
        def build(self, input_shape):
            self.scale = self.add_weight(shape=(3,), initializer="ones", name="scale")
            self.count = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                         dtype="int64", name="count")
            self.offset = self.add_weight(shape=(3,), initializer=lamina.initializers.Constant(2.0),
                                          name="offset", regularizer="l2", constraint="non_neg")

        def call(self, inputs):
            return inputs * self.scale + self.offset

    layer = State()
    layer(torch.zeros(1, 3))
    assert isinstance(layer.scale, nn.Parameter) and set(layer._parameters) == {"scale", "offset"}
    assert set(layer._buffers) == {"count"} and not layer.count.requires_grad
    assert set(layer.state_dict()) == {"scale", "count", "offset"}
    assert layer.count.dtype == torch.int64 and layer.scale.dtype == torch.float32
    assert [w is layer.count for w in layer.non_trainable_weights] == [True]
    assert [tuple(w.shape) for w in layer.trainable_weights] == [(3,), (3,)]
    np.testing.assert_array_equal(layer.get_weights()[0], np.ones(3, dtype=np.float32))
    torch.testing.assert_close(layer.losses[0], torch.tensor(0.01 * 3 * 4.0))
    assert [attr for attr, _ in layer._constrained] == ["offset"]


def test_add_weight_defaults_to_glorot_uniform_for_floats():
    layer = CustomLayer(units=200)
    layer(torch.zeros(1, 300))
    limit = np.sqrt(6 / (300 + 200))
    weights = layer.get_weights()[0]
    assert np.abs(weights).max() <= limit and weights.std() > 0.5 * limit / np.sqrt(3)


def test_add_weight_rejects_negative_sizes():
    class Bad(layers.Layer):
        def build(self, input_shape):
            self.add_weight(shape=(-1, 2))

    with pytest.raises(ValueError, match=r"Layer 'bad_weights': weight shape must have non-negative sizes. Received: \(-1, 2\)"):
        Bad(name="bad_weights")(torch.zeros(1, 2))


def test_add_loss_and_activity_regularizer_losses():
    class Penalised(layers.Layer):
        def call(self, inputs):
            self.add_loss(inputs.sum())
            return inputs

    layer = Penalised(activity_regularizer="l2")
    layer(torch.full((2, 2), 3.0))
    # The activity penalty is divided by the batch size (2), as Keras 3 does.
    torch.testing.assert_close(torch.stack(layer.losses), torch.tensor([12.0, 0.01 * 36.0 / 2]))


# --------------------------------------------------------------------------- call arguments


def test_training_is_resolved_from_the_mode_and_masks_are_passed_when_declared():
    recorder = Recorder()
    x = torch.ones(2, 3)
    recorder(x)
    # Before any train()/eval(), Keras's rule: the call's own default (None here).
    assert recorder.seen == {"training": None, "mask": None}
    recorder.eval()
    recorder(x)
    assert recorder.seen["training"] is False
    recorder.train()
    recorder(x)
    assert recorder.seen["training"] is True
    recorder(x, training=False)
    assert recorder.seen["training"] is False
    masked = layers.Embedding(3, 2, mask_zero=True)(torch.tensor([[1, 0]]))
    recorder(masked)
    assert torch.equal(recorder.seen["mask"], torch.tensor([[True, False]]))
    assert torch.equal(NoArguments()(x), 2 * x)  # no unexpected keyword arguments


def test_train_and_eval_reach_plain_torch_modules_and_their_own_train():
    class CountingDropout(nn.Dropout):
        calls = 0

        def train(self, mode=True):
            CountingDropout.calls += 1
            return super().train(mode)

    layer = WithTorchModules()
    layer.extra = CountingDropout(0.1)
    layer(torch.zeros(1, 3))
    assert not layer.dropout.training and not layer.dense.training  # inference by default
    layer.train()
    assert layer.dropout.training and layer.dense.training and layer.extra.training
    layer.eval()
    assert not any(m.training for m in layer.modules())
    assert CountingDropout.calls >= 2
    with pytest.raises(ValueError, match="`mode` must be a bool"):
        layer.train("yes")


# -------------------------------------------------------------------------------- trainable


def test_trainable_false_freezes_every_weight_below_including_torch_modules():
    layer = WithTorchModules()
    layer(torch.zeros(1, 3))
    layer.trainable = False
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 4
    assert not any(p.requires_grad for p in layer.parameters())
    assert layer.dense.trainable is False
    layer.trainable = True
    assert len(layer.trainable_weights) == 4
    assert all(p.requires_grad for p in layer.parameters())


def test_trainable_false_at_construction_creates_frozen_weights():
    dense = layers.Dense(3, trainable=False)
    dense(torch.zeros(1, 2))
    assert dense.trainable_weights == [] and len(dense.non_trainable_weights) == 2
    frozen = WithTorchModules(trainable=False)
    frozen(torch.zeros(1, 3))
    assert not any(p.requires_grad for p in frozen.parameters())


def test_freezing_one_layer_of_a_model():
    model = lamina.Sequential([layers.Dense(4, input_shape=(3,)), layers.BatchNormalization(),
                               layers.Dense(1)])
    model.layers[0].trainable = False
    assert [tuple(w.shape) for w in model.trainable_weights] == [(4,), (4,), (4, 1), (1,)]
    assert len(model.non_trainable_weights) == 4  # kernel, bias, moving mean and variance


# -------------------------------------------------------------------- weights and layouts


def test_weights_in_keras_order_with_batch_norm_state_last():
    bn = layers.BatchNormalization()
    bn(torch.zeros(2, 3))
    assert [name for _, name, _ in bn._weight_entries()] == ["gamma", "beta", "moving_mean",
                                                            "moving_variance"]
    assert len(bn.trainable_weights) == 2 and len(bn.non_trainable_weights) == 2
    assert bn.variables == bn.weights


def test_get_and_set_weights_speak_keras_layouts():
    layer = TransposedDense(2)
    layer(torch.zeros(1, 3))
    assert layer.initializer_shapes == [(3, 2)]  # initialised (and fanned) in Keras layout
    assert tuple(layer.kernel.shape) == (2, 3)   # stored in torch layout
    (kernel,) = layer.get_weights()
    np.testing.assert_array_equal(kernel, np.arange(6, dtype=np.float32).reshape(3, 2))
    new = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    layer.set_weights([new])
    torch.testing.assert_close(layer(torch.tensor([[1.0, 0.0, 1.0]])), torch.tensor([[6.0, 8.0]]))
    clone = TransposedDense.from_config(layer.get_config())
    clone(torch.zeros(1, 3))
    clone.set_weights(layer.get_weights())
    torch.testing.assert_close(clone.kernel, layer.kernel)


def test_set_weights_errors_name_the_layer_and_the_shapes():
    dense = layers.Dense(2, name="head")
    dense(torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"Layer 'head' expects 2 weight arrays \(kernel, bias\), but received 1"):
        dense.set_weights([np.zeros((3, 2))])
    with pytest.raises(ValueError, match=re.escape("Layer 'head' weight 'kernel' expects shape (3, 2), but received shape (2, 3).")):
        dense.set_weights([np.zeros((2, 3)), np.zeros(2)])


def test_get_weights_returns_copies():
    dense = layers.Dense(2)
    dense(torch.zeros(1, 2))
    weights = dense.get_weights()
    weights[0][:] = 7.0
    assert not (dense.get_weights()[0] == 7.0).any()


def test_count_params_and_its_error_before_build():
    model = lamina.Sequential([layers.Dense(128, activation="relu", input_shape=(784,)),
                               layers.Dropout(0.2), layers.Dense(10, activation="softmax")])
    assert model.count_params() == 101_770  # the sheet's Keras MLP
    with pytest.raises(ValueError, match="count_params on layer 'unbuilt'.*isn't built"):
        layers.Dense(2, name="unbuilt").count_params()


# ----------------------------------------------------------------------------------- config


def test_the_sheets_custom_layer_gets_an_automatic_config():
    layer = CustomLayer(units=4, name="custom")
    layer(torch.zeros(2, 3))
    config = layer.get_config()
    assert config == {"name": "custom", "trainable": True, "dtype": "float32", "units": 4}
    clone = CustomLayer.from_config(config)
    clone(torch.zeros(2, 3))
    clone.set_weights(layer.get_weights())
    x = torch.randn(2, 3)
    torch.testing.assert_close(clone(x), x @ layer.w + layer.b)


def test_automatic_config_refuses_arguments_that_are_not_plain_data():
    class Holder(layers.Layer):
        def __init__(self, module, **kwargs):
            super().__init__(**kwargs)
            self.module = module

        def call(self, inputs):
            return self.module(inputs)

    with pytest.raises(NotImplementedError, match="Holder has no get_config\\(\\).*Override get_config"):
        Holder(nn.ReLU()).get_config()


def test_default_names_are_unique_per_class_in_snake_case():
    clear_session()
    assert [layers.Dense(1).name for _ in range(3)] == ["dense", "dense_1", "dense_2"]
    assert layers.BatchNormalization().name == "batch_normalization"
    assert layers.Dense(1, name="mine").name == "mine"
    assert [to_snake_case(n) for n in ("Conv2D", "LSTM", "GlobalAveragePooling2D", "PReLU")] == \
        ["conv2d", "lstm", "global_average_pooling2d", "p_re_lu"]
    with pytest.raises(TypeError, match="`name` must be a string. Received: name=3."):
        layers.Dense(1, name=3)


def test_compute_output_shape_is_answered_by_probing_the_layer():
    class Doubler(layers.Layer):
        def call(self, inputs):
            return torch.cat([inputs, inputs], dim=-1)[:, ::2]

    assert Doubler().compute_output_shape((None, None, 3)) == (None, None, 6)
    assert layers.Dense(4).compute_output_shape((None, 7, 3)) == (None, 7, 4)


def test_check_input_rank_names_the_layer_expected_and_received():
    with pytest.raises(ShapeError, match=re.escape("Input 0 of layer 'seq' (Dense) is incompatible: expected rank 3 (batch, time, features), but received an input of shape (2, 4).")):
        check_input_rank(layers.Dense(1, name="seq"), (2, 4), rank=3,
                         description="(batch, time, features)")


# ----------------------------------------------------------------------- dtype and numpy


def test_dtype_argument_and_to_float64():
    dense = layers.Dense(2, dtype="float64")
    out = dense(np.ones((1, 3)))
    assert dense.kernel.dtype == torch.float64 and out.dtype == torch.float64
    model = lamina.Sequential([layers.Dense(2, input_shape=(3,))]).to(torch.float64)
    assert model.dtype == "float64" and model.layers[0].dtype == "float64"
    out = model(np.ones((2, 3)))  # numpy converted to the model's dtype
    assert out.dtype == torch.float64
    assert model.get_config()["layers"][0]["config"]["dtype"] == "float64"


def test_built_layers_accept_numpy_inputs():
    dense = layers.Dense(2)
    dense(torch.zeros(1, 3))
    x = np.random.default_rng(0).normal(size=(4, 3))
    torch.testing.assert_close(dense(x), dense(torch.as_tensor(x, dtype=torch.float32)))


def test_training_keyword_is_accepted_by_layers_whose_call_ignores_it():
    dense = lamina.layers.Dense(3)
    x = torch.ones(2, 4)
    assert torch.equal(dense(x, training=True), dense(x))


def test_free_axes_stay_free_in_recorded_output_shapes():
    model = lamina.Sequential([lamina.Input((None, 8)), lamina.layers.Dense(4)])
    assert model.layers[0].output_shape == (None, None, 4)
