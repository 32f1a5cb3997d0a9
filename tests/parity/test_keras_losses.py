"""Every registered loss against Keras 3's on the same data: per-sample values and the
weighted reduction (reduction="none" and the default with sample weights), within 1e-5."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np
import pytest
import torch

import lamina.losses as lamina_losses

from .keras_harness import TOLERANCE, assert_close, keras, registered_classes, uncovered

Data = Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]]


def regression(g):
    return g.normal(size=(6, 3)).astype(np.float32), g.normal(size=(6, 3)).astype(np.float32)


def positive(g):
    return (g.uniform(0.5, 3, (6, 3)).astype(np.float32),
            g.uniform(0.5, 3, (6, 3)).astype(np.float32))


def binary(g):
    return (g.integers(0, 2, (6, 3)).astype(np.float32),
            g.uniform(0.05, 0.95, (6, 3)).astype(np.float32))


def logits(g):
    return g.integers(0, 2, (6, 3)).astype(np.float32), g.normal(size=(6, 3)).astype(np.float32)


def one_hot(g):
    p = g.uniform(0.1, 1, (6, 4))
    return np.eye(4, dtype=np.float32)[g.integers(0, 4, 6)], (p / p.sum(1, keepdims=True)).astype(
        np.float32)


def near_one_hot(g):
    """Predictions within ~1e-6 of the one-hot labels: losses of ~5e-6, where Keras's clipping
    epsilon (1e-7) moves the value by a fifth. In float64: float32's log near 1 is only exact
    to 6e-8, a percent of such a loss."""
    labels = np.eye(4)[g.integers(0, 4, 6)]
    off = g.uniform(1e-6, 3e-6, (6, 4))
    p = np.where(labels == 1, 1.0, off)
    return labels, p / p.sum(1, keepdims=True)


def sparse(g):
    p = g.uniform(0.1, 1, (6, 4))
    return g.integers(0, 4, 6), (p / p.sum(1, keepdims=True)).astype(np.float32)


def signed(g):
    return (2 * g.integers(0, 2, (6, 3)) - 1).astype(np.float32), g.normal(size=(6, 3)).astype(
        np.float32)


def masks(g):
    return (g.integers(0, 2, (6, 4, 4)).astype(np.float32),
            g.uniform(0.05, 0.95, (6, 4, 4)).astype(np.float32))


def ctc_data(g):
    labels = np.array([[1, 2, 0], [3, 3, 1], [2, 0, 0], [1, 0, 0], [4, 1, 2], [2, 2, 0]])
    return labels, g.normal(size=(6, 7, 5)).astype(np.float32)


def embeddings(g):
    e = g.normal(size=(6, 4))
    return np.array([0, 0, 1, 1, 2, 2]), (e / np.linalg.norm(e, axis=1, keepdims=True)).astype(
        np.float32)


@dataclasses.dataclass(frozen=True)
class Row:
    name: str
    kwargs: dict[str, Any]
    data: Data
    tolerance: float = TOLERANCE
    reason: str = ""
    # Where Keras itself is wrong: a float64 per-sample reference that replaces it.
    reference: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None


def tversky_reference(alpha: float, beta: float) -> Callable:
    """Salehi et al.'s index as Keras documents it: alpha weighs false positives."""
    def reference(y_true, y_pred):
        t, p = y_true.astype(np.float64), y_pred.astype(np.float64)
        tp = (t * p).sum(axis=(1, 2))
        fp = ((1 - t) * p).sum(axis=(1, 2))
        fn = (t * (1 - p)).sum(axis=(1, 2))
        return 1 - tp / (tp + alpha * fp + beta * fn + 1e-7)

    return reference


ROWS = [
    Row("MeanSquaredError", {}, regression),
    Row("MeanAbsoluteError", {}, regression),
    Row("MeanAbsolutePercentageError", {}, positive),
    Row("MeanSquaredLogarithmicError", {}, positive),
    Row("Huber", {"delta": 0.5}, regression),
    Row("LogCosh", {}, regression),
    Row("CosineSimilarity", {"axis": -1}, regression),
    Row("BinaryCrossentropy", {"label_smoothing": 0.1}, binary),
    Row("BinaryCrossentropy", {"from_logits": True}, logits),
    Row("BinaryFocalCrossentropy", {"apply_class_balancing": True, "gamma": 1.5}, binary),
    Row("CategoricalCrossentropy", {"label_smoothing": 0.2}, one_hot),
    Row("CategoricalFocalCrossentropy", {"alpha": 0.3}, one_hot),
    Row("SparseCategoricalCrossentropy", {}, sparse),
    Row("KLDivergence", {}, one_hot),
    Row("KLDivergence", {"dtype": "float64"}, near_one_hot),
    Row("CategoricalCrossentropy", {"dtype": "float64"}, near_one_hot),
    Row("Poisson", {}, positive),
    Row("Hinge", {}, signed),
    Row("SquaredHinge", {}, signed),
    Row("CategoricalHinge", {}, one_hot),
    Row("Dice", {"axis": (1, 2)}, masks),
    Row("Tversky", {"alpha": 0.5, "beta": 0.5, "axis": (1, 2)}, masks),
    Row("Tversky", {"alpha": 0.7, "beta": 0.3, "axis": (1, 2)}, masks,
        reason="Keras 3.15's code applies alpha to false negatives, against its own docstring "
               "(fixed upstream in keras-team/keras#23333); checked against the documented "
               "formula in float64", reference=tversky_reference(0.7, 0.3)),
    Row("CTC", {}, ctc_data),
    Row("Circle", {"gamma": 4.0}, embeddings),
    Row("CategoricalGeneralizedCrossEntropy", {"q": 0.3}, sparse),
]

EXCLUDED = {
    "LossFunctionWrapper": "wraps the user's function; nothing of its own to compare",
    "TripletSemiHardLoss": "TensorFlow Addons' loss, not in Keras 3 (checked against a NumPy "
                           "transcription of TFA's definition in tests/losses)",
    "TripletHardLoss": "TensorFlow Addons' loss, not in Keras 3 (checked in tests/losses)",
}


@pytest.mark.parametrize("row", ROWS, ids=[f"{r.name}-{i}" for i, r in enumerate(ROWS)])
def test_loss_agrees_with_keras(row: Row) -> None:
    rng = np.random.default_rng(0)
    y_true, y_pred = row.data(rng)
    weights = rng.uniform(0, 2, len(y_true)).astype(np.float32)
    keras_cls = getattr(keras.losses, row.name)
    lamina_cls = getattr(lamina_losses, row.name)
    for reduction, sample_weight in (("none", None), ("sum_over_batch_size", weights)):
        if row.reference is not None:
            values = row.reference(y_true, y_pred)
            expected = values if sample_weight is None else np.mean(values * sample_weight)
        else:
            expected = keras_cls(**row.kwargs, reduction=reduction)(
                y_true, y_pred, sample_weight=sample_weight)
        got = lamina_cls(**row.kwargs, reduction=reduction)(
            torch.as_tensor(y_true), torch.as_tensor(y_pred),
            sample_weight=None if sample_weight is None else torch.as_tensor(sample_weight))
        assert_close(got, expected, row.tolerance, f"{row.name} {reduction} {row.reason}",
                     relative=True)


def test_every_registered_loss_has_a_row_or_a_reason() -> None:
    assert uncovered(registered_classes("loss"), {row.name for row in ROWS}, EXCLUDED) == []
