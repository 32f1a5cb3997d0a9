"""`image_dataset_from_directory`, `text_dataset_from_directory` and `split_dataset`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lamina.utils import (
    Dataset,
    StringTensor,
    image_dataset_from_directory,
    split_dataset,
    text_dataset_from_directory,
)

# Each class's images are a solid grey level, so a pixel tells which class an image came from.
LEVELS = {"ants": 10, "bees": 20, "cats": 30}


def write_images(root, counts: dict[str, int], size=(6, 4)) -> None:
    for name, count in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (size[1], size[0]), (LEVELS[name],) * 3).save(root / name / f"{i}.png")


def first(dataset):
    return next(iter(dataset))


def test_batches_shapes_dtypes_and_class_names(tmp_path, capsys):
    write_images(tmp_path, {"ants": 3, "bees": 2})
    dataset = image_dataset_from_directory(tmp_path, image_size=(8, 5), batch_size=2, seed=1)
    assert "Found 5 files belonging to 2 classes." in capsys.readouterr().out
    assert isinstance(dataset, Dataset) and len(dataset) == 3
    assert dataset.class_names == ["ants", "bees"]
    assert len(dataset.file_paths) == 5
    images, labels = first(dataset)
    assert images.shape == (2, 8, 5, 3) and images.dtype == torch.float32
    assert labels.shape == (2,) and labels.dtype == torch.int32
    for images, labels in dataset:
        np.testing.assert_array_equal(images[:, 0, 0, 0], [10 if label == 0 else 20 for label in labels])
    assert sorted(np.concatenate([b[1].numpy() for b in dataset]).tolist()) == [0, 0, 0, 1, 1]


@pytest.mark.parametrize(
    "label_mode, expected",
    [
        ("int", np.array([0, 0, 0, 1, 1], dtype=np.int32)),
        ("categorical", np.array([[1, 0], [1, 0], [1, 0], [0, 1], [0, 1]], dtype=np.float32)),
        ("binary", np.array([[0], [0], [0], [1], [1]], dtype=np.float32)),
    ],
)
def test_label_modes(tmp_path, label_mode, expected):
    write_images(tmp_path, {"ants": 3, "bees": 2})
    dataset = image_dataset_from_directory(tmp_path, label_mode=label_mode, image_size=(6, 4), batch_size=5, shuffle=False)
    _, labels = first(dataset)
    assert labels.numpy().dtype == expected.dtype
    np.testing.assert_array_equal(labels, expected)


def test_unlabelled_and_explicit_labels(tmp_path):
    write_images(tmp_path, {"ants": 2, "bees": 1})
    images = first(image_dataset_from_directory(tmp_path, labels=None, image_size=(6, 4), shuffle=False))
    assert isinstance(images, torch.Tensor) and images.shape == (3, 6, 4, 3)
    for given in ([5, 6, 7], np.array([5, 6, 7])):
        _, labels = first(image_dataset_from_directory(tmp_path, labels=given, image_size=(6, 4), shuffle=False))
        assert labels.tolist() == [5, 6, 7]


def test_unbatched_items_are_single_samples(tmp_path):
    write_images(tmp_path, {"ants": 2})
    dataset = image_dataset_from_directory(tmp_path, batch_size=None, image_size=(6, 4), shuffle=False)
    image, label = list(dataset)[1]
    assert len(dataset) == 2 and image.shape == (6, 4, 3) and int(label) == 0


def test_color_modes_and_channels_first(tmp_path):
    write_images(tmp_path, {"ants": 1})
    gray = first(image_dataset_from_directory(tmp_path, color_mode="grayscale", image_size=(6, 4)))[0]
    assert gray.shape == (1, 6, 4, 1)
    channels_first = first(image_dataset_from_directory(tmp_path, data_format="channels_first", image_size=(6, 4)))[0]
    assert channels_first.shape == (1, 3, 6, 4)


def test_crop_and_pad_to_aspect_ratio(tmp_path):
    (tmp_path / "ants").mkdir()
    wide = np.zeros((2, 6, 3), dtype=np.uint8)
    wide[:, 2:4] = 200  # a bright centre band
    Image.fromarray(wide).save(tmp_path / "ants" / "wide.png")
    cropped = first(image_dataset_from_directory(tmp_path, image_size=(2, 2), crop_to_aspect_ratio=True, interpolation="nearest"))[0]
    np.testing.assert_array_equal(cropped, 200)
    padded = first(image_dataset_from_directory(tmp_path, image_size=(6, 6), pad_to_aspect_ratio=True, interpolation="nearest"))[0]
    # The 2x6 image fills the middle rows 2..3; rows above and below are zero padding.
    np.testing.assert_array_equal(padded[0, :2], 0)
    np.testing.assert_array_equal(padded[0, 2:4, 2:4], 200)


def test_validation_split_subsets_are_disjoint_and_cover_everything(tmp_path):
    write_images(tmp_path, {"ants": 5, "bees": 5})
    kwargs = dict(validation_split=0.3, seed=4, image_size=(6, 4))
    training = image_dataset_from_directory(tmp_path, subset="training", **kwargs)
    validation = image_dataset_from_directory(tmp_path, subset="validation", **kwargs)
    assert len(training.file_paths) == 7 and len(validation.file_paths) == 3
    assert sorted(training.file_paths + validation.file_paths) == sorted(
        str(path) for path in tmp_path.glob("*/*.png")
    )
    both = image_dataset_from_directory(tmp_path, subset="both", **kwargs)
    assert both[0].file_paths == training.file_paths and both[1].file_paths == validation.file_paths


def test_shuffled_order_changes_per_epoch_but_covers_every_file(tmp_path):
    write_images(tmp_path, {"ants": 6, "bees": 6})
    dataset = image_dataset_from_directory(tmp_path, image_size=(6, 4), batch_size=12, seed=3, verbose=False)
    epoch_0 = first(dataset)[1].tolist()
    epoch_1 = first(dataset)[1].tolist()
    assert sorted(epoch_0) == sorted(epoch_1) == [0] * 6 + [1] * 6
    assert epoch_0 != epoch_1


def test_text_dataset(tmp_path):
    for name, texts in {"neg": ["bad", "awful film"], "pos": ["great"]}.items():
        (tmp_path / name).mkdir()
        for i, text in enumerate(texts):
            (tmp_path / name / f"{i}.txt").write_text(text, encoding="utf-8")
    dataset = text_dataset_from_directory(tmp_path, batch_size=3, shuffle=False, max_length=4)
    texts, labels = first(dataset)
    assert isinstance(texts, StringTensor) and texts.numpy().tolist() == ["bad", "awfu", "grea"]
    assert labels.tolist() == [0, 0, 1] and dataset.class_names == ["neg", "pos"]


@pytest.mark.parametrize(
    "setup, kwargs, error, message",
    [
        (lambda root: None, {}, ValueError, "has no subdirectories"),
        (lambda root: (root / "ants").mkdir(), {}, ValueError, r"No files found in directory .* Allowed formats: .bmp, .gif"),
        (lambda root: write_images(root, {"ants": 1, "bees": 1, "cats": 1}), {"label_mode": "binary"}, ValueError, "label_mode='binary' needs exactly 2 classes"),
        (lambda root: write_images(root, {"ants": 2}), {"validation_split": 0.5, "subset": "training"}, ValueError, "pass a `seed`"),
        (lambda root: write_images(root, {"ants": 2}), {"validation_split": 0.5}, ValueError, "`subset` and `validation_split` go together"),
        (lambda root: write_images(root, {"ants": 2}), {"validation_split": 1.5, "subset": "training", "seed": 1}, ValueError, "strictly between 0 and 1"),
        (lambda root: write_images(root, {"ants": 1}), {"validation_split": 0.4, "subset": "validation", "seed": 1}, ValueError, "No files left for the validation subset"),
        (lambda root: write_images(root, {"ants": 2}), {"labels": [0]}, ValueError, "`labels` has 1 entries but 2 matching files"),
        (lambda root: write_images(root, {"ants": 2}), {"labels": "folders"}, ValueError, "`labels` must be 'inferred', None"),
        (lambda root: write_images(root, {"ants": 2}), {"class_names": ["wasps"]}, ValueError, r"missing \['wasps'\]"),
        (lambda root: write_images(root, {"ants": 2}), {"labels": None, "class_names": ["ants"]}, ValueError, "`class_names` only applies with labels='inferred'"),
        (lambda root: write_images(root, {"ants": 2}), {"label_mode": "sparse"}, ValueError, "`label_mode` must be 'int', 'categorical', 'binary' or None"),
        (lambda root: write_images(root, {"ants": 2}), {"interpolation": "gaussian"}, ValueError, "Invalid interpolation 'gaussian'"),
        (lambda root: write_images(root, {"ants": 2}), {"batch_size": 0}, ValueError, "`batch_size` must be a positive integer or None"),
        (lambda root: write_images(root, {"ants": 2}), {"crop_to_aspect_ratio": True, "pad_to_aspect_ratio": True}, ValueError, "only one of"),
    ],
)
def test_bad_input_messages(tmp_path, setup, kwargs, error, message):
    setup(tmp_path)
    with pytest.raises(error, match=message):
        image_dataset_from_directory(tmp_path, **kwargs)


def test_mixed_sizes_without_image_size(tmp_path):
    write_images(tmp_path, {"ants": 1}, size=(6, 4))
    write_images(tmp_path, {"bees": 1}, size=(5, 5))
    with pytest.raises(ValueError, match=r"Images have different sizes and no `image_size` was given: .* is 6x4 .* is 5x5"):
        image_dataset_from_directory(tmp_path, image_size=None)
    assert first(image_dataset_from_directory(tmp_path / "ants", labels=None, image_size=None)).shape == (1, 6, 4, 3)


def test_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        image_dataset_from_directory(tmp_path / "nope")
    (tmp_path / "file.png").write_bytes(b"")
    with pytest.raises(NotADirectoryError, match="is a file"):
        image_dataset_from_directory(tmp_path / "file.png")


# --------------------------------------------------------------------------- split_dataset


@pytest.mark.parametrize(
    "left_size, right_size, expected",
    [(0.8, None, (8, 2)), (None, 3, (7, 3)), (4, 0.5, (4, 5)), (0.25, 0.25, (2, 2))],
)
def test_split_sizes(left_size, right_size, expected):
    left, right = split_dataset(np.arange(10), left_size=left_size, right_size=right_size)
    assert (len(left), len(right)) == expected
    np.testing.assert_array_equal(left, np.arange(expected[0]))
    np.testing.assert_array_equal(right, np.arange(10 - expected[1], 10))


def test_split_keeps_structure_and_pairs_samples():
    x, y = np.arange(20).reshape(10, 2), np.arange(10)
    (x_left, y_left), (x_right, y_right) = split_dataset((x, y), left_size=0.6, shuffle=True, seed=0)
    np.testing.assert_array_equal(x_left[:, 0] // 2, y_left)
    assert sorted(np.concatenate([y_left, y_right]).tolist()) == list(range(10))
    left, right = split_dataset({"a": torch.arange(5), "b": np.arange(5)}, right_size=2)
    assert isinstance(left["a"], torch.Tensor) and left["b"].tolist() == [0, 1, 2]


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({}, ValueError, "Pass at least one of `left_size` and `right_size`"),
        ({"left_size": 1.5}, ValueError, r"A float `left_size` must lie in \(0, 1\)"),
        ({"left_size": 10}, ValueError, r"An integer `left_size` must lie in \[1, 9\]"),
        ({"left_size": 6, "right_size": 6}, ValueError, "exceeds the dataset's 10"),
        ({"left_size": "half"}, TypeError, "`left_size` must be an int, a float or None"),
        ({"left_size": 0.01}, ValueError, "leave one side empty"),
    ],
)
def test_split_bad_sizes(kwargs, error, message):
    with pytest.raises(error, match=message):
        split_dataset(np.arange(10), **kwargs)


def test_split_mismatched_lengths_and_scalars():
    with pytest.raises(ValueError, match=r"must have the same length \(samples\). Received lengths \[3, 4\]"):
        split_dataset((np.arange(3), np.arange(4)), left_size=1)
    with pytest.raises(ValueError, match=r"got a scalar. Pass a list of samples as one array"):
        split_dataset([1, 2, 3], left_size=1)
