"""torchrun end to end: 2 simulated nodes x 2 processes through c10d rendezvous on localhost,
with a worker SIGKILLed mid-epoch and the group restarted (--max-restarts 1); the resumed run
ends with the weights of an uninterrupted single-process run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import scenarios  # noqa: E402

TORCHRUN = Path(sys.executable).with_name("torchrun")
WORKER = Path(__file__).with_name("torchrun_worker.py")

pytestmark = pytest.mark.skipif(not TORCHRUN.exists() or sys.platform != "linux",
                                reason="needs torchrun on Linux")


def test_two_nodes_killed_worker_resumes_to_the_uninterrupted_weights(tmp_path):
    port = scenarios.free_port()
    agents = []
    for node in range(2):
        command = [str(TORCHRUN), "--nnodes", "2", "--nproc-per-node", "2",
                   "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}",
                   "--rdzv-id", "lamina-test", "--rdzv-conf", f"is_host={int(node == 0)}",
                   "--max-restarts", "1", "--monitor-interval", "0.5",
                   str(WORKER), str(tmp_path)]
        log = open(tmp_path / f"agent{node}.log", "w")
        # Workers get a fresh rendezvous store each round: gloo re-reads stale addresses from
        # the agents' shared one after a restart (torch's own switch for it).
        environment = {**os.environ, "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
        agents.append((subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                        env=environment), log))
    try:
        codes = [agent.wait(timeout=150) for agent, _ in agents]
    finally:
        for agent, log in agents:
            if agent.poll() is None:
                agent.kill()
                agent.wait()
            log.close()
    logs = "\n".join((tmp_path / f"agent{n}.log").read_text()[-3000:] for n in range(2))
    assert codes == [0, 0], logs
    # Rank 3 was killed mid-epoch, and every rank of the restarted group finished.
    assert (tmp_path / "killed").read_text() == "3"
    # Every rank of the restarted group finished, continuing from the backup of update 8.
    done = {p.name: p.read_text() for p in tmp_path.glob("done-rank*")}
    assert done == {f"done-rank{r}": "8" for r in range(4)}, logs

    model = scenarios.mlp()
    x, y = scenarios.data(96)
    history = model.fit(x, y, batch_size=16, epochs=3, verbose=0).history
    # Every rank logged the uninterrupted run's history, the resumed epoch's included (its
    # accumulators were backed up summed over the processes).
    for rank in range(4):
        logged = json.loads((tmp_path / f"history-rank{rank}.json").read_text())
        assert logged.keys() == history.keys()
        for key, values in history.items():
            np.testing.assert_allclose(logged[key], values, rtol=2e-5, atol=2e-5)
    resumed = scenarios.mlp()
    resumed.load_weights(str(tmp_path / "final.weights.h5"))
    for mine, theirs in zip(resumed.get_weights(), model.get_weights()):
        np.testing.assert_allclose(mine, theirs, rtol=2e-5, atol=2e-5)
