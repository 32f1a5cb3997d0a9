"""`to_categorical` and `normalize` on NumPy and torch inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lamina.errors import DataError
from lamina.utils import normalize, to_categorical

CATEGORICAL_CASES = [
    # (id, labels, num_classes, expected)
    ("list", [0, 2, 1], None, [[1, 0, 0], [0, 0, 1], [0, 1, 0]]),
    ("explicit-classes", [1], 4, [[0, 1, 0, 0]]),
    ("column-vector", np.array([[1], [0]]), None, [[0, 1], [1, 0]]),
    ("matrix", [[0, 1], [1, 1]], 2, [[[1, 0], [0, 1]], [[0, 1], [0, 1]]]),
    ("integral-floats", np.array([1.0, 0.0]), None, [[0, 1], [1, 0]]),
    ("uint8", np.array([2], dtype=np.uint8), 3, [[0, 0, 1]]),
]


@pytest.mark.parametrize(
    "labels, num_classes, expected", [c[1:] for c in CATEGORICAL_CASES], ids=[c[0] for c in CATEGORICAL_CASES]
)
def test_to_categorical_numpy(labels, num_classes, expected):
    one_hot = to_categorical(labels, num_classes)
    assert isinstance(one_hot, np.ndarray) and one_hot.dtype == np.float32
    np.testing.assert_array_equal(one_hot, expected)


@pytest.mark.parametrize(
    "labels, num_classes, expected", [c[1:] for c in CATEGORICAL_CASES[:4]], ids=[c[0] for c in CATEGORICAL_CASES[:4]]
)
def test_to_categorical_torch_matches_numpy(labels, num_classes, expected):
    one_hot = to_categorical(torch.as_tensor(np.asarray(labels)), num_classes)
    assert isinstance(one_hot, torch.Tensor) and one_hot.dtype == torch.float32
    np.testing.assert_array_equal(one_hot.numpy(), expected)


@pytest.mark.parametrize(
    "labels, num_classes, error, message",
    [
        ([0, 3], 3, DataError, r"Class label 3 is outside \[0, 3\) for num_classes=3"),
        ([-1, 0], None, DataError, r"Class label -1 is outside"),
        ([0.5, 1.0], None, DataError, "expects integer class labels; received non-integer values such as \\[0.5\\]"),
        (["a"], None, TypeError, "expects integer class labels. Received an array of dtype <U1"),
        ([0], 0, ValueError, "`num_classes` must be a positive integer or None. Received: num_classes=0"),
        (torch.tensor([0.0]), None, TypeError, "Received a tensor of dtype torch.float32"),
    ],
)
def test_to_categorical_bad_labels(labels, num_classes, error, message):
    with pytest.raises(error, match=message):
        to_categorical(labels, num_classes)


def test_normalize_l2_along_the_last_axis():
    np.testing.assert_allclose(normalize(np.array([[3.0, 4.0], [0.0, 0.0]])), [[0.6, 0.8], [0.0, 0.0]])


def test_normalize_order_and_axis():
    x = np.array([[1.0, -3.0], [3.0, 1.0]])
    np.testing.assert_allclose(normalize(x, axis=0, order=1), [[0.25, -0.75], [0.75, 0.25]])


def test_normalize_torch_matches_numpy():
    x = np.random.default_rng(0).normal(size=(4, 5))
    x[1] = 0.0
    result = normalize(torch.as_tensor(x))
    assert isinstance(result, torch.Tensor)
    np.testing.assert_allclose(result.numpy(), normalize(x), rtol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(normalize(x)[[0, 2, 3]], axis=-1), 1.0)


def test_normalize_integer_input_gives_floats():
    assert normalize([[3, 4]]).dtype == np.float32
