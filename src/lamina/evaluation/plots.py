"""The report's pictures, drawn by matplotlib: learning curves with the learning rate, the
confusion matrix, ROC and precision-recall curves.

Each `*_figure` function draws on a `matplotlib.figure.Figure` made without pyplot (no global
figure registry, no GUI backend needed, safe from any thread) unless it is handed one;
`plot_history` is the pyplot door, so `plt.show()` and notebooks display its figure.
"""

from __future__ import annotations

import io
import math
import sys
from typing import Any, Mapping, Sequence

import numpy as np

# Keras 3's schedulers log "learning_rate"; Keras 2 logged "lr".
LEARNING_RATE_KEYS = ("learning_rate", "lr")

# Past this many classes, per-cell counts and legends stop being readable.
_MAX_ANNOTATED_CLASSES = 30
_MAX_LEGEND_CLASSES = 10


def history_dict(history: Any) -> tuple[dict[str, list[float]], list[int]]:
    """`history` (a `History`, the dict in `History.history`, or anything with a `.history`
    mapping) as `({key: values}, epoch_numbers)`, epochs counted from 1."""
    logs = getattr(history, "history", history)
    if not isinstance(logs, Mapping):
        raise TypeError(
            "`history` must be the History returned by fit() or its `.history` dict of lists. "
            f"Received: {type(history).__name__}."
        )
    logs = {str(key): [float(value) for value in values] for key, values in logs.items()}
    length = max((len(values) for values in logs.values()), default=0)
    epochs = list(getattr(history, "epoch", None) or [])
    if len(epochs) != length:  # a plain dict, or a History resumed without its epochs
        epochs = list(range(length))
    return logs, [epoch + 1 for epoch in epochs]


def _panels(logs: Mapping[str, list[float]], metrics: Sequence[str] | None) -> list[str]:
    """The metric names that get a panel: each training key, or the `val_` key alone when only
    validation was logged; the learning rate gets its own panel."""
    names: list[str] = []
    for key in logs:
        name = key[4:] if key.startswith("val_") else key
        if name not in names and key not in LEARNING_RATE_KEYS:
            names.append(name)
    if metrics is None:
        return names
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    unknown = [name for name in metrics if name not in names and name not in LEARNING_RATE_KEYS]
    if unknown:
        raise ValueError(
            f"No history was logged for {unknown}. The history holds: {names}"
            + (f" and {[k for k in LEARNING_RATE_KEYS if k in logs]}" if any(
                k in logs for k in LEARNING_RATE_KEYS) else "")
            + ". Pass `metrics=` from those names."
        )
    return [name for name in metrics if name not in LEARNING_RATE_KEYS]


def learning_curves_figure(history: Any, metrics: Sequence[str] | None = None, *,
                           figure: Any = None) -> Any:
    """One panel per metric with its training and `val_` curves, and one for the learning rate
    when it was logged (ReduceLROnPlateau and LearningRateScheduler log it each epoch).

    Lines are labelled by their history key (`loss`, `val_loss`, `learning_rate`).
    """
    logs, epochs = history_dict(history)
    panels = _panels(logs, metrics)
    learning_rate = next((key for key in LEARNING_RATE_KEYS if key in logs), None)
    if metrics is not None and learning_rate not in (
            [metrics] if isinstance(metrics, str) else list(metrics)):
        learning_rate = None
    count = len(panels) + (learning_rate is not None)
    if count == 0:
        raise ValueError("The history is empty: nothing to plot. Train with fit() first.")
    columns = min(count, 3)
    rows = math.ceil(count / columns)
    figure = _figure(figure, (4.2 * columns, 3.4 * rows))
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for axis, name in zip(axes, panels):
        for key in (name, f"val_{name}"):
            if key in logs:
                axis.plot(_epochs_for(epochs, logs[key]), logs[key], label=key)
        axis.set_title(name, parse_math=False)
        _epoch_axis(axis)
    if learning_rate is not None:
        axis = axes[len(panels)]
        axis.plot(_epochs_for(epochs, logs[learning_rate]), logs[learning_rate],
                  label=learning_rate, color="tab:green", drawstyle="steps-post")
        if min(logs[learning_rate], default=0) > 0:
            axis.set_yscale("log")
        axis.set_title("learning rate")
        _epoch_axis(axis)
    for axis in axes[count:]:
        axis.set_visible(False)
    figure.tight_layout()
    return figure


