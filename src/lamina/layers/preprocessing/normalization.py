"""Normalization: feature-wise standardization with statistics learned by `adapt(data)`."""

from __future__ import annotations

import itertools
import math
import numbers
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

from lamina import config
from lamina._registry import register
from lamina.errors import DataError, ShapeError
from lamina.layers.layer import Layer

Tensor = torch.Tensor


def _axes_tuple(axis: Any) -> tuple[int, ...]:
    if axis is None:
        return ()
    if isinstance(axis, numbers.Integral) and not isinstance(axis, bool):
        return (int(axis),)
    if isinstance(axis, (list, tuple)) and all(
            isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in axis):
        return tuple(int(a) for a in axis)
    raise TypeError(
        "`axis` must be an integer, a list of integers, or None (one scalar mean and variance). "
        f"Received: axis={axis!r}."
    )


def _numeric_array(value: Any, what: str) -> np.ndarray:
    array = np.asarray(value.detach().cpu() if isinstance(value, Tensor) else value)
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"`{what}` must hold numbers. Received a value of dtype {array.dtype}: {value!r}."
        )
    return array


@register("Normalization")
class Normalization(Layer):
    """Shifts and scales inputs to zero mean and unit variance per feature:
    `outputs = (inputs - mean) / max(sqrt(variance), epsilon)` (epsilon = `config.epsilon()`,
    1e-7, so a constant feature maps to 0 instead of dividing by zero).

    The mean and variance are either given or learned by `adapt(data)`, which streams over the
    data once (`np.mean`/`np.var` of everything seen). Learned statistics are non-trainable
    weights (`mean`, `variance`, `count`), so they are saved and loaded with the model.

    Args:
        axis: the axis or axes that keep a separate mean and variance (default -1, the features);
            None normalizes every element by one scalar mean and variance.
        mean, variance: fixed statistics (both or neither), broadcast to the kept axes.
        invert: apply the inverse, `mean + inputs * sqrt(variance)`, to undo a normalization.

    Input and output shape: any, e.g. `(batch_size, features)`.

    >>> layer = Normalization(axis=None)
    >>> layer.adapt(np.array([1., 2., 3., 4., 5.]))
    >>> layer(torch.tensor([1., 2., 3.]))
    tensor([-1.4142, -0.7071,  0.0000])
    """

    def __init__(self, axis: int | Sequence[int] | None = -1, mean: Any = None,
                 variance: Any = None, invert: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self._axes = _axes_tuple(axis)
        self.axis = list(axis) if isinstance(axis, (list, tuple)) else axis
        if (mean is None) != (variance is None):
            raise ValueError(
                "`mean` and `variance` must be given together (or neither, to learn them with "
                f"adapt()). Received: mean={mean!r}, variance={variance!r}."
            )
        self.input_mean = self.input_variance = None
        if mean is not None:
            mean_array = _numeric_array(mean, "mean")
            variance_array = _numeric_array(variance, "variance")
            if mean_array.shape != variance_array.shape:
                raise ValueError(
                    "`mean` and `variance` must have the same shape. Received: mean of shape "
                    f"{mean_array.shape} and variance of shape {variance_array.shape}."
                )
            if mean_array.ndim > len(self._axes):
                raise ValueError(
                    f"`mean` has rank {mean_array.ndim}, more than the {len(self._axes)} kept "
                    f"axes of axis={axis!r}. Give one value per index of the kept axes."
                )
            if (variance_array < 0).any():
                raise ValueError(
                    f"`variance` must be non-negative. Received: variance={variance!r}."
                )
            self.input_mean = mean_array.tolist()
            self.input_variance = variance_array.tolist()
        self.invert = bool(invert)
        self.supports_masking = True

    def build(self, input_shape):
        rank = len(input_shape)
        if any(not -rank <= a < rank for a in self._axes):
            raise ShapeError(
                f"Layer {self.name!r} (Normalization): axis={self.axis!r} is out of range for an "
                f"input of shape {tuple(input_shape)} (rank {rank})."
            )
        self._keep_axes = tuple(sorted(a % rank for a in self._axes))
        self._reduce_axes = tuple(d for d in range(rank) if d not in self._keep_axes)
        if any(input_shape[d] is None for d in self._keep_axes):
            raise ShapeError(
                f"Layer {self.name!r} (Normalization) needs the kept axes {self.axis!r} to have "
                f"known sizes. Received an input of shape {tuple(input_shape)}."
            )
        kept_shape = tuple(int(input_shape[d]) for d in self._keep_axes)
        self._broadcast_shape = tuple(
            int(input_shape[d]) if d in self._keep_axes else 1 for d in range(rank)
        )
        self._epsilon = config.epsilon()
        self._learned = self.input_mean is None
        if self._learned:
            self.adapt_mean = self.add_weight(shape=kept_shape, initializer="zeros",
                                              trainable=False, name="mean")
            self.adapt_variance = self.add_weight(shape=kept_shape, initializer="ones",
                                                  trainable=False, name="variance")
            self.count = self.add_weight(shape=(), initializer="zeros", dtype="int64",
                                         trainable=False, name="count")
        else:
            self.register_buffer("_mean", self._broadcast(self.input_mean), persistent=False)
            self.register_buffer("_variance", self._broadcast(self.input_variance),
                                 persistent=False)

    def _broadcast(self, values: Any) -> Tensor:
        # Keras aligns the given statistics with the kept axes from the right.
        tensor = torch.as_tensor(values, dtype=self._dtype)
        shape = [1] * len(self._broadcast_shape)
        for i in range(1, tensor.dim() + 1):
            shape[self._keep_axes[-i]] = tensor.shape[-i]
        try:
            return tensor.reshape(shape).expand(self._broadcast_shape).clone()
        except RuntimeError:
            raise ValueError(
                f"Layer {self.name!r} (Normalization): the given mean/variance of shape "
                f"{tuple(tensor.shape)} cannot be broadcast to the kept axes of the input, of "
                f"sizes {tuple(self._broadcast_shape[d] for d in self._keep_axes)}."
            ) from None

    def call(self, inputs):
        if not isinstance(inputs, Tensor):
            # A layer built by adapt() is then called on numpy data, as Keras allows.
            inputs = torch.as_tensor(np.asarray(inputs))
        if inputs.dtype != self._dtype:
            inputs = inputs.to(self._dtype)
        if self._learned:
            mean = self.adapt_mean.view(self._broadcast_shape)
            variance = self.adapt_variance.view(self._broadcast_shape)
        else:
            mean, variance = self._mean, self._variance
        scale = variance.sqrt().clamp_min(self._epsilon)
        if self.invert:
            return mean + inputs * scale
        return (inputs - mean) / scale

    def adapt(self, data: Any) -> None:
        """Learn the mean and variance of `data`: a numpy array, a tensor, or an iterable of
        batches (a list of arrays, a generator, a `PyDataset`; `(x, y)` batches use `x`).

        Statistics are accumulated batch by batch in float64 (Chan et al.'s pairwise update), so
        they equal `np.mean`/`np.var` over all the data; each call starts afresh.
        """
        if self.input_mean is not None:
            raise ValueError(
                f"Layer {self.name!r} (Normalization) was given a fixed mean and variance, so it "
                "cannot adapt. Create it without `mean`/`variance` to learn them from data."
            )
        batches = numeric_batches(data, "Normalization.adapt()")
        first = next(batches, None)
        if first is None:
            raise ValueError(
                "Normalization.adapt() received no batches. Pass a non-empty array, tensor or "
                "iterable of batches."
            )
        if not self.built:
            rank = first.dim()
            keep = {a % rank for a in self._axes if -rank <= a < rank}
            shape = tuple(None if d == 0 and 0 not in keep else first.shape[d]
                          for d in range(rank))
            self._maybe_build(shape)
        total, mean, variance = 0, None, None
        for batch in _chain(first, batches):
            self._check_batch(batch)
            if self._reduce_axes:
                count = math.prod(batch.shape[d] for d in self._reduce_axes)
                if count == 0:
                    continue
                batch_mean = batch.mean(dim=self._reduce_axes)
                batch_variance = batch.var(dim=self._reduce_axes, unbiased=False)
            else:
                count, batch_mean, batch_variance = 1, batch, torch.zeros_like(batch)
            if mean is None:
                total, mean, variance = count, batch_mean, batch_variance
                continue
            new_total = total + count
            delta = batch_mean - mean
            mean = mean + delta * (count / new_total)
            variance = (variance * total + batch_variance * count
                        + delta.square() * (total * count / new_total)) / new_total
            total = new_total
        if mean is None:
            raise ValueError(
                "Normalization.adapt() received only empty batches. Pass data with at least one "
                "sample."
            )
        if not (torch.isfinite(mean).all() and torch.isfinite(variance).all()):
            raise DataError(
                f"Layer {self.name!r} (Normalization): the adapt() data contains NaN or infinite "
                "values, so its mean/variance are not finite. Clean or impute the data first."
            )
        with torch.no_grad():
            self.adapt_mean.copy_(mean.reshape(self.adapt_mean.shape))
            self.adapt_variance.copy_(variance.reshape(self.adapt_variance.shape))
            self.count.fill_(total)

    def _check_batch(self, batch: Tensor) -> None:
        expected = self._build_input_shape
        if batch.dim() != len(expected) or any(
                batch.shape[d] != expected[d] for d in self._keep_axes):
            raise ShapeError(
                f"Layer {self.name!r} (Normalization) was built for inputs of shape "
                f"{tuple(expected)}, but adapt() received a batch of shape {tuple(batch.shape)}. "
                f"The kept axes {self.axis!r} must have the same sizes."
            )

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "mean": self.input_mean,
                "variance": self.input_variance, "invert": self.invert}


