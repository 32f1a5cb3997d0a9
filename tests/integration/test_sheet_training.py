"""The sheet's "Compiling and Training" and "Common Callbacks" snippets, verbatim after the
import swap (`import lamina as keras`, `from lamina import layers`)."""

from __future__ import annotations

import numpy as np
import pytest

import lamina as keras
from lamina import layers


def test_compiling_and_training_snippet(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    x_train = rng.normal(size=(256, 784)).astype("float32")
    y_train = (x_train[:, :10].sum(axis=1) > 0).astype("int64")
    x_val = rng.normal(size=(64, 784)).astype("float32")
    y_val = (x_val[:, :10].sum(axis=1) > 0).astype("int64")
    model = keras.Sequential([
        layers.Dense(128, activation='relu', input_shape=(784,)),
        layers.Dropout(0.2),
        layers.Dense(10, activation='softmax')
    ])

    # --- verbatim from the sheet ---
    # Compile
    model.compile(
        optimizer='adam',  # or keras.optimizers.Adam(learning_rate=0.001)
        loss='sparse_categorical_crossentropy',  # or 'mse', 'binary_crossentropy'
        metrics=['accuracy']  # or ['mae', 'mse']
    )

    # Training
    history = model.fit(
        x_train, y_train,
        batch_size=32,
        epochs=100,
        validation_data=(x_val, y_val),
        callbacks=[
            keras.callbacks.EarlyStopping(patience=10, restore_best_weights=True),
            keras.callbacks.ModelCheckpoint('best_model.h5'),
            keras.callbacks.ReduceLROnPlateau(patience=5, factor=0.5)
        ]
    )
    # --- end of the sheet ---

    epochs_run = len(history.history["loss"])
    assert epochs_run < 100  # a tiny noisy validation set overfits, so EarlyStopping fires
    assert (tmp_path / "best_model.h5").exists()
    best = int(np.argmin(history.history["val_loss"]))
    restored = model.evaluate(x_val, y_val, verbose=0, return_dict=True)
    assert restored["loss"] == pytest.approx(history.history["val_loss"][best], abs=1e-5)


def test_common_callbacks_snippet(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # --- verbatim from the sheet ---
    # Early Stopping
    keras.callbacks.EarlyStopping(
        monitor='val_loss', patience=10, restore_best_weights=True
    )

    # Model Checkpoint
    keras.callbacks.ModelCheckpoint(
        filepath='model_{epoch:02d}.h5',
        save_best_only=True,
        monitor='val_loss'
    )

    # Learning Rate Scheduler
    keras.callbacks.ReduceLROnPlateau(
        monitor='val_loss', factor=0.5, patience=5, min_lr=1e-7
    )

    # TensorBoard
    keras.callbacks.TensorBoard(log_dir='./logs')
    # --- end of the sheet ---

    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    model = keras.Sequential([layers.Dense(1, input_shape=(4,))])
    model.compile(optimizer="sgd", loss="mse", metrics=["mae", "mse"])
    callbacks = [
        keras.callbacks.EarlyStopping(monitor='val_loss', patience=10, restore_best_weights=True),
        keras.callbacks.ModelCheckpoint(filepath='model_{epoch:02d}.h5', save_best_only=True,
                                        monitor='val_loss'),
        keras.callbacks.ReduceLROnPlateau(monitor='val_loss', factor=0.5, patience=5, min_lr=1e-7),
        keras.callbacks.TensorBoard(log_dir='./logs'),
    ]
    history = model.fit(x, y, epochs=3, validation_split=0.25, callbacks=callbacks, verbose=0)
    assert {"loss", "mae", "mse", "val_loss", "val_mae", "val_mse"} <= set(history.history)
    assert (tmp_path / "model_01.h5").exists()
    assert (tmp_path / "logs" / "train").is_dir() and (tmp_path / "logs" / "validation").is_dir()
