"""BackupAndRestore: an interrupted `fit` resumes exactly where its last backup was taken."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import warnings
from typing import Any

from lamina._registry import register
from lamina.callbacks import _rng_state
from lamina.callbacks.callback import Callback
from lamina.distribution import process_count
from lamina.distribution import runtime as distributed
from lamina.distribution.files import restoring, writing
from lamina.errors import FileFormatError
from lamina.saving import state_file
from lamina.training.logs import trainer_of

_WEIGHTS = "model.weights.h5"
_STATE = "training.state.h5"
_FORMAT = 1


@register("BackupAndRestore")
class BackupAndRestore(Callback):
    """Back up the whole training state to `backup_dir` at the end of every epoch, or every
    `save_freq` batches; a later `fit` with this callback on the same `backup_dir` restores it
    and continues as if never interrupted (same weights, bit for bit, on the same hardware).

    A backup holds the model's weights (`latest/model.weights.h5`, loadable with
    `model.load_weights`) and `latest/training.state.h5`: where the run is (epoch and batch),
    the optimizer (moments, step counter, so the learning-rate schedule too), every random
    number generator (torch, NumPy, Python, the data pipeline's, seeded layers'), the epoch
    order of the data and the running epoch's metric accumulators, and the `state_dict()` of
    every other callback. Nothing is pickled; every file is written atomically.

    Args:
        backup_dir: a directory for this run's backups only.
        save_freq: 'epoch', a number of batches, or False (only with save_before_preemption).
        delete_checkpoint: remove `backup_dir` when `fit` completes.
        double_checkpoint: keep the previous backup (`previous/`) as well, so a latest backup
            that cannot be read (a corrupted disk, a copy cut short) still resumes, from one
            backup earlier.
        save_before_preemption: on SIGTERM (how schedulers announce preemption), finish the
            running batch, write a backup, then let the signal terminate the process. A second
            SIGTERM terminates at once.
    """

    _runs_last = True  # sees every other callback's hook first, so its backups include them

    def __init__(self, backup_dir: str, save_freq: str | int | bool = "epoch",
                 delete_checkpoint: bool = True, double_checkpoint: bool = False,
                 save_before_preemption: bool = False):
        super().__init__()
        if not backup_dir:
            raise ValueError("`backup_dir` must be a directory path. Received an empty value.")
        if not (save_freq == "epoch" or save_freq is False or (
                isinstance(save_freq, int) and not isinstance(save_freq, bool) and save_freq > 0)):
            raise ValueError(
                "`save_freq` must be 'epoch', a positive number of batches, or False (with "
                f"save_before_preemption=True). Received: save_freq={save_freq!r}.")
        if save_freq is False and not save_before_preemption:
            raise ValueError("save_freq=False writes no backups; it needs "
                             "save_before_preemption=True. Received save_before_preemption=False.")
        self.backup_dir = os.fspath(backup_dir)
        self.save_freq = save_freq
        self.delete_checkpoint, self.double_checkpoint = delete_checkpoint, double_checkpoint
        self.save_before_preemption = save_before_preemption
        self.resume_epoch: int | None = None
        self._resume: dict[str, Any] | None = None
        self._callbacks: list[Callback] = []
        self._epoch_rng: dict[str, Any] | None = None
        self._generators: list = []
        self._epoch = 0
        self._done_in_epoch = 0
        self._since_backup = 0
        self._due_at_epoch_end = False
        self._preempted = False
        self._previous_handler: Any = None
        self._handler_installed = False
        if save_freq not in ("epoch", False) or save_before_preemption:
            # Only then is there work per batch; otherwise fit skips the per-batch hooks.
            self.on_train_batch_end = self._count_batches

    def get_config(self) -> dict[str, Any]:
        return {"backup_dir": self.backup_dir, "save_freq": self.save_freq,
                "delete_checkpoint": self.delete_checkpoint,
                "double_checkpoint": self.double_checkpoint,
                "save_before_preemption": self.save_before_preemption}

    def attach(self, callbacks: list[Callback]) -> None:
        """Called by CallbackList with the full list, whose states the backup includes."""
        self._callbacks = callbacks

    # ------------------------------------------------------------------ restore

    def on_train_begin(self, logs=None):
        self.resume_epoch, self._resume = None, None
        self._since_backup, self._due_at_epoch_end, self._preempted = 0, False, False
        if self.save_before_preemption:
            self._install_handler()
        trainer = trainer_of(self.model)
        present = [name for name in ("latest", "previous") if os.path.isdir(self._folder(name))]
        # Processes that see different backups (a directory on each machine's own disk) would
        # resume different runs: fail on all of them, before any reads a backup.
        distributed.check_agreement(trainer, " and ".join(present) or "none", self.backup_dir)
        state = self._read_backup()
        distributed.check_agreement(trainer, "none" if state is None else
                                    f"epoch {state['epoch']}, batch {state['step']}",
                                    self.backup_dir)
        if state is None:
            return
        _check_processes(state, self.backup_dir)
        # Runs after every other callback's on_train_begin, so nothing resets what it restores.
        distributed.load_optimizer_state(trainer, state["optimizer"])
        self._load_callbacks(state["callbacks"])
        _rng_state.restore(state["rng"], self.model, generators=None)
        self.resume_epoch = self.params.get("epochs", 1) if state["stopped"] else state["epoch"]
        self._resume = state

    def epoch_batches(self, epoch: int, data) -> tuple[int, Any]:
        """Called by the trainer after on_epoch_begin: the batch to start at and the batches.

        A run resumed mid-epoch gets that epoch's order (drawn again from the epoch's starting
        RNG state) from the batch after the backup, and the states that on_epoch_begin may have
        moved (learning rate, callback counters) put back.
        """
        resume, self._resume = self._resume, None
        generators = data.generators()
        self._generators = generators
        if resume is not None and not data.resumable:
            warnings.warn(
                "BackupAndRestore resumed a fit whose data is a generator or iterator: its "
                "position cannot be restored, so training continues with the batches it yields "
                "now and will not repeat the interrupted run exactly. Pass arrays, a Dataset, a "
                "DataLoader or a PyDataset to resume exactly.", stacklevel=2)
        if resume is not None and resume["step"]:
            start = int(resume["step"])
            _rng_state.restore(resume["epoch_rng"], self.model, generators)
            batches = data.batches(start)
            distributed.load_optimizer_state(trainer_of(self.model), resume["optimizer"])
            self._load_callbacks(resume["callbacks"])
            distributed.load_metric_state(trainer_of(self.model), resume["metrics"])
            _rng_state.restore(resume["rng"], self.model, generators)
            self._epoch_rng = resume["epoch_rng"]  # later backups of this epoch need it too
            self._done_in_epoch = start
            return start, batches
        if resume is not None:
            _rng_state.restore_data(resume["rng"], generators)
        if self.save_freq != "epoch" or self.save_before_preemption:
            self._epoch_rng = _rng_state.capture(self.model, generators)
        self._done_in_epoch = 0
        return 0, data.batches()

    def _load_callbacks(self, saved: dict[str, Any]) -> None:
        for key, callback in _keyed(self._callbacks, self):
            if key in saved:
                callback.load_state_dict(saved[key])

    # ------------------------------------------------------------------ backup

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def _count_batches(self, batch, logs=None):
        # `batch` may jump by steps_per_execution between calls; count the batches it covers.
        self._since_backup += batch + 1 - self._done_in_epoch
        self._done_in_epoch = batch + 1
        due = self._preempted or (self.save_freq not in ("epoch", False)
                                  and self._since_backup >= self.save_freq)
        if not due:
            return
        # After the epoch's last batch (or a stop request) the epoch's end follows at once;
        # backing up there instead leaves no resumed epoch without batches.
        if self.model.stop_training or self._done_in_epoch >= (self.params.get("steps") or 0) > 0:
            self._due_at_epoch_end = True
            return
        self._backup(self._epoch, self._done_in_epoch)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch" or self._due_at_epoch_end or self._preempted:
            self._backup(epoch + 1, 0)

    def _backup(self, epoch: int, step: int) -> None:
        model = self.model
        state = {
            "format": _FORMAT,
            "epoch": epoch,
            "step": step,
            "stopped": bool(model.stop_training) and step == 0,
            "optimizer": distributed.optimizer_state(trainer_of(model)),
            "rng": _rng_state.capture(model, self._generators),
            "epoch_rng": self._epoch_rng if step else None,
            "metrics": distributed.metric_state(trainer_of(model)) if step else None,
            "callbacks": {key: c.state_dict() for key, c in _keyed(self._callbacks, self)},
            "processes": process_count(),
        }
        self._write_backup(state)
        self._since_backup, self._due_at_epoch_end = 0, False
        if self._preempted:
            self._terminate()

    # ------------------------------------------------------------------ files

    def _write_backup(self, state: dict[str, Any]) -> None:
        # Every process of a distributed run takes part (a sharded model gathers its weights);
        # rank 0 writes. The optimizer's slots are in `state`, gathered already.
        with writing(self.model, slots=False) as writer:
            if writer:
                self._write_files(state)

    def _write_files(self, state: dict[str, Any]) -> None:
        """Write into a fresh folder, then swap it in with renames: at every instant either
        `latest/` or `previous/` is a complete backup, whatever kills the process."""
        latest, previous = self._folder("latest"), self._folder("previous")
        incoming = self._folder(".incoming")
        shutil.rmtree(incoming, ignore_errors=True)  # left by a run killed while writing
        os.makedirs(incoming)
        self.model.save_weights(os.path.join(incoming, _WEIGHTS), overwrite=True)
        state_file.save_state(os.path.join(incoming, _STATE), state)
        _fsync_directory(incoming)
        if os.path.isdir(latest):
            shutil.rmtree(previous, ignore_errors=True)
            os.replace(latest, previous)
        os.replace(incoming, latest)
        _fsync_directory(self.backup_dir)
        if not self.double_checkpoint:
            shutil.rmtree(previous, ignore_errors=True)

    def _read_backup(self) -> dict[str, Any] | None:
        """The newest readable backup (its weights loaded into the model), or None."""
        failures = []
        for name in ("latest", "previous"):
            folder = self._folder(name)
            if not os.path.isdir(folder):
                continue
            if not getattr(self.model, "built", True):
                raise ValueError(
                    f"BackupAndRestore found a backup in {self.backup_dir!r}, but model "
                    f"{self.model.name!r} is not built, so its weights cannot be restored. "
                    "Build it before fit (pass input_shape, or call it on a batch).")
            try:
                state = state_file.load_state(os.path.join(folder, _STATE))
                if not isinstance(state, dict) or state.get("format") != _FORMAT:
                    raise FileFormatError(f"{folder!r} holds no BackupAndRestore state "
                                          f"(format {_FORMAT}).")
                with restoring(self.model):
                    self.model.load_weights(os.path.join(folder, _WEIGHTS))
            except (OSError, FileFormatError, KeyError) as error:
                failures.append(f"{name}/: {error}")
                continue
            if failures:
                warnings.warn(f"BackupAndRestore could not read the latest backup "
                              f"({failures[0]}); resuming from the previous one.", stacklevel=3)
            return state
        if failures:
            raise FileFormatError(
                f"BackupAndRestore found backups in {self.backup_dir!r} but could read none: "
                f"{'; '.join(failures)}. Delete the directory to start training afresh.")
        return None

    def _folder(self, name: str) -> str:
        return os.path.join(self.backup_dir, name)

    def on_train_end(self, logs=None):
        self._uninstall_handler()
        if self.delete_checkpoint and os.path.isdir(self.backup_dir):
            shutil.rmtree(self.backup_dir, ignore_errors=True)

    # ------------------------------------------------------------------ preemption

    def _install_handler(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            warnings.warn("save_before_preemption needs fit to run in the main thread (signal "
                          "handlers live there); no backup will be written on SIGTERM.",
                          stacklevel=3)
            return
        self._previous_handler = signal.signal(signal.SIGTERM, self._on_sigterm)
        self._handler_installed = True

    def _on_sigterm(self, signum, frame) -> None:
        # Outside the training loop (fit raised and never reached on_train_end, say) no batch
        # end will come to write the backup: terminate now rather than swallow the signal.
        if self._preempted or not _in_training_loop(frame, self.model):
            self._terminate()
        self._preempted = True

    def _uninstall_handler(self) -> None:
        if self._handler_installed:
            # None: the handler was not set from Python; the default is the closest match.
            signal.signal(signal.SIGTERM, self._previous_handler or signal.SIG_DFL)
            self._handler_installed = False

    def _terminate(self) -> None:
        """Hand SIGTERM to what handled it before fit (by default: end the process)."""
        self._uninstall_handler()
        self._preempted = False
        signal.raise_signal(signal.SIGTERM)


def _check_processes(state: dict[str, Any], backup_dir: str) -> None:
    saved, now = int(state.get("processes", 1)), process_count()
    if saved != now:
        raise ValueError(
            f"The backup in {backup_dir!r} was written by a run of {saved} process(es), but this "
            f"run has {now}: its data order and per-process state would not continue the same "
            f"run. Resume with {saved} process(es) (torchrun --nproc-per-node), or delete the "
            "directory to start training afresh.")


def _in_training_loop(frame, model) -> bool:
    # The loop is found through the model's trainer, not an import of the engine (which imports
    # the callbacks).
    loop = type(trainer_of(model))._run_epochs.__code__
    while frame is not None:
        if frame.f_code is loop:
            return True
        frame = frame.f_back
    return False


def _fsync_directory(path: str) -> None:
    # The renames that publish a backup are durable only once their directory is synced.
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _keyed(callbacks: list[Callback], exclude: Callback) -> list[tuple[str, Callback]]:
    """Key each callback by class name and occurrence ('History:0'), so a resumed run matches
    them even when its list differs (a crash-injecting callback gone, say)."""
    seen: dict[str, int] = {}
    keyed = []
    for callback in callbacks:
        if callback is exclude:
            continue
        name = type(callback).__name__
        keyed.append((f"{name}:{seen.get(name, 0)}", callback))
        seen[name] = seen.get(name, 0) + 1
    return keyed
