"""Accuracy functions and metrics on hand-computed cases, edge cases and bad inputs."""

from __future__ import annotations

import re

import pytest
import torch

import lamina.metrics as metrics
from lamina.errors import ShapeError

T = torch.tensor

# (function, kwargs, y_true, y_pred, per-sample values worked out by hand)
HAND_CASES = [
    (metrics.accuracy, {}, T([[1.0, 2.0], [3.0, 4.0]]), T([[1.0, 0.0], [3.0, 4.0]]), [0.5, 1.0]),
    (metrics.binary_accuracy, {}, T([[1.0], [0.0]]), T([[0.5], [0.4]]), [0.0, 1.0]),
    (metrics.binary_accuracy, {"threshold": 0.3}, T([[1.0], [0.0]]), T([[0.5], [0.4]]),
     [1.0, 0.0]),
    # Logit 0.1 is probability 0.525 > 0.5; logit -2 is 0.12.
    (metrics.binary_accuracy, {"from_logits": True}, T([[1.0, 1.0]]), T([[0.1, -2.0]]), [0.5]),
    (metrics.categorical_accuracy, {}, T([[0, 0, 1], [0, 1, 0]]),
     T([[0.1, 0.9, 0.8], [0.05, 0.95, 0]]), [0.0, 1.0]),
    (metrics.sparse_categorical_accuracy, {}, T([[2], [1]]),
     T([[0.1, 0.6, 0.3], [0.05, 0.95, 0]]), [0.0, 1.0]),
    (metrics.sparse_categorical_accuracy, {}, T([2.0, 1.0]),
     T([[0.1, 0.6, 0.3], [0.05, 0.95, 0]]), [0.0, 1.0]),
    # Sequences: one value per time step.
    (metrics.sparse_categorical_accuracy, {}, T([[0, 1]]), T([[[0.9, 0.1], [0.8, 0.2]]]),
     [[1.0, 0.0]]),
    (metrics.top_k_categorical_accuracy, {"k": 1}, T([[0, 0, 1], [0, 1, 0]]),
     T([[0.1, 0.9, 0.8], [0.05, 0.95, 0]]), [0.0, 1.0]),
    (metrics.top_k_categorical_accuracy, {"k": 2}, T([[0, 0, 1], [0, 1, 0]]),
     T([[0.1, 0.9, 0.8], [0.05, 0.95, 0]]), [1.0, 1.0]),
    # Ties at the k-th score count as in the top k (TensorFlow's in_top_k).
    (metrics.sparse_top_k_categorical_accuracy, {"k": 1}, T([2]), T([[0.5, 0.0, 0.5]]), [1.0]),
    # k larger than the number of classes: every label is in the top k.
    (metrics.sparse_top_k_categorical_accuracy, {"k": 10}, T([1]), T([[0.5, 0.1, 0.4]]), [1.0]),
    (metrics.sparse_top_k_categorical_accuracy, {"k": 2, "from_sorted_ids": True}, T([2, 1]),
     T([[0, 2, 1], [2, 0, 1]]), [1.0, 0.0]),
]


@pytest.mark.parametrize("function, kwargs, y_true, y_pred, expected", HAND_CASES)
def test_functions_on_hand_computed_cases(function, kwargs, y_true, y_pred, expected) -> None:
    assert function(y_true, y_pred, **kwargs).tolist() == expected


def test_rank_1_inputs_count_each_element_as_a_sample() -> None:
    # Batches of 3 and 1: the accuracy of all 4 samples, not the mean of 2 batch accuracies.
    metric = metrics.BinaryAccuracy()
    metric.update_state(T([1.0, 1.0, 1.0]), T([0.9, 0.9, 0.1]))
    metric.update_state(T([0.0]), T([0.2]))
    assert float(metric.result()) == pytest.approx(3 / 4)


def test_keras_docstring_values() -> None:
    metric = metrics.CategoricalAccuracy()
    metric.update_state([[0, 0, 1], [0, 1, 0]], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]],
                        sample_weight=[0.7, 0.3])
    assert float(metric.result()) == pytest.approx(0.3)
    metric = metrics.BinaryAccuracy()
    metric.update_state([[1], [1], [0], [0]], [[0.98], [1], [0], [0.6]],
                        sample_weight=[1, 0, 0, 1])
    assert float(metric.result()) == pytest.approx(0.5)


