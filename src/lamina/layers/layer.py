"""`Layer`: the Keras layer contract on a `torch.nn.Module`.

A layer is an `nn.Module` whose `forward` builds it on first call (Keras's lazy `build`), resolves
`training` from the module's train/eval mode, and carries Keras masks between layers as a
`_keras_mask` attribute on tensors (as Keras does in eager mode). Once built, a call costs one
Python frame more than `nn.Module.__call__`.

Layers start in inference mode: calling a layer or model directly behaves as Keras's
`model(x)` does (dropout off, batch norm on moving statistics; `call` gets its own `training`
default, so Keras's random augmentation layers augment). `fit` and `model.train()` switch to
training mode, so a hand-written PyTorch loop calls `model.train()` as any PyTorch loop does;
once a mode was set, it decides (see `_CallContext`).

Precision as Keras's `__call__` has it: a layer with weights (or a non-default dtype) casts
floating inputs to its dtype (`_cast_inputs`), and an outermost call outside autocast runs under
the mixed policy of the layers inside, with training/precision.py's float32 islands
(`_policy_autocast`), compiled or not.
"""

from __future__ import annotations

import functools
import inspect
import math
import re
import threading
import warnings
from collections import defaultdict
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.modules import module as _torch_module

from lamina import _symbolic, config, mixed_precision, tree
from lamina import constraints as constraints_module
from lamina import initializers as initializers_module
from lamina import regularizers as regularizers_module
from lamina._load_budget import charge_weight
from lamina._naming import to_snake_case
from lamina._symbolic import KerasTensor
from lamina.errors import ShapeError
from lamina.saving.serialization import serialize
from lamina.layers.input_spec import assert_input_compatibility
from lamina.layers.variable import StateVariable, Variable, as_state_variable

Tensor = torch.Tensor

_NAME_COUNTS: dict[str, int] = defaultdict(int)

# Keyword arguments every layer accepts (Keras's base-layer kwargs).
_BASE_KWARGS = ("input_shape", "input_dim", "batch_input_shape", "batch_size", "weights")
# Arguments the base config already describes; left out of an automatic config.
_BASE_CONFIG_KEYS = frozenset(
    ("name", "trainable", "dtype", "autocast", "activity_regularizer") + _BASE_KWARGS
)


_AGGREGATIONS = (None, "none", "mean", "sum", "only_first_replica")
_WARNED_WEIGHT_OPTIONS: set[str] = set()


def _check_weight_options(autocast: bool, aggregation: Any) -> None:
    """Keras's `add_weight(autocast=, aggregation=)`: validated as Keras does; each value that
    torch cannot honour per variable warns once per process, saying what happens instead."""
    if aggregation not in _AGGREGATIONS:
        raise ValueError(
            "Invalid value for argument `aggregation`. Expected one of `None`, `'none'`, "
            f"`'mean'`, `'sum'`, `'only_first_replica'`. Received: aggregation={aggregation!r}"
        )
    if aggregation not in (None, "none") and "aggregation" not in _WARNED_WEIGHT_OPTIONS:
        _WARNED_WEIGHT_OPTIONS.add("aggregation")
        warnings.warn(
            f"add_weight(aggregation={aggregation!r}) has no effect in Lamina: under "
            "torch.distributed (DDP), trainable weights stay equal across processes because "
            "gradients are averaged, and non-trainable ones are broadcast from process 0. "
            "Reduce a value across processes yourself with torch.distributed.all_reduce.",
            UserWarning, stacklevel=3)
    if not autocast and "autocast" not in _WARNED_WEIGHT_OPTIONS:
        _WARNED_WEIGHT_OPTIONS.add("autocast")
        warnings.warn(
            "add_weight(autocast=False) has no effect in Lamina: under mixed precision "
            "torch.autocast picks the dtype per operation, not per variable, so matmuls and "
            "convolutions that read this weight still run in the compute dtype (normalizations, "
            "reductions and losses run in float32). Weights are always stored in float32; run "
            "an operation under torch.autocast(device_type, enabled=False) to keep it in "
            "float32.", UserWarning, stacklevel=3)


def unique_name(base: str) -> str:
    """'dense', then 'dense_1', 'dense_2', ... per base name, as Keras does."""
    count = _NAME_COUNTS[base]
    _NAME_COUNTS[base] += 1
    return base if count == 0 else f"{base}_{count}"


def module_key(modules: dict[str, Any], module: nn.Module, owner: nn.Module) -> str:
    """The key `owner` registers a layer under: its class in snake case, numbered per class
    (`dense`, `dense_1`, ...), as Keras keys weights files. The keys, and so `state_dict()`,
    depend on the architecture alone: a state dict loads into any identically built model.
    A key that names an attribute of the owner's class (a layer class `AddLoss` against
    `Model.add_loss`) is numbered too, since torch refuses to shadow an attribute."""
    base = to_snake_case(type(module).__name__)
    key, index = base, 1
    while key in modules or hasattr(type(owner), key):
        key, index = f"{base}_{index}", index + 1
    return key


def clear_session() -> None:
    """Reset the default-name counters (Keras's `keras.backend.clear_session`)."""
    _NAME_COUNTS.clear()


def shape_of(value: Any) -> Any:
    """The shape of a tensor (as a tuple), or the same structure of shapes for lists/dicts."""

    def shape(node: Any) -> Any:
        if tree.is_nested(node):
            # Several inputs' shapes come as a list: a tuple of shapes would read as the two
            # arguments of a two-argument `build` (`_maybe_build`), and layers tell several
            # inputs from one by the list.
            return list(node) if isinstance(node, (list, tuple)) else None
        found = getattr(node, "shape", None)
        return tree.MAP_TO_NONE if found is None else tuple(found)

    return tree.traverse(shape, value, top_down=False)


class _CallContext(threading.local):
    """Per thread: how deep in nested layer calls we are, and what the outermost call said.

    Keras resolves `training` as: the call's own argument, else the outermost call's, else the
    default in the layer's `call` signature; and it clears the `add_loss` terms of the last
    call when an outermost call starts. Layers here also follow their module's train/eval mode,
    so a layer needs the outermost call's explicit `training` and whether the outermost layer's
    mode was ever set by `train()`/`eval()`, its own or a parent's (a fresh augmentation layer
    or pipeline augments, as in Keras; after `model.eval()` it does not, as in PyTorch).
    """

    depth = 0
    training: Any = None
    mode_set = False
    root: Any = None  # the outermost layer of the call in progress
    # How many of the float32 islands of training/precision.py turned autocast off around this
    # call: inside one, autocast is off on purpose and the layers' policies do not turn it on.
    islands = 0

    def __init__(self) -> None:
        # Each thread's dict holds every field from the start: torch.compile guards on the
        # dict's keys, and a call it traces sets them (a jit_compile fit in a new thread
        # failed its guards on `depth`).
        self.depth = 0
        self.training = None
        self.mode_set = False
        self.root = None
        self.islands = 0


_CALL = _CallContext()


class _Policies:
    """What an outermost call needs to know about mixed policies, process-wide.

    `in_use`: a layer with a mixed policy was created, or a model compiled with mixed precision;
    until then an outermost call skips the policy check (one attribute read). `epoch` counts
    the events after which a model's cached policy decision may be stale: a layer created,
    built or converted (`.to(dtype)`)."""

    in_use = False
    epoch = 0


_POLICIES = _Policies()


