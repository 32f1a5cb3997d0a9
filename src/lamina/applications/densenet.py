"""DenseNet 121/169/201 (Huang et al., 2017), Keras's `keras.applications.DenseNet*`: dense
blocks whose layers (BN-ReLU-1x1-BN-ReLU-3x3, growth rate 32) concatenate every earlier feature
map, joined by transitions that halve the channels and the size.

Layer names are Keras's (`conv1_conv`, `conv2_block1_0_bn`, `pool2_conv`, `bn`, `predictions`),
so Keras's `densenet121_weights_tf_dim_ordering_tf_kernels*.h5` files load by name. Inputs are
preprocessed in the 'torch' mode. Unlike Keras, 'channels_first' works too.
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
from lamina.layers.spatial import ZeroPadding2D
from lamina.models.model import Model

__all__ = ["DenseNet121", "DenseNet169", "DenseNet201", "decode_predictions",
           "preprocess_input"]

preprocess_input = mode_preprocess_input("torch")

_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/densenet/"
_GROWTH_RATE = 32


def _norm_relu(x: Any, name: str, data_format: str) -> Any:
    axis = 1 if data_format == "channels_first" else -1
    x = BatchNormalization(axis=axis, epsilon=1.001e-5, name=f"{name}_bn")(x)
    return Activation("relu", name=f"{name}_relu")(x)


def _conv_block(x: Any, name: str, data_format: str) -> Any:
    """One dense layer: its `growth_rate` new channels are concatenated to its input."""
    y = _norm_relu(x, f"{name}_0", data_format)
    y = Conv2D(4 * _GROWTH_RATE, 1, use_bias=False, data_format=data_format,
               name=f"{name}_1_conv")(y)
    y = _norm_relu(y, f"{name}_1", data_format)
    y = Conv2D(_GROWTH_RATE, 3, padding="same", use_bias=False, data_format=data_format,
               name=f"{name}_2_conv")(y)
    axis = 1 if data_format == "channels_first" else -1
    return Concatenate(axis=axis, name=f"{name}_concat")([x, y])


def _transition(x: Any, name: str, data_format: str) -> Any:
    axis = 1 if data_format == "channels_first" else -1
    x = _norm_relu(x, name, data_format)
    x = Conv2D(int(x.shape[axis] * 0.5), 1, use_bias=False, data_format=data_format,
               name=f"{name}_conv")(x)
    return AveragePooling2D(2, strides=2, data_format=data_format, name=f"{name}_pool")(x)


def _densenet(blocks: tuple[int, ...], model_name: str, include_top: bool, weights: Any,
              input_tensor: Any, input_shape: Any, pooling: Any, classes: int,
              classifier_activation: Any, name: str, data_format: str | None) -> Model:
    keras_file = (f"{_WEIGHTS_URL}{model_name}_weights_tf_dim_ordering_tf_kernels"
                  f"{'' if include_top else '_notop'}.h5")
    x, inputs, data_format = _blocks.start(
        model_name, weights, include_top, classes, pooling, classifier_activation,
        input_tensor, input_shape, default_size=224, keras_file=keras_file,
        data_format=data_format)
    x = ZeroPadding2D(((3, 3), (3, 3)), data_format=data_format, name="zero_padding2d")(x)
    x = Conv2D(64, 7, strides=2, use_bias=False, data_format=data_format, name="conv1_conv")(x)
    x = _norm_relu(x, "conv1", data_format)
    x = ZeroPadding2D(((1, 1), (1, 1)), data_format=data_format, name="zero_padding2d_1")(x)
    x = MaxPooling2D(3, strides=2, data_format=data_format, name="pool1")(x)
    for stage, count in enumerate(blocks, start=2):
        for index in range(count):
            x = _conv_block(x, f"conv{stage}_block{index + 1}", data_format)
        if stage < 5:
            x = _transition(x, f"pool{stage}", data_format)
    axis = 1 if data_format == "channels_first" else -1
    x = BatchNormalization(axis=axis, epsilon=1.001e-5, name="bn")(x)
    x = Activation("relu", name="relu")(x)
    x = _blocks.top(x, include_top, pooling, classes, classifier_activation, data_format)
    return _blocks.finish(inputs, x, name, weights, keras_file)


def _variant(depth: int, blocks: tuple[int, ...], params: str):
    public, model_name = f"DenseNet{depth}", f"densenet{depth}"

    def build(include_top: bool = True, weights: str | None = None, input_tensor: Any = None,
              input_shape: tuple | None = None, pooling: str | None = None, classes: int = 1000,
              classifier_activation: Any = "softmax", name: str = model_name, *,
              data_format: str | None = None) -> Model:
        return _densenet(blocks, model_name, include_top, weights, input_tensor, input_shape,
                         pooling, classes, classifier_activation, name, data_format)

    build.__name__ = build.__qualname__ = public
    build.__doc__ = (f"Keras's {public}: dense blocks of {list(blocks)} layers, {params} "
                     "parameters with the top." + _ARGS.format(model_name))
    return register(public, kind="model")(build)


_ARGS = """

    Args:
        include_top: include `avg_pool` and the `predictions` dense layer.
        weights: None (random initialization), the path of a weights file (loaded by layer
            name: Keras's `{0}_weights_tf_dim_ordering_tf_kernels*.h5` work), or 'imagenet'
            for a local copy of that file (nothing is downloaded).
        input_tensor: a symbolic tensor to build the model on.
        input_shape: `(height, width, 3)`, at least 32x32; 224x224 by default with the top.
        pooling: with `include_top=False`: None (4-D features), 'avg' or 'max'.
        classes: number of classes of the classifier.
        classifier_activation: activation of `predictions` (None: logits).
        name: the model's name.
        data_format: 'channels_last' (default, Keras's) or 'channels_first'.
    """

DenseNet121 = _variant(121, (6, 12, 24, 16), "8,062,504")
DenseNet169 = _variant(169, (6, 12, 32, 32), "14,307,880")
DenseNet201 = _variant(201, (6, 12, 48, 32), "20,242,984")
