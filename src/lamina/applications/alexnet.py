"""AlexNet (Krizhevsky et al., 2012) as the reference PyTorch code (docs/provenance.md)
writes it: five convolutions (96, 256, 384, 384, 256 filters) with three 3x3/2 max poolings,
then two dropout + 4096-unit dense layers."""

from __future__ import annotations

from typing import Any

from lamina._registry import register
from lamina.applications import _builder
from lamina.config import standardize_data_format
from lamina.layers.convolutional import Conv2D
from lamina.layers.core import Dense, Dropout
from lamina.layers.pooling import MaxPooling2D
from lamina.layers.reshaping import Flatten
from lamina.models.model import Model


@register("AlexNet", kind="model")
def AlexNet(
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: Any = None,
    input_shape: tuple | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: Any = "softmax",
    name: str = "alexnet",
    *,
    dropout: float = 0.5,
    data_format: str | None = None,
) -> Model:
    """AlexNet for 227x227x3 images: 62,378,344 parameters with 1000 classes.

    Layers (the reference code's): `conv1` 96 11x11/4, `pool1` 3x3/2, `conv2` 256 5x5 'same',
    `pool2`, `conv3` 384 3x3, `conv4` 384 3x3, `conv5` 256 3x3, `pool3`, then `dropout1`,
    `fc1` 4096, `dropout2`, `fc2` 4096, `predictions`. All but the last use ReLU.

    Args: as the Keras applications (`ResNet50`); `input_shape` at least 67x67, `dropout` the
    rate before each hidden dense layer (the reference's `nn.Dropout()` is 0.5). No published
    weights exist in Keras's format.

    >>> AlexNet(input_shape=(67, 67, 3), classes=10).output_shape
    (None, 10)
    """
    data_format = standardize_data_format(data_format)
    _builder.check_arguments(weights, include_top, classes, pooling,
                             classifier_activation, architecture="alexnet")
    x, inputs = _builder.image_input(input_tensor, input_shape, default_size=227, min_size=67,
                                     data_format=data_format, require_flatten=include_top,
                                     weights=weights)

    def conv(filters: int, size: int, name: str, **options: Any) -> Conv2D:
        return Conv2D(filters, size, activation="relu", data_format=data_format, name=name,
                      **options)

    def pool(name: str) -> MaxPooling2D:
        return MaxPooling2D(3, strides=2, data_format=data_format, name=name)

    x = conv(96, 11, "conv1", strides=4)(x)
    x = pool("pool1")(x)
    x = conv(256, 5, "conv2", padding="same")(x)
    x = pool("pool2")(x)
    x = conv(384, 3, "conv3", padding="same")(x)
    x = conv(384, 3, "conv4", padding="same")(x)
    x = conv(256, 3, "conv5", padding="same")(x)
    x = pool("pool3")(x)
    if include_top:
        x = Flatten(data_format=data_format, name="flatten")(x)
        x = Dropout(dropout, name="dropout1")(x)
        x = Dense(4096, activation="relu", name="fc1")(x)
        x = Dropout(dropout, name="dropout2")(x)
        x = Dense(4096, activation="relu", name="fc2")(x)
        x = Dense(classes, activation=classifier_activation, name="predictions")(x)
    else:
        x = _builder.global_pooling(x, pooling, data_format)
    return _builder.finish(inputs, x, name, weights)
