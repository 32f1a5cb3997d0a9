"""Core layers: Dense, Activation, Dropout, Embedding, Masking, Lambda, Identity,
TorchModuleWrapper (a plain torch module as a layer), and TorchOp (a torch function applied to
symbolic tensors inside a functional model)."""

from __future__ import annotations

import base64
import builtins
import inspect
import marshal
import numbers
import types
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lamina import activations, config, tree
from lamina import constraints as constraints_module
from lamina import initializers as initializers_module
from lamina import regularizers as regularizers_module
from lamina._registry import register
from lamina._symbolic import KerasTensor
from lamina.errors import FileFormatError, ShapeError, UnsafeLoadError
from lamina.layers.layer import Layer, check_input_rank, unique_name
from lamina.ops._op import resolve, saved_name
from lamina.saving.serialization import deserialize, serialize

Tensor = torch.Tensor


def serialize_argument(value: Any) -> Any:
    """Serialize an activation/initializer/regularizer/constraint argument for get_config."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return serialize(value)


def check_positive_int(name: str, value: Any, layer: Any = None) -> int:
    """`value` as an int, or a ValueError naming the argument (and `layer`, when given)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        where = f"Layer {layer.name!r} ({type(layer).__name__}): " if layer is not None else ""
        raise ValueError(
            f"{where}`{name}` must be a positive integer. Received: {name}={value!r}.")
    return int(value)


def check_rate(name: str, value: Any) -> float:
    if not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(
            f"`{name}` must be a float in the range [0, 1). Received: {name}={value!r}."
        )
    return float(value)


# Output widths at which the CPU's float32 GEMM (MKL) runs 1.5-4x slower, forward and backward,
# on Keras's row-major `(in, units)` kernel than on nn.Linear's `(units, in)` weight once the
# product is large (rows x input_dim >= 2^14); at other widths, or smaller products, the two
# layouts run alike or the row-major one wins (docs/benchmarks.md, "Narrow Dense outputs").
_NARROW_UNITS = range(2, 11)
_NARROW_MIN_WORK = 1 << 14


def _narrow_layout_pays(inputs: Tensor) -> bool:
    """A large enough product in float32 on the CPU outside autocast: where the narrow-output
    layout was measured. A dynamic size under torch.compile/export is symbolic; branching on it
    would add a guard on the batch size, so such a trace keeps the plain product."""
    work = inputs.numel()
    return (type(work) is int and work >= _NARROW_MIN_WORK and inputs.dtype is torch.float32
            and inputs.is_cpu and not torch.is_autocast_enabled("cpu"))


@register("Dense")
class Dense(Layer):
    """Densely connected layer: `outputs = activation(inputs @ kernel + bias)`, the textbook
    `z = W·x + b; a = f(z)`.

    Args:
        units: dimensionality of the output space.
        activation: activation function or its name (None: linear).
        use_bias: whether to add a bias vector.

    Input shape: `(batch_size, ..., input_dim)`. Output shape: `(batch_size, ..., units)`.
    The kernel is stored in Keras's layout `(input_dim, units)`.
    """

    def __init__(
        self,
        units: int,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        **kwargs: Any,
    ):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.units = check_positive_int("units", units)
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = initializers_module.get(kernel_initializer)
        self.bias_initializer = initializers_module.get(bias_initializer)
        self.kernel_regularizer = regularizers_module.get(kernel_regularizer)
        self.bias_regularizer = regularizers_module.get(bias_regularizer)
        self.kernel_constraint = constraints_module.get(kernel_constraint)
        self.bias_constraint = constraints_module.get(bias_constraint)
        self.supports_masking = True

    def build(self, input_shape):
        check_input_rank(self, input_shape, min_rank=2)
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ShapeError(
                f"Layer {self.name!r} (Dense) needs the last axis of its input to be known. "
                f"Received an input of shape {tuple(input_shape)}."
            )
        self.kernel = self.add_weight(
            shape=(input_dim, self.units), initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer, constraint=self.kernel_constraint, name="kernel",
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                shape=(self.units,), initializer=self.bias_initializer,
                regularizer=self.bias_regularizer, constraint=self.bias_constraint, name="bias",
            )
        self.input_dim = input_dim

    def call(self, inputs):
        if inputs.shape[-1] != self.input_dim:
            raise ShapeError(
                f"Input 0 of layer {self.name!r} (Dense) is incompatible: expected the last axis "
                f"to have size {self.input_dim}, but received an input of shape "
                f"{tuple(inputs.shape)}."
            )
        if self.units in _NARROW_UNITS and _narrow_layout_pays(inputs):
            # A copy of input_dim * units floats, small next to the product it speeds up.
            outputs = F.linear(inputs, self.kernel.t().contiguous(), self.bias)
        elif inputs.ndim == 2 and self.bias is not None:
            outputs = torch.addmm(self.bias, inputs, self.kernel)
        else:
            outputs = inputs @ self.kernel
            if self.bias is not None:
                outputs = outputs + self.bias
        if self.activation is activations.relu:
            # The product is a fresh tensor that its backward does not read (it saves the
            # input and kernel), so it is rectified in place: no second output-sized tensor
            # and one pass over memory fewer, as nn.ReLU(inplace=True) after nn.Linear.
            return torch.relu_(outputs)
        return self.activation(outputs)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": serialize_argument(self.kernel_initializer),
            "bias_initializer": serialize_argument(self.bias_initializer),
            "kernel_regularizer": serialize_argument(self.kernel_regularizer),
            "bias_regularizer": serialize_argument(self.bias_regularizer),
            "kernel_constraint": serialize_argument(self.kernel_constraint),
            "bias_constraint": serialize_argument(self.bias_constraint),
        }


