"""Max/average pooling 1D/2D/3D and global pooling: shapes, values against references with
TensorFlow's padding (padding never wins a max nor counts in an average), masks, errors."""

from __future__ import annotations

import pytest
import torch

import lamina
from lamina import layers
from lamina.errors import ShapeError

from support.layer_test import class_case, generic_layer_tests, single_thread

from .conv_references import pool_reference

L = layers
pytestmark = pytest.mark.usefixtures(single_thread.__name__)


def global_reference(layer, x: torch.Tensor) -> torch.Tensor:
    axes = tuple(range(1, x.ndim - 1)) if layer.data_format == "channels_last" \
        else tuple(range(2, x.ndim))
    if "Max" in type(layer).__name__:
        return x.amax(dim=axes, keepdim=layer.keepdims)
    return x.mean(dim=axes, keepdim=layer.keepdims)


CASES = [
    class_case("maxpool2d_sheet", L.MaxPooling2D, dict(pool_size=(2, 2)), (2, 8, 8, 3),
               (2, 4, 4, 3), pool_reference),
    # Width 8, pool 3, stride 2: TensorFlow pads 0 before and 1 after.
    class_case("maxpool2d_same_strided", L.MaxPooling2D, dict(pool_size=3, strides=2,
               padding="same"), (2, 7, 8, 2), (2, 4, 4, 2), pool_reference),
    class_case("maxpool2d_same_stride1_even_pool", L.MaxPooling2D, dict(pool_size=2, strides=1,
               padding="same"), (1, 5, 6, 2), (1, 5, 6, 2), pool_reference),
    class_case("maxpool2d_overlapping_channels_first", L.MaxPooling2D, dict(pool_size=3,
               strides=2, data_format="channels_first"), (1, 2, 7, 9), (1, 2, 3, 4),
               pool_reference),
    class_case("maxpool1d_same_strided", L.MaxPooling1D, dict(pool_size=3, strides=2,
               padding="same"), (2, 10, 3), (2, 5, 3), pool_reference),
    class_case("maxpool1d_defaults", L.MaxPooling1D, dict(), (2, 9, 3), (2, 4, 3),
               pool_reference),
    class_case("maxpool3d_same", L.MaxPooling3D, dict(pool_size=2, padding="same"),
               (1, 3, 5, 4, 2), (1, 2, 3, 2, 2), pool_reference),
    class_case("avgpool2d_same_strided", L.AveragePooling2D, dict(pool_size=3, strides=2,
               padding="same"), (2, 7, 8, 2), (2, 4, 4, 2), pool_reference),
    class_case("avgpool2d_same_stride1_even_pool", L.AveragePooling2D, dict(pool_size=2,
               strides=1, padding="same"), (1, 5, 6, 2), (1, 5, 6, 2), pool_reference),
    class_case("avgpool2d_same_pool_larger_than_input", L.AveragePooling2D, dict(pool_size=4,
               strides=3, padding="same"), (1, 3, 5, 1), (1, 1, 2, 1), pool_reference),
    class_case("avgpool2d_valid", L.AveragePooling2D, dict(pool_size=(2, 3)), (2, 6, 7, 2),
               (2, 3, 2, 2), pool_reference),
    class_case("avgpool1d_same_channels_first", L.AveragePooling1D, dict(pool_size=4, strides=3,
               padding="same", data_format="channels_first"), (2, 3, 10), (2, 3, 4),
               pool_reference),
    class_case("avgpool3d_valid", L.AveragePooling3D, dict(pool_size=(2, 1, 2)),
               (1, 4, 3, 5, 2), (1, 2, 3, 2, 2), pool_reference),
    class_case("avgpool3d_same_strided", L.AveragePooling3D, dict(pool_size=3, strides=2,
               padding="same"), (1, 5, 4, 6, 1), (1, 3, 2, 3, 1), pool_reference),
    class_case("global_avg2d", L.GlobalAveragePooling2D, dict(), (2, 4, 5, 3), (2, 3),
               global_reference),
    class_case("global_avg2d_keepdims_channels_first", L.GlobalAveragePooling2D,
               dict(data_format="channels_first", keepdims=True), (2, 3, 4, 5), (2, 3, 1, 1),
               global_reference),
    class_case("global_max2d", L.GlobalMaxPooling2D, dict(), (2, 4, 5, 3), (2, 3),
               global_reference),
    class_case("global_avg1d", L.GlobalAveragePooling1D, dict(), (2, 6, 3), (2, 3),
               global_reference),
    class_case("global_max1d_keepdims_channels_first", L.GlobalMaxPooling1D,
               dict(data_format="channels_first", keepdims=True), (2, 3, 6), (2, 3, 1),
               global_reference),
    class_case("global_avg3d", L.GlobalAveragePooling3D, dict(), (1, 2, 3, 4, 5), (1, 5),
               global_reference),
    class_case("global_max3d_keepdims", L.GlobalMaxPooling3D, dict(keepdims=True),
               (1, 2, 3, 4, 5), (1, 1, 1, 1, 5), global_reference),
]


globals().update(generic_layer_tests(CASES, save_load_every=5))


def test_same_average_pooling_does_not_count_padding() -> None:
    # Windows [1, 2] and [3, pad]: Keras averages real values only.
    layer = layers.AveragePooling1D(2, strides=2, padding="same")
    out = layer(torch.tensor([[[1.0], [2.0], [3.0]]]))
    assert out.flatten().tolist() == [1.5, 3.0]


