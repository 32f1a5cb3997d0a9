"""The functional API: `Input` gives a symbolic tensor, layers called on symbolic tensors record
a graph, and `Model(inputs, outputs)` turns that graph into a model.

At construction the graph is sorted once into a flat plan of (layer, input slots, output slots);
a call walks the plan with no graph logic, so a functional model costs what its layers cost.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from lamina import config, tree
from lamina._registry import register
from lamina._strings import STRING, StringTensor, as_strings, is_string_array
from lamina._symbolic import (_BATCH_PROBES, _FREE_AXIS_PROBES, KerasTensor, Node,
                              file_is_insertion_ordered, make_probes, symbolic_leaves)
from lamina.layers.core import TorchOp
from lamina.layers.layer import Layer, _to_tensor, direct_calls_allowed, module_key, unique_name
from lamina.models.model import Model
from lamina.saving.serialization import deserialize, serialize

Tensor = torch.Tensor


@register("InputLayer")
class InputLayer(Layer):
    """The layer behind `Input`: it holds the input's shape and dtype and has no weights."""

    def __init__(self, shape: Sequence[int | None] | None = None, batch_size: int | None = None,
                 dtype: Any = None, sparse: Any = None, batch_shape: Sequence[int | None] | None = None,
                 input_tensor: Any = None, name: str | None = None, **kwargs: Any):
        # Keras 2 spellings that Keras 3 still accepts: input_shape= for shape=,
        # batch_input_shape= for batch_shape=.
        for old_name, new_name in (("input_shape", "shape"), ("batch_input_shape", "batch_shape")):
            if old_name not in kwargs:
                continue
            value = kwargs.pop(old_name)
            current = shape if new_name == "shape" else batch_shape
            if current is not None and tuple(current) != tuple(value):
                raise ValueError(
                    f"InputLayer received both `{new_name}`={current!r} and `{old_name}`={value!r}."
                    f" Pass only `{new_name}`."
                )
            if new_name == "shape":
                shape = value
            else:
                batch_shape = value
        super().__init__(name=name or unique_name("input_layer"), **kwargs)
        if batch_shape is None:
            if shape is None:
                raise ValueError("An Input needs `shape` (without the batch axis) or `batch_shape`.")
            shape = (shape,) if isinstance(shape, int) else tuple(shape)
            batch_shape = (batch_size,) + shape
        self.batch_shape = tuple(None if d is None else int(d) for d in batch_shape)
        self.dtype_arg = dtype
        self.built = True
        if dtype == STRING or dtype is str:
            input_dtype, probes = STRING, _string_probes(self.batch_shape)
        else:
            input_dtype = config.torch_dtype(dtype)
            probes = make_probes(self.batch_shape, input_dtype)
        self.output_tensor = KerasTensor(self.batch_shape, input_dtype, probes, name=self.name)
        self.output_tensor.node = Node(self, (), {}, [self.output_tensor])
        self._output_shape = self.batch_shape
        self._build_input_shape = self.batch_shape

    def call(self, inputs):
        return inputs

    def get_config(self):
        return {"batch_shape": list(self.batch_shape), "dtype": self.dtype_arg, "name": self.name}


def Input(shape: Sequence[int | None] | None = None, batch_size: int | None = None,
          dtype: Any = None, sparse: Any = None, batch_shape: Sequence[int | None] | None = None,
          name: str | None = None, tensor: Any = None) -> KerasTensor:
    """A symbolic input of the given shape (without the batch axis): `Input(shape=(784,))`."""
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, batch_shape=batch_shape,
                      name=name).output_tensor


def _map_structure(fn, structure: Any) -> Any:
    """`fn` applied to each KerasTensor of a structure; other values stay."""
    return tree.map_structure(lambda v: fn(v) if isinstance(v, KerasTensor) else v, structure)


