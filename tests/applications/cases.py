"""One row per registered model: small arguments to build it with, and tiny synthetic data.

`test_registry.py` checks that every name in `lamina.applications.list_models()` has a row here,
so a model added to the zoo without a test fails.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

CLASSES = 3


@dataclasses.dataclass
class ModelCase:
    name: str
    kwargs: dict[str, Any]
    # make_data(rng) -> (x, y) for a few training steps.
    make_data: Callable[[np.random.Generator], tuple[Any, Any]]
    output_shape: tuple[int | None, ...]
    # The Keras-style classifiers end in softmax; the others return logits.
    logits: bool = True
    # Scaled variants of a trained family member (same blocks, other widths and depths) are
    # built on the meta device only, which keeps the suite's time flat.
    trained: bool = True


def images(shape: tuple[int, ...], count: int = 4) -> Callable:
    def make(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(size=(count,) + shape).astype(np.float32)
        return x, np.arange(count) % CLASSES

    return make


def sequences(steps: int, features: int, count: int = 8) -> Callable:
    def make(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(size=(count, steps, features)).astype(np.float32)
        return x, np.arange(count) % CLASSES

    return make


def tokens(length: int, vocab: int, count: int = 8, next_token: bool = False) -> Callable:
    def make(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        x = rng.integers(1, vocab, size=(count, length + 1))
        if next_token:
            return x[:, :-1], x[:, 1:]
        return x[:, :-1], np.arange(count) % CLASSES

    return make


# 48x48 leaves the last stage of the ResNets a 2x2 map, so batch norm statistics over a batch of
# 4 are not degenerate (at 1x1 they come from 4 numbers and the loss turns erratic).
SMALL_IMAGE = (48, 48, 3)
IMAGE_KWARGS = {"input_shape": SMALL_IMAGE, "classes": CLASSES}
TORCH_KWARGS = {"input_shape": SMALL_IMAGE, "num_classes": CLASSES}

CASES = [
    ModelCase("LeNet5", {"classes": CLASSES}, images((32, 32, 1), 8), (None, CLASSES),
              logits=False),
    # Without dropout the training loss of a fixed batch is a deterministic function.
    ModelCase("AlexNet", {"input_shape": (67, 67, 3), "classes": CLASSES, "dropout": 0.0},
              images((67, 67, 3)), (None, CLASSES), logits=False),
    ModelCase("VGG11", IMAGE_KWARGS, images(SMALL_IMAGE), (None, CLASSES), logits=False),
    ModelCase("VGG13", IMAGE_KWARGS, images(SMALL_IMAGE), (None, CLASSES), logits=False),
    ModelCase("VGG16", {**IMAGE_KWARGS, "batch_norm": True}, images(SMALL_IMAGE), (None, CLASSES),
              logits=False),
    ModelCase("VGG19", IMAGE_KWARGS, images(SMALL_IMAGE), (None, CLASSES), logits=False),
    ModelCase("ResNet50", IMAGE_KWARGS, images(SMALL_IMAGE), (None, CLASSES), logits=False),
    ModelCase("ResNet101", IMAGE_KWARGS, images(SMALL_IMAGE), (None, CLASSES), logits=False),
    ModelCase("ResNet152", IMAGE_KWARGS, images(SMALL_IMAGE), (None, CLASSES), logits=False),
    ModelCase("ResNet50V2", IMAGE_KWARGS, images(SMALL_IMAGE), (None, CLASSES), logits=False),
    ModelCase("ResNet101V2", IMAGE_KWARGS, images(SMALL_IMAGE), (None, CLASSES), logits=False,
              trained=False),
    ModelCase("ResNet152V2", IMAGE_KWARGS, images(SMALL_IMAGE), (None, CLASSES), logits=False,
              trained=False),
    ModelCase("resnet18", TORCH_KWARGS, images(SMALL_IMAGE), (None, CLASSES)),
    ModelCase("resnet34", TORCH_KWARGS, images(SMALL_IMAGE), (None, CLASSES)),
    ModelCase("resnet50", TORCH_KWARGS, images(SMALL_IMAGE), (None, CLASSES)),
    ModelCase("resnet101", TORCH_KWARGS, images(SMALL_IMAGE), (None, CLASSES)),
    ModelCase("resnet152", TORCH_KWARGS, images(SMALL_IMAGE), (None, CLASSES)),
    ModelCase("SimpleRNNModel", {"input_size": 4, "hidden_size": 8, "output_size": CLASSES},
              sequences(5, 4), (None, CLASSES)),
    ModelCase("LSTMModel", {"input_size": 4, "hidden_size": 8, "num_layers": 2,
                            "output_size": CLASSES}, sequences(5, 4), (None, CLASSES)),
    ModelCase("GRUModel", {"input_size": 4, "hidden_size": 8, "num_layers": 2,
                           "output_size": CLASSES}, sequences(5, 4), (None, CLASSES)),
    ModelCase("TransformerModel", {"vocab_size": 30, "d_model": 16, "num_heads": 2,
                                   "num_layers": 2, "d_ff": 32, "max_seq_length": 8,
                                   "num_classes": CLASSES}, tokens(8, 30), (None, CLASSES)),
    ModelCase("GPT", {"vocab_size": 30, "max_length": 8, "d_model": 16, "num_heads": 2,
                      "num_layers": 1}, tokens(8, 30, next_token=True), (None, 8, 30)),
]

# Keras's ImageNet families: one member of each trained at a small size, the others built.
_TRAINED_KERAS = [
    # Without dropout and stochastic depth the loss of a fixed batch is deterministic.
    ("EfficientNetB0", {**IMAGE_KWARGS, "dropout_rate": 0.0, "drop_connect_rate": 0.0}),
    ("EfficientNetV2B0", {**IMAGE_KWARGS, "dropout_rate": 0.0, "drop_connect_rate": 0.0}),
    ("MobileNet", IMAGE_KWARGS), ("MobileNetV2", IMAGE_KWARGS),
    ("MobileNetV3Small", {**IMAGE_KWARGS, "dropout_rate": 0.0}),
    ("DenseNet121", IMAGE_KWARGS), ("ConvNeXtTiny", {"input_shape": (32, 32, 3),
                                                     "classes": CLASSES}),
]
_BUILT_KERAS = [
    *(f"EfficientNetB{i}" for i in range(1, 8)),
    *(f"EfficientNetV2{v}" for v in ("B1", "B2", "B3", "S", "M", "L")),
    "MobileNetV3Large", "DenseNet169", "DenseNet201", "Xception", "InceptionV3", "InceptionResNetV2",
    "NASNetMobile", "NASNetLarge",
    *(f"ConvNeXt{v}" for v in ("Small", "Base", "Large", "XLarge")),
]
CASES += [ModelCase(name, kwargs, images(kwargs["input_shape"]), (None, CLASSES), logits=False)
          for name, kwargs in _TRAINED_KERAS]
CASES += [ModelCase(name, {"input_shape": (96, 96, 3), "classes": CLASSES}, images((96, 96, 3)),
                    (None, CLASSES), logits=False, trained=False) for name in _BUILT_KERAS]

BY_NAME = {case.name: case for case in CASES}
