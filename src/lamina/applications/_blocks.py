"""Blocks the Keras-layout ImageNet families share: the start and the top of a model, Keras's
channel rounding, squeeze-and-excitation, stochastic depth and layer scale.

Layer names are passed in whole, because each family names its layers its own way and Keras's
weights files are matched by those names.
"""

from __future__ import annotations

from typing import Any

import torch

from lamina._registry import register
from lamina.applications import _builder
from lamina.applications.imagenet_utils import correct_pad
from lamina.config import standardize_data_format
from lamina.layers.convolutional import Conv2D, DepthwiseConv2D
from lamina.layers.core import Activation, Dense, Dropout
from lamina.layers.layer import Layer
from lamina.layers.merging import Add, Multiply
from lamina.layers.normalization import BatchNormalization
from lamina.layers.pooling import GlobalAveragePooling2D
from lamina.layers.reshaping import Reshape
from lamina.layers.spatial import ZeroPadding2D
from lamina.models.model import Model


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Keras's `_make_divisible`/`round_filters`: the nearest multiple of `divisor`, never more
    than 10% below `value`."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * value else rounded)


def start(family: str, weights: Any, include_top: bool, classes: Any, pooling: Any,
          classifier_activation: Any, input_tensor: Any, input_shape: Any, *,
          default_size: int, keras_file: _builder.KerasFile | str | None,
          data_format: str | None,
          min_size: int = 32, require_flatten: bool | None = None,
          known_size: bool = False, display: str | None = None) -> tuple[Any, Any, str]:
    """The checks and the image input every Keras application starts with.

    Returns `(x, inputs, data_format)`. `require_flatten` defaults to `include_top` (Keras's
    applications fix the input size when they carry their classifier). `known_size` refuses a
    free image size, for stems that compare sizes or need more than the probe images' 32-40
    pixels; `display` names the model in that error (default: `family`).
    """
    data_format = standardize_data_format(data_format)
    _builder.check_arguments(weights, include_top, classes, pooling, classifier_activation,
                             architecture=family, keras_file=keras_file)
    x, inputs = _builder.image_input(
        input_tensor, input_shape, default_size=default_size, min_size=min_size,
        data_format=data_format,
        require_flatten=include_top if require_flatten is None else require_flatten,
        weights=weights)
    spatial = x.shape[2:] if data_format == "channels_first" else x.shape[1:3]
    if known_size and None in spatial:
        raise ValueError(
            f"{display or family} needs a known image size (at least {min_size}x{min_size}): "
            f"pass input_shape=, e.g. ({default_size}, {default_size}, 3). Received an input of "
            f"shape {tuple(x.shape)}.")
    return x, inputs, data_format


def top(x: Any, include_top: bool, pooling: Any, classes: int, classifier_activation: Any,
        data_format: str, *, dropout: float = 0.0, dropout_name: str = "top_dropout",
        kernel_initializer: Any = "glorot_uniform") -> Any:
    """Keras's usual top: `avg_pool` -> (dropout) -> `predictions`; without the top, the
    `pooling` choice (`avg_pool` or `max_pool`)."""
    if include_top:
        x = GlobalAveragePooling2D(data_format=data_format, name="avg_pool")(x)
        if dropout > 0:
            x = Dropout(dropout, name=dropout_name)(x)
        return Dense(classes, activation=classifier_activation,
                     kernel_initializer=kernel_initializer, name="predictions")(x)
    return _builder.global_pooling(x, pooling, data_format,
                                   name={"avg": "avg_pool", "max": "max_pool"}.get(pooling))


def squeeze_excite(x: Any, filters: int, reduced: int, prefix: str, data_format: str, *,
                   activation: Any, kernel_initializer: Any = "glorot_uniform") -> Any:
    """Squeeze-and-excitation (Hu et al., 2018) as EfficientNet (v1, v2) lays it out:
    `x * sigmoid(conv(act(conv(mean_hw(x)))))`, layers `{prefix}se_squeeze`, `se_reshape`,
    `se_reduce`, `se_expand`, `se_excite`."""
    shape = (filters, 1, 1) if data_format == "channels_first" else (1, 1, filters)
    se = GlobalAveragePooling2D(data_format=data_format, name=f"{prefix}se_squeeze")(x)
    se = Reshape(shape, name=f"{prefix}se_reshape")(se)
    se = Conv2D(reduced, 1, padding="same", activation=activation, data_format=data_format,
                kernel_initializer=kernel_initializer, name=f"{prefix}se_reduce")(se)
    se = Conv2D(filters, 1, padding="same", activation="sigmoid", data_format=data_format,
                kernel_initializer=kernel_initializer, name=f"{prefix}se_expand")(se)
    return Multiply(name=f"{prefix}se_excite")([x, se])


