"""KerasTuner's `HyperParameters`: a search space and one trial's values, sampled by Optuna.

Each `hp.Int`/`hp.Float`/`hp.Choice`/`hp.Boolean`/`hp.Fixed` call registers a hyperparameter
(name, range, conditions) and returns its value for the current trial. While a tuner runs a
trial, the container holds that trial's `optuna.Trial` and a new value is Optuna's
`trial.suggest_*` (define-by-run); outside a trial, the value is the default, as in KerasTuner.
Space and values are plain JSON (`get_config`/`from_config`).
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Iterator

_SAMPLINGS = ("linear", "log", "reverse_log")


class Condition:
    """Active when the parent hyperparameter's value is one of `values` (KerasTuner's `Parent`)."""

    def __init__(self, name: str, values: Any) -> None:
        values = list(values) if isinstance(values, (list, tuple)) else [values]
        self.name = name
        self.values = values

    def is_active(self, values: dict[str, Any]) -> bool:
        return self.name in values and values[self.name] in self.values

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "values": list(self.values)}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Condition) and self.get_config() == other.get_config()

    def __repr__(self) -> str:
        return f"Parent(name={self.name!r}, values={self.values!r})"


class HyperParameter:
    """Base of the five kinds; `sample(trial)` asks Optuna for a value."""

    def __init__(self, name: str, default: Any = None, conditions: Any = None) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(
                f"A hyperparameter name must be a non-empty string. Received: name={name!r}."
            )
        self.name = name
        self._default = default
        self.conditions = [c if isinstance(c, Condition) else Condition(**c)
                           for c in (conditions or [])]

    @property
    def default(self) -> Any:
        return self._default

    def sample(self, trial: Any) -> Any:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "default": self._default,
                "conditions": [c.get_config() for c in self.conditions]}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "HyperParameter":
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.get_config()})"


def _check_sampling(sampling: str, min_value: float) -> str:
    sampling = sampling.lower() if isinstance(sampling, str) else sampling
    if sampling not in _SAMPLINGS:
        raise ValueError(
            f"`sampling` must be one of {list(_SAMPLINGS)}. Received: sampling={sampling!r}."
        )
    if sampling != "linear" and not min_value > 0:
        raise ValueError(
            f"`sampling='{sampling}'` needs `min_value` > 0 (a log scale cannot reach 0 or "
            f"below). Received: min_value={min_value!r}; use sampling='linear' or a positive "
            "min_value."
        )
    return sampling


class _Numerical(HyperParameter):
    """Int and Float: a range, an optional step and a sampling; `values()` when stepped."""

    _kind = float

    def __init__(self, name: str, min_value: Any, max_value: Any, step: Any = None,
                 sampling: str = "linear", default: Any = None, conditions: Any = None) -> None:
        super().__init__(name, default, conditions)
        kind = self._kind.__name__
        for label, value in (("min_value", min_value), ("max_value", max_value)):
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or not math.isfinite(value) or (self._kind is int and int(value) != value):
                raise ValueError(
                    f"{type(self).__name__} hyperparameter {name!r}: `{label}` must be a finite "
                    f"{kind}. Received: {label}={value!r}."
                )
        if not min_value <= max_value:
            raise ValueError(
                f"{type(self).__name__} hyperparameter {name!r}: `min_value` must be <= "
                f"`max_value`. Received: min_value={min_value!r}, max_value={max_value!r}."
            )
        self.sampling = _check_sampling(sampling, min_value)
        if step is not None and (isinstance(step, bool) or not isinstance(step, (int, float))
                                 or not step > 0 or (self.sampling != "linear" and not step > 1)):
            least = "> 1 (a multiplier)" if self.sampling != "linear" else "> 0"
            raise ValueError(
                f"{type(self).__name__} hyperparameter {name!r}: `step` must be {least} with "
                f"sampling={self.sampling!r}. Received: step={step!r}."
            )
        self.min_value = self._kind(min_value)
        self.max_value = self._kind(max_value)
        self.step = step
        if default is not None and not self.min_value <= default <= self.max_value:
            raise ValueError(
                f"{type(self).__name__} hyperparameter {name!r}: `default` must lie in "
                f"[{self.min_value}, {self.max_value}]. Received: default={default!r}."
            )

    @property
    def default(self) -> Any:
        return self.min_value if self._default is None else self._default

    def values(self) -> list[Any] | None:
        """Every value a stepped range can take (KerasTuner's `max_value` is inclusive), or
        None for a continuous range."""
        if self.step is None:
            return None
        found, value = [], self.min_value
        # A relative tolerance keeps float steps (0.1 * 3) from dropping the last value.
        limit = self.max_value * (1 + 1e-9) + 1e-12
        index = 0
        while value <= limit:
            found.append(self._kind(round(value, 12)) if self._kind is float else int(value))
            index += 1
            value = (self.min_value * self.step ** index if self.sampling != "linear"
                     else self.min_value + self.step * index)
        return found

    def sample(self, trial: Any) -> Any:
        values = self.values()
        if self.min_value == self.max_value:
            return self.min_value
        if values is not None and self.sampling != "linear":
            # Optuna has no multiplicative step: the stepped log grid is a list of choices.
            return trial.suggest_categorical(self.name, values)
        suggest = trial.suggest_int if self._kind is int else trial.suggest_float
        if values is not None:
            return suggest(self.name, self.min_value, values[-1], step=self.step)
        if self.sampling == "log":
            return suggest(self.name, self.min_value, self.max_value, log=True)
        if self.sampling == "reverse_log":
            # KerasTuner's reverse_log is `max + min - L` for a log-uniform L: dense near max.
            mirrored = trial.suggest_float(f"{self.name}:reverse_log", float(self.min_value),
                                           float(self.max_value), log=True)
            value = self.max_value + self.min_value - mirrored
            return int(round(value)) if self._kind is int else value
        return suggest(self.name, self.min_value, self.max_value)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "min_value": self.min_value, "max_value": self.max_value,
                "step": self.step, "sampling": self.sampling}


class Int(_Numerical):
    """An integer in `[min_value, max_value]` (both included)."""

    _kind = int


class Float(_Numerical):
    """A float in `[min_value, max_value]`."""

    _kind = float


class Choice(HyperParameter):
    """One of `values` (ints, floats, strings or bools, all of one type)."""

    def __init__(self, name: str, values: Any, ordered: bool | None = None, default: Any = None,
                 conditions: Any = None) -> None:
        super().__init__(name, default, conditions)
        if not isinstance(values, (list, tuple)) or not values:
            raise ValueError(
                f"Choice hyperparameter {name!r}: `values` must be a non-empty list. "
                f"Received: values={values!r}."
            )
        kinds = {bool if isinstance(v, bool) else float if isinstance(v, (int, float)) else type(v)
                 for v in values}
        if len(kinds) > 1 or not kinds <= {bool, float, str}:
            raise TypeError(
                f"Choice hyperparameter {name!r}: `values` must all be ints/floats, all strings "
                f"or all bools. Received: values={list(values)!r}."
            )
        if default is not None and default not in values:
            raise ValueError(
                f"Choice hyperparameter {name!r}: `default` must be one of {list(values)}. "
                f"Received: default={default!r}."
            )
        self.values = list(values)
        self.ordered = ordered

    @property
    def default(self) -> Any:
        return self.values[0] if self._default is None else self._default

    def sample(self, trial: Any) -> Any:
        return trial.suggest_categorical(self.name, self.values)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "values": list(self.values), "ordered": self.ordered}


class Boolean(HyperParameter):
    """True or False."""

    def __init__(self, name: str, default: bool = False, conditions: Any = None) -> None:
        if not isinstance(default, bool):
            raise ValueError(
                f"Boolean hyperparameter {name!r}: `default` must be True or False. "
                f"Received: default={default!r}."
            )
        super().__init__(name, default, conditions)

    def sample(self, trial: Any) -> Any:
        return trial.suggest_categorical(self.name, [False, True])


class Fixed(HyperParameter):
    """A value that is not tuned (any JSON value)."""

    def __init__(self, name: str, value: Any, conditions: Any = None) -> None:
        super().__init__(name, value, conditions)
        self.value = value

    def sample(self, trial: Any) -> Any:
        return self.value

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["value"] = config.pop("default")
        return config


_TYPES = {cls.__name__: cls for cls in (Int, Float, Choice, Boolean, Fixed)}


class HyperParameters:
    """A search space and the current trial's values, as KerasTuner's `HyperParameters`.

    >>> hp = HyperParameters()
    >>> hp.Int("units", 32, 128, step=32), hp.Float("lr", 1e-4, 1e-2, sampling="log")
    (32, 0.0001)
    >>> hp.values
    {'units': 32, 'lr': 0.0001}
    """

    def __init__(self) -> None:
        self._name_scopes: list[str] = []
        self._conditions: list[Condition] = []
        self._hps: dict[str, list[HyperParameter]] = {}
        self._space: list[HyperParameter] = []
        self.values: dict[str, Any] = {}
        # Set by the tuner while it runs a trial: (optuna.Trial, names to tune or None for all,
        # whether unknown names may be added).
        self._trial: Any = None
        self._tunable: set[str] | None = None
        self._allow_new = True

    # ------------------------------------------------------------------ scopes and lookup

    @contextlib.contextmanager
    def name_scope(self, name: str) -> Iterator[None]:
        self._name_scopes.append(name)
        try:
            yield
        finally:
            self._name_scopes.pop()

    @contextlib.contextmanager
    def conditional_scope(self, parent_name: str, parent_values: Any) -> Iterator[None]:
        """Hyperparameters made inside are active only while `parent_name`'s value is one of
        `parent_values`; an inactive one returns None (the code inside still runs)."""
        parent_name = self._get_name(parent_name)
        if parent_name not in self._hps:
            raise ValueError(
                f"conditional_scope: the parent hyperparameter {parent_name!r} is not defined. "
                f"Define it first (e.g. hp.Choice({parent_name!r}, [...])). Defined: "
                f"{sorted(self._hps)}."
            )
        self._conditions.append(Condition(parent_name, parent_values))
        try:
            yield
        finally:
            self._conditions.pop()

    def _get_name(self, name: str) -> str:
        return "/".join([*self._name_scopes, str(name)])

    def _conditions_are_active(self, conditions: list[Condition]) -> bool:
        return all(c.is_active(self.values) for c in conditions)

    def is_active(self, hyperparameter: Any) -> bool:
        if isinstance(hyperparameter, HyperParameter):
            return self._conditions_are_active(hyperparameter.conditions)
        return any(self._conditions_are_active(hp.conditions)
                   for hp in self._hps.get(str(hyperparameter), []))

    def get(self, name: str) -> Any:
        name = self._get_name(name)
        if name in self.values:
            return self.values[name]
        if name in self._hps:
            raise ValueError(f"Hyperparameter {name!r} is currently inactive (its condition "
                             "does not hold in this trial).")
        raise KeyError(f"Hyperparameter {name!r} does not exist. Defined: {sorted(self._hps)}.")

    def __getitem__(self, name: str) -> Any:
        return self.get(name)

    def __contains__(self, name: str) -> bool:
        try:
            self.get(name)
            return True
        except (KeyError, ValueError):
            return False

    @property
    def space(self) -> list[HyperParameter]:
        return self._space

    # ------------------------------------------------------------------ registration

    def _retrieve(self, hp: HyperParameter) -> Any:
        if any(c.name == hp.name for c in hp.conditions):
            raise ValueError(
                f"A conditional hyperparameter cannot have the same name as its parent: "
                f"{hp.name!r}. Rename one of them."
            )
        known = next((h for h in self._hps.get(hp.name, []) if h.conditions == hp.conditions), None)
        if known is None:
            if not self._allow_new:
                raise RuntimeError(
                    f"Hyperparameter {hp.name!r} is not in the tuner's `hyperparameters` and the "
                    "tuner was made with allow_new_entries=False. Add it to the space passed as "
                    "`hyperparameters=`, or pass allow_new_entries=True."
                )
            self._hps.setdefault(hp.name, []).append(hp)
            self._space.append(hp)
            known = hp
        if not self._conditions_are_active(known.conditions):
            return None
        if known.name not in self.values:
            self.values[known.name] = self._value_for(known)
        return self.values[known.name]

    def _value_for(self, hp: HyperParameter) -> Any:
        if self._trial is None or isinstance(hp, Fixed):
            return hp.default
        if self._tunable is not None and hp.name not in self._tunable:
            return hp.default
        return hp.sample(self._trial)

    def _start_trial(self, trial: Any, tunable: set[str] | None, allow_new: bool) -> None:
        """Attach an Optuna trial and sample the known active space in order (a parent comes
        before its children in `space`, so conditions see their parent's new value)."""
        self._trial, self._tunable, self._allow_new = trial, tunable, allow_new
        self.values = {}
        for hp in self._space:
            if hp.name not in self.values and self._conditions_are_active(hp.conditions):
                self.values[hp.name] = self._value_for(hp)

    def _end_trial(self) -> None:
        self._trial = None

    def Choice(self, name: str, values: Any, ordered: bool | None = None, default: Any = None,
               parent_name: str | None = None, parent_values: Any = None) -> Any:
        with self._maybe_conditional_scope(parent_name, parent_values):
            return self._retrieve(Choice(self._get_name(name), values, ordered=ordered,
                                         default=default, conditions=list(self._conditions)))

    def Int(self, name: str, min_value: int, max_value: int, step: int | None = None,
            sampling: str = "linear", default: int | None = None, parent_name: str | None = None,
            parent_values: Any = None) -> Any:
        with self._maybe_conditional_scope(parent_name, parent_values):
            return self._retrieve(Int(self._get_name(name), min_value, max_value, step=step,
                                      sampling=sampling, default=default,
                                      conditions=list(self._conditions)))

    def Float(self, name: str, min_value: float, max_value: float, step: float | None = None,
              sampling: str = "linear", default: float | None = None,
              parent_name: str | None = None, parent_values: Any = None) -> Any:
        with self._maybe_conditional_scope(parent_name, parent_values):
            return self._retrieve(Float(self._get_name(name), min_value, max_value, step=step,
                                        sampling=sampling, default=default,
                                        conditions=list(self._conditions)))

    def Boolean(self, name: str, default: bool = False, parent_name: str | None = None,
                parent_values: Any = None) -> Any:
        with self._maybe_conditional_scope(parent_name, parent_values):
            return self._retrieve(Boolean(self._get_name(name), default=default,
                                          conditions=list(self._conditions)))

    def Fixed(self, name: str, value: Any, parent_name: str | None = None,
              parent_values: Any = None) -> Any:
        with self._maybe_conditional_scope(parent_name, parent_values):
            return self._retrieve(Fixed(self._get_name(name), value,
                                        conditions=list(self._conditions)))

    @contextlib.contextmanager
    def _maybe_conditional_scope(self, parent_name: str | None,
                                 parent_values: Any) -> Iterator[None]:
        if parent_name:
            with self.conditional_scope(parent_name, parent_values):
                yield
        else:
            yield

    # ------------------------------------------------------------------ config

    def get_config(self) -> dict[str, Any]:
        return {"space": [{"class_name": type(hp).__name__, "config": hp.get_config()}
                          for hp in self._space],
                "values": dict(self.values)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "HyperParameters":
        hps = cls()
        for item in config["space"]:
            if item.get("class_name") not in _TYPES:
                raise ValueError(
                    f"Unknown hyperparameter type {item.get('class_name')!r}; expected one of "
                    f"{sorted(_TYPES)}."
                )
            hp = _TYPES[item["class_name"]].from_config(item["config"])
            hps._hps.setdefault(hp.name, []).append(hp)
            hps._space.append(hp)
        hps.values = dict(config["values"])
        return hps

    def copy(self) -> "HyperParameters":
        return HyperParameters.from_config(self.get_config())

    def merge(self, hps: Any, overwrite: bool = True) -> None:
        """Add the hyperparameters of `hps` (a `HyperParameters` or a list) to this space."""
        for hp in (hps.space if isinstance(hps, HyperParameters) else hps):
            exists = any(h.conditions == hp.conditions for h in self._hps.get(hp.name, []))
            if exists and not overwrite:
                continue
            if not exists:
                self._hps.setdefault(hp.name, []).append(hp)
                self._space.append(hp)
            active = self._conditions_are_active(hp.conditions)
            if active and (overwrite or hp.name not in self.values):
                self.values[hp.name] = hp.default


def sheet_space() -> HyperParameters:
    """Common hyperparameter ranges as a ready search space (their origin: docs/provenance.md).

    `learning_rate` log-uniform in [1e-5, 1e-3], `batch_size` in {16, 32, 64, 128}, `dropout`
    uniform in [0.1, 0.5], `weight_decay` log-uniform in [1e-5, 1e-2]. Pass it as a tuner's
    `hyperparameters=` and read the values with `hp["learning_rate"]` in `build`.

    >>> sorted(sheet_space().values)
    ['batch_size', 'dropout', 'learning_rate', 'weight_decay']
    """
    hp = HyperParameters()
    hp.Float("learning_rate", 1e-5, 1e-3, sampling="log")
    hp.Int("batch_size", 16, 128, step=2, sampling="log")
    hp.Float("dropout", 0.1, 0.5)
    hp.Float("weight_decay", 1e-5, 1e-2, sampling="log")
    return hp
