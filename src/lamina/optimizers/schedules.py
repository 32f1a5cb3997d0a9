"""Learning-rate schedules: `lr = schedule(step)`, pure Python float math.

A schedule is evaluated by the optimizer once per training step, before the torch update, and
its value is written into the torch `param_groups`. Steps are Python ints and learning rates are
Python floats, so a schedule costs no device work and no host sync.

The Keras schedules (`ExponentialDecay`, `PiecewiseConstantDecay`, `PolynomialDecay`,
`InverseTimeDecay`, `CosineDecay`, `CosineDecayRestarts`) keep Keras's argument names, order,
defaults and formulas. `StepDecay` is the classic step decay and `OneCycle` is torch's
`OneCycleLR` (or fastai's one-cycle) as a schedule. The exponential decay `initial_lr * exp(-k * step)` is
`ExponentialDecay(initial_lr, decay_steps, decay_rate=exp(-k * decay_steps))`, and its cosine
annealing `lr_min + (lr_max - lr_min) * (1 + cos(pi * step / T)) / 2` is
`CosineDecay(lr_max, T, alpha=lr_min / lr_max)`.
"""

from __future__ import annotations

import bisect
import math
from typing import Any

from lamina._registry import canonical_name, lookup, register


def _check_learning_rate(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(
            f"`{name}` must be a non-negative float. Received: {name}={value!r}."
        )


def _check_positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"Argument `{name}` must be > 0. Received: {name}={value!r}.")


def _check_fraction(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(
            f"`{name}` must be a float in [0, 1]. Received: {name}={value!r}."
        )


class LearningRateSchedule:
    """Base class of learning-rate schedules: `schedule(step) -> float`.

    Subclasses implement `__call__(step)` with plain float math and `get_config()` returning
    their `__init__` arguments.

    >>> class Halving(LearningRateSchedule):
    ...     def __init__(self, initial_learning_rate):
    ...         self.initial_learning_rate = initial_learning_rate
    ...     def __call__(self, step):
    ...         return self.initial_learning_rate / 2 ** step
    ...     def get_config(self):
    ...         return {"initial_learning_rate": self.initial_learning_rate}
    >>> Halving(1.0)(3)
    0.125
    """

    _registry_kind = "schedule"

    def __call__(self, step: int) -> float:
        raise NotImplementedError(
            f"Learning rate schedule '{type(self).__name__}' must override "
            "`__call__(self, step)`."
        )

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError(
            f"Learning rate schedule '{type(self).__name__}' must override `get_config()` "
            "in order to be serializable."
        )

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LearningRateSchedule:
        return cls(**config)

    def __repr__(self) -> str:
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({arguments})"


@register("ExponentialDecay")
class ExponentialDecay(LearningRateSchedule):
    """`lr = initial_learning_rate * decay_rate ** (step / decay_steps)`.

    With `staircase=True`, `step / decay_steps` is an integer division. The form
    `initial_lr * exp(-k * step)` is this schedule with `decay_rate = exp(-k * decay_steps)`.

    >>> ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)(20)
    0.025
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        decay_rate: float,
        staircase: bool = False,
        name: str = "ExponentialDecay",
    ) -> None:
        _check_learning_rate("initial_learning_rate", initial_learning_rate)
        _check_positive("decay_steps", decay_steps)
        _check_positive("decay_rate", decay_rate)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name

    def __call__(self, step: int) -> float:
        progress = step / self.decay_steps
        if self.staircase:
            progress = math.floor(progress)
        return float(self.initial_learning_rate * self.decay_rate**progress)

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
            "name": self.name,
        }


@register("PiecewiseConstantDecay")
class PiecewiseConstantDecay(LearningRateSchedule):
    """`values[0]` while `step <= boundaries[0]`, `values[i]` while
    `boundaries[i-1] < step <= boundaries[i]`, and `values[-1]` after `boundaries[-1]`.

    >>> schedule = PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])
    >>> schedule(10), schedule(11), schedule(21)
    (1.0, 0.5, 0.1)
    """

    def __init__(
        self, boundaries: list[int], values: list[float], name: str = "PiecewiseConstant"
    ) -> None:
        if len(boundaries) != len(values) - 1:
            raise ValueError(
                "The length of boundaries should be 1 less than the length of values. "
                f"Received: boundaries={boundaries} of length {len(boundaries)}, and "
                f"values={values} of length {len(values)}."
            )
        if any(low >= high for low, high in zip(boundaries, boundaries[1:])):
            raise ValueError(
                f"`boundaries` must be strictly increasing. Received: boundaries={boundaries}."
            )
        for value in values:
            _check_learning_rate("values", value)
        self.boundaries = boundaries
        self.values = values
        self.name = name

    def __call__(self, step: int) -> float:
        # bisect_left counts the boundaries strictly below `step`: a step equal to a
        # boundary still belongs to the interval that ends there, as in Keras.
        return float(self.values[bisect.bisect_left(self.boundaries, step)])

    def get_config(self) -> dict[str, Any]:
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


@register("PolynomialDecay")
class PolynomialDecay(LearningRateSchedule):
    """`lr = (initial - end) * (1 - min(step, decay_steps) / decay_steps) ** power + end`.

    With `cycle=True`, `decay_steps` is replaced by its first multiple that is >= `step` (1 x
    at step 0), so the decay restarts instead of holding `end_learning_rate`.

    >>> PolynomialDecay(1.0, decay_steps=10, end_learning_rate=0.0)(5)
    0.5
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        end_learning_rate: float = 0.0001,
        power: float = 1.0,
        cycle: bool = False,
        name: str = "PolynomialDecay",
    ) -> None:
        _check_learning_rate("initial_learning_rate", initial_learning_rate)
        _check_positive("decay_steps", decay_steps)
        _check_learning_rate("end_learning_rate", end_learning_rate)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.end_learning_rate = end_learning_rate
        self.power = power
        self.cycle = cycle
        self.name = name

    def __call__(self, step: int) -> float:
        decay_steps = self.decay_steps
        if self.cycle:
            decay_steps = decay_steps * (1 if step == 0 else math.ceil(step / decay_steps))
        else:
            step = min(step, decay_steps)
        remaining = (1 - step / decay_steps) ** self.power
        span = self.initial_learning_rate - self.end_learning_rate
        return float(span * remaining + self.end_learning_rate)

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "end_learning_rate": self.end_learning_rate,
            "power": self.power,
            "cycle": self.cycle,
            "name": self.name,
        }


