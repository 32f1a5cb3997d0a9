"""`report(model, x, y)`: a classifier's evaluation as one self-contained HTML file.

scikit-learn computes every number (accuracy, per-class precision/recall/F1, the confusion
matrix, one-vs-rest ROC AUC and average precision); matplotlib draws the curves; the page embeds
its images as PNG data URIs, so the one file can be mailed or archived as it is.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

# Probabilities are clipped here before the log, as Keras's cross-entropy losses clip them.
EPSILON = 1e-7


@dataclasses.dataclass
class EvaluationReport:
    """What `report()` computed and wrote. Per-class arrays are indexed by class id; an ROC AUC
    or average precision is NaN for a class that `y` never (or always) holds."""

    path: Path | None
    class_names: list[str]
    labels: np.ndarray            # (n,) the true class ids
    predictions: np.ndarray       # (n,) the predicted class ids
    probabilities: np.ndarray     # (n, classes)
    losses: np.ndarray            # (n,) cross-entropy of the true class: -log p_true
    accuracy: float
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray
    averages: dict[str, dict[str, float]]   # {"macro": {...}, "weighted": {...}}
    confusion_matrix: np.ndarray  # (classes, classes), rows are true labels
    roc_auc: float                # binary: the positive class's; else the macro one-vs-rest mean
    roc_auc_per_class: np.ndarray
    average_precision: float
    average_precision_per_class: np.ndarray
    mistakes: np.ndarray          # indices of misclassified samples, highest loss first
    text: str                     # scikit-learn's classification_report
    curves: list[tuple] = dataclasses.field(default_factory=list, repr=False)
    # The page's plots as PNG bytes, by section: "learning_curves", "confusion_matrix", "roc_pr".
    images: dict[str, bytes] = dataclasses.field(default_factory=dict, repr=False)

    @property
    def binary(self) -> bool:
        return len(self.class_names) == 2


def report(model: Any, x: Any, y: Any, *, class_names: Sequence[str] | None = None,
           history: Any = None, doctor: Any = None, path: str | os.PathLike = "report.html",
           batch_size: int | None = None, from_logits: bool | None = None,
           images: bool | None = None, max_mistakes: int = 16,
           title: str | None = None) -> EvaluationReport:
    """Evaluate a classifier on `(x, y)` and write the HTML report to `path` (atomically).

    Args:
        model: anything with Keras's `predict(x, batch_size=..., verbose=0)`, giving
            `(n, classes)` probabilities or logits, or `(n, 1)`/`(n,)` for a binary classifier.
        y: class ids `(n,)`, or one-hot `(n, classes)`.
        class_names: one name per class (default: the class ids).
        history: the `History` from `fit()` (or its dict) for the learning curves and learning
            rate; default `model.history` when the model was trained in this process.
        doctor: a `lamina.callbacks.Doctor` that watched training; its diagnoses are listed.
        from_logits: whether the outputs are logits; None infers it (outputs outside [0, 1], or
            rows not summing to 1, are logits).
        images: whether `x` holds images, shown as thumbnails of the worst mistakes; None means
            4-D inputs with 1, 3 or 4 channels (channels last or first).
        max_mistakes: how many of the highest-loss misclassified samples to show.
    """
    if not hasattr(model, "predict"):
        raise TypeError(
            "`model` must have a Keras-style predict() (a lamina Model, or lamina.wrap(module)). "
            f"Received: {type(model).__name__}."
        )
    if doctor is not None and not hasattr(doctor, "diagnoses"):
        raise TypeError(
            "`doctor` must be the lamina.callbacks.Doctor that watched training (an object with "
            f"`.diagnoses`), or None. Received: {type(doctor).__name__}."
        )
    if not isinstance(max_mistakes, int) or isinstance(max_mistakes, bool) or max_mistakes < 0:
        raise ValueError(
            f"`max_mistakes` must be a non-negative integer. Received: max_mistakes={max_mistakes!r}."
        )
    if history is None and hasattr(getattr(model, "history", None), "history"):
        history = model.history
    outputs = _numpy(model.predict(x, batch_size=batch_size, verbose=0))
    result = classification_scores(y, outputs, class_names=class_names, from_logits=from_logits,
                                   max_mistakes=max_mistakes)
    thumbnails = _images(x, images, len(result.labels))

    from lamina.evaluation._html import render
    from lamina.saving.file_format import atomic_write

    page = render(result, history=history, doctor=doctor, images=thumbnails,
                  title=title or f"Evaluation of {getattr(model, 'name', type(model).__name__)}")
    result.path = Path(path)
    atomic_write(result.path, lambda temporary: Path(temporary).write_text(page, encoding="utf-8"))
    return result


def classification_scores(y: Any, outputs: Any, *, class_names: Sequence[str] | None = None,
                          from_logits: bool | None = None,
                          max_mistakes: int = 16) -> EvaluationReport:
    """The report's numbers from a classifier's outputs, without writing anything."""
    from sklearn import metrics

    probabilities, log_probabilities = _probabilities(_numpy(outputs), from_logits)
    count, classes = probabilities.shape
    labels = _labels(y, count, classes)
    if class_names is None:
        class_names = [str(i) for i in range(classes)]
    class_names = [str(name) for name in class_names]
    if len(class_names) != classes:
        raise ValueError(
            f"`class_names` must name each of the model's {classes} classes. Received "
            f"{len(class_names)} names: {class_names[:12]}."
        )
    predictions = probabilities.argmax(axis=1)
    ids = list(range(classes))
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        labels, predictions, labels=ids, average=None, zero_division=0)
    averages = {}
    for average in ("macro", "weighted"):
        p, r, f, _ = metrics.precision_recall_fscore_support(
            labels, predictions, labels=ids, average=average, zero_division=0)
        averages[average] = {"precision": float(p), "recall": float(r), "f1": float(f)}

    roc_auc = np.full(classes, np.nan)
    average_precision = np.full(classes, np.nan)
    curves = []
    for c in ids:
        positive = labels == c
        if positive.all() or not positive.any():
            continue  # one-vs-rest curves need both outcomes
        score = probabilities[:, c]
        roc_auc[c] = metrics.roc_auc_score(positive, score)
        average_precision[c] = metrics.average_precision_score(positive, score)
        if classes > 2 or c == 1:  # a binary problem is drawn once, for the positive class
            fpr, tpr, _ = metrics.roc_curve(positive, score)
            precisions, recalls, _ = metrics.precision_recall_curve(positive, score)
            curves.append((class_names[c], fpr, tpr, roc_auc[c], recalls, precisions,
                           average_precision[c]))

    losses = -log_probabilities[np.arange(count), labels]
    wrong = np.flatnonzero(predictions != labels)
    mistakes = wrong[np.argsort(-losses[wrong], kind="stable")][:max_mistakes]
    return EvaluationReport(
        path=None, class_names=class_names, labels=labels, predictions=predictions,
        probabilities=probabilities, losses=losses,
        accuracy=float(metrics.accuracy_score(labels, predictions)),
        precision=precision, recall=recall, f1=f1, support=support, averages=averages,
        confusion_matrix=metrics.confusion_matrix(labels, predictions, labels=ids),
        roc_auc=_summary(roc_auc, classes), roc_auc_per_class=roc_auc,
        average_precision=_summary(average_precision, classes),
        average_precision_per_class=average_precision, mistakes=mistakes,
        text=metrics.classification_report(labels, predictions, labels=ids,
                                           target_names=class_names, digits=4, zero_division=0),
        curves=curves,
    )


def _summary(per_class: np.ndarray, classes: int) -> float:
    if classes == 2:
        return float(per_class[1])
    present = per_class[~np.isnan(per_class)]
    return float(present.mean()) if present.size else float("nan")


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, possibly on an accelerator
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _probabilities(outputs: np.ndarray, from_logits: bool | None) -> tuple[np.ndarray, np.ndarray]:
    """`(probabilities, log_probabilities)`, each `(n, classes)`; a single sigmoid column
    becomes the two classes `[1 - p, p]`."""
    if outputs.ndim == 1:
        outputs = outputs[:, None]
    if outputs.ndim != 2 or outputs.shape[0] == 0 or not np.issubdtype(outputs.dtype, np.number):
        raise ValueError(
            "report() evaluates classifiers: predict() must give (n, classes) probabilities or "
            f"logits, or (n, 1) for binary. Received outputs of shape {outputs.shape} and dtype "
            f"{outputs.dtype}."
        )
    outputs = outputs.astype(np.float64)
    if not np.isfinite(outputs).all():
        raise ValueError(
            f"predict() gave {int((~np.isfinite(outputs)).sum())} non-finite outputs (NaN or "
            "Inf): the model diverged or the inputs hold NaN. Check the inputs and the training."
        )
    in_unit_range = outputs.min() >= 0 and outputs.max() <= 1
    if outputs.shape[1] == 1:
        if from_logits is None:
            from_logits = not in_unit_range
        if from_logits:
            # softmax([0, z]) is [1 - sigmoid(z), sigmoid(z)], with a stable log.
            logits = np.concatenate([np.zeros_like(outputs), outputs], axis=1)
        else:
            p = outputs[:, 0]
            return _clipped(np.column_stack([1 - p, p]))
    else:
        if from_logits is None:
            from_logits = not (in_unit_range and np.allclose(outputs.sum(axis=1), 1, atol=1e-3))
        if not from_logits:
            return _clipped(outputs)
        logits = outputs
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return np.exp(log_probabilities), log_probabilities


def _clipped(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return probabilities, np.log(np.clip(probabilities, EPSILON, 1.0))


def _labels(y: Any, count: int, classes: int) -> np.ndarray:
    y = _numpy(y)
    if y.ndim == 2 and y.shape[1] == classes and classes > 1:
        if not np.issubdtype(y.dtype, np.number) or not np.allclose(y.sum(axis=1), 1, atol=1e-3):
            raise ValueError(
                f"`y` of shape {y.shape} must hold one-hot rows (each summing to 1); the report "
                "covers single-label classification, not multi-label targets. Received rows "
                f"such as {y[:2].tolist()}."
            )
        y = y.argmax(axis=1)  # one-hot (or smoothed) targets
    elif y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != count:
        raise ValueError(
            f"`y` must hold one class id per sample ({count},) or one-hot rows ({count}, "
            f"{classes}), as many as predict() gave. Received y of shape {y.shape}."
        )
    if not np.issubdtype(y.dtype, np.number) or not np.isfinite(y).all() or (y != np.round(y)).any():
        raise ValueError(
            "`y` must hold integer class ids. Received values such as "
            f"{y[:5].tolist()} (dtype {y.dtype}). Pass class ids, not probabilities or names."
        )
    y = y.astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= classes):
        bad = y[(y < 0) | (y >= classes)]
        raise ValueError(
            f"`y` holds class ids outside 0..{classes - 1}, the model's {classes} output classes: "
            f"{sorted(set(bad.tolist()))[:10]}. Check the labels or the model's last layer."
        )
    return y


def _images(x: Any, images: bool | None, count: int) -> np.ndarray | None:
    """The inputs as `(n, height, width, channels)` for thumbnails, or None if not images."""
    if images is False:
        return None
    array = _numpy(x) if hasattr(x, "shape") else None
    if array is not None and len(array) == count:
        if array.ndim == 4 and array.shape[-1] in (1, 3, 4):
            return array
        if array.ndim == 4 and array.shape[1] in (1, 3, 4):
            return np.moveaxis(array, 1, -1)
        if array.ndim == 3 and images:
            return array[..., None]
    if images:
        raise ValueError(
            "images=True needs `x` as an array of images: (n, height, width), or (n, height, "
            "width, channels) / (n, channels, height, width) with 1, 3 or 4 channels. Received "
            f"{'shape ' + str(array.shape) if array is not None else type(x).__name__}."
        )
    return None