def note_policy_change(in_use: bool = False) -> None:
    """Invalidate the policy decisions cached for outermost calls (and, with `in_use`, turn
    the policy check on): called when a layer is created, built or converted, and when a
    model is compiled with mixed precision."""
    _POLICIES.epoch += 1
    if in_use:
        _POLICIES.in_use = True


_MODULE_CALL = nn.Module.__call__
_GLOBAL_HOOKS = (_torch_module._global_forward_hooks, _torch_module._global_forward_pre_hooks,
                 _torch_module._global_backward_hooks, _torch_module._global_backward_pre_hooks)


def direct_calls_allowed() -> bool:
    """Whether a model's call may run its layers' `call` directly (`Layer._calls_directly`):
    inside a layer call (the model's own, which did the outermost call's work), while nothing
    watches module calls (global hooks, FX or JIT tracing) and no probe is running."""
    return (_CALL.depth > 0 and nn.Module.__call__ is _MODULE_CALL
            and not any(_GLOBAL_HOOKS) and not torch._C._get_tracing_state()
            and not _symbolic.is_probing())


# What a symbolic call passes to a layer whose call takes `training` and was not given it.
_PROBE_KWARGS = {"training": False}


def _unbatched_shape(value: Any) -> Any:
    """The shape of an output with the batch axis as None, as summaries show it."""
    shape = shape_of(value)
    if isinstance(shape, tuple) and shape:
        return (None,) + shape[1:]
    if isinstance(shape, list):
        return [(None,) + s[1:] if isinstance(s, tuple) and s else s for s in shape]
    return shape


def _is_symbolic(value: Any) -> bool:
    if isinstance(value, KerasTensor):
        return True
    if isinstance(value, (list, tuple)):
        return any(isinstance(v, KerasTensor) for v in value)
    if isinstance(value, dict):
        return any(isinstance(v, KerasTensor) for v in value.values())
    return False


