"""`Progbar`: Keras 3's progress line, character for character.

`12/22 ━━━━━━━━━━━━━━━━━━━━ 1s 52ms/step - accuracy: 0.9000 - loss: 0.3000`: the bold count, a
20-character bar (done in green, the rest in grey), the ETA (or, once finished, the time the
whole run took), the time per step in s, ms or us, then each metric to 4 decimals, or in
scientific notation below 1e-3. `verbose=2` prints only the final line, without the bar.

Where the line is redrawn in place: a terminal, a Jupyter kernel, PyCharm's console. Anywhere
else (a pipe, a log file, CI), each update is a plain line of its own, with no carriage return,
backspace or colour code: Keras treats every POSIX system as a terminal, and then writes those
control characters into log files. The bar has a fixed width, so a terminal that reports 0
columns changes nothing.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

_BOLD, _GREEN, _GREY, _RESET = "\x1b[1m", "\x1b[32m", "\x1b[37m", "\x1b[0m"


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel, whose output is no terminal yet redraws lines.

    IPython is looked up, never imported: a kernel has always imported it already.
    """
    ipython = sys.modules.get("IPython")
    shell = getattr(ipython, "get_ipython", lambda: None)() if ipython is not None else None
    if shell is None:
        return False
    return "IPKernelApp" in getattr(shell, "config", {}) or hasattr(shell, "kernel")


def dynamic_display() -> bool:
    """Whether stdout redraws a line on a carriage return (a terminal, a notebook, PyCharm)."""
    isatty = getattr(sys.stdout, "isatty", None)
    return bool(isatty and isatty()) or in_notebook() or "PYCHARM_HOSTED" in os.environ


def format_value(value: float, verbose: int = 1) -> str:
    """A metric as Keras shows it: 4 decimals, or scientific notation for small values.

    Keras compares `abs(value)` on the live line but the signed value in `verbose=2` lines, so
    a negative value there is always shown in scientific notation; both kept for parity.
    """
    small = (abs(value) if verbose == 1 else value) <= 1e-3
    return f"{value:.4e}" if small else f"{value:.4f}"


def format_step_time(seconds: float, unit_name: str = "step") -> str:
    """`3s/step`, `24ms/step` or `850us/step`, as Keras rounds them."""
    if seconds >= 1 or seconds == 0:
        return f"{seconds:.0f}s/{unit_name}"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/{unit_name}"
    return f"{seconds * 1e6:.0f}us/{unit_name}"


