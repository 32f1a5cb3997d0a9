"""Reading CIFAR's python-pickle batch files (shared by cifar10 and cifar100)."""

from __future__ import annotations

import os

import numpy as np

from lamina import config
from lamina.datasets._safe_pickle import load_pickle


def load_batch(path: str, label_key: str = "labels") -> tuple[np.ndarray, np.ndarray]:
    """`(images (n, 3, 32, 32) uint8, labels (n,))` from one batch file."""
    with open(path, "rb") as file:
        # The files were pickled by Python 2: keys and strings come back as bytes.
        batch = {key.decode("utf8"): value for key, value in load_pickle(file, encoding="bytes").items()}
    images = np.asarray(batch["data"], dtype=np.uint8)
    return images.reshape(len(images), 3, 32, 32), np.asarray(batch[label_key])


def find_batches_folder(extracted: str, name: str) -> str:
    """The folder called `name` inside an extracted archive (or the extracted folder itself)."""
    nested = os.path.join(extracted, name)
    return nested if os.path.isdir(nested) else extracted


def to_image_data_format(images: np.ndarray) -> np.ndarray:
    """CIFAR's (n, 3, 32, 32) images in the configured image data format."""
    if config.image_data_format() == "channels_last":
        return images.transpose(0, 2, 3, 1)
    return images
