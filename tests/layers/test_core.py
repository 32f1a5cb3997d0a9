"""Core layers: Dense, Activation, Dropout, Embedding, Masking, Lambda, Identity, Rescaling.

The table runs every generic check of tests/support/layer_test.py; the tests after it pin the
behaviour the table cannot see: the sheet's forward-propagation formula on a hand-computed case,
Keras's defaults and argument checks, dropout statistics, masks and Lambda's load safety.
"""

from __future__ import annotations

import functools
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from support.layer_test import (
    LayerCase,
    generic_layer_tests,
    single_thread,  # noqa: F401 - a fixture
)

import lamina
from lamina import layers
from lamina.errors import ShapeError, UnknownNameError, UnsafeLoadError


def _weights(layer) -> list[torch.Tensor]:
    return [torch.as_tensor(w) for w in layer.get_weights()]


def dense_reference(activation):
    def reference(layer, x):
        kernel, *bias = _weights(layer)  # Keras layout: (input_dim, units)
        return activation(F.linear(x, kernel.T, bias[0] if bias else None))

    return reference


def embedding_reference(layer, x):
    (embeddings,) = _weights(layer)
    return F.embedding(x, embeddings)


CASES = [
    LayerCase("dense", functools.partial(layers.Dense, 3, name="probe"), (2, 4), (2, 3), params=15,
              reference=dense_reference(lambda z: z),
              bad_inputs=[((2, 5), ShapeError,
                           r"layer 'probe' \(Dense\).*size 4.*shape \(2, 5\)")]),
    LayerCase("dense_relu_3d", functools.partial(layers.Dense, 5, activation="relu"), (2, 3, 4),
              (2, 3, 5), params=25, reference=dense_reference(F.relu)),
    LayerCase("dense_softmax_no_bias",
              functools.partial(layers.Dense, 3, activation="softmax", use_bias=False), (2, 4),
              (2, 3), params=12, reference=dense_reference(lambda z: F.softmax(z, dim=-1))),
    LayerCase("activation_tanh", functools.partial(layers.Activation, "tanh"), (2, 3), (2, 3),
              reference=lambda layer, x: torch.tanh(x)),
    LayerCase("activation_gelu", functools.partial(layers.Activation, "gelu"), (2, 3), (2, 3),
              reference=lambda layer, x: F.gelu(x)),
    LayerCase("dropout", functools.partial(layers.Dropout, 0.5, seed=1), (2, 3), (2, 3),
              reference=lambda layer, x: x, gradcheck=False),
    LayerCase("embedding", functools.partial(layers.Embedding, 10, 4), (2, 5), (2, 5, 4),
              params=40, reference=embedding_reference, int_range=(0, 10)),
    LayerCase("embedding_mask_zero", functools.partial(layers.Embedding, 7, 3, mask_zero=True),
              (2, 5), (2, 5, 3), params=21, reference=embedding_reference, int_range=(0, 7)),
    LayerCase("masking", functools.partial(layers.Masking, 0.0), (2, 3, 4), (2, 3, 4),
              reference=lambda layer, x: x * (x != 0).any(-1, keepdim=True)),
    LayerCase("identity", layers.Identity, (2, 3), (2, 3), reference=lambda layer, x: x),
    LayerCase("rescaling", functools.partial(layers.Rescaling, 1 / 255.0, offset=-1.0), (2, 3),
              (2, 3), reference=lambda layer, x: x / 255.0 - 1.0),
    LayerCase("rescaling_per_channel",
              functools.partial(layers.Rescaling, [1.0, 2.0, 3.0], offset=[0.0, 1.0, 2.0]),
              (2, 4, 3), (2, 4, 3),
              reference=lambda layer, x: x * torch.tensor([1.0, 2.0, 3.0], dtype=x.dtype)
              + torch.tensor([0.0, 1.0, 2.0], dtype=x.dtype)),
    LayerCase("lambda", functools.partial(layers.Lambda, lambda x: torch.tanh(x) * 2.0), (2, 3),
              (2, 3), reference=lambda layer, x: torch.tanh(x) * 2.0, safe_mode=False),
]


