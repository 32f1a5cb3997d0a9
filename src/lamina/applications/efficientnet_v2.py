"""EfficientNetV2 B0..B3, S, M, L (Tan & Le, 2021), Keras's `keras.applications.EfficientNetV2*`:
fused-MBConv blocks (one full convolution instead of expansion + depthwise) in the early
stages, MBConv blocks with squeeze-and-excitation later.

Layer names are Keras's (`stem_conv`, `block1a_project_conv`, `block4a_dwconv2`,
`block6b_se_reduce`, `top_conv`, `predictions`), so Keras's `efficientnetv2-b0.h5` ... files
load by name. The network takes raw [0, 255] pixels (`include_preprocessing=True`), so
`preprocess_input` is the identity.
"""

from __future__ import annotations

import math
from typing import Any

from lamina._registry import register
from lamina.applications import _blocks
from lamina.applications.efficientnet import DENSE_INITIALIZER, conv_init, mbconv_block
from lamina.applications.imagenet_utils import decode_predictions
from lamina.applications.imagenet_utils import identity_preprocess_input as preprocess_input
from lamina.initializers import VarianceScaling
from lamina.layers.convolutional import Conv2D
from lamina.layers.merging import Add
from lamina.layers.normalization import BatchNormalization
from lamina.layers.preprocessing import Normalization, Rescaling
from lamina.models.model import Model

__all__ = ["EfficientNetV2B0", "EfficientNetV2B1", "EfficientNetV2B2", "EfficientNetV2B3",
           "EfficientNetV2L", "EfficientNetV2M", "EfficientNetV2S", "decode_predictions",
           "preprocess_input"]

_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/efficientnet_v2/"
_BN_MOMENTUM = 0.9

# (kernel, repeats, filters_in, filters_out, expand_ratio, strides, se_ratio, fused) per stage.
_B = ((3, 1, 32, 16, 1, 1, 0, True), (3, 2, 16, 32, 4, 2, 0, True), (3, 2, 32, 48, 4, 2, 0, True),
      (3, 3, 48, 96, 4, 2, 0.25, False), (3, 5, 96, 112, 6, 1, 0.25, False),
      (3, 8, 112, 192, 6, 2, 0.25, False))
_STAGES = {
    "b": _B,
    "s": ((3, 2, 24, 24, 1, 1, 0, True), (3, 4, 24, 48, 4, 2, 0, True),
          (3, 4, 48, 64, 4, 2, 0, True), (3, 6, 64, 128, 4, 2, 0.25, False),
          (3, 9, 128, 160, 6, 1, 0.25, False), (3, 15, 160, 256, 6, 2, 0.25, False)),
    "m": ((3, 3, 24, 24, 1, 1, 0, True), (3, 5, 24, 48, 4, 2, 0, True),
          (3, 5, 48, 80, 4, 2, 0, True), (3, 7, 80, 160, 4, 2, 0.25, False),
          (3, 14, 160, 176, 6, 1, 0.25, False), (3, 18, 176, 304, 6, 2, 0.25, False),
          (3, 5, 304, 512, 6, 1, 0.25, False)),
    "l": ((3, 4, 32, 32, 1, 1, 0, True), (3, 7, 32, 64, 4, 2, 0, True),
          (3, 7, 64, 96, 4, 2, 0, True), (3, 10, 96, 192, 4, 2, 0.25, False),
          (3, 19, 192, 224, 6, 1, 0.25, False), (3, 25, 224, 384, 6, 2, 0.25, False),
          (3, 7, 384, 640, 6, 1, 0.25, False)),
}


