"""Discretization: continuous values -> bucket indices, with boundaries given or learned from
quantiles by `adapt(data)`."""

from __future__ import annotations

import numbers
from typing import Any, Sequence

import numpy as np
import torch

from lamina._registry import register
from lamina.layers.layer import Layer
from lamina.layers.preprocessing.category_encoding import (
    ENCODING_MODES,
    encode_categorical,
    encoded_shape,
)
from lamina.layers.preprocessing.normalization import numeric_batches

Tensor = torch.Tensor

_OUTPUT_MODES = ("int",) + ENCODING_MODES


# Keras's streaming quantile sketch. A summary is a (2, m) float32 array: sorted values (row 0)
# and how many data points each stands for (row 1). Batches are summarized, merged, and kept to
# about 1/epsilon columns; the boundaries are the summary compressed to num_bins quantiles.

def _summarize(values: np.ndarray, epsilon: float) -> np.ndarray:
    values = np.sort(values.reshape(-1))
    # Keras's arithmetic exactly (n / (1 / epsilon), starting at step - 1): n * epsilon rounds
    # differently for some epsilons, and starting at `step` shifts every kept quantile by one.
    spacing = values.size / (1.0 / epsilon)  # data points per column with 1/epsilon columns
    step = max(spacing, 1.0)
    kept = values[int(step - 1)::int(step)]
    return np.stack([kept, np.full_like(kept, step)])


def _compress(summary: np.ndarray, epsilon: float) -> np.ndarray:
    if summary.shape[1] * epsilon < 1:
        return summary
    targets = epsilon + np.arange(0.0, 1.0, epsilon)
    cumulative = summary[1].cumsum()
    fractions = cumulative / cumulative[-1]
    values = np.interp(targets, fractions, summary[0])
    counts = np.diff(np.interp(targets, fractions, cumulative), prepend=0.0)
    return np.stack([values, counts]).astype(np.float32)


def _merge(new: np.ndarray, old: np.ndarray, epsilon: float) -> np.ndarray:
    merged = np.concatenate([new, old], axis=1)
    return _compress(merged[:, np.argsort(merged[0])], epsilon)