def plot_history(history: Any, metrics: Sequence[str] | None = None) -> Any:
    """`history.plot()`: the learning curves as a pyplot figure (shown by `plt.show()`, or by a
    notebook at the cell's end); returns the `Figure`."""
    import matplotlib.pyplot as plt

    return learning_curves_figure(history, metrics, figure=plt.figure())


def confusion_matrix_figure(matrix: np.ndarray, class_names: Sequence[str], *,
                            figure: Any = None) -> Any:
    """The confusion matrix as a heatmap, counts in the cells; rows are true labels."""
    matrix = np.asarray(matrix)
    count = len(class_names)
    side = min(4.0 + 0.45 * count, 16.0)
    figure = _figure(figure, (side + 1.2, side))
    axis = figure.subplots()
    image = axis.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axis)
    if count <= 3 * _MAX_ANNOTATED_CLASSES:
        axis.set_xticks(range(count), list(class_names), rotation=90 if count > 10 else 0,
                        parse_math=False)
        axis.set_yticks(range(count), list(class_names), parse_math=False)
    if count <= _MAX_ANNOTATED_CLASSES:
        threshold = matrix.max() / 2 if matrix.size else 0
        for i in range(count):
            for j in range(count):
                axis.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8,
                          color="white" if matrix[i, j] > threshold else "black")
    axis.set_title("Confusion matrix")
    axis.set_ylabel("True label")
    axis.set_xlabel("Predicted label")
    figure.tight_layout()
    return figure


def roc_pr_figure(curves: Sequence[tuple[str, np.ndarray, np.ndarray, float,
                                         np.ndarray, np.ndarray, float]], *,
                  figure: Any = None) -> Any:
    """ROC and precision-recall curves side by side; `curves` holds one
    `(label, fpr, tpr, auc, recall, precision, average_precision)` row per curve."""
    figure = _figure(figure, (11, 4.6))
    roc_axis, pr_axis = figure.subplots(1, 2)
    legend = len(curves) <= _MAX_LEGEND_CLASSES
    for label, fpr, tpr, auc, recall, precision, average_precision in curves:
        roc_axis.plot(fpr, tpr, linewidth=1.2, label=f"{label} (AUC {auc:.3f})")
        pr_axis.step(recall, precision, where="post", linewidth=1.2,
                     label=f"{label} (AP {average_precision:.3f})")
    roc_axis.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    roc_axis.set(xlabel="False positive rate", ylabel="True positive rate", title="ROC",
                 xlim=(0, 1), ylim=(0, 1.02))
    pr_axis.set(xlabel="Recall", ylabel="Precision", title="Precision-recall", xlim=(0, 1),
                ylim=(0, 1.02))
    for axis in (roc_axis, pr_axis):
        axis.grid(alpha=0.3)
        if legend:
            for text in axis.legend(fontsize=7).get_texts():
                text.set_parse_math(False)
    figure.tight_layout()
    return figure


def figure_png(figure: Any, dpi: int = 100) -> bytes:
    """The figure as PNG bytes; a pyplot figure is closed afterwards so it is not shown twice."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close(figure)
    return buffer.getvalue()


def _figure(figure: Any, size: tuple[float, float]) -> Any:
    if figure is None:
        from matplotlib.figure import Figure

        return Figure(figsize=size)
    figure.set_size_inches(*size)
    return figure


def _epochs_for(epochs: list[int], values: list[float]) -> list[int]:
    # A key logged only in the last epochs (a callback added on resume) aligns to the end.
    return epochs[len(epochs) - len(values):]


def _epoch_axis(axis: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_xlabel("epoch")
    axis.grid(alpha=0.3)
    for text in axis.legend(fontsize=8).get_texts():
        text.set_parse_math(False)