def fused_mbconv_block(x: Any, *, filters_in: int, filters_out: int, kernel_size: int,
                       strides: int, expand_ratio: float, se_ratio: float, drop_rate: float,
                       prefix: str, data_format: str) -> Any:
    """Keras's `FusedMBConvBlock`: a full kxk (strided) expansion convolution, optional
    squeeze-and-excitation, 1x1 projection; without expansion, one kxk convolution with its
    activation. Residual with stochastic depth where the shape is kept."""
    axis = 1 if data_format == "channels_first" else -1
    inputs = x
    filters = filters_in * expand_ratio
    if expand_ratio != 1:
        x = Conv2D(filters, kernel_size, strides=strides, padding="same", use_bias=False,
                   kernel_initializer=conv_init(), data_format=data_format,
                   name=f"{prefix}expand_conv")(x)
        x = BatchNormalization(axis=axis, momentum=_BN_MOMENTUM, name=f"{prefix}expand_bn")(x)
        x = _blocks.activation(x, "swish", f"{prefix}expand_activation")
    if 0 < se_ratio <= 1:
        x = _blocks.squeeze_excite(x, filters, max(1, int(filters_in * se_ratio)), prefix,
                                   data_format, activation="swish",
                                   kernel_initializer=conv_init())
    expanded = expand_ratio != 1
    x = Conv2D(filters_out, 1 if expanded else kernel_size, strides=1 if expanded else strides,
               padding="same", use_bias=False, kernel_initializer=conv_init(),
               data_format=data_format, name=f"{prefix}project_conv")(x)
    x = BatchNormalization(axis=axis, momentum=_BN_MOMENTUM, name=f"{prefix}project_bn")(x)
    if not expanded:
        x = _blocks.activation(x, "swish", f"{prefix}project_activation")
    if strides == 1 and filters_in == filters_out:
        x = _blocks.stochastic_depth_dropout(x, drop_rate, f"{prefix}drop")
        x = Add(name=f"{prefix}add")([x, inputs])
    return x