class Layer(nn.Module):
    """Base class of every layer: lazy `build`, `call`, weights in Keras layouts, config.

    Subclass it as in Keras: create weights in `build(input_shape)` with `add_weight`, compute in
    `call(inputs, training=None, mask=None)` (declare only the arguments you use), and return the
    `__init__` arguments from `get_config`. A subclass without `get_config` gets Keras 3's
    automatic one: the `__init__` arguments it was made with, when they are plain data.

    >>> class Scale(Layer):
    ...     def build(self, input_shape):
    ...         self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones")
    ...     def call(self, inputs):
    ...         return inputs * self.w
    >>> Scale()(torch.ones(2, 3)).shape
    torch.Size([2, 3])
    """

    _registry_kind = "layer"
    # Set per class by __init_subclass__ from `call`'s signature.
    _call_takes_training = False
    _call_takes_mask = False
    _plain_call_path = True
    _call_training_default: Any = None
    # Keras's defaults, as class attributes so that a subclass may set them in its class body:
    # a layer that overrides `compute_mask` supports masking unless it says otherwise.
    supports_masking = False
    # An `InputSpec` (or a list of them) that the first argument of each call must meet.
    input_spec: Any = None
    # Set per class by __init_subclass__: overrides get_build_config or build_from_config.
    _custom_build_config = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        parameters = inspect.signature(cls.call).parameters
        has_var_kw = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
        cls._call_takes_training = "training" in parameters or has_var_kw
        # What `call` gets when nothing sets `training` (Keras's rule): its own default, so
        # Keras's random augmentation layers (`training=True`) augment in a data pipeline.
        default = parameters["training"].default if "training" in parameters else None
        cls._call_training_default = None if default is inspect.Parameter.empty else default
        cls._call_takes_mask = "mask" in parameters
        # A class that keeps torch's and Lamina's call path may be run by `_calls_directly`.
        cls._plain_call_path = (cls.forward is Layer.forward and cls.__call__ is nn.Module.__call__
                                and cls._call_impl is nn.Module._call_impl
                                and cls._wrapped_call_impl is nn.Module._wrapped_call_impl)
        # With the base compute_mask, a call without an input mask makes no mask: skip it.
        cls._custom_compute_mask = cls.compute_mask is not Layer.compute_mask
        # Saving writes a build config, and loading calls build_from_config, for layers that
        # customize them (saving/serialization.py); other layers build from the graph.
        cls._custom_build_config = cls.get_build_config is not Layer.get_build_config or \
            cls.build_from_config is not Layer.build_from_config
        declared = next(c for c in cls.__mro__ if "supports_masking" in c.__dict__)
        if declared is Layer and cls._custom_compute_mask:
            cls.supports_masking = True
        if "build" in cls.__dict__:
            cls.build = _mark_built_after(cls.__dict__["build"])

    def __new__(cls, *args: Any, **kwargs: Any) -> "Layer":
        instance = super().__new__(cls)
        if cls.get_config is Layer.get_config:
            # A subclass without get_config (a typical CustomLayer) gets Keras 3's automatic
            # config: its __init__ arguments, captured here when they are plain data.
            object.__setattr__(instance, "_auto_config", _capture_init_arguments(cls, args, kwargs))
        return instance

    def __init__(
        self,
        *,
        activity_regularizer: Any = None,
        trainable: bool = True,
        dtype: Any = None,
        autocast: bool = True,
        name: str | None = None,
        **kwargs: Any,
    ):
        unknown = set(kwargs) - set(_BASE_KWARGS)
        if unknown:
            raise TypeError(
                f"Unrecognized keyword arguments passed to {type(self).__name__}: "
                f"{sorted(unknown)}. Check the spelling against the layer's documented arguments."
            )
        super().__init__()
        if name is not None and not isinstance(name, str):
            raise TypeError(f"`name` must be a string. Received: name={name!r}.")
        self.name = name or unique_name(to_snake_case(type(self).__name__))
        self._trainable = bool(trainable)
        # Keras's semantics: the global policy (or `dtype=`, which may name a mixed policy) at
        # creation is the layer's for good.
        self._autocast_policy, dtype = mixed_precision.layer_policy(dtype)
        self._dtype = config.torch_dtype(dtype)
        note_policy_change(self._autocast_policy is not None)
        self.autocast = autocast
        self.activity_regularizer = regularizers_module.get(activity_regularizer)
        self.built = False
        self.training = False
        self._batch_input_shape = _batch_input_shape_from_kwargs(kwargs)
        self._initial_weights = kwargs.get("weights")
        self._build_input_shape: Any = None
        self._output_shape: Any = None
        self._keras_weight_names: dict[str, str] = {}
        self._weight_attr_by_id: dict[int, str] = {}
        self._regularized: list[tuple[str, Any]] = []
        self._constrained: list[tuple[str, Any]] = []
        self._activity_losses: list[Tensor] = []

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        # A copy's (deepcopy, pickle) weights are new tensors: key them by their own id()s, so
        # `self.w = self.kernel` renames the weight in the copy as in the original.
        weights = {**self._parameters, **self._buffers}
        self.__dict__["_weight_attr_by_id"] = {
            id(weights[attr]): attr for attr in state.get("_keras_weight_names", ())
            if weights.get(attr) is not None}

    # ----------------------------------------------------------------- the Keras contract

    def build(self, input_shape: Any) -> None:
        """Create the layer's weights from the input shape. Called once, before the first call."""

    def call(self, inputs: Any) -> Any:
        raise NotImplementedError(
            f"Layer {type(self).__name__} does not implement `call(inputs)`. Subclasses of "
            "lamina.layers.Layer compute their output in `call`."
        )

    def compute_output_shape(self, input_shape: Any) -> Any:
        """The output shape for an input shape (batch axis None), found by a probe call."""
        return _symbolic.output_shape_by_probe(self, input_shape)

    def compute_output_spec(self, *args: Any, **kwargs: Any) -> Any:
        """Symbolic tensors (shape and dtype, no data) of the outputs for inputs given as
        KerasTensors or tensors, without recording a graph node. From `compute_output_shape`
        where a layer overrides it for one input, else by running the layer on probes."""
        args, kwargs = tree.map_structure(_as_symbolic, (args, kwargs))
        if not self.built:
            self._maybe_build(_build_shapes(self, args, kwargs))
        if type(self).compute_output_shape is not Layer.compute_output_shape and \
                len(args) == 1 and isinstance(args[0], KerasTensor):
            shape = self.compute_output_shape(args[0].shape)
            dtype = config.torch_dtype(self.compute_dtype)
            if isinstance(shape, list) and shape and isinstance(shape[0], (list, tuple)):
                return [_symbolic_spec(s, dtype) for s in shape]
            return _symbolic_spec(shape, dtype)
        probe_kwargs = _PROBE_KWARGS if self._call_takes_training else None
        outputs = _symbolic.symbolic_call(self, args, kwargs, probe_kwargs)
        return tree.map_structure(_detached_spec, outputs)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        """The mask of the output: the input's mask for layers that support masking, else None."""
        return mask if self.supports_masking else None

    def get_config(self) -> dict[str, Any]:
        config_dict: dict[str, Any] = {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": self.__dict__.get("_autocast_policy") or config.dtype_name(self._dtype),
        }
        if self._batch_input_shape is not None:
            config_dict["batch_input_shape"] = list(self._batch_input_shape)
        if self.activity_regularizer is not None:
            config_dict["activity_regularizer"] = serialize(self.activity_regularizer)
        if type(self).get_config is Layer.get_config:
            return self._automatic_config(config_dict)
        return config_dict

    def _automatic_config(self, base: dict[str, Any]) -> dict[str, Any]:
        captured = self.__dict__.get("_auto_config")
        if captured is None:
            raise NotImplementedError(
                f"{type(self).__name__} has no get_config(), and its __init__ arguments cannot be "
                "captured automatically (they are not plain numbers, strings, lists or dicts, or "
                "they were passed through *args). Override get_config() to return "
                "{**super().get_config(), <each __init__ argument>: value}."
            )
        parameters = inspect.signature(type(self).__init__).parameters
        if not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
            # An __init__ without **kwargs (a typical MyModel) cannot take name= or dtype=.
            base = {k: v for k, v in base.items() if k in parameters}
        return {**base, **captured}

    @classmethod
    def from_config(cls, config_dict: dict[str, Any]) -> "Layer":
        return cls(**config_dict)

    # ----------------------------------------------------------------- calling

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        first = args[0] if args else next(iter(kwargs.values()), None)
        if not isinstance(first, Tensor):
            if _is_symbolic(first) or (not args and any(_is_symbolic(v) for v in kwargs.values())):
                return self._symbolic_call(args, kwargs)
            if self.built and _has_array(first):
                # numpy arrays and Python numbers, as Keras's model(x) accepts them.
                args = tuple(_to_tensor(a, self._dtype) for a in args)
                first = args[0] if args else first
        if not self.built:
            args = self._build_on_first_call(args, kwargs)
            first = args[0] if args else first
        context = _CALL
        depth = context.depth
        if not depth:
            if _POLICIES.in_use:
                policy = _policy_autocast(self, args, kwargs)
                if policy is not None:
                    # Keras computes in the layers' policies in every call, compiled or not.
                    with torch.autocast(*policy):
                        return self.forward(*args, **kwargs)
            # The terms added by the previous call go (they hold its graph), as in Keras.
            if self.__dict__.get("_holds_losses"):
                self._clear_losses()
            context.root = self
            context.training = kwargs.get("training")
            context.mode_set = self.__dict__.get("_mode_set", False)
        cast_to = self._input_cast
        if cast_to is not None and (kwargs or len(args) != 1 or not isinstance(first, Tensor)
                                    or first.dtype is not cast_to):
            args, kwargs = _cast_inputs(self, cast_to, args, kwargs)
            first = args[0] if args else next(iter(kwargs.values()), None)
        if self.input_spec is not None:
            assert_input_compatibility(self.input_spec, first, self.name)
        if self._call_takes_training:
            if kwargs.get("training") is None:
                training = context.training
                if training is None:
                    # The module's mode once fit/train()/eval() set it; before that, Keras's
                    # default (a layer or model called fresh, as in a data pipeline).
                    if self.training:
                        training = True
                    elif context.mode_set:
                        training = False
                    else:
                        training = self._call_training_default
                kwargs["training"] = training
        elif kwargs:
            # Keras accepts training= for every layer; ones whose call ignores it drop it.
            kwargs.pop("training", None)
        input_mask = getattr(first, "_keras_mask", None)
        if input_mask is not None and self._call_takes_mask and kwargs.get("mask") is None:
            kwargs["mask"] = input_mask
        context.depth = depth + 1
        try:
            outputs = self.call(*args, **kwargs)
        finally:
            context.depth = depth
            if not depth:
                context.root = None
        if self._output_shape is None and not _symbolic.is_probing():
            self._output_shape = _unbatched_shape(outputs)
        if input_mask is not None or self._produces_mask or (
                self.supports_masking and self._custom_compute_mask):
            _attach_mask(outputs, self.compute_mask(first, input_mask))
        if self.activity_regularizer is not None and not _symbolic.is_probing():
            self._add_activity_penalties(outputs)
        return outputs

    def _calls_directly(self, x: Any, training: Any = None) -> bool:
        """Whether `self.call(x)` (with `training=training` when `call` takes it) does all
        that `self(x, training=training)` would inside a model's call, where
        `direct_calls_allowed()`: `x` is a tensor, the layer was called before, and neither
        torch's call machinery (hooks, `module.compile()`) nor Lamina's (input casts and specs,
        masks, activity penalties, resolving an unset `training`) has anything to do."""
        return (self._plain_call_path and self._output_shape is not None
                and isinstance(x, Tensor)
                and (training is not None or not self._call_takes_training)
                and not (self._forward_hooks or self._forward_pre_hooks or self._backward_hooks
                         or self._backward_pre_hooks)
                and self._compiled_call_impl is None and "forward" not in self.__dict__
                and self.input_spec is None and self.activity_regularizer is None
                and not self._produces_mask
                and not (self.supports_masking and self._custom_compute_mask)
                and (self._input_cast is None or x.dtype is self._input_cast)
                and getattr(x, "_keras_mask", None) is None)

    def _add_activity_penalties(self, outputs: Any) -> None:
        """Keras 3's activity penalty: one per output tensor, divided by its batch size so the
        regularization strength does not grow with the batch (tf.keras divided too)."""
        for output in tree.flatten(outputs):
            if isinstance(output, Tensor):
                penalty = self.activity_regularizer(output)
                if output.ndim and output.shape[0]:
                    penalty = penalty / output.shape[0]
                self.add_loss(penalty)

    # Keras's input conversion (`_cast_inputs`); a model leaves it to its layers.
    _casts_inputs = True
    # The dtype floating inputs are cast to, set when built (`_input_cast_of`); None: none.
    _input_cast: torch.dtype | None = None
    # Layers that create masks (Embedding(mask_zero=True), Masking) set this in __init__.
    _produces_mask = False
    _custom_compute_mask = False
    # True while `build` runs for a first call (Model.build then leaves the building to it).
    _building = False

    def _symbolic_call(self, args: tuple, kwargs: dict) -> Any:
        """A call on KerasTensors: build from their shapes, find the output's by a probe call
        (in inference mode, as Keras's symbolic calls run), record the node."""
        if not self.built:
            self._check_spec_before_build(args, kwargs)
            self._maybe_build(_build_shapes(self, args, kwargs))
            if self._initial_weights is not None:
                self.set_weights(self._initial_weights)
                self._initial_weights = None
        outputs = _symbolic.symbolic_call(
            self, args, kwargs, _PROBE_KWARGS if self._call_takes_training else None)
        if self._output_shape is None:
            self._output_shape = _symbolic.shapes_of(outputs)
        if "_first_node" not in self.__dict__:
            _remember_first_node(self, outputs)
        return outputs

    def _build_on_first_call(self, args: tuple, kwargs: dict) -> tuple:
        args = tuple(_to_tensor(a, self._dtype) for a in args)
        self._check_spec_before_build(args, kwargs)
        self._maybe_build(_build_shapes(self, args, kwargs))
        if self._initial_weights is not None:
            self.set_weights(self._initial_weights)
            self._initial_weights = None
        return args

    def _check_spec_before_build(self, args: tuple, kwargs: dict) -> None:
        # As Keras does before `build`, so a wrong input is reported as such, not as whatever
        # `build` makes of its shape; the dtype is checked on the call, after the input cast.
        if self.input_spec is not None:
            first = args[0] if args else next(iter(kwargs.values()), None)
            assert_input_compatibility(self.input_spec, first, self.name, check_dtype=False)

    def _maybe_build(self, input_shape: Any, shapes_by_name: dict[str, Any] | None = None
                     ) -> None:
        """Build once for `input_shape`; with `shapes_by_name`, call `build(**shapes_by_name)`
        (Keras's `shapes_dict` build config) instead."""
        if self.built:
            return
        self._build_input_shape = input_shape
        object.__setattr__(self, "_building", True)
        try:
            # Real weights, seeded as an eager build, even for a layer first called inside
            # another layer's shape probe (which runs on meta).
            with _symbolic.real_weights():
                if shapes_by_name is not None:
                    self.build(**shapes_by_name)
                elif isinstance(input_shape, tuple) and len(input_shape) == 2 and \
                        _build_arity(self) == 2:
                    self.build(*input_shape)
                else:
                    self.build(input_shape)
        finally:
            object.__setattr__(self, "_building", False)
        self.built = True
        self._after_build()

    def _after_build(self) -> None:
        # Plain torch modules made in __init__ or build start in training mode and trainable;
        # follow the layer's mode and its trainable flag.
        _set_training(self, self.training, explicit=False)
        if not self._trainable:
            self.trainable = False
        self._input_cast = _input_cast_of(self)
        note_policy_change()

    def build_from_config_shape(self, input_shape: Sequence[int | None]) -> None:
        """Build from a shape with a None batch axis (used when loading and by `Sequential`)."""
        self._maybe_build(tuple(input_shape))

    def get_build_config(self) -> dict[str, Any] | None:
        """What `build_from_config` needs to create the layer's state: the input shape it was
        built with (`{"input_shape": shape}`, or `{"shapes_dict": {"a_shape": ..., ...}}` for a
        `build` of several shapes), None before it is built. Override both to rebuild state
        that does not follow from the input shape; saved files carry an override's result."""
        shape = self._build_input_shape
        if not self.built or shape is None:
            return None
        names = _build_parameter_names(self)
        if len(names) >= 2 and isinstance(shape, tuple) and len(shape) == len(names):
            return {"shapes_dict": dict(zip(names, shape))}
        return {"input_shape": shape}

    def build_from_config(self, config_dict: dict[str, Any] | None) -> None:
        """Create the layer's state from `get_build_config()`'s dict (as Keras's loader does
        before it loads the weights): `build(input_shape)` by default."""
        if not config_dict:
            return
        if "input_shape" in config_dict:
            self._maybe_build(_shape_from_config(config_dict["input_shape"]))
        elif "shapes_dict" in config_dict:
            shapes = {name: _shape_from_config(shape)
                      for name, shape in config_dict["shapes_dict"].items()}
            self._maybe_build(tuple(shapes.values()), shapes_by_name=shapes)

    def _load_build_config(self, config_dict: dict[str, Any] | None) -> None:
        """Loading's call of `build_from_config` (as Keras's loader makes it): the layer is
        built afterwards, even when an override creates its state without `build`."""
        if self.built or not config_dict:
            return
        self.build_from_config(config_dict)
        if not self.built:
            self.built = True
            self._after_build()

    # ----------------------------------------------------------------- weights

    def add_weight(
        self,
        shape: Sequence[int] | None = None,
        initializer: Any = None,
        dtype: Any = None,
        trainable: bool = True,
        autocast: bool = True,
        regularizer: Any = None,
        constraint: Any = None,
        aggregation: str = "none",
        name: str | None = None,
    ) -> Tensor:
        """Create a weight of the given (Keras-layout) shape and track it.

        Trainable weights are `nn.Parameter`s; non-trainable ones are buffers, so `.to(device)`
        and `state_dict()` carry both. Returns the tensor; assigning it to an attribute
        (`self.w = self.add_weight(...)`) registers it under that attribute name.
        """
        shape = tuple(int(d) for d in (shape or ()))
        if any(d < 0 for d in shape):
            raise ValueError(
                f"Layer {self.name!r}: weight shape must have non-negative sizes. Received: {shape}."
            )
        _check_weight_options(autocast, aggregation)
        torch_dtype = config.torch_dtype(dtype) if dtype is not None else self._dtype
        if initializer is None:
            initializer = "glorot_uniform" if torch_dtype.is_floating_point else "zeros"
        keras_name = name or "variable"
        # Before the initializer allocates: a config rebuilt from a file may ask for any shape.
        charge_weight(math.prod(shape), f"{self.name}.{keras_name}")
        value = initializers_module.get(initializer)(shape, dtype=torch_dtype)
        value = self._from_keras_layout(keras_name, value)
        attr = _free_attribute(self, keras_name)
        path = f"{self.name}/{keras_name}"
        if trainable:
            # A layer made with trainable=False creates frozen weights, as in Keras.
            weight: Tensor = Variable(value, requires_grad=self._trainable)
            weight._set_keras_names(keras_name, path)
            self.register_parameter(attr, weight)
        else:
            weight = as_state_variable(value, keras_name, path)
            self.register_buffer(attr, weight)
        self._keras_weight_names[attr] = keras_name
        self._weight_attr_by_id[id(weight)] = attr
        if self.built:
            self._input_cast = _input_cast_of(self)
        if regularizer is not None:
            self._regularized.append((attr, regularizers_module.get(regularizer)))
        if constraint is not None:
            self._constrained.append((attr, constraints_module.get(constraint)))
        return weight

    def add_variable(
        self,
        shape: Sequence[int],
        initializer: Any,
        dtype: Any = None,
        trainable: bool = True,
        autocast: bool = True,
        regularizer: Any = None,
        constraint: Any = None,
        name: str | None = None,
    ) -> Tensor:
        """Keras 3's name for `add_weight`, with the shape and initializer first."""
        return self.add_weight(shape=shape, initializer=initializer, dtype=dtype,
                               trainable=trainable, autocast=autocast, regularizer=regularizer,
                               constraint=constraint, name=name)

    def __setattr__(self, name: str, value: Any) -> None:
        weight_attrs = self.__dict__.get("_weight_attr_by_id")
        if weight_attrs and isinstance(value, Tensor):
            old = weight_attrs.get(id(value))
            if old is not None and self._parameters.get(old, self._buffers.get(old)) is not value:
                # An id outlives its tensor: FSDP sets new (sharded, gathered) tensors on the
                # layer, and one may reuse a freed weight's id without being that weight.
                old = None
            if old is not None and old != name:
                self._rename_weight(old, name, value)
                return
            if old is not None and isinstance(value, StateVariable):
                # nn.Module would move an nn.Parameter (subclass) out of the buffers.
                return
        if isinstance(value, list) and value and all(isinstance(v, nn.Module) for v in value):
            # Keras tracks layers kept in a list; torch needs a ModuleList to see them.
            value = nn.ModuleList(value)
        super().__setattr__(name, value)

    def _rename_weight(self, old: str, new: str, value: Tensor) -> None:
        # A plain attribute of that name (e.g. `self.bias = None` set earlier) gives way.
        self.__dict__.pop(new, None)
        if old in self._parameters:
            del self._parameters[old]
            self.register_parameter(new, value)
        else:
            del self._buffers[old]
            self.register_buffer(new, value)
        self._keras_weight_names[new] = self._keras_weight_names.pop(old)
        self._weight_attr_by_id[id(value)] = new
        self._regularized = [(new if a == old else a, r) for a, r in self._regularized]
        self._constrained = [(new if a == old else a, c) for a, c in self._constrained]

    def _from_keras_layout(self, name: str, value: Tensor) -> Tensor:
        """Keras layout -> the layout this layer stores (identity unless a layer overrides)."""
        return value

    def _to_keras_layout(self, name: str, value: Tensor) -> Tensor:
        """Stored layout -> Keras layout, for `get_weights` and saved files."""
        return value

    def _own_weights(self) -> list[tuple[str, Tensor]]:
        """This layer's own weights as (Keras name, tensor), parameters then buffers."""
        items = [(self._keras_weight_names.get(a, a), p) for a, p in self._parameters.items()
                 if p is not None]
        items += [(self._keras_weight_names.get(a, a), b) for a, b in self._buffers.items()
                  if b is not None and a not in self._non_persistent_buffers_set]
        return items

    def _weight_entries(self) -> list[tuple[nn.Module, str, Tensor]]:
        """(owner, Keras name, tensor) for every weight, in Keras's order, without duplicates."""
        entries: list[tuple[nn.Module, str, Tensor]] = []
        seen: set[int] = set()
        for owner, name, tensor in _walk_weights(self):
            if id(tensor) not in seen:
                seen.add(id(tensor))
                entries.append((owner, name, tensor))
        return entries

    @property
    def weights(self) -> list[Tensor]:
        """All weights: trainable parameters and non-trainable state (e.g. moving statistics)."""
        return [t for _, _, t in self._weight_entries()]

    @property
    def trainable_weights(self) -> list[Tensor]:
        return [t for t in self.weights if isinstance(t, nn.Parameter) and t.requires_grad]

    @property
    def non_trainable_weights(self) -> list[Tensor]:
        return [t for t in self.weights if not (isinstance(t, nn.Parameter) and t.requires_grad)]

    @property
    def variables(self) -> list[Tensor]:
        return self.weights

    @property
    def trainable_variables(self) -> list[Tensor]:
        return self.trainable_weights

    @property
    def non_trainable_variables(self) -> list[Tensor]:
        return self.non_trainable_weights

    def get_weights(self) -> list[np.ndarray]:
        """The weights as numpy arrays in Keras layouts (a Dense kernel is (input_dim, units))."""
        arrays = []
        for owner, name, tensor in self._weight_entries():
            value = owner._to_keras_layout(name, tensor) if isinstance(owner, Layer) else tensor
            arrays.append(value.detach().cpu().numpy().copy())
        return arrays

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Set the weights from arrays in Keras layouts, in the order of `get_weights()`."""
        entries = self._weight_entries()
        weights = list(weights)
        if len(weights) != len(entries):
            raise ValueError(
                f"Layer {self.name!r} expects {len(entries)} weight arrays "
                f"({', '.join(n for _, n, _ in entries) or 'none'}), but received "
                f"{len(weights)}. Pass the list returned by get_weights() of an identical layer."
            )
        with torch.no_grad():
            for (owner, name, tensor), array in zip(entries, weights):
                value = torch.as_tensor(np.asarray(array), dtype=tensor.dtype)
                expected = tuple(
                    (owner._to_keras_layout(name, tensor) if isinstance(owner, Layer) else tensor).shape
                )
                if tuple(value.shape) != expected:
                    raise ValueError(
                        f"Layer {getattr(owner, 'name', type(owner).__name__)!r} weight {name!r} "
                        f"expects shape {expected}, but received shape {tuple(value.shape)}."
                    )
                if isinstance(owner, Layer):
                    value = owner._from_keras_layout(name, value)
                tensor.copy_(value.to(tensor.device))

    def _stored_weights(self) -> list[tuple[str, Tensor]]:
        """The (Keras name, tensor) pairs of this layer's own `vars` group in a `.keras` file:
        its own weights less those it files under Keras's sublayers (`_keras_weight_groups`)."""
        split = getattr(type(self), "_keras_weight_groups", None) or {}
        return [(n, t) for n, t in self._own_weights() if n.split("/")[0] not in split]

    def save_own_variables(self, store: dict[str, Any]) -> None:
        """Put this layer's own state into `store` for `model.save()`: its weights (Keras
        layouts) under "0", "1", .... Override it, with `load_own_variables`, to save state
        that is not a weight; values are tensors or arrays of numbers."""
        for index, (name, tensor) in enumerate(self._stored_weights()):
            store[str(index)] = self._to_keras_layout(name, tensor.detach())

    def load_own_variables(self, store: Any) -> None:
        """Set this layer's own state from what `save_own_variables` stored: a mapping of
        numpy arrays (`load_model` passes the file's values, as Keras's loader does)."""
        own = self._stored_weights()
        if len(store.keys()) != len(own):
            if not own and not self.built:
                raise ValueError(
                    f"Layer '{self.name}' was never built and thus it doesn't have any "
                    f"variables. However the weights file lists {len(store.keys())} variables "
                    "for this layer. Create all of its state in `build()` (children's too), or "
                    "implement `build_from_config(config)` (and `get_build_config()`) so that "
                    "loading can rebuild it.")
            raise ValueError(
                f"Layer '{self.name}' expected {len(own)} variables, but received "
                f"{len(store.keys())} variables during loading. Expected: "
                f"{[name for name, _ in own]}")
        values = []
        for index, (name, tensor) in enumerate(own):
            value = torch.as_tensor(np.asarray(store[str(index)]), dtype=tensor.dtype)
            expected = tuple(self._to_keras_layout(name, tensor).shape)
            if tuple(value.shape) != expected:
                raise ValueError(
                    f"Layer '{self.name}' weight '{name}' has shape {expected}, but the stored "
                    f"value has shape {tuple(value.shape)}. Load a file saved from the same "
                    "architecture.")
            values.append((tensor, self._from_keras_layout(name, value)))
        with torch.no_grad():
            for tensor, value in values:
                tensor.copy_(value.to(tensor.device))

    def count_params(self) -> int:
        """The number of scalars in all weights, trainable or not (Keras's `count_params`)."""
        if not self.built:
            raise ValueError(
                f"You tried to call count_params on layer {self.name!r}, but the layer isn't "
                "built. Build it first by calling it on data or giving it an input_shape."
            )
        return sum(t.numel() for t in self.weights)

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        value = bool(value)
        for module in self.modules():
            if isinstance(module, Layer):
                object.__setattr__(module, "_trainable", value)
        for parameter in self.parameters():
            parameter.requires_grad_(value)

    @property
    def dtype(self) -> str:
        return config.dtype_name(self._dtype)

    @property
    def dtype_policy(self) -> mixed_precision.DTypePolicy:
        """The layer's policy, fixed at creation: `mixed_bfloat16`, or its variables' dtype."""
        return mixed_precision.DTypePolicy(self.__dict__.get("_autocast_policy") or self.dtype)

    @property
    def compute_dtype(self) -> str:
        return self.dtype_policy.compute_dtype

    @property
    def variable_dtype(self) -> str:
        return self.dtype

    @property
    def input_dtype(self) -> str:
        """The dtype the layer's inputs are converted to (Keras's: the compute dtype)."""
        return self.compute_dtype

    @property
    def path(self) -> str | None:
        """The prefix of the layer's variable paths (`v.path == f"{layer.path}/{v.name}"`):
        its name once built, None before."""
        return self.name if self.built else None

    @property
    def input_shape(self) -> Any:
        if self._build_input_shape is None:
            raise AttributeError(
                f"Layer {self.name!r} has not been called yet; it has no input shape. Call it on "
                "data or build it first."
            )
        return self._build_input_shape

    @property
    def output_shape(self) -> Any:
        if self._output_shape is None:
            raise AttributeError(
                f"Layer {self.name!r} has not been called yet; it has no output shape. Call it on "
                "data or build it first."
            )
        return self._output_shape

    @property
    def input(self) -> Any:
        """The symbolic input(s) of the layer's first call in a functional graph (Keras's
        `layer.input`)."""
        return self._first_call_tensors("input", "inputs")

    @input.setter
    def input(self, value: Any) -> None:
        # Reached for plain values only: nn.Module stores sub-modules and weights itself.
        self.__dict__["input"] = value

    @property
    def output(self) -> Any:
        """The symbolic output(s) of the layer's first call in a functional graph."""
        return self._first_call_tensors("output", "outputs")

    @output.setter
    def output(self, value: Any) -> None:
        self.__dict__["output"] = value

    def _first_call_tensors(self, name: str, attribute: str) -> Any:
        # A sub-layer or value a subclass stored under this name comes first.
        for store in (self._modules, self._parameters, self._buffers, self.__dict__):
            if name in store:
                return store[name]
        node = self.__dict__.get("_first_node")
        if node is None:
            raise AttributeError(
                f"Layer {self.name!r} has never been called on symbolic inputs and thus has no "
                f"defined {name}. Call it on `lamina.Input(...)` tensors (a functional model) "
                "first."
            )
        values = getattr(node, attribute)
        return values[0] if len(values) == 1 else list(values)

    # ----------------------------------------------------------------- losses

    def add_loss(self, loss: Any) -> None:
        """Add scalar loss terms (a tensor, or a list of them), from `call`, to the training
        loss. They last until the next outermost call starts (Keras's `Layer.losses`: the
        losses of the last call), so a hand-written loop's next `backward()` never meets the
        previous step's graph."""
        terms = list(loss) if isinstance(loss, (list, tuple)) else [loss]
        for term in terms:
            if not isinstance(term, Tensor):
                raise ValueError(
                    "`add_loss()` takes tensors computed in `call()` (or a list of them). "
                    f"Received: {term!r:.80}."
                )
        if _symbolic.is_probing():
            return  # a shape probe's losses are not losses of any call
        self._activity_losses.extend(terms)
        # Flags that tell the next outermost call of either (and the trainer) that there are
        # terms to clear or collect, so calls without add_loss never walk their layers.
        self.__dict__["_holds_losses"] = True
        root = _CALL.root
        if root is not None:
            root.__dict__["_holds_losses"] = True

    @property
    def losses(self) -> list[Tensor]:
        """The terms `add_loss` (and activity regularizers) added during the last call, then
        weight-regularization penalties (recomputed now), of this layer and every layer inside."""
        found: list[Tensor] = []
        layers = [m for m in self.modules() if isinstance(m, Layer)]
        for module in layers:
            found.extend(module._activity_losses)
        for module in layers:
            for attr, regularizer in module._regularized:
                found.append(regularizer(getattr(module, attr)))
        return found

    def _clear_losses(self) -> None:
        for module in self.modules():
            if isinstance(module, Layer):
                if module._activity_losses:
                    module._activity_losses = []
                module.__dict__.pop("_holds_losses", None)

    # ----------------------------------------------------------------- modes and display

    def train(self, mode: bool = True) -> "Layer":
        """Training (True) or inference (False) mode for this layer and every module inside.

        Same effect as `nn.Module.train`, without its per-module `__setattr__`: `predict` and
        `evaluate` switch modes on every call, so this is on their path.
        """
        if not isinstance(mode, bool):
            raise ValueError(f"`mode` must be a bool. Received: mode={mode!r}.")
        _set_training(self, mode)
        return self

    def _apply(self, fn: Any, recurse: bool = True) -> "Layer":
        # `.to(torch.float64)`, `.double()`, `.half()`: the layer's dtype follows, so weights it
        # builds later, numpy inputs and its saved config all use the new dtype. An empty tensor
        # of the old dtype, converted the same way as the weights, tells the new one even for a
        # layer that has no weights (yet).
        result = super()._apply(fn, recurse)
        for attr, keras_name in self._keras_weight_names.items():
            # A conversion makes new buffer tensors (parameters are converted in place).
            buffer = self._buffers.get(attr)
            if buffer is not None and not isinstance(buffer, StateVariable):
                variable = as_state_variable(buffer, keras_name, f"{self.name}/{keras_name}")
                self._buffers[attr] = variable
                self._weight_attr_by_id[id(variable)] = attr
        converted = fn(torch.empty(0, dtype=self._dtype))
        if isinstance(converted, Tensor) and converted.is_floating_point() and \
                converted.dtype is not self._dtype:
            object.__setattr__(self, "_dtype", converted.dtype)
            # A mixed policy computes in bf16/f16 from float32 weights; weights now in another
            # dtype compute in it, as `.double()` means in torch: the policy becomes that
            # dtype's, so policy and weights never disagree (and the config says so).
            object.__setattr__(self, "_autocast_policy", None)
        # A device move too: the float32 islands depend on the device.
        note_policy_change()
        if self.built:
            object.__setattr__(self, "_input_cast", _input_cast_of(self))
        return result

    def __repr__(self) -> str:
        if self._modules:
            return super().__repr__()
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"

    def _sublayers(self) -> list[nn.Module]:
        return list(_iter_sublayers(self))

    @property
    def layers(self) -> list[nn.Module]:
        return self._sublayers()


