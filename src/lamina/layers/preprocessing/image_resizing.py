"""Resizing and CenterCrop: the always-on image size layers (active in training and inference)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from lamina._registry import register
from lamina.layers.preprocessing._image import (
    RESIZE_MODES,
    _BaseImageLayer,
    check_interpolation,
    check_positive_size,
    pad_to_aspect_box,
    resize,
    smart_resize,
)


@register("Resizing")
class Resizing(_BaseImageLayer):
    """Resizes images to `(height, width)` with `F.interpolate` (half-pixel centres, as Keras).

    Args:
        height, width: the output size in pixels.
        interpolation: 'bilinear', 'nearest', 'bicubic' or 'area'.
        crop_to_aspect_ratio: first crop the largest centred window of the target aspect ratio,
            so the image is not distorted.
        pad_to_aspect_ratio: first pad the short side evenly with `fill_value` to the target
            aspect ratio, so the image is not distorted.
        fill_mode: how padded areas are filled; only 'constant' (as Keras).
        fill_value: the padding value.
        antialias: low-pass filter when downsampling ('bilinear' and 'bicubic').
        data_format: 'channels_last' (default) or 'channels_first'.

    Integer images come back rounded and clipped to their integer dtype (as Keras); float images
    in the layer's dtype.

    Input shape: `(N, H, W, C)` or `(H, W, C)` (channels_last).
    Output shape: `(N, height, width, C)` or `(height, width, C)`.

    >>> Resizing(2, 3)(torch.zeros(4, 8, 8, 3)).shape
    torch.Size([4, 2, 3, 3])
    """

    def __init__(self, height: int, width: int, interpolation: str = "bilinear",
                 crop_to_aspect_ratio: bool = False, pad_to_aspect_ratio: bool = False,
                 fill_mode: str = "constant", fill_value: float = 0.0, antialias: bool = False,
                 data_format: str | None = None, **kwargs: Any):
        super().__init__(data_format=data_format, **kwargs)
        self.height = check_positive_size("height", height)
        self.width = check_positive_size("width", width)
        self.interpolation = check_interpolation(interpolation, tuple(RESIZE_MODES))
        if crop_to_aspect_ratio and pad_to_aspect_ratio:
            raise ValueError(
                "Only one of `crop_to_aspect_ratio` and `pad_to_aspect_ratio` can be True. "
                "Received: crop_to_aspect_ratio=True, pad_to_aspect_ratio=True."
            )
        if fill_mode != "constant":
            raise ValueError(
                "`fill_mode` must be 'constant' (the only mode Resizing pads with). "
                f"Received: fill_mode={fill_mode!r}."
            )
        self.crop_to_aspect_ratio = bool(crop_to_aspect_ratio)
        self.pad_to_aspect_ratio = bool(pad_to_aspect_ratio)
        self.fill_mode = fill_mode
        self.fill_value = float(fill_value)
        self.antialias = bool(antialias)

    def call(self, inputs):
        input_dtype = inputs.dtype
        images, single = self._batch(inputs)
        size = (self.height, self.width)
        if self.crop_to_aspect_ratio:
            outputs = smart_resize(images, size, self.interpolation, self.antialias)
        else:
            if self.pad_to_aspect_ratio:
                images = self._pad(images)
            outputs = resize(images, size, self.interpolation, self.antialias)
        if not input_dtype.is_floating_point:
            info = torch.iinfo(input_dtype)
            outputs = outputs.round().clamp(info.min, info.max).to(input_dtype)
        return self._unbatch(outputs, single)

    def _pad(self, images):
        height, width = images.shape[-2:]
        top, left, padded_height, padded_width = pad_to_aspect_box(height, width, self.height,
                                                                   self.width)
        padding = (left, padded_width - width - left, top, padded_height - height - top)
        return F.pad(images, padding, value=self.fill_value)

    def compute_output_shape(self, input_shape):
        return self._output_shape_for(input_shape, self.height, self.width)

    def get_config(self):
        return {
            **super().get_config(), "height": self.height, "width": self.width,
            "interpolation": self.interpolation, "crop_to_aspect_ratio": self.crop_to_aspect_ratio,
            "pad_to_aspect_ratio": self.pad_to_aspect_ratio, "fill_mode": self.fill_mode,
            "fill_value": self.fill_value, "antialias": self.antialias,
        }


@register("CenterCrop")
class CenterCrop(_BaseImageLayer):
    """Crops the central `(height, width)` window of each image.

    As Keras: the window starts at `(H - height) // 2, (W - width) // 2`; an image smaller than
    the target on either side is instead cropped to the largest centred window of the target
    aspect ratio and resized (bilinear) to `(height, width)`.

    Input shape: `(N, H, W, C)` or `(H, W, C)` (channels_last).
    Output shape: `(N, height, width, C)` or `(height, width, C)`.

    >>> CenterCrop(2, 2)(torch.arange(16.).reshape(4, 4, 1))[..., 0]
    tensor([[ 5.,  6.],
            [ 9., 10.]])
    """

    def __init__(self, height: int, width: int, data_format: str | None = None, **kwargs: Any):
        super().__init__(data_format=data_format, **kwargs)
        self.height = check_positive_size("height", height)
        self.width = check_positive_size("width", width)

    def call(self, inputs):
        images, single = self._batch(inputs)
        height, width = images.shape[-2:]
        if height >= self.height and width >= self.width:
            top, left = (height - self.height) // 2, (width - self.width) // 2
            outputs = images[..., top:top + self.height, left:left + self.width]
        else:
            outputs = smart_resize(images, (self.height, self.width))
        return self._unbatch(outputs, single)

    def compute_output_shape(self, input_shape):
        return self._output_shape_for(input_shape, self.height, self.width)

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width}


__all__ = ["CenterCrop", "Resizing"]
