"""F-scores on Keras's documented example, worked out by hand, and bad inputs."""

from __future__ import annotations

import re

import pytest
import torch

import lamina.metrics as metrics
from lamina.errors import ShapeError

Y_TRUE = [[1, 1, 1], [1, 0, 0], [1, 1, 0]]
Y_PRED = [[0.2, 0.6, 0.7], [0.2, 0.6, 0.6], [0.6, 0.8, 0.0]]
# At threshold 0.5, per class: tp = [1, 2, 1], fp = [0, 1, 1], fn = [2, 0, 0], so
# precision = [1, 2/3, 1/2] and recall = [1/3, 1, 1].


def f_beta(precision: float, recall: float, beta: float) -> float:
    return (1 + beta**2) * precision * recall / (beta**2 * precision + recall)


BY_HAND = [
    (lambda: metrics.F1Score(threshold=0.5),
     [f_beta(1, 1 / 3, 1), f_beta(2 / 3, 1, 1), f_beta(1 / 2, 1, 1)]),
    (lambda: metrics.FBetaScore(beta=2.0, threshold=0.5),
     [f_beta(1, 1 / 3, 2), f_beta(2 / 3, 1, 2), f_beta(1 / 2, 1, 2)]),
    # micro: tp = 4, fp = 2, fn = 2 over all classes.
    (lambda: metrics.F1Score(average="micro", threshold=0.5), f_beta(4 / 6, 4 / 6, 1)),
    # weighted by support [3, 2, 1].
    (lambda: metrics.F1Score(average="weighted", threshold=0.5),
     (3 * f_beta(1, 1 / 3, 1) + 2 * f_beta(2 / 3, 1, 1) + f_beta(1 / 2, 1, 1)) / 6),
]


@pytest.mark.parametrize("build, expected", BY_HAND)
def test_keras_example_by_hand(build, expected) -> None:
    metric = build()
    metric.update_state(Y_TRUE, Y_PRED)
    torch.testing.assert_close(
        metric.result(), torch.tensor(expected, dtype=torch.float32), rtol=1e-5, atol=1e-6
    )


def test_argmax_prediction_ignores_all_zero_rows() -> None:
    metric = metrics.F1Score()
    metric.update_state([[1, 0], [0, 1]], [[0.0, 0.0], [0.2, 0.8]])
    # Row 1 predicts nothing: class 0 has tp = 0, class 1 has tp = 1 and no errors.
    assert metric.result().tolist() == pytest.approx([0.0, 1.0], abs=1e-6)


def test_result_before_any_update_is_zero() -> None:
    assert float(metrics.F1Score().result()) == 0.0


BAD_INPUTS = [
    (lambda: metrics.F1Score(average="samples"), ValueError,
     "`average` must be one of None, 'micro', 'macro', 'weighted'. Received: average='samples'"),
    (lambda: metrics.FBetaScore(beta=0.0), ValueError,
     "`beta` must be a number > 0. Received: beta=0.0"),
    (lambda: metrics.FBetaScore(threshold=0.0), ValueError,
     "a number with 0 < threshold <= 1. Received: threshold=0.0"),
    (lambda: metrics.F1Score()([0, 1], [[0.2, 0.8], [0.3, 0.7]]), ShapeError,
     "needs y_true and y_pred of the same shape (batch, num_classes). "
     "Received: y_true.shape=(2,), y_pred.shape=(2, 2)"),
]


@pytest.mark.parametrize("build, error, message", BAD_INPUTS)
def test_bad_input_messages(build, error, message) -> None:
    with pytest.raises(error, match=re.escape(message)):
        build()


def test_number_of_classes_is_fixed_by_the_first_batch() -> None:
    metric = metrics.F1Score()
    metric.update_state([[1, 0]], [[0.8, 0.2]])
    with pytest.raises(ShapeError, match=re.escape("was built for 2 classes but received "
                                                   "y_pred.shape=(1, 3)")):
        metric.update_state([[1, 0, 0]], [[0.8, 0.1, 0.1]])
