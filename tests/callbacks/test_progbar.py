"""Progress output against Keras 3's own: the same hooks (or `Progbar.update` calls), the same
patched clock, and the bytes written to stdout compared.

In a terminal ours must equal Keras's byte for byte (colour codes, backspaces and carriage
returns included). When output is piped, Keras still redraws in place on any POSIX system (it
counts `posix` in `sys.modules` as a terminal); ours prints each update as a plain line, as Keras
does where it sees no terminal. The piped comparison therefore forces Keras's own non-terminal
mode, and normalises its output by dropping colour codes, trailing blanks and empty lines (Keras
opens each update with a newline instead of ending it with one).
"""

from __future__ import annotations

import io
import os
import re
import sys
import time

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
try:  # Keras 3 is the oracle of the comparisons; the other tests run without it
    from keras.src.callbacks.progbar_logger import ProgbarLogger as KerasProgbarLogger
    from keras.src.utils.progbar import Progbar as KerasProgbar
except ImportError:
    KerasProgbarLogger = KerasProgbar = None
needs_keras = pytest.mark.skipif(KerasProgbar is None, reason="Keras 3 is not installed")

import lamina  # noqa: E402
from lamina import layers  # noqa: E402
from lamina.callbacks import ProgbarLogger  # noqa: E402
from lamina.utils import Progbar  # noqa: E402

ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Pipe(io.StringIO):
    def isatty(self) -> bool:
        return False


class Clock:
    def __init__(self):
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(time, "time", clock)
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    monkeypatch.delenv("PYCHARM_HOSTED", raising=False)
    return clock


def capture(monkeypatch, stream_type, run) -> str:
    stream = stream_type()
    monkeypatch.setattr(sys, "stdout", stream)
    run()
    monkeypatch.setattr(sys, "stdout", sys.__stdout__)
    return stream.getvalue()


def piped_lines(text: str) -> list[str]:
    return [line.rstrip() for line in ANSI.sub("", text).split("\n") if line.strip()]


# Each step: (seconds it took, logs). Values span Keras's formats: 4 decimals, scientific
# notation below 1e-3 (and for negative values in verbose=2 lines), and a metric that only the
# epoch's end reports.
def epoch_steps(steps: int, step_seconds: float, start_loss: float = 2.0) -> list:
    return [(step_seconds * (30 if step == 0 else 1),
             {"loss": start_loss / (step + 1), "accuracy": min(0.05 * step, 1.0),
              "mae": 0.0004 / (step + 1), "log_ratio": -0.5 + 0.01 * step})
            for step in range(steps)]


SCENARIOS = {
    # name: (epochs, steps per epoch, seconds per step, epoch-end extras)
    "22 steps of 0.5 s": (2, 22, 0.5, {"val_loss": 0.25, "val_accuracy": 0.875}),
    "112 steps of 24 ms": (1, 112, 0.024, {}),
    "1000 steps of 40 us": (3, 1000, 0.00004, {"learning_rate": 0.0001}),
    "an hour-long epoch": (2, 40, 100.0, {}),
    "7 steps of 3 s": (1, 7, 3.0, {"val_loss": -0.0002}),
}


def drive(logger, clock, verbose, epochs, steps, seconds, extras, sort_logs):
    """The hooks fit calls, with the clock advancing by each step's duration. Keras's callback
    list sorts logs before any callback sees them; ours get them in metric order."""
    order = sorted if sort_logs else list
    logger.set_params({"verbose": verbose, "epochs": epochs, "steps": steps})
    logger.on_train_begin()
    for epoch in range(epochs):
        logger.on_epoch_begin(epoch)
        last = {}
        for step, (duration, logs) in enumerate(epoch_steps(steps, seconds, 2.0 + epoch)):
            clock.now += duration
            last = {key: logs[key] for key in order(logs)}
            logger.on_train_batch_end(step, last)
        clock.now += seconds  # validation
        end = {**last, **extras}
        logger.on_epoch_end(epoch, {key: end[key] for key in order(end)})
    logger.on_train_end()


