"""scikit-learn's bundled 8x8 handwritten digits: lamina's default real data set (works offline)."""

from __future__ import annotations

import numpy as np


def load_data(
    test_split: float = 0.2, seed: int = 113
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load the 1,797 digit images, shuffled with `seed` and split like Keras's `load_data`.

    Returns:
        `(x_train, y_train), (x_test, y_test)`: images as float32 `(n, 8, 8, 1)` with values
        in [0, 1] (the 0..16 ink counts divided by 16), labels as int64 `(n,)` in 0..9.
        The test part is the last `int(n * test_split)` samples of the shuffle.

    >>> (x_train, y_train), (x_test, y_test) = load_data()
    >>> x_train.shape, x_test.shape
    ((1438, 8, 8, 1), (359, 8, 8, 1))
    """
    if isinstance(test_split, bool) or not isinstance(test_split, (int, float)) or not 0 <= test_split < 1:
        raise ValueError(
            f"`test_split` must be a fraction in [0, 1). Received: test_split={test_split!r}."
        )
    from sklearn.datasets import load_digits  # deferred: importing scikit-learn takes a while

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[..., np.newaxis]
    labels = digits.target.astype(np.int64)
    order = np.random.RandomState(seed).permutation(len(labels))
    images, labels = images[order], labels[order]
    cut = len(labels) - int(len(labels) * test_split)
    return (images[:cut], labels[:cut]), (images[cut:], labels[cut:])
