"""Normalization layers: BatchNormalization, LayerNormalization, RMSNormalization,
GroupNormalization, UnitNormalization."""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

from lamina import constraints as constraints_module
from lamina import initializers as initializers_module
from lamina import regularizers as regularizers_module
from lamina._registry import register
from lamina.errors import ShapeError
from lamina.layers.core import check_positive_int, serialize_argument
from lamina.layers.layer import Layer

Tensor = torch.Tensor


def _axes(axis: int | Sequence[int]) -> tuple[int, ...]:
    return (axis,) if isinstance(axis, int) else tuple(axis)


def _normalized_axes(layer: Layer, input_shape: Sequence[int | None], axis: Any
                     ) -> tuple[list[int], bool, tuple[int, ...]]:
    """(sorted axes, whether they are the trailing ones, their sizes) for a per-sample
    normalization over `axis`; the sizes must be known."""
    rank = len(input_shape)
    if any(not -rank <= a < rank for a in _axes(axis)):
        raise ShapeError(
            f"Layer {layer.name!r} ({type(layer).__name__}): axis={axis} is out of range for "
            f"an input of shape {tuple(input_shape)}."
        )
    axes = sorted(a % rank for a in _axes(axis))
    if any(input_shape[a] is None for a in axes):
        raise ShapeError(
            f"Layer {layer.name!r} ({type(layer).__name__}) needs the normalized axes {axis} "
            f"to be known. Received an input of shape {tuple(input_shape)}."
        )
    # torch's fused kernels (layer_norm, rms_norm) normalize trailing axes only.
    trailing = axes == list(range(rank - len(axes), rank))
    return axes, trailing, tuple(input_shape[a] for a in axes)


def _raise_if_features_changed(layer: Layer, inputs: Tensor, axis: int, size: int,
                               error: RuntimeError) -> None:
    """Turn torch's error for an input whose normalized axis changed size since the build into
    one that names the layer, the expected size and the received shape."""
    if inputs.ndim <= axis or inputs.shape[axis] != size:
        raise ShapeError(
            f"Input 0 of layer {layer.name!r} ({type(layer).__name__}) is incompatible: expected "
            f"axis {axis} to have size {size}, but received an input of shape "
            f"{tuple(inputs.shape)}."
        ) from error


def _reduced_dims(x: Tensor) -> list[int]:
    return [d for d in range(x.ndim) if d != 1]


def _world_size() -> int:
    distributed = torch.distributed
    if not (distributed.is_available() and distributed.is_initialized()):
        return 1
    return distributed.get_world_size()


class _AllGather(torch.autograd.Function):
    """Stack every process's `tensor` (shape (processes, *tensor.shape)); the backward sends
    each process the sum over processes of the gradient of its slice."""

    @staticmethod
    def forward(ctx, tensor: Tensor) -> Tensor:
        distributed = torch.distributed
        parts = [torch.empty_like(tensor) for _ in range(distributed.get_world_size())]
        distributed.all_gather(parts, tensor.contiguous())
        return torch.stack(parts)

    @staticmethod
    def backward(ctx, gradient: Tensor) -> Tensor:
        gradient = gradient.contiguous()
        torch.distributed.all_reduce(gradient)
        return gradient[torch.distributed.get_rank()]


def _batch_norm_with_statistics(x: Tensor, gamma: Tensor | None, beta: Tensor | None,
                                epsilon: float, dtype: torch.dtype
                                ) -> tuple[Tensor, Tensor, Tensor]:
    """Training-mode batch normalization of `x` (features on axis 1) with torch's fused kernel;
    returns (outputs, batch mean, biased batch variance)."""
    count = x.numel() // x.shape[1]
    if count == 1:
        # F.batch_norm refuses a single value per feature; Keras normalizes it to beta.
        variance, mean = torch.var_mean(x, dim=_reduced_dims(x), correction=0)
        return _affine_normalize(x, mean, variance, gamma, beta, epsilon), mean, variance
    mean = torch.zeros(x.shape[1], dtype=dtype, device=x.device)
    variance = torch.ones(x.shape[1], dtype=dtype, device=x.device)
    # With momentum 1 the kernel writes this batch's mean and unbiased variance into the
    # buffers, computed in one pass with the normalization (a separate var_mean costs ~10x on
    # CPU), and exactly: recovering the variance from 1/sqrt(var + eps) loses it when
    # var << eps.
    outputs = F.batch_norm(x, mean, variance, gamma, beta, True, 1.0, epsilon)
    # Not in place: the backward reads the buffers it was given.
    return outputs, mean, variance * ((count - 1) / count)