def _chain(first: Tensor, rest: Iterator[Tensor]) -> Iterator[Tensor]:
    yield first
    yield from rest


def _is_xy_batch(batch: Any) -> bool:
    """An `(x, y)` or `(x, y, sample_weight)` batch, as data sets yield for `fit`."""
    return isinstance(batch, tuple) and len(batch) in (2, 3) and \
        isinstance(batch[0], (Tensor, np.ndarray))


def _as_float64(batch: Any, caller: str) -> Tensor:
    if _is_xy_batch(batch):
        batch = batch[0]
    if isinstance(batch, Tensor):
        if batch.is_complex() or batch.dtype == torch.bool:
            raise TypeError(f"{caller} needs real numbers; received a {batch.dtype} tensor.")
        return batch.detach().to(torch.float64)
    try:
        array = np.asarray(batch)
    except ValueError as error:
        raise TypeError(
            f"{caller} could not turn a batch into an array ({error}). Pass arrays of one shape "
            "per batch."
        ) from None
    if array.dtype.kind not in "iuf":
        raise TypeError(
            f"{caller} needs numeric data (a numpy array, a tensor, or batches of them). "
            f"Received data of dtype {array.dtype}."
        )
    return torch.from_numpy(array.astype(np.float64))


def numeric_batches(data: Any, caller: str, steps: int | None = None) -> Iterator[Tensor]:
    """The float64 batches of adapt() data: one array or tensor, or an iterable of batches (a
    list of arrays, a generator, a `PyDataset`; `(x, y)` batches give `x`), at most `steps`."""
    from lamina.utils.py_dataset import PyDataset

    message = (f"{caller} takes a numpy array, a tensor, or an iterable of batches. "
               f"Received: {type(data).__name__}.")
    if isinstance(data, (str, bytes, dict)) or data is None:
        raise TypeError(message)
    if isinstance(data, (Tensor, np.ndarray)):
        return iter([_as_float64(data, caller)])
    if isinstance(data, PyDataset):
        dataset = data
        data = (dataset[i] for i in range(len(dataset)))
    elif isinstance(data, (list, tuple)) and not all(
            isinstance(item, (Tensor, np.ndarray)) or _is_xy_batch(item) for item in data):
        # Nested numbers are one array, not a list of batches.
        return iter([_as_float64(np.asarray(data), caller)]) if len(data) else iter([])
    elif not isinstance(data, Iterable):
        raise TypeError(message)
    return (_as_float64(batch, caller) for batch in itertools.islice(data, steps))
