"""VGG (Simonyan & Zisserman, 2014): stacks of 3x3 'same' convolutions, each block closed by a
2x2 max pooling, then two 4096-unit dense layers. The four depths are the
`make_layers` configurations of the reference PyTorch code (docs/provenance.md; torchvision's
A, B, D, E); layer names and the top are Keras's
(`block1_conv1`, ..., `block5_pool`, `flatten`, `fc1`, `fc2`, `predictions`), so Keras's VGG16 and
VGG19 weight files load by name."""

from __future__ import annotations

from typing import Any

from lamina._registry import register
from lamina.applications import _builder
from lamina.applications.imagenet_utils import decode_predictions as decode_predictions
from lamina.applications.imagenet_utils import mode_preprocess_input
from lamina.config import standardize_data_format
from lamina.layers.convolutional import Conv2D
from lamina.layers.core import Activation, Dense
from lamina.layers.normalization import BatchNormalization
from lamina.layers.pooling import MaxPooling2D
from lamina.layers.reshaping import Flatten
from lamina.models.model import Model

# Keras's ResNet and VGG weights expect caffe-style inputs (BGR, minus the mean pixel).
preprocess_input = mode_preprocess_input("caffe")

# The reference configurations: filters of each convolution; 'M' closes a block with max pooling.
CONFIGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"],
}

# Keras publishes ImageNet weights for these two (without batch normalization).
_KERAS_FILES = {"vgg16": "vgg16_weights_tf_dim_ordering_tf_kernels",
                "vgg19": "vgg19_weights_tf_dim_ordering_tf_kernels"}


def make_layers(x: Any, config: list[int | str], *, batch_norm: bool = False,
                data_format: str = "channels_last") -> Any:
    """The reference `make_layers` on a symbolic tensor: for each number a 3x3 'same' convolution
    with ReLU (with `batch_norm`, convolution -> BatchNormalization -> ReLU), for each 'M' a
    2x2/2 max pooling that ends the block."""
    block, index = 1, 1
    for item in config:
        if item == "M":
            x = MaxPooling2D((2, 2), strides=(2, 2), data_format=data_format,
                             name=f"block{block}_pool")(x)
            block, index = block + 1, 1
            continue
        name = f"block{block}_conv{index}"
        if batch_norm:
            x = Conv2D(item, (3, 3), padding="same", data_format=data_format, name=name)(x)
            # torch's BatchNorm2d defaults (eps 1e-5, momentum 0.1), so torchvision's vgg*_bn
            # weights give the same outputs.
            x = BatchNormalization(axis=_builder.channel_axis(data_format), momentum=0.9,
                                   epsilon=1e-5, name=f"{name}_bn")(x)
            x = Activation("relu", name=f"{name}_relu")(x)
        else:
            x = Conv2D(item, (3, 3), activation="relu", padding="same", data_format=data_format,
                       name=name)(x)
        index += 1
    return x


def _vgg(variant: str, include_top: bool, weights: Any, input_tensor: Any, input_shape: Any,
         pooling: Any, classes: int, classifier_activation: Any, name: str, batch_norm: bool,
         data_format: str | None) -> Model:
    data_format = standardize_data_format(data_format)
    keras_file = None if batch_norm or variant not in _KERAS_FILES else \
        f"{variant}/{_KERAS_FILES[variant]}{'' if include_top else '_notop'}.h5"
    _builder.check_arguments(weights, include_top, classes, pooling, classifier_activation,
                             architecture=variant + ("_bn" if batch_norm else ""),
                             keras_file=keras_file)
    x, inputs = _builder.image_input(input_tensor, input_shape, default_size=224, min_size=32,
                                     data_format=data_format, require_flatten=include_top,
                                     weights=weights)
    x = make_layers(x, CONFIGS[variant], batch_norm=batch_norm, data_format=data_format)
    if include_top:
        x = Flatten(data_format=data_format, name="flatten")(x)
        x = Dense(4096, activation="relu", name="fc1")(x)
        x = Dense(4096, activation="relu", name="fc2")(x)
        x = Dense(classes, activation=classifier_activation, name="predictions")(x)
    else:
        x = _builder.global_pooling(x, pooling, data_format)
    return _builder.finish(inputs, x, name, weights, keras_file)


def _variant(variant: str, doc: str):
    def build(include_top: bool = True, weights: str | None = None, input_tensor: Any = None,
              input_shape: tuple | None = None, pooling: str | None = None, classes: int = 1000,
              classifier_activation: Any = "softmax", name: str = variant, *,
              batch_norm: bool = False, data_format: str | None = None) -> Model:
        return _vgg(variant, include_top, weights, input_tensor, input_shape, pooling, classes,
                    classifier_activation, name, batch_norm, data_format)

    build.__name__ = build.__qualname__ = variant.upper()
    build.__doc__ = doc + _ARGS
    return register(variant.upper(), kind="model")(build)


_ARGS = """

    Args:
        include_top: include the classifier (`flatten`, `fc1`, `fc2`, `predictions`); the input
            size is then fixed (224x224 by default).
        weights: None (random initialization), the path of a weights file (loaded by layer
            name: Keras's `vgg16_weights_tf_dim_ordering_tf_kernels*.h5` files work), or
            'imagenet' for a local copy of that file (nothing is downloaded).
        input_tensor: a symbolic tensor to build the model on.
        input_shape: `(height, width, 3)` (channels_last), at least 32x32.
        pooling: with `include_top=False`: None (the 4-D output of `block5_pool`), 'avg' or
            'max' (global pooling to a vector).
        classes: number of classes of the classifier.
        classifier_activation: activation of `predictions` (None: logits).
        name: the model's name.
        batch_norm: BatchNormalization after every convolution (the reference's
            `make_layers(cfg, batch_norm=True)`, torchvision's `vgg*_bn`).
        data_format: 'channels_last' (default, Keras's) or 'channels_first'.
    """

VGG11 = _variant("vgg11", "VGG11 (torchvision's configuration A): 8 convolutions in 5 blocks.")
VGG13 = _variant("vgg13", "VGG13 (configuration B): 10 convolutions in 5 blocks.")
VGG16 = _variant(
    "vgg16", "VGG16 (configuration D), Keras's `keras.applications.VGG16`: 13 convolutions in 5 "
    "blocks; 138,357,544 parameters with the top at 224x224.")
VGG19 = _variant(
    "vgg19", "VGG19 (configuration E), Keras's `keras.applications.VGG19`: 16 convolutions in 5 "
    "blocks; 143,667,240 parameters with the top at 224x224.")
