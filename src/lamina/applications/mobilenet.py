"""MobileNet v1 (Howard et al., 2017), Keras's `keras.applications.MobileNet`: a 3x3 stem and 13
depthwise separable blocks (3x3 depthwise, 1x1 pointwise, each with batch norm and ReLU6), a
1x1 convolutional classifier.

Layer names are Keras's (`conv1`, `conv_dw_1`, `conv_pw_1_bn`, `conv_preds`), so Keras's
`mobilenet_1_0_224_tf*.h5` files load by name. Inputs are preprocessed in the 'tf' mode.
"""

from __future__ import annotations

from typing import Any

from lamina._registry import register
from lamina.applications import _blocks
from lamina.applications.imagenet_utils import decode_predictions, mode_preprocess_input
from lamina.layers.activation import ReLU
from lamina.layers.convolutional import Conv2D, DepthwiseConv2D
from lamina.layers.core import Activation, Dropout
from lamina.layers.normalization import BatchNormalization
from lamina.layers.pooling import GlobalAveragePooling2D
from lamina.layers.reshaping import Reshape
from lamina.layers.spatial import ZeroPadding2D
from lamina.models.model import Model

__all__ = ["MobileNet", "decode_predictions", "preprocess_input"]

preprocess_input = mode_preprocess_input("tf")

_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet/"
_SIZES = (128, 160, 192, 224)
_ALPHA_TEXT = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}
# (pointwise filters, stride) of the 13 blocks.
_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1),
           (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


def _separable_block(x: Any, filters: int, depth_multiplier: int, stride: int, block_id: int,
                     data_format: str) -> Any:
    """Depthwise 3x3 -> BN -> ReLU6 -> pointwise 1x1 -> BN -> ReLU6 (Keras's
    `_depthwise_conv_block`); a strided block pads bottom/right only, as TensorFlow's 'same'."""
    axis = 1 if data_format == "channels_first" else -1
    if stride == 2:
        x = ZeroPadding2D(((0, 1), (0, 1)), data_format=data_format,
                          name=f"conv_pad_{block_id}")(x)
    x = DepthwiseConv2D(3, padding="same" if stride == 1 else "valid",
                        depth_multiplier=depth_multiplier, strides=stride, use_bias=False,
                        data_format=data_format, name=f"conv_dw_{block_id}")(x)
    x = BatchNormalization(axis=axis, name=f"conv_dw_{block_id}_bn")(x)
    x = ReLU(6.0, name=f"conv_dw_{block_id}_relu")(x)
    x = Conv2D(filters, 1, padding="same", use_bias=False, data_format=data_format,
               name=f"conv_pw_{block_id}")(x)
    x = BatchNormalization(axis=axis, name=f"conv_pw_{block_id}_bn")(x)
    return ReLU(6.0, name=f"conv_pw_{block_id}_relu")(x)


@register("MobileNet", kind="model")
def MobileNet(input_shape: tuple | None = None, alpha: float = 1.0, depth_multiplier: int = 1,
              dropout: float = 1e-3, include_top: bool = True, weights: str | None = None,
              input_tensor: Any = None, pooling: str | None = None, classes: int = 1000,
              classifier_activation: Any = "softmax", name: str | None = None, *,
              data_format: str | None = None) -> Model:
    """Keras's MobileNet: 4,253,864 parameters with the top at alpha=1.

    Args:
        input_shape: `(height, width, 3)`, at least 32x32 (224x224 by default with the top).
        alpha: the width multiplier (every layer's filters scaled).
        depth_multiplier: channels out of each depthwise convolution per input channel.
        dropout: dropout before `conv_preds`.
        include_top: include the pooling, `conv_preds` and `predictions`.
        weights: None (random initialization), the path of a weights file (loaded by layer
            name), or 'imagenet' for a local copy of Keras's file (nothing is downloaded).
        input_tensor: a symbolic tensor to build the model on.
        pooling: with `include_top=False`: None (4-D features), 'avg' or 'max'.
        classes: number of classes of the classifier.
        classifier_activation: activation of `predictions` (None: logits).
        name: the model's name (Keras's `mobilenet_{alpha:.2f}_{rows}` when None).
        data_format: 'channels_last' (default, Keras's) or 'channels_first'.
    """
    if weights == "imagenet" and (depth_multiplier != 1 or alpha not in _ALPHA_TEXT):
        raise ValueError(
            "With weights='imagenet', `alpha` must be one of 0.25, 0.5, 0.75 or 1.0 and "
            f"`depth_multiplier` 1 (the published models). Received: alpha={alpha!r}, "
            f"depth_multiplier={depth_multiplier!r}.")
    rows = _blocks.published_size(input_shape, data_format, _SIZES)
    keras_file = (f"{_WEIGHTS_URL}mobilenet_{_ALPHA_TEXT.get(alpha, alpha)}_{rows}_tf"
                  f"{'' if include_top else '_no_top'}.h5")
    x, inputs, data_format = _blocks.start(
        "MobileNet", weights, include_top, classes, pooling, classifier_activation,
        input_tensor, input_shape, default_size=rows, keras_file=keras_file,
        data_format=data_format)
    axis = 1 if data_format == "channels_first" else -1
    x = Conv2D(int(32 * alpha), 3, strides=2, padding="same", use_bias=False,
               data_format=data_format, name="conv1")(x)
    x = BatchNormalization(axis=axis, name="conv1_bn")(x)
    x = ReLU(6.0, name="conv1_relu")(x)
    for block_id, (filters, stride) in enumerate(_BLOCKS, start=1):
        x = _separable_block(x, int(filters * alpha), depth_multiplier, stride, block_id,
                             data_format)
    if include_top:
        x = GlobalAveragePooling2D(data_format=data_format, keepdims=True,
                                   name="global_average_pooling2d")(x)
        x = Dropout(dropout, name="dropout")(x)
        x = Conv2D(classes, 1, padding="same", data_format=data_format, name="conv_preds")(x)
        x = Reshape((classes,), name="reshape_2")(x)
        x = Activation(classifier_activation, name="predictions")(x)
    else:
        x = _blocks.top(x, False, pooling, classes, classifier_activation, data_format)
    return _blocks.finish(inputs, x, name or f"mobilenet_{alpha:0.2f}_{rows}", weights,
                          keras_file)
