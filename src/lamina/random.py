"""Keras 3's `keras.random` on torch: seeded sampling functions and `SeedGenerator`.

`seed` is an int (the same int always gives the same numbers), a `SeedGenerator` (each call
draws from the next state, so repeated calls differ but a re-created generator repeats them), or
None (torch's global generator, which `lamina.set_random_seed` seeds).
"""

from __future__ import annotations

import contextlib
import math
import random as _python_random
from typing import Any, Iterator, Sequence

import torch
from torch import nn

from lamina import config
from lamina.ops._op import any_symbolic, standardize_dtype, to_tensor

Tensor = torch.Tensor
_MASK64 = (1 << 64) - 1


class SeedGenerator(nn.Module):
    """A random state for seeded ops: `(seed, counter)`; each draw uses the current state and
    advances the counter.

    Created in a layer, it is part of the layer's non-trainable weights (the buffer `state`), so
    a saved and reloaded layer continues the same sequence.

    >>> gen = SeedGenerator(1)
    >>> bool((normal((2,), seed=gen) != normal((2,), seed=gen)).all())
    True
    """

    def __init__(self, seed: int | None = None, name: str | None = None, **kwargs: Any):
        super().__init__()
        if seed is None:
            # Python's generator, which lamina.set_random_seed seeds, as Keras does.
            seed = _python_random.randint(1, 2**31 - 1)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"`seed` must be an int or None. Received: seed={seed!r}.")
        self.seed = seed
        self.name = name or "seed_generator"
        self.register_buffer("state", torch.tensor([seed, 0], dtype=torch.int64))

    def next(self, ordered: bool = True) -> Tensor:
        """The current state, then advances the counter (in place, so a saved layer keeps it).
        Shape probes of a functional model advance nothing, as Keras's symbolic calls."""
        from lamina._symbolic import is_probing

        current = self.state.clone()
        if not is_probing():
            with torch.no_grad():
                self.state[1] += 1
        return current

    def get_config(self) -> dict[str, Any]:
        return {"seed": self.seed}

    @classmethod
    def from_config(cls, config_dict: dict[str, Any]) -> "SeedGenerator":
        return cls(**config_dict)

    def extra_repr(self) -> str:
        return f"seed={self.seed}"


def _mix(seed: int, counter: int) -> int:
    """One 63-bit torch seed from (seed, counter) by SplitMix64, so nearby states are unrelated."""
    z = (seed * 0x9E3779B97F4A7C15 + counter * 0xBF58476D1CE4E5B9 + 0x94D049BB133111EB) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (z ^ (z >> 31)) & ((1 << 63) - 1)


def _draw_seed(seed: Any) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, SeedGenerator):
        state = seed.next()
        return _mix(int(state[0]), int(state[1]))
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"`seed` must be an int, a lamina.random.SeedGenerator or None. "
                         f"Received: seed={seed!r}.")
    return _mix(seed, 0)


@contextlib.contextmanager
def _rng(seed: Any, function: str, values: Any = ()) -> Iterator[None]:
    """Draw on the CPU generator, seeded from `seed` and restored afterwards (global if None)."""
    if any_symbolic(values):
        raise TypeError(
            f"lamina.random.{function} was applied to a symbolic tensor. A saved model never "
            "draws random numbers in its graph: use a layer (layers.Dropout, "
            "layers.GaussianNoise) or call it inside a custom Layer's call().")
    derived = _draw_seed(seed)
    if derived is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(derived)
        yield


def _placed(sample: Tensor) -> Tensor:
    """A sample drawn on the CPU generator, moved to torch's default device."""
    device = torch.get_default_device()
    return sample if sample.device == device else sample.to(device)


def _shape(shape: Any) -> tuple[int, ...]:
    if isinstance(shape, int):
        return (shape,)
    return tuple(int(s) for s in shape)


def _float_dtype(dtype: Any, function: str) -> torch.dtype:
    target = standardize_dtype(dtype) or config.torch_dtype(None)
    if not target.is_floating_point:
        raise ValueError(f"lamina.random.{function} samples floats: `dtype` must be a float "
                         f"type. Received: dtype={dtype!r}.")
    return target


def normal(shape: Sequence[int], mean: float = 0.0, stddev: float = 1.0, dtype: Any = None,
           seed: Any = None) -> Tensor:
    """Samples from a normal distribution N(mean, stddev**2)."""
    target = _float_dtype(dtype, "normal")
    with _rng(seed, "normal", (mean, stddev)):
        sample = torch.randn(_shape(shape), dtype=torch.float32, device="cpu")
    return _placed((sample * stddev + mean).to(target))


def uniform(shape: Sequence[int], minval: float = 0.0, maxval: float = 1.0, dtype: Any = None,
            seed: Any = None) -> Tensor:
    """Samples from the uniform distribution on [minval, maxval)."""
    target = _float_dtype(dtype, "uniform")
    with _rng(seed, "uniform", (minval, maxval)):
        sample = torch.rand(_shape(shape), dtype=torch.float32, device="cpu")
    return _placed((sample * (maxval - minval) + minval).to(target))


