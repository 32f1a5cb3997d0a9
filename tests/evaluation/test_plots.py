"""`History.plot()` and the report's figures: one panel per metric with its `val_` pair, the
learning rate on its own panel, each line holding exactly the logged values."""

from __future__ import annotations

import io

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import lamina as keras  # noqa: E402
from lamina import layers  # noqa: E402
from lamina.callbacks import History  # noqa: E402
from lamina.evaluation import confusion_matrix_figure, learning_curves_figure  # noqa: E402


def lines(figure: Figure) -> dict[str, dict[str, tuple[list[float], list[float]]]]:
    """`{panel title: {line label: (x, y)}}` for the visible panels."""
    return {
        axis.get_title(): {line.get_label(): (list(line.get_xdata()), list(line.get_ydata()))
                           for line in axis.get_lines()}
        for axis in figure.axes if axis.get_visible()
    }


def history(logs: dict[str, list[float]], epochs: list[int] | None = None) -> History:
    recorded = History()
    recorded.history = {key: list(values) for key, values in logs.items()}
    recorded.epoch = epochs if epochs is not None else list(range(len(next(iter(logs.values())))))
    return recorded


LOGS = {"loss": [1.0, 0.6, 0.5], "accuracy": [0.5, 0.7, 0.8], "val_loss": [1.1, 0.8, 0.9],
        "val_accuracy": [0.4, 0.6, 0.6], "learning_rate": [1e-3, 1e-3, 5e-4]}


def test_history_plot_draws_each_metric_with_its_validation_pair_and_the_learning_rate():
    figure = history(LOGS).plot()
    try:
        assert isinstance(figure, Figure) and plt.fignum_exists(figure.number)
        drawn = lines(figure)
        assert drawn == {
            "loss": {"loss": ([1, 2, 3], LOGS["loss"]), "val_loss": ([1, 2, 3], LOGS["val_loss"])},
            "accuracy": {"accuracy": ([1, 2, 3], LOGS["accuracy"]),
                         "val_accuracy": ([1, 2, 3], LOGS["val_accuracy"])},
            "learning rate": {"learning_rate": ([1, 2, 3], LOGS["learning_rate"])},
        }
        rate_axis = next(axis for axis in figure.axes if axis.get_title() == "learning rate")
        assert rate_axis.get_yscale() == "log"
    finally:
        plt.close(figure)


def test_history_plot_after_fit_and_metric_selection():
    keras.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    model = keras.Sequential([keras.Input(shape=(4,)), layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    fitted = model.fit(x, y, epochs=3, validation_split=0.25, verbose=0)
    figure = fitted.plot(metrics=["loss"])
    try:
        drawn = lines(figure)
        assert list(drawn) == ["loss"]
        assert drawn["loss"]["val_loss"] == ([1, 2, 3], fitted.history["val_loss"])
        assert drawn["loss"]["loss"][1] == fitted.history["loss"]
    finally:
        plt.close(figure)
    with pytest.raises(ValueError, match=r"No history was logged for \['auc'\]. The history "
                                         r"holds: \['loss', 'accuracy'\]"):
        fitted.plot(metrics=["auc"])


def test_resumed_epochs_validation_only_keys_and_an_empty_history():
    # A run resumed at epoch 5 (0-based) shows epochs 6..8; a key logged only as val_ still
    # gets its panel; a key logged for fewer epochs aligns with the last ones.
    figure = learning_curves_figure(history(
        {"loss": [3.0, 2.0, 1.0], "val_auc": [0.6, 0.7, 0.8], "lr": [0.1, 0.01]}, [5, 6, 7]))
    assert lines(figure) == {
        "loss": {"loss": ([6, 7, 8], [3.0, 2.0, 1.0])},
        "auc": {"val_auc": ([6, 7, 8], [0.6, 0.7, 0.8])},
        "learning rate": {"lr": ([7, 8], [0.1, 0.01])},
    }
    assert figure.canvas.manager is None  # made without pyplot: never shown, nothing to close
    with pytest.raises(ValueError, match="The history is empty"):
        learning_curves_figure({})
    with pytest.raises(TypeError, match="Received: list"):
        learning_curves_figure([1.0, 2.0])


def test_confusion_matrix_figure_tolerates_mathtext_in_class_names():
    # An unbalanced `$` would make matplotlib's mathtext parser raise while drawing.
    matrix = np.array([[5, 1], [2, 7]])
    figure = confusion_matrix_figure(matrix, ["$\\frac{", "cost $5"])
    figure.savefig(io.BytesIO(), format="png")
    axis = figure.axes[0]
    assert [label.get_text() for label in axis.get_xticklabels()] == ["$\\frac{", "cost $5"]
    assert sorted(text.get_text() for text in axis.texts) == ["1", "2", "5", "7"]