globals().update(generic_layer_tests(CASES))


# ------------------------------------------------------------------------------------ Dense


def test_dense_is_the_sheets_forward_propagation():
    # z = W·x + b, a = f(z), computed by hand: x = (1, -1, 2), W (Keras layout, in x out).
    dense = layers.Dense(2, activation="relu")
    dense(torch.zeros(1, 3))
    dense.set_weights([np.array([[1.0, -2.0], [3.0, 0.5], [0.5, 1.0]]), np.array([0.25, -1.0])])
    out = dense(torch.tensor([[1.0, -1.0, 2.0]]))
    # z = (1 - 3 + 1 + 0.25, -2 - 0.5 + 2 - 1) = (-0.75, -1.5) -> relu -> (0, 0); flip x's sign:
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.0]]))
    out = dense(torch.tensor([[-1.0, 1.0, -2.0]]))
    # z = (-1 + 3 - 1 + 0.25, 2 + 0.5 - 2 - 1) = (1.25, -0.5) -> (1.25, 0)
    torch.testing.assert_close(out, torch.tensor([[1.25, 0.0]]))


def test_dense_keras_defaults_and_layout():
    dense = layers.Dense(64)
    config = dense.get_config()
    assert config["activation"] == "linear" and config["use_bias"] is True
    assert config["kernel_initializer"]["class_name"] == "GlorotUniform"
    assert config["bias_initializer"]["class_name"] == "Zeros"
    dense(torch.zeros(2, 100))
    kernel, bias = dense.get_weights()
    assert kernel.shape == (100, 64) and bias.shape == (64,)
    assert not bias.any()
    limit = np.sqrt(6 / (100 + 64))  # Glorot uniform
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.9 * limit


