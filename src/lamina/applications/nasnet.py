"""NASNet-A (Zoph et al., 2018), Keras's `keras.applications.NASNetMobile` and `NASNetLarge`:
cells found by architecture search, stacked as stem -> two reduction cells -> N normal cells ->
reduction -> N normal -> reduction -> N normal. Each cell reads the two previous cells' outputs
(`x` and `p`); `p` is first adjusted to `x`'s size and width.

Layers with weights carry Keras's names (`stem_conv1`, `normal_conv_1_0`,
`separable_conv_1_normal_left1_0`, `adjust_bn_stem_2`, ..., `predictions`) so Keras's weights
files load by name; the ones Keras leaves unnamed (ReLUs, the adjust cells' padding, cropping
and concatenation, one addition per reduction cell, the pooling of the top) take Keras's
automatic names in creation order (`activation`, `activation_1`, ...), as in a fresh Keras
session. Inputs are preprocessed in the 'tf' mode.
"""

from __future__ import annotations

from typing import Any

from lamina._registry import register
from lamina.applications import _blocks
from lamina.applications._builder import KerasFile
from lamina.applications.imagenet_utils import (
    correct_pad,
    decode_predictions,
    mode_preprocess_input,
)
from lamina.layers.convolutional import Conv2D, SeparableConv2D
from lamina.layers.core import Activation, Dense
from lamina.layers.merging import Add, Concatenate
from lamina.layers.normalization import BatchNormalization
from lamina.layers.pooling import (
    AveragePooling2D,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    MaxPooling2D,
)
from lamina.layers.spatial import Cropping2D, ZeroPadding2D
from lamina.models.model import Model

__all__ = ["NASNetLarge", "NASNetMobile", "decode_predictions", "preprocess_input"]

preprocess_input = mode_preprocess_input("tf")

_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/nasnet/"