def stochastic_depth_dropout(x: Any, rate: float, name: str) -> Any:
    """Stochastic depth as EfficientNet writes it: a residual branch dropped per sample
    (a dropout whose mask is one number per sample, rescaled by 1 / (1 - rate))."""
    if rate <= 0:
        return x
    return Dropout(rate, noise_shape=(None, 1, 1, 1), name=name)(x)


def activation(x: Any, kind: Any, name: str | None) -> Any:
    return Activation(kind, name=name)(x)


@register("StochasticDepth")
class StochasticDepth(Layer):
    """ConvNeXt's stochastic depth (Huang et al., 2016): in training, each sample's residual
    branch is zeroed with probability `drop_path_rate` and the others scaled by
    1 / (1 - rate); the identity at inference."""

    def __init__(self, drop_path_rate: float, **kwargs: Any):
        super().__init__(**kwargs)
        if not 0 <= drop_path_rate < 1:
            raise ValueError("`drop_path_rate` must be in [0, 1). Received: "
                             f"drop_path_rate={drop_path_rate!r}.")
        self.drop_path_rate = float(drop_path_rate)

    def call(self, x: torch.Tensor, training: bool | None = None) -> torch.Tensor:
        if not training or self.drop_path_rate == 0:
            return x
        keep = 1 - self.drop_path_rate
        mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), device=x.device,
                           dtype=x.dtype).bernoulli_(keep)
        return x * mask / keep

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "drop_path_rate": self.drop_path_rate}


@register("LayerScale")
class LayerScale(Layer):
    """ConvNeXt's layer scale (Touvron et al., 2021): multiplies the channels (last axis) by a
    learned vector initialized to `init_values`; Keras's weight name `gamma`."""

    def __init__(self, init_values: float, projection_dim: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.init_values = float(init_values)
        self.projection_dim = int(projection_dim)

    def build(self, input_shape: tuple) -> None:
        from lamina.initializers import Constant

        self.gamma = self.add_weight(shape=(self.projection_dim,),
                                     initializer=Constant(self.init_values), name="gamma")

    def call(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "init_values": self.init_values,
                "projection_dim": self.projection_dim}


def finish(inputs: Any, x: Any, name: str, weights: Any, keras_file: _builder.KerasFile | str | None) -> Model:
    return _builder.finish(inputs, x, name, weights, keras_file)


def inverted_residual(x: Any, *, expanded: int | None, filters: int, kernel_size: int,
                      stride: int, prefix: str, data_format: str, activation: Any,
                      bn_suffix: str = "_bn", pad_name: str | None = None,
                      excite: Any = None) -> Any:
    """MobileNetV2's inverted residual (Sandler et al., 2018), also MobileNetV3's: 1x1 expansion
    to `expanded` channels (None: none), depthwise convolution, optional `excite(x)`, linear
    1x1 projection, identity shortcut when the shape is kept.

    Layers `{prefix}expand`, `{prefix}depthwise`, `{prefix}project`, each followed by batch
    norm `{name}{bn_suffix}` (epsilon 1e-3, momentum 0.999, as Keras);
    `activation(x, name)` applies the nonlinearity.
    """
    axis = 1 if data_format == "channels_first" else -1
    in_channels = x.shape[axis]
    inputs = x

    def norm(y: Any, name: str) -> Any:
        return BatchNormalization(axis=axis, epsilon=1e-3, momentum=0.999,
                                  name=f"{name}{bn_suffix}")(y)

    if expanded is not None:
        x = Conv2D(expanded, 1, padding="same", use_bias=False, data_format=data_format,
                   name=f"{prefix}expand")(x)
        x = activation(norm(x, f"{prefix}expand"), f"{prefix}expand_relu")
    if stride == 2:
        x = ZeroPadding2D(correct_pad(x, kernel_size, data_format), data_format=data_format,
                          name=pad_name or f"{prefix}pad")(x)
    x = DepthwiseConv2D(kernel_size, strides=stride, padding="same" if stride == 1 else "valid",
                        use_bias=False, data_format=data_format, name=f"{prefix}depthwise")(x)
    x = activation(norm(x, f"{prefix}depthwise"), f"{prefix}depthwise_relu")
    if excite is not None:
        x = excite(x)
    x = Conv2D(filters, 1, padding="same", use_bias=False, data_format=data_format,
               name=f"{prefix}project")(x)
    x = norm(x, f"{prefix}project")
    if stride == 1 and in_channels == filters:
        x = Add(name=f"{prefix}add")([inputs, x])
    return x


def published_size(input_shape: Any, data_format: str | None, sizes: tuple[int, ...]) -> int:
    """The image size whose weights Keras's MobileNets load: the input's if square and one of
    the published `sizes`, else 224."""
    if input_shape is None or len(input_shape) != 3:
        return 224
    first = standardize_data_format(data_format) == "channels_first"
    rows, cols = input_shape[1:] if first else input_shape[:2]
    return rows if rows == cols and rows in sizes else 224
