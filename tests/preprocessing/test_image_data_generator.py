"""`ImageDataGenerator`: geometry on constructed images, normalization formulas, flow iterators."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
from PIL import Image

from lamina._registry import lookup
from lamina.preprocessing.image import (
    ImageDataGenerator,
    apply_affine_transform,
    apply_brightness_shift,
    apply_channel_shift,
)
from lamina.utils import iterate_batches


def dot_image(height: int, width: int, row: int, col: int, channels: int = 1) -> np.ndarray:
    image = np.zeros((height, width, channels), dtype=np.float32)
    image[row, col] = 1.0
    return image


def lit_pixel(image: np.ndarray) -> tuple[int, int]:
    rows, cols = np.nonzero(image[..., 0] > 0.5)
    assert len(rows) == 1, f"expected one lit pixel, found {len(rows)}"
    return int(rows[0]), int(cols[0])


CONSTANT = ImageDataGenerator(fill_mode="constant")


# --------------------------------------------------------------------------- geometry


def test_horizontal_flip_mirrors_columns():
    flipped = CONSTANT.apply_transform(dot_image(5, 7, 1, 2), {"flip_horizontal": True})
    assert lit_pixel(flipped) == (1, 7 - 1 - 2)


def test_vertical_flip_mirrors_rows():
    flipped = CONSTANT.apply_transform(dot_image(5, 7, 1, 2), {"flip_vertical": True})
    assert lit_pixel(flipped) == (5 - 1 - 1, 2)


def test_rotation_by_90_degrees_turns_counter_clockwise():
    image = np.random.default_rng(0).random((5, 5, 3)).astype(np.float32)
    rotated = CONSTANT.apply_transform(image, {"theta": 90})
    np.testing.assert_allclose(rotated, np.rot90(image, 1, axes=(0, 1)), atol=1e-5)
    # Corners: top-left -> bottom-left, top-right -> top-left.
    np.testing.assert_allclose(rotated[4, 0], image[0, 0], atol=1e-5)
    np.testing.assert_allclose(rotated[0, 0], image[0, 4], atol=1e-5)


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"tx": 2}, (1, 3)),  # tx = k moves content k pixels left
        ({"tx": -2}, (1, 7)),
        ({"ty": 1}, (0, 5)),  # ty = k moves content k pixels up
        ({"tx": 3, "ty": -2}, (3, 2)),
    ],
)
def test_shift_by_k_pixels_moves_a_pixel_by_k(params, expected):
    shifted = CONSTANT.apply_transform(dot_image(5, 9, 1, 5), params)
    assert lit_pixel(shifted) == expected


def test_zoom_scales_distances_from_the_centre():
    # Width 9: centre column 4. zx = 2 samples the input at twice the distance, so the pixel two
    # columns right of centre lands one column right of it; rows are untouched.
    zoomed = CONSTANT.apply_transform(dot_image(5, 9, 2, 6), {"zx": 2.0})
    assert lit_pixel(zoomed) == (2, 5)


def test_shear_samples_the_input_at_the_sheared_coordinates():
    # Bilinear interpolation reproduces a linear ramp exactly, so every interior output pixel
    # (u, v) (column, row from the centre) must equal ramp(u - sin(s) v, cos(s) v).
    def ramp(u, v):
        return 100 + u + 10 * v

    rows, cols = np.mgrid[0:7, 0:7]
    image = ramp(cols - 3.0, rows - 3.0)[..., None].astype(np.float64)
    sheared = CONSTANT.apply_transform(image, {"shear": 30})
    s = np.deg2rad(30)
    for v in range(-2, 3):
        for u in range(-1, 2):
            expected = ramp(u - np.sin(s) * v, np.cos(s) * v)
            np.testing.assert_allclose(sheared[v + 3, u + 3, 0], expected, rtol=1e-9)


def test_channels_first_transforms_the_spatial_axes():
    generator = ImageDataGenerator(fill_mode="constant", data_format="channels_first")
    image = dot_image(5, 7, 1, 2).transpose(2, 0, 1)
    # The shift comes first (column 2 -> 1), then the flip (1 -> 7 - 1 - 1).
    flipped = generator.apply_transform(image, {"flip_horizontal": True, "tx": 1})
    assert lit_pixel(flipped.transpose(1, 2, 0)) == (1, 5)


def test_rows_after_channels_are_handled_in_the_function_form():
    image = dot_image(5, 7, 1, 5).transpose(2, 1, 0)  # (channels, width, height)
    shifted = apply_affine_transform(image, tx=2, row_axis=2, col_axis=1, channel_axis=0, fill_mode="constant")
    assert lit_pixel(shifted.transpose(2, 1, 0)) == (1, 3)


@pytest.mark.parametrize(
    "fill_mode, expected_left_column",
    [("constant", [9, 9, 9]), ("nearest", [0, 3, 6]), ("wrap", [2, 5, 8])],
)
def test_fill_modes(fill_mode, expected_left_column):
    image = np.arange(9, dtype=np.float32).reshape(3, 3, 1)
    shifted = ImageDataGenerator(fill_mode=fill_mode, cval=9).apply_transform(image, {"tx": -1})
    np.testing.assert_allclose(shifted[:, 0, 0], expected_left_column)
    np.testing.assert_allclose(shifted[:, 1:, 0], image[:, :2, 0])


def test_random_width_shift_is_horizontal_and_height_shift_vertical():
    image = dot_image(9, 11, 4, 5)
    horizontal = ImageDataGenerator(width_shift_range=[3], fill_mode="constant")
    vertical = ImageDataGenerator(height_shift_range=[2], fill_mode="constant")
    moved_columns, moved_rows = set(), set()
    for seed in range(12):
        row, col = lit_pixel(horizontal.random_transform(image, seed=seed))
        assert row == 4
        moved_columns.add(col - 5)
        row, col = lit_pixel(vertical.random_transform(image, seed=seed))
        assert col == 5
        moved_rows.add(row - 4)
    assert moved_columns == {-3, 3} and moved_rows == {-2, 2}


def test_shift_range_kinds():
    shape = (10, 20, 1)
    fraction = ImageDataGenerator(width_shift_range=0.2, height_shift_range=0.1)
    pixels = ImageDataGenerator(width_shift_range=3)
    for seed in range(20):
        params = fraction.get_random_transform(shape, seed=seed)
        assert abs(params["tx"]) <= 0.2 * 20 and abs(params["ty"]) <= 0.1 * 10
        shift = pixels.get_random_transform(shape, seed=seed)["tx"]
        assert shift == int(shift) and abs(shift) <= 2
    assert fraction.get_random_transform(shape, seed=3) == fraction.get_random_transform(shape, seed=3)


def test_channel_shift_clips_to_the_original_range():
    image = np.array([[[0.0, 100.0], [50.0, 200.0]]], dtype=np.float32)
    np.testing.assert_allclose(apply_channel_shift(image, 30.0, 2), [[[30, 130], [80, 200]]])


def test_brightness_multiplies_within_0_255():
    image = np.array([[[10.0], [200.0]]], dtype=np.float32)
    np.testing.assert_allclose(apply_brightness_shift(image, 0.5, scale=False), [[[5.0], [100.0]]])
    np.testing.assert_allclose(apply_brightness_shift(image, 2.0, scale=False), [[[20.0], [255.0]]])
    # Outside [0, 255] the image is stretched to it, brightened, and mapped back.
    wide = np.array([[[-1.0], [1.0]]], dtype=np.float32)
    np.testing.assert_allclose(apply_brightness_shift(wide, 0.5, scale=False), [[[-1.0], [0.0]]])


# --------------------------------------------------------------------------- standardize and fit


def data(count: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    offsets = np.array([0.0, 50.0, 100.0], dtype=np.float32)
    return (rng.random((count, 4, 5, 3)) * 255 + offsets).astype(np.float32)


def all_batches(iterator) -> np.ndarray:
    return np.concatenate([iterator[i] for i in range(len(iterator))])


def test_rescale_multiplies():
    x = data()
    batches = all_batches(ImageDataGenerator(rescale=1.0 / 255).flow(x, shuffle=False, batch_size=5))
    np.testing.assert_allclose(batches, x / 255, rtol=1e-6)


def test_preprocessing_function_runs_before_rescale():
    x = data()
    generator = ImageDataGenerator(rescale=2.0, preprocessing_function=lambda image: image + 1)
    np.testing.assert_allclose(all_batches(generator.flow(x, shuffle=False)), (x + 1) * 2, rtol=1e-6)


def test_featurewise_normalization_uses_the_statistics_of_fit():
    x = data(count=20)
    generator = ImageDataGenerator(featurewise_center=True, featurewise_std_normalization=True, rescale=0.5)
    generator.fit(x)
    mean = (x * 0.5).mean(axis=(0, 1, 2))
    std = (x * 0.5).std(axis=(0, 1, 2))
    np.testing.assert_allclose(generator.mean.reshape(3), mean, rtol=1e-5)
    np.testing.assert_allclose(generator.std.reshape(3), std, rtol=1e-5)
    out = all_batches(generator.flow(x, shuffle=False, batch_size=6))
    np.testing.assert_allclose(out, (x * 0.5 - mean) / (std + 1e-6), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(0, 1, 2)), 1, atol=1e-4)


def test_std_normalization_implies_centering():
    x = data()
    generator = ImageDataGenerator(featurewise_std_normalization=True)
    generator.fit(x)
    assert generator.mean is not None
    np.testing.assert_allclose(all_batches(generator.flow(x, shuffle=False)).mean(axis=(0, 1, 2)), 0, atol=1e-4)


def test_samplewise_normalization():
    out = all_batches(ImageDataGenerator(samplewise_std_normalization=True).flow(data(), shuffle=False))
    np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(1, 2, 3)), 1, atol=1e-4)


def test_zca_whitening_decorrelates():
    rng = np.random.default_rng(3)
    mixing = rng.normal(size=(16, 16))
    x = (rng.normal(size=(60, 16)) @ mixing).reshape(60, 4, 4, 1).astype(np.float32)
    generator = ImageDataGenerator(zca_whitening=True, zca_epsilon=1e-9)
    generator.fit(x)
    flat = all_batches(generator.flow(x, shuffle=False, batch_size=60)).reshape(60, -1).astype(np.float64)
    np.testing.assert_allclose(flat.T @ flat / 60, np.eye(16), atol=1e-3)


@pytest.mark.parametrize("option", ["featurewise_center", "featurewise_std_normalization", "zca_whitening"])
def test_unfitted_featurewise_statistics_raise(option):
    with pytest.raises(ValueError, match=rf"uses `{option}` but has not been fit .* Call `.fit\(x_train\)`"):
        ImageDataGenerator(**{option: True}).flow(data())[0]


def test_fit_with_augmentation_uses_transformed_copies():
    x = np.zeros((4, 5, 5, 1), dtype=np.float32)
    x[:, :, :2] = 1.0  # left two columns lit: mean 0.4 whatever the flips
    generator = ImageDataGenerator(featurewise_center=True, horizontal_flip=True)
    generator.fit(x, augment=True, rounds=3, seed=0)
    np.testing.assert_allclose(generator.mean.reshape(-1), [0.4], rtol=1e-6)


# --------------------------------------------------------------------------- flow


def labelled(count: int = 10) -> tuple[np.ndarray, np.ndarray]:
    y = np.arange(count)
    x = np.broadcast_to(y[:, None, None, None], (count, 3, 3, 1)).astype(np.float32).copy()
    return x, y


def test_flow_batch_count_shapes_and_alignment():
    x, y = labelled(10)
    iterator = ImageDataGenerator().flow(x, y, batch_size=4, seed=1)
    assert len(iterator) == 3
    batches = [iterator[i] for i in range(3)]
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    assert batches[0][0].shape == (4, 3, 3, 1) and batches[0][0].dtype == np.float32
    labels = np.concatenate([b[1] for b in batches])
    assert sorted(labels.tolist()) == list(range(10))
    for batch_x, batch_y in batches:
        np.testing.assert_array_equal(batch_x[:, 0, 0, 0], batch_y)


def test_flow_reshuffles_every_epoch_reproducibly():
    x, y = labelled(10)
    first = ImageDataGenerator().flow(x, y, batch_size=10, seed=5)
    second = ImageDataGenerator().flow(x, y, batch_size=10, seed=5)
    epoch_0 = first[0][1]
    np.testing.assert_array_equal(epoch_0, second[0][1])
    first.on_epoch_end()
    assert not np.array_equal(first[0][1], epoch_0)
    unshuffled = ImageDataGenerator().flow(x, y, batch_size=10, shuffle=False)
    np.testing.assert_array_equal(unshuffled[0][1], y)


def test_flow_without_labels_and_with_sample_weights():
    x, y = labelled(6)
    assert ImageDataGenerator().flow(x, batch_size=4, shuffle=False)[0].shape == (4, 3, 3, 1)
    batch_x, batch_y, weights = ImageDataGenerator().flow(x, y, sample_weight=y * 0.5, batch_size=4, shuffle=False)[1]
    np.testing.assert_array_equal(weights, [2.0, 2.5])


def test_flow_with_extra_arrays():
    x, y = labelled(4)
    inputs, labels = ImageDataGenerator().flow((x, y * 10), y, batch_size=4, shuffle=False)[0]
    np.testing.assert_array_equal(inputs[1], [0, 10, 20, 30])


def test_next_walks_batches_and_wraps_around():
    x, y = labelled(5)
    iterator = ImageDataGenerator().flow(x, y, batch_size=2, shuffle=False)
    seen = [next(iterator)[1].tolist() for _ in range(4)]
    assert seen == [[0, 1], [2, 3], [4], [0, 1]]


def test_augmented_batches_do_not_depend_on_the_worker_that_builds_them():
    x = data(count=16)
    generator = ImageDataGenerator(rotation_range=30, horizontal_flip=True, zoom_range=0.2)
    iterator = generator.flow(x, batch_size=4, seed=11)
    direct = [iterator[i] for i in range(len(iterator))]
    iterator.workers = 3
    prefetched = list(iterate_batches(iterator))
    for expected, actual in zip(direct, prefetched, strict=True):
        np.testing.assert_array_equal(expected, actual)
    assert iterator.epoch == 1  # iterate_batches ended the epoch


def test_iterators_pickle_for_worker_processes(tmp_path):
    write_tree(tmp_path, {"cats": 2, "dogs": 1})
    generator = ImageDataGenerator(horizontal_flip=True, rotation_range=10)
    for iterator in (generator.flow(data(count=5), seed=2), generator.flow_from_directory(tmp_path, target_size=(4, 6), seed=2)):
        copy = pickle.loads(pickle.dumps(iterator))
        np.testing.assert_array_equal(np.asarray(copy[0][0]), np.asarray(iterator[0][0]))


def test_subset_split_takes_validation_from_the_front():
    x, y = labelled(10)
    y = y % 2
    generator = ImageDataGenerator(validation_split=0.2)
    validation = generator.flow(x, y, batch_size=10, shuffle=False, subset="validation")
    training = generator.flow(x, y, batch_size=10, shuffle=False, subset="training")
    np.testing.assert_array_equal(validation[0][0][:, 0, 0, 0], [0, 1])
    assert len(training[0][1]) == 8
    with pytest.raises(ValueError, match="hold different classes after the split"):
        generator.flow(x, np.sort(y), subset="validation")


def test_flow_of_mixed_size_images_says_to_resize():
    images = [np.zeros((8, 8, 3)), np.zeros((8, 8, 3)), np.zeros((10, 8, 3))]
    with pytest.raises(ValueError, match=r"different shapes: \(8, 8, 3\) at position 0 and \(10, 8, 3\) at position 2"):
        ImageDataGenerator().flow(images)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: ImageDataGenerator().flow(np.zeros((4, 5, 5))), r"rank 4 .* add a channel axis: x\[..., None\]"),
        (lambda: ImageDataGenerator().flow(np.zeros((4, 5, 5, 1)), np.zeros(3)), "must have the same length"),
        (lambda: ImageDataGenerator().flow(np.zeros((4, 5, 5, 1)), batch_size=0), "`batch_size` must be a positive integer"),
        (lambda: ImageDataGenerator().flow(np.zeros((4, 5, 5, 1)), subset="validation"), r"needs a validation split"),
        (lambda: ImageDataGenerator().fit(np.zeros((5, 5, 1))), "`fit` expects a batch of images of rank 4"),
        (lambda: ImageDataGenerator(fill_mode="mirror"), "`fill_mode` must be one of"),
        (lambda: ImageDataGenerator(zoom_range=1.5), "`zoom_range` must be a number in"),
        (lambda: ImageDataGenerator(zoom_range=(1.2, 0.8)), "`zoom_range` must be a pair of numbers"),
        (lambda: ImageDataGenerator(brightness_range=0.5), "`brightness_range` must be a pair"),
        (lambda: ImageDataGenerator(validation_split=1.0), r"`validation_split` must be a float in \[0, 1\)"),
        (lambda: ImageDataGenerator(width_shift_range=-0.1), "`width_shift_range` must be a non-negative number"),
        (lambda: ImageDataGenerator(rotation_range=-5), "`rotation_range` must be a non-negative number"),
        (lambda: ImageDataGenerator(interpolation_order=7), r"`interpolation_order` must be 0 \(nearest\) or 1 \(bilinear\).*Received: interpolation_order=7"),
        (lambda: ImageDataGenerator(interpolation_order=3), "spline orders 2 to 5 are not offered"),
        (lambda: apply_affine_transform(np.zeros((4, 4, 1)), theta=10, order=2), "Received: order=2"),
        (lambda: ImageDataGenerator(data_format="nhwc"), "`data_format` must be 'channels_last' or 'channels_first'"),
        (lambda: apply_affine_transform(np.zeros((4, 4)), theta=10), "rank 3"),
    ],
)
def test_bad_input_messages(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_preprocessing_function_must_be_callable():
    with pytest.raises(TypeError, match="`preprocessing_function` must be a function"):
        ImageDataGenerator(preprocessing_function="normalize")


def test_config_round_trip_and_registry():
    generator = ImageDataGenerator(rotation_range=20, width_shift_range=0.2, height_shift_range=0.2, horizontal_flip=True, rescale=1 / 255)
    config = generator.get_config()
    assert ImageDataGenerator.from_config(config).get_config() == config
    assert config["rotation_range"] == 20 and config["data_format"] == "channels_last" and config["dtype"] == "float32"
    assert lookup("preprocessing", "ImageDataGenerator") is ImageDataGenerator


def test_cheat_sheet_snippet():
    from lamina.preprocessing.image import ImageDataGenerator

    train_datagen = ImageDataGenerator(
        rescale=1./255,
        rotation_range=20,
        width_shift_range=0.2,
        height_shift_range=0.2,
        horizontal_flip=True
    )
    x = data(count=8)
    batch_x, batch_y = train_datagen.flow(x, np.arange(8), batch_size=4)[0]
    assert batch_x.shape == (4, 4, 5, 3) and batch_y.shape == (4,)
    assert 0 <= batch_x.min() and batch_x.max() <= (x.max() / 255) + 1e-6


# --------------------------------------------------------------------------- flow_from_directory


COLORS = {"cats": (255, 0, 0), "dogs": (0, 0, 255), "fish": (0, 255, 0)}


def write_tree(root, counts: dict[str, int], size=(4, 6)) -> None:
    """`counts[class]` solid-colour PNGs of (height, width) `size` per class, plus a stray file."""
    for name, count in counts.items():
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (size[1], size[0]), COLORS[name]).save(folder / f"{i}.png")
        (folder / "notes.txt").write_text("not an image")


def test_flow_from_directory_reads_classes_and_pixels(tmp_path, capsys):
    write_tree(tmp_path, {"cats": 3, "dogs": 2})
    iterator = ImageDataGenerator(rescale=1 / 255).flow_from_directory(
        tmp_path, target_size=(8, 8), batch_size=2, shuffle=False
    )
    assert "Found 5 images belonging to 2 classes." in capsys.readouterr().out
    assert iterator.class_indices == {"cats": 0, "dogs": 1}
    np.testing.assert_array_equal(iterator.classes, [0, 0, 0, 1, 1])
    assert iterator.filenames[0] == os.path.join("cats", "0.png")
    assert len(iterator) == 3
    batch_x, batch_y = iterator[2]
    assert batch_x.shape == (1, 8, 8, 3)
    np.testing.assert_allclose(batch_x[0, 3, 3], [0, 0, 1])  # a blue dog
    np.testing.assert_array_equal(batch_y, [[0, 1]])


@pytest.mark.parametrize(
    "class_mode, expected_first_labels",
    [("sparse", [0.0, 0.0]), ("binary", [0.0, 0.0]), ("categorical", [[1, 0], [1, 0]])],
)
def test_flow_from_directory_class_modes(tmp_path, class_mode, expected_first_labels):
    write_tree(tmp_path, {"cats": 2, "dogs": 2})
    iterator = ImageDataGenerator().flow_from_directory(tmp_path, target_size=(4, 6), class_mode=class_mode, batch_size=2, shuffle=False)
    labels = iterator[0][1]
    assert labels.dtype == np.float32
    np.testing.assert_array_equal(labels, expected_first_labels)


def test_flow_from_directory_input_and_no_labels(tmp_path):
    write_tree(tmp_path, {"cats": 2, "dogs": 1})
    generator = ImageDataGenerator()
    batch_x, target = generator.flow_from_directory(tmp_path, target_size=(4, 6), class_mode="input", shuffle=False)[0]
    np.testing.assert_array_equal(batch_x, target)
    only_x = generator.flow_from_directory(tmp_path, target_size=(4, 6), class_mode=None, color_mode="grayscale")[0]
    assert only_x.shape == (3, 4, 6, 1)


def test_flow_from_directory_native_size_and_subsets(tmp_path):
    write_tree(tmp_path, {"cats": 3, "dogs": 2}, size=(4, 6))
    generator = ImageDataGenerator(validation_split=0.5)
    training = generator.flow_from_directory(tmp_path, target_size=None, subset="training", shuffle=False)
    validation = generator.flow_from_directory(tmp_path, target_size=None, subset="validation", shuffle=False)
    assert training.image_shape == (4, 6, 3)
    # Each class is split on its own: cats 1 validation / 2 training, dogs 1 / 1.
    np.testing.assert_array_equal(validation.classes, [0, 1])
    np.testing.assert_array_equal(training.classes, [0, 0, 1])
    assert not set(training.filenames) & set(validation.filenames)


def test_flow_from_directory_mixed_sizes_without_target_size(tmp_path):
    write_tree(tmp_path, {"cats": 1})
    Image.new("RGB", (9, 5)).save(tmp_path / "cats" / "big.png")
    with pytest.raises(ValueError, match=r"Images have different sizes and no `target_size` was given: .* Pass target_size=\(height, width\)"):
        ImageDataGenerator().flow_from_directory(tmp_path, target_size=None)


@pytest.mark.parametrize(
    "setup, kwargs, error, message",
    [
        (lambda root: None, {}, ValueError, "has no subdirectories"),
        (lambda root: (root / "cats").mkdir(), {}, ValueError, "No images found in the class subdirectories"),
        (lambda root: write_tree(root, {"cats": 1, "dogs": 1, "fish": 1}), {"class_mode": "binary"}, ValueError, "needs exactly 2 classes; found 3"),
        (lambda root: write_tree(root, {"cats": 1}), {"classes": ["cats", "birds"]}, ValueError, r"missing \['birds'\]"),
        (lambda root: write_tree(root, {"cats": 1}), {"class_mode": "multi"}, ValueError, "Invalid class_mode 'multi'"),
        (lambda root: write_tree(root, {"cats": 1}), {"color_mode": "cmyk"}, ValueError, "`color_mode` must be 'grayscale', 'rgb' or 'rgba'"),
    ],
)
def test_flow_from_directory_bad_input(tmp_path, setup, kwargs, error, message):
    setup(tmp_path)
    with pytest.raises(error, match=message):
        ImageDataGenerator().flow_from_directory(tmp_path, **kwargs)


def test_flow_from_directory_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageDataGenerator().flow_from_directory(tmp_path / "nope")


@pytest.mark.parametrize("fill_mode, scipy_mode", [
    ("constant", "constant"), ("nearest", "nearest"), ("reflect", "reflect"),
    ("wrap", "grid-wrap")])
@pytest.mark.parametrize("order", [0, 1])
@pytest.mark.parametrize("axes", [(0, 1, 2), (1, 2, 0), (1, 0, 2)])
def test_affine_transform_matches_scipy_ndimage(fill_mode, scipy_mode, order, axes):
    # SciPy (a test-only oracle: Lamina resamples with torch) on the same centred matrix.
    ndimage = pytest.importorskip("scipy.ndimage")
    row_axis, col_axis, channel_axis = axes
    rng = np.random.default_rng(4)
    image = rng.uniform(0, 255, size=(7, 9, 2))  # (rows, columns, channels)
    x = np.transpose(image, np.argsort((row_axis, col_axis, channel_axis)))
    kwargs = dict(theta=23.0, tx=1.5, ty=-2.25, shear=11.0, zx=0.8, zy=1.3)
    got = apply_affine_transform(x, **kwargs, row_axis=row_axis, col_axis=col_axis,
                                 channel_axis=channel_axis, fill_mode=fill_mode, cval=5.0,
                                 order=order)
    got = np.transpose(got, (row_axis, col_axis, channel_axis))
    t, s = np.deg2rad(kwargs["theta"]), np.deg2rad(kwargs["shear"])
    # (column, row) matrix of the docstring, then in SciPy's (row, column) order.
    matrix = (np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
              @ np.array([[1, 0, 1.5], [0, 1, -2.25], [0, 0, 1]])
              @ np.array([[1, -np.sin(s), 0], [0, np.cos(s), 0], [0, 0, 1]])
              @ np.diag([0.8, 1.3, 1]))
    swap = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]])
    matrix = swap @ matrix @ swap
    center = np.array([3.0, 4.0])
    offset = center + matrix[:2, 2] - matrix[:2, :2] @ center
    expected = np.stack([ndimage.affine_transform(image[..., c], matrix[:2, :2], offset,
                                                  order=order, mode=scipy_mode, cval=5.0)
                         for c in range(2)], -1)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-3)


def test_nearest_affine_transform_rounds_halfway_points_up_as_scipy():
    image = np.arange(12.0).reshape(3, 4, 1)
    shifted = apply_affine_transform(image, tx=0.5, row_axis=0, col_axis=1, channel_axis=2,
                                     order=0, fill_mode="nearest")
    # Column c samples c + 0.5, which rounds up to c + 1 (the last column clamps).
    np.testing.assert_array_equal(shifted[..., 0], image[:, [1, 2, 3, 3], 0])
