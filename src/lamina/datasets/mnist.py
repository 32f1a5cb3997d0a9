"""MNIST handwritten digits (60,000 + 10,000 28x28 grayscale images), downloaded once and cached."""

from __future__ import annotations

import os

import numpy as np

from lamina.datasets._download import get_file
from lamina.datasets._safe_pickle import load_npz

ORIGIN_FOLDER = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
FILE_HASH = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"


def load_data(
    path: str = "mnist.npz", *, cache_dir: str | os.PathLike | None = None
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load MNIST as Keras does.

    Args:
        path: the file's name in the cache.
        cache_dir: the cache root (keyword-only; see `lamina.utils.get_file`).

    Returns:
        `(x_train, y_train), (x_test, y_test)`: uint8 images `(60000, 28, 28)` and
        `(10000, 28, 28)` in 0..255, uint8 labels `(60000,)` and `(10000,)` in 0..9.
    """
    local = get_file(path, origin=ORIGIN_FOLDER + "mnist.npz", file_hash=FILE_HASH, cache_dir=cache_dir)
    arrays = load_npz(local)
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])
