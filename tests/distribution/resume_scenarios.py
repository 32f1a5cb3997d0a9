"""Sharded runs (FSDP, ModelParallel) that test_fsdp_resume.py does over two processes:
interrupted by an exception mid-epoch and resumed from BackupAndRestore's backup, next to the
same run uninterrupted; and which layers' weights are whole while each layer runs.

The scenarios join `scenarios.SCENARIOS`, so `scenarios.run_ranks` forks the ranks that run them.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from lamina import callbacks, distribution

import scenarios

EPOCHS = 4
CRASH_AT = (2, 3)  # (epoch, batch): the 4th batch of the 3rd epoch, after the backup of batch 2


class Crash(callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if (self._epoch, batch) == CRASH_AT:
            raise RuntimeError("interrupted")

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch


def fit(model, backup: Path, crash: bool) -> dict[str, Any]:
    x, y = scenarios.data(69)  # 5 batches of 16 per epoch; the last (5) splits 2/3
    extra = [Crash()] if crash else []
    history = model.fit(x, y, batch_size=16, epochs=EPOCHS, verbose=0, callbacks=[
        *extra, callbacks.BackupAndRestore(str(backup), save_freq=2)])
    return history.history


def resume(out: Path, tag: str, same_model: bool = False) -> dict[str, Any]:
    """Uninterrupted, then interrupted and rerun: both end saved to .keras files (whole weights
    and optimizer slots). The rerun's model is a fresh one, from other weights (each process
    seeded differently), or with `same_model` the interrupted one, already sharded, whose
    weights and optimizer moved on after the backup: only the backup puts either on track."""
    rank = distribution.process_index()
    whole = scenarios.mlp(seed=100 * rank)
    uninterrupted = fit(whole, out / f"{tag}-whole", crash=False)
    whole.save(str(out / f"{tag}-uninterrupted.keras"))

    backup = out / f"{tag}-backup"
    interrupted = scenarios.mlp(seed=100 * rank)
    try:
        fit(interrupted, backup, crash=True)
        raise AssertionError("the crashing callback did not interrupt fit")
    except RuntimeError as error:
        assert str(error) == "interrupted", error
    if rank == 0:
        # A copy survives the resumed run (which deletes its backup when done) for the test
        # that resumes it with another number of processes.
        shutil.copytree(backup, out / f"{tag}-left")
    torch.distributed.barrier()
    resumed = interrupted if same_model else scenarios.mlp(seed=1 + 100 * rank)
    history = fit(resumed, backup, crash=False)
    resumed.save(str(out / f"{tag}-resumed.keras"))
    return {"uninterrupted": uninterrupted, "resumed": history, "backup_left": backup.exists()}


def unshared_backup(out: Path, tag: str) -> dict[str, Any]:
    """Each process's backup_dir on its own disk: rank 0's holds fsdp_resume's backup, rank
    1's none. The error each process raises."""
    rank = distribution.process_index()
    backup = out / f"{tag}-{rank}"
    if rank == 0:
        shutil.copytree(out / "fsdp_resume.dist-left", backup)
    try:
        fit(scenarios.mlp(), backup, crash=False)
    except ValueError as error:
        return {"error": str(error), "backup": str(backup)}
    return {"error": None}


def gathered_while_running(out: Path, tag: str) -> dict[str, Any]:
    """Train (per-layer units for layers of >= 100 weights: the first Dense, 144; the second,
    51, stays with the root), then run the sharded model once, recording at each Dense layer's
    call which Dense layers (by position) hold whole weights at that moment."""
    model = scenarios.mlp(seed=100 * distribution.process_index())
    x, y = scenarios.data(69)
    xv, yv = scenarios.data(23, seed=1)
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    dense = [layer for layer in model.layers if any(True for _ in layer.parameters())]
    seen: dict[str, list[int]] = {}

    def record(layer, args):
        seen[str(dense.index(layer))] = [
            index for index, other in enumerate(dense)
            if not any(hasattr(p, "placements") for p in other.parameters())]

    engine = model._lamina_trainer._distributed
    if engine is not None:  # one process has no sharded model to probe
        hooks = [layer.register_forward_pre_hook(record) for layer in dense]
        with torch.no_grad():
            engine.module(torch.from_numpy(xv))
        for hook in hooks:
            hook.remove()
    return {"seen": seen, "history": history.history,
            "evaluate": model.evaluate(xv, yv, batch_size=5, verbose=0, return_dict=True),
            "predict": model.predict(xv, batch_size=4, verbose=0)}


def model_parallel_units() -> distribution.ModelParallel:
    reference = scenarios.model_parallel()
    return distribution.ModelParallel(layout_map=reference.layout_map, batch_dim_name="batch",
                                      min_unit_size=100)


scenarios.SCENARIOS.update({
    "fsdp_resume": (resume, distribution.FSDP),
    "model_parallel_resume": (lambda out, tag: resume(out, tag, same_model=True),
                              model_parallel_units),
    "unshared_backup": (unshared_backup, distribution.FSDP),
    "fsdp_units": (gathered_while_running, lambda: distribution.FSDP(min_unit_size=100)),
    "fsdp_one_unit": (gathered_while_running, distribution.FSDP),
})

NAMES = ["fsdp_resume", "model_parallel_resume", "unshared_backup", "fsdp_units",
         "fsdp_one_unit"]

