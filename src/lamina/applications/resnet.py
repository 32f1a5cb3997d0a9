"""ResNet (He et al., 2015) in two flavours.

- Keras's `ResNet50`, `ResNet101`, `ResNet152` (`keras.applications`): ResNet v1 bottleneck
  blocks with the stride on the first 1x1 convolution, convolutions with biases, batch norm
  epsilon 1.001e-5, and Keras's layer names (`conv1_conv`, `conv2_block1_1_conv`, ...,
  `avg_pool`, `predictions`), so Keras's weight files load by name.
- torchvision's `resnet18` ... `resnet152`: the reference `BasicBlock` and `Bottleneck` (stride on
  the 3x3 convolution, "v1.5"), bias-free convolutions, 1x1 projection shortcuts where the shape
  changes, torch's batch norm defaults (epsilon 1e-5, momentum 0.1), logits out. Layer names
  are torchvision's module paths with '_' for '.' (`conv1`, `bn1`, `layer1_0_conv1`,
  `layer2_0_downsample_0`, `fc`), so `load_torch_state_dict` maps a torchvision `state_dict`
  by name. Their images follow the global data format (`lamina.config.image_data_format()`,
  channels_last unless set otherwise, so a model is laid out like every other lamina image
  model); pass `data_format='channels_first'` for torch's NCHW tensors.

Both pad explicitly where torch pads (`ZeroPadding2D`), because Keras's 'same' padding of a
strided convolution is asymmetric on even sizes and would shift the features.
"""

from __future__ import annotations

from typing import Any

from lamina._registry import register
from lamina.applications import _builder
from lamina.applications.imagenet_utils import decode_predictions as decode_predictions
from lamina.applications.imagenet_utils import mode_preprocess_input
from lamina.config import standardize_data_format
from lamina.initializers import VarianceScaling
from lamina.layers.convolutional import Conv2D
from lamina.layers.core import Activation, Dense
from lamina.layers.merging import Add
from lamina.layers.normalization import BatchNormalization
from lamina.layers.pooling import GlobalAveragePooling2D, MaxPooling2D
from lamina.layers.spatial import ZeroPadding2D
from lamina.models.model import Model

# Keras's ResNet and VGG weights expect caffe-style inputs (BGR, minus the mean pixel).
preprocess_input = mode_preprocess_input("caffe")

_STAGE_FILTERS = (64, 128, 256, 512)

# --------------------------------------------------------------------------- Keras's ResNet v1


def _keras_block(x: Any, filters: int, stride: int, conv_shortcut: bool, name: str,
                 data_format: str) -> Any:
    """Keras's `block1`: 1x1 (strided) -> 3x3 -> 1x1 (4x filters), plus the shortcut."""
    axis = _builder.channel_axis(data_format)

    def conv(y: Any, out: int, size: int, suffix: str, **options: Any) -> Any:
        return Conv2D(out, size, data_format=data_format, name=f"{name}_{suffix}_conv",
                      **options)(y)

    def norm(y: Any, suffix: str) -> Any:
        return BatchNormalization(axis=axis, epsilon=1.001e-5, name=f"{name}_{suffix}_bn")(y)

    if conv_shortcut:
        shortcut = norm(conv(x, 4 * filters, 1, "0", strides=stride), "0")
    else:
        shortcut = x
    x = norm(conv(x, filters, 1, "1", strides=stride), "1")
    x = Activation("relu", name=f"{name}_1_relu")(x)
    x = norm(conv(x, filters, 3, "2", padding="same"), "2")
    x = Activation("relu", name=f"{name}_2_relu")(x)
    x = norm(conv(x, 4 * filters, 1, "3"), "3")
    x = Add(name=f"{name}_add")([shortcut, x])
    return Activation("relu", name=f"{name}_out")(x)


