"""Inception-ResNet v2 (Szegedy et al., 2017), Keras's `keras.applications.InceptionResNetV2`:
Inception modules whose concatenated branches are projected back to the input's width and added
to it, scaled down (0.17, 0.1, 0.2) so that the very deep sum stays stable to train.

As in Keras, only the blocks are named (`mixed_5b`, `block35_1_mixed`, `block35_1_conv`,
`block35_1_ac`, ..., `conv_7b`, `avg_pool`, `predictions`); the stem's and branches'
convolutions, batch norms and activations take Keras's automatic names in creation order
(`conv2d`, `batch_normalization`, `activation`, then `_1`, `_2`, ...), reproduced here, so
Keras's weights files load by name. Inputs are preprocessed in the 'tf' mode.
"""

from __future__ import annotations

from typing import Any

import torch

from lamina._registry import register
from lamina.applications import _blocks, inception_v3
from lamina.applications.imagenet_utils import decode_predictions, mode_preprocess_input
from lamina.layers.convolutional import Conv2D
from lamina.layers.core import Activation
from lamina.layers.layer import Layer
from lamina.layers.normalization import BatchNormalization
from lamina.layers.pooling import AveragePooling2D, MaxPooling2D
from lamina.models.model import Model

__all__ = ["InceptionResNetV2", "decode_predictions", "preprocess_input"]

preprocess_input = mode_preprocess_input("tf")

_WEIGHTS_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/"
                "inception_resnet_v2/inception_resnet_v2_weights_tf_dim_ordering_tf_kernels")


@register("CustomScaleLayer")
class CustomScaleLayer(Layer):
    """`inputs[0] + inputs[1] * scale`: the scaled residual sum, under Keras's class name so a
    Keras-saved InceptionResNetV2 config loads."""

    def __init__(self, scale: float, **kwargs: Any):
        super().__init__(**kwargs)
        self.scale = float(scale)

    def call(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        shortcut, residual = inputs
        return shortcut + residual * self.scale

    def compute_output_shape(self, input_shape: list) -> tuple:
        return tuple(input_shape[0])

    def get_config(self) -> dict:
        return {**super().get_config(), "scale": self.scale}


class _Builder(inception_v3._Builder):
    """InceptionV3's `conv2d_bn` builder and its automatic numbering (one counter for the
    convolution, batch norm and activation, as an unnamed `conv2d_bn` makes one of each and
    named layers do not advance Keras's counters), plus Keras's numbering of the pools and
    scale layers and the named convolutions of this family."""

    def __init__(self, data_format: str):
        super().__init__(data_format)
        self.pools = {"max_pooling2d": 0, "average_pooling2d": 0, "custom_scale_layer": 0}

    def auto(self, kind: str) -> str:
        index = self.pools[kind]
        self.pools[kind] += 1
        return f"{kind}_{index}" if index else kind

    def conv(self, x: Any, filters: int, size: Any, strides: int = 1,
             padding: str = "same") -> Any:
        rows, cols = (size, size) if isinstance(size, int) else size
        return super().conv(x, filters, rows, cols, strides, padding)

    def named_conv(self, x: Any, filters: int, name: str) -> Any:
        """Keras's `conv2d_bn(..., name=name)` with its default ReLU: `name`, `name_bn`,
        `name_ac`."""
        x = Conv2D(filters, 1, use_bias=False, data_format=self.data_format, name=name)(x)
        x = BatchNormalization(axis=self.axis, scale=False, name=f"{name}_bn")(x)
        return Activation("relu", name=f"{name}_ac")(x)

    def numbered_max_pool(self, x: Any) -> Any:
        return MaxPooling2D(3, strides=2, data_format=self.data_format,
                            name=self.auto("max_pooling2d"))(x)

    def residual(self, x: Any, kind: str, index: int, scale: float,
                 activation: str | None = "relu") -> Any:
        """Keras's `inception_resnet_block`: branches -> concat -> 1x1 projection (with bias,
        no batch norm) -> `x + scale * projection` -> ReLU (none on the last block8)."""
        if kind == "block35":
            branches = [self.conv(x, 32, 1), self.chain(x, (32, 1), (32, 3)),
                        self.chain(x, (32, 1), (48, 3), (64, 3))]
        elif kind == "block17":
            branches = [self.conv(x, 192, 1), self.chain(x, (128, 1), (160, (1, 7)), (192, (7, 1)))]
        else:
            branches = [self.conv(x, 192, 1), self.chain(x, (192, 1), (224, (1, 3)), (256, (3, 1)))]
        name = f"{kind}_{index}"
        mixed = self.concat(branches, f"{name}_mixed")
        width = x.shape[self.axis]
        up = Conv2D(width, 1, use_bias=True, data_format=self.data_format,
                    name=f"{name}_conv")(mixed)
        x = CustomScaleLayer(scale, name=self.auto("custom_scale_layer"))([x, up])
        return Activation(activation, name=f"{name}_ac")(x) if activation else x


@register("InceptionResNetV2", kind="model")
def InceptionResNetV2(include_top: bool = True, weights: str | None = None,
                      input_tensor: Any = None, input_shape: tuple | None = None,
                      pooling: str | None = None, classes: int = 1000,
                      classifier_activation: Any = "softmax", name: str = "inception_resnet_v2",
                      *, data_format: str | None = None) -> Model:
    """Keras's InceptionResNetV2: 55,873,736 parameters with the top, 299x299 images by default.

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
    x, inputs, data_format = inception_v3.start(
        "InceptionResNetV2", "inception_resnet_v2", keras_file, weights, include_top, classes,
        pooling, classifier_activation, input_tensor, input_shape, data_format)
    b = _Builder(data_format)
    x = b.chain(x, (32, 3, 2, "valid"), (32, 3, 1, "valid"), (64, 3))            # stem
    x = b.numbered_max_pool(x)
    x = b.chain(x, (80, 1, 1, "valid"), (192, 3, 1, "valid"))
    x = b.numbered_max_pool(x)
    pool = AveragePooling2D(3, strides=1, padding="same", data_format=data_format,
                            name=b.auto("average_pooling2d"))(x)
    x = b.concat([b.conv(x, 96, 1), b.chain(x, (48, 1), (64, 5)),                 # 35 x 35
                  b.chain(x, (64, 1), (96, 3), (96, 3)), b.conv(pool, 64, 1)], "mixed_5b")
    for index in range(1, 11):
        x = b.residual(x, "block35", index, 0.17)
    x = b.concat([b.conv(x, 384, 3, 2, "valid"),                                  # 17 x 17
                  b.chain(x, (256, 1), (256, 3), (384, 3, 2, "valid")), b.numbered_max_pool(x)],
                 "mixed_6a")
    for index in range(1, 21):
        x = b.residual(x, "block17", index, 0.1)
    x = b.concat([b.chain(x, (256, 1), (384, 3, 2, "valid")),                     # 8 x 8
                  b.chain(x, (256, 1), (288, 3, 2, "valid")),
                  b.chain(x, (256, 1), (288, 3), (320, 3, 2, "valid")), b.numbered_max_pool(x)],
                 "mixed_7a")
    for index in range(1, 10):
        x = b.residual(x, "block8", index, 0.2)
    x = b.residual(x, "block8", 10, 1.0, activation=None)
    x = b.named_conv(x, 1536, "conv_7b")
    x = _blocks.top(x, include_top, pooling, classes, classifier_activation, data_format)
    return _blocks.finish(inputs, x, name, weights, keras_file)
