"""One row per metric: how to build it, data to stream, and an independent reference.

References come from scikit-learn, torch, or the formula written out in NumPy on the whole
data set at once; the metric must reach the same value by streaming uneven weighted batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats
from sklearn import metrics as skm

import lamina.losses as losses
import lamina.metrics as metrics

NUM_SAMPLES = 40
# Uneven batches, so a mean of per-batch values would differ from the streamed value.
BATCHES = (slice(0, 9), slice(9, 25), slice(25, 40))
CLASSES = 4
LABELS = 5


@dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[], metrics.Metric]
    data: Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]]
    reference: Callable[[np.ndarray, np.ndarray, np.ndarray], Any]
    tol: float = 1e-5
    values_only: bool = False  # Mean and Sum take `values`, not (y_true, y_pred)


# ------------------------------------------------------------------------------ data

def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def values(g: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    v = g.normal(size=(NUM_SAMPLES,))
    return v, v


def integer_pairs(g):
    return (
        g.integers(0, 3, (NUM_SAMPLES, 1)).astype(np.float32),
        g.integers(0, 3, (NUM_SAMPLES, 1)).astype(np.float32),
    )


def binary_column(g):
    return g.integers(0, 2, (NUM_SAMPLES, 1)).astype(np.float32), g.uniform(size=(NUM_SAMPLES, 1))


def binary_flat(g):
    return g.integers(0, 2, NUM_SAMPLES).astype(np.float32), g.uniform(size=NUM_SAMPLES)


def binary_logits(g):
    return g.integers(0, 2, (NUM_SAMPLES, 1)).astype(np.float32), g.normal(
        scale=2, size=(NUM_SAMPLES, 1)
    )


def quantized(g):
    """Scores (k + 0.5) / 199: one distinct value per bucket of AUC's 200 thresholds."""
    y = g.integers(0, 2, NUM_SAMPLES).astype(np.float32)
    return y, (g.integers(0, 199, NUM_SAMPLES) + 0.5) / 199


def quantized_logits(g):
    y, p = quantized(g)
    return y, np.log(p / (1 - p))


def between_thresholds(g):
    """Scores strictly between the thresholds 0.1, 0.3, ..., 0.9."""
    y = g.integers(0, 2, NUM_SAMPLES).astype(np.float32)
    return y, g.choice([0.05, 0.2, 0.4, 0.6, 0.8, 0.95], NUM_SAMPLES)


def multilabel(g):
    y = g.integers(0, 2, (NUM_SAMPLES, LABELS)).astype(np.float32)
    return y, g.uniform(size=(NUM_SAMPLES, LABELS))


def multilabel_quantized(g):
    y = g.integers(0, 2, (NUM_SAMPLES, LABELS)).astype(np.float32)
    y[:2] = [[0] * LABELS, [1] * LABELS]  # every label sees both classes
    return y, (g.integers(0, 199, (NUM_SAMPLES, LABELS)) + 0.5) / 199


def one_hot(g):
    labels = g.integers(0, CLASSES, NUM_SAMPLES)
    scores = _softmax(g.normal(size=(NUM_SAMPLES, CLASSES)))
    return np.eye(CLASSES, dtype=np.float32)[labels], scores


def sparse(g):
    labels = g.integers(0, CLASSES, NUM_SAMPLES)
    return labels, _softmax(g.normal(size=(NUM_SAMPLES, CLASSES)))


def sparse_column(g):
    labels, scores = sparse(g)
    return labels[:, None].astype(np.float32), scores


def sorted_ids(g):
    labels, scores = sparse(g)
    return labels, np.argsort(-scores, axis=-1)[:, :3]


def regression(g):
    return g.normal(size=(NUM_SAMPLES, 3)), g.normal(size=(NUM_SAMPLES, 3))


def regression_flat(g):
    return g.normal(size=NUM_SAMPLES), g.normal(size=NUM_SAMPLES)


def positive(g):
    return g.uniform(0.5, 3, (NUM_SAMPLES, 3)), g.uniform(0.5, 3, (NUM_SAMPLES, 3))


def probabilities(g):
    y = g.integers(0, 2, (NUM_SAMPLES, 3)).astype(np.float32)
    return y, g.uniform(0.05, 0.95, (NUM_SAMPLES, 3))