def _keras_resnet(blocks: tuple[int, int, int, int], model_name: str, include_top: bool,
                  weights: Any, input_tensor: Any, input_shape: Any, pooling: Any, classes: int,
                  classifier_activation: Any, name: str, data_format: str | None) -> Model:
    data_format = standardize_data_format(data_format)
    keras_file = f"resnet/{model_name}_weights_tf_dim_ordering_tf_kernels" + \
        ("" if include_top else "_notop") + ".h5"
    _builder.check_arguments(weights, include_top, classes, pooling,
                             classifier_activation, architecture=model_name,
                             keras_file=keras_file)
    x, inputs = _builder.image_input(input_tensor, input_shape, default_size=224, min_size=32,
                                     data_format=data_format, require_flatten=include_top,
                                     weights=weights)
    axis = _builder.channel_axis(data_format)
    preact = model_name.endswith("v2")
    x = ZeroPadding2D(((3, 3), (3, 3)), data_format=data_format, name="conv1_pad")(x)
    x = Conv2D(64, 7, strides=2, data_format=data_format, name="conv1_conv")(x)
    if not preact:
        x = BatchNormalization(axis=axis, epsilon=1.001e-5, name="conv1_bn")(x)
        x = Activation("relu", name="conv1_relu")(x)
    x = ZeroPadding2D(((1, 1), (1, 1)), data_format=data_format, name="pool1_pad")(x)
    x = MaxPooling2D(3, strides=2, data_format=data_format, name="pool1_pool")(x)
    for stage, (filters, count) in enumerate(zip(_STAGE_FILTERS, blocks), start=2):
        # v1 strides stages 3-5 on entry; v2 strides stages 2-4 on exit (the same resolutions).
        stride = (1 if stage == 5 else 2) if preact else (1 if stage == 2 else 2)
        x = _keras_stack(x, filters, count, stride, f"conv{stage}", data_format, preact)
    if preact:
        x = BatchNormalization(axis=axis, epsilon=1.001e-5, name="post_bn")(x)
        x = Activation("relu", name="post_relu")(x)
    if include_top:
        x = GlobalAveragePooling2D(data_format=data_format, name="avg_pool")(x)
        x = Dense(classes, activation=classifier_activation, name="predictions")(x)
    else:
        x = _builder.global_pooling(x, pooling, data_format,
                                    name={"avg": "avg_pool", "max": "max_pool"}.get(pooling))
    return _builder.finish(inputs, x, name, weights, keras_file)


_KERAS_ARGS = """

    Args:
        include_top: include the classifier (`avg_pool` and the `predictions` dense layer).
        weights: None (random initialization), the path of a weights file (loaded by layer
            name: Keras's `{0}_weights_tf_dim_ordering_tf_kernels*.h5` work), or 'imagenet' for
            a local copy of that file (nothing is downloaded).
        input_tensor: a symbolic tensor to build the model on.
        input_shape: `(height, width, 3)` (channels_last), at least 32x32; default 224x224 with
            the top, free `(None, None, 3)` without.
        pooling: with `include_top=False`: None (the 4-D output of the last block), 'avg' or
            'max' (global pooling to a vector).
        classes: number of classes of the classifier.
        classifier_activation: activation of `predictions` (None: logits).
        name: the model's name.
        data_format: 'channels_last' (default, Keras's) or 'channels_first'.
    """


def _keras_variant(model_name: str, blocks: tuple[int, int, int, int], doc: str):
    def build(include_top: bool = True, weights: str | None = None, input_tensor: Any = None,
              input_shape: tuple | None = None, pooling: str | None = None, classes: int = 1000,
              classifier_activation: Any = "softmax", name: str = model_name, *,
              data_format: str | None = None) -> Model:
        return _keras_resnet(blocks, model_name, include_top, weights, input_tensor,
                             input_shape, pooling, classes, classifier_activation, name,
                             data_format)

    build.__name__ = build.__qualname__ = model_name.replace("resnet", "ResNet").replace("v2", "V2")
    build.__doc__ = doc + _KERAS_ARGS.format(model_name)
    return register(build.__name__, kind="model")(build)


