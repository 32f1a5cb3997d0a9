"""CIFAR-10 (50,000 + 10,000 32x32 colour images in 10 classes), downloaded once and cached."""

from __future__ import annotations

import os

import numpy as np

from lamina.datasets._cifar import find_batches_folder, load_batch, to_image_data_format
from lamina.datasets._download import get_file

ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
FILE_HASH = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def load_data(
    *, cache_dir: str | os.PathLike | None = None
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load CIFAR-10 as Keras does (labels index `CLASS_NAMES`).

    Returns:
        `(x_train, y_train), (x_test, y_test)`: uint8 images `(50000, 32, 32, 3)` and
        `(10000, 32, 32, 3)` (channels first under `image_data_format() == 'channels_first'`),
        uint8 labels `(50000, 1)` and `(10000, 1)` in 0..9.
    """
    extracted = get_file("cifar-10-batches-py", origin=ORIGIN, extract=True, file_hash=FILE_HASH, cache_dir=cache_dir)
    folder = find_batches_folder(extracted, "cifar-10-batches-py")
    train = [load_batch(os.path.join(folder, f"data_batch_{i}")) for i in range(1, 6)]
    x_train = np.concatenate([images for images, _ in train])
    y_train = np.concatenate([labels for _, labels in train]).astype(np.uint8)
    x_test, y_test = load_batch(os.path.join(folder, "test_batch"))
    return (
        (to_image_data_format(x_train), y_train.reshape(-1, 1)),
        (to_image_data_format(x_test), y_test.astype(np.uint8).reshape(-1, 1)),
    )
