"""A training script as a user writes it, run by torchrun in tests/distribution/test_torchrun.py.

Data parallel over every process torchrun starts, BackupAndRestore every 2 batches; on the
first attempt rank 3 SIGKILLs itself in the middle of epoch 2, so torchrun (--max-restarts 1)
restarts the whole group, which resumes from the backup. Rank 0 saves the final weights.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import torch

torch.set_num_threads(1)

sys.path.insert(0, str(Path(__file__).parent))
import scenarios  # noqa: E402

from lamina import callbacks, distribution  # noqa: E402

KILL_AT = 9  # the 9th update: batch 3 of epoch 2 (6 batches of 16 per epoch)


class KillOnce(callbacks.Callback):
    def __init__(self, out: Path):
        super().__init__()
        self.out = out
        self.started_at: int | None = None

    def on_epoch_begin(self, epoch, logs=None):
        # After BackupAndRestore's on_train_begin: the update count the run continues from.
        if self.started_at is None:
            self.started_at = int(self.model.optimizer.iterations)

    def on_train_batch_end(self, batch, logs=None):
        if not (self.out / "killed").exists() and distribution.process_index() == 3 \
                and int(self.model.optimizer.iterations) == KILL_AT:
            (self.out / "killed").write_text(str(distribution.process_index()))
            os.kill(os.getpid(), signal.SIGKILL)


def main(out: Path) -> None:
    distribution.initialize(timeout=60)
    distribution.set_distribution(distribution.DataParallel())
    # A restarted group starts from other initial weights: only a restored backup brings it
    # back onto the uninterrupted run's path.
    restarted = (out / "killed").exists()
    model = scenarios.mlp(seed=1 if restarted else 0)
    kill = KillOnce(out)
    x, y = scenarios.data(96)
    history = model.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[
        kill, callbacks.BackupAndRestore(str(out / "backup"), save_freq=2)])
    model.save_weights(str(out / "final.weights.h5"))
    rank = distribution.process_index()
    (out / f"history-rank{rank}.json").write_text(json.dumps(history.history))
    (out / f"done-rank{rank}").write_text(str(kill.started_at))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