def binary_logit_matrix(g):
    y = g.integers(0, 2, (NUM_SAMPLES, 3)).astype(np.float32)
    return y, g.normal(scale=2, size=(NUM_SAMPLES, 3))


def distributions(g):
    return _softmax(g.normal(size=(NUM_SAMPLES, CLASSES))), _softmax(
        g.normal(size=(NUM_SAMPLES, CLASSES))
    )


def segmentation(g):
    """Integer label maps (batch, 2, 2) with a void class 255 in a few pixels."""
    y = g.integers(0, 3, (NUM_SAMPLES, 2, 2))
    y[::5, 0, 0] = 255
    return y, g.integers(0, 3, (NUM_SAMPLES, 2, 2))


def one_hot_pair(g):
    labels, scores = sparse(g)
    return np.eye(CLASSES, dtype=np.float32)[labels], scores


# ------------------------------------------------------------------------- references

def weighted_mean(per_sample: np.ndarray, w: np.ndarray) -> float:
    return float(np.sum(per_sample * w) / np.sum(w))


def top_k_mask(p: np.ndarray, k: int) -> np.ndarray:
    order = np.argsort(-p, axis=-1, kind="stable")[:, :k]
    mask = np.zeros_like(p, dtype=bool)
    np.put_along_axis(mask, order, True, axis=-1)
    return mask


def per_threshold(score: Callable[[np.ndarray], float], thresholds: list[float]) -> list[float]:
    return [score(t) for t in thresholds]


def confusion_cell(cell: str, thresholds: list[float]):
    def reference(y, p, w):
        def count(t: float) -> float:
            weights = np.repeat(w, y.shape[1]) if y.ndim > 1 else w
            tn, fp, fn, tp = skm.confusion_matrix(
                y.ravel(), p.ravel() > t, labels=[0, 1], sample_weight=weights
            ).ravel()
            return {"tp": tp, "fp": fp, "tn": tn, "fn": fn}[cell]

        values = per_threshold(count, thresholds)
        return values[0] if len(values) == 1 else values

    return reference


def precision_or_recall(score, thresholds=None, top_k=None, class_id=None):
    """sklearn's precision or recall of `p > t` per threshold, after Keras's top-k filter."""
    def reference(y, p, w):
        if top_k is not None:
            p = np.where(top_k_mask(p, top_k), p, -1e10)
        if class_id is not None:
            y, p = y[:, class_id], p[:, class_id]
        weights = np.repeat(w, y.shape[1]) if y.ndim > 1 else w
        cuts = thresholds or ([0.5] if top_k is None else [-1e10])
        values = [
            score(y.ravel(), p.ravel() > t, sample_weight=weights, zero_division=0)
            for t in cuts
        ]
        return values[0] if len(values) == 1 else values

    return reference


def interpolated_pr_auc(y, p, w, num_thresholds=200):
    """PR-AUC with tp and predicted positives linear between thresholds, integrated
    numerically (midpoint rule) rather than by Davis & Goadrich's closed form."""
    eps = 1e-7
    thresholds = np.array(
        [-eps] + [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)] + [1 + eps]
    )
    positive = p[None, :] > thresholds[:, None]
    tp = (positive * (y * w)[None, :]).sum(1)
    fp = (positive * ((1 - y) * w)[None, :]).sum(1)
    total = np.sum(y * w)
    s = (np.arange(2000) + 0.5) / 2000
    area = 0.0
    for i in range(num_thresholds - 1):
        tp_a, tp_b = tp[i], tp[i + 1]
        p_a, p_b = tp[i] + fp[i], tp[i + 1] + fp[i + 1]
        if tp_a == tp_b:
            continue
        tp_s = tp_b + s * (tp_a - tp_b)
        p_s = p_b + s * (p_a - p_b)
        area += np.mean(tp_s / p_s) * (tp_a - tp_b) / total
    return area


def multilabel_auc(label_weights=None):
    def reference(y, p, w):
        scores = [skm.roc_auc_score(y[:, j], p[:, j], sample_weight=w) for j in range(y.shape[1])]
        return float(np.average(scores, weights=label_weights))

    return reference


def f_beta(beta, average, threshold):
    def reference(y, p, w):
        if threshold is None:
            predicted = np.eye(p.shape[1])[p.argmax(-1)]
        else:
            predicted = p > threshold
        return skm.fbeta_score(
            y, predicted, beta=beta, average=average, sample_weight=w, zero_division=0
        )

    return reference


