"""Xception (Chollet, 2017), Keras's `keras.applications.Xception`: depthwise separable
convolutions in an entry flow (three strided residual blocks), a middle flow (eight residual
blocks of three separable convolutions) and an exit flow.

Named layers keep Keras's names (`block1_conv1`, `block2_sepconv1_bn`, `block14_sepconv2`,
`predictions`). Keras leaves the four 1x1 shortcut convolutions and their batch norms unnamed;
here they carry the names a fresh Keras session gives them (`conv2d` ... `conv2d_3`,
`batch_normalization` ... `batch_normalization_3`). Inputs are preprocessed in the 'tf' mode.
"""

from __future__ import annotations

from typing import Any

from lamina._registry import register
from lamina.applications import _blocks
from lamina.applications.imagenet_utils import decode_predictions, mode_preprocess_input
from lamina.layers.convolutional import Conv2D, SeparableConv2D
from lamina.layers.core import Activation
from lamina.layers.merging import Add
from lamina.layers.normalization import BatchNormalization
from lamina.layers.pooling import MaxPooling2D
from lamina.models.model import Model

__all__ = ["Xception", "decode_predictions", "preprocess_input"]

preprocess_input = mode_preprocess_input("tf")

_WEIGHTS_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/xception/"
                "xception_weights_tf_dim_ordering_tf_kernels")


class _Flow:
    """Layer factories of one Xception (its data format and shortcut numbering)."""

    def __init__(self, data_format: str):
        self.data_format = data_format
        self.axis = 1 if data_format == "channels_first" else -1
        self.shortcuts = 0

    def sepconv_bn(self, x: Any, filters: int, name: str) -> Any:
        x = SeparableConv2D(filters, 3, padding="same", use_bias=False,
                            data_format=self.data_format, name=name)(x)
        return BatchNormalization(axis=self.axis, name=f"{name}_bn")(x)

    def relu(self, x: Any, name: str) -> Any:
        return Activation("relu", name=name)(x)

    def shortcut(self, x: Any, filters: int) -> Any:
        suffix = f"_{self.shortcuts}" if self.shortcuts else ""
        self.shortcuts += 1
        x = Conv2D(filters, 1, strides=2, padding="same", use_bias=False,
                   data_format=self.data_format, name=f"conv2d{suffix}")(x)
        return BatchNormalization(axis=self.axis, name=f"batch_normalization{suffix}")(x)

    def entry_block(self, x: Any, filters: int, block: int, first_relu: bool) -> Any:
        """Two separable convolutions and a strided max pooling, plus a 1x1 strided shortcut."""
        residual = self.shortcut(x, filters)
        if first_relu:
            x = self.relu(x, f"block{block}_sepconv1_act")
        # The exit flow's block 13 widens only in its second convolution (728 -> 1024).
        x = self.sepconv_bn(x, filters if block < 13 else 728, f"block{block}_sepconv1")
        x = self.relu(x, f"block{block}_sepconv2_act")
        x = self.sepconv_bn(x, filters, f"block{block}_sepconv2")
        x = MaxPooling2D(3, strides=2, padding="same", data_format=self.data_format,
                         name=f"block{block}_pool")(x)
        return Add(name=f"block{block}_add")([x, residual])


@register("Xception", kind="model")
def Xception(include_top: bool = True, weights: str | None = None, input_tensor: Any = None,
             input_shape: tuple | None = None, pooling: str | None = None, classes: int = 1000,
             classifier_activation: Any = "softmax", name: str = "xception", *,
             data_format: str | None = None) -> Model:
    """Keras's Xception: 22,910,480 parameters with the top, 299x299 images by default.

    Args:
        include_top: include `avg_pool` and the `predictions` dense layer.
        weights: None (random initialization), the path of a weights file (loaded by layer
            name), or 'imagenet' for a local copy of Keras's file (nothing is downloaded).
        input_tensor: a symbolic tensor to build the model on.
        input_shape: `(height, width, 3)`, at least 71x71; 299x299 by default with the top.
        pooling: with `include_top=False`: None (4-D features), 'avg' or 'max'.
        classes: number of classes of the classifier.
        classifier_activation: activation of `predictions` (None: logits).
        name: the model's name.
        data_format: 'channels_last' (default, Keras's) or 'channels_first'.
    """
    keras_file = f"{_WEIGHTS_URL}{'' if include_top else '_notop'}.h5"
    x, inputs, data_format = _blocks.start(
        "xception", weights, include_top, classes, pooling, classifier_activation, input_tensor,
        input_shape, default_size=299, min_size=71, keras_file=keras_file,
        data_format=data_format)
    flow = _Flow(data_format)
    x = Conv2D(32, 3, strides=2, use_bias=False, data_format=data_format,
               name="block1_conv1")(x)
    x = BatchNormalization(axis=flow.axis, name="block1_conv1_bn")(x)
    x = flow.relu(x, "block1_conv1_act")
    x = Conv2D(64, 3, use_bias=False, data_format=data_format, name="block1_conv2")(x)
    x = BatchNormalization(axis=flow.axis, name="block1_conv2_bn")(x)
    x = flow.relu(x, "block1_conv2_act")
    x = flow.entry_block(x, 128, 2, first_relu=False)
    x = flow.entry_block(x, 256, 3, first_relu=True)
    x = flow.entry_block(x, 728, 4, first_relu=True)
    for block in range(5, 13):
        residual = x
        for index in (1, 2, 3):
            x = flow.relu(x, f"block{block}_sepconv{index}_act")
            x = flow.sepconv_bn(x, 728, f"block{block}_sepconv{index}")
        x = Add(name=f"block{block}_add")([x, residual])
    x = flow.entry_block(x, 1024, 13, first_relu=True)
    x = flow.sepconv_bn(x, 1536, "block14_sepconv1")
    x = flow.relu(x, "block14_sepconv1_act")
    x = flow.sepconv_bn(x, 2048, "block14_sepconv2")
    x = flow.relu(x, "block14_sepconv2_act")
    x = _blocks.top(x, include_top, pooling, classes, classifier_activation, data_format)
    return _blocks.finish(inputs, x, name, weights, keras_file)
