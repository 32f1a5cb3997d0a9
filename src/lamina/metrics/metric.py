"""The `Metric` base: streaming state that lives on the device, updated without host syncs.

A metric keeps a few state tensors (`add_variable`), folds each batch into them
(`update_state`), and turns them into a value on demand (`result`). The training engine calls
`update_state` every step, so it only launches tensor ops: no `.item()`, no Python branches on
tensor values. The value is read back only when something shows it.

State follows the data: the first `update_state` moves it to the device of its `y_pred`
(a CUDA model's metrics end up on CUDA without the engine moving them).
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

import torch

from lamina import config
from lamina._grad_mode import call_without_grad
from lamina._naming import to_snake_case
from lamina.errors import ShapeError
from lamina.losses.loss import squeeze_or_expand_to_same_rank

Initializer = str | float | int | Callable[..., Any]


class Metric:
    """Base class of every metric: device-side state, `update_state`, `result`, `reset_state`.

    Subclasses create their state in `__init__` (or lazily, on the first update, when its shape
    depends on the data) with `add_variable`, update it in place in `update_state`, and compute
    the value in `result`. Every `update_state` runs under `torch.no_grad()`, so predictions that
    require grad never attach the autograd graph to the state.

    Args:
        name: name of the metric instance (the key in `fit()` logs); defaults to the class name
            in snake case.
        dtype: dtype of the state and the result; defaults to `lamina.config.floatx()`.

    >>> class BinaryTruePositives(Metric):
    ...     def __init__(self, name="binary_true_positives", dtype=None):
    ...         super().__init__(name=name, dtype=dtype)
    ...         self.true_positives = self.add_variable("true_positives", shape=())
    ...     def update_state(self, y_true, y_pred, sample_weight=None):
    ...         hits = (torch.as_tensor(y_true) == 1) & (torch.as_tensor(y_pred) == 1)
    ...         self.true_positives += hits.sum()
    ...     def result(self):
    ...         return self.true_positives.clone()
    >>> m = BinaryTruePositives()
    >>> m.update_state([0, 1, 1, 1], [1, 0, 1, 1])
    >>> float(m.result())
    2.0
    """

    _registry_kind = "metric"
    # "up" when larger is better, "down" when smaller is; callbacks read it for mode="auto".
    _direction: str | None = None
    # Which argument of `update_state` decides the device of the state; set per subclass.
    _device_argument: tuple[int, str] | None = None

    def __init__(self, name: str | None = None, dtype: str | torch.dtype | None = None) -> None:
        if name is not None and not isinstance(name, str):
            raise TypeError(
                f"`name` must be a string or None. Received: name={name!r} "
                f"of type {type(name).__name__}."
            )
        self.name = name or to_snake_case(type(self).__name__)
        self._torch_dtype = config.torch_dtype(dtype)
        if not self._torch_dtype.is_floating_point:
            raise ValueError(
                "A metric's `dtype` must be a floating point type. "
                f"Received: dtype={dtype!r}. Use 'float32' (the default) or 'float64'."
            )
        self._variables: dict[str, torch.Tensor] = {}
        self._initializers: dict[str, Initializer] = {}
        self._device = torch.device("cpu")
        self._placed = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        update = cls.__dict__.get("update_state")
        if update is None or getattr(update, "_places_state", False):
            return
        parameters = [
            p.name
            for p in inspect.signature(update).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ][1:]
        if parameters:
            name = "y_pred" if "y_pred" in parameters else parameters[0]
            cls._device_argument = (parameters.index(name), name)

        @functools.wraps(update)
        def update_state(self: Metric, *args: Any, **kwargs: Any) -> Any:
            if not self._placed:
                self._place_on(args, kwargs)
            return call_without_grad(update, self, *args, **kwargs)

        update_state._places_state = True  # type: ignore[attr-defined]
        cls.update_state = update_state  # type: ignore[method-assign]

    def _place_on(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Move the state to the device of the first update's `y_pred` (once)."""
        if self._device_argument is None:
            return
        index, name = self._device_argument
        value = kwargs.get(name, args[index] if len(args) > index else None)
        if isinstance(value, torch.Tensor):
            self.to(value.device)

    # State ---------------------------------------------------------------------------------

    def add_variable(
        self,
        name: str | None = None,
        shape: tuple[int, ...] | list[int] | int = (),
        initializer: Initializer = "zeros",
        dtype: str | torch.dtype | None = None,
    ) -> torch.Tensor:
        """Create a state tensor on the metric's device, kept in `self._variables`.

        Update it in place (`+=`, `add_`, `copy_`, `zero_`), never by rebinding the attribute,
        so `variables`, `reset_state` and `to` keep seeing it.

        Args:
            name: unique name within the metric ('true_positives').
            shape: shape of the state tensor; `()` for a scalar.
            initializer: 'zeros', 'ones', a number, or a callable `(shape, dtype) -> tensor`.
            dtype: defaults to the metric's dtype.
        """
        if "_variables" not in vars(self):
            raise RuntimeError(
                f"{type(self).__name__}.__init__ must call super().__init__(name=name, "
                "dtype=dtype) before add_variable()."
            )
        if name is not None and not isinstance(name, str):
            raise TypeError(
                "`add_variable` takes the variable's name first: "
                "add_variable(name, shape=(), initializer='zeros', dtype=None). "
                f"Received: name={name!r}. Pass shape= and initializer= as keywords."
            )
        name = name or f"variable_{len(self._variables)}"
        if name in self._variables:
            raise ValueError(
                f"Metric {self.name!r} already has a variable named {name!r}. "
                f"Existing variables: {', '.join(self._variables)}. Choose another name."
            )
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        if any(not isinstance(size, int) or size < 0 for size in shape):
            raise ValueError(
                "`shape` must be a tuple of non-negative integers. "
                f"Received: shape={shape!r} for variable {name!r}."
            )
        torch_dtype = self._torch_dtype if dtype is None else config.torch_dtype(dtype)
        variable = torch.empty(shape, dtype=torch_dtype, device=self._device)
        self._fill(variable, initializer, name)
        self._variables[name] = variable
        self._initializers[name] = initializer
        return variable

    def add_weight(
        self,
        shape: tuple[int, ...] | list[int] | int = (),
        initializer: Initializer = "zeros",
        dtype: str | torch.dtype | None = None,
        name: str | None = None,
    ) -> torch.Tensor:
        """Keras's older spelling of `add_variable`, with Keras's argument order."""
        return self.add_variable(name, shape=shape, initializer=initializer, dtype=dtype)

    @staticmethod
    def _fill(variable: torch.Tensor, initializer: Initializer, name: str) -> None:
        if isinstance(initializer, str):
            values = {"zeros": 0.0, "ones": 1.0}
            if initializer.lower() not in values:
                raise ValueError(
                    f"Unknown initializer {initializer!r} for metric variable {name!r}. "
                    "Valid names are: 'zeros', 'ones'; or pass a number or a callable "
                    "(shape, dtype) -> tensor."
                )
            variable.fill_(values[initializer.lower()])
        elif isinstance(initializer, (int, float)) and not isinstance(initializer, bool):
            variable.fill_(initializer)
        elif callable(initializer):
            initial = initializer(tuple(variable.shape), dtype=variable.dtype)
            variable.copy_(torch.as_tensor(initial, dtype=variable.dtype))
        else:
            raise TypeError(
                f"`initializer` must be 'zeros', 'ones', a number or a callable. "
                f"Received: initializer={initializer!r} for metric variable {name!r}."
            )

    @property
    def variables(self) -> list[torch.Tensor]:
        """The state tensors, in creation order."""
        return list(self._variables.values())

    @property
    def dtype(self) -> str:
        """The dtype of the state and the result, as Keras's string ('float32')."""
        return config.dtype_name(self._torch_dtype)

    @property
    def device(self) -> torch.device:
        """The device the state lives on."""
        return self._device

    def reset_state(self) -> None:
        """Put every state tensor back to its initial value (called at each epoch's start)."""
        for name, variable in self._variables.items():
            self._fill(variable, self._initializers[name], name)

    def to(self, device: str | torch.device) -> Metric:
        """Move all state (and any other tensor the metric holds) to `device`; returns self."""
        device = torch.device(device)
        moved: dict[int, torch.Tensor] = {}

        def move(tensor: torch.Tensor) -> torch.Tensor:
            if id(tensor) not in moved:
                moved[id(tensor)] = tensor.to(device)
            return moved[id(tensor)]

        self._variables = {name: move(v) for name, v in self._variables.items()}
        # Subclasses hold their state (and constants such as thresholds) as attributes too;
        # rebinding them through one id table keeps each attribute aliased to its variable.
        for attribute, value in list(vars(self).items()):
            if isinstance(value, torch.Tensor):
                setattr(self, attribute, move(value))
            elif isinstance(value, Metric):
                value.to(device)
        self._device = device
        self._placed = True
        return self

    # Computation ---------------------------------------------------------------------------

    def update_state(self, *args: Any, **kwargs: Any) -> None:
        """Fold one batch into the state. Tensor ops only: this runs every training step."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement update_state(y_true, y_pred, sample_weight)."
        )

    def result(self) -> torch.Tensor:
        """The metric's value from the state: a 0-d tensor for scalar metrics."""
        raise NotImplementedError(f"{type(self).__name__} must implement result().")

    def __call__(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Update with one batch, then return the result (Keras's `metric(y_true, y_pred)`)."""
        self.update_state(*args, **kwargs)
        return self.result()

    # Serialization -------------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        """The `__init__` arguments; `from_config(get_config())` builds an equal metric."""
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Metric:
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}>"

    # Helpers for subclasses ----------------------------------------------------------------

    def _tensor(self, value: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
        """`value` (tensor, array, list, number) as a tensor on the state's device."""
        return torch.as_tensor(value, dtype=dtype, device=self._device)


def check_same_shape(metric: Metric, y_true: torch.Tensor, y_pred: torch.Tensor) -> None:
    """Reject `y_true`/`y_pred` whose shapes differ (after `squeeze_or_expand_to_same_rank`)."""
    if y_true.shape != y_pred.shape:
        raise ShapeError(
            f"{type(metric).__name__} ({metric.name!r}) needs `y_true` and `y_pred` of the same "
            f"shape. Received: y_true.shape={tuple(y_true.shape)}, "
            f"y_pred.shape={tuple(y_pred.shape)}. Check that the labels match the model's "
            "output (one-hot labels need a categorical metric, integer labels a sparse one)."
        )


def broadcast_weights(
    metric: Metric, sample_weight: torch.Tensor, shape: torch.Size
) -> torch.Tensor:
    """Per-sample (or per-element) weights broadcast to `shape`.

    Weights of lower rank get trailing axes, so `(batch,)` weights apply to every element
    of a `(batch, ...)` sample.
    """
    weights = sample_weight
    while weights.dim() > len(shape) and weights.shape[-1] == 1:
        weights = weights.squeeze(-1)
    weights = weights.reshape(tuple(weights.shape) + (1,) * (len(shape) - weights.dim()))
    try:
        return weights.expand(shape)
    except RuntimeError:
        raise ShapeError(
            f"{type(metric).__name__} ({metric.name!r}) cannot apply `sample_weight` of shape "
            f"{tuple(sample_weight.shape)} to values of shape {tuple(shape)}. Pass one weight "
            "per sample (shape `(batch,)`) or one per element (the values' shape)."
        ) from None


def divide_no_nan(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """`numerator / denominator`, and 0 where the denominator is 0 (e.g. nothing seen yet)."""
    return torch.where(denominator == 0, torch.zeros_like(numerator), numerator / denominator)
