"""BackupAndRestore under real interruptions: processes killed with SIGKILL at chosen steps,
at random times and inside the backup write, then resumed in new processes until done. The
oracle is one uninterrupted run in a fresh process: final weights, optimizer state and
history must be bit-identical (torch.equal, ==)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

WORKER = Path(__file__).with_name("resume_worker.py")


class Worker:
    """The forking worker process (see resume_worker.py): one leg per call."""

    def __init__(self, log: Path):
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.log = open(log, "w")
        self.seed = 100
        self.process = subprocess.Popen([sys.executable, str(WORKER)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=self.log, text=True,
                                        env=env)

    def leg(self, out: Path, **options) -> dict:
        out.mkdir(parents=True, exist_ok=True)
        self.seed += 1
        options.setdefault("seed", self.seed)
        self.process.stdin.write(json.dumps({"out": str(out), **options}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, f"the worker died: {self.log.name}"
        status = json.loads(line)
        error = out / "error.txt"
        assert status["exit"] != 1, error.read_text() if error.exists() else status
        return status

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)
        self.process.stdout.close()
        self.log.close()


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    process = Worker(tmp_path_factory.mktemp("worker") / "stderr.txt")
    yield process
    process.close()


@pytest.fixture(scope="module")
def reference(worker, tmp_path_factory):
    """Uninterrupted runs, without BackupAndRestore, one per variant."""
    runs = {}
    for variant, epochs in (("plain", 4), ("callbacks", 8)):
        out = tmp_path_factory.mktemp(f"reference-{variant}")
        assert worker.leg(out, variant=variant, epochs=epochs) == {"signal": None, "exit": 0}
        runs[variant] = out
    return runs


def load(out: Path) -> tuple[dict, dict]:
    with np.load(out / "final.npz") as arrays:
        tensors = {k: torch.from_numpy(arrays[k]) for k in arrays.files}
    return tensors, json.loads((out / "final.json").read_text())


def assert_identical(out: Path, expected: Path) -> None:
    tensors, summary = load(out)
    reference_tensors, reference_summary = load(expected)
    assert tensors.keys() == reference_tensors.keys()
    assert any(k.startswith("optimizer/") for k in tensors)  # Adam's moments are compared
    different = [k for k in tensors if not torch.equal(tensors[k], reference_tensors[k])]
    assert not different, f"differs from the uninterrupted run: {different}"
    assert summary == reference_summary  # history (loss, accuracy, lr...), epochs, step count


def finish(worker: Worker, out: Path, backup: dict, kills: list, **options) -> list[dict]:
    """One leg per kill (each must die by that signal), then legs until one completes."""
    statuses = [worker.leg(out, backup=backup, kill=kill, **options) for kill in kills]
    for status, kill in zip(statuses, kills):
        expected = kill[2] if len(kill) > 2 else signal.SIGKILL
        assert status["signal"] == expected, (kill, status)
    final = worker.leg(out, backup=backup, **options)
    assert final == {"signal": None, "exit": 0}
    assert not Path(backup["backup_dir"]).exists()  # delete_checkpoint after the completed fit
    return statuses


# 4 epochs of 8 batches (120 samples, batch 16): global steps 1..32.
KILLS = {
    "epoch": [["batch_end", 11], ["epoch_begin", 2], ["batch_end", 30]],
    # The second kill lands in the epoch the first leg resumed in, after a backup of it.
    1: [["batch_end", 3], ["batch_end", 5], ["batch_end", 16], ["epoch_end", 2]],
    3: [["batch_end", 8], ["epoch_begin", 2], ["batch_end", 25]],
    7: [["batch_end", 6], ["batch_end", 15], ["batch_end", 31]],
}


@pytest.mark.parametrize("save_freq", ["epoch", 1, 3, 7])
def test_killed_runs_resume_bit_identically(worker, reference, tmp_path, save_freq):
    backup = {"backup_dir": str(tmp_path / "backup"), "save_freq": save_freq}
    finish(worker, tmp_path, backup, KILLS[save_freq])
    assert_identical(tmp_path, reference["plain"])


def test_kills_at_random_times_resume_bit_identically(worker, reference, tmp_path):
    # Timers land anywhere: inside a step, a backup write, a validation pass or start-up.
    backup = {"backup_dir": str(tmp_path / "backup"), "save_freq": 1}
    delays = random.Random(11)
    killed = 0
    for leg in range(40):
        # A whole leg takes ~1 s here (32 backups); the bound grows so that a slow machine
        # still gets past a backup or two per leg.
        status = worker.leg(tmp_path, backup=backup,
                            kill_after=delays.uniform(0.02, 0.3) * 1.15 ** leg)
        if status["signal"] is None:
            break
        killed += 1
    assert status == {"signal": None, "exit": 0}
    assert killed >= 2
    assert_identical(tmp_path, reference["plain"])


def test_early_stopping_plateau_and_csv_resume_bit_identically(worker, reference, tmp_path):
    summary = json.loads((reference["callbacks"] / "final.json").read_text())
    # The oracle run exercises what must survive: it stops early (before 8 epochs) and the
    # plateau callback cut the learning rate, so restored best weights and counters matter.
    assert len(summary["epoch"]) < 8
    accuracy = summary["history"]["val_accuracy"]
    assert accuracy.index(max(accuracy)) < len(accuracy) - 1  # best weights are not the last
    rates = summary["history"]["learning_rate"]
    assert any(b < a * 0.9 * 0.99 for a, b in zip(rates, rates[1:]))
    backup = {"backup_dir": str(tmp_path / "backup"), "save_freq": 5}
    last = len(summary["epoch"]) * 8
    finish(worker, tmp_path, backup, [["batch_end", last - 9], ["epoch_end", len(summary["epoch"]) - 1]],
           variant="callbacks", epochs=8)
    assert_identical(tmp_path, reference["callbacks"])
    assert (tmp_path / "log.csv").read_text() == (reference["callbacks"] / "log.csv").read_text()


@pytest.mark.parametrize("where", ["state", "swap"])
def test_a_kill_inside_the_backup_write_leaves_a_resumable_backup(worker, reference, tmp_path,
                                                                   where):
    backup = {"backup_dir": str(tmp_path / "backup"), "save_freq": 3, "double_checkpoint": True}
    status = worker.leg(tmp_path, backup=backup, kill_in_write=[4, where])
    assert status["signal"] == signal.SIGKILL
    kept = sorted(os.listdir(backup["backup_dir"]))
    assert "previous" in kept and (where == "swap") == ("latest" not in kept)
    assert worker.leg(tmp_path, backup=backup) == {"signal": None, "exit": 0}
    assert_identical(tmp_path, reference["plain"])


def test_double_checkpoint_resumes_from_the_previous_backup_when_the_latest_is_corrupt(
        worker, reference, tmp_path):
    backup = {"backup_dir": str(tmp_path / "backup"), "save_freq": 3, "double_checkpoint": True}
    assert worker.leg(tmp_path, backup=backup, kill=["batch_end", 20])["signal"] == signal.SIGKILL
    state = Path(backup["backup_dir"], "latest", "training.state.h5")
    state.write_bytes(state.read_bytes()[:300])  # a copy cut short
    assert worker.leg(tmp_path, backup=backup) == {"signal": None, "exit": 0}
    assert_identical(tmp_path, reference["plain"])


def test_without_double_checkpoint_a_corrupt_backup_is_an_error_naming_the_fix(worker, tmp_path):
    backup = {"backup_dir": str(tmp_path / "backup"), "save_freq": 3}
    assert worker.leg(tmp_path, backup=backup, kill=["batch_end", 20])["signal"] == signal.SIGKILL
    assert sorted(os.listdir(backup["backup_dir"])) == ["latest"]
    state = Path(backup["backup_dir"], "latest", "training.state.h5")
    state.write_bytes(state.read_bytes()[:300])
    worker.process.stdin.write(json.dumps({"out": str(tmp_path), "backup": backup}) + "\n")
    worker.process.stdin.flush()
    assert json.loads(worker.process.stdout.readline())["exit"] == 1
    message = (tmp_path / "error.txt").read_text()
    assert "could read none" in message and "Delete the directory" in message


def test_sigterm_with_save_before_preemption_backs_up_then_terminates(worker, reference, tmp_path):
    backup = {"backup_dir": str(tmp_path / "backup"), "save_freq": False,
              "save_before_preemption": True}
    statuses = finish(worker, tmp_path, backup, [["batch_end", 13, signal.SIGTERM]])
    assert statuses[0]["signal"] == signal.SIGTERM
    assert_identical(tmp_path, reference["plain"])