ResNet50 = _keras_variant("resnet50", (3, 4, 6, 3),
                          "Keras's ResNet50: 25,636,712 parameters with the top.")
ResNet101 = _keras_variant("resnet101", (3, 4, 23, 3),
                           "Keras's ResNet101: 44,707,176 parameters with the top.")
ResNet152 = _keras_variant("resnet152", (3, 8, 36, 3),
                           "Keras's ResNet152: 60,419,944 parameters with the top.")
ResNet50V2 = _keras_variant("resnet50v2", (3, 4, 6, 3),
                            "Keras's ResNet50V2 (pre-activation): 25,613,800 parameters with the "
                            "top.\n\n    Its inputs are scaled to [-1, 1]: use "
                            "`lamina.applications.resnet_v2.preprocess_input`.")
ResNet101V2 = _keras_variant("resnet101v2", (3, 4, 23, 3),
                             "Keras's ResNet101V2 (pre-activation): 44,675,560 parameters with "
                             "the top.")
ResNet152V2 = _keras_variant("resnet152v2", (3, 8, 36, 3),
                             "Keras's ResNet152V2 (pre-activation): 60,380,648 parameters with "
                             "the top.")

# --------------------------------------------------------------------------- Keras's ResNet v2


def _keras_block_v2(x: Any, filters: int, stride: int, conv_shortcut: bool, name: str,
                    data_format: str) -> Any:
    """Keras's `residual_block_v2` (He et al., 2016, pre-activation): BN-ReLU before the
    convolutions, the stride on the 3x3 (explicitly padded), no ReLU after the sum."""
    axis = _builder.channel_axis(data_format)

    def norm(y: Any, suffix: str) -> Any:
        return BatchNormalization(axis=axis, epsilon=1.001e-5, name=f"{name}_{suffix}_bn")(y)

    def conv(y: Any, out: int, size: int, suffix: str, **options: Any) -> Any:
        return Conv2D(out, size, data_format=data_format, name=f"{name}_{suffix}_conv",
                      **options)(y)

    preact = Activation("relu", name=f"{name}_preact_relu")(norm(x, "preact"))
    if conv_shortcut:
        shortcut = conv(preact, 4 * filters, 1, "0", strides=stride)
    elif stride > 1:
        # Keras leaves this pooling unnamed (auto-numbered); it holds no weights.
        shortcut = MaxPooling2D(1, strides=stride, data_format=data_format)(x)
    else:
        shortcut = x
    x = Activation("relu", name=f"{name}_1_relu")(
        norm(conv(preact, filters, 1, "1", use_bias=False), "1"))
    x = ZeroPadding2D(((1, 1), (1, 1)), data_format=data_format, name=f"{name}_2_pad")(x)
    x = Activation("relu", name=f"{name}_2_relu")(
        norm(conv(x, filters, 3, "2", strides=stride, use_bias=False), "2"))
    x = conv(x, 4 * filters, 1, "3")
    return Add(name=f"{name}_out")([shortcut, x])


def _keras_stack(x: Any, filters: int, count: int, first_stride: int, name: str,
                 data_format: str, preact: bool) -> Any:
    """One stage: v1 strides its first block; v2 its last (Keras's `stack_residual_blocks_v2`)."""
    if not preact:
        x = _keras_block(x, filters, first_stride, True, f"{name}_block1", data_format)
        for index in range(2, count + 1):
            x = _keras_block(x, filters, 1, False, f"{name}_block{index}", data_format)
        return x
    x = _keras_block_v2(x, filters, 1, True, f"{name}_block1", data_format)
    for index in range(2, count):
        x = _keras_block_v2(x, filters, 1, False, f"{name}_block{index}", data_format)
    return _keras_block_v2(x, filters, first_stride, False, f"{name}_block{count}", data_format)


