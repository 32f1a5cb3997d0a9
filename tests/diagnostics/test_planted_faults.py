"""The planted-fault table: every code found in each run built to have it, and no finding at
all in the healthy runs (the digits MLP and CNN, an LSTM on sequences, a ResNet-ish model)."""

from __future__ import annotations

import pytest

import lamina as keras
from lamina.diagnostics import CODES
from tests.diagnostics import planted


@pytest.fixture(scope="module")
def outcomes():
    found = {}
    for code, runs in planted.PLANTED.items():
        for run in runs:
            keras.set_random_seed(0)
            found[(code, run.__name__)] = [d.code for d in run().diagnoses]
    for run in planted.HEALTHY:
        keras.set_random_seed(0)
        found[(None, run.__name__)] = [d.code for d in run().diagnoses]
    return found


def test_every_code_has_two_planted_runs():
    assert set(planted.PLANTED) == set(CODES)
    assert all(len(runs) >= 2 for runs in planted.PLANTED.values())


def test_planted_fault_table(outcomes, capsys):
    rows = []
    for code in CODES:
        runs = [(name, codes) for (c, name), codes in outcomes.items() if c == code]
        rows.append((code, sum(code in codes for _, codes in runs), len(runs)))
    healthy = [(name, codes) for (c, name), codes in outcomes.items() if c is None]
    alarms = sum(bool(codes) for _, codes in healthy)
    with capsys.disabled():
        print("\n| code | planted faults found / planted |\n|---|---|")
        for code, hits, total in rows:
            print(f"| `{code}` | {hits} / {total} |")
        total_hits, total = sum(r[1] for r in rows), sum(r[2] for r in rows)
        print(f"| **all** | **{total_hits} / {total}** |")
        print(f"\nFalse alarms / healthy runs: {alarms} / {len(healthy)}")
    missed = {name: codes for (c, name), codes in outcomes.items() if c and c not in codes}
    assert not missed, f"planted faults not found (run: what was found): {missed}"
    assert alarms == 0, f"false alarms on healthy runs: {dict(healthy)}"
