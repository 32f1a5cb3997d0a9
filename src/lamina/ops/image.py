"""Keras's image ops (`keras.ops.image`) on torch: resizing, colour spaces, padding, cropping and
patches, on batched or single images, channels_last by default."""

from __future__ import annotations

import itertools
from typing import Any

import torch
import torch.nn.functional as F

from lamina import config
from lamina.ops._op import any_symbolic, floating, op, public_names, to_tensor

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
    weights = torch.tensor([0.2989, 0.5870, 0.1140], dtype=floating(x).dtype, device=x.device)
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



def _mirror(index: Tensor, size: int) -> Tensor:
    s = max(size - 1, 1)  # half-wavelength of the triangular wave
    return torch.abs(torch.remainder(index + s, 2 * s) - s)


_INDEX_FIXERS = {
    "constant": lambda index, size: torch.clamp(index, 0, size - 1),
    "nearest": lambda index, size: torch.clamp(index, 0, size - 1),
    "wrap": lambda index, size: torch.remainder(index, size),
    "mirror": _mirror,
    "reflect": lambda index, size: torch.div(_mirror(2 * index + 1, 2 * size + 1) - 1, 2,
                                             rounding_mode="floor"),
}


@_image_op
def map_coordinates(inputs: Any, coordinates: Any, order: int, fill_mode: str = "constant",
                    fill_value: float = 0) -> Tensor:
    """`inputs` sampled at `coordinates` (one array per input axis) by nearest (order 0) or
    linear (order 1) interpolation; outside points follow `fill_mode` ('constant', 'nearest',
    'wrap', 'mirror', 'reflect'), SciPy's `ndimage.map_coordinates` meanings."""
    x = to_tensor(inputs)
    coordinates = [floating(to_tensor(c, device=x.device)) for c in coordinates]
    if len(coordinates) != x.ndim:
        raise ValueError(f"`coordinates` needs one array per axis of `inputs` ({x.ndim}). "
                         f"Received {len(coordinates)}.")
    if fill_mode not in _INDEX_FIXERS:
        raise ValueError(f"`fill_mode` must be one of {list(_INDEX_FIXERS)}. Received: "
                         f"fill_mode={fill_mode!r}.")
    if order not in (0, 1):
        raise ValueError(f"`order` must be 0 (nearest) or 1 (linear). Received: order={order!r}.")
    per_axis = []
    for coordinate, size in zip(coordinates, x.shape):
        if order == 0:
            nodes = [(torch.round(coordinate).long(), None)]
        else:
            lower = torch.floor(coordinate)
            upper_weight = coordinate - lower
            nodes = [(lower.long(), 1 - upper_weight), (lower.long() + 1, upper_weight)]
        per_axis.append([(_INDEX_FIXERS[fill_mode](i, size), (i >= 0) & (i < size), w)
                         for i, w in nodes])
    values = floating(x)
    result = 0
    for corner in itertools.product(*per_axis):
        indices, valid, weights = zip(*corner)
        contribution = values[indices]
        if fill_mode == "constant":
            inside = valid[0]
            for v in valid[1:]:
                inside = inside & v
            contribution = torch.where(inside, contribution,
                                       torch.tensor(float(fill_value), dtype=values.dtype,
                                                    device=values.device))
        for w in weights:
            if w is not None:
                contribution = contribution * w
        result = result + contribution
    if not x.dtype.is_floating_point:
        return torch.round(result).to(x.dtype)
    return result.to(x.dtype)


def _check_transform_arguments(interpolation: str, fill_mode: str) -> int:
    orders = {"nearest": 0, "bilinear": 1}
    if interpolation not in orders:
        raise ValueError(f"`interpolation` must be 'nearest' or 'bilinear'. Received: "
                         f"interpolation={interpolation!r}.")
    if fill_mode not in _INDEX_FIXERS:
        raise ValueError(f"`fill_mode` must be one of {list(_INDEX_FIXERS)}. Received: "
                         f"fill_mode={fill_mode!r}.")
    return orders[interpolation]


def _projective(images: Tensor, transforms: Tensor, order: int, fill_mode: str,
                fill_value: float) -> Tensor:
    """Sample NHWC `images` where each output pixel (x, y) maps to the input point
    ((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k), k = c0 x + c1 y + 1."""
    batch, height, width, channels = images.shape
    device = images.device
    y, x = torch.meshgrid(torch.arange(height, dtype=transforms.dtype, device=device),
                          torch.arange(width, dtype=transforms.dtype, device=device),
                          indexing="ij")
    outputs = []
    for image, t in zip(images, transforms):
        k = t[6] * x + t[7] * y + 1
        x_in = (t[0] * x + t[1] * y + t[2]) / k
        y_in = (t[3] * x + t[4] * y + t[5]) / k
        channel = torch.arange(channels, dtype=transforms.dtype, device=device)
        coordinates = [y_in[..., None].expand(-1, -1, channels),
                       x_in[..., None].expand(-1, -1, channels),
                       channel.expand(height, width, channels)]
        outputs.append(map_coordinates(image, coordinates, order, fill_mode, fill_value))
    return torch.stack(outputs)


