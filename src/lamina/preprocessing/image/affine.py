"""Affine transforms and the other per-image augmentations, as `keras.preprocessing.image` has them.

One deliberate difference from Keras: horizontal shifts are horizontal (`tx`, from
`width_shift_range`) and vertical ones vertical (`ty`, `height_shift_range`), as documented;
Keras's code swaps them (keras-team/keras#17398) and centres non-square images off by the
aspect difference.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

FILL_MODES = ("constant", "nearest", "reflect", "wrap")


def apply_affine_transform(
    x: np.ndarray,
    theta: float = 0,
    tx: float = 0,
    ty: float = 0,
    shear: float = 0,
    zx: float = 1,
    zy: float = 1,
    row_axis: int = 1,
    col_axis: int = 2,
    channel_axis: int = 0,
    fill_mode: str = "nearest",
    cval: float = 0.0,
    order: int = 1,
) -> np.ndarray:
    """Rotate, shift, shear and zoom one 3D image about its centre.

    With `(u, v)` = (column, row) measured from the image centre, each output pixel samples the
    input at `M @ (u, v, 1)`, `M = R(theta) @ T(tx, ty) @ S(shear) @ Z(zx, zy)`:
    `R = [[cos, -sin, 0], [sin, cos, 0]]`, `T = [[1, 0, tx], [0, 1, ty]]`,
    `S = [[1, -sin(shear), 0], [0, cos(shear), 0]]`, `Z = [[zx, 0, 0], [0, zy, 0]]`.
    So a positive `theta` (degrees) turns the content counter-clockwise, `tx = k` moves it
    k pixels left and `ty = k` k pixels up, and `zx > 1` shrinks it horizontally.

    Args:
        row_axis, col_axis, channel_axis: the axes of `x` (channels first or last).
        fill_mode: how points outside the input are filled: 'constant' (kkkk|abcd|kkkk with
            k = `cval`), 'nearest' (aaaa|abcd|dddd), 'reflect' (dcba|abcd|dcba) or 'wrap'
            (abcd|abcd|abcd, as Keras documents; its code used scipy's overlapping 'wrap').
        order: interpolation order, 0 (nearest) or 1 (bilinear). Keras's SciPy engine also
            takes the higher spline orders 2 to 5; Lamina resamples with torch's `grid_sample`,
            the kernel of the augmentation layers.
    """
    if sorted((row_axis, col_axis, channel_axis)) != [0, 1, 2]:
        raise ValueError(
            "`row_axis`, `col_axis` and `channel_axis` must be 0, 1 and 2 in some order. "
            f"Received: row_axis={row_axis}, col_axis={col_axis}, channel_axis={channel_axis}."
        )
    if np.ndim(x) != 3:
        raise ValueError(
            f"Expected one image with a channel axis (rank 3). Received shape {np.shape(x)}."
        )
    if channel_axis not in (0, 2):
        raise ValueError(f"Channels must be the first or last axis. Received: channel_axis={channel_axis}.")
    if fill_mode not in FILL_MODES:
        raise ValueError(f"`fill_mode` must be one of {FILL_MODES}. Received: fill_mode={fill_mode!r}.")
    if order not in (0, 1):
        raise ValueError(
            "`order` (interpolation_order) must be 0 (nearest) or 1 (bilinear); the spline "
            f"orders 2 to 5 of Keras's SciPy engine are not offered. Received: order={order!r}."
        )

    matrix = np.eye(3)
    if theta:
        angle = np.deg2rad(theta)
        matrix = matrix @ np.array(
            [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
        )
    if tx or ty:
        matrix = matrix @ np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]])
    if shear:
        angle = np.deg2rad(shear)
        matrix = matrix @ np.array([[1, -np.sin(angle), 0], [0, np.cos(angle), 0], [0, 0, 1]])
    if zx != 1 or zy != 1:
        matrix = matrix @ np.array([[zx, 0, 0], [0, zy, 0], [0, 0, 1]])
    if np.array_equal(matrix, np.eye(3)):
        return x

    # The matrix acts on centred (column, row): each output pixel reads the input at
    # (source_x, source_y), in pixel units.
    height, width = x.shape[row_axis], x.shape[col_axis]
    center = np.array([(width - 1) / 2, (height - 1) / 2])
    linear = matrix[:2, :2]
    offset = center + matrix[:2, 2] - linear @ center
    if order == 0:
        # Halfway points round up, as SciPy's nearest does (torch rounds half to even).
        offset = offset + 1e-9
    rows, columns = np.mgrid[0:height, 0:width]
    source_x = linear[0, 0] * columns + linear[0, 1] * rows + offset[0]
    source_y = linear[1, 0] * columns + linear[1, 1] * rows + offset[1]
    image = torch.as_tensor(np.ascontiguousarray(
        np.transpose(x, (channel_axis, row_axis, col_axis))))[None]  # (1, channels, rows, cols)
    transformed = _sample(image, source_x, source_y, order, fill_mode)[0].numpy()
    if fill_mode == "constant":
        # SciPy's 'constant', which Keras's generator uses: every point outside the pixel
        # centres' span is cval.
        outside = ((source_x < 0) | (source_x > width - 1) | (source_y < 0)
                   | (source_y > height - 1))
        transformed[:, outside] = cval
    return np.transpose(transformed, np.argsort((channel_axis, row_axis, col_axis)))


def _sample(image: torch.Tensor, source_x: np.ndarray, source_y: np.ndarray, order: int,
            fill_mode: str) -> torch.Tensor:
    """`image` (1, channels, rows, cols) read at the given pixel coordinates with torch's
    `grid_sample` (the kernel the augmentation layers use), SciPy's fill modes folded into the
    coordinates first: 'reflect' mirrors about the outer pixel edges, 'wrap' repeats the image
    (padded circularly by one pixel so interpolation crosses the seam); 'nearest' and
    'constant' clamp to the border (constant points outside are set afterwards)."""
    height, width = image.shape[-2:]
    if fill_mode == "reflect":
        source_x, source_y = _fold(source_x, width), _fold(source_y, height)
    elif fill_mode == "wrap":
        source_x, source_y = np.mod(source_x, width) + 1, np.mod(source_y, height) + 1
        image = F.pad(image, (1, 1, 1, 1), mode="circular")
        height, width = height + 2, width + 2
    # align_corners=True: -1 and 1 are the centres of the corner pixels, as SciPy counts.
    grid = np.stack([source_x / max(width - 1, 1) * 2 - 1,
                     source_y / max(height - 1, 1) * 2 - 1], -1)
    values = image if image.is_floating_point() else image.double()
    sampled = F.grid_sample(values, torch.as_tensor(grid, dtype=values.dtype)[None],
                            mode="bilinear" if order == 1 else "nearest",
                            padding_mode="border", align_corners=True)
    return sampled if image.is_floating_point() else sampled.round().to(image.dtype)


def _fold(coordinates: np.ndarray, size: int) -> np.ndarray:
    """Coordinates mirrored about -0.5 and size - 0.5 into [-0.5, size - 0.5]."""
    folded = np.mod(coordinates + 0.5, 2 * size)
    return np.where(folded >= size, 2 * size - folded, folded) - 0.5


def apply_channel_shift(x: np.ndarray, intensity: float, channel_axis: int = 0) -> np.ndarray:
    """Add `intensity` to every channel, clipped to the image's original [min, max]."""
    return np.clip(x + intensity, np.min(x), np.max(x))


def apply_brightness_shift(x: np.ndarray, brightness: float, scale: bool = True) -> np.ndarray:
    """Multiply brightness by `brightness` in the [0, 255] range: `clip(x * brightness, 0, 255)`.

    Images outside [0, 255], or any image when `scale`, are first stretched to [0, 255]; with
    `scale=False` the result is mapped back to the original range. (Keras rounds through an
    8-bit PIL image here; this keeps full precision.)
    """
    low, high = float(np.min(x)), float(np.max(x))
    stretch = scale or low < 0 or high > 255
    if stretch:
        span = high - low
        x = (x - low) / span * 255 if span else x - low
    brightened = np.clip(x * brightness, 0, 255)
    if stretch and not scale:
        brightened = brightened / 255 * (high - low) + low
    return brightened


def flip_axis(x: np.ndarray, axis: int) -> np.ndarray:
    return np.flip(x, axis).copy()


def random_rotation(
    x: np.ndarray,
    rg: float,
    row_axis: int = 1,
    col_axis: int = 2,
    channel_axis: int = 0,
    fill_mode: str = "nearest",
    cval: float = 0.0,
    interpolation_order: int = 1,
) -> np.ndarray:
    """Rotate by a uniform random angle in [-rg, rg] degrees."""
    return apply_affine_transform(
        x, theta=np.random.uniform(-rg, rg), row_axis=row_axis, col_axis=col_axis,
        channel_axis=channel_axis, fill_mode=fill_mode, cval=cval, order=interpolation_order,
    )


def random_shift(
    x: np.ndarray,
    wrg: float,
    hrg: float,
    row_axis: int = 1,
    col_axis: int = 2,
    channel_axis: int = 0,
    fill_mode: str = "nearest",
    cval: float = 0.0,
    interpolation_order: int = 1,
) -> np.ndarray:
    """Shift by uniform random fractions in [-wrg, wrg] of the width and [-hrg, hrg] of the height."""
    tx = np.random.uniform(-wrg, wrg) * x.shape[col_axis]
    ty = np.random.uniform(-hrg, hrg) * x.shape[row_axis]
    return apply_affine_transform(
        x, tx=tx, ty=ty, row_axis=row_axis, col_axis=col_axis, channel_axis=channel_axis,
        fill_mode=fill_mode, cval=cval, order=interpolation_order,
    )


def random_shear(
    x: np.ndarray,
    intensity: float,
    row_axis: int = 1,
    col_axis: int = 2,
    channel_axis: int = 0,
    fill_mode: str = "nearest",
    cval: float = 0.0,
    interpolation_order: int = 1,
) -> np.ndarray:
    """Shear by a uniform random angle in [-intensity, intensity] degrees."""
    return apply_affine_transform(
        x, shear=np.random.uniform(-intensity, intensity), row_axis=row_axis, col_axis=col_axis,
        channel_axis=channel_axis, fill_mode=fill_mode, cval=cval, order=interpolation_order,
    )


def random_zoom(
    x: np.ndarray,
    zoom_range: Sequence[float],
    row_axis: int = 1,
    col_axis: int = 2,
    channel_axis: int = 0,
    fill_mode: str = "nearest",
    cval: float = 0.0,
    interpolation_order: int = 1,
) -> np.ndarray:
    """Zoom each axis by a uniform random factor in `zoom_range = (low, high)`."""
    low, high = _check_zoom_range(zoom_range)
    zx, zy = (1.0, 1.0) if low == high == 1 else np.random.uniform(low, high, 2)
    return apply_affine_transform(
        x, zx=zx, zy=zy, row_axis=row_axis, col_axis=col_axis, channel_axis=channel_axis,
        fill_mode=fill_mode, cval=cval, order=interpolation_order,
    )


def random_channel_shift(x: np.ndarray, intensity_range: float, channel_axis: int = 0) -> np.ndarray:
    """`apply_channel_shift` by a uniform random intensity in [-intensity_range, intensity_range]."""
    intensity = np.random.uniform(-intensity_range, intensity_range)
    return apply_channel_shift(x, intensity, channel_axis=channel_axis)


def random_brightness(x: np.ndarray, brightness_range: Sequence[float], scale: bool = True) -> np.ndarray:
    """`apply_brightness_shift` by a uniform random factor in `brightness_range = (low, high)`."""
    low, high = _check_pair(brightness_range, "brightness_range")
    return apply_brightness_shift(x, np.random.uniform(low, high), scale)


def _check_pair(value: Any, name: str) -> tuple[float, float]:
    if (
        not isinstance(value, (tuple, list, np.ndarray))
        or len(value) != 2
        or not all(isinstance(bound, (int, float, np.number)) for bound in value)
        or value[0] > value[1]
    ):
        raise ValueError(
            f"`{name}` must be a pair of numbers (low, high) with low <= high. Received: {name}={value!r}."
        )
    return float(value[0]), float(value[1])


def _check_zoom_range(zoom_range: Any) -> tuple[float, float]:
    if isinstance(zoom_range, (int, float)) and not isinstance(zoom_range, bool):
        low, high = 1 - zoom_range, 1 + zoom_range
    else:
        low, high = _check_pair(zoom_range, "zoom_range")
    if low <= 0 or high < low:
        raise ValueError(
            "`zoom_range` must be a number in [0, 1) (zoom factors in [1 - z, 1 + z]) or a pair "
            f"of positive factors (low, high). Received: zoom_range={zoom_range!r}."
        )
    return low, high


def _check_shift_range(value: Any, name: str) -> None:
    if isinstance(value, (tuple, list, np.ndarray)):
        if len(value) == 0 or not all(isinstance(v, (int, float, np.number)) for v in value):
            raise ValueError(f"`{name}` must be a number or a non-empty list of numbers. Received: {name}={value!r}.")
    elif isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(
            f"`{name}` must be a non-negative number (a fraction of the size if < 1, pixels if "
            f">= 1) or a list of allowed shifts. Received: {name}={value!r}."
        )


def _check_non_negative(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or value < 0:
        raise ValueError(f"`{name}` must be a non-negative number. Received: {name}={value!r}.")


def _sample_shift(rng: np.random.Generator, shift_range: Any, size: int) -> float:
    """A shift in pixels: a float range is uniform, an int or list a signed random choice."""
    if isinstance(shift_range, (tuple, list, np.ndarray)):
        shift = rng.choice(np.asarray(shift_range)) * rng.choice([-1, 1])
    elif isinstance(shift_range, (int, np.integer)):
        # Integers: whole pixels from the open interval (-range, range), as Keras.
        shift = rng.integers(shift_range) * rng.choice([-1, 1])
    else:
        shift = rng.uniform(-shift_range, shift_range)
    if np.max(shift_range) < 1:
        shift *= size
    return float(shift)


def _fresh_seed() -> int:
    # Drawn from NumPy's global generator so that set_random_seed makes it reproducible.
    return int(np.random.randint(0, 2**31 - 1))
