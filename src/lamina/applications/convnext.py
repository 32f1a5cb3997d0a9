"""ConvNeXt Tiny/Small/Base/Large/XLarge (Liu et al., 2022), Keras's
`keras.applications.ConvNeXt*`: a 4x4 patchify stem, four stages of blocks (7x7 depthwise
convolution, layer norm, 4x MLP with GELU, layer scale) joined by layer-norm + 2x2 convolutions.

Layer names are Keras's (`convnext_tiny_stem`, `convnext_tiny_stage_0_block_0_depthwise_conv`,
`convnext_tiny_downsampling_block_0`, `convnext_tiny_head_dense`); the stem and the
downsampling blocks are nested `Sequential`s as in Keras, so
`set_weights(keras_model.get_weights())` lines up. The network normalizes raw [0, 255] pixels itself (`include_preprocessing=True`), so
`preprocess_input` is the identity.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lamina._registry import register
from lamina.applications import _blocks
from lamina.applications.imagenet_utils import decode_predictions
from lamina.applications.imagenet_utils import identity_preprocess_input as preprocess_input
from lamina.layers.convolutional import Conv2D
from lamina.layers.core import Activation, Dense
from lamina.layers.merging import Add
from lamina.layers.normalization import LayerNormalization
from lamina.layers.pooling import GlobalAveragePooling2D
from lamina.layers.preprocessing import Normalization
from lamina.models.model import Model
from lamina.models.sequential import Sequential

__all__ = ["ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtSmall", "ConvNeXtTiny", "ConvNeXtXLarge",
           "decode_predictions", "preprocess_input"]

_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/convnext/"
_IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
_IMAGENET_VARIANCE = ((0.229 * 255) ** 2, (0.224 * 255) ** 2, (0.225 * 255) ** 2)


def convnext_block(x: Any, projection_dim: int, drop_path_rate: float,
                   layer_scale_init_value: float | None, name: str) -> Any:
    """One ConvNeXt block: `x + drop_path(gamma * mlp(layernorm(dwconv7x7(x))))`."""
    y = Conv2D(projection_dim, 7, padding="same", groups=projection_dim,
               name=f"{name}_depthwise_conv")(x)
    y = LayerNormalization(epsilon=1e-6, name=f"{name}_layernorm")(y)
    y = Dense(4 * projection_dim, name=f"{name}_pointwise_conv_1")(y)
    y = Activation("gelu", name=f"{name}_gelu")(y)
    y = Dense(projection_dim, name=f"{name}_pointwise_conv_2")(y)
    if layer_scale_init_value is not None:
        y = _blocks.LayerScale(layer_scale_init_value, projection_dim,
                               name=f"{name}_layer_scale")(y)
    if drop_path_rate:
        y = _blocks.StochasticDepth(drop_path_rate, name=f"{name}_stochastic_depth")(y)
    else:
        y = Activation("linear", name=f"{name}_identity")(y)
    return Add(name=f"{name}_add")([x, y])


def _convnext(depths: tuple[int, ...], dims: tuple[int, ...], weights_name: str,
              include_top: bool, include_preprocessing: bool, weights: Any, input_tensor: Any,
              input_shape: Any, pooling: Any, classes: int, classifier_activation: Any,
              name: str, drop_path_rate: float, layer_scale_init_value: float) -> Model:
    keras_file = f"{_WEIGHTS_URL}{weights_name}{'' if include_top else '_notop'}.h5"
    if weights == "imagenet" and weights_name not in name:
        raise ValueError(f"With weights='imagenet', `name` must contain {weights_name!r} (the "
                         f"weights file's layer names start with it). Received: name={name!r}.")
    # Keras's ConvNeXt is channels_last only (its Dense and LayerNorm act on the last axis).
    x, inputs, _ = _blocks.start(
        weights_name, weights, include_top, classes, pooling, classifier_activation,
        input_tensor, input_shape, default_size=224, keras_file=keras_file,
        data_format="channels_last")
    if include_preprocessing and x.shape[-1] == 3:
        x = Normalization(mean=list(_IMAGENET_MEAN), variance=list(_IMAGENET_VARIANCE),
                          name=f"{name}_prestem_normalization")(x)
    x = Sequential([Conv2D(dims[0], 4, strides=4, name=f"{name}_stem_conv"),
                    LayerNormalization(epsilon=1e-6, name=f"{name}_stem_layernorm")],
                   name=f"{name}_stem")(x)
    rates = [float(r) for r in np.linspace(0.0, drop_path_rate, sum(depths))]
    done = 0
    for stage, (depth, dim) in enumerate(zip(depths, dims)):
        if stage:
            x = Sequential(
                [LayerNormalization(epsilon=1e-6,
                                    name=f"{name}_downsampling_layernorm_{stage - 1}"),
                 Conv2D(dim, 2, strides=2, name=f"{name}_downsampling_conv_{stage - 1}")],
                name=f"{name}_downsampling_block_{stage - 1}")(x)
        for block in range(depth):
            x = convnext_block(x, dim, rates[done + block], layer_scale_init_value,
                               f"{name}_stage_{stage}_block_{block}")
        done += depth
    if include_top:
        x = GlobalAveragePooling2D(name=f"{name}_head_gap")(x)
        x = LayerNormalization(epsilon=1e-6, name=f"{name}_head_layernorm")(x)
        x = Dense(classes, activation=classifier_activation, name=f"{name}_head_dense")(x)
    else:
        x = _blocks.top(x, False, pooling, classes, classifier_activation, "channels_last")
        x = LayerNormalization(epsilon=1e-6, name="layer_normalization")(x)
    return _blocks.finish(inputs, x, name, weights, keras_file)


def _variant(size: str, depths: tuple[int, ...], dims: tuple[int, ...], params: str):
    public, model_name = f"ConvNeXt{'XLarge' if size == 'xlarge' else size.title()}", \
        f"convnext_{size}"

    def build(include_top: bool = True, include_preprocessing: bool = True,
              weights: str | None = None, input_tensor: Any = None,
              input_shape: tuple | None = None, pooling: str | None = None, classes: int = 1000,
              classifier_activation: Any = "softmax", name: str = model_name, *,
              drop_path_rate: float = 0.0, layer_scale_init_value: float = 1e-6) -> Model:
        return _convnext(depths, dims, model_name, include_top, include_preprocessing, weights,
                         input_tensor, input_shape, pooling, classes, classifier_activation,
                         name, drop_path_rate, layer_scale_init_value)

    build.__name__ = build.__qualname__ = public
    build.__doc__ = (f"Keras's {public}: stages of {list(depths)} blocks, widths {list(dims)}, "
                     f"{params} parameters with the top." + _ARGS)
    return register(public, kind="model")(build)


_ARGS = """

    Args:
        include_top: include the head (`*_head_gap`, `*_head_layernorm`, `*_head_dense`).
        include_preprocessing: normalize raw [0, 255] pixels with ImageNet's mean and
            variance inside the model.
        weights: None (random initialization), the path of a weights file (loaded by layer
            name), or 'imagenet' for a local copy of Keras's file (nothing is downloaded).
        input_tensor: a symbolic tensor to build the model on.
        input_shape: `(height, width, 3)` (channels_last only, as Keras), at least 32x32.
        pooling: with `include_top=False`: None (4-D features), 'avg' or 'max'; a layer norm
            follows, as in Keras.
        classes: number of classes of the classifier.
        classifier_activation: activation of the head's dense layer (None: logits).
        name: the model's name; it prefixes every layer name.
        drop_path_rate: (keyword-only, lamina's addition) stochastic depth, rising linearly
            to this rate over the blocks; Keras fixes 0.
        layer_scale_init_value: (keyword-only) initial layer scale; Keras fixes 1e-6.
    """

ConvNeXtTiny = _variant("tiny", (3, 3, 9, 3), (96, 192, 384, 768), "28,589,128")
ConvNeXtSmall = _variant("small", (3, 3, 27, 3), (96, 192, 384, 768), "50,223,688")
ConvNeXtBase = _variant("base", (3, 3, 27, 3), (128, 256, 512, 1024), "88,591,464")
ConvNeXtLarge = _variant("large", (3, 3, 27, 3), (192, 384, 768, 1536), "197,767,336")
ConvNeXtXLarge = _variant("xlarge", (3, 3, 27, 3), (256, 512, 1024, 2048), "350,196,968")
