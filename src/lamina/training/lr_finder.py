"""The learning-rate range test (Smith 2015; fastai's `lr_find`): `Model.find_learning_rate`.

One step per learning rate on an exponential sweep from `start` to `end`; the loss is smoothed
with a debiased moving average, `avg = beta * avg + (1 - beta) * loss`,
`smooth = avg / (1 - beta**(i + 1))`, and the sweep stops once `smooth > diverge * best` (or
the loss is not finite). The suggestions, as fastai makes them from the curve without its
first tenth and last five points: `steep`, the rate of steepest descent of the loss against
log(lr), and `minimum`, the rate of least loss divided by 10.

The sweep trains a copy of the compiled optimizer; the model's weights and buffers
(BatchNormalization statistics), the optimizer and every random generator are put back after.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lamina.callbacks import _rng_state
from lamina.training import data_adapters
from lamina.training.logs import logs_to_floats, trainer_of


@dataclass
class LRFinderResult:
    """What the sweep saw: `learning_rates`, `losses` (smoothed), `raw_losses`, and the
    suggestions `steep` and `minimum` (None when the sweep was too short to tell)."""

    learning_rates: list[float]
    losses: list[float]
    raw_losses: list[float]
    steep: float | None
    minimum: float | None
    diverged: bool
    _figure: Any = field(default=None, repr=False)

    @property
    def suggestion(self) -> float | None:
        """The rate to train at: `minimum` (least loss / 10), the more conservative one."""
        return self.minimum

    def plot(self, path: Any = None, skip_start: int = 5, skip_end: int = 5) -> Any:
        """The loss against the learning rate (log axis) with the suggestions marked, as a
        matplotlib `Figure` (Agg: no display needed); saved to `path` when given."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        rates = self.learning_rates[skip_start:len(self.learning_rates) - skip_end] \
            or self.learning_rates
        losses = self.losses[skip_start:len(self.losses) - skip_end] or self.losses
        figure = Figure(figsize=(6, 4))
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        axes.plot(rates, losses)
        axes.set_xscale("log")
        axes.set_xlabel("Learning rate")
        axes.set_ylabel("Loss (smoothed)")
        for label, value, color in (("steep", self.steep, "tab:red"),
                                    ("minimum / 10", self.minimum, "tab:green")):
            if value is not None:
                axes.axvline(value, color=color, linestyle="--", label=f"{label}: {value:.2e}")
        axes.legend()
        figure.tight_layout()
        if path is not None:
            figure.savefig(path)
        return figure


def _check(name: str, value: Any, positive: bool = True) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or (positive and not value > 0):
        raise ValueError(f"`{name}` must be a positive finite number. Received: {name}={value!r}.")


def suggest(learning_rates: list[float], losses: list[float]) -> tuple[float | None, float | None]:
    """fastai's `steep` and `minimum` from a smoothed curve: drop the first tenth and the
    last five points (start-up noise and the divergence), then take the steepest negative
    slope against log(lr) and the least loss / 10."""
    count = len(losses)
    start, stop = count // 10, count - 5
    if stop - start < 2:
        start, stop = 0, count
    rates = np.asarray(learning_rates[start:stop], dtype=np.float64)
    values = np.asarray(losses[start:stop], dtype=np.float64)
    if len(values) < 2:
        return None, None
    minimum = float(rates[np.argmin(values)] / 10)
    slopes = np.diff(values) / np.diff(np.log(rates))
    steep = float(rates[np.argmin(slopes)])
    return steep, minimum


def find_learning_rate(model: Any, x: Any = None, y: Any = None, start: float = 1e-7,
                       end: float = 10.0, steps: int = 100, *, batch_size: int | None = None,
                       smoothing: float = 0.98, diverge: float = 4.0) -> LRFinderResult:
    """Run the range test on a compiled model and restore it; see the module docstring."""
    _check("start", start)
    _check("end", end)
    _check("diverge", diverge)
    if not end > start:
        raise ValueError(f"`end` must be greater than `start`. Received: start={start!r}, "
                         f"end={end!r}.")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ValueError(f"`steps` must be an integer >= 2. Received: steps={steps!r}.")
    if isinstance(smoothing, bool) or not isinstance(smoothing, (int, float)) \
            or not 0 <= smoothing < 1:
        raise ValueError(f"`smoothing` must be in [0, 1). Received: smoothing={smoothing!r}.")
    trainer = trainer_of(model)
    device = trainer._place()
    adapter = data_adapters.make_adapter(x, y, None, batch_size=batch_size, shuffle=True,
                                         device=device, steps=None, for_what="fit")
    trainer._check_data(adapter)

    saved_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    saved_rng = _rng_state.capture(model, [])
    original = trainer.optimizer
    config = dict(original.get_config())
    # A TorchOptimizer made around a torch optimizer instance hands that same instance to its
    # copy: the sweep then steps it, so its state (and param-group lrs) is saved as well.
    shared = [o for o in (config.get("optimizer"), original.torch_optimizer if original.built else None)
              if isinstance(o, torch.optim.Optimizer)]
    saved_torch = [(o, copy.deepcopy(o.state_dict())) for o in dict.fromkeys(shared)]
    config["learning_rate"] = float(start)
    sweep_optimizer = type(original).from_config(config)
    was_training = model.training
    trainer.optimizer = sweep_optimizer
    rates, raw, smoothed = [], [], []
    diverged = False
    try:
        average, best, index = 0.0, math.inf, 0
        prepared = False
        while index < steps:
            for batch in adapter.batches():
                if not prepared:
                    trainer._prepare_for(batch)
                    prepared = True
                rate = start * (end / start) ** (index / steps)
                sweep_optimizer.learning_rate = rate
                trainer.reset_metrics()
                model.train()
                loss = logs_to_floats(model.train_step(batch))["loss"]
                average = smoothing * average + (1 - smoothing) * loss
                smooth = average / (1 - smoothing ** (index + 1))
                rates.append(rate)
                raw.append(loss)
                smoothed.append(smooth)
                index += 1
                if not math.isfinite(smooth) or smooth > diverge * best:
                    diverged = True
                    break
                best = min(best, smooth)
                if index >= steps:
                    break
            if diverged:
                break
    finally:
        trainer.optimizer = original
        for torch_optimizer, state in saved_torch:
            torch_optimizer.load_state_dict(state)
        trainer.reset_metrics()
        model.load_state_dict(saved_weights)
        _rng_state.restore(saved_rng, model, None)
        model.train(was_training)
    finite = [(r, s) for r, s in zip(rates, smoothed) if math.isfinite(s)]
    steep, minimum = suggest([r for r, _ in finite], [s for _, s in finite])
    return LRFinderResult(rates, smoothed, raw, steep, minimum, diverged)
