"""Progress bars in notebooks: a Jupyter kernel (faked here: IPython's `get_ipython()` returning a
kernel shell) gets tqdm's widget bar when ipywidgets is importable, its text bar otherwise, even
though the kernel's stdout is no terminal; terminals, IPython consoles and logs are unchanged."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import tqdm.notebook
import tqdm.std

import lamina as keras
from lamina import layers
from lamina.callbacks.progbar_logger import in_notebook, progress_bar_class


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
    for key in ("QT_API", "SPYDER_ARGS"):
        monkeypatch.delenv(key, raising=False)


@pytest.mark.parametrize("shell, widgets, environment, notebook, bar", [
    (None, True, {}, False, tqdm.std.tqdm),                         # IPython imported, not running
    (TerminalInteractiveShell(), True, {}, False, tqdm.std.tqdm),   # the ipython console
    (ZMQInteractiveShell(), True, {}, True, tqdm.notebook.tqdm),    # Jupyter with ipywidgets
    (ZMQInteractiveShell(), False, {}, True, tqdm.std.tqdm),        # Jupyter without ipywidgets
    (ZMQInteractiveShell(), True, {"QT_API": "pyqt5"}, True, tqdm.std.tqdm),  # qtconsole
])
def test_the_bar_is_chosen_by_the_running_shell(monkeypatch, shell, widgets, environment,
                                                notebook, bar):
    fake_ipython(monkeypatch, shell)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(tqdm.notebook, "IProgress", object if widgets else None)
    assert in_notebook() is notebook
    assert progress_bar_class() is bar


def test_plain_python_has_no_notebook(monkeypatch):
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    monkeypatch.setattr(tqdm.notebook, "IProgress", object)
    assert not in_notebook()
    assert progress_bar_class() is tqdm.std.tqdm


def fit_with_progress(steps: int = 4) -> None:
    keras.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(8 * steps, 3)).astype("float32")
    model = keras.Sequential([keras.Input(shape=(3,)), layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, x[:, :1], batch_size=8, epochs=1, verbose=1)


def test_a_kernel_without_widgets_shows_the_text_bar_where_a_log_shows_one_line(monkeypatch,
                                                                                capsys):
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    fit_with_progress()
    log = capsys.readouterr().out  # captured stdout is not a terminal: one line per epoch
    assert "4/4 - " in log and "step/s" not in log and "|" not in log

    fake_ipython(monkeypatch, ZMQInteractiveShell())
    monkeypatch.setattr(tqdm.notebook, "IProgress", None)
    fit_with_progress()
    shown = capsys.readouterr().out
    assert "Epoch 1/1" in shown and "4/4 [" in shown and "step" in shown and "|" in shown
    assert "4/4 - " not in shown


def test_a_kernel_with_widgets_gets_tqdms_notebook_bar(monkeypatch):
    created = []

    class WidgetBar(tqdm.std.tqdm):  # stands in for the widget, which needs a live kernel
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            created.append(self)

    fake_ipython(monkeypatch, ZMQInteractiveShell())
    monkeypatch.setattr(tqdm.notebook, "IProgress", object)
    monkeypatch.setattr(tqdm.notebook, "tqdm", WidgetBar)
    fit_with_progress(steps=5)
    assert len(created) == 1
    assert created[0].total == 5 and created[0].n == 5 and "loss: " in created[0].postfix