@register("InverseTimeDecay")
class InverseTimeDecay(LearningRateSchedule):
    """`lr = initial_learning_rate / (1 + decay_rate * step / decay_steps)`.

    With `staircase=True`, `step / decay_steps` is an integer division.

    >>> InverseTimeDecay(1.0, decay_steps=1, decay_rate=0.5)(2)
    0.5
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        decay_rate: float,
        staircase: bool = False,
        name: str = "InverseTimeDecay",
    ) -> None:
        _check_learning_rate("initial_learning_rate", initial_learning_rate)
        _check_positive("decay_steps", decay_steps)
        _check_learning_rate("decay_rate", decay_rate)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name

    def __call__(self, step: int) -> float:
        progress = step / self.decay_steps
        if self.staircase:
            progress = math.floor(progress)
        return float(self.initial_learning_rate / (1 + self.decay_rate * progress))

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
            "name": self.name,
        }


def _cosine_decay(step: float, decay_steps: float, alpha: float) -> float:
    """The cosine factor `(1 - alpha) * (1 + cos(pi * step / decay_steps)) / 2 + alpha`."""
    return (1 - alpha) * 0.5 * (1 + math.cos(math.pi * step / decay_steps)) + alpha


@register("CosineDecay")
class CosineDecay(LearningRateSchedule):
    """Cosine decay with optional linear warmup (SGDR without restarts).

    Without warmup: `lr = initial * ((1 - alpha) * (1 + cos(pi * t / decay_steps)) / 2 + alpha)`
    with `t = min(step, decay_steps)`. With `warmup_target`, the lr first rises linearly from
    `initial_learning_rate` to `warmup_target` over `warmup_steps`, then decays from
    `warmup_target` to `warmup_target * alpha` over `decay_steps`.

    Cosine annealing `lr_min + (lr_max - lr_min) * (1 + cos(pi * t / T)) / 2` is
    `CosineDecay(lr_max, T, alpha=lr_min / lr_max)`.

    >>> CosineDecay(1.0, decay_steps=10)(5)
    0.5
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        alpha: float = 0.0,
        name: str = "CosineDecay",
        warmup_target: float | None = None,
        warmup_steps: int = 0,
    ) -> None:
        _check_learning_rate("initial_learning_rate", initial_learning_rate)
        _check_positive("decay_steps", decay_steps)
        _check_fraction("alpha", alpha)
        if warmup_target is not None:
            _check_learning_rate("warmup_target", warmup_target)
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ValueError(
                f"`warmup_steps` must be a non-negative integer. Received: "
                f"warmup_steps={warmup_steps!r}."
            )
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.alpha = alpha
        self.name = name
        self.warmup_target = warmup_target
        self.warmup_steps = warmup_steps

    def __call__(self, step: int) -> float:
        if self.warmup_target is None:
            step = min(step, self.decay_steps)
            return float(
                self.initial_learning_rate * _cosine_decay(step, self.decay_steps, self.alpha)
            )
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            rise = self.warmup_target - self.initial_learning_rate
            return float(rise * step / self.warmup_steps + self.initial_learning_rate)
        decayed = _cosine_decay(step - self.warmup_steps, self.decay_steps, self.alpha)
        return float(self.warmup_target * decayed)

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "alpha": self.alpha,
            "name": self.name,
            "warmup_target": self.warmup_target,
            "warmup_steps": self.warmup_steps,
        }


