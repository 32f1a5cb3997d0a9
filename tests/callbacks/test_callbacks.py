"""Callbacks: each steers or records exactly what Keras's does, on scripted monitor values."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest

import lamina as keras
from lamina import layers
from lamina.callbacks import Callback


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    return x, y


def model(dropout=0.0):
    net = keras.Sequential([layers.Dense(8, activation="relu", input_shape=(6,)),
                            layers.Dropout(dropout), layers.Dense(2, activation="softmax")])
    net.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1),
                loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return net


class Script(Callback):
    """Overwrites a logged value with a scripted sequence and records weights per epoch."""

    def __init__(self, key, values):
        super().__init__()
        self.key, self.values, self.weights = key, values, []

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]
        self.weights.append([w.copy() for w in self.model.get_weights()])


def test_early_stopping_stops_after_patience_and_restores_the_best_weights():
    x, y = data()
    net = model()
    script = Script("val_loss", [5.0, 4.0, 3.0, 3.5, 3.6, 3.7, 3.8, 3.9])
    stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    history = net.fit(x, y, epochs=8, callbacks=[script, stopper], verbose=0)
    assert len(history.history["loss"]) == 5  # best at epoch 2, then 2 epochs without improvement
    assert stopper.stopped_epoch == 4 and stopper.best_epoch == 2
    for restored, best in zip(net.get_weights(), script.weights[2]):
        np.testing.assert_array_equal(restored, best)


def test_early_stopping_baseline_and_min_delta():
    x, y = data()
    stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=1, baseline=1.0, min_delta=0.1)
    history = model().fit(x, y, epochs=6, callbacks=[Script("val_loss", [2, 1.95, 1.9, 1.5, 1, 1]), stopper],
                          verbose=0)
    assert len(history.history["loss"]) == 2  # never beats the baseline: stops after patience


def test_reduce_lr_on_plateau_changes_the_learning_rate_at_the_right_epoch():
    x, y = data()
    net = model()
    seen = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: seen.append(net.optimizer.learning_rate))
    reduce = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2,
                                               min_lr=0.02)
    net.fit(x, y, epochs=7, callbacks=[record, Script("val_loss", [1.0] * 7), reduce], verbose=0)
    # No improvement after epoch 0: epochs 1 and 2 wait, the lr halves at the end of epoch 2,
    # again at the end of epoch 4, and then stops at min_lr.
    assert seen == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    assert net.optimizer.learning_rate == pytest.approx(0.02)


def test_model_checkpoint_writes_the_files_its_template_names(tmp_path):
    x, y = data()
    net = model()
    every = keras.callbacks.ModelCheckpoint(str(tmp_path / "model_{epoch:02d}.h5"))
    best = keras.callbacks.ModelCheckpoint(str(tmp_path / "best-{epoch}-{val_loss:.1f}.weights.h5"),
                                           save_best_only=True, save_weights_only=True)
    net.fit(x, y, epochs=4, callbacks=[Script("val_loss", [3.0, 2.0, 2.5, 1.0]), every, best], verbose=0)
    names = sorted(os.listdir(tmp_path))
    assert names == ["best-1-3.0.weights.h5", "best-2-2.0.weights.h5", "best-4-1.0.weights.h5",
                     "model_01.h5", "model_02.h5", "model_03.h5", "model_04.h5"]
    restored = keras.models.load_model(tmp_path / "model_04.h5")
    np.testing.assert_allclose(restored.predict(x, verbose=0), net.predict(x, verbose=0), atol=1e-6)


def test_learning_rate_scheduler_follows_the_schedule():
    x, y = data()
    net = model()
    seen = []
    scheduler = keras.callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 * 0.5 ** epoch)
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append(logs["learning_rate"]))
    net.fit(x, y, epochs=3, callbacks=[scheduler, record], verbose=0)
    assert seen == pytest.approx([0.1, 0.05, 0.025])


def test_terminate_on_nan_stops_and_says_at_which_batch(capsys):
    x, y = data(64)

    class PoisonAfter(layers.Layer):
        def __init__(self, calls, **kwargs):
            super().__init__(**kwargs)
            self.calls, self.seen = calls, 0

        def call(self, inputs, training=None):
            if training:
                self.seen += 1
                if self.seen > self.calls:
                    return inputs * float("nan")
            return inputs

    net = keras.Sequential([layers.Dense(2, input_shape=(6,)), PoisonAfter(5), layers.Softmax()])
    net.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    stop = keras.callbacks.TerminateOnNaN()
    history = net.fit(x, y, batch_size=8, epochs=3, callbacks=[stop], verbose=0)
    assert stop.terminated_at == (0, 5)
    assert "batch 5" in capsys.readouterr().out
    assert len(history.history["loss"]) == 1


def test_csv_logger_writes_one_row_per_epoch(tmp_path):
    x, y = data()
    path = tmp_path / "log.csv"
    model().fit(x, y, epochs=3, callbacks=[keras.callbacks.CSVLogger(str(path))], verbose=0)
    with open(path, newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert set(rows[0]) == {"epoch", "accuracy", "loss"}


def test_tensorboard_writes_event_files_tensorboard_can_read(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    x, y = data()
    board = keras.callbacks.TensorBoard(log_dir=str(tmp_path), histogram_freq=1)
    model().fit(x, y, epochs=2, validation_data=(x, y), callbacks=[board], verbose=0)
    train = EventAccumulator(str(tmp_path / "train")).Reload()
    validation = EventAccumulator(str(tmp_path / "validation")).Reload()
    assert {"epoch_loss", "epoch_accuracy", "epoch_learning_rate"} <= set(train.Tags()["scalars"])
    assert [e.step for e in train.Scalars("epoch_loss")] == [0, 1]
    assert "epoch_loss" in validation.Tags()["scalars"]
    assert train.Tags()["histograms"]


def test_backup_and_restore_resumes_an_interrupted_fit_exactly(tmp_path):
    x, y = data(96)

    class Crash(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 3:
                raise KeyboardInterrupt("simulated crash")

    def run(callbacks):
        keras.set_random_seed(7)
        keras.clear_session()
        net = model(dropout=0.3)
        history = net.fit(x, y, batch_size=16, epochs=6, callbacks=callbacks, verbose=0)
        return net, history

    reference, reference_history = run([])
    backup = str(tmp_path / "backup")
    with pytest.raises(KeyboardInterrupt):
        run([keras.callbacks.BackupAndRestore(backup), Crash()])
    assert sorted(os.listdir(os.path.join(backup, "latest"))) == ["model.weights.h5",
                                                                  "training.state.h5"]
    resumed, resumed_history = run([keras.callbacks.BackupAndRestore(backup)])
    for a, b in zip(resumed.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert resumed_history.history["loss"] == reference_history.history["loss"]
    assert not os.path.exists(backup)  # deleted after the completed run


def test_backup_and_restore_tells_a_sigterm_inside_the_loop_from_one_after_it():
    """Inside the training loop a SIGTERM waits for the next batch end, which writes the backup;
    outside it (fit raised before on_train_end, say) nothing would, so the handler terminates at
    once. The loop is found on the stack through the model's trainer."""
    import sys

    from lamina.callbacks.backup_and_restore import _in_training_loop

    x, y = data()
    seen = []

    class Probe(Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(_in_training_loop(sys._getframe(), self.model))

        def on_train_end(self, logs=None):
            seen.append(_in_training_loop(sys._getframe(), self.model))

    net = model()
    net.fit(x, y, epochs=1, batch_size=16, callbacks=[Probe()], verbose=0)
    assert seen == [True] * 4 + [False]
    assert not _in_training_loop(sys._getframe(), net)


def test_callbacks_see_the_model_and_params():
    x, y = data()
    seen = {}

    class Probe(Callback):
        def on_train_begin(self, logs=None):
            seen["model"] = self.model
            seen["params"] = dict(self.params)

    net = model()
    net.fit(x, y, epochs=2, batch_size=16, callbacks=[Probe()], verbose=0)
    assert seen["model"] is net
    assert seen["params"]["epochs"] == 2 and seen["params"]["steps"] == 4


def test_progress_display_is_keras_like(capsys):
    x, y = data()
    model().fit(x, y, epochs=2, verbose=2)
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out
    assert "loss:" in out and "accuracy:" in out


def test_a_callback_that_is_not_a_callback_is_rejected():
    x, y = data()
    with pytest.raises(TypeError, match="Callback"):
        model().fit(x, y, callbacks=[lambda: None], verbose=0)


def test_bad_callback_arguments():
    with pytest.raises(ValueError, match="factor"):
        keras.callbacks.ReduceLROnPlateau(factor=1.5)
    with pytest.raises(ValueError, match="weights.h5"):
        keras.callbacks.ModelCheckpoint("w.keras", save_weights_only=True)
    with pytest.raises(ValueError, match="mode"):
        keras.callbacks.EarlyStopping(mode="lowest")