def test_same_max_pooling_ignores_padding() -> None:
    layer = layers.MaxPooling1D(2, strides=2, padding="same")
    out = layer(torch.tensor([[[-1.0], [-2.0], [-3.0]]]))
    assert out.flatten().tolist() == [-1.0, -3.0]


@pytest.mark.parametrize("pool,strides", [(2, 1), (3, 2), (4, 3), (5, 2), (2, 3), (3, 1)])
@pytest.mark.parametrize("cls", [layers.AveragePooling1D, layers.MaxPooling1D])
def test_same_padding_for_every_input_length(cls, pool, strides) -> None:
    inputs = lamina.Input((None, 2), dtype="float64")
    layer = cls(pool, strides=strides, padding="same")
    model = lamina.Model(inputs, layer(inputs))
    for length in range(1, 12):
        x = torch.randn(2, length, 2, dtype=torch.float64)
        torch.testing.assert_close(model(x), pool_reference(layer, x))


def test_sheet_snippet_aliases() -> None:
    assert layers.MaxPool2D is layers.MaxPooling2D
    assert layers.AvgPool2D is layers.AveragePooling2D
    assert layers.GlobalAvgPool2D is layers.GlobalAveragePooling2D
    assert layers.GlobalMaxPool1D is layers.GlobalMaxPooling1D
    assert lamina._registry.lookup("layer", "AvgPool3D") is layers.AveragePooling3D
    x = layers.MaxPool2D((2, 2))(torch.rand(2, 28, 28, 32))
    assert tuple(x.shape) == (2, 14, 14, 32)


MASK = torch.tensor([[True, True, False, False, True], [False, False, False, False, False],
                     [True, True, True, True, True]])


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_global_average_pooling_1d_averages_real_steps_only(data_format) -> None:
    x = torch.randn(3, 5, 4, dtype=torch.float64)
    layer = layers.GlobalAveragePooling1D(data_format=data_format)
    inputs = x if data_format == "channels_last" else x.transpose(1, 2)
    out = layer(inputs, mask=MASK)
    expected = torch.stack([x[0, [0, 1, 4]].mean(0), torch.zeros(4, dtype=torch.float64),
                            x[2].mean(0)])
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_global_max_pooling_1d_ignores_masked_steps(data_format) -> None:
    x = torch.randn(3, 5, 4, dtype=torch.float64)
    x[0, 2] = 100.0  # masked: must not win
    layer = layers.GlobalMaxPooling1D(data_format=data_format, keepdims=True)
    inputs = x if data_format == "channels_last" else x.transpose(1, 2)
    out = layer(inputs, mask=MASK)
    expected = torch.stack([x[0, [0, 1, 4]].amax(0), torch.zeros(4, dtype=torch.float64),
                            x[2].amax(0)])
    expected = expected.unsqueeze(1) if data_format == "channels_last" else expected.unsqueeze(2)
    torch.testing.assert_close(out, expected)


def test_mask_from_embedding_reaches_global_average_pooling() -> None:
    model = lamina.models.Sequential([
        layers.Embedding(10, 3, mask_zero=True),
        layers.GlobalAveragePooling1D(),
    ])
    tokens = torch.tensor([[4, 5, 0, 0], [1, 2, 3, 9]])
    out = model(tokens)
    table = model.layers[0].embeddings.detach()
    torch.testing.assert_close(out[0], table[[4, 5]].mean(0))
    torch.testing.assert_close(out[1], table[[1, 2, 3, 9]].mean(0))
    assert getattr(out, "_keras_mask", None) is None


BAD = [
    ("pool_larger_than_input", lambda: layers.MaxPooling2D(4)(torch.zeros(1, 3, 5, 1)),
     ShapeError, r"'max_pooling2d.*' \(MaxPooling2D\): the pool_size \(4, 4\) is larger than the "
     r"input's spatial size \(3, 5\) with padding='valid'"),
    ("pool_larger_than_a_later_input", lambda: lamina.Model(
        inp := lamina.Input((None, 2)), layers.AveragePooling1D(4, name="avg")(inp))(
        torch.zeros(1, 3, 2)), ShapeError, r"'avg' \(AveragePooling1D\): the pool_size \(4,\)"),
    ("rank_3_input_to_pool2d", lambda: layers.MaxPooling2D()(torch.zeros(4, 4, 3)), ShapeError,
     r"expected rank 4 \(batch, height, width, channels\)"),
    ("rank_2_input_to_global_pool1d", lambda: layers.GlobalAveragePooling1D()(
        torch.zeros(4, 3)), ShapeError, r"expected rank 3 \(batch, steps, channels\)"),
    ("zero_stride", lambda: layers.AveragePooling2D(2, strides=0), ValueError,
     r"`strides` must be a positive integer or a tuple of 2 positive integers. "
     r"Received: strides=0"),
    ("causal_padding", lambda: layers.MaxPooling1D(2, padding="causal"), ValueError,
     r"`padding` must be one of 'valid', 'same'"),
    ("bad_data_format", lambda: layers.GlobalMaxPooling2D(data_format="NHWC"), ValueError,
     r"`data_format` must be 'channels_last' or 'channels_first'"),
]


@pytest.mark.parametrize("make,error,match", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_errors(make, error, match) -> None:
    with pytest.raises(error, match=match):
        make()