def _round_filters(filters: float, width: float) -> int:
    # EfficientNetV2 rounds to multiples of 8 without v1's "no more than 10% down" rule.
    return int(max(8, int(filters * width + 4) // 8 * 8))


def _efficientnet_v2(variant: str, width: float, depth: float, default_size: int,
                     include_top: bool, weights: Any, input_tensor: Any, input_shape: Any,
                     pooling: Any, classes: int, classifier_activation: Any,
                     include_preprocessing: bool, name: str, data_format: str | None,
                     dropout_rate: float = 0.2, drop_connect_rate: float = 0.2) -> Model:
    keras_file = f"{_WEIGHTS_URL}{name}{'' if include_top else '_notop'}.h5"
    x, inputs, data_format = _blocks.start(
        f"efficientnetv2-{variant}", weights, include_top, classes, pooling,
        classifier_activation, input_tensor, input_shape, default_size=default_size,
        keras_file=keras_file, data_format=data_format)
    axis = 1 if data_format == "channels_first" else -1
    stages = _STAGES["b" if variant.startswith("b") else variant]
    if include_preprocessing:
        if variant.startswith("b") and x.shape[axis] == 3:
            x = Rescaling(1.0 / 255, name="rescaling")(x)
            x = Normalization(axis=axis, mean=[0.485, 0.456, 0.406],
                              variance=[0.229**2, 0.224**2, 0.225**2], name="normalization")(x)
        else:
            x = Rescaling(1.0 / 128.0, offset=-1, name="rescaling")(x)
    x = Conv2D(_round_filters(stages[0][2], width), 3, strides=2, padding="same", use_bias=False,
               kernel_initializer=conv_init(), data_format=data_format, name="stem_conv")(x)
    x = BatchNormalization(axis=axis, momentum=_BN_MOMENTUM, name="stem_bn")(x)
    x = _blocks.activation(x, "swish", "stem_activation")

    # Keras spreads the drop rate over the unscaled number of blocks.
    total = float(sum(stage[1] for stage in stages))
    index = 0
    for stage, (kernel, repeats, filters_in, filters_out, expand, strides, se, fused) in \
            enumerate(stages):
        filters_in, filters_out = _round_filters(filters_in, width), \
            _round_filters(filters_out, width)
        for repeat in range(int(math.ceil(depth * repeats))):
            arguments = dict(filters_in=filters_in if repeat == 0 else filters_out,
                             filters_out=filters_out, kernel_size=kernel,
                             strides=strides if repeat == 0 else 1, expand_ratio=expand,
                             se_ratio=se, drop_rate=drop_connect_rate * index / total,
                             prefix=f"block{stage + 1}{chr(repeat + 97)}_",
                             data_format=data_format)
            if fused:
                x = fused_mbconv_block(x, **arguments)
            else:
                x = mbconv_block(x, **arguments, activation="swish", bn_momentum=_BN_MOMENTUM,
                                 depthwise_name="dwconv2", pad_strided=False)
            index += 1

    x = Conv2D(_round_filters(1280, width), 1, padding="same", use_bias=False,
               kernel_initializer=conv_init(), data_format=data_format, name="top_conv")(x)
    x = BatchNormalization(axis=axis, momentum=_BN_MOMENTUM, name="top_bn")(x)
    x = _blocks.activation(x, "swish", "top_activation")
    x = _blocks.top(x, include_top, pooling, classes, classifier_activation, data_format,
                    dropout=dropout_rate, kernel_initializer=VarianceScaling(**DENSE_INITIALIZER))
    return _blocks.finish(inputs, x, name, weights, keras_file)


def _variant(variant: str, width: float, depth: float, size: int, params: str):
    public = f"EfficientNetV2{variant.upper()}"

    def build(include_top: bool = True, weights: str | None = None, input_tensor: Any = None,
              input_shape: tuple | None = None, pooling: str | None = None, classes: int = 1000,
              classifier_activation: Any = "softmax", include_preprocessing: bool = True,
              name: str = f"efficientnetv2-{variant}", *, data_format: str | None = None,
              dropout_rate: float = 0.2, drop_connect_rate: float = 0.2) -> Model:
        return _efficientnet_v2(variant, width, depth, size, include_top, weights, input_tensor,
                                input_shape, pooling, classes, classifier_activation,
                                include_preprocessing, name, data_format, dropout_rate,
                                drop_connect_rate)

    build.__name__ = build.__qualname__ = public
    build.__doc__ = (f"Keras's {public}: {size}x{size} images, {params} parameters with the "
                     "top." + _ARGS.format(size=size))
    return register(public, kind="model")(build)


_ARGS = """

    Args:
        include_top: include `avg_pool`, `top_dropout` and the `predictions` dense layer.
        weights: None (random initialization), the path of a weights file (loaded by layer
            name: Keras's `efficientnetv2-b0.h5`, ... work), or 'imagenet' for a local copy of
            that file (nothing is downloaded).
        input_tensor: a symbolic tensor to build the model on.
        input_shape: `(height, width, 3)`, at least 32x32; {size}x{size} by default with the
            top, free without.
        pooling: with `include_top=False`: None (4-D features), 'avg' or 'max'.
        classes: number of classes of the classifier.
        classifier_activation: activation of `predictions` (None: logits).
        include_preprocessing: scale (and for B0..B3 normalize) raw [0, 255] pixels inside
            the model.
        name: the model's name.
        data_format: 'channels_last' (default, Keras's) or 'channels_first'.
        dropout_rate, drop_connect_rate: (keyword-only, as Keras's `EfficientNetV2()`)
            dropout before `predictions`, and the stochastic depth rate reached by the last
            block.
    """

EfficientNetV2B0 = _variant("b0", 1.0, 1.0, 224, "7,200,312")
EfficientNetV2B1 = _variant("b1", 1.0, 1.1, 240, "8,212,124")
EfficientNetV2B2 = _variant("b2", 1.1, 1.2, 260, "10,178,374")
EfficientNetV2B3 = _variant("b3", 1.2, 1.4, 300, "14,467,622")
EfficientNetV2S = _variant("s", 1.0, 1.0, 384, "21,612,360")
EfficientNetV2M = _variant("m", 1.0, 1.0, 480, "54,431,388")
EfficientNetV2L = _variant("l", 1.0, 1.0, 480, "119,027,848")
