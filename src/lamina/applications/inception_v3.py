"""Inception v3 (Szegedy et al., 2016), Keras's `keras.applications.InceptionV3`: a convolutional
stem, then eleven Inception modules (`mixed0` ... `mixed10`) that concatenate parallel branches
of factorized convolutions (1x1, 3x3, 1x7/7x1, 1x3/3x1) and pooling.

Keras names only the concatenations (`mixed0`, `mixed9_0`, ...), `avg_pool` and `predictions`;
its convolutions and batch norms get automatic names in creation order (`conv2d`,
`conv2d_1`, ..., `batch_normalization_93`), reproduced here, so weights line up by name with a
model built in a fresh Keras session, and by position always. Inputs are preprocessed in the
'tf' mode.
"""

from __future__ import annotations

from typing import Any

from lamina._registry import register
from lamina.applications import _blocks
from lamina.applications.imagenet_utils import decode_predictions, mode_preprocess_input
from lamina.layers.convolutional import Conv2D
from lamina.layers.core import Activation
from lamina.layers.merging import Concatenate
from lamina.layers.normalization import BatchNormalization
from lamina.layers.pooling import AveragePooling2D, MaxPooling2D
from lamina.models.model import Model

__all__ = ["InceptionV3", "decode_predictions", "preprocess_input"]

preprocess_input = mode_preprocess_input("tf")

_WEIGHTS_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
                "inception_v3_weights_tf_dim_ordering_tf_kernels")


class _Builder:
    """Keras's `conv2d_bn` with its automatic layer numbering, and the pooling branches."""

    def __init__(self, data_format: str):
        self.data_format = data_format
        self.axis = 1 if data_format == "channels_first" else -1
        self.count = 0

    def conv(self, x: Any, filters: int, rows: int, cols: int, strides: int = 1,
             padding: str = "same") -> Any:
        """Convolution (no bias) -> batch norm (no scale) -> ReLU."""
        suffix = f"_{self.count}" if self.count else ""
        self.count += 1
        x = Conv2D(filters, (rows, cols), strides=strides, padding=padding, use_bias=False,
                   data_format=self.data_format, name=f"conv2d{suffix}")(x)
        x = BatchNormalization(axis=self.axis, scale=False,
                               name=f"batch_normalization{suffix}")(x)
        return Activation("relu", name=f"activation{suffix}")(x)

    def chain(self, x: Any, *convs: tuple) -> Any:
        for spec in convs:
            x = self.conv(x, *spec)
        return x

    def avg_branch(self, x: Any, filters: int, name: str) -> Any:
        x = AveragePooling2D(3, strides=1, padding="same", data_format=self.data_format,
                             name=f"{name}_pool")(x)
        return self.conv(x, filters, 1, 1)

    def max_pool(self, x: Any, name: str) -> Any:
        return MaxPooling2D(3, strides=2, data_format=self.data_format, name=name)(x)

    def concat(self, branches: list, name: str) -> Any:
        return Concatenate(axis=self.axis, name=name)(branches)


def start(display: str, family: str, keras_file: str, weights: Any, include_top: bool,
          classes: int, pooling: Any, classifier_activation: Any, input_tensor: Any,
          input_shape: Any, data_format: str | None) -> tuple[Any, Any, str]:
    """The Inception families' input: 299x299 by default, at least 75x75, and a known size."""
    return _blocks.start(
        family, weights, include_top, classes, pooling, classifier_activation, input_tensor,
        input_shape, default_size=299, min_size=75, keras_file=keras_file,
        data_format=data_format, known_size=True, display=display)


