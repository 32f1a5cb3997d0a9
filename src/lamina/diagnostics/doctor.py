"""The training doctor's findings: `Diagnosis`, the run record they are made from, and the
plain-text report.

A run record is what the `Doctor` callback saw during `fit` (the history, sampled gradient,
update, activation, input and label statistics, and the errors `fit` raised), as JSON-ready
data. `diagnose(record)` runs every check in `lamina.diagnostics.checks` on it, so a finished
run is diagnosed from its saved record exactly as it was live (`lamina doctor RUN_DIR`).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

RECORD_FILE = "doctor.json"
REPORT_FILE = "doctor.txt"
SEVERITIES = ("error", "warning")


@dataclass
class Diagnosis:
    """One finding: a stable `code`, how bad it is, the numbers behind it and what to do.

    `epoch` is the 0-based epoch at which it was established (as Keras callbacks count) and
    `layer` the Keras layer name (or module path in a wrapped torch module) it is about.
    """

    code: str
    severity: str
    evidence: str
    remedies: list[str] = field(default_factory=list)
    epoch: int | None = None
    layer: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        where = []
        if self.layer:
            where.append(f"layer {self.layer}")
        if self.epoch is not None:
            where.append(f"epoch {self.epoch + 1}")
        head = f"[{self.severity}] {self.code}" + (f" ({', '.join(where)})" if where else "")
        lines = [head, f"  Evidence: {self.evidence}"]
        if self.remedies:
            lines.append("  Remedies:")
            lines.extend(f"    - {remedy}" for remedy in self.remedies)
        return "\n".join(lines)


class Run:
    """A run record with the views the checks share (sample matrices, merged statistics)."""

    def __init__(self, record: dict[str, Any]):
        self.record = record
        self.model = record.get("model", {})
        self.units: list[dict[str, Any]] = self.model.get("units", [])
        self.history: dict[str, list] = record.get("history", {})
        self.events: list[dict[str, Any]] = record.get("events", [])
        self.loss = record.get("loss") or {}
        self.optimizer = record.get("optimizer") or {}
        epochs = record.get("epochs", [])
        self.sample_epoch = np.array([e["epoch"] for e in epochs for _ in e.get("loss", [])],
                                     dtype=np.int64)
        self.sample_batch = np.array([b for e in epochs for b in e.get("steps", [])],
                                     dtype=np.int64)
        self.sample_loss = _floats([v for e in epochs for v in e.get("loss", [])])
        self.grad_rms = _matrix([r for e in epochs for r in e.get("grad_rms", [])],
                                len(self.units))
        self.update_ratio = _matrix([r for e in epochs for r in e.get("update_ratio", [])],
                                    len(self.units))
        self.epoch_stats = epochs
        self.inputs = _merge_inputs(epochs)
        self.labels = _merge_labels(epochs)

    @property
    def epochs_run(self) -> int:
        return len(self.history.get("loss", []))

    def kernel_units(self) -> list[int]:
        return [i for i, u in enumerate(self.units) if u.get("has_kernel")]

    def series(self, key: str) -> np.ndarray:
        return _floats(self.history.get(key, []))

    @property
    def loss_name(self) -> str:
        return self.loss.get("name") or ""

    @property
    def output_width(self) -> int | None:
        return self.units[-1].get("width") if self.units else None

    def learning_rate_text(self) -> str:
        rate = self.optimizer.get("learning_rate")
        name = self.optimizer.get("name", "the optimizer")
        return f"{name}'s learning rate {rate:g}" if isinstance(rate, (int, float)) else \
            f"{name}'s learning rate"


def _floats(values: list) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _matrix(rows: list, width: int) -> np.ndarray:
    if not rows:
        return np.zeros((0, width))
    return np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=np.float64)


def _merge_inputs(epochs: list[dict]) -> dict[str, dict[str, np.ndarray]]:
    merged: dict[str, dict[str, Any]] = {}
    for epoch in epochs:
        for name, stats in epoch.get("inputs", {}).items():
            mean, std, count = np.array(stats["mean"], float), np.array(stats["std"], float), \
                stats["count"]
            entry = merged.setdefault(name, {"sum": 0.0, "squares": 0.0, "count": 0})
            entry["sum"] = entry["sum"] + mean * count
            entry["squares"] = entry["squares"] + (std ** 2 + mean ** 2) * count
            entry["count"] += count
    result = {}
    for name, entry in merged.items():
        count = max(entry["count"], 1)
        mean = entry["sum"] / count
        result[name] = {"mean": mean, "std": np.sqrt(np.maximum(entry["squares"] / count
                                                                - mean ** 2, 0)),
                        "count": entry["count"]}
    return result


def _merge_labels(epochs: list[dict]) -> dict[str, Any] | None:
    parts = [e["labels"] for e in epochs if e.get("labels")]
    if not parts:
        return None
    histograms = [np.array(p["histogram"], float) for p in parts]
    width = max(len(h) for h in histograms)
    histogram = sum(np.pad(h, (0, width - len(h))) for h in histograms)
    count = sum(p["count"] for p in parts)
    mean = sum(p["sum"] for p in parts) / max(count, 1)
    return {
        "count": count, "rows": sum(p["rows"] for p in parts), "shape": parts[-1]["shape"],
        "min": min(p["min"] for p in parts), "max": max(p["max"] for p in parts),
        "non_integer": sum(p["non_integer"] for p in parts),
        "row_sum_min": min(p["row_sum_min"] for p in parts),
        "row_sum_max": max(p["row_sum_max"] for p in parts),
        "mean": mean, "var": max(sum(p["squares"] for p in parts) / max(count, 1) - mean ** 2, 0),
        "histogram": histogram,
    }


def diagnose(record: dict[str, Any]) -> list[Diagnosis]:
    """Every check on a run record; the findings worst first (errors, then warnings, each in
    the order of the codes' table)."""
    from lamina.diagnostics.checks import CHECKS

    run = Run(record)
    found: list[Diagnosis] = []
    for _, check in CHECKS:
        found.extend(check(run))
    return sorted(found, key=lambda d: SEVERITIES.index(d.severity))


def format_report(diagnoses: list[Diagnosis], record: dict[str, Any] | None = None) -> str:
    """Plain text, worst first."""
    name = (record or {}).get("model", {}).get("name")
    subject = f" for model {name!r}" if name else ""
    if not diagnoses:
        epochs = len((record or {}).get("history", {}).get("loss", []))
        samples = sum(len(e.get("steps", [])) for e in (record or {}).get("epochs", []))
        return (f"Training doctor{subject}: no findings ({epochs} epochs, {samples} sampled "
                "steps checked).")
    lines = [f"Training doctor{subject}: {len(diagnoses)} finding"
             f"{'s' if len(diagnoses) != 1 else ''}, worst first."]
    lines.extend(str(d) for d in diagnoses)
    return "\n".join(lines)


def save_record(record: dict[str, Any], run_dir: str | os.PathLike) -> Path:
    """Write the record (and the report) into `run_dir`; returns the record's path."""
    from lamina.diagnostics.collector import clean

    folder = Path(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / RECORD_FILE
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(clean(record), allow_nan=False))
    os.replace(temporary, path)
    (folder / REPORT_FILE).write_text(format_report(diagnose(record), record) + "\n")
    return path


def load_record(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The record a `Doctor(log_dir=...)` (or `doctor.save`) wrote into `run_dir`."""
    folder = Path(run_dir)
    path = folder / RECORD_FILE if folder.is_dir() or not folder.suffix else folder
    if not path.is_file():
        raise FileNotFoundError(
            f"No training-doctor record at {str(path)!r}. Train with "
            "callbacks=[lamina.callbacks.Doctor(log_dir=RUN_DIR)] (or call doctor.save(RUN_DIR) "
            "after fit) to write one."
        )
    text = path.read_text()
    try:
        record = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as error:
        raise ValueError(f"{str(path)!r} is not a training-doctor record: {error}.") from error
    if not isinstance(record, dict) or record.get("version") != 1:
        raise ValueError(
            f"{str(path)!r} is not a training-doctor record (expected a JSON object with "
            f"\"version\": 1). Received: {type(record).__name__}."
        )
    return record


def _refuse_constant(name: str) -> float:
    raise ValueError(f"non-standard JSON constant {name}")


def diagnose_run(run_dir: str | os.PathLike) -> tuple[list[Diagnosis], str]:
    """The findings and report of a finished run's folder."""
    record = load_record(run_dir)
    found = diagnose(record)
    return found, format_report(found, record)


def layer_range(names: list[str]) -> str:
    """`dense_3..dense_19` for a run of layers, or the names themselves when few."""
    if len(names) <= 3:
        return ", ".join(names)
    return f"{names[0]}..{names[-1]}"


def fmt(value: float) -> str:
    if value is None or not math.isfinite(value):
        return str(value)
    return f"{value:.3g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
