"""Progress in notebooks: a Jupyter kernel (faked here: IPython's `get_ipython()` returning a
kernel shell) redraws Keras's line in place, as a terminal does, though its stdout is no
terminal; the IPython console follows its terminal, and plain logs get one plain line per update."""

from __future__ import annotations

import io
import sys
import types

import numpy as np
import pytest

import lamina as keras
from lamina import layers
from lamina.utils.progbar import dynamic_display, in_notebook


class ZMQInteractiveShell:
    """What ipykernel's shell looks like to a library: a kernel app in its config, a kernel."""

    def __init__(self):
        self.config = {"IPKernelApp": {"connection_file": "kernel-1.json"}}
        self.kernel = object()


class TerminalInteractiveShell:
    def __init__(self):
        self.config = {"TerminalIPythonApp": {}}


def fake_ipython(monkeypatch, shell) -> None:
    module = types.ModuleType("IPython")
    module.get_ipython = lambda: shell
    monkeypatch.setitem(sys.modules, "IPython", module)
    monkeypatch.delenv("PYCHARM_HOSTED", raising=False)


class Log(io.StringIO):
    def isatty(self) -> bool:
        return False


@pytest.mark.parametrize("shell, notebook", [
    (None, False),                          # IPython imported, not running
    (TerminalInteractiveShell(), False),    # the ipython console
    (ZMQInteractiveShell(), True),          # Jupyter, VS Code, Colab
])
def test_the_display_follows_the_running_shell(monkeypatch, shell, notebook):
    fake_ipython(monkeypatch, shell)
    monkeypatch.setattr(sys, "stdout", Log())
    assert in_notebook() is notebook
    assert dynamic_display() is notebook


def test_plain_python_has_no_notebook(monkeypatch):
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    monkeypatch.delenv("PYCHARM_HOSTED", raising=False)
    monkeypatch.setattr(sys, "stdout", Log())
    assert not in_notebook() and not dynamic_display()
    monkeypatch.setenv("PYCHARM_HOSTED", "1")  # PyCharm's run console redraws lines
    assert dynamic_display()


def fit_with_progress(monkeypatch, steps: int = 4) -> str:
    keras.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(8 * steps, 3)).astype("float32")
    model = keras.Sequential([keras.Input(shape=(3,)), layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    log = Log()
    monkeypatch.setattr(sys, "stdout", log)
    model.fit(x, x[:, :1], batch_size=8, epochs=2, verbose=1)
    monkeypatch.setattr(sys, "stdout", sys.__stdout__)
    return log.getvalue()


def test_a_kernel_redraws_the_line_where_a_log_gets_plain_lines(monkeypatch):
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    monkeypatch.delenv("PYCHARM_HOSTED", raising=False)
    log = fit_with_progress(monkeypatch)
    assert "\r" not in log and "\b" not in log and "\x1b" not in log
    assert log.startswith("Epoch 1/2\n1/4 ━")
    assert all(line.startswith(("Epoch", "1/4", "2/4", "3/4", "4/4")) for line in log.splitlines())

    fake_ipython(monkeypatch, ZMQInteractiveShell())
    shown = fit_with_progress(monkeypatch)
    assert shown.startswith("Epoch 1/2\n\r\x1b[1m1/4\x1b[0m \x1b[32m━━━━━\x1b[0m")
    # One finished line per epoch; every redraw before it returns to the line's start.
    finished = [line.split("\r")[-1] for line in shown.split("\n") if "\r" in line]
    assert len(finished) == 2 and all(line.startswith("\x1b[1m4/4") for line in finished)
