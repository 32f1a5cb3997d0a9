"""Resizing and CenterCrop: half-pixel resampling against numpy references of TF's resize,
aspect-ratio crop and pad, exact centre crops, config and save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lamina
from lamina import layers
from lamina.errors import ShapeError

from .harness import config_round_trip, gradcheck_fresh, save_load, sequential_with_head


def images(batch=2, height=6, width=8, channels=3, seed=0):
    return torch.rand(batch, height, width, channels, generator=torch.Generator().manual_seed(seed))


def half_pixel_axis(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TF's half-pixel bilinear source positions along one axis: (low, high, weight of high)."""
    source = np.maximum((np.arange(out_size) + 0.5) * in_size / out_size - 0.5, 0.0)
    low = np.floor(source).astype(int)
    return low, np.minimum(low + 1, in_size - 1), source - low


def tf_bilinear(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """`tf.image.resize(method='bilinear')` of an (N, H, W, C) array, written out."""
    low, high, weight = half_pixel_axis(x.shape[1], height)
    x = x[:, low] * (1 - weight)[None, :, None, None] + x[:, high] * weight[None, :, None, None]
    low, high, weight = half_pixel_axis(x.shape[2], width)
    return x[:, :, low] * (1 - weight)[None, None, :, None] + \
        x[:, :, high] * weight[None, None, :, None]


def tf_nearest(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """`tf.image.resize(method='nearest')`: the source pixel under each output pixel's centre."""
    rows = np.minimum(np.floor((np.arange(height) + 0.5) * x.shape[1] / height), x.shape[1] - 1)
    cols = np.minimum(np.floor((np.arange(width) + 0.5) * x.shape[2] / width), x.shape[2] - 1)
    return x[:, rows.astype(int)][:, :, cols.astype(int)]


def torch_reference(x: np.ndarray, height: int, width: int, **kwargs) -> np.ndarray:
    nchw = torch.from_numpy(x).permute(0, 3, 1, 2)
    return F.interpolate(nchw, size=(height, width), **kwargs).permute(0, 2, 3, 1).numpy()


# (id, kwargs, input (H, W), reference on an (N, H, W, C) numpy array)
RESIZE_CASES = [
    ("bilinear_down", dict(height=3, width=4), (6, 8), lambda x: tf_bilinear(x, 3, 4)),
    ("bilinear_up", dict(height=9, width=5), (6, 3), lambda x: tf_bilinear(x, 9, 5)),
    ("bilinear_uneven", dict(height=4, width=5), (7, 9), lambda x: tf_bilinear(x, 4, 5)),
    ("nearest", dict(height=4, width=5, interpolation="nearest"), (7, 9),
     lambda x: tf_nearest(x, 4, 5)),
    ("nearest_up", dict(height=7, width=6, interpolation="nearest"), (3, 4),
     lambda x: tf_nearest(x, 7, 6)),
    ("area_halves", dict(height=3, width=4, interpolation="area"), (6, 8),
     lambda x: x.reshape(x.shape[0], 3, 2, 4, 2, -1).mean(axis=(2, 4))),
    ("bicubic", dict(height=4, width=5, interpolation="bicubic"), (7, 9),
     lambda x: torch_reference(x, 4, 5, mode="bicubic", align_corners=False)),
    ("antialias", dict(height=2, width=3, antialias=True), (8, 9),
     lambda x: torch_reference(x, 2, 3, mode="bilinear", align_corners=False, antialias=True)),
    ("crop_to_aspect_ratio", dict(height=3, width=3, crop_to_aspect_ratio=True), (6, 10),
     lambda x: tf_bilinear(x[:, :, 2:8], 3, 3)),
    ("crop_to_aspect_ratio_tall", dict(height=2, width=4, crop_to_aspect_ratio=True), (8, 6),
     lambda x: tf_bilinear(x[:, 2:5], 2, 4)),
    ("pad_to_aspect_ratio", dict(height=4, width=4, pad_to_aspect_ratio=True, fill_value=0.5),
     (4, 8), lambda x: tf_bilinear(np.pad(x, ((0, 0), (2, 2), (0, 0), (0, 0)),
                                          constant_values=0.5), 4, 4)),
]


@pytest.mark.parametrize("name,kwargs,size,reference", RESIZE_CASES,
                         ids=[c[0] for c in RESIZE_CASES])
def test_resizing_matches_reference(name, kwargs, size, reference):
    x = images(height=size[0], width=size[1]).double()
    out = layers.Resizing(**kwargs, dtype="float64")(x)
    np.testing.assert_allclose(out.numpy(), reference(x.numpy()), atol=1e-10)
    single = layers.Resizing(**kwargs, dtype="float64")(x[0])
    np.testing.assert_allclose(single.numpy(), reference(x.numpy())[0], atol=1e-10)


def test_resizing_integer_images_round_and_keep_their_dtype():
    x = (images(height=6, width=8) * 255).to(torch.uint8)
    out = layers.Resizing(3, 5)(x)
    assert out.dtype == torch.uint8
    exact = tf_bilinear(x.numpy().astype(np.float64), 3, 5)
    # Rounded to the nearest integer; values a hair from .5 may go either way in float32.
    off_tie = np.abs(exact - np.floor(exact) - 0.5) > 1e-3
    np.testing.assert_array_equal(out.numpy()[off_tie], np.round(exact)[off_tie])
    assert np.all(np.abs(out.numpy() - exact) <= 0.5 + 1e-3)


def test_center_crop_takes_the_central_window():
    x = images(height=6, width=7)
    torch.testing.assert_close(layers.CenterCrop(3, 4)(x), x[:, 1:4, 1:5])
    x = images(height=5, width=5)
    torch.testing.assert_close(layers.CenterCrop(2, 2)(x), x[:, 1:3, 1:3])
    torch.testing.assert_close(layers.CenterCrop(5, 5)(x), x)


def test_center_crop_of_a_smaller_image_crops_to_aspect_and_resizes():
    x = images(height=4, width=8).double()
    out = layers.CenterCrop(6, 6, dtype="float64")(x)
    np.testing.assert_allclose(out.numpy(), tf_bilinear(x.numpy()[:, :, 2:6], 6, 6), atol=1e-10)


# (id, layer factory, output (H, W) for a 6x8 input)
LAYER_CASES = [
    ("resizing", lambda **kw: layers.Resizing(3, 5, **kw), (3, 5)),
    ("resizing_nearest_crop", lambda **kw: layers.Resizing(
        4, 4, interpolation="nearest", crop_to_aspect_ratio=True, **kw), (4, 4)),
    ("resizing_pad", lambda **kw: layers.Resizing(5, 5, pad_to_aspect_ratio=True, **kw), (5, 5)),
    ("center_crop", lambda **kw: layers.CenterCrop(4, 5, **kw), (4, 5)),
    ("center_crop_resizing", lambda **kw: layers.CenterCrop(7, 4, **kw), (7, 4)),
]
LAYER_IDS = [c[0] for c in LAYER_CASES]


@pytest.mark.parametrize("name,make,size", LAYER_CASES, ids=LAYER_IDS)
def test_shapes_and_channels_first(name, make, size):
    x = images()
    out = make()(x)
    assert out.shape == (2, *size, 3)
    assert make()(x[0]).shape == (*size, 3)
    assert make().compute_output_shape((None, 6, 8, 3)) == (None, *size, 3)
    first = make(data_format="channels_first")
    assert first.compute_output_shape((None, 3, 6, 8)) == (None, 3, *size)
    torch.testing.assert_close(first(x.permute(0, 3, 1, 2)), out.permute(0, 3, 1, 2))


@pytest.mark.parametrize("name,make,size", LAYER_CASES, ids=LAYER_IDS)
def test_active_in_training_and_inference(name, make, size):
    model = lamina.Sequential([lamina.Input(shape=(6, 8, 3)), make()])
    x = images()
    model.eval()
    inference = model(x)
    model.train()
    torch.testing.assert_close(model(x), inference)
    assert inference.shape == (2, *size, 3)


@pytest.mark.parametrize("name,make,size", LAYER_CASES, ids=LAYER_IDS)
def test_config_round_trip_and_save_load(tmp_path, name, make, size):
    layer = make()
    x = images()
    torch.testing.assert_close(config_round_trip(layer)(x), layer(x))
    before, after = save_load(tmp_path, sequential_with_head(make(), (6, 8, 3)), x)
    torch.testing.assert_close(after, before)


@pytest.mark.parametrize("name,make,size", LAYER_CASES, ids=LAYER_IDS)
def test_gradcheck_and_no_weights(name, make, size):
    assert gradcheck_fresh(lambda: make(dtype="float64"), images(batch=1, channels=1))
    layer = make()
    layer(images())
    assert layer.count_params() == 0


@pytest.mark.parametrize("name,make,size", LAYER_CASES, ids=LAYER_IDS)
def test_wrong_rank_is_a_shape_error(name, make, size):
    with pytest.raises(ShapeError, match=r"expected an image of rank 3 \(H, W, C\) or a batch of "
                                         r"rank 4 \(N, H, W, C\), but received an input of shape "
                                         r"\(6, 8\)"):
        make()(torch.zeros(6, 8))


BAD_ARGUMENTS = [
    (layers.Resizing, dict(height=0, width=4), r"`height` must be a positive integer .* "
                                               r"Received: height=0"),
    (layers.Resizing, dict(height=4, width=None), r"Received: width=None"),
    (layers.Resizing, dict(height=4, width=4, interpolation="lanczos3"),
     r"`interpolation` must be one of 'bilinear', 'nearest', 'bicubic', 'area'. Received: "
     r"interpolation='lanczos3'. Lanczos filters are not available in torch"),
    (layers.Resizing, dict(height=4, width=4, crop_to_aspect_ratio=True, pad_to_aspect_ratio=True),
     r"Only one of `crop_to_aspect_ratio` and `pad_to_aspect_ratio` can be True"),
    (layers.Resizing, dict(height=4, width=4, fill_mode="reflect"),
     r"`fill_mode` must be 'constant'"),
    (layers.Resizing, dict(height=4, width=4, data_format="nhwc"),
     r"`data_format` must be 'channels_last' or 'channels_first'"),
    (layers.CenterCrop, dict(height=4, width=-1), r"`width` must be a positive integer"),
]


@pytest.mark.parametrize("cls,kwargs,match", BAD_ARGUMENTS)
def test_bad_arguments_raise_value_errors(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)
