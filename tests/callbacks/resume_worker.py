"""Runs legs of an interrupted `fit` for tests/callbacks/test_resume.py.

Started once per test module with subprocess; it imports torch and lamina once, then forks one
fresh process per leg (a JSON line on stdin), so each leg starts cold like a restarted job
without paying the import again. Each leg builds the model and data from scratch, fits with
BackupAndRestore, and may be killed with SIGKILL (at a chosen step, inside the backup write,
or by a timer) or SIGTERM; the leg that completes writes the final weights, optimizer state
and history as .npz/.json for the test to compare. The exit status of each leg goes back as a
JSON line on stdout.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import traceback

import numpy as np
import torch

import lamina as keras
from lamina import layers
from lamina.callbacks import Callback


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 8)).astype("float32")
    y = (x[:, :3].sum(axis=1) > 0).astype("int64") + (x[:, 3] > 1).astype("int64")
    return x, y


class Kill(Callback):
    """SIGKILLs (or SIGTERMs) its own process at a hook, at a global step (the optimizer's
    iteration count, which a resumed run restores) or an epoch."""

    def __init__(self, hook: str, at: int, sig: int = signal.SIGKILL):
        super().__init__()
        self.hook, self.at, self.sig = hook, at, sig
        if hook == "batch_end":
            self.on_train_batch_end = self._batch_end

    def _batch_end(self, batch, logs=None):
        if self.model.optimizer.iterations == self.at:
            os.kill(os.getpid(), self.sig)

    def on_epoch_begin(self, epoch, logs=None):
        if self.hook == "epoch_begin" and epoch == self.at:
            os.kill(os.getpid(), self.sig)

    def on_epoch_end(self, epoch, logs=None):
        if self.hook == "epoch_end" and epoch == self.at:
            os.kill(os.getpid(), self.sig)


def _kill_in_backup_write(which: int, where: str) -> None:
    """SIGKILL this process during the `which`-th backup write: half-way through writing the
    state file (`where='state'`) or between the two renames that swap the new backup in."""
    from lamina.saving import state_file

    original_save, original_replace = state_file.save_state, os.replace
    calls = {"save": 0}

    def save_state(path, state):
        calls["save"] += 1
        if where == "state" and calls["save"] == which:
            with open(path, "wb") as partial:
                partial.write(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
            os.kill(os.getpid(), signal.SIGKILL)
        original_save(path, state)

    def replace(source, target):
        if (where == "swap" and calls["save"] == which
                and os.path.basename(str(source)) == ".incoming"):
            os.kill(os.getpid(), signal.SIGKILL)
        original_replace(source, target)

    state_file.save_state = save_state
    os.replace = replace


def _model(variant: str):
    net = keras.Sequential([
        layers.Dense(16, activation="relu", input_shape=(8,)),
        layers.BatchNormalization(),
        layers.Dropout(0.3),
        layers.Dense(8, activation="relu"),
        layers.Dropout(0.2, seed=5),  # a seeded layer draws from its own generator
        layers.Dense(3, activation="softmax"),
    ])
    if variant == "plain":
        schedule = keras.optimizers.schedules.ExponentialDecay(0.02, decay_steps=5,
                                                               decay_rate=0.8)
        optimizer = keras.optimizers.Adam(learning_rate=schedule)
    else:
        optimizer = keras.optimizers.Adam(learning_rate=0.03)
    net.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                metrics=["accuracy"])
    return net


def _variant_callbacks(variant: str, out: str) -> list[Callback]:
    if variant == "plain":
        return []
    return [
        keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.9),
        keras.callbacks.ReduceLROnPlateau(monitor="val_accuracy", factor=0.5, patience=1),
        keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=3,
                                      restore_best_weights=True),
        keras.callbacks.CSVLogger(os.path.join(out, "log.csv")),
    ]


def run_leg(out: str, variant: str = "plain", epochs: int = 4, backup: dict | None = None,
            kill: list | None = None, kill_after: float | None = None,
            kill_in_write: list | None = None, seed: int = 1) -> None:
    # A leg that finds a backup starts from another seed: only a restore of every weight and
    # generator state can then reproduce the uninterrupted run (seed 1), never a replay.
    resuming = backup is not None and any(
        os.path.isdir(os.path.join(backup["backup_dir"], name)) for name in ("latest", "previous"))
    keras.set_random_seed(seed if resuming else 1)
    net = _model(variant)
    x, y = _data()
    callbacks = _variant_callbacks(variant, out)
    if kill:
        hook, at, *sig = kill
        callbacks.append(Kill(hook, at, *sig))
    if kill_in_write:
        _kill_in_backup_write(*kill_in_write)
    if backup is not None:
        callbacks.append(keras.callbacks.BackupAndRestore(**backup))
    if kill_after is not None:
        timer = threading.Timer(kill_after, os.kill, (os.getpid(), signal.SIGKILL))
        timer.daemon = True
        timer.start()
    validation = (x[:40], y[:40]) if variant != "plain" else None
    history = net.fit(x, y, batch_size=16, epochs=epochs, shuffle=True, verbose=0,
                      validation_data=validation, callbacks=callbacks)
    weights = {f"model/{k}": v.detach().cpu().numpy() for k, v in net.state_dict().items()}
    torch_state = net.optimizer.torch_optimizer.state_dict()["state"]
    for index, entries in torch_state.items():
        for name, value in entries.items():
            weights[f"optimizer/{index}/{name}"] = torch.as_tensor(value).cpu().numpy()
    np.savez(os.path.join(out, "final.npz"), **weights)
    with open(os.path.join(out, "final.json"), "w") as handle:
        json.dump({"history": history.history, "epoch": history.epoch,
                   "iterations": net.optimizer.iterations,
                   "learning_rate": net.optimizer.learning_rate}, handle)


def _warm_up() -> None:
    """One short fit with backups here, before any fork, so that each leg does not pay for
    the first call's lazy imports and kernel set-up again (~2 s each)."""
    import shutil
    import tempfile

    folder = tempfile.mkdtemp()
    try:
        run_leg(folder, epochs=1, backup={"backup_dir": os.path.join(folder, "backup"),
                                          "save_freq": 4})
    finally:
        shutil.rmtree(folder)


def main() -> None:
    _warm_up()
    for line in sys.stdin:
        leg = json.loads(line)
        pid = os.fork()
        if pid == 0:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            status = 0
            try:
                run_leg(**leg)
            except BaseException:
                with open(os.path.join(leg["out"], "error.txt"), "a") as handle:
                    handle.write(traceback.format_exc())
                status = 1
            os._exit(status)
        _, status = os.waitpid(pid, 0)
        killed = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
        print(json.dumps({"signal": killed, "exit": code}), flush=True)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
