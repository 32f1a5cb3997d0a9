"""MobileNetV3 Small and Large (Howard et al., 2019), Keras's `keras.applications.MobileNetV3*`:
inverted residual blocks with squeeze-and-excitation (hard sigmoid gate) and hard-swish, a 1x1
convolutional head. `minimalistic=True` drops the excitation, hard-swish and 5x5 kernels.

Layer names are Keras's (`conv`, `conv_bn`, `expanded_conv_depthwise`,
`expanded_conv_1_squeeze_excite_conv`, `conv_1`, `conv_2`, `logits`), so Keras's
`weights_mobilenet_v3_*.h5` files load by name. The network scales its raw [0, 255] input to
[-1, 1] itself (`include_preprocessing=True`), so `preprocess_input` is the identity.
"""

from __future__ import annotations

from typing import Any, Callable

from lamina._registry import register
from lamina.applications import _blocks
from lamina.applications.imagenet_utils import decode_predictions
from lamina.applications.imagenet_utils import identity_preprocess_input as preprocess_input
from lamina.layers.activation import ReLU
from lamina.layers.convolutional import Conv2D
from lamina.layers.core import Activation, Dropout
from lamina.layers.merging import Multiply
from lamina.layers.normalization import BatchNormalization
from lamina.layers.pooling import GlobalAveragePooling2D
from lamina.layers.preprocessing import Rescaling
from lamina.layers.reshaping import Flatten
from lamina.models.model import Model

__all__ = ["MobileNetV3Large", "MobileNetV3Small", "decode_predictions", "preprocess_input"]

_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v3/"

# (expansion, filters, kernel ('k': 5, or 3 when minimalistic), stride, squeeze-excite,
# hard-swish) of each block, Keras's `stack_fn`.
_SMALL = ((1, 16, 3, 2, True, False), (72 / 16, 24, 3, 2, False, False),
          (88 / 24, 24, 3, 1, False, False), (4, 40, "k", 2, True, True),
          (6, 40, "k", 1, True, True), (6, 40, "k", 1, True, True), (3, 48, "k", 1, True, True),
          (3, 48, "k", 1, True, True), (6, 96, "k", 2, True, True), (6, 96, "k", 1, True, True),
          (6, 96, "k", 1, True, True))
_LARGE = ((1, 16, 3, 1, False, False), (4, 24, 3, 2, False, False), (3, 24, 3, 1, False, False),
          (3, 40, "k", 2, True, False), (3, 40, "k", 1, True, False),
          (3, 40, "k", 1, True, False), (6, 80, 3, 2, False, True), (2.5, 80, 3, 1, False, True),
          (2.3, 80, 3, 1, False, True), (2.3, 80, 3, 1, False, True),
          (6, 112, 3, 1, True, True), (6, 112, 3, 1, True, True), (6, 160, "k", 2, True, True),
          (6, 160, "k", 1, True, True), (6, 160, "k", 1, True, True))


def _relu(x: Any, name: str) -> Any:
    return ReLU(name=name)(x)


def _hard_swish(x: Any, name: str) -> Any:
    return Activation("hard_swish", name=name)(x)


def _excite(filters: int, prefix: str, data_format: str) -> Callable[[Any], Any]:
    """MobileNetV3's squeeze-and-excitation: ReLU bottleneck, hard-sigmoid gate."""

    def excite(inputs: Any) -> Any:
        x = GlobalAveragePooling2D(data_format=data_format, keepdims=True,
                                   name=f"{prefix}squeeze_excite_avg_pool")(inputs)
        x = Conv2D(_blocks.make_divisible(filters * 0.25), 1, padding="same",
                   data_format=data_format, name=f"{prefix}squeeze_excite_conv")(x)
        x = ReLU(name=f"{prefix}squeeze_excite_relu")(x)
        x = Conv2D(filters, 1, padding="same", data_format=data_format,
                   name=f"{prefix}squeeze_excite_conv_1")(x)
        x = Activation("hard_sigmoid", name=f"{prefix}squeeze_excite_hard_sigmoid")(x)
        return Multiply(name=f"{prefix}squeeze_excite_mul")([inputs, x])

    return excite


