"""Every registered metric against Keras 3's: the same weighted batches streamed into both
(two `update_state` calls), the same `result()`, within 1e-5."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np
import pytest
import torch

import lamina.metrics as lamina_metrics

from .keras_harness import TOLERANCE, assert_close, keras, registered_classes, uncovered

N = 24


def binary(g):
    return g.integers(0, 2, (N, 1)).astype(np.float32), g.uniform(size=(N, 1)).astype(np.float32)


def quantized(g):
    return (g.integers(0, 2, N).astype(np.float32),
            ((g.integers(0, 199, N) + 0.5) / 199).astype(np.float32))


def multilabel(g):
    return (g.integers(0, 2, (N, 3)).astype(np.float32),
            g.uniform(size=(N, 3)).astype(np.float32))


def one_hot(g):
    p = g.uniform(0.1, 1, (N, 4))
    return (np.eye(4, dtype=np.float32)[g.integers(0, 4, N)],
            (p / p.sum(1, keepdims=True)).astype(np.float32))


def sparse(g):
    p = g.uniform(0.1, 1, (N, 4))
    return g.integers(0, 4, (N, 1)), (p / p.sum(1, keepdims=True)).astype(np.float32)


def labels(g):
    return g.integers(0, 3, N), g.integers(0, 3, N)


def regression(g):
    y = g.normal(size=(N, 3)).astype(np.float32)
    return y, (y + 0.5 * g.normal(size=(N, 3))).astype(np.float32)


def positive(g):
    return (g.uniform(0.5, 3, (N, 3)).astype(np.float32),
            g.uniform(0.5, 3, (N, 3)).astype(np.float32))


def signed(g):
    return g.integers(0, 2, (N, 3)).astype(np.float32), g.normal(size=(N, 3)).astype(np.float32)


def values(g):
    v = g.normal(size=N).astype(np.float32)
    return v, v


@dataclasses.dataclass(frozen=True)
class Row:
    name: str
    kwargs: dict[str, Any]
    data: Callable
    tolerance: float = TOLERANCE
    reason: str = ""
    values_only: bool = False


ROWS = [
    Row("Accuracy", {}, labels),
    Row("BinaryAccuracy", {"threshold": 0.4}, binary),
    Row("CategoricalAccuracy", {}, one_hot),
    Row("SparseCategoricalAccuracy", {}, sparse),
    Row("TopKCategoricalAccuracy", {"k": 2}, one_hot),
    Row("SparseTopKCategoricalAccuracy", {"k": 2}, sparse),
    Row("AUC", {}, quantized),
    Row("AUC", {"curve": "PR", "num_thresholds": 50}, quantized),
    Row("AUC", {"multi_label": True}, multilabel),
    Row("Precision", {"thresholds": [0.3, 0.6]}, binary),
    Row("Recall", {"top_k": 2}, multilabel),
    Row("TruePositives", {}, binary),
    Row("FalsePositives", {"thresholds": 0.3}, binary),
    Row("TrueNegatives", {}, multilabel),
    Row("FalseNegatives", {}, binary),
    Row("PrecisionAtRecall", {"recall": 0.6}, quantized),
    Row("RecallAtPrecision", {"precision": 0.55}, quantized),
    Row("SensitivityAtSpecificity", {"specificity": 0.5, "num_thresholds": 50}, quantized),
    Row("SpecificityAtSensitivity", {"sensitivity": 0.4, "class_id": 1}, multilabel),
    Row("F1Score", {"average": "macro", "threshold": 0.5}, multilabel),
    Row("FBetaScore", {"beta": 2.0, "average": "weighted", "threshold": 0.4}, multilabel),
    Row("IoU", {"num_classes": 3, "target_class_ids": [0, 2]}, labels),
    Row("MeanIoU", {"num_classes": 3}, labels),
    Row("BinaryIoU", {"target_class_ids": [0, 1], "threshold": 0.4}, binary),
    Row("OneHotIoU", {"num_classes": 4, "target_class_ids": [1, 2]}, one_hot),
    Row("OneHotMeanIoU", {"num_classes": 4}, one_hot),
    Row("MeanSquaredError", {}, regression),
    Row("MeanAbsoluteError", {}, regression),
    Row("RootMeanSquaredError", {}, regression),
    Row("MeanAbsolutePercentageError", {}, positive),
    Row("MeanSquaredLogarithmicError", {}, positive),
    Row("LogCoshError", {}, regression),
    Row("CosineSimilarity", {}, regression),
    Row("R2Score", {}, regression),
    Row("R2Score", {"class_aggregation": "variance_weighted_average", "num_regressors": 2},
        regression),
    Row("PearsonCorrelation", {}, regression),
    Row("ConcordanceCorrelation", {}, regression),
    Row("BinaryCrossentropy", {"label_smoothing": 0.1}, multilabel),
    Row("CategoricalCrossentropy", {}, one_hot),
    Row("SparseCategoricalCrossentropy", {}, sparse),
    Row("KLDivergence", {}, one_hot),
    Row("Poisson", {}, positive),
    Row("Hinge", {}, signed),
    Row("SquaredHinge", {}, signed),
    Row("CategoricalHinge", {}, one_hot),
    Row("Mean", {}, values, values_only=True),
    Row("Sum", {}, values, values_only=True),
]

EXCLUDED = {
    "ConfusionMatrix": "Lamina's addition; Keras has no streaming confusion matrix "
                       "(checked against sklearn in tests/metrics)",
    "MeanMetricWrapper": "wraps the user's function; nothing of its own to compare",
}


@pytest.mark.parametrize("row", ROWS, ids=[f"{r.name}-{i}" for i, r in enumerate(ROWS)])
def test_metric_agrees_with_keras(row: Row) -> None:
    rng = np.random.default_rng(0)
    y_true, y_pred = row.data(rng)
    # Whole-number weights: Keras's IoU metrics keep an integer confusion matrix.
    weights = rng.integers(0, 3, N).astype(np.float32)
    keras_metric = getattr(keras.metrics, row.name)(**row.kwargs)
    lamina_metric = getattr(lamina_metrics, row.name)(**row.kwargs)
    for batch in (slice(0, 10), slice(10, N)):
        w = weights[batch]
        keras_w = w.astype(np.int32) if row.name.endswith("IoU") else w
        if row.values_only:
            keras_metric.update_state(y_true[batch], sample_weight=w)
            lamina_metric.update_state(torch.as_tensor(y_true[batch]), torch.as_tensor(w))
        else:
            keras_metric.update_state(y_true[batch], y_pred[batch], sample_weight=keras_w)
            lamina_metric.update_state(torch.as_tensor(y_true[batch]),
                                       torch.as_tensor(y_pred[batch]), torch.as_tensor(w))
    assert_close(lamina_metric.result(), keras_metric.result(), row.tolerance,
                 f"{row.name} {row.reason}", relative=True)


def test_every_registered_metric_has_a_row_or_a_reason() -> None:
    assert uncovered(registered_classes("metric"), {row.name for row in ROWS}, EXCLUDED) == []
