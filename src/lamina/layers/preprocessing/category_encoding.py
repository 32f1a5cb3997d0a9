"""CategoryEncoding: integer categories -> one-hot, multi-hot or count vectors."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lamina._registry import register
from lamina.layers.layer import Layer

Tensor = torch.Tensor

ENCODING_MODES = ("one_hot", "multi_hot", "count")


def encode_categorical(indices: Tensor, output_mode: str, depth: int, dtype: torch.dtype,
                       count_weights: Tensor | None = None) -> Tensor:
    """Encode integer indices in `[0, depth)` as Keras's `encode_categorical_inputs` does.

    'one_hot' encodes every element (a trailing axis of size 1 is replaced by the encoding);
    'multi_hot' and 'count' treat the last axis as one sample's bag of indices:
    `(..., k) -> (..., depth)`, with `count_weights` (the shape of `indices`) summed in 'count'.
    """
    indices = indices.long()
    if output_mode == "one_hot":
        if indices.dim() > 1 and indices.shape[-1] == 1:
            indices = indices.squeeze(-1)
        return F.one_hot(indices, depth).to(dtype)
    scalar = indices.dim() == 0
    if scalar:
        indices = indices.unsqueeze(0)
    if count_weights is None:
        weights = torch.ones(indices.shape, dtype=dtype, device=indices.device)
    else:
        weights = count_weights.to(dtype).reshape(indices.shape)
    outputs = torch.zeros(indices.shape[:-1] + (depth,), dtype=dtype, device=indices.device)
    outputs = outputs.scatter_add(-1, indices, weights)
    if output_mode == "multi_hot":
        outputs = (outputs > 0).to(dtype)
    return outputs.squeeze(0) if scalar else outputs


def encoded_shape(input_shape: tuple, output_mode: str, depth: int) -> tuple:
    """The output shape of `encode_categorical` for an input shape."""
    input_shape = tuple(input_shape)
    if not input_shape:
        return (depth,)
    if output_mode == "one_hot":
        if len(input_shape) > 1 and input_shape[-1] == 1:
            return input_shape[:-1] + (depth,)
        return input_shape + (depth,)
    return input_shape[:-1] + (depth,)


@register("CategoryEncoding")
class CategoryEncoding(Layer):
    """Encodes integer categories in `[0, num_tokens)` as vectors of length `num_tokens`.

    Args:
        num_tokens: the number of categories.
        output_mode: 'one_hot' (each element; a trailing axis of size 1 is replaced), 'multi_hot'
            (1 for each category present in a sample, the last axis) or 'count' (occurrences,
            weighted by `count_weights` when given to the call).
        sparse: must be False (torch sparse outputs are not supported here).

    Input shape: integers `(batch,)`, `(batch, 1)` or `(batch, k)`.
    Output shape: `(batch, num_tokens)` (or `(batch, k, num_tokens)` for 'one_hot' of
    `(batch, k)`).

    >>> CategoryEncoding(num_tokens=4, output_mode="multi_hot")(torch.tensor([[0, 1], [3, 3]]))
    tensor([[1., 1., 0., 0.],
            [0., 0., 0., 1.]])
    """

    def __init__(self, num_tokens: int | None = None, output_mode: str = "multi_hot",
                 sparse: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        output_mode = "multi_hot" if output_mode == "binary" else output_mode
        if output_mode not in ENCODING_MODES:
            raise ValueError(
                f"`output_mode` must be one of {', '.join(repr(m) for m in ENCODING_MODES)}. "
                f"Received: output_mode={output_mode!r}."
            )
        if num_tokens is None:
            raise ValueError(
                "`num_tokens` must be set: the number of categories. If it is not known "
                "beforehand, use IntegerLookup or TextVectorization to learn a vocabulary."
            )
        if isinstance(num_tokens, bool) or not isinstance(num_tokens, int) or num_tokens < 1:
            raise ValueError(
                f"`num_tokens` must be an integer >= 1. Received: num_tokens={num_tokens!r}."
            )
        if sparse:
            raise ValueError(
                "`sparse=True` is not supported: torch sparse outputs are not produced here. "
                "Use the dense output."
            )
        self.num_tokens = num_tokens
        self.output_mode = output_mode
        self.sparse = False

    def call(self, inputs, count_weights=None):
        if not isinstance(inputs, Tensor):
            inputs = torch.as_tensor(np.asarray(inputs))
        if inputs.is_floating_point():
            inputs = inputs.long()
        if count_weights is not None:
            if self.output_mode != "count":
                raise ValueError(
                    "`count_weights` only applies to output_mode='count'. Received "
                    f"output_mode={self.output_mode!r}."
                )
            if not isinstance(count_weights, Tensor):
                count_weights = torch.as_tensor(np.asarray(count_weights))
            if count_weights.shape != inputs.shape:
                raise ValueError(
                    f"`count_weights` must have the shape of the inputs, {tuple(inputs.shape)}. "
                    f"Received shape {tuple(count_weights.shape)}."
                )
        # Out-of-range categories would silently be dropped or crash the device kernel.
        if bool(((inputs < 0) | (inputs >= self.num_tokens)).any()):
            raise ValueError(
                f"Layer {self.name!r} (CategoryEncoding) takes integers in [0, {self.num_tokens}) "
                f"(num_tokens={self.num_tokens}). Received values from {int(inputs.min())} to "
                f"{int(inputs.max())}."
            )
        return encode_categorical(inputs, self.output_mode, self.num_tokens, self._dtype,
                                  count_weights)

    def compute_output_shape(self, input_shape):
        return encoded_shape(input_shape, self.output_mode, self.num_tokens)

    def get_config(self):
        return {**super().get_config(), "num_tokens": self.num_tokens,
                "output_mode": self.output_mode, "sparse": self.sparse}


__all__ = ["CategoryEncoding"]
