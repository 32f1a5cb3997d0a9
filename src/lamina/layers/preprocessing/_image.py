"""What the image preprocessing layers share: the data-format and batched/unbatched handling of
`_BaseImageLayer`, and the resize and crop-to-aspect-ratio arithmetic of Keras's `smart_resize`.

Images are `(N, H, W, C)` / `(H, W, C)` in channels_last (Keras's default) or `(N, C, H, W)` /
`(C, H, W)` in channels_first. Torch's kernels (`F.interpolate`, `F.grid_sample`) take NCHW; a
channels_last batch becomes NCHW by `permute(0, 3, 1, 2)`, a zero-copy view.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lamina import config
from lamina.errors import ShapeError
from lamina.layers.layer import Layer

Tensor = torch.Tensor

# Keras interpolation name -> torch `F.interpolate` mode. TF's "nearest" samples at half-pixel
# centres, which is torch's "nearest-exact" (plain "nearest" is shifted by half a pixel).
RESIZE_MODES = {"bilinear": "bilinear", "nearest": "nearest-exact", "bicubic": "bicubic",
                "area": "area"}


def check_positive_size(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(
            f"`{name}` must be a positive integer (a size in pixels). Received: {name}={value!r}."
        )
    return value


def check_interpolation(value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        hint = (" Lanczos filters are not available in torch; use 'bicubic' instead."
                if isinstance(value, str) and value.startswith("lanczos") else "")
        raise ValueError(
            f"`interpolation` must be one of {', '.join(repr(a) for a in allowed)}. "
            f"Received: interpolation={value!r}.{hint}"
        )
    return value


def crop_to_aspect_box(height: int, width: int, target_height: int,
                       target_width: int) -> tuple[int, int, int, int]:
    """(top, left, crop_height, crop_width) of the largest centred window of the target's aspect
    ratio, rounded as Keras's `smart_resize` rounds it."""
    crop_height = max(min(height, int(width * target_height / target_width)), 1)
    crop_width = max(min(width, int(height * target_width / target_height)), 1)
    return (height - crop_height) // 2, (width - crop_width) // 2, crop_height, crop_width


def pad_to_aspect_box(height: int, width: int, target_height: int,
                      target_width: int) -> tuple[int, int, int, int]:
    """(top, left, padded_height, padded_width): the smallest canvas of the target's aspect ratio
    holding the image centred, as Keras's `pad_to_aspect_ratio`."""
    padded_height = max(height, int(width * target_height / target_width))
    padded_width = max(width, int(height * target_width / target_height))
    return (padded_height - height) // 2, (padded_width - width) // 2, padded_height, padded_width


def resize(images: Tensor, size: tuple[int, int], interpolation: str,
           antialias: bool = False) -> Tensor:
    """Resize an NCHW batch with `F.interpolate` under Keras's (TF's) half-pixel convention."""
    mode = RESIZE_MODES[interpolation]
    if mode in ("bilinear", "bicubic"):
        return F.interpolate(images, size=size, mode=mode, align_corners=False,
                             antialias=antialias)
    return F.interpolate(images, size=size, mode=mode)


def smart_resize(images: Tensor, size: tuple[int, int], interpolation: str = "bilinear",
                 antialias: bool = False) -> Tensor:
    """Crop the largest centred window of the target aspect ratio, then resize it (NCHW)."""
    top, left, crop_height, crop_width = crop_to_aspect_box(images.shape[-2], images.shape[-1],
                                                            *size)
    images = images[..., top:top + crop_height, left:left + crop_width]
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return resize(images, size, interpolation, antialias)


class _BaseImageLayer(Layer):
    """Base of the image preprocessing layers: `data_format`, rank-3 (one image) or rank-4 (a
    batch) inputs, outputs in the layer's float dtype (as Keras, integer images become floats).

    Subclasses compute on NCHW batches: `self._nchw(images)` and `self._from_nchw(outputs)`.
    """

    def __init__(self, data_format: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.data_format = config.standardize_data_format(data_format)

    def build(self, input_shape):
        self._check_rank(len(input_shape), input_shape)
        self._channels_last = self.data_format == "channels_last"

    def _check_rank(self, rank: int, shape: Any) -> None:
        if rank not in (3, 4):
            layout = "(H, W, C)" if self.data_format == "channels_last" else "(C, H, W)"
            raise ShapeError(
                f"Input 0 of layer {self.name!r} ({type(self).__name__}) is incompatible: expected "
                f"an image of rank 3 {layout} or a batch of rank 4 (N, {layout[1:]}, but received "
                f"an input of shape {tuple(shape)}. Add or remove a batch axis."
            )

    def _batch(self, inputs: Tensor) -> tuple[Tensor, bool]:
        """The input as a float NCHW batch, and whether it was a single image."""
        if not isinstance(inputs, Tensor):
            inputs = torch.as_tensor(np.asarray(inputs))
        if inputs.dtype != self._dtype:
            inputs = inputs.to(self._dtype)
        rank = inputs.dim()
        if rank == 3:
            inputs = inputs.unsqueeze(0)
        elif rank != 4:
            self._check_rank(rank, inputs.shape)
        if self._channels_last:
            inputs = inputs.permute(0, 3, 1, 2)
        return inputs, rank == 3

    def _unbatch(self, outputs: Tensor, single: bool) -> Tensor:
        if self._channels_last:
            outputs = outputs.permute(0, 2, 3, 1)
        return outputs.squeeze(0) if single else outputs

    def _spatial_axes(self, rank: int) -> tuple[int, int]:
        """The (height, width) axes of an input of this rank, in the layer's data format."""
        offset = rank - 3
        return (offset, offset + 1) if self.data_format == "channels_last" else \
            (offset + 1, offset + 2)

    def _output_shape_for(self, input_shape: Any, height: int, width: int) -> tuple:
        shape = list(input_shape)
        self._check_rank(len(shape), input_shape)
        height_axis, width_axis = self._spatial_axes(len(shape))
        shape[height_axis], shape[width_axis] = height, width
        return tuple(shape)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}