class _RecordGemms(torch.utils._python_dispatch.TorchDispatchMode):
    """The strides of the weight operand of every GEMM the layer runs."""

    def __init__(self):
        super().__init__()
        self.weight_strides = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in (torch.ops.aten.addmm.default, torch.ops.aten.mm.default):
            self.weight_strides.append(args[-1].stride())
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("units, rows, uses_linear_layout", [
    (10, 256, True),  # a 10-class head over a real batch: nn.Linear's layout
    (2, 64, True),
    (1, 256, False),  # a single output is a matrix-vector product either way
    (16, 256, False),
    (10, 4, False),  # too small a product for the transposed copy to pay
])
def test_dense_narrow_outputs_compute_on_nn_linears_layout(units, rows, uses_linear_layout):
    # MKL's float32 GEMM is up to 4x slower on the row-major (in, units) kernel than on
    # nn.Linear's (units, in) weight for 2-10 outputs (docs/benchmarks.md). Whatever layout it
    # runs on, the values and the gradients are those of x @ kernel + b, in Keras's layout.
    torch.manual_seed(0)
    dense = layers.Dense(units)
    x = torch.randn(rows, 300, requires_grad=True)
    dense(x)
    with torch.no_grad():
        dense.bias.normal_()
    recorder = _RecordGemms()
    with recorder:
        out = dense(x)
    weight_stride = recorder.weight_strides[0]
    assert (weight_stride == (1, 300)) == uses_linear_layout, weight_stride
    grad = torch.randn(rows, units)
    out.backward(grad)
    x64, kernel64 = x.detach().double().numpy(), dense.kernel.detach().double().numpy()
    np.testing.assert_allclose(out.detach().numpy(), x64 @ kernel64 + dense.bias.detach().numpy(),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dense.kernel.grad.numpy(), x64.T @ grad.double().numpy(),
                               rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(x.grad.numpy(), grad.double().numpy() @ kernel64.T,
                               rtol=1e-5, atol=1e-5)
    # Gradients arrive in the kernel's own strides (DDP buckets copy them without a warning).
    assert dense.kernel.is_contiguous() and dense.kernel.grad.stride() == dense.kernel.stride()


def test_dense_narrow_outputs_take_the_plain_product_in_float64_and_under_dynamic_export(
        tmp_path):
    # Where the layout was not measured (float64), and under torch.export with a dynamic batch,
    # where a branch on the product's size would guard on the batch size and fail the export.
    dense = layers.Dense(10, dtype="float64")
    recorder = _RecordGemms()
    with recorder:
        dense(torch.randn(512, 300, dtype=torch.float64))
    assert recorder.weight_strides == [(10, 1)]
    model = lamina.Sequential([lamina.Input((300,)), layers.Dense(10)])
    model.export(str(tmp_path / "m.pt2"), format="torch", verbose=False)  # a dynamic batch
    program = torch.export.load(str(tmp_path / "m.pt2")).module()
    x = torch.randn(512, 300)
    with torch.no_grad():
        torch.testing.assert_close(program(x[:3]), model(x[:3]))
        torch.testing.assert_close(program(x), model(x))


@pytest.mark.parametrize("rows, units, shape, use_bias", [
    (4, 5, (), True),  # addmm
    (4, 5, (3,), True),  # a time axis: matmul, then the bias
    (4, 5, (), False),
    (256, 10, (), True),  # a narrow head on nn.Linear's layout
])
def test_dense_relu_rectifies_its_product_in_place_with_exact_gradients(rows, units, shape,
                                                                       use_bias):
    # The product is fresh and its backward does not read it, so relu runs in place on it.
    dense = layers.Dense(units, activation="relu", use_bias=use_bias, dtype="float64")
    x = torch.randn(rows, *shape, 300 if units == 10 else 6, dtype=torch.float64,
                    requires_grad=True)
    dense(x)
    with torch.no_grad():
        if use_bias:
            dense.bias.normal_()
    kernel, bias = dense.kernel, dense.bias
    reference = lambda x: torch.relu(x @ kernel + (bias if use_bias else 0))  # noqa: E731
    torch.testing.assert_close(dense(x), reference(x))
    assert torch.autograd.gradcheck(lambda x: dense(x), (x[:3],))
    weights = [kernel] + ([bias] if use_bias else [])
    grads = torch.autograd.grad(dense(x).sum(), [x, *weights])
    expected = torch.autograd.grad(reference(x).sum(), [x, *weights])
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want)
    # float32 on the CPU takes the narrow-output layout here (the other product).
    dense32 = layers.Dense(units, activation="relu")
    x32 = x.detach().float()
    out = dense32(x32)
    torch.testing.assert_close(out, torch.relu(x32 @ dense32.kernel + dense32.bias))


@pytest.mark.parametrize("units", [0, -3, 2.5, True, "8"])
def test_dense_rejects_bad_units(units):
    with pytest.raises(ValueError, match=re.escape(f"`units` must be a positive integer. Received: units={units!r}.")):
        layers.Dense(units)


def test_dense_rejects_rank_one_input():
    with pytest.raises(ShapeError, match=r"layer 'd' \(Dense\).*expected rank >= 2.*\(3,\)"):
        layers.Dense(2, name="d")(torch.zeros(3))


def test_dense_regularizers_add_losses():
    dense = layers.Dense(2, kernel_regularizer=lamina.regularizers.L2(0.1),
                         bias_regularizer="l1", activity_regularizer=lamina.regularizers.L1(0.5))
    x = torch.ones(3, 4)
    out = dense(x)
    kernel, bias = dense.kernel, dense.bias
    # Keras 3 divides the activity penalty by the batch size (3 here).
    expected = [0.5 * out.abs().sum() / 3, 0.1 * kernel.square().sum(), 0.01 * bias.abs().sum()]
    got = dense.losses
    assert len(got) == 3
    torch.testing.assert_close(sorted(v.item() for v in torch.stack(got).detach()),
                               sorted(v.item() for v in torch.stack(expected).detach()))


def test_unknown_keyword_argument_is_named():
    with pytest.raises(TypeError, match=r"Unrecognized keyword arguments passed to Dense: \['unit'\]"):
        layers.Dense(3, unit=4)


# ------------------------------------------------------------------------------- Activation