# --------------------------------------------------------------------------- torchvision's ResNet

# torchvision initializes convolutions with kaiming_normal_(mode='fan_out', nonlinearity='relu').
_KAIMING_FAN_OUT = {"scale": 2.0, "mode": "fan_out", "distribution": "untruncated_normal"}


class _TorchStyle:
    """Layer factories of one torchvision-style network (its data format and naming)."""

    def __init__(self, data_format: str):
        self.data_format = data_format
        self.axis = _builder.channel_axis(data_format)

    def conv(self, x: Any, filters: int, size: int, stride: int, name: str) -> Any:
        """torch's `Conv2d(..., padding=size // 2, bias=False)`: padding made explicit when the
        stride is 2 (Keras's 'same' would pad asymmetrically), 'same' otherwise."""
        padding = "valid"
        if size > 1 and stride > 1:
            x = ZeroPadding2D(size // 2, data_format=self.data_format, name=f"{name}_pad")(x)
        elif size > 1:
            padding = "same"
        return Conv2D(filters, size, strides=stride, padding=padding, use_bias=False,
                      kernel_initializer=VarianceScaling(**_KAIMING_FAN_OUT),
                      data_format=self.data_format, name=name)(x)

    def norm(self, x: Any, name: str) -> Any:
        return BatchNormalization(axis=self.axis, momentum=0.9, epsilon=1e-5, name=name)(x)

    def relu(self, x: Any, name: str) -> Any:
        return Activation("relu", name=name)(x)


def _basic_block(style: _TorchStyle, x: Any, planes: int, stride: int, downsample: bool,
                 name: str) -> Any:
    """The reference `BasicBlock` (expansion 1): two 3x3 convolutions."""
    out = style.relu(style.norm(style.conv(x, planes, 3, stride, f"{name}_conv1"), f"{name}_bn1"),
                     f"{name}_relu1")
    out = style.norm(style.conv(out, planes, 3, 1, f"{name}_conv2"), f"{name}_bn2")
    return _merge(style, x, out, planes, stride, downsample, name)


def _bottleneck(style: _TorchStyle, x: Any, planes: int, stride: int, downsample: bool,
                name: str) -> Any:
    """The reference `Bottleneck` (expansion 4): 1x1 -> 3x3 (strided) -> 1x1."""
    out = style.relu(style.norm(style.conv(x, planes, 1, 1, f"{name}_conv1"), f"{name}_bn1"),
                     f"{name}_relu1")
    out = style.relu(style.norm(style.conv(out, planes, 3, stride, f"{name}_conv2"),
                                f"{name}_bn2"), f"{name}_relu2")
    out = style.norm(style.conv(out, 4 * planes, 1, 1, f"{name}_conv3"), f"{name}_bn3")
    return _merge(style, x, out, 4 * planes, stride, downsample, name)


def _merge(style: _TorchStyle, x: Any, out: Any, channels: int, stride: int, downsample: bool,
           name: str) -> Any:
    """`relu(out + shortcut(x))`; the shortcut projects (1x1 conv + BN) when the shape changes."""
    if downsample:
        x = style.norm(style.conv(x, channels, 1, stride, f"{name}_downsample_0"),
                       f"{name}_downsample_1")
    return style.relu(Add(name=f"{name}_add")([out, x]), f"{name}_out")


def _torch_resnet(model_name: str, bottleneck: bool, blocks: tuple[int, int, int, int],
                  weights: Any, num_classes: int, include_top: bool, input_shape: Any,
                  input_tensor: Any, pooling: Any, classifier_activation: Any,
                  data_format: str | None, name: str | None) -> Model:
    data_format = standardize_data_format(data_format)
    _builder.check_arguments(weights, include_top, num_classes, pooling,
                             classifier_activation, architecture=model_name,
                             classes_argument="num_classes")
    # Global average pooling before `fc` makes every input size >= 32 valid, with or without top.
    x, inputs = _builder.image_input(input_tensor, input_shape, default_size=224, min_size=32,
                                     data_format=data_format, require_flatten=False,
                                     weights=weights)
    style = _TorchStyle(data_format)
    x = style.relu(style.norm(style.conv(x, 64, 7, 2, "conv1"), "bn1"), "relu")
    # Zero padding is torch's -inf padding here: the inputs are ReLU outputs (>= 0).
    x = ZeroPadding2D(1, data_format=data_format, name="maxpool_pad")(x)
    x = MaxPooling2D(3, strides=2, data_format=data_format, name="maxpool")(x)
    block = _bottleneck if bottleneck else _basic_block
    expansion = 4 if bottleneck else 1
    channels = 64
    for stage, (planes, count) in enumerate(zip(_STAGE_FILTERS, blocks), start=1):
        for index in range(count):
            stride = 2 if stage > 1 and index == 0 else 1
            downsample = stride != 1 or channels != planes * expansion
            x = block(style, x, planes, stride, downsample, f"layer{stage}_{index}")
            channels = planes * expansion
    if include_top:
        x = GlobalAveragePooling2D(data_format=data_format, name="avgpool")(x)
        x = Dense(num_classes, activation=classifier_activation, name="fc")(x)
    else:
        x = _builder.global_pooling(x, pooling, data_format,
                                    name={"avg": "avgpool", "max": "maxpool_global"}.get(pooling))
    return _builder.finish(inputs, x, name or model_name, weights)


def _torch_variant(model_name: str, bottleneck: bool, blocks: tuple[int, int, int, int],
                   count: str):
    def build(*, weights: str | None = None, num_classes: int = 1000, include_top: bool = True,
              input_shape: tuple | None = None, input_tensor: Any = None,
              pooling: str | None = None, classifier_activation: Any = None,
              data_format: str | None = None, name: str | None = None) -> Model:
        return _torch_resnet(model_name, bottleneck, blocks, weights, num_classes, include_top,
                             input_shape, input_tensor, pooling, classifier_activation,
                             data_format, name)

    build.__name__ = build.__qualname__ = model_name
    build.__doc__ = _TORCH_DOC.format(name=model_name, count=count, blocks=list(blocks),
                                      block="Bottleneck" if bottleneck else "BasicBlock")
    return register(model_name, kind="model")(build)


_TORCH_DOC = """torchvision's `{name}`: {block} stages of {blocks} blocks; {count} trainable
    parameters with 1000 classes, torchvision's count (`count_params()` adds the batch norms'
    moving statistics, as Keras counts).

    Keyword-only arguments, as torchvision's:
        weights: None (random initialization, torchvision's init) or the path of a lamina
            weights file (loaded by layer name). For torchvision's published weights, load their
            `state_dict` with `lamina.applications.load_torch_state_dict(model, state_dict)`.
        num_classes: outputs of `fc`.
        include_top: include `avgpool` and `fc`; without them `pooling` ('avg', 'max' or None)
            applies, as in the Keras applications.
        input_shape: the image shape without the batch axis (default: free height and width,
            3 channels); at least 32x32.
        input_tensor: a symbolic tensor to build the model on.
        classifier_activation: activation of `fc` (default None: logits, as torchvision).
        data_format: None (the global `lamina.config.image_data_format()`, 'channels_last'
            unless set), 'channels_last' or 'channels_first' (torch's NCHW).
        name: the model's name (default '{name}').
    """

resnet18 = _torch_variant("resnet18", False, (2, 2, 2, 2), "11,689,512")
resnet34 = _torch_variant("resnet34", False, (3, 4, 6, 3), "21,797,672")
resnet50 = _torch_variant("resnet50", True, (3, 4, 6, 3), "25,557,032")
resnet101 = _torch_variant("resnet101", True, (3, 4, 23, 3), "44,549,160")
resnet152 = _torch_variant("resnet152", True, (3, 8, 36, 3), "60,192,808")
