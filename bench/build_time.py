"""How long does building a model take, beyond creating its weights?

Construction runs every layer once to infer shapes; that should cost next to nothing beside
creating the weights (target: any zoo model < 1 s plus weight-init time). Measured for
ResNet50, VGG16 (ImageNet size, 1000 classes), a 50-layer Sequential MLP, a Sequential of
16 Conv2D(32) on 224x224 images, whose cost used to grow with the square of its depth, and a
functional model of 4 stacked LSTM(256) over 100 steps (recurrent layers find their shapes from
their configuration; they used to run the recurrence on real probe tensors). The
time spent in `add_weight` (initialiser and layout) is measured by wrapping it, so "shapes and
graph" is the construction time less the weights' (median of the per-round differences).
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import torch

import lamina
from lamina import _symbolic, applications, layers
from lamina.layers import Layer

ROUNDS = 3


def resnet50() -> Any:
    return applications.ResNet50(weights=None)


def vgg16() -> Any:
    return applications.VGG16(weights=None)


def sequential_50_dense() -> Any:
    return lamina.Sequential([layers.Dense(256, activation="relu", input_shape=(256,))]
                             + [layers.Dense(256, activation="relu") for _ in range(49)])


def sequential_16_conv() -> Any:
    return lamina.Sequential(
        [layers.Conv2D(32, 3, padding="same", activation="relu", input_shape=(224, 224, 3))]
        + [layers.Conv2D(32, 3, padding="same", activation="relu") for _ in range(15)])


def functional_4_lstm() -> Any:
    inputs = lamina.Input((100, 64))
    x = inputs
    for _ in range(3):
        x = layers.LSTM(256, return_sequences=True)(x)
    return lamina.Model(inputs, layers.LSTM(256)(x))


class _WeightTimer:
    """Adds the time `add_weight` takes (initialiser and layout: the weights' creation) to
    `seconds`."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._depth = 0
        self._add_weight = Layer.add_weight

    def __enter__(self) -> "_WeightTimer":
        add_weight = self._add_weight

        def timed(layer: Layer, *args: Any, **kwargs: Any) -> Any:
            if self._depth:
                return add_weight(layer, *args, **kwargs)
            self._depth += 1
            start = time.perf_counter()
            try:
                return add_weight(layer, *args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                self._depth -= 1

        Layer.add_weight = timed
        return self

    def __exit__(self, *exc: Any) -> None:
        Layer.add_weight = self._add_weight


def measure(build: Callable[[], Any]) -> tuple[float, float]:
    """Median build time and median time outside the initializers, each round from an empty
    cache of meta layouts (a process that builds one model)."""
    totals, shapes = [], []
    for _ in range(ROUNDS):
        lamina.config.set_random_seed(0)
        _symbolic._META_CACHE.clear()
        with _WeightTimer() as timer:
            start = time.perf_counter()
            build()
            totals.append(time.perf_counter() - start)
        shapes.append(totals[-1] - timer.seconds)
    return statistics.median(totals), statistics.median(shapes)


def main() -> None:
    torch.set_num_threads(1)
    sequential_50_dense()  # torch's one-time imports of its meta kernels, not counted
    print(f"{'model':<34}{'build s':>9}{'weights s':>10}{'shapes+graph s':>16}")
    for name, build in (("ResNet50", resnet50), ("VGG16", vgg16),
                        ("Sequential, 50 Dense(256)", sequential_50_dense),
                        ("Sequential, 16 Conv2D(32) 224x224", sequential_16_conv),
                        ("Functional, 4 LSTM(256) x 100 steps", functional_4_lstm)):
        total, shapes = measure(build)
        print(f"{name:<34}{total:9.2f}{total - shapes:10.2f}{shapes:16.2f}")


if __name__ == "__main__":
    main()