def _topological_nodes(outputs: list[KerasTensor]) -> list[Node]:
    order: list[Node] = []
    state: dict[int, int] = {}  # 1: visiting, 2: done

    def visit(node: Node) -> None:
        mark = state.get(id(node))
        if mark == 2:
            return
        if mark == 1:
            raise ValueError("The layer graph has a cycle.")
        state[id(node)] = 1
        for tensor in node.inputs:
            visit(tensor.node)
        state[id(node)] = 2
        order.append(node)

    for tensor in outputs:
        visit(tensor.node)
    return order


def _keras_layer_order(inputs: list[KerasTensor], outputs: list[KerasTensor], nodes: list[Node],
                       insertion_ordered: bool = False) -> list[Any]:
    """The layers in the order Keras 3 lists a functional model's `layers` (and so orders
    `get_weights()` and weights files): by depth from the outputs, deepest (the inputs) first,
    ties broken by when a depth-first walk from the outputs first meets the layer. The walk
    visits a node's inputs with dicts in sorted-key order, as Keras does; Lamina's format 1
    walked them (and `inputs`/`outputs`) in insertion order (`insertion_ordered=True`)."""
    parents = {id(node): node.inputs if insertion_ordered
               else symbolic_leaves((node.args, node.kwargs)) for node in nodes}
    in_graph = {id(node) for node in nodes}
    input_ids = {id(t) for t in inputs}
    first_seen: dict[int, int] = {}
    post_order: list[Node] = []
    finished: set[int] = set()

    def visit(tensor: KerasTensor) -> None:
        node = tensor.node
        if id(node) in finished:
            return
        if node.inputs and id(tensor) in input_ids:
            finished.add(id(node))
            return
        first_seen.setdefault(id(node.layer), len(first_seen))
        for parent in parents[id(node)]:
            visit(parent)
        finished.add(id(node))
        post_order.append(node)

    for tensor in outputs:
        visit(tensor)
    node_depth: dict[int, int] = {}
    layer_depth: dict[int, int] = {}
    layers: dict[int, Any] = {}
    for node in reversed(post_order):
        depth = max(node_depth.setdefault(id(node), 0), layer_depth.get(id(node.layer), 0))
        layer_depth[id(node.layer)] = depth
        layers[id(node.layer)] = node.layer
        node_depth[id(node)] = depth
        for parent in parents[id(node)]:
            if id(parent.node) in in_graph:
                node_depth[id(parent.node)] = max(depth + 1, node_depth.get(id(parent.node), 0))
    for tensor in inputs:  # inputs the outputs do not use are listed too, at depth 0
        if id(tensor.node.layer) not in layer_depth:
            layer_depth[id(tensor.node.layer)] = 0
            layers[id(tensor.node.layer)] = tensor.node.layer
            first_seen[id(tensor.node.layer)] = -1
    ordered = sorted(layer_depth, key=lambda key: (-layer_depth[key], first_seen[key]))
    return [layers[key] for key in ordered]


