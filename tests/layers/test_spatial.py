"""ZeroPadding, Cropping, UpSampling and SpatialDropout in 1D/2D/3D: shapes, values against
numpy references, gradients, config, saving, whole-channel dropout, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import lamina
from lamina import layers
from lamina.errors import ShapeError

from support.layer_test import class_case, generic_layer_tests, single_thread

L = layers
pytestmark = pytest.mark.usefixtures(single_thread.__name__)


def _spatial_axes(layer, x: torch.Tensor) -> list[int]:
    rank = x.ndim - 2
    data_format = getattr(layer, "data_format", "channels_last")
    return list(range(1, rank + 1)) if data_format == "channels_last" else list(range(2, rank + 2))


def _pairs(value, rank: int) -> list[tuple[int, int]]:
    if isinstance(value, int):
        return [(value, value)] * rank
    if rank == 1:
        return [tuple(value)]
    return [(v, v) if isinstance(v, int) else tuple(v) for v in value]


def padding_reference(layer, x: torch.Tensor) -> torch.Tensor:
    widths = [(0, 0)] * x.ndim
    pairs = _pairs(layer.get_config()["padding"], x.ndim - 2)
    for axis, pair in zip(_spatial_axes(layer, x), pairs):
        widths[axis] = pair
    return torch.as_tensor(np.pad(x.numpy(), widths))


def cropping_reference(layer, x: torch.Tensor) -> torch.Tensor:
    array = x.numpy()
    index = [slice(None)] * x.ndim
    for axis, (before, after) in zip(_spatial_axes(layer, x),
                                     _pairs(layer.get_config()["cropping"], x.ndim - 2)):
        index[axis] = slice(before, array.shape[axis] - after)
    return torch.as_tensor(array[tuple(index)].copy())


def nearest_reference(layer, x: torch.Tensor) -> torch.Tensor:
    array = x.numpy()
    size = layer.size if isinstance(layer.size, tuple) else (layer.size,)
    for axis, factor in zip(_spatial_axes(layer, x), size):
        array = np.repeat(array, factor, axis=axis)
    return torch.as_tensor(array)


def bilinear_reference(layer, x: torch.Tensor) -> torch.Tensor:
    """TensorFlow's half-pixel bilinear resize of a channels_last batch, written out."""
    array = x.numpy()
    n, h, w, c = array.shape
    sh, sw = layer.size

    def taps(out_index: int, factor: int, size: int) -> tuple[int, int, float]:
        source = max((out_index + 0.5) / factor - 0.5, 0.0)
        low = int(math.floor(source))
        return low, min(low + 1, size - 1), source - low

    out = np.zeros((n, h * sh, w * sw, c))
    for i in range(h * sh):
        y0, y1, fy = taps(i, sh, h)
        for j in range(w * sw):
            x0, x1, fx = taps(j, sw, w)
            top = array[:, y0, x0] * (1 - fx) + array[:, y0, x1] * fx
            bottom = array[:, y1, x0] * (1 - fx) + array[:, y1, x1] * fx
            out[:, i, j] = top * (1 - fy) + bottom * fy
    return torch.as_tensor(out)


def identity_reference(layer, x: torch.Tensor) -> torch.Tensor:
    return x


CASES = [
    class_case("zero_padding1d_int", L.ZeroPadding1D, dict(padding=2), (2, 3, 4), (2, 7, 4),
               padding_reference),
    class_case("zero_padding1d_pair_channels_first", L.ZeroPadding1D, dict(padding=(1, 3),
               data_format="channels_first"), (2, 4, 3), (2, 4, 7), padding_reference),
    class_case("zero_padding2d_pairs", L.ZeroPadding2D, dict(padding=((1, 2), (3, 0))),
               (1, 4, 5, 2), (1, 7, 8, 2), padding_reference),
    class_case("zero_padding2d_symmetric_channels_first", L.ZeroPadding2D, dict(padding=(1, 2),
               data_format="channels_first"), (1, 2, 3, 3), (1, 2, 5, 7), padding_reference),
    class_case("zero_padding3d", L.ZeroPadding3D, dict(padding=1), (1, 2, 3, 2, 2),
               (1, 4, 5, 4, 2), padding_reference),
    class_case("cropping1d", L.Cropping1D, dict(cropping=(1, 2)), (2, 6, 3), (2, 3, 3),
               cropping_reference),
    class_case("cropping2d_pairs", L.Cropping2D, dict(cropping=((1, 0), (2, 1))), (1, 5, 6, 2),
               (1, 4, 3, 2), cropping_reference),
    class_case("cropping2d_int_channels_first", L.Cropping2D, dict(cropping=1,
               data_format="channels_first"), (1, 2, 5, 6), (1, 2, 3, 4), cropping_reference),
    class_case("cropping3d_default", L.Cropping3D, dict(), (1, 4, 5, 6, 2), (1, 2, 3, 4, 2),
               cropping_reference),
    class_case("upsampling1d", L.UpSampling1D, dict(size=3), (2, 4, 3), (2, 12, 3),
               nearest_reference),
    class_case("upsampling2d_nearest", L.UpSampling2D, dict(size=(2, 3)), (1, 3, 4, 2),
               (1, 6, 12, 2), nearest_reference),
    class_case("upsampling2d_channels_first", L.UpSampling2D, dict(size=2,
               data_format="channels_first"), (1, 2, 3, 4), (1, 2, 6, 8), nearest_reference),
    class_case("upsampling2d_bilinear", L.UpSampling2D, dict(size=(2, 3),
               interpolation="bilinear"), (1, 3, 4, 2), (1, 6, 12, 2), bilinear_reference),
    class_case("upsampling3d", L.UpSampling3D, dict(size=(1, 2, 2)), (1, 2, 3, 2, 2),
               (1, 2, 6, 4, 2), nearest_reference),
    # Inference: spatial dropout is the identity. Random in training (tested below, channel by
    # channel), so gradcheck runs in inference.
    class_case("spatial_dropout1d", L.SpatialDropout1D, dict(rate=0.5), (2, 4, 3), (2, 4, 3),
               identity_reference, gradcheck_training=False),
    class_case("spatial_dropout2d_channels_first", L.SpatialDropout2D, dict(rate=0.3,
               data_format="channels_first"), (2, 3, 4, 4), (2, 3, 4, 4), identity_reference,
               gradcheck_training=False),
    class_case("spatial_dropout3d", L.SpatialDropout3D, dict(rate=0.3), (1, 2, 3, 2, 2),
               (1, 2, 3, 2, 2), identity_reference, gradcheck_training=False),
]