def _mobilenet_v3(model_type: str, stack: tuple, last_point: int, input_shape: Any,
                  alpha: float, minimalistic: bool, include_top: bool, weights: Any,
                  input_tensor: Any, classes: int, pooling: Any, dropout_rate: float,
                  classifier_activation: Any, include_preprocessing: bool, name: str,
                  data_format: str | None) -> Model:
    if weights == "imagenet" and alpha not in ((1.0,) if minimalistic else (0.75, 1.0)):
        raise ValueError(
            "With weights='imagenet', `alpha` must be 0.75 or 1.0 (1.0 when minimalistic), the "
            f"published widths. Received: alpha={alpha!r}, minimalistic={minimalistic!r}.")
    weights_name = f"{model_type}{'_minimalistic' if minimalistic else ''}_224_{alpha}_float"
    keras_file = (f"{_WEIGHTS_URL}weights_mobilenet_v3_{weights_name}"
                  f"{'' if include_top else '_no_top_v2'}.h5")
    x, inputs, data_format = _blocks.start(
        f"MobileNetV3{model_type.title()}", weights, include_top, classes, pooling,
        classifier_activation, input_tensor, input_shape, default_size=224,
        keras_file=keras_file, data_format=data_format, require_flatten=False)
    axis = 1 if data_format == "channels_first" else -1
    kernel, activation = (3, _relu) if minimalistic else (5, _hard_swish)
    if include_preprocessing:
        x = Rescaling(1.0 / 127.5, offset=-1.0, name="rescaling")(x)
    x = Conv2D(16, 3, strides=2, padding="same", use_bias=False, data_format=data_format,
               name="conv")(x)
    x = BatchNormalization(axis=axis, epsilon=1e-3, momentum=0.999, name="conv_bn")(x)
    x = activation(x, "conv_activation")
    for block_id, (expansion, filters, size, stride, excite, swish) in enumerate(stack):
        prefix = f"expanded_conv_{block_id}_" if block_id else "expanded_conv_"
        expanded = _blocks.make_divisible(x.shape[axis] * expansion)
        x = _blocks.inverted_residual(
            x, expanded=expanded if block_id else None,
            filters=_blocks.make_divisible(filters * alpha), kernel_size=kernel if size == "k"
            else size, stride=stride, prefix=prefix, data_format=data_format,
            activation=activation if swish else _relu, pad_name=f"{prefix}depthwise_pad",
            excite=_excite(expanded, prefix, data_format) if excite and not minimalistic
            else None)
    x = Conv2D(_blocks.make_divisible(x.shape[axis] * 6), 1, padding="same", use_bias=False,
               data_format=data_format, name="conv_1")(x)
    x = BatchNormalization(axis=axis, epsilon=1e-3, momentum=0.999, name="conv_1_bn")(x)
    x = activation(x, "conv_1_activation")
    if include_top:
        if alpha > 1.0:
            last_point = _blocks.make_divisible(last_point * alpha)
        x = GlobalAveragePooling2D(data_format=data_format, keepdims=True, name="avg_pool")(x)
        x = Conv2D(last_point, 1, padding="same", data_format=data_format, name="conv_2")(x)
        x = activation(x, "conv_2_activation")
        if dropout_rate > 0:
            x = Dropout(dropout_rate, name="dropout")(x)
        x = Conv2D(classes, 1, padding="same", data_format=data_format, name="logits")(x)
        x = Flatten(data_format=data_format, name="flatten")(x)
        x = Activation(classifier_activation, name="predictions")(x)
    else:
        x = _blocks.top(x, False, pooling, classes, classifier_activation, data_format)
    return _blocks.finish(inputs, x, name, weights, keras_file)


def _variant(model_type: str, stack: tuple, last_point: int, params: str):
    public = f"MobileNetV3{model_type.title()}"

    def build(input_shape: tuple | None = None, alpha: float = 1.0, minimalistic: bool = False,
              include_top: bool = True, weights: str | None = None, input_tensor: Any = None,
              classes: int = 1000, pooling: str | None = None, dropout_rate: float = 0.2,
              classifier_activation: Any = "softmax", include_preprocessing: bool = True,
              name: str = public, *, data_format: str | None = None) -> Model:
        return _mobilenet_v3(model_type, stack, last_point, input_shape, alpha, minimalistic,
                             include_top, weights, input_tensor, classes, pooling, dropout_rate,
                             classifier_activation, include_preprocessing, name, data_format)

    build.__name__ = build.__qualname__ = public
    build.__doc__ = f"Keras's {public}: {params} parameters with the top at alpha=1." + _ARGS
    return register(public, kind="model")(build)


_ARGS = """

    Args:
        input_shape: `(height, width, 3)`, at least 32x32; free size by default (the head
            pools globally).
        alpha: the width multiplier of the blocks.
        minimalistic: ReLU and 3x3 kernels everywhere, no squeeze-and-excitation.
        include_top: include the 1x1 convolutional head (`conv_2`, `logits`, `predictions`).
        weights: None (random initialization), the path of a weights file (loaded by layer
            name), or 'imagenet' for a local copy of Keras's file (nothing is downloaded).
        input_tensor: a symbolic tensor to build the model on.
        classes: number of classes of the classifier.
        pooling: with `include_top=False`: None (4-D features), 'avg' or 'max'.
        dropout_rate: dropout before `logits`.
        classifier_activation: activation of `predictions` (None: logits).
        include_preprocessing: scale raw [0, 255] pixels to [-1, 1] inside the model.
        name: the model's name.
        data_format: 'channels_last' (default, Keras's) or 'channels_first'.
    """

MobileNetV3Small = _variant("small", _SMALL, 1024, "2,554,968")
MobileNetV3Large = _variant("large", _LARGE, 1280, "5,507,432")
