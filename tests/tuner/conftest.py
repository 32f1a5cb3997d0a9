"""Optuna logs every trial at INFO on stderr; the tests only need its warnings."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def quiet_optuna():
    optuna = pytest.importorskip("optuna")
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    yield
    optuna.logging.set_verbosity(previous)
