"""Shared checks for the preprocessing-layer tests: config and save/load round trips, gradcheck
of a layer rebuilt for every evaluation (random layers redraw on each call), and Keras's affine
image transform written out in numpy as the oracle of the geometric layers."""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch

import lamina
from lamina import layers


def config_round_trip(layer: Any) -> Any:
    """A layer rebuilt from `get_config()`, whose own config must be the same."""
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    return clone


def save_load(tmp_path, model: Any, inputs: Any, training: bool = False) -> tuple[Any, Any]:
    """Save `model` as .keras, load it, and return both outputs on `inputs`."""
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = lamina.models.load_model(path)
    model.train(training)
    loaded.train(training)
    with torch.no_grad():
        return model(inputs), loaded(inputs)


def sequential_with_head(layer: Any, input_shape: tuple[int, ...]) -> Any:
    """The layer inside a small Sequential ending in Dense, as a user would put it."""
    return lamina.Sequential([lamina.Input(shape=input_shape), layer, layers.Flatten(),
                              layers.Dense(2)])


def gradcheck_fresh(make_layer: Callable[[], Any], x: torch.Tensor, **call_kwargs: Any) -> bool:
    """gradcheck in float64 of `make_layer()(x)`, with a new (seeded) layer for every evaluation
    so that random layers draw the same parameters each time."""
    x = x.detach().to(torch.float64).clone().requires_grad_(True)
    return torch.autograd.gradcheck(lambda t: make_layer()(t, **call_kwargs), (x,),
                                    eps=1e-6, atol=1e-5)


def keras_affine(image: np.ndarray, matrix: list[float], fill_mode: str = "constant",
                 fill_value: float = 0.0) -> np.ndarray:
    """TF's ImageProjectiveTransform (what Keras's affine layers run) on one (H, W, C) image.

    Output pixel (x, y) reads the input at (a0 x + a1 y + a2, b0 x + b1 y + b2), in pixel-index
    coordinates, with bilinear interpolation. 'constant' reads `fill_value` for corners outside
    the image; 'nearest' clamps the coordinates into it.
    """
    a0, a1, a2, b0, b1, b2 = matrix
    height, width, _ = image.shape
    out = np.zeros_like(image, dtype=np.float64)
    for y in range(height):
        for x in range(width):
            xi, yi = a0 * x + a1 * y + a2, b0 * x + b1 * y + b2
            if fill_mode == "nearest":
                xi, yi = min(max(xi, 0.0), width - 1.0), min(max(yi, 0.0), height - 1.0)
            x0, y0 = math.floor(xi), math.floor(yi)
            fx, fy = xi - x0, yi - y0
            value = np.zeros(image.shape[-1])
            for row, wy in ((y0, 1 - fy), (y0 + 1, fy)):
                for col, wx in ((x0, 1 - fx), (x0 + 1, fx)):
                    if wx * wy == 0:
                        continue
                    inside = 0 <= row < height and 0 <= col < width
                    value += wx * wy * (image[row, col] if inside else fill_value)
            out[y, x] = value
    return out


def rotation_matrix(angle: float, height: int, width: int) -> list[float]:
    """tf.keras's `get_rotation_matrix`: counter-clockwise about the centre of the pixel grid."""
    cos, sin = math.cos(angle), math.sin(angle)
    x_offset = ((width - 1) - (cos * (width - 1) - sin * (height - 1))) / 2
    y_offset = ((height - 1) - (sin * (width - 1) + cos * (height - 1))) / 2
    return [cos, -sin, x_offset, sin, cos, y_offset]


def zoom_matrix(zoom_height: float, zoom_width: float, height: int, width: int) -> list[float]:
    """Keras's `_get_zoom_matrix`."""
    return [zoom_width, 0.0, (width - 1) / 2 * (1 - zoom_width),
            0.0, zoom_height, (height - 1) / 2 * (1 - zoom_height)]


def translation_matrix(dy: float, dx: float) -> list[float]:
    """Keras's `_get_translation_matrix`: output (x, y) reads the input at (x - dx, y - dy)."""
    return [1.0, 0.0, -dx, 0.0, 1.0, -dy]
