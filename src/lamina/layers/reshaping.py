"""Reshaping layers: Flatten, Reshape, Permute, RepeatVector."""

from __future__ import annotations

import math
from typing import Any, Sequence


from lamina import config
from lamina._registry import register
from lamina.errors import ShapeError
from lamina.layers.layer import Layer, check_input_rank


@register("Flatten")
class Flatten(Layer):
    """Flattens all axes but the batch axis: `(batch, d1, d2, ...) -> (batch, d1 * d2 * ...)`.

    With `data_format='channels_first'` the channel axis is moved last first, so the flattened
    order (and the next Dense kernel) matches the channels_last model, as in Keras.
    """

    def __init__(self, data_format: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.data_format = config.standardize_data_format(data_format)

    def call(self, inputs):
        if self.data_format == "channels_first" and inputs.ndim > 2:
            inputs = inputs.movedim(1, -1)
        return inputs.flatten(1) if inputs.ndim > 1 else inputs.unsqueeze(1)

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        size = None if any(d is None for d in rest) else math.prod(rest)
        return (input_shape[0], size)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


@register("Reshape")
class Reshape(Layer):
    """Reshapes to `(batch,) + target_shape`; one entry of target_shape may be -1."""

    def __init__(self, target_shape: Sequence[int], **kwargs: Any):
        super().__init__(**kwargs)
        target_shape = tuple(int(d) for d in target_shape)
        if sum(d == -1 for d in target_shape) > 1 or any(d < -1 or d == 0 for d in target_shape):
            raise ValueError(
                "`target_shape` must hold positive sizes and at most one -1. "
                f"Received: target_shape={target_shape}."
            )
        self.target_shape = target_shape

    def build(self, input_shape):
        known = input_shape[1:]
        if all(d is not None for d in known):
            size, fixed = math.prod(known), math.prod(d for d in self.target_shape if d != -1)
            if (-1 in self.target_shape and size % fixed) or (-1 not in self.target_shape and size != fixed):
                raise ShapeError(
                    f"Layer {self.name!r} (Reshape) cannot reshape an input of shape "
                    f"{tuple(input_shape)} ({size} values per sample) to target_shape "
                    f"{self.target_shape}."
                )

    def call(self, inputs):
        try:
            return inputs.reshape((inputs.shape[0],) + self.target_shape)
        except RuntimeError as error:  # free on the happy path; names the layer when it fails
            raise ShapeError(
                f"Layer {self.name!r} (Reshape) cannot reshape an input of shape "
                f"{tuple(inputs.shape)} to target_shape {self.target_shape}."
            ) from error

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}


@register("Permute")
class Permute(Layer):
    """Permutes the non-batch axes; `dims` is 1-indexed, e.g. `(2, 1)` swaps the two axes."""

    def __init__(self, dims: Sequence[int], **kwargs: Any):
        super().__init__(**kwargs)
        dims = tuple(int(d) for d in dims)
        if sorted(dims) != list(range(1, len(dims) + 1)):
            raise ValueError(
                "`dims` must be a permutation of 1..N (the batch axis 0 is not included). "
                f"Received: dims={dims}."
            )
        self.dims = dims

    def call(self, inputs):
        return inputs.permute((0,) + self.dims)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + tuple(input_shape[d] for d in self.dims)

    def get_config(self):
        return {**super().get_config(), "dims": list(self.dims)}


@register("RepeatVector")
class RepeatVector(Layer):
    """Repeats a `(batch, features)` input n times: `(batch, n, features)`."""

    def __init__(self, n: int, **kwargs: Any):
        super().__init__(**kwargs)
        if not isinstance(n, int) or n <= 0:
            raise ValueError(f"`n` must be a positive integer. Received: n={n!r}.")
        self.n = n

    def build(self, input_shape):
        check_input_rank(self, input_shape, rank=2, description="(batch, features)")

    def call(self, inputs):
        return inputs.unsqueeze(1).expand(-1, self.n, -1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n, input_shape[1])

    def get_config(self):
        return {**super().get_config(), "n": self.n}


