"""Conv1D/2D/3D, the transposed, depthwise and separable convolutions: shapes, values against
torch references built from Keras-layout weights, gradients, config, saving, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lamina
from lamina import layers
from lamina.errors import ShapeError

from support.layer_test import class_case, generic_layer_tests, single_thread

from .conv_references import (
    conv_reference,
    conv_transpose_reference,
    depthwise_reference,
    keras_conv,
    separable_reference,
)

L = layers
pytestmark = pytest.mark.usefixtures(single_thread.__name__)

CASES = [
    # The sheet's Conv2D; Keras: 3*3*1*32 + 32 parameters.
    class_case("conv2d_sheet", L.Conv2D, dict(filters=32, kernel_size=(3, 3), activation="relu",
               padding="same"), (2, 8, 8, 1), (2, 8, 8, 32), conv_reference, 320, (1, 4, 4, 1)),
    class_case("conv2d_valid_strided", L.Conv2D, dict(filters=4, kernel_size=(3, 2),
               strides=(2, 1)), (2, 9, 7, 3), (2, 4, 6, 4), conv_reference, 76),
    # Width 8, stride 2: TensorFlow pads 0 before and 1 after.
    class_case("conv2d_same_stride2", L.Conv2D, dict(filters=5, kernel_size=3, strides=2,
               padding="same"), (2, 7, 8, 3), (2, 4, 4, 5), conv_reference, 140, (1, 5, 6, 2)),
    class_case("conv2d_same_even_kernel", L.Conv2D, dict(filters=3, kernel_size=4,
               padding="same"), (1, 6, 5, 2), (1, 6, 5, 3), conv_reference, 99),
    class_case("conv2d_same_dilated", L.Conv2D, dict(filters=2, kernel_size=3, dilation_rate=2,
               padding="same"), (1, 9, 9, 2), (1, 9, 9, 2), conv_reference, 38),
    class_case("conv2d_groups_channels_first", L.Conv2D, dict(filters=4, kernel_size=3, groups=2,
               data_format="channels_first", use_bias=False, activation="tanh"),
               (2, 6, 7, 7), (2, 4, 5, 5), conv_reference, 108, (1, 6, 4, 4)),
    class_case("conv1d_sheet", L.Conv1D, dict(filters=64, kernel_size=3, activation="relu"),
               (2, 10, 8), (2, 8, 64), conv_reference, 1600, (1, 5, 2)),
    class_case("conv1d_causal_dilated", L.Conv1D, dict(filters=3, kernel_size=2,
               padding="causal", dilation_rate=3), (2, 9, 4), (2, 9, 3), conv_reference, 27),
    class_case("conv1d_causal_strided", L.Conv1D, dict(filters=2, kernel_size=3, strides=2,
               padding="causal"), (1, 7, 2), (1, 4, 2), conv_reference, 14),
    class_case("conv1d_same_stride3_channels_first", L.Conv1D, dict(filters=3, kernel_size=4,
               strides=3, padding="same", data_format="channels_first"), (2, 4, 10), (2, 3, 4),
               conv_reference, 51),
    class_case("conv3d_valid", L.Conv3D, dict(filters=4, kernel_size=(2, 3, 2)),
               (1, 4, 5, 6, 2), (1, 3, 3, 5, 4), conv_reference, 100, (1, 3, 3, 2, 1)),
    class_case("conv3d_same_stride2", L.Conv3D, dict(filters=2, kernel_size=3, strides=2,
               padding="same"), (1, 5, 6, 7, 3), (1, 3, 3, 4, 2), conv_reference, 164,
               (1, 3, 4, 3, 1)),
    class_case("conv3d_channels_first", L.Conv3D, dict(filters=2, kernel_size=2,
               data_format="channels_first"), (1, 3, 4, 4, 4), (1, 2, 3, 3, 3), conv_reference,
               50, (1, 1, 3, 3, 3)),
    # Transposed: Keras kernel (*k, filters, in); 'same' gives input * strides.
    class_case("conv2d_transpose_same_stride2", L.Conv2DTranspose, dict(filters=4, kernel_size=3,
               strides=2, padding="same"), (2, 4, 5, 3), (2, 8, 10, 4), conv_transpose_reference,
               112, (1, 3, 2, 2)),
    class_case("conv2d_transpose_valid", L.Conv2DTranspose, dict(filters=2, kernel_size=(3, 2),
               strides=(2, 3)), (1, 3, 4, 2), (1, 7, 12, 2), conv_transpose_reference, 26),
    class_case("conv2d_transpose_output_padding", L.Conv2DTranspose, dict(filters=3,
               kernel_size=3, strides=2, output_padding=1), (1, 4, 4, 2), (1, 10, 10, 3),
               conv_transpose_reference, 57, (1, 2, 2, 1)),
    class_case("conv2d_transpose_same_output_padding", L.Conv2DTranspose, dict(filters=2,
               kernel_size=3, strides=2, padding="same", output_padding=1), (1, 3, 3, 2),
               (1, 6, 6, 2), conv_transpose_reference, 38),
    class_case("conv2d_transpose_same_even_kernel", L.Conv2DTranspose, dict(filters=2,
               kernel_size=4, strides=2, padding="same"), (1, 3, 3, 2), (1, 6, 6, 2),
               conv_transpose_reference, 66),
    class_case("conv2d_transpose_dilated", L.Conv2DTranspose, dict(filters=2, kernel_size=3,
               dilation_rate=2, padding="same", activation="sigmoid"), (1, 5, 5, 2),
               (1, 5, 5, 2), conv_transpose_reference, 38),
    class_case("conv1d_transpose_same_channels_first", L.Conv1DTranspose, dict(filters=3,
               kernel_size=3, strides=2, padding="same", data_format="channels_first"),
               (2, 4, 5), (2, 3, 10), conv_transpose_reference, 39),
    class_case("conv1d_transpose_valid", L.Conv1DTranspose, dict(filters=2, kernel_size=5,
               strides=2, activation="relu"), (1, 4, 3), (1, 11, 2), conv_transpose_reference,
               32),
    class_case("conv3d_transpose_same", L.Conv3DTranspose, dict(filters=2, kernel_size=2,
               strides=2, padding="same"), (1, 2, 3, 2, 3), (1, 4, 6, 4, 2),
               conv_transpose_reference, 50, (1, 2, 1, 2, 1)),
    # Depthwise: Keras kernel (*k, in, depth_multiplier), bias in * depth_multiplier.
    class_case("depthwise2d_same_multiplier2", L.DepthwiseConv2D, dict(kernel_size=3,
               padding="same", depth_multiplier=2), (2, 6, 6, 3), (2, 6, 6, 6),
               depthwise_reference, 60, (1, 4, 4, 2)),
    class_case("depthwise2d_strided_channels_first", L.DepthwiseConv2D, dict(kernel_size=(3, 2),
               strides=2, data_format="channels_first", use_bias=False), (1, 4, 7, 6),
               (1, 4, 3, 3), depthwise_reference, 24),
    class_case("depthwise1d_dilated", L.DepthwiseConv1D, dict(kernel_size=3, depth_multiplier=3,
               dilation_rate=2), (2, 9, 2), (2, 5, 6), depthwise_reference, 24),
    # Separable: depthwise_kernel, pointwise_kernel (1, 1, in * m, filters), bias.
    class_case("separable2d_same", L.SeparableConv2D, dict(filters=5, kernel_size=3,
               padding="same", depth_multiplier=2), (2, 6, 6, 3), (2, 6, 6, 5),
               separable_reference, 89, (1, 4, 4, 2)),
    class_case("separable2d_strided_channels_first", L.SeparableConv2D, dict(filters=4,
               kernel_size=3, strides=2, data_format="channels_first", activation="relu"),
               (1, 3, 7, 7), (1, 4, 3, 3), separable_reference, 43),
    class_case("separable1d_same_strided", L.SeparableConv1D, dict(filters=3, kernel_size=4,
               strides=2, padding="same"), (2, 9, 4), (2, 5, 3), separable_reference, 31),
]


globals().update(generic_layer_tests(CASES, save_load_every=4))


def test_sheet_snippets() -> None:
    images = torch.rand(2, 28, 28, 1)
    x = layers.Conv2D(32, (3, 3), activation='relu', padding='same')(images)
    assert tuple(x.shape) == (2, 28, 28, 32)
    assert bool((x >= 0).all())
    x = layers.MaxPooling2D((2, 2))(x)
    assert tuple(x.shape) == (2, 14, 14, 32)
    x = layers.GlobalAveragePooling2D()(x)
    assert tuple(x.shape) == (2, 32)
    sequences = torch.rand(2, 100, 128)
    y = layers.Conv1D(64, 3, activation='relu')(sequences)
    assert tuple(y.shape) == (2, 98, 64)


def test_sheet_snippets_in_a_functional_model() -> None:
    inputs = lamina.Input((28, 28, 1))
    x = layers.Conv2D(32, (3, 3), activation='relu', padding='same')(inputs)
    x = layers.MaxPooling2D((2, 2))(x)
    outputs = layers.GlobalAveragePooling2D()(x)
    assert outputs.shape == (None, 32)
    model = lamina.Model(inputs, outputs)
    assert tuple(model(torch.rand(3, 28, 28, 1)).shape) == (3, 32)
    assert model.count_params() == 320


def test_hand_computed_same_padding_puts_the_odd_pad_at_the_end() -> None:
    # [1, 2, 3, 4] * kernel [1, 1], 'same': TensorFlow pads 0 before and 1 after.
    layer = layers.Conv1D(1, 2, padding="same", use_bias=False, kernel_initializer="ones")
    out = layer(torch.tensor([[[1.0], [2.0], [3.0], [4.0]]]))
    assert out.flatten().tolist() == [3.0, 5.0, 7.0, 4.0]


def test_hand_computed_transposed_convolution() -> None:
    # The gradient of a stride-2 'same' convolution with kernel [1, 2, 3]: [1, 2, 4, 2].
    layer = layers.Conv1DTranspose(1, 3, strides=2, padding="same", use_bias=False)
    layer(torch.zeros(1, 2, 1))
    layer.set_weights([np.array([1.0, 2.0, 3.0]).reshape(3, 1, 1)])
    assert layer(torch.ones(1, 2, 1)).flatten().tolist() == [1.0, 2.0, 4.0, 2.0]


def test_hand_computed_causal_convolution() -> None:
    layer = layers.Conv1D(1, 2, padding="causal", use_bias=False)
    layer(torch.zeros(1, 3, 1))
    layer.set_weights([np.array([10.0, 1.0]).reshape(2, 1, 1)])
    # out[t] = 10 * x[t - 1] + x[t], with x[-1] = 0.
    assert layer(torch.tensor([[[1.0], [2.0], [3.0]]])).flatten().tolist() == [1.0, 12.0, 23.0]


@pytest.mark.parametrize("cls,kwargs", [
    (layers.Conv2D, dict(filters=3, kernel_size=3, strides=2, padding="same")),
    (layers.Conv2DTranspose, dict(filters=3, kernel_size=3, strides=2, padding="same")),
    (layers.SeparableConv2D, dict(filters=3, kernel_size=(2, 3), padding="same")),
    (layers.DepthwiseConv2D, dict(kernel_size=3, strides=2, padding="same")),
])
def test_channels_first_equals_channels_last(cls, kwargs) -> None:
    last = cls(**kwargs)
    first = cls(**kwargs, data_format="channels_first")
    x = torch.randn(2, 7, 6, 4)
    last(x)
    first(x.permute(0, 3, 1, 2))
    first.set_weights(last.get_weights())
    torch.testing.assert_close(first(x.permute(0, 3, 1, 2)), last(x).permute(0, 3, 1, 2))


def test_same_padding_follows_the_input_size_of_a_fully_convolutional_model() -> None:
    inputs = lamina.Input((None, None, 3))
    conv = layers.Conv2D(2, 3, strides=2, padding="same")
    outputs = conv(inputs)
    assert outputs.shape == (None, None, None, 2)
    model = lamina.Model(inputs, outputs)
    for height, width in [(7, 8), (8, 9), (5, 5), (8, 9)]:
        x = torch.randn(1, height, width, 3, dtype=torch.float32)
        kernel, bias = conv.get_weights()
        expected = keras_conv(x.double(), kernel.astype(np.float64), bias.astype(np.float64),
                              strides=2, padding="same").float()
        torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=1e-5)


def test_channels_last_runs_on_views_without_copies() -> None:
    layer = layers.Conv2D(8, 3, padding="same")
    x = torch.randn(2, 6, 6, 4)
    out = layer(x)
    moved = layer._layout.to_torch(x)
    assert moved.data_ptr() == x.data_ptr()
    assert moved.is_contiguous(memory_format=torch.channels_last)
    # torch returns channels_last memory, so the Keras-layout output is plain contiguous.
    assert out.is_contiguous()


def test_kernel_initializer_sees_keras_fans() -> None:
    layer = layers.Conv2D(32, 3, kernel_initializer="glorot_uniform")
    layer(torch.zeros(1, 5, 5, 16))
    kernel = layer.get_weights()[0]
    limit = np.sqrt(6.0 / (3 * 3 * 16 + 3 * 3 * 32))
    assert kernel.shape == (3, 3, 16, 32)
    # float32 rounding of the limit may put a sample one ulp above the float64 limit.
    assert np.abs(kernel).max() <= limit * (1 + 1e-6)
    assert np.abs(kernel).max() > 0.95 * limit


def test_kernel_constraint_acts_on_the_keras_layout() -> None:
    # Keras's per-filter max-norm: axis [0, 1, 2] of (kh, kw, in, filters).
    layer = layers.Conv2D(4, 3, kernel_constraint=lamina.constraints.MaxNorm(1.0, axis=[0, 1, 2]),
                          kernel_initializer=lamina.initializers.RandomNormal(stddev=1.0))
    layer(torch.zeros(1, 5, 5, 3))
    (attr, constraint), = layer._constrained
    with torch.no_grad():
        getattr(layer, attr).copy_(constraint(getattr(layer, attr)))
    norms = np.sqrt((layer.get_weights()[0] ** 2).sum(axis=(0, 1, 2)))
    np.testing.assert_allclose(norms, np.ones(4), rtol=1e-5)


def test_kernel_regularizer_penalty() -> None:
    layer = layers.Conv1D(3, 2, kernel_regularizer=lamina.regularizers.L2(0.1))
    layer(torch.zeros(1, 4, 2))
    (penalty,) = layer.losses
    np.testing.assert_allclose(penalty.item(), 0.1 * (layer.get_weights()[0] ** 2).sum(),
                               rtol=1e-5)


def test_weight_names_and_order_follow_keras() -> None:
    layer = layers.SeparableConv2D(4, 3)
    layer(torch.zeros(1, 5, 5, 2))
    assert [name for _, name, _ in layer._weight_entries()] == [
        "depthwise_kernel", "pointwise_kernel", "bias"]
    assert [w.shape for w in layer.get_weights()] == [(3, 3, 2, 1), (1, 1, 2, 4), (4,)]
    transpose = layers.Conv2DTranspose(5, (3, 2))
    transpose(torch.zeros(1, 4, 4, 2))
    assert [w.shape for w in transpose.get_weights()] == [(3, 2, 5, 2), (5,)]


def test_aliases_are_the_same_classes() -> None:
    assert layers.Convolution2D is layers.Conv2D
    assert layers.SeparableConvolution1D is layers.SeparableConv1D
    assert lamina._registry.lookup("layer", "Convolution1DTranspose") is layers.Conv1DTranspose


def _built(cls, input_shape, **kwargs):
    layer = cls(**kwargs)
    layer(torch.zeros(input_shape))
    return layer


BAD = [
    ("kernel_larger_than_input", lambda: layers.Conv2D(4, 5)(torch.zeros(1, 3, 3, 1)),
     ShapeError, r"'conv2d.*' \(Conv2D\): the kernel_size \(5, 5\) is larger than the input's "
     r"spatial size \(3, 3\) with padding='valid'"),
    ("dilated_kernel_larger_than_input",
     lambda: layers.Conv1D(4, 3, dilation_rate=3)(torch.zeros(1, 6, 1)),
     ShapeError, r"kernel_size \(7,\) is larger than the input's spatial size \(6,\)"),
    ("rank_3_input_to_conv2d", lambda: layers.Conv2D(4, 3)(torch.zeros(8, 8, 3)),
     ShapeError, r"expected rank 4 \(batch, height, width, channels\).*received an input of "
                 r"shape \(8, 8, 3\)"),
    ("rank_3_input_to_built_conv2d", lambda: _built(layers.Conv2D, (1, 5, 5, 3), filters=2,
     kernel_size=3)(torch.zeros(5, 5, 3)), ShapeError, r"expected rank 4"),
    ("wrong_channels", lambda: _built(layers.Conv2D, (1, 5, 5, 3), filters=2, kernel_size=3)(
        torch.zeros(1, 5, 5, 4)), ShapeError, r"built for 3 input channels on axis 3.*"
                                              r"shape \(1, 5, 5, 4\)"),
    ("strides_and_dilation", lambda: layers.Conv2D(4, 3, strides=2, dilation_rate=2),
     ValueError, r"Conv2D: `strides > 1` is not supported together with `dilation_rate > 1`. "
                 r"Received: strides=\(2, 2\) and dilation_rate=\(2, 2\)"),
    ("strides_and_dilation_separable", lambda: layers.SeparableConv1D(4, 3, strides=2,
     dilation_rate=2), ValueError, r"SeparableConv1D: `strides > 1`"),
    ("filters_not_divisible_by_groups", lambda: layers.Conv2D(5, 3, groups=2), ValueError,
     r"Conv2D: `filters` must be divisible by `groups`. Received: filters=5, groups=2"),
    ("channels_not_divisible_by_groups", lambda: layers.Conv2D(4, 3, groups=2)(
        torch.zeros(1, 5, 5, 3)), ShapeError,
     r"number of input channels \(3\) must be divisible by groups=2"),
    ("zero_filters", lambda: layers.Conv2D(0, 3), ValueError,
     r"`filters` must be a positive integer. Received: filters=0"),
    ("causal_conv2d", lambda: layers.Conv2D(4, 3, padding="causal"), ValueError,
     r"`padding` must be one of 'valid', 'same'. Received: padding='causal'"),
    ("kernel_size_rank", lambda: layers.Conv2D(4, (3, 3, 3)), ValueError,
     r"`kernel_size` must be a positive integer or a tuple of 2 positive integers. "
     r"Received: kernel_size=\(3, 3, 3\)"),
    ("output_padding_not_below_stride", lambda: layers.Conv2DTranspose(4, 3, strides=2,
     output_padding=2), ValueError, r"each `output_padding` must be smaller than its stride"),
    ("depth_multiplier", lambda: layers.DepthwiseConv2D(3, depth_multiplier=0), ValueError,
     r"`depth_multiplier` must be a positive integer"),
    ("unknown_channels", lambda: layers.Conv2D(4, 3)(lamina.Input((None, None, None))),
     ShapeError, r"needs the channel axis of its input to be known"),
]


@pytest.mark.parametrize("make,error,match", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_errors(make, error, match) -> None:
    with pytest.raises(error, match=match):
        make()


def test_short_input_to_a_fully_convolutional_model_names_the_layer() -> None:
    inputs = lamina.Input((None, 2))
    model = lamina.Model(inputs, layers.Conv1D(4, 5, name="wide")(inputs))
    with pytest.raises(ShapeError, match=r"'wide' \(Conv1D\): the kernel_size \(5,\) is larger "
                                         r"than the input's spatial size \(3,\)"):
        model(torch.zeros(1, 3, 2))


def test_float32_matches_the_float64_reference() -> None:
    layer = layers.Conv2D(6, 3, strides=2, padding="same", activation="relu")
    x = torch.randn((2, 9, 8, 3), generator=torch.Generator().manual_seed(0))
    out = layer(x)
    kernel, bias = layer.get_weights()
    expected = torch.relu(keras_conv(x.double(), kernel.astype(np.float64),
                                     bias.astype(np.float64), strides=2, padding="same"))
    torch.testing.assert_close(out.double(), expected, atol=1e-5, rtol=1e-5)
