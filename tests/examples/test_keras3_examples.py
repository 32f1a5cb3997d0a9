"""The Keras-3-style scripts of examples/keras3 run to the end and learn.

Each runs as a user would run it (`python examples/keras3/<name>.py`) in its own process, at
the small size (`LAMINA_EXAMPLES_SMALL=1`), and must print a final metric past a bound that
only a model that learned the task reaches (chance, or the targets' variance, is far off).
Two run at a time; each process is given one torch thread, since on a busy machine OpenMP
threads spin waiting for each other and multiply the CPU time several-fold.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "keras3"

# script -> (metric it prints last, bound, whether higher is better)
EXPECTED = {
    "image_classification_from_scratch": ("val_acc", 0.8, True),
    "text_classification_from_scratch": ("test_accuracy", 0.8, True),
    "timeseries_weather_forecasting": ("val_loss", 0.5, False),
    "variational_autoencoder": ("loss_ratio", 0.9, False),
    "knowledge_distillation": ("sparse_categorical_accuracy", 0.6, True),
    "lstm_seq2seq": ("exact_match", 0.7, True),
    "transfer_learning": ("binary_accuracy", 0.8, True),
    "custom_layers_and_models": ("val_loss_over_variance", 0.5, False),
}


def run_example(name: str, workdir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "LAMINA_EXAMPLES_SMALL": "1", "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg",
           "TMPDIR": str(workdir)}
    return subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py")], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Future]:
    pool = ThreadPoolExecutor(max_workers=2)
    futures = {name: pool.submit(run_example, name, tmp_path_factory.mktemp(name)) for name in EXPECTED}
    yield futures
    pool.shutdown(wait=True)


def test_every_script_is_listed():
    assert sorted(path.stem for path in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_and_learns(runs, name):
    result = runs[name].result()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    metric, bound, higher = EXPECTED[name]
    found = re.findall(rf"^final {metric}: ([-0-9.e]+)$", result.stdout, flags=re.MULTILINE)
    assert len(found) == 1, result.stdout[-2000:]
    value = float(found[0])
    assert (value >= bound) if higher else (value <= bound), f"{metric}={value}, bound {bound}"
