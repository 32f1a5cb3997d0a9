"""EfficientNet B0..B7 (Tan & Le, 2019), Keras's `keras.applications.EfficientNetB*`: MBConv
blocks (1x1 expansion, depthwise convolution, squeeze-and-excitation, 1x1 projection, stochastic
depth on the residual), widths and depths scaled by the compound coefficients.

Layer names are Keras's (`stem_conv`, `block1a_dwconv`, `block2b_se_reduce`, `top_conv`,
`predictions`), so Keras's `efficientnetb0.h5` ... files load by name. The network takes raw
[0, 255] pixels: scaling and normalization are its first layers (`preprocess_input` is the
identity).
"""

from __future__ import annotations

import math
from typing import Any

from lamina._registry import register
from lamina.applications import _blocks
from lamina.applications.imagenet_utils import correct_pad, decode_predictions
from lamina.applications.imagenet_utils import identity_preprocess_input as preprocess_input
from lamina.initializers import VarianceScaling
from lamina.layers.convolutional import Conv2D, DepthwiseConv2D
from lamina.layers.merging import Add
from lamina.layers.normalization import BatchNormalization
from lamina.layers.preprocessing import Normalization, Rescaling
from lamina.layers.spatial import ZeroPadding2D
from lamina.models.model import Model

__all__ = ["EfficientNetB0", "EfficientNetB1", "EfficientNetB2", "EfficientNetB3",
           "EfficientNetB4", "EfficientNetB5", "EfficientNetB6", "EfficientNetB7",
           "decode_predictions", "preprocess_input"]

_WEIGHTS_URL = "https://storage.googleapis.com/keras-applications/"

# (kernel_size, repeats, filters_in, filters_out, expand_ratio, strides) of B0's seven stages;
# every block has squeeze-and-excitation with ratio 0.25.
_STAGES = ((3, 1, 32, 16, 1, 1), (3, 2, 16, 24, 6, 2), (5, 2, 24, 40, 6, 2),
           (3, 3, 40, 80, 6, 2), (5, 3, 80, 112, 6, 1), (5, 4, 112, 192, 6, 2),
           (3, 1, 192, 320, 6, 1))

CONV_INITIALIZER = {"scale": 2.0, "mode": "fan_out", "distribution": "truncated_normal"}
DENSE_INITIALIZER = {"scale": 1.0 / 3.0, "mode": "fan_out", "distribution": "uniform"}
IMAGENET_STDDEV_RGB = (0.229, 0.224, 0.225)


def conv_init() -> VarianceScaling:
    return VarianceScaling(**CONV_INITIALIZER)


def mbconv_block(x: Any, *, filters_in: int, filters_out: int, kernel_size: int, strides: int,
                 expand_ratio: float, se_ratio: float, drop_rate: float, activation: Any,
                 prefix: str, data_format: str, bn_momentum: float = 0.99,
                 depthwise_name: str = "dwconv", pad_strided: bool = True) -> Any:
    """The MBConv (inverted residual) block, Keras's EfficientNet `block` and EfficientNetV2
    `MBConvBlock`: 1x1 expansion, depthwise convolution, squeeze-and-excitation, 1x1
    projection, and a residual with stochastic depth where the shape is kept.

    v1 pads strided depthwise convolutions explicitly (`pad_strided`) and names them `dwconv`;
    v2 uses 'same' padding, `dwconv2` and batch-norm momentum 0.9.
    """
    axis = 1 if data_format == "channels_first" else -1
    inputs = x
    filters = filters_in * expand_ratio
    if expand_ratio != 1:
        x = Conv2D(filters, 1, padding="same", use_bias=False, kernel_initializer=conv_init(),
                   data_format=data_format, name=f"{prefix}expand_conv")(x)
        x = BatchNormalization(axis=axis, momentum=bn_momentum, name=f"{prefix}expand_bn")(x)
        x = _blocks.activation(x, activation, f"{prefix}expand_activation")
    padding = "same"
    if strides == 2 and pad_strided:
        x = ZeroPadding2D(correct_pad(x, kernel_size, data_format), data_format=data_format,
                          name=f"{prefix}dwconv_pad")(x)
        padding = "valid"
    x = DepthwiseConv2D(kernel_size, strides=strides, padding=padding, use_bias=False,
                        depthwise_initializer=conv_init(), data_format=data_format,
                        name=f"{prefix}{depthwise_name}")(x)
    x = BatchNormalization(axis=axis, momentum=bn_momentum, name=f"{prefix}bn")(x)
    x = _blocks.activation(x, activation, f"{prefix}activation")
    if 0 < se_ratio <= 1:
        x = _blocks.squeeze_excite(x, filters, max(1, int(filters_in * se_ratio)), prefix,
                                   data_format, activation=activation,
                                   kernel_initializer=conv_init())
    x = Conv2D(filters_out, 1, padding="same", use_bias=False, kernel_initializer=conv_init(),
               data_format=data_format, name=f"{prefix}project_conv")(x)
    x = BatchNormalization(axis=axis, momentum=bn_momentum, name=f"{prefix}project_bn")(x)
    if strides == 1 and filters_in == filters_out:
        x = _blocks.stochastic_depth_dropout(x, drop_rate, f"{prefix}drop")
        x = Add(name=f"{prefix}add")([x, inputs])
    return x


