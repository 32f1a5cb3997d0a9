"""The main job: train a small CNN on the bundled digits and write a report.

`lamina demo` (and `make demo`) trains with a validation split, EarlyStopping and
ReduceLROnPlateau, evaluates on a held-out test split, and writes a run folder with the saved
model, `history.csv`, learning curves and a confusion matrix as PNG, and a classification report.
"""

from __future__ import annotations

import datetime
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np


def build_model():
    """A small CNN for 8x8x1 digits: two 3x3 convolution stages, then a softmax classifier."""
    import lamina as keras
    from lamina import layers

    return keras.Sequential([
        keras.Input(shape=(8, 8, 1)),
        layers.Conv2D(32, (3, 3), activation="relu", padding="same"),
        layers.BatchNormalization(),
        layers.Conv2D(32, (3, 3), activation="relu", padding="same"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu", padding="same"),
        layers.BatchNormalization(),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dropout(0.3),
        layers.Dense(64, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ], name="digits_cnn")


def run_demo(output_dir: str | os.PathLike | None = None, epochs: int = 60, seed: int = 0,
             verbose: Any = "auto") -> dict[str, Any]:
    """Train, evaluate and report; returns the test metrics and the run folder."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import classification_report, confusion_matrix

    import lamina as keras
    from lamina.datasets import digits

    keras.set_random_seed(seed)
    started = time.perf_counter()
    run = Path(output_dir or Path("runs") / datetime.datetime.now().strftime("demo-%Y%m%d-%H%M%S"))
    run.mkdir(parents=True, exist_ok=True)

    (x_train, y_train), (x_test, y_test) = digits.load_data(test_split=0.2, seed=seed)
    model = build_model()
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=3e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.summary()
    history = model.fit(
        x_train, y_train, batch_size=32, epochs=epochs, validation_split=0.15, verbose=verbose,
        callbacks=[
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=10,
                                          restore_best_weights=True),
            keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=4,
                                              min_lr=1e-5),
            keras.callbacks.CSVLogger(str(run / "history.csv")),
        ],
    )
    test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
    predicted = model.predict(x_test, verbose=0).argmax(axis=1)

    model.save(run / "model.keras")
    class_names = [str(i) for i in range(10)]
    report = classification_report(y_test, predicted, target_names=class_names, digits=4)
    (run / "classification_report.txt").write_text(report)
    _plot_learning_curves(plt, history.history, run / "learning_curves.png")
    _plot_confusion_matrix(plt, confusion_matrix(y_test, predicted), class_names,
                           run / "confusion_matrix.png")
    results = {
        "test_loss": float(test_loss),
        "test_accuracy": float(test_accuracy),
        "epochs_run": len(history.history["loss"]),
        "seconds": round(time.perf_counter() - started, 2),
        "run_dir": str(run),
    }
    (run / "metrics.json").write_text(json.dumps(results, indent=2))
    print(report)
    print(f"Test accuracy: {test_accuracy:.4f} (loss {test_loss:.4f}) after "
          f"{results['epochs_run']} epochs in {results['seconds']:.1f} s")
    print(f"Run folder: {run.resolve()}")
    return results


def _plot_learning_curves(plt, history: dict[str, list[float]], path: Path) -> None:
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = np.arange(1, len(history["loss"]) + 1)
    for axis, key in ((loss_axis, "loss"), (accuracy_axis, "accuracy")):
        axis.plot(epochs, history[key], label=f"train {key}")
        if f"val_{key}" in history:
            axis.plot(epochs, history[f"val_{key}"], label=f"validation {key}")
        axis.set_xlabel("epoch")
        axis.set_title(key.capitalize())
        axis.legend()
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _plot_confusion_matrix(plt, matrix: np.ndarray, class_names: list[str], path: Path) -> None:
    # The sheet draws this with seaborn's heatmap; matplotlib alone gives the same picture.
    figure, axis = plt.subplots(figsize=(7, 6))
    image = axis.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axis)
    axis.set_xticks(range(len(class_names)), class_names)
    axis.set_yticks(range(len(class_names)), class_names)
    threshold = matrix.max() / 2
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            axis.text(j, i, str(matrix[i, j]), ha="center", va="center",
                      color="white" if matrix[i, j] > threshold else "black")
    axis.set_title("Confusion Matrix")
    axis.set_ylabel("True Label")
    axis.set_xlabel("Predicted Label")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