class _Builder:
    """Keras's cells, with its automatic numbering of the layers it leaves unnamed (named
    layers do not advance Keras's counters)."""

    def __init__(self, data_format: str):
        self.data_format = data_format
        self.axis = 1 if data_format == "channels_first" else -1
        self.counts: dict[str, int] = {}

    def auto(self, kind: str) -> str:
        index = self.counts.get(kind, 0)
        self.counts[kind] = index + 1
        return f"{kind}_{index}" if index else kind

    def relu(self, x: Any, name: str | None = None) -> Any:
        return Activation("relu", name=name or self.auto("activation"))(x)

    def norm(self, x: Any, name: str) -> Any:
        return BatchNormalization(axis=self.axis, momentum=0.9997, epsilon=1e-3, name=name)(x)

    def conv(self, x: Any, filters: int, name: str) -> Any:
        """1x1 convolution (no bias, He initialization), as every NASNet projection."""
        return Conv2D(filters, 1, padding="same", use_bias=False, kernel_initializer="he_normal",
                      data_format=self.data_format, name=name)(x)

    def pool(self, kind: type, x: Any, strides: int, name: str) -> Any:
        padding = "same" if strides == 1 else "valid"
        return kind(3, strides=strides, padding=padding, data_format=self.data_format,
                    name=name)(x)

    def add(self, inputs: list, name: str | None = None) -> Any:
        return Add(name=name or self.auto("add"))(inputs)

    def separable(self, x: Any, filters: int, kernel_size: int, block_id: str,
                  strides: int = 1) -> Any:
        """Keras's `_separable_conv_block`: twice ReLU -> separable conv -> batch norm; the
        first convolution carries the stride, after TensorFlow-'same' padding."""
        x = self.relu(x)
        if strides == 2:
            x = ZeroPadding2D(correct_pad(x, kernel_size, self.data_format),
                              data_format=self.data_format,
                              name=f"separable_conv_1_pad_{block_id}")(x)
        for index, stride in ((1, strides), (2, 1)):
            if index == 2:
                x = self.relu(x)
            x = SeparableConv2D(filters, kernel_size, strides=stride,
                                padding="valid" if stride == 2 else "same", use_bias=False,
                                data_format=self.data_format,
                                name=f"separable_conv_{index}_{block_id}")(x)
            x = self.norm(x, f"separable_conv_{index}_bn_{block_id}")
        return x

    def adjust(self, p: Any, x: Any, filters: int, block_id: str) -> Any:
        """Keras's `_adjust_block`: `p` halved (two offset 1x1 strided paths, concatenated)
        when its size is `x`'s doubled, or projected to `filters` channels."""
        if p is None:
            return x
        spatial = slice(2, 4) if self.data_format == "channels_first" else slice(1, 3)
        if p.shape[spatial] != x.shape[spatial]:
            p = self.relu(p, f"adjust_relu_1_{block_id}")
            p1 = AveragePooling2D(1, strides=2, data_format=self.data_format,
                                  name=f"adjust_avg_pool_1_{block_id}")(p)
            p1 = self.conv(p1, filters // 2, f"adjust_conv_1_{block_id}")
            # The second path samples the odd pixels: shift by one (pad after, crop before).
            p2 = ZeroPadding2D(((0, 1), (0, 1)), data_format=self.data_format,
                               name=self.auto("zero_padding2d"))(p)
            p2 = Cropping2D(((1, 0), (1, 0)), data_format=self.data_format,
                            name=self.auto("cropping2d"))(p2)
            p2 = AveragePooling2D(1, strides=2, data_format=self.data_format,
                                  name=f"adjust_avg_pool_2_{block_id}")(p2)
            p2 = self.conv(p2, filters // 2, f"adjust_conv_2_{block_id}")
            p = Concatenate(axis=self.axis, name=self.auto("concatenate"))([p1, p2])
            return self.norm(p, f"adjust_bn_{block_id}")
        if p.shape[self.axis] != filters:
            p = self.conv(self.relu(p), filters, f"adjust_conv_projection_{block_id}")
            return self.norm(p, f"adjust_bn_{block_id}")
        return p

    def normal_cell(self, x: Any, p: Any, filters: int, block_id: str) -> tuple[Any, Any]:
        """Keras's `_normal_a_cell` (Fig. 4 of the paper): five added pairs, concatenated
        with the adjusted `p`."""
        p = self.adjust(p, x, filters, block_id)
        h = self.norm(self.conv(self.relu(x), filters, f"normal_conv_1_{block_id}"),
                      f"normal_bn_1_{block_id}")
        sep = self.separable
        x1 = self.add([sep(h, filters, 5, f"normal_left1_{block_id}"),
                       sep(p, filters, 3, f"normal_right1_{block_id}")],
                      f"normal_add_1_{block_id}")
        x2 = self.add([sep(p, filters, 5, f"normal_left2_{block_id}"),
                       sep(p, filters, 3, f"normal_right2_{block_id}")],
                      f"normal_add_2_{block_id}")
        x3 = self.add([self.pool(AveragePooling2D, h, 1, f"normal_left3_{block_id}"), p],
                      f"normal_add_3_{block_id}")
        x4 = self.add([self.pool(AveragePooling2D, p, 1, f"normal_left4_{block_id}"),
                       self.pool(AveragePooling2D, p, 1, f"normal_right4_{block_id}")],
                      f"normal_add_4_{block_id}")
        x5 = self.add([sep(h, filters, 3, f"normal_left5_{block_id}"), h],
                      f"normal_add_5_{block_id}")
        out = Concatenate(axis=self.axis, name=f"normal_concat_{block_id}")(
            [p, x1, x2, x3, x4, x5])
        return out, x

    def reduction_cell(self, x: Any, p: Any, filters: int, block_id: str) -> tuple[Any, Any]:
        """Keras's `_reduction_a_cell`: halves the size; four added pairs, concatenated.
        Keras's names are kept as they are, `reduction_add3_`, `reduction_left4_` twice
        (a pooling and a separable block) included."""
        p = self.adjust(p, x, filters, block_id)
        h = self.norm(self.conv(self.relu(x), filters, f"reduction_conv_1_{block_id}"),
                      f"reduction_bn_1_{block_id}")
        h3 = ZeroPadding2D(correct_pad(h, 3, self.data_format), data_format=self.data_format,
                           name=f"reduction_pad_1_{block_id}")(h)
        sep = self.separable
        x1 = self.add([sep(h, filters, 5, f"reduction_left1_{block_id}", strides=2),
                       sep(p, filters, 7, f"reduction_right1_{block_id}", strides=2)],
                      f"reduction_add_1_{block_id}")
        x2 = self.add([self.pool(MaxPooling2D, h3, 2, f"reduction_left2_{block_id}"),
                       sep(p, filters, 7, f"reduction_right2_{block_id}", strides=2)],
                      f"reduction_add_2_{block_id}")
        x3 = self.add([self.pool(AveragePooling2D, h3, 2, f"reduction_left3_{block_id}"),
                       sep(p, filters, 5, f"reduction_right3_{block_id}", strides=2)],
                      f"reduction_add3_{block_id}")
        x4 = self.add([x2, self.pool(AveragePooling2D, x1, 1, f"reduction_left4_{block_id}")])
        x5 = self.add([sep(x1, filters, 3, f"reduction_left4_{block_id}"),
                       self.pool(MaxPooling2D, h3, 2, f"reduction_right5_{block_id}")],
                      f"reduction_add4_{block_id}")
        out = Concatenate(axis=self.axis, name=f"reduction_concat_{block_id}")([x2, x3, x4, x5])
        return out, x


def imagenet_weights(weights_file: str, include_top: bool) -> KerasFile:
    """Keras's published file, which its `get_file` saves under a snake-case name
    (`NASNet-mobile-no-top.h5` as `nasnet_mobile_no_top.h5`)."""
    return KerasFile(
        url=f"{_WEIGHTS_URL}{weights_file}{'' if include_top else '-no-top'}.h5",
        saved_as=f"{weights_file.lower().replace('-', '_')}{'' if include_top else '_no_top'}.h5")


def _nasnet(penultimate_filters: int, num_blocks: int, stem_block_filters: int,
            skip_reduction: bool, default_size: int, weights_file: str, include_top: bool,
            weights: Any, input_tensor: Any, input_shape: Any, pooling: Any, classes: int,
            classifier_activation: Any, name: str, data_format: str | None) -> Model:
    """Keras's `NASNet` with `filter_multiplier=2`, the value of both published models."""
    family = "NASNetMobile" if default_size == 224 else "NASNetLarge"
    keras_file = imagenet_weights(weights_file, include_top)
    if not include_top and input_shape is None and input_tensor is None:
        # The adjust cells compare sizes, which must be known (Keras: NASNetMobile's rule).
        input_shape = (3, default_size, default_size) if data_format == "channels_first" \
            else (default_size, default_size, 3)
    x, inputs, data_format = _blocks.start(
        family, weights, include_top, classes, pooling, classifier_activation, input_tensor,
        input_shape, default_size=default_size, min_size=32, keras_file=keras_file,
        data_format=data_format, known_size=True)
    b = _Builder(data_format)
    filters = penultimate_filters // 24
    x = Conv2D(stem_block_filters, 3, strides=2, padding="valid", use_bias=False,
               kernel_initializer="he_normal", data_format=data_format, name="stem_conv1")(x)
    x = b.norm(x, "stem_bn1")
    x, p = b.reduction_cell(x, None, filters // 4, "stem_1")
    x, p = b.reduction_cell(x, p, filters // 2, "stem_2")
    for stage in range(3):
        width = filters * 2 ** stage
        if stage:
            x, p0 = b.reduction_cell(x, p, width, f"reduce_{stage * num_blocks}")
            p = p if skip_reduction else p0
        for i in range(num_blocks):
            x, p = b.normal_cell(x, p, width, f"{stage * num_blocks + i + min(stage, 1)}")
    x = b.relu(x)
    if include_top:
        x = GlobalAveragePooling2D(data_format=data_format, name="global_average_pooling2d")(x)
        x = Dense(classes, activation=classifier_activation, name="predictions")(x)
    elif pooling in ("avg", "max"):
        kind = GlobalAveragePooling2D if pooling == "avg" else GlobalMaxPooling2D
        x = kind(data_format=data_format, name=f"global_{'average' if pooling == 'avg' else 'max'}"
                 "_pooling2d")(x)
    return _blocks.finish(inputs, x, name, weights, keras_file)


_ARGS_DOC = """
    Args:
        include_top: include the global pooling and the `predictions` dense layer.
        weights: None (random initialization), the path of a weights file (loaded by layer
            name), or 'imagenet' for a local copy of Keras's file (nothing is downloaded).
        input_tensor: a symbolic tensor to build the model on.
        input_shape: `(height, width, 3)`, at least 32x32; {size}x{size} by default (also
            without the top: the cells compare sizes, which must be known).
        pooling: with `include_top=False`: None (4-D features), 'avg' or 'max'.
        classes: number of classes of the classifier.
        classifier_activation: activation of `predictions` (None: logits).
        name: the model's name.
        data_format: 'channels_last' (default, Keras's) or 'channels_first' (which Keras
            refuses for NASNet).
"""


@register("NASNetMobile", kind="model")
def NASNetMobile(input_shape: tuple | None = None, include_top: bool = True,
                 weights: str | None = None, input_tensor: Any = None,
                 pooling: str | None = None, classes: int = 1000,
                 classifier_activation: Any = "softmax", name: str = "nasnet_mobile", *,
                 data_format: str | None = None) -> Model:
    return _nasnet(1056, 4, 32, False, 224, "NASNet-mobile", include_top, weights,
                   input_tensor, input_shape, pooling, classes, classifier_activation, name,
                   data_format)


@register("NASNetLarge", kind="model")
def NASNetLarge(input_shape: tuple | None = None, include_top: bool = True,
                weights: str | None = None, input_tensor: Any = None,
                pooling: str | None = None, classes: int = 1000,
                classifier_activation: Any = "softmax", name: str = "nasnet_large", *,
                data_format: str | None = None) -> Model:
    return _nasnet(4032, 6, 96, True, 331, "NASNet-large", include_top, weights,
                   input_tensor, input_shape, pooling, classes, classifier_activation, name,
                   data_format)


NASNetMobile.__doc__ = ("Keras's NASNetMobile (NASNet-A 4 @ 1056): 5,326,716 parameters with "
                        "the top, 224x224 images by default.\n" + _ARGS_DOC.format(size=224))
NASNetLarge.__doc__ = ("Keras's NASNetLarge (NASNet-A 6 @ 4032): 88,949,818 parameters with "
                       "the top, 331x331 images by default.\n" + _ARGS_DOC.format(size=331))