@_image_op
def affine_transform(images: Any, transform: Any, interpolation: str = "bilinear",
                     fill_mode: str = "constant", fill_value: float = 0,
                     data_format: str | None = None) -> Tensor:
    """Applies projective transforms `[a0, a1, a2, b0, b1, b2, c0, c1]` (one, or one per image)
    mapping output points to input points, as TensorFlow's `ImageProjectiveTransformV3`."""
    order = _check_transform_arguments(interpolation, fill_mode)
    x, single, last = _channels_first(images, data_format)
    transforms = to_tensor(transform, torch.float64, x.device)
    if transforms.ndim == 1:
        transforms = transforms[None].expand(x.shape[0], -1)
    out = _projective(x.permute(0, 2, 3, 1), transforms, order, fill_mode, fill_value)
    return _restore(out.permute(0, 3, 1, 2), single, last)


def _homography(start: Tensor, end: Tensor) -> Tensor:
    """The 8 transform parameters mapping `end` points back to `start` points (per batch)."""
    batch = start.shape[0]
    a = torch.zeros(batch, 8, 8, dtype=torch.float64, device=start.device)
    b = torch.zeros(batch, 8, dtype=torch.float64, device=start.device)
    for i in range(4):
        xs, ys = start[:, i, 0], start[:, i, 1]
        xe, ye = end[:, i, 0], end[:, i, 1]
        a[:, 2 * i] = torch.stack([xe, ye, torch.ones_like(xe), torch.zeros_like(xe),
                                   torch.zeros_like(xe), torch.zeros_like(xe), -xe * xs,
                                   -ye * xs], -1)
        a[:, 2 * i + 1] = torch.stack([torch.zeros_like(xe), torch.zeros_like(xe),
                                       torch.zeros_like(xe), xe, ye, torch.ones_like(xe),
                                       -xe * ys, -ye * ys], -1)
        b[:, 2 * i], b[:, 2 * i + 1] = xs, ys
    return torch.linalg.solve(a, b)


@_image_op
def perspective_transform(images: Any, start_points: Any, end_points: Any,
                          interpolation: str = "bilinear", fill_value: float = 0,
                          data_format: str | None = None) -> Tensor:
    """Warps images so that the four `start_points` (x, y) land on `end_points`."""
    order = _check_transform_arguments(interpolation, "constant")
    x, single, last = _channels_first(images, data_format)
    start = to_tensor(start_points, torch.float64, x.device)
    end = to_tensor(end_points, torch.float64, x.device)
    if start.ndim == 2:
        start, end = start[None], end[None]
    transforms = _homography(start, end)
    if transforms.shape[0] == 1:
        transforms = transforms.expand(x.shape[0], -1)
    out = _projective(x.permute(0, 2, 3, 1), transforms, order, "constant", fill_value)
    return _restore(out.permute(0, 3, 1, 2), single, last)


def _gaussian_kernel(size: int, sigma: float, like: Tensor) -> Tensor:
    x = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