def randint(shape: Sequence[int], minval: int, maxval: int, dtype: Any = "int32",
            seed: Any = None) -> Tensor:
    """Integers drawn uniformly from [minval, maxval)."""
    target = standardize_dtype(dtype)
    if target.is_floating_point or target == torch.bool:
        raise ValueError(f"lamina.random.randint samples integers: `dtype` must be an integer "
                         f"type. Received: dtype={dtype!r}.")
    if maxval <= minval:
        raise ValueError(f"`maxval` must be greater than `minval`. Received: minval={minval}, "
                         f"maxval={maxval}.")
    with _rng(seed, "randint", (minval, maxval)):
        sample = torch.randint(int(minval), int(maxval), _shape(shape), dtype=torch.int64,
                               device="cpu")
    return _placed(sample.to(target))


def truncated_normal(shape: Sequence[int], mean: float = 0.0, stddev: float = 1.0,
                     dtype: Any = None, seed: Any = None) -> Tensor:
    """Samples from N(mean, stddev**2) truncated to two standard deviations of the mean, by
    inverting the normal CDF on the truncated range."""
    target = _float_dtype(dtype, "truncated_normal")
    low = 0.5 * (1 + math.erf(-2 / math.sqrt(2)))
    with _rng(seed, "truncated_normal", (mean, stddev)):
        u = torch.rand(_shape(shape), dtype=torch.float64, device="cpu")
    p = low + u * (1 - 2 * low)
    z = math.sqrt(2) * torch.erfinv(2 * p - 1)
    return _placed((z.clamp(-2, 2) * stddev + mean).to(target))


def dropout(inputs: Any, rate: float, noise_shape: Sequence[int | None] | None = None,
            seed: Any = None) -> Tensor:
    """Zeroes each element with probability `rate` and scales the rest by `1 / (1 - rate)`;
    `noise_shape` broadcasts one mask over some axes (None entries take the input's size)."""
    if not 0 <= rate < 1:
        raise ValueError(f"`rate` must be in [0, 1). Received: rate={rate!r}.")
    with _rng(seed, "dropout", inputs):
        x = to_tensor(inputs)
        shape = tuple(x.shape) if noise_shape is None else tuple(
            x.shape[i] if d is None else d for i, d in enumerate(noise_shape))
        keep = torch.rand(shape, device="cpu") >= rate
    keep = keep.to(x.device)
    return torch.where(keep, x / (1 - rate), torch.zeros((), dtype=x.dtype, device=x.device))


def shuffle(x: Any, axis: int = 0, seed: Any = None) -> Tensor:
    """`x` with its slices along `axis` in a random order."""
    with _rng(seed, "shuffle", x):
        x = to_tensor(x)
        order = torch.randperm(x.shape[axis], device="cpu")
    return torch.index_select(x, axis, order.to(x.device))


def categorical(logits: Any, num_samples: int, dtype: Any = "int32", seed: Any = None
                ) -> Tensor:
    """`num_samples` class indices per row of `logits` (batch, classes), drawn from
    softmax(logits)."""
    with _rng(seed, "categorical", logits):
        logits = to_tensor(logits)
        probabilities = torch.softmax(logits.double().cpu(), dim=-1)
        samples = torch.multinomial(probabilities, int(num_samples), replacement=True)
    return samples.to(standardize_dtype(dtype)).to(logits.device)


def gamma(shape: Sequence[int], alpha: float, dtype: Any = None, seed: Any = None) -> Tensor:
    """Samples from Gamma(alpha, 1)."""
    target = _float_dtype(dtype, "gamma")
    with _rng(seed, "gamma", alpha):
        concentration = to_tensor(alpha, torch.float64, "cpu").expand(_shape(shape))
        return _placed(torch._standard_gamma(concentration).to(target))


def binomial(shape: Sequence[int], counts: Any, probabilities: Any, dtype: Any = None,
             seed: Any = None) -> Tensor:
    """Samples from Binomial(counts, probabilities) (broadcast to `shape`), as floats."""
    target = _float_dtype(dtype, "binomial")
    with _rng(seed, "binomial", (counts, probabilities)):
        count = to_tensor(counts, torch.float64, "cpu").expand(_shape(shape))
        probability = to_tensor(probabilities, torch.float64, "cpu").expand(_shape(shape))
        return _placed(torch.binomial(count.contiguous(), probability.contiguous()).to(target))


def beta(shape: Sequence[int], alpha: Any, beta: Any, dtype: Any = None, seed: Any = None
         ) -> Tensor:
    """Samples from Beta(alpha, beta), as `X / (X + Y)` with X ~ Gamma(alpha), Y ~ Gamma(beta)."""
    target = _float_dtype(dtype, "beta")
    with _rng(seed, "beta", (alpha, beta)):
        x = torch._standard_gamma(to_tensor(alpha, torch.float64, "cpu").expand(_shape(shape)))
        y = torch._standard_gamma(to_tensor(beta, torch.float64, "cpu").expand(_shape(shape)))
    return _placed((x / (x + y)).to(target))


__all__ = ["SeedGenerator", "beta", "binomial", "categorical", "dropout", "gamma", "normal",
           "randint", "shuffle", "truncated_normal", "uniform"]
