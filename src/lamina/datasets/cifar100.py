"""CIFAR-100 (50,000 + 10,000 32x32 colour images in 100 classes / 20 superclasses), cached."""

from __future__ import annotations

import os

import numpy as np

from lamina.datasets._cifar import find_batches_folder, load_batch, to_image_data_format
from lamina.datasets._download import get_file

ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
FILE_HASH = "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"


def load_data(
    label_mode: str = "fine", *, cache_dir: str | os.PathLike | None = None
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load CIFAR-100 as Keras does.

    Args:
        label_mode: 'fine' (100 classes) or 'coarse' (20 superclasses).
        cache_dir: the cache root (keyword-only; see `lamina.utils.get_file`).

    Returns:
        `(x_train, y_train), (x_test, y_test)`: uint8 images `(50000, 32, 32, 3)` and
        `(10000, 32, 32, 3)`, int64 labels `(50000, 1)` and `(10000, 1)`.
    """
    if label_mode not in ("fine", "coarse"):
        raise ValueError(f"`label_mode` must be 'fine' or 'coarse'. Received: label_mode={label_mode!r}.")
    extracted = get_file(
        "cifar-100-python-target", origin=ORIGIN, extract=True, file_hash=FILE_HASH, cache_dir=cache_dir
    )
    folder = find_batches_folder(extracted, "cifar-100-python")
    x_train, y_train = load_batch(os.path.join(folder, "train"), label_key=f"{label_mode}_labels")
    x_test, y_test = load_batch(os.path.join(folder, "test"), label_key=f"{label_mode}_labels")
    return (
        (to_image_data_format(x_train), y_train.astype(np.int64).reshape(-1, 1)),
        (to_image_data_format(x_test), y_test.astype(np.int64).reshape(-1, 1)),
    )
