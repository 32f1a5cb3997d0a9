"""Fashion-MNIST (60,000 + 10,000 28x28 grayscale clothing images), downloaded once and cached."""

from __future__ import annotations

import gzip
import os

import numpy as np

from lamina.datasets._download import get_file

ORIGIN_FOLDER = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
# SHA-256 of each file, as Keras pins them.
FILE_HASHES = {
    "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
}
CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)


def load_data(
    *, cache_dir: str | os.PathLike | None = None
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load Fashion-MNIST as Keras does (labels index `CLASS_NAMES`).

    Returns:
        `(x_train, y_train), (x_test, y_test)`: uint8 images `(60000, 28, 28)` and
        `(10000, 28, 28)`, uint8 labels `(60000,)` and `(10000,)` in 0..9.
    """
    paths = {
        name: get_file(
            name, origin=ORIGIN_FOLDER + name, cache_subdir=os.path.join("datasets", "fashion-mnist"),
            file_hash=file_hash, cache_dir=cache_dir,
        )
        for name, file_hash in FILE_HASHES.items()
    }
    y_train = _read_idx(paths["train-labels-idx1-ubyte.gz"], header_bytes=8)
    x_train = _read_idx(paths["train-images-idx3-ubyte.gz"], header_bytes=16).reshape(len(y_train), 28, 28)
    y_test = _read_idx(paths["t10k-labels-idx1-ubyte.gz"], header_bytes=8)
    x_test = _read_idx(paths["t10k-images-idx3-ubyte.gz"], header_bytes=16).reshape(len(y_test), 28, 28)
    return (x_train, y_train), (x_test, y_test)


def _read_idx(path: str, header_bytes: int) -> np.ndarray:
    # IDX files: a big-endian header (magic number and dimensions), then raw uint8 values.
    with gzip.open(path, "rb") as file:
        return np.frombuffer(file.read(), np.uint8, offset=header_bytes)