@register("CosineDecayRestarts")
class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay with warm restarts (SGDR, Loshchilov & Hutter 2016).

    Period `i` (from 0) lasts `first_decay_steps * t_mul**i` steps and starts at
    `initial_learning_rate * m_mul**i`; within a period at fraction `f` of its length,
    `lr = initial * ((1 - alpha) * m_mul**i * (1 + cos(pi * f)) / 2 + alpha)`.

    >>> schedule = CosineDecayRestarts(1.0, first_decay_steps=10, t_mul=1.0)
    >>> schedule(5), schedule(10)
    (0.5, 1.0)
    """

    def __init__(
        self,
        initial_learning_rate: float,
        first_decay_steps: int,
        t_mul: float = 2.0,
        m_mul: float = 1.0,
        alpha: float = 0.0,
        name: str = "SGDRDecay",
    ) -> None:
        _check_learning_rate("initial_learning_rate", initial_learning_rate)
        _check_positive("first_decay_steps", first_decay_steps)
        if isinstance(t_mul, bool) or not isinstance(t_mul, (int, float)) or not t_mul >= 1:
            raise ValueError(
                "`t_mul` must be a float >= 1 (each period at least as long as the one before). "
                f"Received: t_mul={t_mul!r}."
            )
        _check_learning_rate("m_mul", m_mul)
        _check_fraction("alpha", alpha)
        self.initial_learning_rate = initial_learning_rate
        self.first_decay_steps = first_decay_steps
        self.t_mul = t_mul
        self.m_mul = m_mul
        self.alpha = alpha
        self.name = name

    def _restart_index(self, fraction: float) -> tuple[int, float]:
        """The period index and the fraction of that period completed at `fraction` periods
        of `first_decay_steps`."""
        t_mul = self.t_mul
        if t_mul == 1.0:
            restart = math.floor(fraction)
            return restart, fraction - restart

        def periods_before(index: int) -> float:  # geometric sum 1 + t_mul + ... + t_mul**(index-1)
            return (1.0 - t_mul**index) / (1.0 - t_mul)

        restart = math.floor(math.log(1.0 - fraction * (1.0 - t_mul)) / math.log(t_mul))
        # The logarithm can land a hair below an integer exactly at a restart; step to the
        # period whose start is at or before `fraction`.
        while periods_before(restart + 1) <= fraction:
            restart += 1
        while restart > 0 and periods_before(restart) > fraction:
            restart -= 1
        return restart, (fraction - periods_before(restart)) / t_mul**restart

    def __call__(self, step: int) -> float:
        restart, completed = self._restart_index(step / self.first_decay_steps)
        cosine = 0.5 * self.m_mul**restart * (1.0 + math.cos(math.pi * completed))
        return float(self.initial_learning_rate * ((1 - self.alpha) * cosine + self.alpha))

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "first_decay_steps": self.first_decay_steps,
            "t_mul": self.t_mul,
            "m_mul": self.m_mul,
            "alpha": self.alpha,
            "name": self.name,
        }


@register("StepDecay")
class StepDecay(LearningRateSchedule):
    """Step decay: `lr = initial_learning_rate * gamma ** floor(step / step_size)`.

    The same as torch's `StepLR` and `ExponentialDecay(..., staircase=True)`.

    >>> StepDecay(1.0, step_size=10, gamma=0.5)(25)
    0.25
    """

    def __init__(
        self,
        initial_learning_rate: float,
        step_size: int,
        gamma: float = 0.1,
        name: str = "StepDecay",
    ) -> None:
        _check_learning_rate("initial_learning_rate", initial_learning_rate)
        if isinstance(step_size, bool) or not isinstance(step_size, int) or step_size < 1:
            raise ValueError(
                f"`step_size` must be a positive integer. Received: step_size={step_size!r}."
            )
        _check_learning_rate("gamma", gamma)
        self.initial_learning_rate = initial_learning_rate
        self.step_size = step_size
        self.gamma = gamma
        self.name = name

    def __call__(self, step: int) -> float:
        return float(self.initial_learning_rate * self.gamma ** (step // self.step_size))

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "step_size": self.step_size,
            "gamma": self.gamma,
            "name": self.name,
        }


@register("OneCycle")
class OneCycle(LearningRateSchedule):
    """The 1cycle policy (Smith & Topin 2017), step for step torch's `OneCycleLR` or fastai's.

    The lr rises from `max_learning_rate / div_factor` to `max_learning_rate` over the first
    `pct_start` of `total_steps`, then anneals to `initial / final_div_factor` by step
    `total_steps - 1` (`three_phase=True` first comes back down to the initial lr, then anneals).
    Annealing is cosine, `end + (start - end) * (1 + cos(pi * pct)) / 2`, or linear. Past the
    last step the lr stays at its final value (torch raises instead).

    `convention="fastai"` places the phases as fastai's `fit_one_cycle` does: at step `t` the
    position is `t / total_steps`, the peak is at `pct_start * total_steps`, the final value is
    `max_learning_rate / final_div_factor` and the last step stops one step short of it
    (fastai's defaults are `pct_start=0.25`,
    `final_div_factor=1e5`; `Model.fit_one_cycle` uses them). `cycle(step, start, middle, end)`
    gives any value on the same shape: the momentum cycle `0.95 -> 0.85 -> 0.95` is
    `cycle(step, 0.95, 0.85, 0.95)` (`lamina.training.one_cycle.OneCycleScheduler` applies both).

    >>> schedule = OneCycle(1.0, total_steps=10, pct_start=0.5, div_factor=4.0)
    >>> schedule(0), schedule(4)
    (0.25, 1.0)
    """

    def __init__(
        self,
        max_learning_rate: float,
        total_steps: int,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        name: str = "OneCycle",
        *,
        convention: str = "torch",
    ) -> None:
        _check_learning_rate("max_learning_rate", max_learning_rate)
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
            raise ValueError(
                f"`total_steps` must be a positive integer. Received: total_steps={total_steps!r}."
            )
        _check_fraction("pct_start", pct_start)
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(
                "`anneal_strategy` must be 'cos' or 'linear'. "
                f"Received: anneal_strategy={anneal_strategy!r}."
            )
        _check_positive("div_factor", div_factor)
        _check_positive("final_div_factor", final_div_factor)
        if convention not in ("torch", "fastai"):
            raise ValueError(
                "`convention` must be 'torch' or 'fastai'. "
                f"Received: convention={convention!r}."
            )
        if convention == "fastai" and three_phase:
            raise ValueError(
                "fastai's one-cycle has two phases: pass three_phase=False with "
                "convention='fastai', or convention='torch'."
            )
        self.convention = convention
        self.max_learning_rate = max_learning_rate
        self.total_steps = total_steps
        self.pct_start = pct_start
        self.anneal_strategy = anneal_strategy
        self.div_factor = div_factor
        self.final_div_factor = final_div_factor
        self.three_phase = three_phase
        self.name = name

    def _phases(self, start: float, middle: float, end: float) -> list[tuple[float, float, float]]:
        """(end_step, start_value, end_value) per phase."""
        if self.convention == "fastai":
            return [(float(self.pct_start * self.total_steps), start, middle),
                    (float(self.total_steps), middle, end)]
        rise_end = float(self.pct_start * self.total_steps) - 1
        last = float(self.total_steps - 1)
        if self.three_phase:
            fall_end = float(2 * self.pct_start * self.total_steps) - 2
            return [(rise_end, start, middle), (fall_end, middle, start), (last, start, end)]
        return [(rise_end, start, middle), (last, middle, end)]

    def cycle(self, step: int, start: float, middle: float, end: float) -> float:
        """The value at `step` of a cycle from `start` to `middle` (at `pct_start`) to `end`,
        with this schedule's phases and annealing."""
        step = min(step, self.total_steps - 1)
        phases = self._phases(start, middle, end)
        phase_start = 0.0
        for index, (phase_end, start_value, end_value) in enumerate(phases):
            if step <= phase_end or index == len(phases) - 1:
                length = phase_end - phase_start
                pct = (step - phase_start) / length if length else 1.0
                if self.anneal_strategy == "cos":
                    return float(end_value + (start_value - end_value) / 2
                                 * (math.cos(math.pi * pct) + 1))
                return float((end_value - start_value) * pct + start_value)
            phase_start = phase_end
        raise AssertionError("unreachable: the last phase always matches")

    def __call__(self, step: int) -> float:
        initial = self.max_learning_rate / self.div_factor
        # torch divides the initial lr by final_div_factor, fastai the peak (`lr_max/div_final`).
        final = (self.max_learning_rate if self.convention == "fastai" else initial) \
            / self.final_div_factor
        return self.cycle(step, initial, self.max_learning_rate, final)

    def get_config(self) -> dict[str, Any]:
        return {
            "max_learning_rate": self.max_learning_rate,
            "total_steps": self.total_steps,
            "pct_start": self.pct_start,
            "anneal_strategy": self.anneal_strategy,
            "div_factor": self.div_factor,
            "final_div_factor": self.final_div_factor,
            "three_phase": self.three_phase,
            "name": self.name,
            "convention": self.convention,
        }


def serialize(learning_rate_schedule: LearningRateSchedule) -> dict[str, Any]:
    """A JSON-compatible dict `{"module", "class_name", "config"}` describing a schedule."""
    if not isinstance(learning_rate_schedule, LearningRateSchedule):
        raise TypeError(
            "`serialize` expects a LearningRateSchedule. "
            f"Received: {learning_rate_schedule!r} of type {type(learning_rate_schedule).__name__}."
        )
    cls = type(learning_rate_schedule)
    # Keras's module name, so Keras 3 loads the optimizer of a Lamina model file.
    return {
        "module": "keras.optimizers.schedules",
        "class_name": canonical_name(cls) or cls.__name__,
        "config": learning_rate_schedule.get_config(),
        "registered_name": None,
    }


def deserialize(
    config: dict[str, Any], custom_objects: dict[str, Any] | None = None
) -> LearningRateSchedule:
    """The schedule described by a `serialize()` dict (`{"class_name", "config"}`)."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(
            "A serialized schedule must be a dict with a 'class_name' and a 'config'. "
            f"Received: {config!r}."
        )
    cls = lookup("schedule", config["class_name"], custom_objects)
    return cls.from_config(dict(config.get("config", {})))
