"""Weight initializers under Keras names, over `torch.nn.init`.

Shapes are Keras layouts (a Dense kernel is `(input_dim, units)`, a Conv2D kernel
`(kh, kw, in_channels, filters)`), so fan-in and fan-out match Keras's; layers that store a
different layout convert after initialising.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from lamina import config
from lamina._registry import lookup, names, register
from lamina.saving import serialization

Tensor = torch.Tensor


def compute_fans(shape: Sequence[int]) -> tuple[int, int]:
    """Keras's fans: the last two axes are (in, out); leading axes are the receptive field."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


class Initializer:
    """Base class: `initializer(shape, dtype=None) -> Tensor`."""

    _registry_kind = "initializer"

    def __init__(self, seed: int | None = None):
        self.seed = seed

    def __call__(self, shape: Sequence[int], dtype: Any = None) -> Tensor:
        tensor = torch.empty(tuple(shape), dtype=config.torch_dtype(dtype))
        generator = None
        if self.seed is not None:
            generator = torch.Generator().manual_seed(self.seed)
        with torch.no_grad():
            self.fill(tensor, generator)
        return tensor

    def fill(self, tensor: Tensor, generator: torch.Generator | None) -> None:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {"seed": self.seed}

    @classmethod
    def from_config(cls, config_dict: dict[str, Any]) -> "Initializer":
        return cls(**config_dict)


@register("Zeros", "zeros", "zero")
class Zeros(Initializer):
    """All zeros."""

    def __init__(self):
        super().__init__()

    def fill(self, tensor, generator):
        tensor.zero_()

    def get_config(self):
        return {}


@register("Ones", "ones", "one")
class Ones(Initializer):
    """All ones."""

    def __init__(self):
        super().__init__()

    def fill(self, tensor, generator):
        tensor.fill_(1.0)

    def get_config(self):
        return {}


@register("Constant", "constant")
class Constant(Initializer):
    """Every element equal to `value`."""

    def __init__(self, value: float = 0.0):
        super().__init__()
        self.value = value

    def fill(self, tensor, generator):
        tensor.fill_(self.value)

    def get_config(self):
        return {"value": self.value}


@register("RandomNormal", "random_normal", "normal")
class RandomNormal(Initializer):
    """Normal distribution N(mean, stddev^2)."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None):
        super().__init__(seed)
        self.mean, self.stddev = mean, stddev

    def fill(self, tensor, generator):
        tensor.normal_(self.mean, self.stddev, generator=generator)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


@register("RandomUniform", "random_uniform", "uniform")
class RandomUniform(Initializer):
    """Uniform distribution on [minval, maxval)."""

    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None):
        super().__init__(seed)
        if maxval < minval:
            raise ValueError(
                f"`maxval` must be >= `minval`. Received: minval={minval}, maxval={maxval}."
            )
        self.minval, self.maxval = minval, maxval

    def fill(self, tensor, generator):
        tensor.uniform_(self.minval, self.maxval, generator=generator)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


def _truncated_normal_(tensor: Tensor, stddev: float, generator: torch.Generator | None) -> None:
    # Keras truncates at two standard deviations; resample rather than clamp so the shape of
    # the distribution is the truncated normal, not a normal with spikes at the bounds.
    torch.nn.init.trunc_normal_(
        tensor, 0.0, stddev, -2.0 * stddev, 2.0 * stddev, generator=generator
    )


@register("TruncatedNormal", "truncated_normal")
class TruncatedNormal(Initializer):
    """Normal N(mean, stddev^2) truncated to two standard deviations around the mean."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None):
        super().__init__(seed)
        self.mean, self.stddev = mean, stddev

    def fill(self, tensor, generator):
        _truncated_normal_(tensor, self.stddev, generator)
        tensor.add_(self.mean)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


@register("VarianceScaling", "variance_scaling")
class VarianceScaling(Initializer):
    """Samples with variance `scale / n`, n = fan_in, fan_out or their mean (`mode`).

    `distribution` is 'truncated_normal' (stddev corrected for the truncation, as Keras does),
    'untruncated_normal' or 'uniform' (limit `sqrt(3 * scale / n)`). Glorot, He and LeCun are
    this with fixed arguments.
    """

    _MODES = ("fan_in", "fan_out", "fan_avg")
    _DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform", "normal")

    def __init__(
        self,
        scale: float = 1.0,
        mode: str = "fan_in",
        distribution: str = "truncated_normal",
        seed: int | None = None,
    ):
        super().__init__(seed)
        if scale <= 0:
            raise ValueError(f"`scale` must be positive. Received: scale={scale}.")
        if mode not in self._MODES:
            raise ValueError(f"`mode` must be one of {self._MODES}. Received: mode={mode!r}.")
        if distribution not in self._DISTRIBUTIONS:
            raise ValueError(
                f"`distribution` must be one of {self._DISTRIBUTIONS}. "
                f"Received: distribution={distribution!r}."
            )
        self.scale, self.mode, self.distribution = scale, mode, distribution

    def fill(self, tensor, generator):
        fan_in, fan_out = compute_fans(tensor.shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, n)
        if self.distribution in ("truncated_normal", "normal"):
            # 0.8796... is the stddev of a unit normal truncated to [-2, 2].
            _truncated_normal_(tensor, math.sqrt(variance) / 0.87962566103423978, generator)
        elif self.distribution == "untruncated_normal":
            tensor.normal_(0.0, math.sqrt(variance), generator=generator)
        else:
            limit = math.sqrt(3.0 * variance)
            tensor.uniform_(-limit, limit, generator=generator)

    def get_config(self):
        return {
            "scale": self.scale,
            "mode": self.mode,
            "distribution": self.distribution,
            "seed": self.seed,
        }