# Keras redraws every 0.05 s; our logger waits 0.25 s by default (fewer reads of the metrics
# from the device), so both cadences are compared, Keras's progress bar set to the same one.
@needs_keras
@pytest.mark.parametrize("interval", [None, 0.05])
@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("verbose", [1, 2])
@pytest.mark.parametrize("stream", [Terminal, Pipe])
def test_fit_progress_is_keras_progress(monkeypatch, clock, scenario, verbose, stream, interval):
    epochs, steps, seconds, extras = SCENARIOS[scenario]
    ours = ProgbarLogger() if interval is None else ProgbarLogger(interval=interval)

    def run_keras():
        logger = KerasProgbarLogger()
        original = logger._maybe_init_progbar

        def init():
            original()
            logger.progbar.interval = ours.interval
            if stream is Pipe:  # Keras's non-terminal mode, which POSIX never gets by itself
                logger.progbar._dynamic_display = False

        logger._maybe_init_progbar = init
        drive(logger, clock, verbose, epochs, steps, seconds, extras, sort_logs=True)

    expected = capture(monkeypatch, stream, run_keras)
    shown = capture(monkeypatch, stream,
                    lambda: drive(ours, clock, verbose, epochs, steps, seconds, extras,
                                  sort_logs=False))
    if stream is Terminal:
        assert shown == expected
    else:
        assert shown.split("\n")[:-1] == piped_lines(expected)
        assert "\r" not in shown and "\b" not in shown and "\x1b" not in shown


def progbar_calls(target):
    """A direct `Progbar` user: averaged and as-given metrics, `add`, a repeated last step."""
    steps = target or 9
    calls = []
    for step in range(1, steps + 1):
        calls.append(("update", step, [("loss", 1.0 / step), ("lr", 1e-5 * step),
                                       ("score", np.array([step, step + 1.0]))], 0.31))
    calls.append(("add", 0, [("loss", 0.5)], 0.2))
    calls.append(("update", steps, [("loss", 0.25)], 0.1, True))
    return calls


@needs_keras
@pytest.mark.parametrize("target", [9, None, 0])
@pytest.mark.parametrize("verbose", [1, 2])
@pytest.mark.parametrize("stream", [Terminal, Pipe])
def test_progbar_is_keras_progbar(monkeypatch, clock, target, verbose, stream):
    def run(progbar_class, terminal):
        bar = progbar_class(target, verbose=verbose, stateful_metrics=["lr"])
        if progbar_class is KerasProgbar:
            bar._dynamic_display = terminal
        for call in progbar_calls(target):
            clock.now += call[3]
            if call[0] == "add":
                bar.add(call[1], call[2])
            else:
                bar.update(call[1], call[2], finalize=call[4] if len(call) > 4 else None)

    expected = capture(monkeypatch, stream, lambda: run(KerasProgbar, stream is Terminal))
    ours = capture(monkeypatch, stream, lambda: run(Progbar, stream is Terminal))
    if stream is Terminal:
        assert ours == expected
    else:
        assert ours.split("\n")[:-1] == piped_lines(expected)


def test_the_line_reads_as_keras_documents_it(monkeypatch, clock):
    """The issue's example, spelled out: 22 steps in 11 s."""
    def run():
        logger = ProgbarLogger(interval=0.05)  # Keras's cadence: a line per 0.5 s step
        logger.set_params({"verbose": 1, "epochs": 5, "steps": 22})
        logger.on_epoch_begin(0)
        for step in range(22):
            clock.now += 0.5
            logger.on_train_batch_end(step, {"loss": 0.3, "accuracy": 0.9})
        logger.on_epoch_end(0, {"loss": 0.3, "accuracy": 0.9})

    lines = capture(monkeypatch, Pipe, run).splitlines()
    assert lines[0] == "Epoch 1/5"
    assert lines[1] == " 1/22 ━━━━━━━━━━━━━━━━━━━━ 10s 500ms/step - accuracy: 0.9000 - loss: 0.3000"
    assert lines[-1] == "22/22 ━━━━━━━━━━━━━━━━━━━━ 11s 500ms/step - accuracy: 0.9000 - loss: 0.3000"
    # The last batch's own update (ETA 0s), then the epoch's end (the time it all took).
    assert lines[-2] == "22/22 ━━━━━━━━━━━━━━━━━━━━ 0s 500ms/step - accuracy: 0.9000 - loss: 0.3000"
    assert len(lines) == 24