def torch_per_sample(fn):
    def reference(y, p, w):
        per_sample = fn(torch.as_tensor(y, dtype=torch.float64), torch.as_tensor(p)).numpy()
        return weighted_mean(per_sample, w)

    return reference


def iou_reference(targets, ignore_class=None, dense=False, threshold=None):
    """sklearn's Jaccard index per target class, averaged over the classes that occur."""
    def reference(y, p, w):
        if dense:
            y, p = y.argmax(-1), p.argmax(-1)
        if threshold is not None:
            p = (p >= threshold).astype(np.int64)
        weights = np.broadcast_to(w.reshape((-1,) + (1,) * (y.ndim - 1)), y.shape).ravel()
        y, p = y.ravel().astype(np.int64), p.ravel().astype(np.int64)
        keep = (y != ignore_class) if ignore_class is not None else np.ones_like(y, dtype=bool)
        y, p, weights = y[keep], p[keep], weights[keep]
        scores = skm.jaccard_score(
            y, p, labels=targets, average=None, sample_weight=weights, zero_division=0
        )
        present = [np.sum(weights[(y == c) | (p == c)]) > 0 for c in targets]
        return float(np.sum(scores[present]) / max(np.sum(present), 1))

    return reference


def r2_reference(aggregation="uniform_average", regressors=0):
    def reference(y, p, w):
        score = skm.r2_score(y, p, sample_weight=w, multioutput=aggregation)
        n = y.size
        if regressors and n - regressors - 1 > 0:
            score = 1 - (1 - score) * (n - 1) / (n - regressors - 1)
        return score

    return reference


def correlation_reference(kind):
    def per_row(t, q):
        if kind == "pearson":
            return stats.pearsonr(t, q).statistic
        covariance = np.mean((t - t.mean()) * (q - q.mean()))
        return 2 * covariance / (t.var() + q.var() + (t.mean() - q.mean()) ** 2)

    return lambda y, p, w: weighted_mean(np.array([per_row(t, q) for t, q in zip(y, p)]), w)


def operating_point(reported, constrained, value, class_id=None):
    """The best `reported` rate where `constrained >= value`, over sklearn's exact ROC / PR
    curves (every distinct cut point, which the 200-threshold grid reaches on quantized data)."""
    def reference(y, p, w):
        if class_id is not None:
            y, p = y[:, class_id], p[:, class_id]
        fpr, tpr, _ = skm.roc_curve(y, p, sample_weight=w, drop_intermediate=False)
        precision, recall, _ = skm.precision_recall_curve(y, p, sample_weight=w)
        precision, recall = precision[:-1], recall[:-1]  # drop sklearn's appended (1, 0) point
        rates = {"sensitivity": tpr, "specificity": 1 - fpr}
        if reported in ("precision", "recall"):
            rates = {"precision": precision, "recall": recall}
        feasible = rates[constrained] >= value
        return float(np.max(rates[reported][feasible], initial=0.0))

    return reference


def signed(y: np.ndarray) -> np.ndarray:
    return 2 * y - 1


