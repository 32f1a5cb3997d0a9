"""MobileNetV2 (Sandler et al., 2018), Keras's `keras.applications.MobileNetV2`: a 3x3 stem,
17 inverted residual blocks (ReLU6), a 1x1 convolution to 1280 channels.

Layer names are Keras's (`Conv1`, `bn_Conv1`, `expanded_conv_depthwise`, `block_1_expand`,
`Conv_1`, `predictions`), so Keras's `mobilenet_v2_weights_tf_dim_ordering_tf_kernels_*.h5`
files load by name. Inputs are preprocessed in the 'tf' mode (`x / 127.5 - 1`).
"""

from __future__ import annotations

from typing import Any

from lamina._registry import register
from lamina.applications import _blocks
from lamina.applications.imagenet_utils import decode_predictions, mode_preprocess_input
from lamina.layers.activation import ReLU
from lamina.layers.convolutional import Conv2D
from lamina.layers.normalization import BatchNormalization
from lamina.models.model import Model

__all__ = ["MobileNetV2", "decode_predictions", "preprocess_input"]

preprocess_input = mode_preprocess_input("tf")

_WEIGHTS_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/"
                "mobilenet_v2_weights_tf_dim_ordering_tf_kernels")
_ROWS = (96, 128, 160, 192, 224)
# (expansion, filters, stride) of the 17 blocks.
_BLOCKS = ((1, 16, 1), (6, 24, 2), (6, 24, 1), (6, 32, 2), (6, 32, 1), (6, 32, 1), (6, 64, 2),
           (6, 64, 1), (6, 64, 1), (6, 64, 1), (6, 96, 1), (6, 96, 1), (6, 96, 1), (6, 160, 2),
           (6, 160, 1), (6, 160, 1), (6, 320, 1))


def _relu6(x: Any, name: str) -> Any:
    return ReLU(6.0, name=name)(x)


@register("MobileNetV2", kind="model")
def MobileNetV2(input_shape: tuple | None = None, alpha: float = 1.0, include_top: bool = True,
                weights: str | None = None, input_tensor: Any = None,
                pooling: str | None = None, classes: int = 1000,
                classifier_activation: Any = "softmax", name: str | None = None, *,
                data_format: str | None = None) -> Model:
    """Keras's MobileNetV2: 3,538,984 parameters with the top at alpha=1.

    Args:
        input_shape: `(height, width, 3)`, at least 32x32 (224x224 by default with the top).
        alpha: the width multiplier (channels scaled, rounded to multiples of 8).
        include_top: include the global average pooling and the `predictions` dense layer.
        weights: None (random initialization), the path of a weights file (loaded by layer
            name), or 'imagenet' for a local copy of Keras's file (nothing is downloaded).
        input_tensor: a symbolic tensor to build the model on.
        pooling: with `include_top=False`: None (4-D features), 'avg' or 'max'.
        classes: number of classes of the classifier.
        classifier_activation: activation of `predictions` (None: logits).
        name: the model's name (Keras's `mobilenetv2_{alpha:.2f}_{rows}` when None).
        data_format: 'channels_last' (default, Keras's) or 'channels_first'.
    """
    if weights == "imagenet" and alpha not in (0.35, 0.5, 0.75, 1.0, 1.3, 1.4):
        raise ValueError("With weights='imagenet', `alpha` must be one of 0.35, 0.5, 0.75, 1.0, "
                         f"1.3 or 1.4 (the published widths). Received: alpha={alpha!r}.")
    rows = _blocks.published_size(input_shape, data_format, _ROWS)
    keras_file = f"{_WEIGHTS_URL}_{float(alpha)}_{rows}{'' if include_top else '_no_top'}.h5"
    x, inputs, data_format = _blocks.start(
        "MobileNetV2", weights, include_top, classes, pooling, classifier_activation,
        input_tensor, input_shape, default_size=rows, keras_file=keras_file,
        data_format=data_format)
    axis = 1 if data_format == "channels_first" else -1
    x = Conv2D(_blocks.make_divisible(32 * alpha, 8), 3, strides=2, padding="same",
               use_bias=False, data_format=data_format, name="Conv1")(x)
    x = BatchNormalization(axis=axis, epsilon=1e-3, momentum=0.999, name="bn_Conv1")(x)
    x = _relu6(x, "Conv1_relu")
    for block_id, (expansion, filters, stride) in enumerate(_BLOCKS):
        prefix = f"block_{block_id}_" if block_id else "expanded_conv_"
        x = _blocks.inverted_residual(
            x, expanded=expansion * x.shape[axis] if block_id else None,
            filters=_blocks.make_divisible(int(filters * alpha), 8), kernel_size=3,
            stride=stride, prefix=prefix, data_format=data_format, activation=_relu6,
            bn_suffix="_BN")
    last = _blocks.make_divisible(1280 * alpha, 8) if alpha > 1.0 else 1280
    x = Conv2D(last, 1, use_bias=False, data_format=data_format, name="Conv_1")(x)
    x = BatchNormalization(axis=axis, epsilon=1e-3, momentum=0.999, name="Conv_1_bn")(x)
    x = _relu6(x, "out_relu")
    x = _blocks.top(x, include_top, pooling, classes, classifier_activation, data_format)
    return _blocks.finish(inputs, x, name or f"mobilenetv2_{alpha:0.2f}_{rows}", weights,
                          keras_file)