@register("Activation")
class Activation(Layer):
    """Applies an activation function: `outputs = activation(inputs)`."""

    def __init__(self, activation: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)
        self.supports_masking = True

    def call(self, inputs):
        return self.activation(inputs)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "activation": activations.serialize(self.activation)}


@register("Identity")
class Identity(Layer):
    """Returns its input unchanged (a placeholder in architectures with optional parts)."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape


@register("Dropout")
class Dropout(Layer):
    """Zeroes inputs with probability `rate` during training and scales the rest by
    `1 / (1 - rate)`, so inference needs no rescaling.

    Args:
        rate: fraction of the inputs to drop, in [0, 1).
        noise_shape: shape of the binary mask, broadcast over the input (None entries take the
            input's size); e.g. `(batch, 1, features)` drops the same features at every step.
        seed: makes the sequence of masks reproducible.
    """

    def __init__(self, rate: float, noise_shape: Sequence[int | None] | None = None,
                 seed: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.rate = check_rate("rate", rate)
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
        self.seed = seed
        self._generator: torch.Generator | None = None
        self.supports_masking = True

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        if self.noise_shape is None and self.seed is None:
            return F.dropout(inputs, self.rate, True)
        shape = inputs.shape if self.noise_shape is None else tuple(
            inputs.shape[i] if d is None else d for i, d in enumerate(self.noise_shape)
        )
        keep = torch.empty(shape, dtype=inputs.dtype, device=inputs.device)
        keep.bernoulli_(1.0 - self.rate, generator=self._seeded_generator(inputs.device))
        return inputs * keep / (1.0 - self.rate)

    def _seeded_generator(self, device: torch.device) -> torch.Generator | None:
        if self.seed is None:
            return None
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device).manual_seed(self.seed)
        return self._generator

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        noise_shape = None if self.noise_shape is None else list(self.noise_shape)
        return {**super().get_config(), "rate": self.rate, "noise_shape": noise_shape,
                "seed": self.seed}


@register("Embedding")
class Embedding(Layer):
    """Turns positive integer indices into dense vectors: `outputs = embeddings[inputs]`.

    Args:
        input_dim: vocabulary size (largest index + 1).
        output_dim: dimension of the dense embedding.
        mask_zero: treat index 0 as padding: the layer then emits a mask that downstream
            layers (RNNs, attention, pooling) use to ignore padded steps. Index 0 must then not be
            used for a real token, so `input_dim` should be vocabulary size + 1.

    Input shape: `(batch_size, ...)` integers. Output shape: `(batch_size, ..., output_dim)`.
    """

    def __init__(self, input_dim: int, output_dim: int, embeddings_initializer: Any = "uniform",
                 embeddings_regularizer: Any = None, embeddings_constraint: Any = None,
                 mask_zero: bool = False, weights: Any = None, **kwargs: Any):
        # Keras 2's `input_length` only fixed the input shape; accept it so old code runs.
        input_length = kwargs.pop("input_length", None)
        if input_length is not None and "input_shape" not in kwargs:
            kwargs["input_shape"] = (input_length,)
        super().__init__(weights=weights, **kwargs)
        self.input_dim = check_positive_int("input_dim", input_dim)
        self.output_dim = check_positive_int("output_dim", output_dim)
        self.embeddings_initializer = initializers_module.get(embeddings_initializer)
        self.embeddings_regularizer = regularizers_module.get(embeddings_regularizer)
        self.embeddings_constraint = constraints_module.get(embeddings_constraint)
        self.mask_zero = mask_zero
        self.supports_masking = mask_zero
        self._produces_mask = mask_zero

    def build(self, input_shape=None):
        self.embeddings = self.add_weight(
            shape=(self.input_dim, self.output_dim), initializer=self.embeddings_initializer,
            regularizer=self.embeddings_regularizer, constraint=self.embeddings_constraint,
            name="embeddings",
        )

    def call(self, inputs):
        if inputs.dtype.is_floating_point:
            inputs = inputs.long()
        return F.embedding(inputs, self.embeddings)

    def compute_mask(self, inputs, mask=None):
        if not self.mask_zero:
            return None
        return inputs != 0

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def get_config(self):
        return {
            **super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim,
            "embeddings_initializer": serialize_argument(self.embeddings_initializer),
            "embeddings_regularizer": serialize_argument(self.embeddings_regularizer),
            "embeddings_constraint": serialize_argument(self.embeddings_constraint),
            "mask_zero": self.mask_zero,
        }


@register("Masking")
class Masking(Layer):
    """Masks time steps whose features all equal `mask_value`; downstream layers skip them."""

    def __init__(self, mask_value: float = 0.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.mask_value = mask_value
        self.supports_masking = True
        self._produces_mask = True

    def call(self, inputs):
        keep = (inputs != self.mask_value).any(dim=-1, keepdim=True)
        return inputs * keep.to(inputs.dtype)

    def compute_mask(self, inputs, mask=None):
        return (inputs != self.mask_value).any(dim=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "mask_value": self.mask_value}


@register("Lambda")
class Lambda(Layer):
    """Wraps an arbitrary function of tensors as a layer: `outputs = function(inputs, **arguments)`.

    A Lambda's function is code, so a saved model containing one loads only with
    `safe_mode=False` (files never run code by default).
    """

    def __init__(self, function: Callable, output_shape: Any = None, mask: Any = None,
                 arguments: dict | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if not callable(function):
            raise TypeError(f"`function` must be callable. Received: {function!r}.")
        self.function = function
        self.output_shape_arg = output_shape
        self.mask = mask
        self.arguments = arguments or {}
        self.supports_masking = mask is not None

    def call(self, inputs):
        return self.function(inputs, **self.arguments)

    def compute_mask(self, inputs, mask=None):
        if callable(self.mask):
            return self.mask(inputs, mask)
        return self.mask

    def get_config(self):
        loaded = self.__dict__.get("_loaded_bytecode")
        if loaded is not None and loaded[0] is self.function.__code__:
            code = loaded[1]  # marshal's bytes differ after a load; save what was loaded
        else:
            code = base64.b64encode(marshal.dumps(self.function.__code__)).decode("ascii")
        return {**super().get_config(), "function": {"python_bytecode": code},
                "output_shape": self.output_shape_arg, "arguments": self.arguments}

    @classmethod
    def from_config(cls, config_dict, safe_mode: bool = True):
        config_dict = dict(config_dict)
        function = config_dict.pop("function")
        if isinstance(function, dict):
            if safe_mode:
                raise UnsafeLoadError(
                    "This model contains a Lambda layer, whose function is Python bytecode that "
                    "would run when loaded. Loading it is disabled by default. If you trust the "
                    "file, load it with safe_mode=False."
                )
            bytecode = function["python_bytecode"]
            code = marshal.loads(base64.b64decode(bytecode))
            # A function's globals carry `__builtins__` as a module's do: torch's dispatch
            # machinery reads it from the calling frame (shape inference under a load budget).
            function = types.FunctionType(
                code, {"torch": torch, "F": F, "__builtins__": builtins})
            output_shape = config_dict.pop("output_shape", None)
            layer = cls(function, output_shape=output_shape, **config_dict)
            layer._loaded_bytecode = (code, bytecode)
            return layer
        output_shape = config_dict.pop("output_shape", None)
        return cls(function, output_shape=output_shape, **config_dict)


@register("TorchModuleWrapper")
class TorchModuleWrapper(Layer):
    """A plain `torch.nn.Module` as a layer of a functional model (Keras 3's name):
    `sequence, state = TorchModuleWrapper(nn.LSTM(3, 4, batch_first=True))(x)`.

    The module's parameters and buffers are the layer's weights (`get_weights`, `save_weights`);
    torch.nn's own modules also save and load with the model. A Sequential model takes plain
    modules without the wrapper.
    """

    def __init__(self, module: nn.Module, **kwargs: Any):
        super().__init__(**kwargs)
        if not isinstance(module, nn.Module):
            raise TypeError(
                f"`module` must be a torch.nn.Module. Received: {module!r} of type "
                f"{type(module).__name__}."
            )
        self.module = module
        self.built = True

    def call(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def get_config(self):
        return {**super().get_config(), "module": serialize(self.module)}

    @classmethod
    def from_config(cls, config_dict, custom_objects=None, safe_mode: bool = True):
        config_dict = dict(config_dict)
        module = deserialize(config_dict.pop("module"), custom_objects, safe_mode=safe_mode)
        return cls(module, **config_dict)


# The wrapped module takes only the arguments its caller gives: no training= or mask=.
TorchModuleWrapper._call_takes_training = False


# What a saved TorchOp may call, per namespace: pure tensor math only. A name is added here only
# after review: it must not do I/O, touch global state (default device or dtype, RNG state, thread
# counts), draw random numbers, work in place, or allocate from a size given as a plain number
# (torch.zeros(n), torch.arange(n), Tensor.new_empty(n): those are left out; the few kept ops
# whose output size a config number scales, like Tensor.repeat or F.pad, are bounded while a file
# loads by `TorchOp._charge_outputs`). Loading resolves a name only if it is listed here, before
# anything is built; saving refuses any other function so no file names one.
_SAFE_TORCH_FUNCTIONS: dict[str, frozenset[str]] = {
    "torch": frozenset("""
        abs absolute acos acosh add addcdiv addcmul addmm all amax amin aminmax any
        arccos arccosh arcsin arcsinh arctan arctan2 arctanh argmax argmin argsort asin asinh atan
        atan2 atanh atleast_1d atleast_2d atleast_3d baddbmm bitwise_and bitwise_not bitwise_or
        bitwise_xor bmm broadcast_to cat ceil chunk clamp clamp_max clamp_min clip column_stack
        concat concatenate cos cosh count_nonzero cross cummax cummin cumprod cumsum deg2rad
        diag_embed diagonal diff digamma div divide dot dstack einsum eq erf erfc erfinv exp exp2
        expm1 flatten flip fliplr flipud float_power floor floor_divide fmax fmin fmod frac gather
        ge greater greater_equal gt hstack hypot index_select inner isclose isfinite isinf isnan
        isneginf isposinf kron kthvalue ldexp le lerp less less_equal lgamma log log10 log1p log2
        log_softmax logaddexp logaddexp2 logcumsumexp logical_and logical_not logical_or
        logical_xor logit logsumexp lt matmul max maximum mean median min minimum mm movedim
        moveaxis mul multiply mv nan_to_num nanmean nansum narrow ne neg negative not_equal
        ones_like outer permute pow prod rad2deg reciprocal relu remainder repeat_interleave
        reshape roll rot90 round rsqrt select sgn sigmoid sign signbit sin sinc sinh softmax sort
        split sqrt square squeeze stack std std_mean sub subtract sum swapaxes swapdims t
        take_along_dim tan tanh tensor_split tensordot tile topk transpose tril triu true_divide
        trunc unbind unflatten unsqueeze var var_mean vstack where xlogy zeros_like
    """.split()),
    "torch.nn.functional": frozenset("""
        adaptive_avg_pool1d adaptive_avg_pool2d adaptive_avg_pool3d adaptive_max_pool1d
        adaptive_max_pool2d adaptive_max_pool3d avg_pool1d avg_pool2d avg_pool3d bilinear
        binary_cross_entropy binary_cross_entropy_with_logits celu conv1d conv2d conv3d
        conv_transpose1d conv_transpose2d conv_transpose3d cosine_similarity cross_entropy elu
        embedding fold gelu glu group_norm hardshrink hardsigmoid hardswish hardtanh huber_loss
        interpolate kl_div l1_loss layer_norm leaky_relu linear local_response_norm log_softmax
        logsigmoid lp_pool1d lp_pool2d max_pool1d max_pool2d max_pool3d mish mse_loss nll_loss
        normalize one_hot pad pairwise_distance pdist pixel_shuffle pixel_unshuffle prelu relu
        relu6 rms_norm scaled_dot_product_attention selu sigmoid silu smooth_l1_loss softmax
        softmin softplus softshrink softsign tanh tanhshrink threshold unfold
    """.split()),
    "torch.Tensor": frozenset("""
        __abs__ __add__ __and__ __eq__ __floordiv__ __ge__ __getitem__ __gt__ __invert__ __le__
        __lt__ __matmul__ __mod__ __mul__ __ne__ __neg__ __or__ __pos__ __pow__ __radd__
        __rmatmul__ __rmul__ __ror__ __rpow__ __rsub__ __rtruediv__ __rxor__ __sub__
        __truediv__ __xor__
        abs add all amax amin any argmax argmin argsort bfloat16 bool ceil chunk clamp clip clone
        contiguous cos cumprod cumsum detach diagonal div double eq exp expand expand_as
        flatten flip float floor gather ge gt half int isnan le log log1p log_softmax logical_not
        logsumexp long lt masked_fill matmul max mean min mul narrow ne neg norm permute pow prod
        reciprocal relu repeat repeat_interleave reshape reshape_as roll round rsqrt select
        sigmoid sign sin softmax sort split sqrt square squeeze std sub sum t tanh tile topk
        transpose tril triu type_as unbind unflatten unsqueeze var view view_as where
    """.split()),
}
_TORCH_NAMESPACES = {"torch": torch, "torch.nn.functional": F, "torch.Tensor": Tensor}
# Keyword arguments that would write into a tensor the graph does not own or move data to a
# device the config chooses: refused in a saved TorchOp whatever its function.
_REFUSED_KEYWORDS = ("out", "device", "pin_memory")


def _safe_torch_function(qualified_name: Any) -> Callable:
    """The allowed torch function named `namespace.name`, or UnsafeLoadError."""
    if not isinstance(qualified_name, str):
        raise FileFormatError(
            f"A TorchOp's `function` must be a string such as 'torch.cat'. Received: "
            f"{qualified_name!r}."
        )
    if qualified_name.startswith("lamina.ops."):
        op = resolve(qualified_name)
        if op is None:
            raise UnsafeLoadError(
                f"Refusing to load the operation {qualified_name!r}: it is not one of "
                "lamina.ops's tensor operations (lamina.ops._op.SAVEABLE). The file was altered "
                "or written by a newer Lamina."
            )
        return op
    namespace, _, name = qualified_name.rpartition(".")
    allowed = _SAFE_TORCH_FUNCTIONS.get(namespace)
    if allowed is None:
        raise UnsafeLoadError(
            f"Refusing to load a torch operation from {namespace!r} ({qualified_name!r}): a "
            f"saved TorchOp may only name functions of {', '.join(_SAFE_TORCH_FUNCTIONS)}. "
            "If the model needs it, write the computation as a custom Layer registered with "
            "lamina.saving.register_keras_serializable() and pass it in custom_objects."
        )
    if name not in allowed:
        raise UnsafeLoadError(
            f"Refusing to load the torch operation {qualified_name!r}: it is not on Lamina's "
            "list of pure tensor operations a saved model may call (no I/O, global state, random "
            "numbers or size-given allocation). If the model needs it, write the computation as "
            "a custom Layer registered with lamina.saving.register_keras_serializable() and "
            "pass it in custom_objects."
        )
    return getattr(_TORCH_NAMESPACES[namespace], name)


def _saved_torch_function_name(function: Callable) -> str | None:
    """`namespace.name` of an allowed function (found by identity: `F.logsigmoid.__name__` is
    'log_sigmoid'), or None. A lamina.ops function is saved by its own public name."""
    if saved_name(function) is not None:
        return saved_name(function)
    for namespace, names in _SAFE_TORCH_FUNCTIONS.items():
        space = _TORCH_NAMESPACES[namespace]
        for name in names:
            if getattr(space, name, None) is function:
                return f"{namespace}.{name}"
    return None


def _check_torch_op_arguments(qualified_name: str, args: tuple, kwargs: dict,
                              error: type[Exception]) -> None:
    """Refuse arguments that make an allowed function write in place or pick a device."""
    refused = [k for k in _REFUSED_KEYWORDS if k in kwargs]
    inplace = kwargs.get("inplace")
    if inplace is None and args and not qualified_name.startswith("lamina.ops."):
        namespace, _, name = qualified_name.rpartition(".")
        try:
            bound = inspect.signature(getattr(_TORCH_NAMESPACES[namespace], name)).bind_partial(
                *args)
            inplace = bound.arguments.get("inplace")
        except (TypeError, ValueError):  # builtins without a signature take no `inplace`
            pass
    if inplace:
        refused.append("inplace")
    if refused:
        raise error(
            f"The torch operation {qualified_name!r} in a saved model may not take "
            f"{', '.join(repr(k) for k in refused)}: a saved graph computes new tensors and "
            "never writes into its inputs or chooses a device. Drop the argument (move the "
            "model with model.to(device))."
        )


class TorchOp(Layer):
    """A torch function applied to symbolic tensors in a functional model (`torch.cat([a, b])`,
    `x[:, 0]`, `a + b`). Not for direct use: applying the function to a `KerasTensor` makes one."""

    def __init__(self, function: Callable, args: tuple, kwargs: dict, **layer_kwargs: Any):
        function_name = getattr(function, "__name__", "op").strip("_")
        prefix = "" if hasattr(function, "_lamina_op_name") else "torch_"
        layer_kwargs.setdefault("name", unique_name(f"{prefix}{function_name}"))
        super().__init__(**layer_kwargs)
        self.function = function
        self.template = (args, kwargs)
        self.built = True

    @property
    def template(self) -> tuple[tuple, dict]:
        """The call's `(args, kwargs)`, KerasTensors where its symbolic inputs go."""
        return self._template

    @template.setter
    def template(self, template: tuple[tuple, dict]) -> None:
        self._template = template
        # Split once, so that a call only drops its inputs into their slots. Dicts in insertion
        # order, which `symbolic_leaves` and so a saved config's list of inputs follow.
        self._leaves, self._spec = tree.flatten_with_spec(template, insertion_ordered=True)
        self._slots = [i for i, leaf in enumerate(self._leaves) if isinstance(leaf, KerasTensor)]

    def _record(self) -> Any:
        # Called on its symbolic inputs like any layer: its shapes are inferred on meta, where a
        # load budget refuses `x.repeat(10**6, 10**6)` before anything is allocated.
        return self([self._leaves[slot] for slot in self._slots])

    def fill_template(self, inputs: Sequence[Any]) -> tuple[tuple, dict]:
        """The call's `(args, kwargs)` with its symbolic tensors replaced by `inputs`, in the
        order `_record` passes them."""
        if len(inputs) < len(self._slots):
            raise ValueError(
                f"The torch operation {self.name!r} takes {len(self._slots)} symbolic inputs. "
                f"Received {len(inputs)}. Call it on the inputs it was recorded with."
            )
        leaves = list(self._leaves)
        for slot, value in zip(self._slots, inputs):
            leaves[slot] = value
        return self._spec.unflatten(leaves)

    def call(self, inputs):
        args, kwargs = self.fill_template(inputs)
        return self.function(*args, **kwargs)

    def get_config(self):
        qualified_name = _saved_torch_function_name(self.function)
        if qualified_name is None:
            raise ValueError(
                f"Cannot save the torch operation {self.function!r} applied in a functional model: "
                "only functions of torch, torch.nn.functional and torch.Tensor on Lamina's list of "
                "pure tensor operations can be saved, so that loading never calls anything else "
                "(see docs/security.md). Wrap it in a custom Layer subclass registered with "
                "lamina.saving.register_keras_serializable()."
            )
        args, kwargs = self.template
        _check_torch_op_arguments(qualified_name, args, kwargs, ValueError)
        counter = iter(range(10**9))

        def encode(value: Any) -> Any:
            if isinstance(value, KerasTensor):
                return {"__input__": next(counter)}
            if isinstance(value, slice):
                return {"__slice__": [encode(value.start), encode(value.stop), encode(value.step)]}
            if value is Ellipsis:
                return {"__ellipsis__": True}
            if isinstance(value, torch.dtype):
                return {"__dtype__": config.dtype_name(value)}
            if isinstance(value, tuple):
                return {"__tuple__": [encode(v) for v in value]}
            if isinstance(value, list):
                return [encode(v) for v in value]
            if isinstance(value, dict):
                return {k: encode(v) for k, v in value.items()}
            if value is None or isinstance(value, (int, float, bool, str)):
                return value
            raise ValueError(f"Cannot save the argument {value!r} of torch operation {self.name!r}.")

        return {**super().get_config(), "function": qualified_name,
                "args": encode(list(args)), "kwargs": encode(kwargs)}

    @classmethod
    def from_config(cls, config_dict):
        config_dict = dict(config_dict)
        qualified_name = config_dict.pop("function", None)
        function = _safe_torch_function(qualified_name)
        placeholder = KerasTensor((), torch.float32, (torch.zeros(()), torch.zeros(())))
        args = _decode_torch_op_value(config_dict.pop("args", []), placeholder, qualified_name)
        kwargs = _decode_torch_op_value(config_dict.pop("kwargs", {}), placeholder,
                                        qualified_name)
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise FileFormatError(
                f"The TorchOp {qualified_name!r} must store `args` as a list and `kwargs` as an "
                f"object. Received: args={args!r:.80}, kwargs={kwargs!r:.80}."
            )
        _check_torch_op_arguments(qualified_name, tuple(args), kwargs, UnsafeLoadError)
        return cls(function, tuple(args), kwargs, **config_dict)


def _decode_torch_op_value(value: Any, placeholder: Any, qualified_name: str) -> Any:
    """A TorchOp argument from its config: JSON data and the few markers get_config writes
    (input, slice, ellipsis, dtype, tuple), never a name that is looked up."""
    def malformed(marker: str, content: Any) -> FileFormatError:
        return FileFormatError(
            f"The saved TorchOp {qualified_name!r} has a malformed {marker!r} argument: "
            f"{content!r:.80}. The file was altered or damaged."
        )

    def decode(value: Any) -> Any:
        if isinstance(value, dict):
            if "__input__" in value:
                return placeholder
            if "__slice__" in value:
                parts = value["__slice__"]
                if not isinstance(parts, list) or len(parts) != 3 or not all(
                        p is None or (isinstance(p, int) and not isinstance(p, bool))
                        for p in parts):
                    raise malformed("__slice__", parts)
                return slice(*parts)
            if "__ellipsis__" in value:
                return Ellipsis
            if "__dtype__" in value:
                name = value["__dtype__"]
                if not isinstance(name, str):
                    raise malformed("__dtype__", name)
                try:
                    return config.torch_dtype(name)
                except ValueError:
                    raise malformed("__dtype__", name) from None
            if "__tuple__" in value:
                if not isinstance(value["__tuple__"], list):
                    raise malformed("__tuple__", value["__tuple__"])
                return tuple(decode(v) for v in value["__tuple__"])
            return {str(k): decode(v) for k, v in value.items()}
        if isinstance(value, list):
            return [decode(v) for v in value]
        if value is None or isinstance(value, (str, int, float, bool)):
            return value
        raise malformed("argument", value)

    return decode(value)


register("TorchOp")(TorchOp)