def test_a_terminal_reporting_zero_columns_changes_nothing(monkeypatch, clock):
    def run():
        bar = Progbar(4)
        for step in range(1, 5):
            clock.now += 1
            bar.update(step, [("loss", 0.5)])

    normal = capture(monkeypatch, Terminal, run)
    monkeypatch.setenv("COLUMNS", "0")
    monkeypatch.setenv("LINES", "0")
    monkeypatch.setattr(os, "get_terminal_size", lambda *args: os.terminal_size((0, 0)))
    assert capture(monkeypatch, Terminal, run) == normal
    assert ANSI.sub("", normal.split("\r")[-1]) == "4/4 ━━━━━━━━━━━━━━━━━━━━ 4s 1s/step - loss: 0.5000\n"


def test_fit_evaluate_and_predict_print_keras_lines(monkeypatch):
    """A real fit: the epoch lines, the sorted metrics, verbose=2's form, evaluate's line and
    predict's bar; the validation pass inside fit prints nothing."""
    lamina.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    model = lamina.Sequential([lamina.Input(shape=(3,)), layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"])
    step = r"\d+(s|ms|us)/step"
    number = r"-?\d+\.\d{4}(e[-+]\d\d)?"

    log = capture(monkeypatch, Pipe, lambda: model.fit(x, y, batch_size=16, epochs=2,
                                                        validation_split=0.25, verbose=2))
    lines = log.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and len(lines) == 4
    assert re.fullmatch(rf"3/3 - \d+s - {step} - accuracy: {number} - loss: {number} - "
                        rf"val_accuracy: {number} - val_loss: {number}", lines[1])

    log = capture(monkeypatch, Pipe, lambda: model.fit(x, y, batch_size=16, epochs=1, verbose=1))
    assert not log.startswith("Epoch")  # Keras prints no `Epoch 1/1`
    assert re.fullmatch(rf"4/4 ━{{20}} \d+s {step} - accuracy: {number} - loss: {number}",
                        log.splitlines()[-1])

    log = capture(monkeypatch, Pipe, lambda: model.evaluate(x, y, batch_size=32, verbose=1))
    assert re.fullmatch(rf"2/2 ━{{20}} \d+s {step} - accuracy: {number} - loss: {number}",
                        log.splitlines()[-1])

    log = capture(monkeypatch, Terminal, lambda: model.predict(x, batch_size=8, verbose=1))
    assert log.startswith("\r\x1b[1m1/8\x1b[0m ") and log.endswith("\n")
    assert re.fullmatch(rf"8/8 ━{{20}} \d+s {step}",
                        ANSI.sub("", log.split("\r")[-1]).rstrip())
    log = capture(monkeypatch, Pipe, lambda: model.predict(x, batch_size=8, verbose=2))
    assert re.fullmatch(rf"8/8 - \d+s - {step}\n", log)
    assert capture(monkeypatch, Terminal, lambda: model.predict(x, verbose=0)) == ""


def test_stateful_and_stateless_metrics_are_exclusive():
    with pytest.raises(ValueError, match=re.escape(
            "Only one of `stateful_metrics` or `stateless_metrics` can be given")):
        Progbar(3, stateful_metrics=["a"], stateless_metrics=["b"])


def test_count_mode_is_steps_or_samples():
    with pytest.raises(ValueError, match=re.escape(
            '`count_mode` must be "steps" or "samples". Received: count_mode=\'batches\'.')):
        ProgbarLogger(count_mode="batches")
