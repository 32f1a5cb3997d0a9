"""Confusion-count metrics: AUC's summation rules by hand, top-k ties, both counting paths,
the confusion matrix, and bad inputs."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

import lamina.metrics as metrics
from lamina.errors import ShapeError

# Thresholds [-eps, 0.5, 1 + eps]. Weighted counts at each threshold:
#   tp = [3 + 4, 4, 0] = [7, 4, 0], fp = [1 + 2, 0, 0], fn = [0, 3, 7], tn = [0, 3, 3]
#   recall = tpr = [1, 4/7, 0], fpr = [1, 0, 0], precision = [0.7, 1, 0]
Y_TRUE, Y_PRED, WEIGHTS = [0, 0, 1, 1], [0, 0.5, 0.3, 0.9], [1, 2, 3, 4]
AUC_BY_HAND = [
    ("ROC", "interpolation", (1 - 0) * (1 + 4 / 7) / 2),
    ("ROC", "minoring", (1 - 0) * (4 / 7)),
    ("ROC", "majoring", (1 - 0) * 1),
    ("PR", "minoring", (1 - 4 / 7) * 0.7 + (4 / 7) * 0),
    ("PR", "majoring", (1 - 4 / 7) * 1 + (4 / 7) * 1),
    # Interval [0.5, -eps]: slope = dtp/dp = 3/6, intercept = 4 - 0.5 * 4 = 2,
    # area = slope * (dtp + intercept * log(10 / 4)) / 7; interval [1 + eps, 0.5]: 4 / 7.
    ("PR", "interpolation", 0.5 * (3 + 2 * math.log(10 / 4)) / 7 + 4 / 7),
]


@pytest.mark.parametrize("curve, summation_method, expected", AUC_BY_HAND)
def test_auc_summation_methods_by_hand(curve, summation_method, expected) -> None:
    metric = metrics.AUC(num_thresholds=3, curve=curve, summation_method=summation_method)
    metric.update_state(Y_TRUE, Y_PRED, sample_weight=WEIGHTS)
    assert float(metric.result()) == pytest.approx(expected, rel=1e-6)
    assert metric.true_positives.tolist() == [7, 4, 0]
    assert metric.false_positives.tolist() == [3, 0, 0]
    assert metric.true_negatives.tolist() == [0, 3, 3]
    assert metric.false_negatives.tolist() == [0, 3, 7]


def test_pr_auc_is_close_to_average_precision() -> None:
    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 2, 2000)
    y_pred = np.clip(rng.normal(0.35 + 0.3 * y_true, 0.2), 0, 1).astype(np.float32)
    metric = metrics.AUC(curve="PR")
    for batch in np.array_split(np.arange(2000), 7):
        metric.update_state(torch.tensor(y_true[batch]), torch.tensor(y_pred[batch]))
    assert float(metric.result()) == pytest.approx(
        skm.average_precision_score(y_true, y_pred), abs=0.01
    )


def test_histogram_and_comparison_counting_agree() -> None:
    # Evenly spaced thresholds are counted by histogram, others by comparison: perturbing the
    # thresholds by less than any gap between scores must not change the counts.
    rng = np.random.default_rng(4)
    y_true = torch.tensor(rng.integers(0, 2, 300))
    y_pred = torch.tensor((rng.integers(0, 10, 300) + 0.5) / 10, dtype=torch.float32)
    weights = torch.tensor(rng.uniform(0, 1, 300), dtype=torch.float32)
    even = metrics.AUC(num_thresholds=11)
    uneven = metrics.AUC(thresholds=[i / 10 + 0.01 * (i % 2) for i in range(1, 10)])
    assert even._evenly_spaced and not uneven._evenly_spaced
    for metric in (even, uneven):
        metric.update_state(y_true, y_pred, sample_weight=weights)
    for name in ("true_positives", "false_positives", "true_negatives", "false_negatives"):
        torch.testing.assert_close(getattr(even, name), getattr(uneven, name))


def test_auc_thresholds_include_the_endpoints() -> None:
    metric = metrics.AUC(num_thresholds=3)
    assert metric.thresholds == pytest.approx([-1e-7, 0.5, 1 + 1e-7])
    assert metrics.AUC(thresholds=[0.7, 0.2]).thresholds == pytest.approx(
        [-1e-7, 0.2, 0.7, 1 + 1e-7]
    )


def test_auc_multi_label_builds_on_first_batch() -> None:
    metric = metrics.AUC(multi_label=True)
    assert metric.variables == []
    metric.update_state(torch.zeros(2, 3), torch.rand(2, 3))
    assert metric.true_positives.shape == (200, 3)


@pytest.mark.parametrize("top_k, expected", [(2, 0.0), (4, 0.5)])
def test_precision_top_k_breaks_ties_by_index(top_k, expected) -> None:
    # Keras's example: with all scores tied, the top k are the first k entries.
    metric = metrics.Precision(top_k=top_k)
    metric.update_state([0, 0, 1, 1], [1, 1, 1, 1])
    assert float(metric.result()) == expected


def test_precision_and_recall_of_nothing_are_zero() -> None:
    precision, recall = metrics.Precision(), metrics.Recall()
    precision.update_state([1, 1], [0.1, 0.2])
    recall.update_state([0, 0], [0.9, 0.2])
    assert float(precision.result()) == 0.0 and float(recall.result()) == 0.0


def test_confusion_matrix_skips_labels_out_of_range() -> None:
    counts = metrics.confusion_matrix(torch.tensor([0, 1, 5, -1]), torch.tensor([1, 1, 0, 0]), 2)
    assert counts.tolist() == [[0.0, 1.0], [0.0, 1.0]]


def test_confusion_matrix_metric_takes_integer_predictions() -> None:
    metric = metrics.ConfusionMatrix(3)
    metric.update_state([[0], [2], [2]], [[0], [1], [2]], sample_weight=[1.0, 2.0, 0.5])
    assert metric.result().tolist() == [[1, 0, 0], [0, 0, 0], [0, 2, 0.5]]


BAD_INPUTS = [
    (lambda: metrics.Precision(thresholds=1.5), ValueError,
     "`thresholds` must be a number or a non-empty list of numbers in [0, 1]. "
     "Received: thresholds=1.5"),
    (lambda: metrics.Recall(thresholds=[0.5, -0.1]), ValueError,
     "Received: thresholds=[0.5, -0.1]"),
    (lambda: metrics.TruePositives(thresholds=[]), ValueError, "Received: thresholds=[]"),
    (lambda: metrics.Precision(top_k=0), ValueError,
     "`top_k` must be a positive integer or None. Received: top_k=0"),
    (lambda: metrics.Recall(class_id=-1), ValueError, "Received: class_id=-1"),
    (lambda: metrics.Precision(class_id=3)([[0, 1]], [[0.2, 0.9]]), ValueError,
     "has class_id=3, so y_pred must have shape (batch, num_classes) with num_classes > "
     "class_id. Received: y_pred.shape=(1, 2)"),
    (lambda: metrics.Precision()([[0, 1, 1]], [[0.2, 0.9]]), ShapeError,
     "Precision ('precision') needs `y_true` and `y_pred` of the same shape. "
     "Received: y_true.shape=(1, 3), y_pred.shape=(1, 2)"),
    (lambda: metrics.AUC(num_thresholds=1), ValueError,
     "`num_thresholds` must be an integer > 1. Received: num_thresholds=1"),
    (lambda: metrics.AUC(curve="DET"), ValueError,
     "`curve` must be 'ROC' or 'PR'. Received: curve='DET'"),
    (lambda: metrics.AUC(summation_method="trapezoid"), ValueError,
     "Received: summation_method='trapezoid'"),
    (lambda: metrics.AUC(thresholds=[0.5, 2.0]), ValueError, "Received: thresholds=[0.5, 2.0]"),
    (lambda: metrics.AUC(num_labels=3), ValueError,
     "`num_labels` is only used with multi_label=True"),
    (lambda: metrics.AUC(multi_label=True, num_labels=0), ValueError, "Received: num_labels=0"),
    (lambda: metrics.AUC(label_weights=[1.0, -1.0]), ValueError,
     "`label_weights` must be a list of non-negative numbers"),
    (lambda: metrics.AUC(multi_label=True)([0, 1], [0.2, 0.7]), ValueError,
     "with multi_label=True needs y_pred of shape (batch, num_labels). "
     "Received: y_pred.shape=(2,)"),
    (lambda: metrics.AUC(multi_label=True, num_labels=2)([[0, 1, 1]], [[0.2, 0.7, 0.1]]),
     ValueError, "was built for 2 labels but received y_pred.shape=(1, 3)"),
    (lambda: metrics.AUC(label_weights=[1.0, 2.0])([[0, 1, 1]], [[0.2, 0.7, 0.1]]), ValueError,
     "has 2 label_weights but y_pred.shape=(1, 3)"),
    (lambda: metrics.AUC()([0, 1], [0.2, 0.7], sample_weight=[1.0, 2.0, 3.0]), ShapeError,
     "cannot apply `sample_weight` of shape (3,) to values of shape (2,)"),
    (lambda: metrics.ConfusionMatrix(1), ValueError,
     "`num_classes` must be an integer >= 2. Received: num_classes=1"),
    (lambda: metrics.ConfusionMatrix(3)([0, 1], [[0.2, 0.7]]), ShapeError,
     "with num_classes=3 needs y_pred of shape y_true.shape + (3,) (scores) or of y_true's "
     "shape (labels). Received: y_true.shape=(2,), y_pred.shape=(1, 2)"),
]


@pytest.mark.parametrize("build, error, message", BAD_INPUTS)
def test_bad_input_messages(build, error, message) -> None:
    with pytest.raises(error, match=re.escape(message)):
        build()