def _efficientnet(width: float, depth: float, default_size: int, dropout_rate: float,
                  weights_name: str, include_top: bool, weights: Any, input_tensor: Any,
                  input_shape: Any, pooling: Any, classes: int, classifier_activation: Any,
                  name: str, data_format: str | None, drop_connect_rate: float = 0.2) -> Model:
    keras_file = f"{_WEIGHTS_URL}{name}{'' if include_top else '_notop'}.h5"
    x, inputs, data_format = _blocks.start(
        f"efficientnet{weights_name}", weights, include_top, classes, pooling,
        classifier_activation, input_tensor, input_shape, default_size=default_size,
        keras_file=keras_file, data_format=data_format)
    axis = 1 if data_format == "channels_first" else -1

    def round_filters(filters: int) -> int:
        return _blocks.make_divisible(filters * width, 8)

    def round_repeats(repeats: int) -> int:
        return int(math.ceil(depth * repeats))

    x = Rescaling(1.0 / 255.0, name="rescaling")(x)
    x = Normalization(axis=axis, name="normalization")(x)
    if weights == "imagenet":
        # Keras's weights store the variance as std (not std**2): dividing once more by sqrt(std)
        # completes the original (x - mean) / std.
        x = Rescaling([1.0 / math.sqrt(s) for s in IMAGENET_STDDEV_RGB], name="rescaling_1")(x)
    x = ZeroPadding2D(correct_pad(x, 3, data_format), data_format=data_format,
                      name="stem_conv_pad")(x)
    x = Conv2D(round_filters(32), 3, strides=2, padding="valid", use_bias=False,
               kernel_initializer=conv_init(), data_format=data_format, name="stem_conv")(x)
    x = BatchNormalization(axis=axis, name="stem_bn")(x)
    x = _blocks.activation(x, "swish", "stem_activation")

    total = float(sum(round_repeats(stage[1]) for stage in _STAGES))
    index = 0
    for stage, (kernel, repeats, filters_in, filters_out, expand, strides) in enumerate(_STAGES):
        filters_in, filters_out = round_filters(filters_in), round_filters(filters_out)
        for repeat in range(round_repeats(repeats)):
            x = mbconv_block(
                x, filters_in=filters_in if repeat == 0 else filters_out,
                filters_out=filters_out, kernel_size=kernel,
                strides=strides if repeat == 0 else 1, expand_ratio=expand, se_ratio=0.25,
                drop_rate=drop_connect_rate * index / total, activation="swish",
                prefix=f"block{stage + 1}{chr(repeat + 97)}_", data_format=data_format)
            index += 1

    x = Conv2D(round_filters(1280), 1, padding="same", use_bias=False,
               kernel_initializer=conv_init(), data_format=data_format, name="top_conv")(x)
    x = BatchNormalization(axis=axis, name="top_bn")(x)
    x = _blocks.activation(x, "swish", "top_activation")
    x = _blocks.top(x, include_top, pooling, classes, classifier_activation, data_format,
                    dropout=dropout_rate, kernel_initializer=VarianceScaling(**DENSE_INITIALIZER))
    return _blocks.finish(inputs, x, name, weights, keras_file)


def _variant(letter: str, width: float, depth: float, size: int, dropout: float,
             params: str):
    public = f"EfficientNet{letter.upper()}"

    def build(include_top: bool = True, weights: str | None = None, input_tensor: Any = None,
              input_shape: tuple | None = None, pooling: str | None = None, classes: int = 1000,
              classifier_activation: Any = "softmax", name: str = f"efficientnet{letter}", *,
              data_format: str | None = None, dropout_rate: float = dropout,
              drop_connect_rate: float = 0.2) -> Model:
        return _efficientnet(width, depth, size, dropout_rate, letter, include_top, weights,
                             input_tensor, input_shape, pooling, classes, classifier_activation,
                             name, data_format, drop_connect_rate)

    build.__name__ = build.__qualname__ = public
    build.__doc__ = (f"Keras's {public}: width x{width}, depth x{depth}, {size}x{size} "
                     f"images, {params} parameters with the top." + _ARGS.format(size=size))
    return register(public, kind="model")(build)


_ARGS = """

    Args:
        include_top: include `avg_pool`, `top_dropout` and the `predictions` dense layer.
        weights: None (random initialization), the path of a weights file (loaded by layer
            name: Keras's `efficientnetb0.h5`, `efficientnetb0_notop.h5`, ... work), or
            'imagenet' for a local copy of that file (nothing is downloaded).
        input_tensor: a symbolic tensor to build the model on.
        input_shape: `(height, width, 3)`, at least 32x32; {size}x{size} by default with the
            top, free without. Pixels are raw [0, 255] values.
        pooling: with `include_top=False`: None (4-D features), 'avg' or 'max'.
        classes: number of classes of the classifier.
        classifier_activation: activation of `predictions` (None: logits).
        name: the model's name.
        data_format: 'channels_last' (default, Keras's) or 'channels_first'.
        dropout_rate, drop_connect_rate: (keyword-only, as Keras's `EfficientNet()`) dropout
            before `predictions`, and the stochastic depth rate reached by the last block.
    """

EfficientNetB0 = _variant("b0", 1.0, 1.0, 224, 0.2, "5,330,571")
EfficientNetB1 = _variant("b1", 1.0, 1.1, 240, 0.2, "7,856,239")
EfficientNetB2 = _variant("b2", 1.1, 1.2, 260, 0.3, "9,177,569")
EfficientNetB3 = _variant("b3", 1.2, 1.4, 300, 0.3, "12,320,535")
EfficientNetB4 = _variant("b4", 1.4, 1.8, 380, 0.4, "19,466,823")
EfficientNetB5 = _variant("b5", 1.6, 2.2, 456, 0.4, "30,562,527")
EfficientNetB6 = _variant("b6", 1.8, 2.6, 528, 0.5, "43,265,143")
EfficientNetB7 = _variant("b7", 2.0, 3.1, 600, 0.5, "66,658,687")