globals().update(generic_layer_tests(CASES, save_load_every=4))


def test_hand_computed_bilinear_upsampling() -> None:
    # Half-pixel centres: sources -0.25 (clamped), 0.25, 0.75, 1.25 (clamped).
    out = layers.UpSampling2D((1, 2), interpolation="bilinear")(torch.tensor([[[[0.0], [1.0]]]]))
    assert out.flatten().tolist() == [0.0, 0.25, 0.75, 1.0]


def test_keras_config_values() -> None:
    assert layers.ZeroPadding1D().get_config()["padding"] == (1, 1)
    assert layers.ZeroPadding2D(2).get_config()["padding"] == ((2, 2), (2, 2))
    assert layers.Cropping1D().get_config()["cropping"] == (1, 1)
    assert layers.UpSampling1D().get_config()["size"] == 2
    assert "data_format" not in layers.SpatialDropout1D(0.1).get_config()


@pytest.mark.parametrize("cls,shape,channel_axis,data_format", [
    (layers.SpatialDropout1D, (32, 6, 16), 2, None),
    (layers.SpatialDropout2D, (32, 4, 5, 16), 3, None),
    (layers.SpatialDropout2D, (32, 16, 4, 5), 1, "channels_first"),
    (layers.SpatialDropout3D, (16, 3, 3, 3, 16), 4, None),
])
def test_spatial_dropout_drops_whole_channels(cls, shape, channel_axis, data_format) -> None:
    kwargs = {} if data_format is None else {"data_format": data_format}
    layer = cls(0.5, seed=3, **kwargs)
    x = torch.ones(shape)
    out = layer(x, training=True)
    assert set(out.unique().tolist()) <= {0.0, 2.0}
    # Every position of one (sample, channel) shares its fate.
    moved = out.movedim(channel_axis, 1).flatten(2)
    assert bool((moved == moved[..., :1]).all())
    kept = moved[..., 0].mean().item() / 2.0
    assert 0.4 < kept < 0.6
    again = cls(0.5, seed=3, **kwargs)(x, training=True)
    torch.testing.assert_close(again, out)
    torch.testing.assert_close(layer(x), x)


def test_spatial_dropout_follows_train_mode() -> None:
    model = lamina.models.Sequential([lamina.Input((4, 4, 8)), layers.SpatialDropout2D(0.5)])
    x = torch.ones(16, 4, 4, 8)
    torch.testing.assert_close(model(x), x)
    model.train()
    assert bool((model(x) == 0).any())


BAD = [
    ("cropping_everything", lambda: layers.Cropping2D(((2, 2), (0, 0)))(torch.zeros(1, 4, 5, 1)),
     ShapeError, r"'cropping2d.*' \(Cropping2D\): cropping \(\(2, 2\), \(0, 0\)\) removes every "
                 r"element of a spatial axis of an input of shape \(1, 4, 5, 1\)"),
    ("cropping_a_later_input", lambda: lamina.Model(
        inp := lamina.Input((None, 2)), layers.Cropping1D((2, 2), name="crop")(inp))(
        torch.zeros(1, 4, 2)), ShapeError, r"'crop' \(Cropping1D\): cropping \(2, 2\)"),
    ("padding_three_ints_for_2d", lambda: layers.ZeroPadding2D((1, 2, 3)), ValueError,
     r"`padding` must be an int, a tuple of 2 ints, or a tuple of 2 \(before, after\) pairs "
     r"of non-negative ints. Received: padding=\(1, 2, 3\)"),
    ("negative_cropping", lambda: layers.Cropping1D((-1, 1)), ValueError,
     r"`cropping` must be a non-negative integer or a tuple of 2 non-negative integers"),
    ("bicubic", lambda: layers.UpSampling2D(interpolation="bicubic"), ValueError,
     r"`interpolation` must be one of 'nearest', 'bilinear'. Received: interpolation='bicubic'"),
    ("zero_size", lambda: layers.UpSampling3D(0), ValueError,
     r"`size` must be a positive integer or a tuple of 3 positive integers"),
    ("rank_3_input_to_upsampling2d", lambda: layers.UpSampling2D()(torch.zeros(4, 4, 3)),
     ShapeError, r"expected rank 4 \(batch, height, width, channels\)"),
    ("rank_4_input_to_zero_padding1d", lambda: layers.ZeroPadding1D()(torch.zeros(1, 4, 4, 3)),
     ShapeError, r"expected rank 3 \(batch, steps, channels\)"),
    ("dropout_rate_one", lambda: layers.SpatialDropout2D(1.0), ValueError,
     r"`rate` must be a float in the range \[0, 1\). Received: rate=1.0"),
]


@pytest.mark.parametrize("make,error,match", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_errors(make, error, match) -> None:
    with pytest.raises(error, match=match):
        make()