CASES = [
    Case("accuracy", metrics.Accuracy, integer_pairs,
         lambda y, p, w: weighted_mean((y == p)[:, 0], w)),
    Case("binary_accuracy", metrics.BinaryAccuracy, binary_column,
         lambda y, p, w: skm.accuracy_score(y, p > 0.5, sample_weight=w)),
    Case("binary_accuracy_threshold", lambda: metrics.BinaryAccuracy(threshold=0.3),
         binary_column, lambda y, p, w: skm.accuracy_score(y, p > 0.3, sample_weight=w)),
    Case("binary_accuracy_flat", metrics.BinaryAccuracy, binary_flat,
         lambda y, p, w: skm.accuracy_score(y, p > 0.5, sample_weight=w)),
    Case("binary_accuracy_logits", lambda: metrics.BinaryAccuracy(from_logits=True),
         binary_logits, lambda y, p, w: skm.accuracy_score(y, _sigmoid(p) > 0.5, sample_weight=w)),
    Case("binary_accuracy_multilabel", metrics.BinaryAccuracy, multilabel,
         lambda y, p, w: weighted_mean((y == (p > 0.5)).mean(-1), w)),
    Case("categorical_accuracy", metrics.CategoricalAccuracy, one_hot,
         lambda y, p, w: skm.accuracy_score(y.argmax(-1), p.argmax(-1), sample_weight=w)),
    Case("sparse_categorical_accuracy", metrics.SparseCategoricalAccuracy, sparse,
         lambda y, p, w: skm.accuracy_score(y, p.argmax(-1), sample_weight=w)),
    Case("sparse_categorical_accuracy_column", metrics.SparseCategoricalAccuracy, sparse_column,
         lambda y, p, w: skm.accuracy_score(y[:, 0], p.argmax(-1), sample_weight=w)),
    Case("top_k_categorical_accuracy", lambda: metrics.TopKCategoricalAccuracy(k=2), one_hot,
         lambda y, p, w: skm.top_k_accuracy_score(
             y.argmax(-1), p, k=2, sample_weight=w, labels=range(CLASSES))),
    Case("sparse_top_k_categorical_accuracy",
         lambda: metrics.SparseTopKCategoricalAccuracy(k=2), sparse,
         lambda y, p, w: skm.top_k_accuracy_score(
             y, p, k=2, sample_weight=w, labels=range(CLASSES))),
    Case("sparse_top_k_from_sorted_ids",
         lambda: metrics.SparseTopKCategoricalAccuracy(k=2, from_sorted_ids=True), sorted_ids,
         lambda y, p, w: weighted_mean((p[:, :2] == y[:, None]).any(-1), w)),
    Case("precision", metrics.Precision, binary_flat, precision_or_recall(skm.precision_score)),
    Case("precision_thresholds", lambda: metrics.Precision(thresholds=[0.25, 0.5, 0.75]),
         binary_flat, precision_or_recall(skm.precision_score, [0.25, 0.5, 0.75])),
    Case("precision_even_thresholds", lambda: metrics.Precision(thresholds=[0.0, 0.5, 1.0]),
         binary_flat, precision_or_recall(skm.precision_score, [0.0, 0.5, 1.0])),
    Case("precision_top_k", lambda: metrics.Precision(top_k=2), multilabel,
         precision_or_recall(skm.precision_score, top_k=2)),
    Case("precision_class_id", lambda: metrics.Precision(class_id=1), multilabel,
         precision_or_recall(skm.precision_score, class_id=1)),
    Case("precision_top_k_class_id", lambda: metrics.Precision(top_k=2, class_id=3),
         multilabel, precision_or_recall(skm.precision_score, top_k=2, class_id=3)),
    Case("recall", metrics.Recall, binary_column, precision_or_recall(skm.recall_score)),
    Case("recall_thresholds", lambda: metrics.Recall(thresholds=[0.2, 0.8]), binary_flat,
         precision_or_recall(skm.recall_score, [0.2, 0.8])),
    Case("recall_top_k", lambda: metrics.Recall(top_k=3), multilabel,
         precision_or_recall(skm.recall_score, top_k=3)),
    Case("recall_class_id", lambda: metrics.Recall(class_id=0), multilabel,
         precision_or_recall(skm.recall_score, class_id=0)),
    Case("true_positives", lambda: metrics.TruePositives(thresholds=[0.3, 0.6]), binary_flat,
         confusion_cell("tp", [0.3, 0.6])),
    Case("false_positives", metrics.FalsePositives, binary_flat, confusion_cell("fp", [0.5])),
    Case("true_negatives", metrics.TrueNegatives, multilabel, confusion_cell("tn", [0.5])),
    Case("false_negatives", lambda: metrics.FalseNegatives(thresholds=0.7), binary_column,
         confusion_cell("fn", [0.7])),
    Case("auc_roc", metrics.AUC, quantized,
         lambda y, p, w: skm.roc_auc_score(y, p, sample_weight=w)),
    Case("auc_roc_continuous", metrics.AUC, binary_flat,
         lambda y, p, w: skm.roc_auc_score(y, p, sample_weight=w), tol=1e-2),
    Case("auc_roc_logits", lambda: metrics.AUC(from_logits=True), quantized_logits,
         lambda y, p, w: skm.roc_auc_score(y, p, sample_weight=w)),
    Case("auc_roc_thresholds", lambda: metrics.AUC(thresholds=[0.1, 0.3, 0.5, 0.7, 0.9]),
         between_thresholds, lambda y, p, w: skm.roc_auc_score(y, p, sample_weight=w)),
    Case("auc_pr", lambda: metrics.AUC(curve="PR"), quantized, interpolated_pr_auc, tol=1e-4),
    Case("auc_multi_label", lambda: metrics.AUC(multi_label=True), multilabel_quantized,
         multilabel_auc()),
    Case("auc_multi_label_weights",
         lambda: metrics.AUC(multi_label=True, num_labels=LABELS,
                             label_weights=[1.0, 2.0, 0.0, 0.5, 1.0]),
         multilabel_quantized, multilabel_auc([1.0, 2.0, 0.0, 0.5, 1.0])),
    Case("f1_none", lambda: metrics.F1Score(threshold=0.5), multilabel,
         f_beta(1.0, None, 0.5)),
    Case("f1_micro", lambda: metrics.F1Score(average="micro", threshold=0.5), multilabel,
         f_beta(1.0, "micro", 0.5)),
    Case("f1_macro", lambda: metrics.F1Score(average="macro", threshold=0.5), multilabel,
         f_beta(1.0, "macro", 0.5)),
    Case("f1_weighted", lambda: metrics.F1Score(average="weighted", threshold=0.5), multilabel,
         f_beta(1.0, "weighted", 0.5)),
    Case("f1_argmax", lambda: metrics.F1Score(average="macro"), one_hot,
         f_beta(1.0, "macro", None)),
    Case("fbeta", lambda: metrics.FBetaScore(average="macro", beta=2.0, threshold=0.4),
         multilabel, f_beta(2.0, "macro", 0.4)),
    Case("confusion_matrix", lambda: metrics.ConfusionMatrix(CLASSES), sparse,
         lambda y, p, w: skm.confusion_matrix(
             y, p.argmax(-1), labels=range(CLASSES), sample_weight=w)),
    Case("confusion_matrix_binary", lambda: metrics.ConfusionMatrix(2), binary_column,
         lambda y, p, w: skm.confusion_matrix(y[:, 0], p[:, 0] > 0.5, sample_weight=w)),
    Case("mean", metrics.Mean, values, lambda v, _, w: weighted_mean(v, w), values_only=True),
    Case("sum", metrics.Sum, values, lambda v, _, w: float(np.sum(v * w)), values_only=True),
    Case("mean_metric_wrapper", lambda: metrics.MeanMetricWrapper(losses.huber, delta=0.5),
         regression, torch_per_sample(
             lambda y, p: F.huber_loss(p, y, reduction="none", delta=0.5).mean(-1))),
    Case("mean_squared_error", metrics.MeanSquaredError, regression,
         lambda y, p, w: skm.mean_squared_error(y, p, sample_weight=w)),
    Case("mean_squared_error_flat", metrics.MeanSquaredError, regression_flat,
         lambda y, p, w: skm.mean_squared_error(y, p, sample_weight=w)),
    Case("mean_absolute_error", metrics.MeanAbsoluteError, regression,
         lambda y, p, w: skm.mean_absolute_error(y, p, sample_weight=w)),
    Case("root_mean_squared_error", metrics.RootMeanSquaredError, regression,
         lambda y, p, w: np.sqrt(skm.mean_squared_error(y, p, sample_weight=w))),
    Case("mean_absolute_percentage_error", metrics.MeanAbsolutePercentageError, positive,
         lambda y, p, w: 100 * skm.mean_absolute_percentage_error(y, p, sample_weight=w)),
    Case("mean_squared_logarithmic_error", metrics.MeanSquaredLogarithmicError, positive,
         lambda y, p, w: skm.mean_squared_log_error(y, p, sample_weight=w)),
    Case("log_cosh_error", metrics.LogCoshError, regression,
         lambda y, p, w: weighted_mean(np.log(np.cosh(p - y)).mean(-1), w)),
    Case("cosine_similarity", metrics.CosineSimilarity, regression,
         lambda y, p, w: weighted_mean(
             (y * p).sum(-1) / np.linalg.norm(y, axis=-1) / np.linalg.norm(p, axis=-1), w)),
    Case("binary_crossentropy", metrics.BinaryCrossentropy, probabilities, torch_per_sample(
        lambda y, p: F.binary_cross_entropy(p, y, reduction="none").mean(-1))),
    Case("binary_crossentropy_logits",
         lambda: metrics.BinaryCrossentropy(from_logits=True, label_smoothing=0.2),
         binary_logit_matrix, torch_per_sample(
             lambda y, p: F.binary_cross_entropy_with_logits(
                 p, y * 0.8 + 0.1, reduction="none").mean(-1))),
    Case("categorical_crossentropy", metrics.CategoricalCrossentropy, one_hot,
         lambda y, p, w: weighted_mean(-(y * np.log(p)).sum(-1), w)),
    Case("sparse_categorical_crossentropy", metrics.SparseCategoricalCrossentropy, sparse,
         torch_per_sample(lambda y, p: F.nll_loss(p.log(), y.long(), reduction="none"))),
    Case("kl_divergence", metrics.KLDivergence, distributions, torch_per_sample(
        lambda y, p: F.kl_div(p.log(), y, reduction="none").sum(-1))),
    Case("poisson", metrics.Poisson, positive, torch_per_sample(
        lambda y, p: F.poisson_nll_loss(p, y, log_input=False, eps=1e-7,
                                        reduction="none").mean(-1))),
    Case("hinge", metrics.Hinge, probabilities,
         lambda y, p, w: weighted_mean(np.maximum(1 - signed(y) * p, 0).mean(-1), w)),
    Case("squared_hinge", metrics.SquaredHinge, probabilities,
         lambda y, p, w: weighted_mean((np.maximum(1 - signed(y) * p, 0) ** 2).mean(-1), w)),
    Case("categorical_hinge", metrics.CategoricalHinge, one_hot,
         lambda y, p, w: weighted_mean(
             np.maximum(((1 - y) * p).max(-1) - (y * p).sum(-1) + 1, 0), w)),
    Case("iou", lambda: metrics.IoU(3, target_class_ids=[0, 2]), integer_pairs,
         iou_reference([0, 2])),
    Case("iou_ignore_class", lambda: metrics.IoU(3, [1], ignore_class=255), segmentation,
         iou_reference([1], ignore_class=255)),
    Case("mean_iou", lambda: metrics.MeanIoU(3, ignore_class=255), segmentation,
         iou_reference([0, 1, 2], ignore_class=255)),
    Case("mean_iou_dense", lambda: metrics.MeanIoU(CLASSES, sparse_y_true=False,
                                                  sparse_y_pred=False), one_hot_pair,
         iou_reference(list(range(CLASSES)), dense=True)),
    Case("binary_iou", lambda: metrics.BinaryIoU([0, 1], threshold=0.3), binary_flat,
         iou_reference([0, 1], threshold=0.3)),
    Case("one_hot_iou", lambda: metrics.OneHotIoU(CLASSES, [1, 3]), one_hot_pair,
         iou_reference([1, 3], dense=True)),
    Case("one_hot_mean_iou", lambda: metrics.OneHotMeanIoU(CLASSES), one_hot_pair,
         iou_reference(list(range(CLASSES)), dense=True)),
    Case("r2_score", metrics.R2Score, regression, r2_reference()),
    Case("r2_score_variance_weighted_adjusted",
         lambda: metrics.R2Score("variance_weighted_average", num_regressors=4), regression,
         r2_reference("variance_weighted", 4)),
    Case("pearson_correlation", metrics.PearsonCorrelation, regression,
         correlation_reference("pearson")),
    Case("concordance_correlation", metrics.ConcordanceCorrelation, regression,
         correlation_reference("concordance")),
    Case("sensitivity_at_specificity", lambda: metrics.SensitivityAtSpecificity(0.63),
         quantized, operating_point("sensitivity", "specificity", 0.63)),
    Case("specificity_at_sensitivity", lambda: metrics.SpecificityAtSensitivity(0.71),
         quantized, operating_point("specificity", "sensitivity", 0.71)),
    Case("precision_at_recall", lambda: metrics.PrecisionAtRecall(0.41), quantized,
         operating_point("precision", "recall", 0.41)),
    Case("recall_at_precision", lambda: metrics.RecallAtPrecision(0.57), quantized,
         operating_point("recall", "precision", 0.57)),
    Case("recall_at_precision_class_id",
         lambda: metrics.RecallAtPrecision(0.52, class_id=2), multilabel_quantized,
         operating_point("recall", "precision", 0.52, class_id=2)),
]