@register("InceptionV3", kind="model")
def InceptionV3(include_top: bool = True, weights: str | None = None, input_tensor: Any = None,
                input_shape: tuple | None = None, pooling: str | None = None,
                classes: int = 1000, classifier_activation: Any = "softmax",
                name: str = "inception_v3", *, data_format: str | None = None) -> Model:
    """Keras's InceptionV3: 23,851,784 parameters with the top, 299x299 images by default.

    Args:
        include_top: include `avg_pool` and the `predictions` dense layer.
        weights: None (random initialization), the path of a weights file (loaded by layer
            name), or 'imagenet' for a local copy of Keras's file (nothing is downloaded).
        input_tensor: a symbolic tensor to build the model on.
        input_shape: `(height, width, 3)`, at least 75x75; 299x299 by default with the top.
            Unlike Keras, the size must be known without the top too.
        pooling: with `include_top=False`: None (4-D features), 'avg' or 'max'.
        classes: number of classes of the classifier.
        classifier_activation: activation of `predictions` (None: logits).
        name: the model's name.
        data_format: 'channels_last' (default, Keras's) or 'channels_first'.
    """
    keras_file = f"{_WEIGHTS_URL}{'' if include_top else '_notop'}.h5"
    x, inputs, data_format = start("InceptionV3", "inception_v3", keras_file, weights,
                                   include_top, classes, pooling, classifier_activation,
                                   input_tensor, input_shape, data_format)
    b = _Builder(data_format)
    x = b.chain(x, (32, 3, 3, 2, "valid"), (32, 3, 3, 1, "valid"), (64, 3, 3))
    x = b.max_pool(x, "max_pooling2d")
    x = b.chain(x, (80, 1, 1, 1, "valid"), (192, 3, 3, 1, "valid"))
    x = b.max_pool(x, "max_pooling2d_1")
    for index, pool_filters in enumerate((32, 64, 64)):           # 35 x 35
        x = b.concat([b.conv(x, 64, 1, 1),
                      b.chain(x, (48, 1, 1), (64, 5, 5)),
                      b.chain(x, (64, 1, 1), (96, 3, 3), (96, 3, 3)),
                      b.avg_branch(x, pool_filters, f"mixed{index}")], f"mixed{index}")
    x = b.concat([b.conv(x, 384, 3, 3, 2, "valid"),                # 17 x 17
                  b.chain(x, (64, 1, 1), (96, 3, 3), (96, 3, 3, 2, "valid")),
                  b.max_pool(x, "mixed3_pool")], "mixed3")
    for index, width in zip(range(4, 8), (128, 160, 160, 192)):
        x = b.concat([b.conv(x, 192, 1, 1),
                      b.chain(x, (width, 1, 1), (width, 1, 7), (192, 7, 1)),
                      b.chain(x, (width, 1, 1), (width, 7, 1), (width, 1, 7), (width, 7, 1),
                              (192, 1, 7)),
                      b.avg_branch(x, 192, f"mixed{index}")], f"mixed{index}")
    x = b.concat([b.chain(x, (192, 1, 1), (320, 3, 3, 2, "valid")),  # 8 x 8
                  b.chain(x, (192, 1, 1), (192, 1, 7), (192, 7, 1), (192, 3, 3, 2, "valid")),
                  b.max_pool(x, "mixed8_pool")], "mixed8")
    for index in range(2):
        branch1x1 = b.conv(x, 320, 1, 1)
        branch3x3 = b.conv(x, 384, 1, 1)
        branch3x3 = b.concat([b.conv(branch3x3, 384, 1, 3), b.conv(branch3x3, 384, 3, 1)],
                             f"mixed9_{index}")
        double = b.chain(x, (448, 1, 1), (384, 3, 3))
        double = b.concat([b.conv(double, 384, 1, 3), b.conv(double, 384, 3, 1)],
                          f"concatenate_{index}" if index else "concatenate")
        x = b.concat([branch1x1, branch3x3, double, b.avg_branch(x, 192, f"mixed{9 + index}")],
                     f"mixed{9 + index}")
    x = _blocks.top(x, include_top, pooling, classes, classifier_activation, data_format)
    return _blocks.finish(inputs, x, name, weights, keras_file)