def _affine_normalize(x: Tensor, mean: Tensor, variance: Tensor, gamma: Tensor | None,
                      beta: Tensor | None, epsilon: float) -> Tensor:
    shape = [1, x.shape[1]] + [1] * (x.ndim - 2)
    outputs = (x - mean.view(shape)) * torch.rsqrt(variance.view(shape) + epsilon)
    if gamma is not None:
        outputs = outputs * gamma.view(shape)
    if beta is not None:
        outputs = outputs + beta.view(shape)
    return outputs.to(x.dtype)


def _synchronized_batch_norm(x: Tensor, gamma: Tensor | None, beta: Tensor | None,
                             epsilon: float) -> tuple[Tensor, Tensor, Tensor]:
    """Batch normalization over the global batch of all processes (features on axis 1), as
    `torch.nn.SyncBatchNorm`: each process's mean, biased variance and count are gathered
    (differentiably, so gradients flow to every process's inputs) and combined exactly.
    Returns (outputs, global mean, global biased variance)."""
    variance, mean = torch.var_mean(x.to(torch.promote_types(x.dtype, torch.float32)),
                                    dim=_reduced_dims(x), correction=0)
    count = torch.full((1,), x.numel() // x.shape[1], dtype=mean.dtype, device=x.device)
    gathered = _AllGather.apply(torch.cat([mean, variance, count]))
    features = x.shape[1]
    # (processes, features) each; counts (processes, 1)
    means, variances, counts = gathered[:, :features], gathered[:, features:-1], gathered[:, -1:]
    total = counts.sum()
    mean = (counts * means).sum(0) / total
    variance = (counts * (variances + (means - mean) ** 2)).sum(0) / total
    return _affine_normalize(x, mean, variance, gamma, beta, epsilon), mean, variance


@register("BatchNormalization")
class BatchNormalization(Layer):
    """Normalizes with batch statistics in training and moving statistics in inference:
    `y = gamma * (x - mean) / sqrt(var + epsilon) + beta`.

    Keras semantics: `moving = moving * momentum + batch * (1 - momentum)` with momentum 0.99
    (torch's momentum is `1 - momentum`), the moving variance tracks the *biased* batch variance,
    and a layer with `trainable=False` always runs in inference mode (frozen BatchNorm in transfer
    learning does not drift).

    Args:
        axis: the feature axis (default -1, channels_last).
        momentum: moving-average momentum.
        epsilon: added to the variance.
        synchronized: in training under `torch.distributed` with more than one process,
            normalize with the statistics of the global batch (as `torch.nn.SyncBatchNorm`),
            gradients flowing to every process. Keras applies it on TensorFlow only.
    """

    def __init__(
        self,
        axis: int = -1,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        beta_initializer: Any = "zeros",
        gamma_initializer: Any = "ones",
        moving_mean_initializer: Any = "zeros",
        moving_variance_initializer: Any = "ones",
        beta_regularizer: Any = None,
        gamma_regularizer: Any = None,
        beta_constraint: Any = None,
        gamma_constraint: Any = None,
        synchronized: bool = False,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if not isinstance(axis, int):
            raise TypeError(f"`axis` must be an integer. Received: axis={axis!r}.")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"`momentum` must be in [0, 1]. Received: momentum={momentum}.")
        if epsilon <= 0:
            raise ValueError(f"`epsilon` must be positive. Received: epsilon={epsilon}.")
        self.axis, self.momentum, self.epsilon = axis, float(momentum), float(epsilon)
        self.center, self.scale, self.synchronized = center, scale, synchronized
        self.beta_initializer = initializers_module.get(beta_initializer)
        self.gamma_initializer = initializers_module.get(gamma_initializer)
        self.moving_mean_initializer = initializers_module.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers_module.get(moving_variance_initializer)
        self.beta_regularizer = regularizers_module.get(beta_regularizer)
        self.gamma_regularizer = regularizers_module.get(gamma_regularizer)
        self.beta_constraint = constraints_module.get(beta_constraint)
        self.gamma_constraint = constraints_module.get(gamma_constraint)
        self.supports_masking = True

    def build(self, input_shape):
        rank = len(input_shape)
        if not -rank <= self.axis < rank:
            raise ShapeError(
                f"Layer {self.name!r} (BatchNormalization): axis {self.axis} is out of range for "
                f"an input of shape {tuple(input_shape)}."
            )
        self._feature_axis = self.axis % rank
        features = input_shape[self._feature_axis]
        if features is None:
            raise ShapeError(
                f"Layer {self.name!r} (BatchNormalization) needs the feature axis {self.axis} to be "
                f"known. Received an input of shape {tuple(input_shape)}."
            )
        shape = (features,)
        self.gamma = self.add_weight(shape=shape, initializer=self.gamma_initializer,
                                     regularizer=self.gamma_regularizer,
                                     constraint=self.gamma_constraint, name="gamma") \
            if self.scale else None
        self.beta = self.add_weight(shape=shape, initializer=self.beta_initializer,
                                    regularizer=self.beta_regularizer,
                                    constraint=self.beta_constraint, name="beta") \
            if self.center else None
        self.moving_mean = self.add_weight(shape=shape, initializer=self.moving_mean_initializer,
                                           trainable=False, name="moving_mean")
        self.moving_variance = self.add_weight(
            shape=shape, initializer=self.moving_variance_initializer, trainable=False,
            name="moving_variance",
        )

    def call(self, inputs, training=None):
        try:
            return self._normalize(inputs, training)
        except RuntimeError as error:  # free on the happy path; names the layer when it fails
            _raise_if_features_changed(self, inputs, self._feature_axis, self.moving_mean.shape[0],
                                       error)
            raise

    def _normalize(self, inputs: Tensor, training: Any) -> Tensor:
        # torch normalizes axis 1; moving a last feature axis there is a view (channels_last
        # memory format for images), so no copy is made.
        moved = self._feature_axis != 1
        x = inputs.movedim(self._feature_axis, 1) if moved else inputs
        if training and self.trainable:
            if self.synchronized and _world_size() > 1:
                outputs, mean, variance = _synchronized_batch_norm(x, self.gamma, self.beta,
                                                                   self.epsilon)
            else:
                outputs, mean, variance = _batch_norm_with_statistics(
                    x, self.gamma, self.beta, self.epsilon, self.moving_mean.dtype)
            with torch.no_grad():
                weight = 1.0 - self.momentum
                self.moving_mean.lerp_(mean.to(self.moving_mean.dtype), weight)
                self.moving_variance.lerp_(variance.to(self.moving_variance.dtype), weight)
        else:
            outputs = F.batch_norm(x, self.moving_mean, self.moving_variance, self.gamma,
                                   self.beta, False, 0.0, self.epsilon)
        return outputs.movedim(1, self._feature_axis) if moved else outputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {
            **super().get_config(), "axis": self.axis, "momentum": self.momentum,
            "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
            "beta_initializer": serialize_argument(self.beta_initializer),
            "gamma_initializer": serialize_argument(self.gamma_initializer),
            "moving_mean_initializer": serialize_argument(self.moving_mean_initializer),
            "moving_variance_initializer": serialize_argument(self.moving_variance_initializer),
            "beta_regularizer": serialize_argument(self.beta_regularizer),
            "gamma_regularizer": serialize_argument(self.gamma_regularizer),
            "beta_constraint": serialize_argument(self.beta_constraint),
            "gamma_constraint": serialize_argument(self.gamma_constraint),
            "synchronized": self.synchronized,
        }


@register("LayerNormalization")
class LayerNormalization(Layer):
    """Normalizes each sample over `axis`: `y = gamma * (x - mean) / sqrt(var + epsilon) + beta`.

    `rms_scaling=True` gives RMSNorm (`y = gamma * x / sqrt(mean(x^2) + epsilon)`).
    """

    def __init__(self, axis: int | Sequence[int] = -1, epsilon: float = 1e-3, center: bool = True,
                 scale: bool = True, rms_scaling: bool = False, beta_initializer: Any = "zeros",
                 gamma_initializer: Any = "ones", beta_regularizer: Any = None,
                 gamma_regularizer: Any = None, beta_constraint: Any = None,
                 gamma_constraint: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        if epsilon <= 0:
            raise ValueError(f"`epsilon` must be positive. Received: epsilon={epsilon}.")
        self.axis = axis if isinstance(axis, int) else list(axis)
        self.epsilon, self.center, self.scale, self.rms_scaling = float(epsilon), center, scale, rms_scaling
        self.beta_initializer = initializers_module.get(beta_initializer)
        self.gamma_initializer = initializers_module.get(gamma_initializer)
        self.beta_regularizer = regularizers_module.get(beta_regularizer)
        self.gamma_regularizer = regularizers_module.get(gamma_regularizer)
        self.beta_constraint = constraints_module.get(beta_constraint)
        self.gamma_constraint = constraints_module.get(gamma_constraint)
        self.supports_masking = True

    def build(self, input_shape):
        self._axes, self._trailing, shape = _normalized_axes(self, input_shape, self.axis)
        self._normalized_shape = shape
        self.gamma = self.add_weight(shape=shape, initializer=self.gamma_initializer,
                                     regularizer=self.gamma_regularizer,
                                     constraint=self.gamma_constraint, name="gamma") \
            if self.scale else None
        self.beta = self.add_weight(shape=shape, initializer=self.beta_initializer,
                                    regularizer=self.beta_regularizer,
                                    constraint=self.beta_constraint, name="beta") \
            if self.center and not self.rms_scaling else None

    def call(self, inputs):
        try:
            return self._normalize(inputs)
        except RuntimeError as error:
            for axis, size in zip(self._axes, self._normalized_shape):
                _raise_if_features_changed(self, inputs, axis, size, error)
            raise

    def _normalize(self, inputs: Tensor) -> Tensor:
        if self.rms_scaling:
            if self._trailing:
                return F.rms_norm(inputs, self._normalized_shape, self.gamma, self.epsilon)
            variance = inputs.square().mean(dim=self._axes, keepdim=True)
            outputs = inputs * torch.rsqrt(variance + self.epsilon)
        elif self._trailing:
            return F.layer_norm(inputs, self._normalized_shape, self.gamma, self.beta, self.epsilon)
        else:
            variance, mean = torch.var_mean(inputs, dim=self._axes, keepdim=True, correction=0)
            outputs = (inputs - mean) * torch.rsqrt(variance + self.epsilon)
        broadcast = [1] * inputs.ndim
        for a in self._axes:
            broadcast[a] = inputs.shape[a]
        if self.gamma is not None:
            outputs = outputs * self.gamma.reshape(broadcast)
        if self.beta is not None:
            outputs = outputs + self.beta.reshape(broadcast)
        return outputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {
            **super().get_config(), "axis": self.axis, "epsilon": self.epsilon,
            "center": self.center, "scale": self.scale, "rms_scaling": self.rms_scaling,
            "beta_initializer": serialize_argument(self.beta_initializer),
            "gamma_initializer": serialize_argument(self.gamma_initializer),
            "beta_regularizer": serialize_argument(self.beta_regularizer),
            "gamma_regularizer": serialize_argument(self.gamma_regularizer),
            "beta_constraint": serialize_argument(self.beta_constraint),
            "gamma_constraint": serialize_argument(self.gamma_constraint),
        }


@register("RMSNormalization")
class RMSNormalization(Layer):
    """Root-mean-square normalization (Zhang & Sennrich, 2019) over `axis`:
    `y = scale * x / sqrt(mean(x^2) + epsilon)`. No centering and no bias.

    Args:
        axis: the axis or axes to normalize over (and the shape of `scale`).
        epsilon: added to the mean square for stability.

    Input shape: any. Output shape: the input's.

    >>> layer = RMSNormalization()
    >>> layer(torch.tensor([[3.0, 4.0]])).round(decimals=4)
    tensor([[0.8485, 1.1314]], grad_fn=<RoundBackward1>)
    """

    def __init__(self, axis: int | Sequence[int] = -1, epsilon: float = 1e-6, **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or epsilon <= 0:
            raise ValueError(f"`epsilon` must be a positive number. Received: epsilon={epsilon!r}.")
        self.axis = axis if isinstance(axis, int) else list(axis)
        self.epsilon = float(epsilon)
        self.supports_masking = True

    def build(self, input_shape):
        self._axes, self._trailing, self._normalized_shape = _normalized_axes(
            self, input_shape, self.axis)
        self.scale = self.add_weight(shape=self._normalized_shape, initializer="ones",
                                     name="scale")

    def call(self, inputs):
        try:
            if self._trailing:
                return F.rms_norm(inputs, self._normalized_shape, self.scale, self.epsilon)
            mean_square = inputs.square().mean(dim=self._axes, keepdim=True)
            broadcast = [1] * inputs.ndim
            for a in self._axes:
                broadcast[a] = inputs.shape[a]
            return inputs * torch.rsqrt(mean_square + self.epsilon) * self.scale.reshape(broadcast)
        except RuntimeError as error:
            for axis, size in zip(self._axes, self._normalized_shape):
                _raise_if_features_changed(self, inputs, axis, size, error)
            raise

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon}


@register("GroupNormalization")
class GroupNormalization(Layer):
    """Normalizes over groups of channels per sample (Wu & He, 2018); `groups=1` is layer norm
    over all features, `groups=channels` (or -1, Keras's spelling) instance norm."""

    def __init__(self, groups: int = 32, axis: int = -1, epsilon: float = 1e-3, center: bool = True,
                 scale: bool = True, beta_initializer: Any = "zeros", gamma_initializer: Any = "ones",
                 beta_regularizer: Any = None, gamma_regularizer: Any = None,
                 beta_constraint: Any = None, gamma_constraint: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        if epsilon <= 0:
            raise ValueError(f"`epsilon` must be positive. Received: epsilon={epsilon}.")
        # -1 means one group per channel; the count is known at build.
        self.groups = groups if groups == -1 and not isinstance(groups, bool) else \
            check_positive_int("groups", groups)
        self.axis, self.epsilon = axis, float(epsilon)
        self.center, self.scale = center, scale
        self.beta_initializer = initializers_module.get(beta_initializer)
        self.gamma_initializer = initializers_module.get(gamma_initializer)
        self.beta_regularizer = regularizers_module.get(beta_regularizer)
        self.gamma_regularizer = regularizers_module.get(gamma_regularizer)
        self.beta_constraint = constraints_module.get(beta_constraint)
        self.gamma_constraint = constraints_module.get(gamma_constraint)
        self.supports_masking = True

    def build(self, input_shape):
        self._feature_axis = self.axis % len(input_shape)
        channels = input_shape[self._feature_axis]
        if channels is None or (self.groups != -1 and channels % self.groups):
            raise ShapeError(
                f"Layer {self.name!r} (GroupNormalization): the number of channels ({channels}) "
                f"must be a multiple of groups={self.groups}."
            )
        self._channels = channels
        self._group_count = channels if self.groups == -1 else self.groups
        self.gamma = self.add_weight(shape=(channels,), initializer=self.gamma_initializer,
                                     regularizer=self.gamma_regularizer,
                                     constraint=self.gamma_constraint, name="gamma") \
            if self.scale else None
        self.beta = self.add_weight(shape=(channels,), initializer=self.beta_initializer,
                                    regularizer=self.beta_regularizer,
                                    constraint=self.beta_constraint, name="beta") \
            if self.center else None

    def call(self, inputs):
        x = inputs.movedim(self._feature_axis, 1)
        try:
            outputs = F.group_norm(x, self._group_count, self.gamma, self.beta, self.epsilon)
        except RuntimeError as error:
            _raise_if_features_changed(self, inputs, self._feature_axis, self._channels, error)
            raise
        return outputs.movedim(1, self._feature_axis)

    def get_config(self):
        return {**super().get_config(), "groups": self.groups, "axis": self.axis,
                "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
                "beta_initializer": serialize_argument(self.beta_initializer),
                "gamma_initializer": serialize_argument(self.gamma_initializer),
                "beta_regularizer": serialize_argument(self.beta_regularizer),
                "gamma_regularizer": serialize_argument(self.gamma_regularizer),
                "beta_constraint": serialize_argument(self.beta_constraint),
                "gamma_constraint": serialize_argument(self.gamma_constraint)}


@register("UnitNormalization")
class UnitNormalization(Layer):
    """Scales each sample to unit L2 norm over `axis`."""

    def __init__(self, axis: int | Sequence[int] = -1, **kwargs: Any):
        super().__init__(**kwargs)
        self.axis = axis if isinstance(axis, int) else list(axis)
        self.supports_masking = True

    def call(self, inputs):
        norm = inputs.square().sum(dim=_axes(self.axis), keepdim=True).clamp_min(1e-12).sqrt()
        return inputs / norm

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