_PLAIN_TRAIN = (nn.Module.train, Layer.train)


def holds_losses(layer: nn.Module) -> bool:
    """Whether `add_loss` added terms in the layer's last call (or since)."""
    return layer.__dict__.get("_holds_losses", False)


def _mark_built_after(build: Any) -> Any:
    """Wrap a subclass's `build` so that calling it by hand (`layer.build((None, 4))`, as Keras
    users do) marks the layer built; the first call then does not build it a second time."""

    @functools.wraps(build)
    def wrapped(self: Layer, *args: Any, **kwargs: Any) -> None:
        build(self, *args, **kwargs)
        if not self._building and not self.built:
            shape = args[0] if len(args) == 1 else tuple(args) if args else \
                next(iter(kwargs.values()), None)
            self._build_input_shape = shape
            self.built = True
            self._after_build()

    return wrapped


def _remember_first_node(layer: Layer, outputs: Any) -> None:
    tensors = outputs if isinstance(outputs, (list, tuple)) else \
        list(outputs.values()) if isinstance(outputs, dict) else [outputs]
    first = next((t for t in tensors if isinstance(t, KerasTensor)), None)
    if first is not None and first.node is not None and first.node.layer is layer:
        layer.__dict__["_first_node"] = first.node


def _set_training(module: nn.Module, mode: bool, explicit: bool = True) -> None:
    # `training` is a plain instance attribute of nn.Module; modules that override train()
    # (a frozen BatchNorm wrapper, say) still get their own train() called.
    module.__dict__["training"] = mode
    if explicit:
        # From now on the mode decides `training`, not Keras's call default (_CallContext).
        module.__dict__["_mode_set"] = True
    for child in module._modules.values():
        if child is None:
            continue
        if type(child).train in _PLAIN_TRAIN:
            _set_training(child, mode, explicit)
        else:
            child.train(mode)


