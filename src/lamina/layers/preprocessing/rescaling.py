"""Rescaling: `outputs = inputs * scale + offset` (e.g. `Rescaling(1./255)` for 8-bit images)."""

from __future__ import annotations

from typing import Any, Sequence

import torch

from lamina._registry import register
from lamina.layers.layer import Layer


@register("Rescaling")
class Rescaling(Layer):
    """Multiplies inputs by `scale` and adds `offset`; integer images become floats.

    `Rescaling(1./255)` maps [0, 255] to [0, 1]; `Rescaling(1./127.5, offset=-1)` to [-1, 1].
    `scale` and `offset` may be per-channel sequences (broadcast over the last axis).
    """

    def __init__(self, scale: float | Sequence[float], offset: float | Sequence[float] = 0.0,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.scale = scale if isinstance(scale, (int, float)) else list(scale)
        self.offset = offset if isinstance(offset, (int, float)) else list(offset)
        self.supports_masking = True

    def build(self, input_shape):
        self.register_buffer("_scale", torch.as_tensor(self.scale, dtype=self._dtype), persistent=False)
        self.register_buffer("_offset", torch.as_tensor(self.offset, dtype=self._dtype), persistent=False)

    def call(self, inputs):
        if not inputs.dtype.is_floating_point:
            inputs = inputs.to(self._dtype)
        return inputs * self._scale + self._offset

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}