def format_eta(seconds: float) -> str:
    if seconds > 3600:
        return "%d:%02d:%02d" % (seconds // 3600, (seconds % 3600) // 60, seconds % 60)
    if seconds > 60:
        return "%d:%02d" % (seconds // 60, seconds % 60)
    return "%ds" % seconds


def _as_float(value: Any) -> float:
    """A metric value read back to the host: a Python number, a numpy or torch scalar, or the
    mean of an array (as Keras averages one)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        import numpy as np

        if hasattr(value, "detach"):
            value = value.detach().float().cpu().numpy()
        return float(np.mean(value))


class Progbar:
    """Displays a progress bar (Keras's `keras.utils.Progbar`).

    Args:
        target: total number of steps expected, None if unknown.
        width: the bar's width in characters.
        verbose: 0 (silent), 1 (the live bar), 2 (one line when finished).
        interval: minimum seconds between two redraws.
        stateful_metrics: names shown as given; the others are averaged over the steps.
        stateless_metrics: names averaged over the steps; the others are shown as given. At most
            one of the two; with neither, every metric is averaged.
        unit_name: what a step is called (`"step"`, `"sample"`).
    """

    def __init__(self, target: int | None, width: int = 20, verbose: int = 1,
                 interval: float = 0.05, stateful_metrics: Iterable[str] | None = None,
                 stateless_metrics: Iterable[str] | None = None, unit_name: str = "step"):
        if stateful_metrics is not None and stateless_metrics is not None:
            raise ValueError(
                "Only one of `stateful_metrics` or `stateless_metrics` can be given: the first "
                "lists the metrics shown as given, the second the metrics averaged over steps. "
                f"Received: stateful_metrics={stateful_metrics!r}, "
                f"stateless_metrics={stateless_metrics!r}."
            )
        self.target = target
        self.width = width
        self.verbose = verbose
        self.interval = interval
        self.unit_name = unit_name
        self.stateful_metrics = set(stateful_metrics) if stateful_metrics is not None else None
        self.stateless_metrics = set(stateless_metrics) if stateless_metrics is not None else None
        if self.stateful_metrics is None and self.stateless_metrics is None:
            self.stateful_metrics = set()
        self._dynamic_display = dynamic_display()
        self._seen_so_far = 0
        self._values: dict[str, list[float]] = {}  # name -> [weighted sum, weight]
        self._values_order: list[str] = []
        self._start = time.time()
        self._last_update = 0.0
        self._time_after_first_step: float | None = None
        self._prev_total_width = 0

    def update(self, current: int, values: Iterable[tuple[str, Any]] | None = None,
               finalize: bool | None = None) -> None:
        """Records step `current` and the metrics `(name, value_for_this_step)`, and redraws.

        `finalize` (default: `current >= target`) ends the line.
        """
        finalize = self._finalizing(current, finalize)
        self._record(current, values or (), finalize)
        self._show(current, finalize, time.time())

    def update_lazily(self, current: int, read_values: Callable[[], Mapping[str, Any]],
                      finalize: bool | None = None) -> None:
        """`update` for metrics shown as given, read by `read_values()` only when a line is drawn:
        a training loop calls this every step without reading its metrics back every step."""
        finalize = self._finalizing(current, finalize)
        now = time.time()
        if self._due(now, finalize):
            for name, value in read_values().items():
                self._remember(name)
                self._values[name] = [_as_float(value), 1]
        self._seen_so_far = current
        self._show(current, finalize, now)

    def add(self, n: int, values: Iterable[tuple[str, Any]] | None = None) -> None:
        self.update(self._seen_so_far + n, values)

    def _finalizing(self, current: int, finalize: bool | None) -> bool:
        if finalize is None:
            return self.target is not None and current >= self.target
        return finalize

    def _due(self, now: float, finalize: bool) -> bool:
        if self.verbose == 1:
            return finalize or now - self._last_update >= self.interval
        return finalize and self.verbose == 2

    def _remember(self, name: str) -> None:
        if name not in self._values_order:
            self._values_order.append(name)

    def _record(self, current: int, values: Iterable[tuple[str, Any]], finalize: bool) -> None:
        for name, value in values:
            self._remember(name)
            if self.stateful_metrics is not None:
                averaged = name not in self.stateful_metrics
            else:
                averaged = name in self.stateless_metrics
            value = _as_float(value)
            if averaged and not finalize:
                # Weighted by the steps since the last update, at least 1: a loop that reports
                # the same step twice (an unknown target's last batch, then its end) counts it.
                weight = max(current - self._seen_so_far, 1)
                total = self._values.setdefault(name, [0.0, 0])
                total[0] += value * weight
                total[1] += weight
            else:
                self._values[name] = [value, 1]
        self._seen_so_far = current

    def _metrics_text(self) -> str:
        return "".join(
            f" - {name}: {format_value(total / max(1, count), self.verbose)}"
            for name, (total, count) in ((n, self._values[n]) for n in self._values_order)
        )

    def _show(self, current: int, finalize: bool, now: float) -> None:
        time_per_unit = self._step_duration(current, now)
        if not self._due(now, finalize):
            if self.verbose != 1:
                self._last_update = now
            return
        known = self.target is not None and self.target > 0
        if self.verbose == 2:
            if known:
                count = f"%{int(math.log10(self.target)) + 1}d/%d" % (current, self.target)
                line = (f"{count} - {now - self._start:.0f}s - "
                        f"{format_step_time(time_per_unit, self.unit_name)}{self._metrics_text()}")
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
            self._last_update = now
            return
        self._draw(current, finalize, known, now, time_per_unit)
        self._last_update = now

    def _draw(self, current: int, finalize: bool, known: bool, now: float,
              time_per_unit: float) -> None:
        # Each part as (plain text, text with colour codes); widths count the plain text.
        if known:
            count = f"%{int(math.log10(self.target)) + 1}d/%d" % (current, self.target)
            done = int(self.width * current / self.target)
            parts = [(count + " ", f"{_BOLD}{count}{_RESET} ")]
            if done > 0:
                parts.append(("━" * done, f"{_GREEN}{'━' * done}{_RESET}"))
            rest = "━" * (self.width - done)
            parts.append((rest, f"{_GREY}{rest}{_RESET}"))
        else:
            parts = [("%7d/Unknown" % current,) * 2]
        clock = (format_eta(time_per_unit * (self.target - current)) if known and not finalize
                 else f"{now - self._start:.0f}s")
        parts.append((" " + clock, f" {_BOLD}{clock}{_RESET}"))
        tail = " " + format_step_time(time_per_unit, self.unit_name) + self._metrics_text()
        parts.append((tail, tail))
        plain = "".join(p for p, _ in parts)
        if self._dynamic_display:
            message = "\b" * self._prev_total_width + "\r" + "".join(c for _, c in parts)
            # Blank out what is left of a longer previous line.
            message += " " * max(self._prev_total_width - len(plain), 0)
            message += "\n" if finalize else ""
        else:
            message = plain + "\n"
        self._prev_total_width = len(plain)
        _write(message)

    def _step_duration(self, current: int, now: float) -> float:
        """Seconds per step, leaving out the first step (compilation, warm-up) once there are
        more: `(now - end of step 1) / (current - 1)`."""
        if not current:
            return 0.0
        if self._time_after_first_step is not None and current > 1:
            duration = (now - self._time_after_first_step) / (current - 1)
        else:
            duration = (now - self._start) / current
        if current == 1:
            self._time_after_first_step = now
        return duration


def _write(message: str) -> None:
    try:
        sys.stdout.write(message)
    except UnicodeEncodeError:
        # A console whose encoding lacks '━' (a Windows code page) gets '=' instead.
        sys.stdout.write(message.replace("━", "="))
    sys.stdout.flush()