@register("Discretization")
class Discretization(Layer):
    """Buckets values by ranges: with boundaries `[b0, b1, ...]` the bins are `(-inf, b0)`,
    `[b0, b1)`, ..., `[b_last, inf)`, numbered from 0.

    Args:
        bin_boundaries: the sorted boundaries (then do not call adapt).
        num_bins: the number of bins whose boundaries `adapt(data)` learns from quantiles.
        epsilon: the error tolerance of the quantile sketch (Keras's streaming summary).
        output_mode: 'int' (bin indices), or 'one_hot', 'multi_hot', 'count' over the bins.
        sparse: must be False.

    Input shape: any. Output shape: the input's in 'int' mode (int64), else as CategoryEncoding.

    >>> Discretization(bin_boundaries=[0., 1., 2.])(torch.tensor([[-1.5, 1.0, 3.4, .5]]))
    tensor([[0, 2, 3, 1]])
    """

    def __init__(self, bin_boundaries: Sequence[float] | None = None, num_bins: int | None = None,
                 epsilon: float = 0.01, output_mode: str = "int", sparse: bool = False,
                 **kwargs: Any):
        super().__init__(**kwargs)
        if output_mode not in _OUTPUT_MODES:
            raise ValueError(
                f"`output_mode` must be one of {', '.join(repr(m) for m in _OUTPUT_MODES)}. "
                f"Received: output_mode={output_mode!r}."
            )
        if (num_bins is None) == (bin_boundaries is None):
            raise ValueError(
                "Set exactly one of `bin_boundaries` (fixed bins) and `num_bins` (bins learned by "
                f"adapt()). Received: bin_boundaries={bin_boundaries!r}, num_bins={num_bins!r}."
            )
        if num_bins is not None and (isinstance(num_bins, bool)
                                     or not isinstance(num_bins, numbers.Integral) or num_bins < 1):
            raise ValueError(
                f"`num_bins` must be an integer >= 1. Received: num_bins={num_bins!r}."
            )
        if not (isinstance(epsilon, numbers.Real) and 0 < epsilon <= 1):
            raise ValueError(
                f"`epsilon` must be a number in (0, 1]. Received: epsilon={epsilon!r}."
            )
        if sparse:
            raise ValueError("`sparse=True` is not supported: use the dense output.")
        self.num_bins = None if num_bins is None else int(num_bins)
        self.epsilon = float(epsilon)
        self.output_mode = output_mode
        self.sparse = False
        self.bin_boundaries: list[float] | None = None
        self.register_buffer("_boundaries", None, persistent=False)
        if bin_boundaries is not None:
            self._set_boundaries(bin_boundaries)

    def _set_boundaries(self, boundaries: Any) -> None:
        values = np.asarray(boundaries, dtype=np.float64).reshape(-1)
        if np.any(np.diff(values) < 0) or not np.all(np.isfinite(values)):
            raise ValueError(
                "`bin_boundaries` must be finite and sorted in increasing order. "
                f"Received: bin_boundaries={list(boundaries)!r}."
            )
        self.bin_boundaries = values.tolist()
        device = self._boundaries.device if self._boundaries is not None else None
        self._boundaries = torch.tensor(self.bin_boundaries, dtype=self._dtype, device=device)

    def adapt(self, data: Any, steps: int | None = None) -> None:
        """Learn `num_bins - 1` boundaries from the quantiles of `data` (an array, a tensor, or
        an iterable of batches, of which at most `steps` are read)."""
        if self.num_bins is None:
            raise ValueError(
                "This Discretization layer was given `bin_boundaries`; create it with `num_bins` "
                "to learn boundaries with adapt()."
            )
        summary = np.zeros((2, 0), dtype=np.float32)
        seen = 0
        for batch in numeric_batches(data, "Discretization.adapt()", steps):
            values = batch.cpu().numpy().astype(np.float32)
            if values.size == 0:
                continue
            if not np.all(np.isfinite(values)):
                raise ValueError(
                    "Discretization.adapt() data contains NaN or infinite values; clean it first."
                )
            summary = _merge(_summarize(values, self.epsilon), summary, self.epsilon)
            seen += values.size
        if seen == 0:
            raise ValueError(
                "Discretization.adapt() received no values. Pass a non-empty array or batches."
            )
        self._set_boundaries(_compress(summary, 1.0 / self.num_bins)[0, :-1])

    def call(self, inputs):
        if self._boundaries is None:
            raise ValueError(
                f"Layer {self.name!r} (Discretization) has no bin boundaries yet. Pass "
                "`bin_boundaries=` or call adapt(data) first."
            )
        if not isinstance(inputs, Tensor):
            inputs = torch.as_tensor(np.asarray(inputs))
        indices = torch.bucketize(inputs.to(self._boundaries.dtype), self._boundaries, right=True)
        if self.output_mode == "int":
            return indices
        return encode_categorical(indices, self.output_mode, len(self.bin_boundaries) + 1,
                                  self._dtype)

    def compute_output_shape(self, input_shape):
        if self.output_mode == "int":
            return tuple(input_shape)
        depth = len(self.bin_boundaries) + 1 if self.bin_boundaries is not None else self.num_bins
        return encoded_shape(input_shape, self.output_mode, depth)

    def get_config(self):
        return {**super().get_config(), "bin_boundaries": self.bin_boundaries,
                "num_bins": self.num_bins, "epsilon": self.epsilon,
                "output_mode": self.output_mode, "sparse": self.sparse}

    @classmethod
    def from_config(cls, config_dict: dict[str, Any]) -> "Discretization":
        # An adapted layer has both num_bins and its learned boundaries, which __init__ refuses
        # together (as Keras): rebuild with num_bins, then restore the boundaries.
        config_dict = dict(config_dict)
        boundaries = config_dict.get("bin_boundaries")
        if boundaries is not None and config_dict.get("num_bins") is not None:
            config_dict.pop("bin_boundaries")
            layer = cls(**config_dict)
            layer._set_boundaries(boundaries)
            return layer
        return cls(**config_dict)


__all__ = ["Discretization"]