def _capture_init_arguments(cls: type, args: tuple, kwargs: dict) -> dict[str, Any] | None:
    """The `__init__` arguments of a layer as a config dict, or None when they cannot be one."""
    try:
        signature = inspect.signature(cls.__init__)
        bound = signature.bind(None, *args, **kwargs)
    except (TypeError, ValueError):
        return None  # __init__ itself will report the bad call
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    parameters = list(signature.parameters.values())
    arguments.pop(parameters[0].name)
    for parameter in parameters[1:]:
        if parameter.kind is parameter.VAR_KEYWORD:
            arguments.update(arguments.pop(parameter.name, {}))
        elif parameter.kind is parameter.VAR_POSITIONAL:
            if arguments.pop(parameter.name, ()):
                return None
        elif parameter.kind is parameter.POSITIONAL_ONLY:
            return None
    arguments = {k: v for k, v in arguments.items() if k not in _BASE_CONFIG_KEYS}
    return arguments if _is_plain_data(arguments) else None


def _is_plain_data(value: Any) -> bool:
    if value is None or isinstance(value, (str, int, float, bool)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain_data(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain_data(v) for k, v in value.items())
    return False


def _has_array(value: Any) -> bool:
    """Whether a call argument holds numpy arrays or Python numbers to convert to tensors."""
    if isinstance(value, (np.ndarray, np.generic, int, float)) and not isinstance(value, bool):
        return True
    if isinstance(value, (list, tuple)):
        return any(isinstance(v, np.ndarray) for v in value) or (
            bool(value) and isinstance(value[0], (int, float)))
    if isinstance(value, dict):
        return any(isinstance(v, np.ndarray) for v in value.values())
    return False


_LOW_PRECISION = (torch.bfloat16, torch.float16)
_CONTAINERS = (list, tuple, dict)


def _input_cast_of(layer: Layer) -> torch.dtype | None:
    """The dtype a layer's floating inputs are cast to (`_cast_inputs`): its own, when it has
    floating weights (its own or its sublayers') or a dtype other than floatx; None for a layer
    without weights at the default dtype, which computes in its inputs' dtype (float64 data
    stays float64 through pooling or an activation), and for models, whose layers cast."""
    dtype = layer._dtype
    if not type(layer)._casts_inputs or not dtype.is_floating_point:
        return None
    if dtype is not config.torch_dtype(None):
        return dtype
    weights = (*layer.parameters(), *layer.buffers())
    return dtype if any(w.is_floating_point() for w in weights) else None


def _cast_inputs(layer: Layer, dtype: torch.dtype, args: tuple, kwargs: dict
                 ) -> tuple[tuple, dict]:
    """Keras's input conversion at `__call__`: floating tensors among the arguments (nested in
    lists and dicts too) become `dtype`, so a float64 layer takes float32 data and a float32
    one float64 data; integer and bool tensors stay. Not for `autocast=False` layers, as in
    Keras. Under autocast a float32 layer takes bf16/f16 activations as they are: autocast
    picks each operation's dtype. Arguments that need nothing are passed on as they are."""
    if not layer.autocast:
        return args, kwargs
    changed_args = _cast_arguments(dtype, enumerate(args))
    changed_kwargs = _cast_arguments(dtype, kwargs.items())
    if changed_args:
        args = tuple(changed_args.get(index, value) for index, value in enumerate(args))
    if changed_kwargs:
        kwargs = {**kwargs, **changed_kwargs}
    return args, kwargs


def _cast_arguments(dtype: torch.dtype, items: Iterable[tuple[Any, Any]]) -> dict[Any, Any]:
    """{position or name: cast value} of the arguments that `_cast_value` changes."""
    changed = {}
    for key, value in items:
        # A tensor of the dtype, or a flag such as training=False: nothing to do, no call.
        if (value.dtype is dtype) if isinstance(value, Tensor) else \
                not isinstance(value, _CONTAINERS):
            continue
        cast = _cast_value(dtype, value)
        if cast is not value:
            changed[key] = cast
    return changed


def _cast_value(dtype: torch.dtype, value: Any) -> Any:
    """`value` with its floating tensors in `dtype`; `value` itself when none changes."""
    if isinstance(value, Tensor):
        if value.dtype is dtype or not value.is_floating_point() or (
                value.dtype in _LOW_PRECISION and dtype is torch.float32
                and torch.is_autocast_enabled(value.device.type)):
            return value
        mask = getattr(value, "_keras_mask", None)
        value = value.to(dtype)
        if mask is not None:
            value._keras_mask = mask
        return value
    if isinstance(value, _CONTAINERS) and value:
        leaves = tree.flatten(value)
        if any(_cast_value(dtype, leaf) is not leaf for leaf in leaves
               if isinstance(leaf, Tensor)):
            return tree.map_structure(functools.partial(_cast_value, dtype), value)
    return value


def _policy_autocast(layer: Layer, args: tuple, kwargs: dict) -> tuple[str, torch.dtype] | None:
    """(device type, dtype) of the autocast an outermost call of `layer` runs under, as the
    policies of its layers (or its compiled `mixed_precision=`) say, with the float32 islands
    of training/precision.py; None to run the call as it is: nothing mixed in the layer,
    autocast already on (fit, evaluate, predict, a user's `torch.autocast`), a float32 island,
    or a shape probe. The decision is cached on the layer until a layer is created, built or
    converted (`.to()`), the model is compiled, or the call comes on another device."""
    if torch.compiler.is_compiling():
        # Traced by torch.compile, whose caller decides the autocast (compile(jit_compile=True)
        # runs it under the model's): deciding here would place hooks while tracing.
        return None
    state = layer.__dict__.get("_lamina_call_policy")
    trainer = layer.__dict__.get("_lamina_trainer")
    if state is None or state[0] != _POLICIES.epoch or state[1] is not trainer or \
            state[2] != len(layer._modules):
        # The engine's precision module imports the layers; a layer asks it only here, once
        # per model and change, and only in a process that uses mixed precision.
        from lamina.training import precision

        state = [_POLICIES.epoch, trainer, len(layer._modules),
                 precision.dtype_of_call(layer), None, None]
        layer.__dict__["_lamina_call_policy"] = state
    dtype = state[3]
    if dtype is None or _CALL.islands or _symbolic.is_probing():
        return None
    tensor = _first_tensor(args, kwargs)
    if tensor is None:
        return None
    device_type = tensor.device.type
    if device_type == "meta" or torch.is_autocast_enabled(device_type):
        return None
    if state[4] != device_type:
        from lamina.training import precision

        state[5] = precision.islands_of_call(layer, dtype, device_type)
        state[4] = device_type
    runs_low = state[5]
    if runs_low is not None and not runs_low(args):
        return None
    return device_type, dtype


def _first_tensor(args: tuple, kwargs: dict) -> Tensor | None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, Tensor):
            return value
        if isinstance(value, _CONTAINERS):
            found = next((v for v in tree.flatten(value) if isinstance(v, Tensor)), None)
            if found is not None:
                return found
    return None