def _variance_scaling_preset(name: str, scale: float, mode: str, distribution: str, doc: str):
    """A Keras preset of VarianceScaling: only the seed is an argument."""

    class Preset(VarianceScaling):
        __doc__ = doc

        def __init__(self, seed: int | None = None):
            super().__init__(scale=scale, mode=mode, distribution=distribution, seed=seed)

        def get_config(self):
            return {"seed": self.seed}

    snake = "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
    Preset.__name__ = Preset.__qualname__ = name
    return register(name, snake)(Preset)


GlorotUniform = _variance_scaling_preset(
    "GlorotUniform", 1.0, "fan_avg", "uniform",
    "Glorot (Xavier) uniform: limit `sqrt(6 / (fan_in + fan_out))`.",
)
GlorotNormal = _variance_scaling_preset(
    "GlorotNormal", 1.0, "fan_avg", "truncated_normal",
    "Glorot (Xavier) normal: stddev `sqrt(2 / (fan_in + fan_out))`, truncated.",
)
HeUniform = _variance_scaling_preset(
    "HeUniform", 2.0, "fan_in", "uniform", "He uniform: limit `sqrt(6 / fan_in)`."
)
HeNormal = _variance_scaling_preset(
    "HeNormal", 2.0, "fan_in", "truncated_normal", "He normal: stddev `sqrt(2 / fan_in)`, truncated."
)
LecunUniform = _variance_scaling_preset(
    "LecunUniform", 1.0, "fan_in", "uniform", "LeCun uniform: limit `sqrt(3 / fan_in)`."
)
LecunNormal = _variance_scaling_preset(
    "LecunNormal", 1.0, "fan_in", "truncated_normal",
    "LeCun normal: stddev `sqrt(1 / fan_in)`, truncated.",
)


@register("Orthogonal", "orthogonal", "OrthogonalInitializer", "orthogonal_initializer")
class Orthogonal(Initializer):
    """A (semi-)orthogonal matrix times `gain`, over the last axis as Keras flattens it."""

    def __init__(self, gain: float = 1.0, seed: int | None = None):
        super().__init__(seed)
        self.gain = gain

    def fill(self, tensor, generator):
        if tensor.ndim < 2:
            raise ValueError(
                "The Orthogonal initializer needs a shape of at least 2 dimensions. "
                f"Received: shape={tuple(tensor.shape)}."
            )
        # Keras flattens all leading axes into rows; torch's orthogonal_ flattens trailing axes
        # into columns, so initialise the transposed 2-D view and copy it back.
        rows = math.prod(tensor.shape[:-1])
        flat = torch.empty(tensor.shape[-1], rows, dtype=tensor.dtype)
        torch.nn.init.orthogonal_(flat, gain=self.gain, generator=generator)
        tensor.copy_(flat.t().reshape(tensor.shape))

    def get_config(self):
        return {"gain": self.gain, "seed": self.seed}


@register("Identity", "identity")
class Identity(Initializer):
    """`gain` times the identity matrix (2-D shapes only)."""

    def __init__(self, gain: float = 1.0):
        super().__init__()
        self.gain = gain

    def fill(self, tensor, generator):
        if tensor.ndim != 2:
            raise ValueError(
                f"The Identity initializer needs a 2-D shape. Received: shape={tuple(tensor.shape)}."
            )
        torch.nn.init.eye_(tensor).mul_(self.gain)

    def get_config(self):
        return {"gain": self.gain}


def get(identifier: Any) -> Initializer:
    """Resolve an initializer argument: a name, a config dict, an Initializer or a callable."""
    if identifier is None:
        return None
    if isinstance(identifier, str):
        return lookup("initializer", identifier)()
    if isinstance(identifier, dict):
        return serialization.deserialize(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if callable(identifier):
        return identifier
    raise TypeError(
        f"Could not interpret initializer {identifier!r}. Pass a name "
        f"({', '.join(names('initializer'))}), an Initializer, or a callable(shape, dtype)."
    )


def serialize(initializer: Any) -> Any:
    return serialization.serialize(initializer)


__all__ = [
    "Initializer", "Zeros", "Ones", "Constant", "RandomNormal", "RandomUniform",
    "TruncatedNormal", "VarianceScaling", "GlorotUniform", "GlorotNormal", "HeUniform",
    "HeNormal", "LecunUniform", "LecunNormal", "Orthogonal", "Identity", "get", "serialize",
    "compute_fans",
]