def test_activation_takes_names_and_callables():
    x = torch.linspace(-3, 3, 7)
    torch.testing.assert_close(layers.Activation("sigmoid")(x[None]), torch.sigmoid(x)[None])
    torch.testing.assert_close(layers.Activation(torch.nn.functional.softsign)(x[None]),
                               (x / (1 + x.abs()))[None])


def test_unknown_activation_lists_valid_names():
    with pytest.raises(UnknownNameError, match=r"Unknown activation name 'rellu'.*'relu'.*Valid names are: .*sigmoid"):
        layers.Activation("rellu")


# ---------------------------------------------------------------------------------- Dropout


def test_dropout_is_identity_in_inference():
    dropout = layers.Dropout(0.5)
    x = torch.randn(4, 5)
    assert torch.equal(dropout(x), x)  # layers start in inference mode, as Keras's model(x)
    assert torch.equal(dropout(x, training=False), x)


def test_dropout_training_zeroes_a_rate_fraction_and_rescales_the_rest():
    rate = 0.3
    dropout = layers.Dropout(rate, seed=0)
    x = torch.full((200, 100), 2.0)
    out = dropout(x, training=True)
    kept = out != 0
    assert abs(1 - kept.float().mean().item() - rate) < 0.02
    torch.testing.assert_close(out[kept], torch.full_like(out[kept], 2.0 / (1 - rate)))


@pytest.mark.parametrize("seed", [None, 5])
def test_dropout_noise_shape_broadcasts_the_mask(seed):
    dropout = layers.Dropout(0.5, noise_shape=(None, 1, 6), seed=seed)
    out = dropout(torch.ones(8, 4, 6), training=True)
    # Same mask at every step of a sample: (batch, 1, features) broadcast over axis 1.
    assert torch.equal(out, out[:, :1].expand_as(out))
    assert (out == 0).any() and (out == 2.0).any()


def test_dropout_seed_reproduces_the_mask_sequence():
    x = torch.ones(16, 16)
    first, second, other = layers.Dropout(0.5, seed=7), layers.Dropout(0.5, seed=7), layers.Dropout(0.5, seed=8)
    masks = [first(x, training=True) for _ in range(2)]
    assert torch.equal(masks[0], second(x, training=True))
    assert torch.equal(masks[1], second(x, training=True))
    assert not torch.equal(masks[0], masks[1])
    assert not torch.equal(masks[0], other(x, training=True))


def test_dropout_rate_zero_is_identity_in_training():
    x = torch.randn(3, 3)
    assert torch.equal(layers.Dropout(0.0)(x, training=True), x)


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5, "0.5"])
def test_dropout_rejects_bad_rate(rate):
    with pytest.raises(ValueError, match=re.escape(f"`rate` must be a float in the range [0, 1). Received: rate={rate!r}.")):
        layers.Dropout(rate)


def test_dropout_follows_the_model_mode():
    model = lamina.Sequential([lamina.Input((50,)), layers.Dropout(0.5)])
    x = torch.ones(4, 50)
    assert torch.equal(model(x), x)
    model.train()
    assert (model(x) == 0).any()
    model.eval()
    assert torch.equal(model(x), x)
    assert (model(x, training=True) == 0).any()


# -------------------------------------------------------------------------- Embedding, masks


class MaskRecorder(layers.Layer):
    """Consumes a mask (declares `mask`) and records what it received."""

    def call(self, inputs, mask=None):
        self.received = mask
        return inputs


def test_embedding_mask_zero_makes_a_mask_from_padding():
    ids_ = torch.tensor([[3, 1, 0, 0], [2, 0, 0, 0]])
    out = layers.Embedding(5, 2, mask_zero=True)(ids_)
    assert torch.equal(out._keras_mask, ids_ != 0)
    assert getattr(layers.Embedding(5, 2)(ids_), "_keras_mask", None) is None


def test_masks_propagate_through_sequential_to_a_consumer():
    recorder = MaskRecorder()
    model = lamina.Sequential([layers.Embedding(6, 3, mask_zero=True), layers.Dense(4),
                               layers.Dropout(0.1), recorder])
    ids_ = torch.tensor([[5, 2, 0], [1, 0, 0]])
    out = model(ids_)
    assert torch.equal(recorder.received, ids_ != 0)
    assert torch.equal(out._keras_mask, ids_ != 0)


