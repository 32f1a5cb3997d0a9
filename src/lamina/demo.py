"""The main job: train a small CNN on the bundled digits and write a report.

`lamina demo` (and `make demo`) trains with a validation split, EarlyStopping and
ReduceLROnPlateau, evaluates on a held-out test split, and writes a run folder with the saved
model, `history.csv`, learning curves and a confusion matrix as PNG, a classification report,
the training doctor's record and findings (`doctor.json`, `doctor.txt`), and `report.html`, the
whole evaluation in one file (`lamina.evaluation.report`).
"""

from __future__ import annotations

import datetime
import json
import os
import time
from pathlib import Path
from typing import Any


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
    import lamina as keras
    from lamina import evaluation
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
    # The training doctor watches the run; its record lands in the run folder, so
    # `lamina doctor RUN_DIR` re-reads it, and its findings are a section of report.html.
    doctor = keras.callbacks.Doctor(log_dir=run)
    history = model.fit(
        x_train, y_train, batch_size=32, epochs=epochs, validation_split=0.15, verbose=verbose,
        callbacks=[
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=10,
                                          restore_best_weights=True),
            keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=4,
                                              min_lr=1e-5),
            keras.callbacks.CSVLogger(str(run / "history.csv")),
            doctor,
        ],
    )
    test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=0)

    model.save(run / "model.keras")
    class_names = [str(i) for i in range(10)]
    evaluated = evaluation.report(model, x_test, y_test, class_names=class_names,
                                  history=history, doctor=doctor, path=run / "report.html")
    report = evaluated.text
    (run / "classification_report.txt").write_text(report)
    for name in ("learning_curves", "confusion_matrix"):  # the report's own plots, drawn once
        (run / f"{name}.png").write_bytes(evaluated.images[name])
    results = {
        "test_loss": float(test_loss),
        "test_accuracy": float(test_accuracy),
        "epochs_run": len(history.history["loss"]),
        "seconds": round(time.perf_counter() - started, 2),
        "run_dir": str(run),
    }
    (run / "metrics.json").write_text(json.dumps(results, indent=2))
    print(report)
    print(doctor.report())
    print(f"Test accuracy: {test_accuracy:.4f} (loss {test_loss:.4f}) after "
          f"{results['epochs_run']} epochs in {results['seconds']:.1f} s")
    print(f"Report: {(run / 'report.html').resolve()}")
    print(f"Run folder: {run.resolve()}")
    return results

