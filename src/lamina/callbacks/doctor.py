"""`Doctor`: diagnoses common training problems while `fit` runs (docs/doctor.md)."""

from __future__ import annotations

import math
import os
from typing import Any

from lamina import losses
from lamina._registry import register
from lamina.callbacks.callback import Callback
from lamina.diagnostics.collector import Collector
from lamina.diagnostics.doctor import Diagnosis, diagnose, format_report, save_record
from lamina.diagnostics.failures import events_from_error, locate
from lamina.diagnostics.model_info import describe_model, units_and_taps

# Sampled steps per epoch when `every` is left to the doctor, and the widest spacing: short
# epochs get a few samples each, long ones one every MAX_EVERY steps (the overhead budget).
SAMPLES_PER_EPOCH = 8
MAX_EVERY = 32


@register("Doctor")
class Doctor(Callback):
    """The training doctor: samples gradients, weight updates, activations, inputs and labels
    on the device every `every` steps, and diagnoses vanishing/exploding gradients, dead ReLUs,
    saturation, a learning rate too high or too low, over- and underfitting, unnormalized
    inputs, class imbalance, label problems and non-finite inputs.

    `model.fit(..., doctor=True)` adds one (then reachable as `model.doctor`).

    Args:
        log_dir: folder to write the run record (`doctor.json`) and report (`doctor.txt`) into
            at the end of `fit` (and when it fails); `lamina doctor log_dir` re-reads it.
        every: sample every `every`-th training step (None: about 8 samples per epoch, at most
            every 32nd step).
        verbose: print each finding once, when it is established (None: when fit's verbose is
            not 0).

    >>> doctor = Doctor()
    >>> doctor.diagnoses
    []
    """

    def __init__(self, log_dir: str | os.PathLike | None = None, every: int | None = None,
                 verbose: bool | None = None):
        super().__init__()
        if every is not None and (isinstance(every, bool) or not isinstance(every, int)
                                  or every < 1):
            raise ValueError(f"`every` must be a positive integer or None. Received: "
                             f"every={every!r}.")
        self.log_dir = log_dir
        self.every = every
        self.verbose = verbose
        self.diagnoses: list[Diagnosis] = []
        self.record: dict[str, Any] = _empty_record()
        self._collector = None
        self._announced: set[tuple[str, str | None]] = set()
        self._epoch = 0
        self._last: tuple[int, int, Any] | None = None

    def get_config(self) -> dict[str, Any]:
        return {"log_dir": None if self.log_dir is None else str(self.log_dir),
                "every": self.every, "verbose": self.verbose}

    # ------------------------------------------------------------------ fit's hooks

    def on_train_begin(self, logs=None):
        model = self.model
        units, taps = units_and_taps(model)
        steps = self.params.get("steps")
        every = self.every or (max(1, min(MAX_EVERY, (steps or 0) // SAMPLES_PER_EPOCH))
                               if steps else MAX_EVERY)
        self._collector = Collector(model, units, taps, every)
        self._collector.scaler = getattr(getattr(_trainer(model), "_precision", None),
                                         "scaler", None)
        positions = {id(m): i for i, m in enumerate(model.modules())}
        last_weighted = max((positions[id(p_owner)] for p_owner in _owners(model, units)),
                            default=-1)
        self.record = _empty_record()
        self.record["every"] = every
        self.record["model"] = describe_model(model, units)
        self.record["model"]["taps"] = [
            {"name": t.name, "kind": t.kind, "hidden": t.position < last_weighted}
            for t in taps]
        self.record["loss"] = _describe_loss(model)
        self.record["optimizer"] = _describe_optimizer(model)
        self.diagnoses, self._announced, self._last = [], set(), None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self._collector is not None:
            self._collector.begin_step(batch)

    def after_backward(self, data: Any, loss: Any) -> None:
        """The trainer's hook: the batch and loss, with the gradients still present."""
        collector = self._collector
        if collector is None:
            return
        self._last = (self._epoch, collector.batch, data)
        if collector.sampling:
            collector.after_backward(data, loss)

    def on_train_batch_end(self, batch, logs=None):
        if self._collector is not None:
            self._collector.end_step()

    def on_epoch_end(self, epoch, logs=None):
        if self._collector is None:
            return
        logs = dict(logs or {})
        self._append_history(logs)
        self.record["epochs"].append({"epoch": epoch, **self._collector.read_epoch()})
        loss = logs.get("loss")
        if isinstance(loss, float) and not math.isfinite(loss) and self._last is not None:
            # TerminateOnNaN skipped a non-finite step and stopped: fit raises nothing.
            self.record["events"].extend(locate(*self._last, self.model, _trainer(self.model)))
        self._update()

    def on_train_end(self, logs=None):
        self._update()
        if self.log_dir is not None:
            self.save(self.log_dir)

    def on_exception(self, error: BaseException) -> None:
        """`fit` raised `error`: record what fit's own checks found, then diagnose."""
        if not self.record["model"] and self.model is not None:
            self.record["model"] = {"name": getattr(self.model, "name", None)}
        self.record["events"].extend(events_from_error(error, self._last, self.model,
                                                       _trainer(self.model)))
        self._update()
        if self.log_dir is not None:
            self.save(self.log_dir)

    # ------------------------------------------------------------------ results

    def _append_history(self, logs: dict[str, Any]) -> None:
        history = self.record["history"]
        done = len(history.get("loss", []))
        for key, value in logs.items():
            if isinstance(value, (int, float)):
                history.setdefault(key, [None] * done).append(float(value))
        for values in history.values():
            values.extend([None] * (done + 1 - len(values)))

    def _update(self) -> None:
        self.diagnoses = diagnose(self.record)
        verbose = self.verbose if self.verbose is not None else self.params.get("verbose", 0)
        for diagnosis in self.diagnoses:
            key = (diagnosis.code, diagnosis.layer)
            if key not in self._announced:
                self._announced.add(key)
                if verbose:
                    print(f"\nTraining doctor: {diagnosis}", flush=True)

    def report(self) -> str:
        """The findings as plain text, worst first."""
        return format_report(self.diagnoses, self.record)

    def save(self, run_dir: str | os.PathLike) -> None:
        """Write the run record and the report into `run_dir` (for `lamina doctor RUN_DIR`)."""
        save_record(self.record, run_dir)


def _empty_record() -> dict[str, Any]:
    return {"version": 1, "model": {}, "history": {}, "epochs": [], "events": []}


def _trainer(model: Any) -> Any:
    return getattr(model, "__dict__", {}).get("_lamina_trainer")


def _owners(model, units) -> list:
    wanted = {id(p) for u in units for p in u.parameters}
    return [m for m in model.modules()
            if any(id(p) in wanted for p in m.parameters(recurse=False))]


def _describe_loss(model: Any) -> dict[str, Any]:
    trainer = _trainer(model)
    loss = getattr(trainer, "loss_argument", None)
    if isinstance(loss, (list, tuple)) and len(loss) == 1:
        loss = loss[0]
    if loss is None or isinstance(loss, (list, tuple, dict)):
        return {}
    if not isinstance(loss, str):
        try:
            loss = losses.get(loss)
        except (TypeError, ValueError):
            pass
    name = loss if isinstance(loss, str) else getattr(loss, "__name__", type(loss).__name__)
    return {"name": name, "from_logits": bool(getattr(loss, "from_logits", False))}


def _describe_optimizer(model: Any) -> dict[str, Any]:
    trainer = _trainer(model)
    optimizer = getattr(trainer, "optimizer", None)
    if optimizer is None:
        return {}
    try:
        rate = float(optimizer.learning_rate)
    except (TypeError, ValueError, AttributeError):
        rate = None
    return {"name": type(optimizer).__name__, "learning_rate": rate}


def with_doctor(model: Any, callbacks: Any, doctor: Any) -> Any:
    """`fit(doctor=...)`: True adds a `Doctor` (a `Doctor` instance is added as given) unless
    the callbacks hold one; the doctor in use becomes `model.doctor`."""
    if doctor is False or doctor is None:
        return callbacks
    if doctor is not True and not isinstance(doctor, Doctor):
        raise TypeError(f"`doctor` must be True, False or a lamina.callbacks.Doctor. Received: "
                        f"doctor={doctor!r}.")
    callbacks = list(callbacks or [])
    present = next((c for c in callbacks if isinstance(c, Doctor)), None)
    if present is None:
        present = Doctor() if doctor is True else doctor
        callbacks.append(present)
    model.doctor = present
    return callbacks
