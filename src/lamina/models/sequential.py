"""`Sequential`: a plain stack of layers, each with one input and one output."""

from __future__ import annotations

from typing import Any, Sequence

from torch import nn

from lamina import config
from lamina._registry import register
from lamina._symbolic import KerasTensor, symbolic_call
from lamina.layers.layer import Layer, direct_calls_allowed, module_key
from lamina.models.functional import Input, InputLayer
from lamina.models.model import Model
from lamina.saving.serialization import deserialize, serialize


def module_name(module: nn.Module, index: int) -> str:
    name = getattr(module, "name", None)
    if not isinstance(name, str):
        name = f"{type(module).__name__.lower()}_{index}"
    return name.replace(".", "_")


@register("Sequential")
class Sequential(Model):
    """A stack of layers called in order: `Sequential([Dense(128, activation='relu',
    input_shape=(784,)), Dropout(0.2), Dense(10, activation='softmax')])`.

    Built at construction when the input shape is known (`input_shape=` on the first layer, or
    an `Input` first); otherwise on the first call. Any `nn.Module` may be one of the layers.
    """

    # Keras's weights files key a model's layers under `layers/` (lamina.saving.file_format).
    _keras_saves_layers = True

    def __init__(self, layers: Sequence[Any] | None = None, trainable: bool = True,
                 name: str | None = None, **kwargs: Any):
        super().__init__(trainable=trainable, name=name, **kwargs)
        self._stack: list[nn.Module] = []
        self._input_batch_shape: tuple | None = None
        self._input_dtype: Any = None
        self._takes_training: list[bool] = []
        # The graph built so far: the Input's tensor, then the output of each layer in turn,
        # and the (input shape, dtype) it was built for. Adding a layer extends it by that
        # layer's call alone, so building a model of n layers runs each layer once.
        self._tensors: list[KerasTensor] = []
        self._graph_key: tuple | None = None
        for layer in layers or []:
            self.add(layer)

    def add(self, layer: Any, rebuild: bool = True) -> None:
        """Append a layer (or an `Input`, which fixes the input shape)."""
        if isinstance(layer, KerasTensor) and isinstance(layer.node.layer, InputLayer):
            layer = layer.node.layer
        if isinstance(layer, InputLayer):
            if self._stack:
                raise ValueError("An Input can only be the first element of a Sequential model.")
            self._input_batch_shape = layer.batch_shape
            self._input_dtype = layer.dtype_arg
            return
        if not isinstance(layer, nn.Module):
            raise TypeError(
                "Only layers (instances of lamina.layers.Layer or any torch.nn.Module) can be added "
                f"to a Sequential model. Received: {layer!r} of type {type(layer).__name__}."
            )
        name = module_name(layer, len(self._stack))
        if any(module_name(other, i) == name for i, other in enumerate(self._stack)):
            raise ValueError(
                "All layers added to a Sequential model should have unique names. Name "
                f"{name!r} is already the name of a layer in this model. Pass name= to the layer."
            )
        if not self._stack and self._input_batch_shape is None:
            self._input_batch_shape = getattr(layer, "_batch_input_shape", None)
        self.add_module(module_key(self._modules, layer, self), layer)
        layer.train(self.training)
        self._stack.append(layer)
        self._takes_training.append(bool(getattr(layer, "_call_takes_training", False)))
        self.built = False
        if rebuild and self._input_batch_shape is not None:
            self._build_graph()

    def pop(self, rebuild: bool = True) -> nn.Module:
        """Remove and return the last layer."""
        if not self._stack:
            raise TypeError("There are no layers in the model.")
        layer = self._stack.pop()
        self._takes_training.pop()
        del self._modules[next(k for k, v in self._modules.items() if v is layer)]
        self.built = False
        del self._tensors[len(self._stack) + 1:]
        if rebuild and self._stack and self._input_batch_shape is not None:
            self._build_graph()
        return layer

    @property
    def layers(self) -> list[nn.Module]:
        return list(self._stack)

    def build(self, input_shape: Any = None) -> None:
        if input_shape is not None:
            self._input_batch_shape = (None,) + tuple(input_shape[1:])
        if self._input_batch_shape is None:
            raise ValueError(
                f"Sequential model {self.name!r} cannot be built without an input shape. Give the "
                "first layer input_shape=, start with lamina.Input(shape), or call the model on data."
            )
        self._build_graph()

    def _build_graph(self) -> None:
        """Extend the graph to the last layer, or build it anew for a new input shape or dtype."""
        # Without an Input's dtype the model's own applies (float64 after `.to(torch.float64)`).
        dtype = self._input_dtype or config.dtype_name(self._dtype)
        key = (tuple(self._input_batch_shape), dtype)
        if key != self._graph_key or not self._tensors:
            self._graph_key = key
            self._tensors = [Input(batch_shape=self._input_batch_shape, dtype=dtype,
                                   name=f"{self.name}_input")]
            self._plain_output_shapes: dict[int, Any] = {}
        x = self._tensors[-1]
        for layer in self._stack[len(self._tensors) - 1:]:
            # A plain torch module would run its forward on the symbolic tensor; give it the
            # probes instead, as a layer gets them.
            if isinstance(layer, Layer):
                x = layer(x)
            else:
                x = symbolic_call(layer, (x,), {})
                self._plain_output_shapes[id(layer)] = getattr(x, "shape", None)
            if isinstance(x, (list, tuple)):
                raise ValueError(
                    f"All layers in a Sequential model should have a single output, but layer "
                    f"{module_name(layer, 0)!r} has {len(x)} outputs. Use the functional API."
                )
            self._tensors.append(x)
        self._inputs_tensor = self._tensors[0]
        self._outputs_tensor = x
        self._build_input_shape = tuple(self._input_batch_shape)
        self._output_shape = getattr(x, "shape", None)
        self.built = True

    def call(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
        x = inputs
        direct = direct_calls_allowed()
        for layer, takes_training in zip(self._stack, self._takes_training):
            if direct and isinstance(layer, Layer) and layer._calls_directly(x, training):
                x = layer.call(x, training=training) if takes_training else layer.call(x)
            elif takes_training and training is not None:
                x = layer(x, training=training)
            else:
                x = layer(x)
        return x

    @property
    def input(self) -> KerasTensor:
        return self._inputs_tensor

    @property
    def output(self) -> KerasTensor:
        return self._outputs_tensor

    @property
    def inputs(self) -> list[KerasTensor]:
        return [self._inputs_tensor]

    @property
    def outputs(self) -> list[KerasTensor]:
        return [self._outputs_tensor]

    def get_config(self) -> dict[str, Any]:
        config_dict = {"name": self.name, "trainable": self.trainable,
                       "layers": [serialize(layer) for layer in self._stack]}
        if self._input_batch_shape is not None:
            config_dict["build_input_shape"] = list(self._input_batch_shape)
        return config_dict

    @classmethod
    def from_config(cls, config_dict: dict[str, Any], custom_objects: dict | None = None,
                    safe_mode: bool = True) -> "Sequential":
        model = cls(name=config_dict.get("name"), trainable=config_dict.get("trainable", True))
        shape = config_dict.get("build_input_shape")
        if shape is not None:
            model._input_batch_shape = tuple(shape)
        for layer_config in config_dict["layers"]:
            model.add(deserialize(layer_config, custom_objects, safe_mode=safe_mode), rebuild=False)
        if model._input_batch_shape is not None:
            model._build_graph()
        return model