BAD_INPUTS = [
    (lambda: metrics.BinaryAccuracy(threshold=1.0), ValueError,
     "`threshold` must be a number in the open interval (0, 1). Received: threshold=1.0"),
    (lambda: metrics.BinaryAccuracy(threshold=None), ValueError, "Received: threshold=None"),
    (lambda: metrics.TopKCategoricalAccuracy(k=0), ValueError,
     "`k` must be a positive integer. Received: k=0"),
    (lambda: metrics.SparseTopKCategoricalAccuracy(k=2.5), ValueError, "Received: k=2.5"),
    (lambda: metrics.BinaryAccuracy()(T([[1.0, 0.0]]), T([[0.3, 0.2, 0.1]])), ShapeError,
     "binary_accuracy received y_true.shape=(1, 2) and y_pred.shape=(1, 3)"),
    (lambda: metrics.CategoricalAccuracy()(T([0, 2]), T([[0.3, 0.7], [0.1, 0.9]])), ShapeError,
     "categorical_accuracy received y_true.shape=(2,) and y_pred.shape=(2, 2); it expects "
     "one-hot labels"),
    (lambda: metrics.SparseCategoricalAccuracy()(T([[0, 1], [1, 0]]), T([[0.3, 0.7]])),
     ShapeError, "sparse_categorical_accuracy received y_true.shape=(2, 2) and "
                 "y_pred.shape=(1, 2); it expects integer labels"),
    (lambda: metrics.TopKCategoricalAccuracy()(T([1]), T([[0.3, 0.7]])), ShapeError,
     "y_true.shape=(1,) and y_pred.shape=(1, 2)"),
    (lambda: metrics.Accuracy()(T([[1.0], [2.0]]), T([[1.0, 2.0]])), ShapeError,
     "accuracy received y_true.shape=(2, 1) and y_pred.shape=(1, 2)"),
]


@pytest.mark.parametrize("build, error, message", BAD_INPUTS)
def test_bad_input_messages(build, error, message) -> None:
    with pytest.raises(error, match=re.escape(message)):
        build()


def test_functions_accept_lists_like_keras() -> None:
    assert metrics.binary_accuracy([[1], [0]], [[0.7], [0.6]]).tolist() == [1.0, 0.0]
    assert metrics.sparse_categorical_accuracy([1, 0], [[0.2, 0.8], [0.3, 0.7]]).tolist() == [
        1.0, 0.0
    ]


def test_keras_mask_on_y_pred_hides_padded_steps() -> None:
    # Two sequences of 3 steps; the last step of the first one is padding.
    y_true = T([[0, 1, 1], [1, 1, 0]])
    y_pred = T([[[0.9, 0.1], [0.2, 0.8], [0.9, 0.1]], [[0.3, 0.7], [0.6, 0.4], [0.8, 0.2]]])
    y_pred._keras_mask = T([[True, True, False], [True, True, True]])
    metric = metrics.SparseCategoricalAccuracy()
    metric.update_state(y_true, y_pred)
    # Visible steps: [1, 1] and [1, 0, 1]: 4 right out of 5.
    assert float(metric.result()) == pytest.approx(4 / 5)
    metric.reset_state()
    metric.update_state(y_true, y_pred, sample_weight=T([2.0, 1.0]))
    assert float(metric.result()) == pytest.approx((2 * 2 + 2) / (2 * 2 + 3))


@pytest.mark.parametrize("labels_as", ["int64", "int32", "float_column", "float"])
def test_streamed_sparse_accuracy_of_plain_batches_matches_numpy(labels_as) -> None:
    """The step's common case (unweighted `(batch, classes)` tensors) over several batches,
    with ties and labels in every dtype a user passes, against NumPy's argmax."""
    import numpy as np

    rng = np.random.default_rng(3)
    metric = metrics.SparseCategoricalAccuracy()
    hits = total = 0
    for size in (7, 16, 5):
        scores = rng.integers(0, 3, (size, 4)).astype("float32")  # ties: argmax takes the first
        labels = rng.integers(0, 4, size)
        hits += int((scores.argmax(-1) == labels).sum())
        total += size
        y_true = {"int64": T(labels), "int32": T(labels, dtype=torch.int32),
                  "float_column": T(labels, dtype=torch.float32).reshape(-1, 1),
                  "float": T(labels, dtype=torch.float64)}[labels_as]
        metric.update_state(y_true, T(scores))
    assert float(metric.result()) == pytest.approx(hits / total, rel=1e-6)
    # Non-integer float labels never match, as in the general path.
    metric.reset_state()
    metric.update_state(T([0.5, 1.0]), T([[1.0, 0.0], [0.0, 1.0]]))
    assert float(metric.result()) == pytest.approx(0.5)


def test_streamed_categorical_accuracy_of_plain_batches_matches_numpy() -> None:
    import numpy as np

    rng = np.random.default_rng(4)
    metric = metrics.CategoricalAccuracy()
    hits = total = 0
    for size in (9, 3):
        scores = rng.normal(size=(size, 5)).astype("float32")
        labels = rng.integers(0, 5, size)
        hits += int((scores.argmax(-1) == labels).sum())
        total += size
        metric.update_state(T(np.eye(5, dtype="float32")[labels]), T(scores))
    assert float(metric.result()) == pytest.approx(hits / total, rel=1e-6)
    # A weighted batch after plain ones takes the general path into the same totals.
    metric.update_state(T([[1.0, 0, 0, 0, 0]]), T([[0.0, 1, 0, 0, 0]]), sample_weight=T([3.0]))
    assert float(metric.result()) == pytest.approx(hits / (total + 3), rel=1e-6)