def _iter_sublayers(module: nn.Module) -> Iterator[nn.Module]:
    for child in module._modules.values():
        if child is None:
            continue
        if isinstance(child, (nn.ModuleList, nn.ModuleDict)) and not isinstance(child, Layer):
            yield from _iter_sublayers(child)
        else:
            yield child


def _walk_weights(module: nn.Module) -> Iterator[tuple[nn.Module, str, Tensor]]:
    if isinstance(module, Layer):
        for name, tensor in module._own_weights():
            yield module, name, tensor
        for child in _iter_sublayers(module):
            yield from _walk_weights(child)
    else:
        # A plain torch module is a leaf: all its parameters, then its persistent buffers.
        for name, tensor in module.state_dict(keep_vars=True).items():
            yield module, name, tensor


def _free_attribute(layer: Layer, base: str) -> str:
    attr = re.sub(r"\W", "_", base)
    candidate, index = attr, 1
    while candidate in layer.__dict__ or candidate in layer._parameters or \
            candidate in layer._buffers or candidate in layer._modules or \
            hasattr(type(layer), candidate):
        candidate = f"{attr}_{index}"
        index += 1
    return candidate


def _build_parameter_names(layer: Layer) -> list[str]:
    return [p.name for p in inspect.signature(layer.build).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _build_arity(layer: Layer) -> int:
    return len(_build_parameter_names(layer))


def _shape_from_config(shape: Any) -> Any:
    """A shape read back from JSON: a list of sizes is a tuple, a list of shapes a list of
    tuples (several inputs), as `build` got them."""
    if isinstance(shape, (list, tuple)) and shape and all(
            isinstance(s, (list, tuple)) or s is None for s in shape) and any(
            isinstance(s, (list, tuple)) for s in shape):
        return [_shape_from_config(s) for s in shape]
    if isinstance(shape, dict):
        return {k: _shape_from_config(v) for k, v in shape.items()}
    return tuple(shape) if isinstance(shape, (list, tuple)) else shape


def _symbolic_spec(shape: Sequence[int | None], dtype: torch.dtype) -> KerasTensor:
    shape = tuple(shape)
    return KerasTensor(shape, dtype, _symbolic.make_probes(shape, dtype))


def _as_symbolic(value: Any) -> Any:
    if isinstance(value, (Tensor, np.ndarray)):
        return _symbolic_spec(tuple(value.shape), config.torch_dtype(value.dtype))
    return value


def _detached_spec(value: Any) -> Any:
    # compute_output_spec describes outputs; it adds no call to any graph.
    if isinstance(value, KerasTensor):
        value.node = None
    return value


def _build_shapes(layer: Layer, args: tuple, kwargs: dict) -> Any:
    arity = _build_arity(layer)
    if arity >= 2 and len(args) >= 2:
        return tuple(shape_of(a) for a in args[:arity])
    return shape_of(args[0]) if args else shape_of(next(iter(kwargs.values())))


def _batch_input_shape_from_kwargs(kwargs: dict[str, Any]) -> tuple | None:
    if kwargs.get("batch_input_shape") is not None:
        return tuple(kwargs["batch_input_shape"])
    if kwargs.get("input_shape") is not None:
        shape = kwargs["input_shape"]
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        return (kwargs.get("batch_size"),) + shape
    if kwargs.get("input_dim") is not None:
        return (kwargs.get("batch_size"), int(kwargs["input_dim"]))
    return None


def _to_tensor(value: Any, dtype: torch.dtype) -> Any:
    """numpy arrays and Python numbers become tensors (floats in the layer's dtype), also inside
    dicts and inside lists and tuples of arrays or tensors; a list of numbers is one array."""
    if isinstance(value, (list, tuple, dict)):
        return tree.traverse(lambda node: _leaf_to_tensor(node, dtype), value)
    # A lone array or number, the usual call, skips the walk's own cost (a microsecond a call).
    return _leaf_to_tensor(value, dtype)


def _leaf_to_tensor(value: Any, dtype: torch.dtype) -> Any:
    """`_to_tensor` for one value; None where `traverse` should look inside."""
    if isinstance(value, Tensor):
        return value
    if value is None or isinstance(value, dict) or (
            isinstance(value, (list, tuple)) and value
            and isinstance(value[0], (Tensor, np.ndarray))):
        return None
    array = np.asarray(value)
    if array.dtype.kind == "f":
        return torch.as_tensor(array, dtype=dtype)
    if array.dtype.kind in "iub":
        return torch.as_tensor(array)
    return value


def _attach_mask(outputs: Any, mask: Any) -> None:
    if mask is None:
        return
    if isinstance(outputs, Tensor):
        outputs._keras_mask = mask
        return
    flat = tree.flatten(outputs)
    # One mask for several outputs is the mask of each.
    masks = tree.flatten(mask) if tree.is_nested(mask) else [mask] * len(flat)
    for output, output_mask in zip(flat, masks):
        if isinstance(output, Tensor) and output_mask is not None:
            output._keras_mask = output_mask


def check_input_rank(layer: Layer, input_shape: Sequence[Any], min_rank: int | None = None,
                     rank: int | None = None, description: str = "") -> None:
    """Raise a ShapeError naming the layer, the expected rank and the received shape."""
    received = len(input_shape)
    if (rank is not None and received != rank) or (min_rank is not None and received < min_rank):
        expected = f"rank {rank}" if rank is not None else f"rank >= {min_rank}"
        raise ShapeError(
            f"Input 0 of layer {layer.name!r} ({type(layer).__name__}) is incompatible: expected "
            f"{expected}{' ' + description if description else ''}, but received an input of "
            f"shape {tuple(input_shape)}."
        )
