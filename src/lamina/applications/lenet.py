"""LeNet-5 (LeCun et al., 1998) as the reference PyTorch code (docs/provenance.md) writes
it: two 5x5 convolutions with sigmoid and 2x2 average pooling, then dense layers of 120 and 84
units, for 32x32 single-channel images."""

from __future__ import annotations

from typing import Any

from lamina._registry import register
from lamina.applications import _builder
from lamina.config import standardize_data_format
from lamina.layers.convolutional import Conv2D
from lamina.layers.core import Dense
from lamina.layers.pooling import AveragePooling2D, MaxPooling2D
from lamina.layers.reshaping import Flatten
from lamina.models.model import Model


@register("LeNet5", kind="model")
def LeNet5(
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: Any = None,
    input_shape: tuple | None = None,
    pooling: str | None = None,
    classes: int = 10,
    classifier_activation: Any = "softmax",
    name: str = "lenet5",
    *,
    modern: bool = False,
    data_format: str | None = None,
) -> Model:
    """LeNet-5: `conv(6, 5x5) -> pool -> conv(16, 5x5) -> pool -> dense(120) -> dense(84) ->
    dense(classes)`, 61,706 parameters on 32x32x1 inputs with 10 classes.

    Args:
        include_top: include the three dense layers (input size then fixed, 32x32 by default).
        weights: None (random initialization) or the path of a weights file (loaded by layer
            name). No published weights exist.
        input_tensor: a symbolic tensor to build the model on.
        input_shape: `(height, width, channels)` (channels_last); at least 16x16.
        pooling: with `include_top=False`, None, 'avg' or 'max' global pooling of the features.
        classes: number of classes.
        classifier_activation: activation of the last layer (None returns logits, as the
            reference module does).
        name: the model's name.
        modern: ReLU and max pooling instead of the original sigmoid and average pooling.
        data_format: 'channels_last' (default, Keras's) or 'channels_first'.

    >>> LeNet5().count_params()
    61706
    """
    data_format = standardize_data_format(data_format)
    _builder.check_arguments(weights, include_top, classes, pooling,
                             classifier_activation, architecture="lenet5")
    x, inputs = _builder.image_input(input_tensor, input_shape, default_size=32, min_size=16,
                                     data_format=data_format, require_flatten=include_top,
                                     weights=weights, channels=1)
    activation = "relu" if modern else "sigmoid"
    pool = MaxPooling2D if modern else AveragePooling2D
    x = Conv2D(6, 5, activation=activation, data_format=data_format, name="conv1")(x)
    x = pool(2, data_format=data_format, name="pool1")(x)
    x = Conv2D(16, 5, activation=activation, data_format=data_format, name="conv2")(x)
    x = pool(2, data_format=data_format, name="pool2")(x)
    if include_top:
        x = Flatten(data_format=data_format, name="flatten")(x)
        x = Dense(120, activation=activation, name="fc1")(x)
        x = Dense(84, activation=activation, name="fc2")(x)
        x = Dense(classes, activation=classifier_activation, name="predictions")(x)
    else:
        x = _builder.global_pooling(x, pooling, data_format)
    return _builder.finish(inputs, x, name, weights)