class Functional(Model):
    """A model defined by a graph of layers from `Input`s to outputs (Keras's functional API).

    Inputs and outputs may be a tensor, a list or a dict. Layers may be shared (called on several
    tensors) and models may be nested as layers. Torch functions applied to symbolic tensors become
    graph nodes too; a plain torch module joins through `layers.TorchModuleWrapper(module)`.
    """

    # Keras's weights files key a model's layers under `layers/` (lamina.saving.file_format).
    _keras_saves_layers = True

    def __init__(self, inputs: Any, outputs: Any, name: str | None = None, trainable: bool = True,
                 **kwargs: Any):
        super().__init__(name=name, trainable=trainable, **kwargs)
        # Dicts in sorted-key order, as Keras lists `inputs`, `outputs` and so `layers` (and
        # numbers same-class layers in weights files); docs/keras-files.md.
        flat_inputs = tree.flatten(inputs)
        flat_outputs = tree.flatten(outputs)
        for tensor in flat_inputs + flat_outputs:
            if not isinstance(tensor, KerasTensor):
                raise TypeError(
                    "Model(inputs, outputs) takes symbolic tensors made from lamina.Input(...) "
                    f"and layers called on them. Received: {tensor!r}."
                )
        for tensor in flat_inputs:
            if not isinstance(tensor.node.layer, InputLayer):
                raise ValueError(
                    f"Every model input must come from lamina.Input(); {tensor!r} is the output of "
                    f"layer {getattr(tensor.node.layer, 'name', '?')!r}."
                )
        self._inputs_struct = inputs
        self._outputs_struct = outputs
        self._flat_inputs = flat_inputs
        self._flat_outputs = flat_outputs
        nodes = _topological_nodes(flat_outputs)
        input_nodes = {id(t.node) for t in flat_inputs}
        for node in nodes:
            if isinstance(node.layer, InputLayer) and id(node) not in input_nodes:
                raise ValueError(
                    f"The graph needs input {node.layer.name!r}, which is not among the model's "
                    "inputs. Pass every Input the outputs depend on in `inputs`."
                )
        self._nodes = nodes
        self._register_layers(nodes, _keras_layer_order(flat_inputs, flat_outputs, nodes))
        self._plan = self._make_plan(nodes)
        self.built = True
        self._build_input_shape = _map_structure(lambda t: t.shape, inputs)
        self._output_shape = _map_structure(lambda t: t.shape, outputs)

    def _register_layers(self, nodes: list[Node], keras_order: list[Any]) -> None:
        # Keys follow the order layers were created in (`dense`, `dense_1`, ...), so state
        # dicts and older files keep their keys; the layers themselves are registered in
        # Keras's order, which `layers`, `get_weights()` and weights files follow.
        keys: dict[int, str] = {}
        taken: dict[str, Any] = {}
        for node in nodes:
            if id(node.layer) not in keys:
                keys[id(node.layer)] = key = module_key(taken, node.layer, self)
                taken[key] = node.layer
        seen: set[int] = set()
        self._graph_layers: list[nn.Module] = []
        # The config refers to a layer by its name; a plain torch module has none, so by its key.
        self._layer_names: dict[int, str] = {}
        # Output shapes for the summary: a plain torch module does not record its own.
        self._plain_output_shapes: dict[int, Any] = {}
        outputs_of: dict[int, list] = {}
        for node in nodes:
            outputs_of.setdefault(id(node.layer), node.outputs)
        for layer in keras_order:
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            key = keys[id(layer)]
            name = getattr(layer, "name", None)
            name = name if isinstance(name, str) else key
            if name in self._layer_names.values():
                raise ValueError(
                    f"The name {name!r} is used 2 times in the model. All layer names should be "
                    "unique; pass name= to one of them."
                )
            self.add_module(key, layer)
            layer.train(self.training)
            self._graph_layers.append(layer)
            self._layer_names[id(layer)] = name
            if not isinstance(layer, Layer):
                outputs = [t.shape for t in outputs_of[id(layer)]]
                self._plain_output_shapes[id(layer)] = outputs[0] if len(outputs) == 1 else outputs

    def _make_plan(self, nodes: list[Node]) -> list[tuple]:
        """(layer, kind, input slot ids, template, output ids) per non-input node, in order."""
        plan = []
        for node in nodes:
            if isinstance(node.layer, InputLayer):
                continue
            input_ids = [id(t) for t in node.inputs]
            simple = (len(node.args) == 1 and not node.kwargs
                      and isinstance(node.args[0], KerasTensor))
            listed = (len(node.args) == 1 and not node.kwargs and isinstance(node.args[0], list)
                      and all(isinstance(t, KerasTensor) for t in node.args[0]))
            kind = "single" if simple else "list" if listed else "template"
            takes_training = bool(getattr(node.layer, "_call_takes_training", False))
            plan.append((node.layer, kind, input_ids, (node.args, node.kwargs),
                         [id(t) for t in node.outputs], takes_training))
        return plan

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        # The plan names tensors by id(): a copy's (deepcopy, pickle) are new objects.
        self._plan = self._make_plan(self._nodes)

    @property
    def layers(self) -> list[nn.Module]:
        return list(self._graph_layers)

    def _insertion_ordered_layers(self) -> list[Any]:
        """The order Lamina's format 1 listed `layers` in (its dicts in insertion order), which
        that format's weights files follow; worked out only when such a file is read."""
        return _keras_layer_order(tree.flatten(self._inputs_struct, insertion_ordered=True),
                                  tree.flatten(self._outputs_struct, insertion_ordered=True),
                                  self._nodes, insertion_ordered=True)

    @property
    def inputs(self) -> list[KerasTensor]:
        return list(self._flat_inputs)

    @property
    def outputs(self) -> list[KerasTensor]:
        return list(self._flat_outputs)

    @property
    def input(self) -> Any:
        return self._inputs_struct

    @property
    def output(self) -> Any:
        return self._outputs_struct

    @property
    def input_names(self) -> list[str]:
        return [t.node.layer.name for t in self._flat_inputs]

    @property
    def output_names(self) -> list[str]:
        return [getattr(t.node.layer, "name", str(i)) for i, t in enumerate(self._flat_outputs)]

    def _bind_inputs(self, inputs: Any) -> dict[int, Any]:
        flat = self._flat_inputs
        if isinstance(inputs, dict):
            if isinstance(self._inputs_struct, dict):
                missing = set(self._inputs_struct) - set(inputs)
                if missing:
                    raise ValueError(f"Missing inputs {sorted(missing)} for model {self.name!r}.")
                values = [inputs[k] for k in self._inputs_struct]
                flat = [self._inputs_struct[k] for k in self._inputs_struct]
            else:
                names = self.input_names
                missing = set(names) - set(inputs)
                if missing:
                    raise ValueError(
                        f"Model {self.name!r} expects inputs named {names}; missing {sorted(missing)}."
                    )
                values = [inputs[n] for n in names]
        elif len(flat) == 1:
            values = [inputs]
        else:
            if not isinstance(inputs, (list, tuple)) or len(inputs) != len(flat):
                count = len(inputs) if isinstance(inputs, (list, tuple)) else 1
                raise ValueError(
                    f"Model {self.name!r} expects {len(flat)} inputs, but it received {count} "
                    "input tensors. Pass a list (in the order of `inputs`) or a dict by input name."
                )
            keys = list(self._inputs_struct) if isinstance(self._inputs_struct, dict) else []
            if keys != sorted(keys):
                # Lamina matched such a list in the dict's own order, Keras (and `inputs`) in
                # sorted-key order: either reading silently swaps inputs for someone.
                raise ValueError(
                    f"Model {self.name!r} takes a dict of inputs whose keys {keys} are not in "
                    f"sorted order, so a list of {len(inputs)} arrays is ambiguous (earlier Lamina "
                    f"matched it in that order, Keras and `model.inputs` go by sorted order "
                    f"{sorted(keys)}). Pass a dict by input name."
                )
            values = list(inputs)
        bound = {}
        for tensor, value in zip(flat, values):
            if tensor.dtype == STRING:
                bound[id(tensor)] = _standardize_strings(value, tensor)
                continue
            if not isinstance(value, Tensor):
                value = _to_tensor(value, tensor.dtype)
                if isinstance(value, Tensor) and value.dtype != tensor.dtype and \
                        value.dtype.is_floating_point == tensor.dtype.is_floating_point:
                    value = value.to(tensor.dtype)
            if isinstance(value, Tensor):
                value = _standardize_input(value, tensor)
            bound[id(tensor)] = value
        return bound

    def call(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
        values = self._bind_inputs(inputs)
        direct = direct_calls_allowed()
        for layer, kind, input_ids, template, output_ids, takes_training in self._plan:
            extra = {"training": training} if training is not None and takes_training else {}
            if kind == "single":
                x = values[input_ids[0]]
                if direct and isinstance(layer, Layer) and layer._calls_directly(x, training):
                    outputs = layer.call(x, **extra)  # what layer(x) would do, as Sequential
                else:
                    outputs = layer(x, **extra)
            elif kind == "list":
                outputs = layer([values[i] for i in input_ids], **extra)
            else:
                args, kwargs = _map_structure(lambda t: values[id(t)], template)
                # A `training=` written in the call (`base_model(x, training=False)`, the
                # transfer-learning recipe) wins over the one the model is called with.
                outputs = layer(*args, **{**extra, **kwargs})
            if len(output_ids) == 1 and isinstance(outputs, Tensor):
                values[output_ids[0]] = outputs
            else:
                flat = tree.flatten(outputs)
                for key, value in zip(output_ids, [o for o in flat if isinstance(o, Tensor)]):
                    values[key] = value
        if isinstance(self._outputs_struct, KerasTensor):  # one output: no structure walk
            return values[id(self._outputs_struct)]
        return _map_structure(lambda t: values[id(t)], self._outputs_struct)

    # ------------------------------------------------------------------- config

    def get_config(self) -> dict[str, Any]:
        """Keras 3's functional config: each layer with its `inbound_nodes` (call arguments,
        symbolic tensors as `__keras_tensor__` objects naming [layer, node, tensor]), and the
        inputs and outputs as [layer, node, tensor] triplets."""
        node_index: dict[int, int] = {}
        per_layer: dict[int, int] = {}
        for node in self._nodes:
            count = per_layer.get(id(node.layer), 0)
            node_index[id(node)] = count
            per_layer[id(node.layer)] = count + 1

        def history(tensor: KerasTensor) -> list[Any]:
            return [self._layer_names[id(tensor.node.layer)], node_index[id(tensor.node)],
                    tensor.index]

        def reference(tensor: KerasTensor) -> dict[str, Any]:
            return {"class_name": "__keras_tensor__", "config": {
                "shape": list(tensor.shape), "dtype": config.dtype_name(tensor.dtype),
                "keras_history": history(tensor)}}

        def endpoint(tensor: KerasTensor) -> list[Any]:
            # Keras counts a nested functional model's own (input -> output) node first here.
            triplet = history(tensor)
            if isinstance(tensor.node.layer, Functional):
                triplet[1] += 1
            return triplet

        layers = []
        for layer in self._graph_layers:
            entry = serialize(layer)
            entry["name"] = self._layer_names[id(layer)]
            entry["inbound_nodes"] = [
                # The positional arguments as a list, as Keras writes them.
                {"args": [_encode_template(a, reference) for a in node.args],
                 "kwargs": _encode_template(node.kwargs, reference)}
                for node in self._nodes if node.layer is layer and not isinstance(layer, InputLayer)
            ]
            layers.append(entry)
        return {
            "name": self.name,
            "trainable": self.trainable,
            "layers": layers,
            "input_layers": _encode_endpoints(self._inputs_struct, endpoint),
            "output_layers": _encode_endpoints(self._outputs_struct, endpoint),
        }

    @classmethod
    def from_config(cls, config_dict: dict[str, Any], custom_objects: dict | None = None,
                    safe_mode: bool = True) -> "Functional":
        created: dict[str, Any] = {}
        produced: dict[tuple[str, int], Any] = {}
        # Lamina's format 1 numbered a layer's dict outputs in insertion order.
        insertion_ordered = file_is_insertion_ordered()
        pending = []
        # Names whose [layer, node, tensor] endpoints Keras counts from 1 (functional models).
        functional_names: set[str] = set()
        for entry in config_dict["layers"]:
            layer = deserialize(entry, custom_objects, safe_mode=safe_mode)
            created[entry["name"]] = layer
            if isinstance(layer, Functional) and _keras_endpoints(config_dict):
                functional_names.add(entry["name"])
            if isinstance(layer, InputLayer):
                produced[(entry["name"], 0)] = layer.output_tensor
            for node_index, node in enumerate(entry.get("inbound_nodes", [])):
                pending.append((entry["name"], node_index, node))

        def lookup(name: str, node_index: int, tensor_index: int) -> KerasTensor:
            return symbolic_leaves(produced[(name, node_index)],
                                   insertion_ordered=insertion_ordered)[tensor_index]

        def resolve(value: Any) -> Any:
            triplet = _history(value)
            if triplet is not None:
                return lookup(*triplet)
            return _decode_value(value, resolve)

        def ready(value: Any) -> bool:
            triplet = _history(value)
            if triplet is not None:
                return tuple(triplet[:2]) in produced
            if isinstance(value, dict):
                return all(ready(v) for v in value.values())
            if isinstance(value, list):
                return all(ready(v) for v in value)
            return True

        while pending:
            progressed = False
            for item in list(pending):
                name, node_index, node = item
                if ready(node["args"]) and ready(node["kwargs"]):
                    layer = created[name]
                    args, kwargs = resolve(node["args"]), resolve(node["kwargs"])
                    # Keras records the call-time defaults `training=False` and `mask=None`;
                    # kept, they would pin every later call (dropout off in fit).
                    if kwargs.get("training", True) is False:
                        del kwargs["training"]
                    if "mask" in kwargs and kwargs["mask"] is None:
                        del kwargs["mask"]
                    produced[(name, node_index)] = _call_for_rebuild(layer, args, kwargs)
                    pending.remove(item)
                    progressed = True
            if not progressed:
                raise ValueError("Cannot rebuild the functional model: its config has unresolved inputs.")
        def endpoint(triplet: list) -> KerasTensor:
            name, node_index, tensor_index = triplet
            return lookup(name, node_index - (name in functional_names), tensor_index)

        if _keras_endpoints(config_dict):
            inputs = _decode_endpoints(config_dict["input_layers"], endpoint)
            outputs = _decode_endpoints(config_dict["output_layers"], endpoint)
        else:  # Lamina's earlier files: the endpoints as `__keras_tensor__` references
            inputs = resolve(config_dict["input_layers"])
            outputs = resolve(config_dict["output_layers"])
        return cls(inputs, outputs, name=config_dict.get("name"),
                   trainable=config_dict.get("trainable", True))


def _standardize_input(value: Tensor, input_tensor: KerasTensor) -> Tensor:
    """An input as Keras's functional models take it: cast to the `Input`'s dtype (bool,
    uint8 or int arrays into a float input; floats into an integer one), and a rank-1 array
    for `Input(shape=(1,))` given its last axis (or a trailing axis of 1 dropped). A float
    tensor keeps its float dtype, so a model converted with `.double()` takes float64."""
    if value.dtype != input_tensor.dtype and not (
            value.dtype.is_floating_point and input_tensor.dtype.is_floating_point):
        value = value.to(input_tensor.dtype)
    shape = input_tensor.shape
    if value.ndim != len(shape):
        if value.ndim == len(shape) - 1 and shape[-1] == 1:
            value = value.unsqueeze(-1)
        elif value.ndim == len(shape) + 1 and value.shape[-1] == 1:
            value = value.squeeze(-1)
    return value


def _string_probes(batch_shape: tuple[int | None, ...]) -> tuple[StringTensor, StringTensor]:
    # Text has no meta tensor: a string input is probed with empty strings, which the string
    # layers (StringLookup, TextVectorization) look up for real.
    return tuple(
        as_strings(np.full([(_BATCH_PROBES[i] if axis == 0 else _FREE_AXIS_PROBES[i]) if d is None
                            else d for axis, d in enumerate(batch_shape)], "", dtype=object))
        for i in range(2)
    )


def _standardize_strings(value: Any, input_tensor: KerasTensor) -> StringTensor:
    """Text for a `dtype="string"` Input as a StringTensor (a list, or an array of str or
    bytes); a rank-1 batch for `Input(shape=(1,))` gets its last axis, as Keras does."""
    if not isinstance(value, StringTensor):
        array = np.asarray(value)
        if not is_string_array(array):
            raise TypeError(
                f"Input {input_tensor.name!r} has dtype 'string' but received an array of dtype "
                f"{array.dtype} (shape {array.shape}). Pass text: a list or NumPy array of str."
            )
        value = as_strings(array)
    shape = input_tensor.shape
    if value.ndim == len(shape) - 1 and shape[-1] == 1:
        value = value[..., np.newaxis]
    return value


def _call_for_rebuild(layer: Any, args: Any, kwargs: Any) -> Any:
    if isinstance(layer, TorchOp):
        # A TorchOp node's only argument is the list of its symbolic inputs.
        layer.template = layer.fill_template(args[0])
        return layer._record()
    return layer(*args, **kwargs)


def _history(value: Any) -> list | None:
    """[layer name, node index, tensor index] of a serialized symbolic tensor, in Keras 3's
    form (`{"class_name": "__keras_tensor__", "config": {"keras_history": ...}}`) or Lamina's
    earlier one (`{"__keras_tensor__": [...]}`); None for any other value."""
    if not isinstance(value, dict):
        return None
    if "__keras_tensor__" in value:
        triplet = value["__keras_tensor__"]
    elif value.get("class_name") == "__keras_tensor__":
        triplet = (value.get("config") or {}).get("keras_history")
    else:
        return None
    if not (isinstance(triplet, list) and len(triplet) == 3 and isinstance(triplet[0], str)
            and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0
                    for i in triplet[1:])):
        raise ValueError(f"A functional config names a tensor as {triplet!r:.80}; expected "
                         "[layer name, node index, tensor index].")
    return list(triplet)


