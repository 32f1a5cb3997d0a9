"""Image augmentation layers: shapes, identity in inference, seeds, geometry against Keras's
affine transform, formulas of contrast and brightness, crops, config and save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lamina
from lamina import layers
from lamina.errors import ShapeError
from .harness import (
    config_round_trip,
    gradcheck_fresh,
    keras_affine,
    rotation_matrix,
    save_load,
    sequential_with_head,
    translation_matrix,
    zoom_matrix,
)

# (id, class, kwargs, output (height, width) for a 6x7 input)
CASES = [
    ("flip_horizontal", layers.RandomFlip, dict(mode="horizontal"), (6, 7)),
    ("flip_vertical", layers.RandomFlip, dict(mode="vertical"), (6, 7)),
    ("flip_both", layers.RandomFlip, dict(), (6, 7)),
    ("rotation", layers.RandomRotation, dict(factor=0.2), (6, 7)),
    ("rotation_wrap_nearest", layers.RandomRotation,
     dict(factor=(-0.3, 0.1), fill_mode="wrap", interpolation="nearest"), (6, 7)),
    ("translation", layers.RandomTranslation,
     dict(height_factor=0.2, width_factor=(-0.3, 0.1), fill_mode="constant", fill_value=0.5),
     (6, 7)),
    ("zoom", layers.RandomZoom, dict(height_factor=(-0.3, 0.3)), (6, 7)),
    ("zoom_both_axes", layers.RandomZoom,
     dict(height_factor=0.2, width_factor=(0.1, 0.4), fill_mode="nearest"), (6, 7)),
    ("contrast", layers.RandomContrast, dict(factor=0.5, value_range=(0, 1)), (6, 7)),
    ("brightness", layers.RandomBrightness, dict(factor=(-0.2, 0.3), value_range=(0, 1)), (6, 7)),
    ("crop", layers.RandomCrop, dict(height=3, width=4), (3, 4)),
]
IDS = [case[0] for case in CASES]


def images(batch=4, height=6, width=7, channels=2, seed=0):
    return torch.rand(batch, height, width, channels, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name,cls,kwargs,size", CASES, ids=IDS)
def test_output_shapes_batched_unbatched_and_declared(name, cls, kwargs, size):
    layer = cls(**kwargs, seed=1)
    x = images()
    assert layer(x, training=True).shape == (4, *size, 2)
    assert layer(x).shape == (4, *size, 2)
    assert layer(x[0], training=True).shape == (*size, 2)
    assert layer.compute_output_shape((None, 6, 7, 2)) == (None, *size, 2)
    assert layer.compute_output_shape((6, 7, 2)) == (*size, 2)


@pytest.mark.parametrize("name,cls,kwargs,size", CASES, ids=IDS)
def test_channels_first_matches_channels_last(name, cls, kwargs, size):
    x = images()
    last = cls(**kwargs, seed=3)(x, training=True)
    first = cls(**kwargs, seed=3, data_format="channels_first")(x.permute(0, 3, 1, 2),
                                                                 training=True)
    torch.testing.assert_close(first, last.permute(0, 3, 1, 2))


@pytest.mark.parametrize("name,cls,kwargs,size", [c for c in CASES if c[0] != "crop"],
                         ids=[i for i in IDS if i != "crop"])
def test_identity_in_inference_and_active_in_training(name, cls, kwargs, size):
    model = lamina.Sequential([lamina.Input(shape=(6, 7, 2)), cls(**kwargs, seed=5)])
    x = images(batch=8)
    model.eval()
    assert torch.equal(model(x), x)
    assert torch.equal(model.layers[0](x), x)
    model.train()
    assert not torch.allclose(model(x), x)
    assert not torch.allclose(model.layers[0](x, training=True), x)


@pytest.mark.parametrize("name,cls,kwargs,size", CASES, ids=IDS)
def test_seed_reproduces_and_the_stream_advances(name, cls, kwargs, size):
    x = images(batch=8)
    first, second = cls(**kwargs, seed=11), cls(**kwargs, seed=11)
    a = first(x, training=True)
    torch.testing.assert_close(a, second(x, training=True))
    torch.testing.assert_close(first(x, training=True), second(x, training=True))
    assert not torch.allclose(a, first(x, training=True))


@pytest.mark.parametrize("name,cls,kwargs,size", CASES, ids=IDS)
def test_unseeded_layers_follow_the_global_seed(name, cls, kwargs, size):
    x = images()
    lamina.config.set_random_seed(7)
    a = cls(**kwargs)(x, training=True)
    lamina.config.set_random_seed(7)
    torch.testing.assert_close(cls(**kwargs)(x, training=True), a)


@pytest.mark.parametrize("name,cls,kwargs,size", CASES, ids=IDS)
def test_each_sample_draws_its_own_parameters(name, cls, kwargs, size):
    x = images(batch=1).expand(16, -1, -1, -1)
    out = cls(**kwargs, seed=2)(x, training=True)
    assert any(not torch.allclose(out[0], out[i]) for i in range(1, 16))


@pytest.mark.parametrize("name,cls,kwargs,size", CASES, ids=IDS)
def test_config_round_trip(name, cls, kwargs, size):
    layer = cls(**kwargs, seed=4)
    clone = config_round_trip(layer)
    x = images()
    torch.testing.assert_close(clone(x, training=True), layer(x, training=True))
    torch.testing.assert_close(clone(x), layer(x))


@pytest.mark.parametrize("name,cls,kwargs,size", CASES, ids=IDS)
def test_save_load_in_sequential(tmp_path, name, cls, kwargs, size):
    x = images()
    model = sequential_with_head(cls(**kwargs, seed=6), (6, 7, 2))
    before, after = save_load(tmp_path, model, x)
    torch.testing.assert_close(after, before)
    model = sequential_with_head(cls(**kwargs, seed=6), (6, 7, 2))
    before, after = save_load(tmp_path, model, x, training=True)
    torch.testing.assert_close(after, before)


@pytest.mark.parametrize("name,cls,kwargs,size", CASES, ids=IDS)
def test_gradcheck_float64(name, cls, kwargs, size):
    x = images(batch=2, height=6, width=7, channels=1) * 0.5 + 0.25
    assert gradcheck_fresh(lambda: cls(**kwargs, seed=8, dtype="float64"), x, training=True)


@pytest.mark.parametrize("name,cls,kwargs,size", CASES, ids=IDS)
def test_integer_images_become_floats_and_no_weights(name, cls, kwargs, size):
    layer = cls(**kwargs, seed=0)
    x = (images() * 255).to(torch.uint8)
    assert layer(x, training=True).dtype == torch.float32
    assert layer(x).dtype == torch.float32
    assert layer.count_params() == 0 and layer.get_weights() == []


@pytest.mark.parametrize("name,cls,kwargs,size", CASES, ids=IDS)
@pytest.mark.parametrize("shape", [(6, 7), (1, 2, 6, 7, 2)])
def test_wrong_rank_is_a_shape_error(name, cls, kwargs, size, shape):
    with pytest.raises(ShapeError, match=r"expected an image of rank 3 .* received an input of "
                                         rf"shape \({shape[0]}, "):
        cls(**kwargs)(torch.zeros(shape), training=True)


# ----------------------------------------------------------------------------- geometry


def test_horizontal_flip_moves_a_pixel_to_the_mirrored_column():
    x = torch.zeros(32, 4, 5, 1)
    x[:, 1, 0, 0] = 1.0
    out = layers.RandomFlip("horizontal", seed=0)(x, training=True)
    flipped = out[:, 1, 4, 0] == 1.0
    kept = out[:, 1, 0, 0] == 1.0
    assert bool((flipped ^ kept).all()) and 0 < int(flipped.sum()) < 32
    torch.testing.assert_close(out[flipped], x[flipped].flip(2))


def test_vertical_flip_moves_a_pixel_to_the_mirrored_row():
    x = torch.zeros(32, 4, 5, 1)
    x[:, 0, 2, 0] = 1.0
    out = layers.RandomFlip("vertical", seed=0)(x, training=True)
    flipped = out[:, 3, 2, 0] == 1.0
    assert 0 < int(flipped.sum()) < 32
    torch.testing.assert_close(out[flipped], x[flipped].flip(1))


def test_quarter_turn_cycles_the_corners_counter_clockwise():
    x = torch.zeros(1, 5, 5, 1)
    x[0, 0, 0], x[0, 0, 4], x[0, 4, 4], x[0, 4, 0] = 1.0, 2.0, 3.0, 4.0  # TL, TR, BR, BL
    out = layers.RandomRotation((0.25, 0.25), fill_mode="constant")(x, training=True)[0, ..., 0]
    # Counter-clockwise: top-left goes to bottom-left, top-right to top-left, and so on.
    assert out[4, 0] == pytest.approx(1.0) and out[0, 0] == pytest.approx(2.0)
    assert out[0, 4] == pytest.approx(3.0) and out[4, 4] == pytest.approx(4.0)


@pytest.mark.parametrize("factor,turns", [(0.25, 1), (-0.25, -1), (0.5, 2)])
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_quarter_turns_equal_numpy_rot90(factor, turns, interpolation):
    x = images(batch=3, height=5, width=5, channels=2)
    layer = layers.RandomRotation((factor, factor), interpolation=interpolation)
    expected = np.rot90(x.numpy(), k=turns, axes=(1, 2)).copy()
    np.testing.assert_allclose(layer(x, training=True).numpy(), expected, atol=1e-5)


def test_quarter_turn_of_a_wide_image_fills_the_uncovered_corners():
    x = torch.zeros(1, 3, 5, 1)
    x[0, 1, 3, 0] = 1.0  # one pixel right of the centre (1, 2)
    out = layers.RandomRotation((0.25, 0.25), fill_mode="constant", fill_value=-1.0)(
        x, training=True)[0, ..., 0]
    assert out[0, 2] == pytest.approx(1.0)  # now one pixel above the centre
    for corner in [(0, 0), (0, 4), (2, 0), (2, 4)]:
        assert out[corner] == pytest.approx(-1.0)


AFFINE_CASES = [
    ("rotation_36_degrees", lambda fill: layers.RandomRotation((0.1, 0.1), fill_mode=fill),
     lambda h, w: rotation_matrix(0.2 * np.pi, h, w)),
    ("rotation_minus_70_degrees",
     lambda fill: layers.RandomRotation((-70 / 360, -70 / 360), fill_mode=fill),
     lambda h, w: rotation_matrix(-70 / 180 * np.pi, h, w)),
    ("zoom", lambda fill: layers.RandomZoom((0.3, 0.3), (-0.2, -0.2), fill_mode=fill),
     lambda h, w: zoom_matrix(1.3, 0.8, h, w)),
    ("zoom_keeping_aspect", lambda fill: layers.RandomZoom((-0.4, -0.4), fill_mode=fill),
     lambda h, w: zoom_matrix(0.6, 0.6, h, w)),
    ("translation",
     lambda fill: layers.RandomTranslation((0.15, 0.15), (-0.3, -0.3), fill_mode=fill),
     lambda h, w: translation_matrix(0.15 * h, -0.3 * w)),
]


@pytest.mark.parametrize("name,make,matrix", AFFINE_CASES, ids=[c[0] for c in AFFINE_CASES])
@pytest.mark.parametrize("fill_mode", ["constant", "nearest"])
def test_affine_layers_match_keras_pixel_transform(name, make, matrix, fill_mode):
    x = images(batch=2, height=6, width=9, channels=2, seed=3).double()
    out = make(fill_mode).to(torch.float64)(x, training=True).numpy()
    for i in range(2):
        expected = keras_affine(x[i].numpy(), matrix(6, 9), fill_mode)
        np.testing.assert_allclose(out[i], expected, atol=1e-6)  # angles are drawn in float32


def test_translation_by_k_pixels_moves_a_pixel_by_k():
    x = torch.zeros(2, 8, 8, 1)
    x[:, 1, 4, 0] = 1.0
    # 0.25 of 8 rows down, 0.25 of 8 columns left: 2 pixels each.
    out = layers.RandomTranslation((0.25, 0.25), (-0.25, -0.25), fill_mode="constant")(
        x, training=True)
    assert out[:, ..., 0].nonzero().tolist() == [[0, 3, 2], [1, 3, 2]]


@pytest.mark.parametrize("fill_mode,fill_value,expected", [
    ("reflect", 0.0, [1.0, 0.0, 0.0, 1.0]),   # d c b a | a b c d
    ("wrap", 0.0, [2.0, 3.0, 0.0, 1.0]),      # a b c d | a b c d
    ("nearest", 0.0, [0.0, 0.0, 0.0, 1.0]),   # a a a a | a b c d
    ("constant", 7.0, [7.0, 7.0, 0.0, 1.0]),  # k k k k | a b c d
])
def test_fill_modes_on_a_two_pixel_shift(fill_mode, fill_value, expected):
    row = torch.tensor([0.0, 1.0, 2.0, 3.0]).reshape(1, 1, 4, 1)
    layer = layers.RandomTranslation(0.0, (0.5, 0.5), fill_mode=fill_mode, fill_value=fill_value)
    assert layer(row, training=True).flatten().tolist() == expected


def test_wrap_blends_across_the_seam_with_the_opposite_edge():
    row = torch.tensor([0.0, 1.0, 2.0, 3.0]).reshape(1, 1, 4, 1)
    out = layers.RandomTranslation(0.0, (0.125, 0.125), fill_mode="wrap")(row, training=True)
    # Half a pixel right: column 0 averages the last and the first pixel.
    torch.testing.assert_close(out.flatten(), torch.tensor([1.5, 0.5, 1.5, 2.5]))


def test_zoom_out_and_in_about_the_centre():
    x = torch.zeros(1, 5, 5, 1)
    x[0, 4, 4, 0] = 1.0
    out = layers.RandomZoom((1.0, 1.0), fill_mode="constant")(x, training=True)[0, ..., 0]
    assert out.nonzero().tolist() == [[3, 3]]  # zoom out 2x: offset (2, 2) shows at (1, 1)
    x = torch.zeros(1, 5, 5, 1)
    x[0, 3, 3, 0] = 1.0
    out = layers.RandomZoom((-0.5, -0.5), fill_mode="constant", interpolation="nearest")(
        x, training=True)[0, ..., 0]
    assert out[4, 4] == 1.0 and out[2, 2] == 0.0  # zoom in 2x: offset (1, 1) shows at (2, 2)


# ----------------------------------------------------------------------------- colour


def test_contrast_is_a_per_image_factor_around_the_channel_means():
    x = images(batch=8, channels=3) * 0.5 + 0.25
    out = layers.RandomContrast((0.3, 0.4), value_range=(0, 1), seed=0)(x, training=True)
    mean = x.mean(dim=(1, 2), keepdim=True)
    # The least-squares factor of each image must reproduce the whole image.
    deviation = x - mean
    factor = ((out - mean) * deviation).sum(dim=(1, 2, 3)) / deviation.square().sum(dim=(1, 2, 3))
    torch.testing.assert_close(out, deviation * factor.view(8, 1, 1, 1) + mean)
    assert bool(((factor >= 0.7 - 1e-5) & (factor <= 1.4 + 1e-5)).all())
    assert factor.unique().numel() == 8


def test_contrast_clips_to_the_value_range():
    x = torch.tensor([0.0, 255.0]).reshape(1, 1, 2, 1).expand(4, 1, 2, 1)
    out = layers.RandomContrast((0.0, 1.0), seed=3)(x, training=True)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 255.0


def test_brightness_adds_one_offset_per_image_scaled_to_the_range_and_clips():
    x = images(batch=8, channels=3) * 100 + 50
    out = layers.RandomBrightness((-0.2, 0.3), seed=0)(x, training=True)
    delta = (out - x).flatten(1)
    torch.testing.assert_close(delta, delta[:, :1].expand_as(delta))
    assert bool(((delta >= -0.2 * 255 - 1e-3) & (delta <= 0.3 * 255 + 1e-3)).all())
    white = layers.RandomBrightness((1.0, 1.0))(x, training=True)
    assert torch.equal(white, torch.full_like(x, 255.0))


# ----------------------------------------------------------------------------- crop


def test_random_crop_takes_a_window_per_sample_in_training():
    x = torch.arange(8 * 6 * 7, dtype=torch.float32).reshape(8, 6, 7, 1)
    out = layers.RandomCrop(3, 4, seed=0)(x, training=True)
    starts = set()
    for i in range(8):
        top, left = divmod(int(out[i, 0, 0, 0]) - i * 42, 7)
        assert torch.equal(out[i], x[i, top:top + 3, left:left + 4])
        starts.add((top, left))
    assert len(starts) > 1


def test_random_crop_in_inference_crops_to_aspect_and_resizes():
    x = images(batch=2, height=6, width=8)
    out = layers.RandomCrop(3, 3)(x, training=False)
    window = x[:, :, 1:7].permute(0, 3, 1, 2)  # the centred 6x6 window
    expected = F.interpolate(window, size=(3, 3), mode="bilinear", align_corners=False)
    torch.testing.assert_close(out, expected.permute(0, 2, 3, 1))
    same_size = layers.RandomCrop(6, 8)(x, training=False)
    torch.testing.assert_close(same_size, x)


def test_random_crop_resizes_images_smaller_than_the_target_in_training():
    x = images(batch=2, height=4, width=4)
    out = layers.RandomCrop(6, 6, seed=0)(x, training=True)
    expected = F.interpolate(x.permute(0, 3, 1, 2), size=(6, 6), mode="bilinear",
                             align_corners=False)
    torch.testing.assert_close(out, expected.permute(0, 2, 3, 1))


# ----------------------------------------------------------------------------- bad arguments

BAD_ARGUMENTS = [
    (layers.RandomRotation, dict(factor=1.5), r"`factor` must be a number or a pair .* \[-1, 1\]"
                                              r".*Received: factor=1.5"),
    (layers.RandomRotation, dict(factor=(0.1, 0.2, 0.3)), r"Received: factor=\(0.1, 0.2, 0.3\)"),
    (layers.RandomRotation, dict(factor="big"), r"Received: factor='big'"),
    (layers.RandomRotation, dict(factor=0.1, fill_mode="mirror"),
     r"`fill_mode` must be one of 'reflect', 'wrap', 'constant', 'nearest'. Received: "
     r"fill_mode='mirror'"),
    (layers.RandomRotation, dict(factor=0.1, interpolation="bicubic"),
     r"`interpolation` must be one of 'bilinear', 'nearest'. Received: interpolation='bicubic'"),
    (layers.RandomRotation, dict(factor=0.1, seed=-1), r"`seed` must be None or a non-negative"),
    (layers.RandomTranslation, dict(height_factor=(-1.2, 0.0), width_factor=0.1),
     r"`height_factor` .* in \[-1, 1\] \(a fraction of the height\)"),
    (layers.RandomTranslation, dict(height_factor=0.1, width_factor=2),
     r"Received: width_factor=2"),
    (layers.RandomZoom, dict(height_factor=0.1, width_factor=(0.5, 1.5)),
     r"Received: width_factor=\(0.5, 1.5\)"),
    (layers.RandomContrast, dict(factor=-0.1), r"pair \(lower, upper\) of numbers in \[0, 1\]"),
    (layers.RandomContrast, dict(factor=(0.2, 1.1)), r"Received: factor=\(0.2, 1.1\)"),
    (layers.RandomContrast, dict(factor=0.2, value_range=(1, 0)),
     r"`value_range` must be a pair \[low, high\] with low < high"),
    (layers.RandomBrightness, dict(factor=(0.1, 1.2)), r"Received: factor=\(0.1, 1.2\)"),
    (layers.RandomBrightness, dict(factor=0.1, value_range=(0, 1, 2)),
     r"Received: value_range=\(0, 1, 2\)"),
    (layers.RandomFlip, dict(mode="diagonal"), r"`mode` must be one of 'horizontal', "
                                               r"'vertical', 'horizontal_and_vertical'"),
    (layers.RandomCrop, dict(height=0, width=3), r"`height` must be a positive integer"),
    (layers.RandomCrop, dict(height=3, width=2.5), r"Received: width=2.5"),
]


@pytest.mark.parametrize("cls,kwargs,match", BAD_ARGUMENTS)
def test_bad_arguments_raise_value_errors(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)