@_image_op
def gaussian_blur(images: Any, kernel_size: Any = (3, 3), sigma: Any = (1.0, 1.0),
                  data_format: str | None = None) -> Tensor:
    """Blurs each channel with a normalized Gaussian kernel (zero padding, same size)."""
    x, single, last = _channels_first(images, data_format)
    x = floating(x)
    (kh, kw), (sh, sw) = tuple(kernel_size), tuple(sigma)
    kernel = torch.outer(_gaussian_kernel(kh, sh, x), _gaussian_kernel(kw, sw, x))
    channels = x.shape[1]
    out = F.conv2d(F.pad(x, (kw // 2, (kw - 1) // 2, kh // 2, (kh - 1) // 2)),
                   kernel.expand(channels, 1, kh, kw), groups=channels)
    return _restore(out, single, last)


@_image_op
def sobel_edges(images: Any, data_format: str | None = None) -> Tensor:
    """Sobel gradients per channel, stacked last as (dy, dx): (..., channels, 2)."""
    x, single, last = _channels_first(images, data_format)
    x = floating(x)
    channels = x.shape[1]
    sobel_x = torch.tensor([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=x.dtype, device=x.device)
    padded = F.pad(x, (1, 1, 1, 1))
    dx = F.conv2d(padded, sobel_x.expand(channels, 1, 3, 3), groups=channels)
    dy = F.conv2d(padded, sobel_x.T.expand(channels, 1, 3, 3), groups=channels)
    edges = torch.stack([dy, dx], dim=-1)  # (N, C, H, W, 2)
    if last:
        edges = edges.permute(0, 2, 3, 1, 4)
    return edges[0] if single else edges


@_image_op
def ssim(image1: Any, image2: Any, max_val: float = 1.0, filter_size: int = 11,
         filter_sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03,
         data_format: str | None = None) -> Tensor:
    """Structural similarity per image (mean over the 'valid' Gaussian-windowed map and the
    channels), Wang et al. 2004."""
    a, single, _ = _channels_first(image1, data_format)
    b, _, _ = _channels_first(image2, data_format)
    a, b = floating(a), floating(b).to(floating(a).dtype)
    window = _gaussian_kernel(filter_size, filter_sigma, a)
    kernel = torch.outer(window, window).expand(a.shape[1], 1, filter_size, filter_size)

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(t, kernel, groups=a.shape[1])

    c1, c2 = (k1 * max_val) ** 2, (k2 * max_val) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    covariance = blur(a * b) - mu_a * mu_b
    luminance = (2 * mu_a * mu_b + c1) / (mu_a ** 2 + mu_b ** 2 + c1)
    contrast = (2 * covariance + c2) / (var_a + var_b + c2)
    values = (luminance * contrast).mean(dim=(1, 2, 3))
    return values[0] if single else values


@_image_op
def extract_patches_3d(volumes: Any, size: Any, strides: Any = None, dilation_rate: Any = 1,
                       padding: str = "valid", data_format: str | None = None) -> Tensor:
    """Patches of `size` (d, h, w) from (batch, D, H, W, C) volumes, flattened patch-major into
    the channel axis: (batch, d', h', w', d * h * w * C)."""
    from lamina.ops.nn import _same_pads

    x = to_tensor(volumes)
    single = x.ndim == 4
    if single:
        x = x[None]
    last = config.standardize_data_format(data_format) == "channels_last"
    if not last:
        x = x.permute(0, 2, 3, 4, 1)
    size = (size,) * 3 if isinstance(size, int) else tuple(size)
    strides = size if strides is None else ((strides,) * 3 if isinstance(strides, int)
                                            else tuple(strides))
    dilation = (dilation_rate,) * 3 if isinstance(dilation_rate, int) else tuple(dilation_rate)
    if padding.lower() == "same":
        pads = _same_pads(x.shape[1:4], size, strides, dilation)
        x = F.pad(x, [0, 0] + pads)
    patches = x
    for axis in range(3):
        span = (size[axis] - 1) * dilation[axis] + 1
        patches = patches.unfold(1 + axis, span, strides[axis])[..., ::dilation[axis]]
    # (batch, d', h', w', C, pd, ph, pw) -> patch-major, channel last
    patches = patches.permute(0, 1, 2, 3, 5, 6, 7, 4).flatten(4)
    if not last:
        patches = patches.permute(0, 4, 1, 2, 3)
    return patches[0] if single else patches



def elastic_transform(images: Any, alpha: float = 20.0, sigma: float = 5.0,
                      interpolation: str = "bilinear", fill_mode: str = "reflect",
                      fill_value: float = 0.0, seed: Any = None,
                      data_format: str | None = None) -> Tensor:
    """Elastic distortion (Simard et al. 2003): each pixel moves by `alpha` times a random
    normal field (stddev `sigma`) smoothed by a Gaussian of `sigma`. Random, so never part of a
    saved graph; `seed` as in `lamina.random`."""
    from lamina import random

    order = _check_transform_arguments(interpolation, fill_mode)
    if any_symbolic(images):
        raise TypeError("elastic_transform draws random numbers, so a saved model never has it "
                        "in its graph: call it inside a custom Layer's call().")
    x, single, last = _channels_first(images, data_format)
    values = floating(x)
    batch, channels, height, width = values.shape
    if isinstance(seed, int) and not isinstance(seed, bool):
        seed = random.SeedGenerator(seed)  # two different fields from one int
    size = int(6 * sigma) | 1
    fields = [gaussian_blur(random.normal((batch, 1, height, width), stddev=sigma,
                                          dtype=values.dtype, seed=seed).to(values.device),
                            (size, size), (sigma, sigma), data_format="channels_first")[:, 0]
              for _ in range(2)]
    rows, cols = torch.meshgrid(torch.arange(height, dtype=values.dtype, device=values.device),
                                torch.arange(width, dtype=values.dtype, device=values.device),
                                indexing="ij")
    channel = torch.arange(channels, dtype=values.dtype, device=values.device)
    outputs = []
    for image, dx, dy in zip(values.permute(0, 2, 3, 1), fields[0], fields[1]):
        coordinates = [(rows + alpha * dy)[..., None].expand(-1, -1, channels),
                       (cols + alpha * dx)[..., None].expand(-1, -1, channels),
                       channel.expand(height, width, channels)]
        outputs.append(map_coordinates(image, coordinates, order, fill_mode, fill_value))
    out = torch.stack(outputs).permute(0, 3, 1, 2).to(x.dtype)
    return _restore(out, single, last)


__all__ = public_names(globals(), __name__)