def _is_triplet(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 3 and isinstance(value[0], str)
            and all(isinstance(i, int) and not isinstance(i, bool) for i in value[1:]))


def _keras_endpoints(config_dict: dict[str, Any]) -> bool:
    """Whether the config gives inputs and outputs as Keras's triplets (what Lamina writes)."""
    def triplets(value: Any) -> bool:
        if _is_triplet(value):
            return True
        if isinstance(value, list):
            return bool(value) and all(triplets(v) for v in value)
        if isinstance(value, dict):
            return bool(value) and all(triplets(v) for v in value.values())
        return False

    return triplets(config_dict.get("input_layers")) and triplets(config_dict.get("output_layers"))


def _encode_endpoints(value: Any, endpoint) -> Any:
    if isinstance(value, KerasTensor):
        return endpoint(value)
    if isinstance(value, (list, tuple)):
        return [_encode_endpoints(v, endpoint) for v in value]
    if isinstance(value, dict):
        return {k: _encode_endpoints(v, endpoint) for k, v in value.items()}
    raise ValueError(f"A functional model's inputs and outputs are symbolic tensors; got {value!r}.")


def _decode_endpoints(value: Any, endpoint) -> Any:
    if _is_triplet(value):
        return endpoint(value)
    if isinstance(value, list):
        return [_decode_endpoints(v, endpoint) for v in value]
    return {k: _decode_endpoints(v, endpoint) for k, v in value.items()}


def _encode_template(value: Any, reference) -> Any:
    if isinstance(value, KerasTensor):
        return reference(value)
    if isinstance(value, tuple):
        return {"__tuple__": [_encode_template(v, reference) for v in value]}
    if isinstance(value, list):
        return [_encode_template(v, reference) for v in value]
    if isinstance(value, dict):
        return {k: _encode_template(v, reference) for k, v in value.items()}
    if value is None or isinstance(value, (int, float, bool, str)):
        return value
    raise ValueError(f"Cannot save the call argument {value!r} in a functional model's config.")


def _decode_value(value: Any, resolve) -> Any:
    if isinstance(value, dict):
        if "__tuple__" in value:
            return tuple(resolve(v) for v in value["__tuple__"])
        if value.get("class_name") == "__tuple__" and isinstance(value.get("config"), dict):
            return tuple(resolve(v) for v in value["config"].get("value", []))
        return {k: resolve(v) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v) for v in value]
    return value


register("Functional")(Functional)
