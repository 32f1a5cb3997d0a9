"""Keras's image ops (`keras.ops.image`) on torch: resizing, colour spaces, padding, cropping and
patches, on batched or single images, channels_last by default."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from lamina import config
from lamina.ops._op import public_names, floating, op, to_tensor

Tensor = torch.Tensor


def _image_op(function: Any) -> Any:
    return op(function, group="image")


def _channels_first(images: Any, data_format: str | None) -> tuple[Tensor, bool, bool]:
    """(N, C, H, W) from a batch or one image, with how to undo it."""
    x = to_tensor(images)
    if x.ndim not in (3, 4):
        raise ValueError(f"Images must have shape (height, width, channels) or (batch, height, "
                         f"width, channels). Received shape {tuple(x.shape)}.")
    single = x.ndim == 3
    if single:
        x = x.unsqueeze(0)
    last = config.standardize_data_format(data_format) == "channels_last"
    if last:
        x = x.permute(0, 3, 1, 2)
    return x, single, last


def _restore(x: Tensor, single: bool, last: bool) -> Tensor:
    if last:
        x = x.permute(0, 2, 3, 1)
    return x[0] if single else x


_INTERPOLATION = {"nearest": "nearest-exact", "bilinear": "bilinear", "bicubic": "bicubic",
                  "area": "area"}


@_image_op
def resize(images: Any, size: Any, interpolation: str = "bilinear", antialias: bool = False,
           crop_to_aspect_ratio: bool = False, pad_to_aspect_ratio: bool = False,
           fill_mode: str = "constant", fill_value: float = 0.0,
           data_format: str | None = None) -> Tensor:
    """Resizes images to `size` = (height, width) with half-pixel centres, as Keras and
    TensorFlow do."""
    if interpolation not in _INTERPOLATION:
        raise ValueError(f"`interpolation` must be one of {list(_INTERPOLATION)}. Received: "
                         f"interpolation={interpolation!r}.")
    x, single, last = _channels_first(images, data_format)
    dtype = x.dtype
    x = floating(x)
    height, width = (int(s) for s in size)
    if crop_to_aspect_ratio:
        h, w = x.shape[-2:]
        crop_h, crop_w = min(h, int(w * height / width)), min(w, int(h * width / height))
        top, left = (h - crop_h) // 2, (w - crop_w) // 2
        x = x[..., top:top + crop_h, left:left + crop_w]
    elif pad_to_aspect_ratio:
        h, w = x.shape[-2:]
        pad_h, pad_w = max(h, int(w * height / width)) - h, max(w, int(h * width / height)) - w
        x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2),
                  value=fill_value)
    mode = _INTERPOLATION[interpolation]
    kwargs = {"antialias": antialias} if mode in ("bilinear", "bicubic") else {}
    if mode in ("bilinear", "bicubic"):
        kwargs["align_corners"] = False
    out = F.interpolate(x, size=(height, width), mode=mode, **kwargs)
    if not dtype.is_floating_point:
        out = torch.round(out).to(dtype)
    return _restore(out, single, last)


@_image_op
def rgb_to_grayscale(images: Any, data_format: str | None = None) -> Tensor:
    """Luma `0.2989 R + 0.5870 G + 0.1140 B`, one channel."""
    x, single, last = _channels_first(images, data_format)
    weights = torch.tensor([0.2989, 0.5870, 0.1140], dtype=floating(x).dtype)
    gray = torch.einsum("nchw,c->nhw", floating(x), weights)[:, None]
    return _restore(gray.to(x.dtype) if x.dtype.is_floating_point else gray, single, last)


@_image_op
def rgb_to_hsv(images: Any, data_format: str | None = None) -> Tensor:
    """RGB in [0, 1] to HSV in [0, 1] (hue as a fraction of the circle)."""
    x, single, last = _channels_first(images, data_format)
    x = floating(x)
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    value = torch.amax(x[:, :3], dim=1)
    delta = value - torch.amin(x[:, :3], dim=1)
    saturation = torch.where(value > 0, delta / torch.where(value > 0, value, 1), 0)
    safe = torch.where(delta > 0, delta, 1)
    hue = torch.where(value == r, (g - b) / safe,
                      torch.where(value == g, 2 + (b - r) / safe, 4 + (r - g) / safe))
    hue = torch.where(delta > 0, torch.remainder(hue / 6, 1.0), 0)
    return _restore(torch.stack([hue, saturation, value], dim=1), single, last)


@_image_op
def hsv_to_rgb(images: Any, data_format: str | None = None) -> Tensor:
    """HSV in [0, 1] to RGB in [0, 1]."""
    x, single, last = _channels_first(images, data_format)
    x = floating(x)
    h, s, v = x[:, 0], x[:, 1], x[:, 2]

    def channel(n: float) -> Tensor:
        k = torch.remainder(n + h * 6, 6)
        return v - v * s * torch.clamp(torch.minimum(k, 4 - k), 0, 1)

    return _restore(torch.stack([channel(5), channel(3), channel(1)], dim=1), single, last)


def _sides(first: Any, second: Any, target: Any, size: int, name: str) -> tuple[int, int]:
    given = [v is not None for v in (first, second, target)]
    if sum(given) != 2:
        raise ValueError(f"Give exactly two of the {name} arguments (the two sides and the "
                         f"target size). Received: {first!r}, {second!r}, target={target!r}.")
    if target is None:
        return int(first), int(second)
    if first is None:
        return abs(int(target) - size) - int(second), int(second)
    return int(first), abs(int(target) - size) - int(first)


@_image_op
def pad_images(images: Any, top_padding: int | None = None, left_padding: int | None = None,
               bottom_padding: int | None = None, right_padding: int | None = None,
               target_height: int | None = None, target_width: int | None = None,
               data_format: str | None = None) -> Tensor:
    """Zero-pads images; give two of (top, bottom, target_height) and two of (left, right,
    target_width)."""
    x, single, last = _channels_first(images, data_format)
    top, bottom = _sides(top_padding, bottom_padding, target_height, x.shape[-2], "height")
    left, right = _sides(left_padding, right_padding, target_width, x.shape[-1], "width")
    if min(top, bottom, left, right) < 0:
        raise ValueError(f"The target size is smaller than the images {tuple(x.shape[-2:])} "
                         "plus the given padding.")
    return _restore(F.pad(x, (left, right, top, bottom)), single, last)


@_image_op
def crop_images(images: Any, top_cropping: int | None = None, left_cropping: int | None = None,
                bottom_cropping: int | None = None, right_cropping: int | None = None,
                target_height: int | None = None, target_width: int | None = None,
                data_format: str | None = None) -> Tensor:
    """Crops images; give two of (top, bottom, target_height) and two of (left, right,
    target_width)."""
    x, single, last = _channels_first(images, data_format)
    top, bottom = _sides(top_cropping, bottom_cropping, target_height, x.shape[-2], "height")
    left, right = _sides(left_cropping, right_cropping, target_width, x.shape[-1], "width")
    h, w = x.shape[-2:]
    if top + bottom >= h or left + right >= w or min(top, bottom, left, right) < 0:
        raise ValueError(f"Cropping ({top}, {bottom}, {left}, {right}) leaves nothing of images "
                         f"of size {(h, w)}.")
    return _restore(x[..., top:h - bottom, left:w - right], single, last)


@_image_op
def extract_patches(images: Any, size: Any, strides: Any = None, dilation_rate: int = 1,
                    padding: str = "valid", data_format: str | None = None) -> Tensor:
    """Patches of `size` flattened into the channel axis: (batch, rows, cols, ph * pw * c)
    channels_last, patch-major then channel, as TensorFlow's extract_patches."""
    from lamina.ops.nn import _same_pads

    x, single, last = _channels_first(images, data_format)
    size = (size, size) if isinstance(size, int) else tuple(size)
    strides = size if strides is None else ((strides, strides) if isinstance(strides, int)
                                            else tuple(strides))
    dilation = (dilation_rate, dilation_rate)
    if padding.lower() == "same":
        x = F.pad(x, _same_pads(x.shape[2:], size, strides, dilation))
    batch, channels, h, w = x.shape
    columns = F.unfold(x, size, dilation=dilation, stride=strides)  # (n, c * ph * pw, L)
    rows = (h - (size[0] - 1) * dilation[0] - 1) // strides[0] + 1
    cols = (w - (size[1] - 1) * dilation[1] - 1) // strides[1] + 1
    patches = columns.reshape(batch, channels, size[0] * size[1], rows, cols)
    patches = patches.permute(0, 2, 1, 3, 4).reshape(batch, -1, rows, cols)  # patch-major
    return _restore(patches, single, last)


__all__ = public_names(globals(), __name__)