def test_masks_propagate_through_a_functional_model():
    recorder = MaskRecorder()
    inputs = lamina.Input(shape=(None,), dtype="int64")
    x = layers.Embedding(6, 3, mask_zero=True)(inputs)
    x = layers.LayerNormalization()(layers.Dense(4)(x))
    model = lamina.Model(inputs, recorder(x))
    ids_ = torch.tensor([[5, 2, 0, 0], [1, 3, 4, 0]])
    model(ids_)
    assert torch.equal(recorder.received, ids_ != 0)


def test_embedding_accepts_keras2_input_length_and_float_indices():
    embedding = layers.Embedding(10, 2, input_length=4)
    assert embedding.get_config()["batch_input_shape"] == [None, 4]
    model = lamina.Sequential([embedding])
    assert model.built and model.output_shape == (None, 4, 2)
    out = embedding(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    torch.testing.assert_close(out, embedding.embeddings[[1, 2, 3, 4]][None])


def test_embedding_default_initializer_is_keras_uniform():
    embedding = layers.Embedding(100, 50)
    embedding(torch.zeros(1, 1, dtype=torch.long))
    (weights,) = embedding.get_weights()
    assert np.abs(weights).max() <= 0.05 and weights.std() > 0.02


@pytest.mark.parametrize("argument", ["input_dim", "output_dim"])
def test_embedding_rejects_bad_sizes(argument):
    sizes = {"input_dim": 10, "output_dim": 4, argument: 0}
    with pytest.raises(ValueError, match=f"`{argument}` must be a positive integer. Received: {argument}=0."):
        layers.Embedding(**sizes)


def test_masking_masks_and_zeroes_padded_steps():
    x = torch.tensor([[[1.0, 2.0], [0.0, 0.0], [3.0, 0.0]]])
    recorder = MaskRecorder()
    out = recorder(layers.Masking(mask_value=0.0)(x))
    assert torch.equal(recorder.received, torch.tensor([[True, False, True]]))
    assert torch.equal(out, x)
    out = layers.Masking(mask_value=3.0)(torch.tensor([[[3.0, 3.0], [1.0, 3.0]]]))
    assert torch.equal(out, torch.tensor([[[0.0, 0.0], [1.0, 3.0]]]))
    assert torch.equal(out._keras_mask, torch.tensor([[False, True]]))


def test_identity_passes_the_mask_through():
    x = layers.Embedding(4, 2, mask_zero=True)(torch.tensor([[1, 0]]))
    assert torch.equal(layers.Identity()(x)._keras_mask, torch.tensor([[True, False]]))


# ----------------------------------------------------------------------- Lambda, Rescaling


def test_lambda_passes_arguments_and_refuses_to_load_by_default():
    layer = layers.Lambda(lambda x, power: x ** power, arguments={"power": 3})
    x = torch.tensor([[2.0, -1.0]])
    torch.testing.assert_close(layer(x), torch.tensor([[8.0, -1.0]]))
    config = layer.get_config()
    with pytest.raises(UnsafeLoadError, match="Lambda layer.*safe_mode=False"):
        layers.Lambda.from_config(config)
    clone = layers.Lambda.from_config(config, safe_mode=False)
    torch.testing.assert_close(clone(x), layer(x))


def test_lambda_rejects_a_non_callable():
    with pytest.raises(TypeError, match=r"`function` must be callable. Received: 3"):
        layers.Lambda(3)


def test_rescaling_turns_uint8_images_into_floats():
    images = torch.tensor([[[[0, 128, 255]]]], dtype=torch.uint8)
    out = layers.Rescaling(1.0 / 255)(images)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.tensor([[[[0.0, 128 / 255, 1.0]]]]))
    out = layers.Rescaling(1.0 / 127.5, offset=-1)(images)
    torch.testing.assert_close(out, torch.tensor([[[[-1.0, 128 / 127.5 - 1, 1.0]]]]))
