"""`plot_model` and `model_to_dot` (Keras's `keras.utils` names): a model's layer graph as a
pydot graph, drawn by Graphviz's `dot` program.

The graph is Keras's: one box per layer (an HTML-like label with the name and class, and on
request the activation, input and output shapes, dtype and trainability), an edge per tensor
passed between layers, nested models as single boxes or, with `expand_nested`, as dashed
clusters whose inner layers are wired to the outer ones. Writing `.dot` source needs pydot
only; drawing an image (`.png`, `.svg`, `.pdf`, ...) also needs Graphviz installed.
"""

from __future__ import annotations

import html
import os
from typing import Any

from torch import nn

_RANKDIRS = ("TB", "LR", "BT", "RL")
_SOURCE_FORMATS = ("dot", "gv")


def _pydot() -> Any:
    try:
        import pydot
    except ImportError:
        raise ImportError(
            "plot_model and model_to_dot need pydot, which is not installed. Install it with "
            "`pip install pydot` (or `pip install lamina[plot]`)."
        ) from None
    return pydot


def _graphviz_missing(pydot: Any) -> bool:
    try:
        pydot.Dot().create()  # runs `dot` on an empty graph
        return False
    except (OSError, pydot.PydotException):
        return True


def _kind(model: Any) -> str:
    from lamina.models.functional import Functional
    from lamina.models.sequential import Sequential

    if isinstance(model, Sequential):
        return "sequential"
    return "functional" if isinstance(model, Functional) else "other"


def _layer_shapes(model: nn.Module) -> dict[int, tuple[Any, Any, Any]]:
    """(input shapes, output shapes, output dtypes) per layer, from the model's graph (its
    first call of each layer, as Keras's `layer.input` and `layer.output`)."""
    from lamina import config

    def one_or_list(values: list) -> Any:
        return values[0] if len(values) == 1 else values

    found: dict[int, tuple[Any, Any, Any]] = {}
    kind = _kind(model)
    if kind == "functional":
        for node in model._nodes:
            if id(node.layer) not in found:
                found[id(node.layer)] = (
                    one_or_list([t.shape for t in node.inputs]) if node.inputs else None,
                    one_or_list([t.shape for t in node.outputs]),
                    one_or_list([config.dtype_name(t.dtype) for t in node.outputs]))
    elif kind == "sequential" and model.built:
        tensors = model._tensors
        for layer, before, after in zip(model.layers, tensors, tensors[1:]):
            found[id(layer)] = (before.shape, after.shape, config.dtype_name(after.dtype))
    return found


def _format_shape(shape: Any) -> str:
    if shape is None:
        return "?"
    if isinstance(shape, dict):
        text = ", ".join(f"{k}: {v}" for k, v in shape.items())
    else:
        text = f"{shape}"
    return text.replace("}", "").replace("{", "")


def _activation_name(activation: Any) -> str:
    if hasattr(activation, "name"):
        return str(activation.name)
    return getattr(activation, "__name__", str(activation))


def _label(layer: nn.Module, name: str, shapes: tuple[Any, Any, Any] | None,
           show_layer_names: bool, show_layer_activations: bool, show_dtype: bool,
           show_shapes: bool, show_trainable: bool) -> str:
    """Keras's HTML-like label: a black title row, then a row of the requested facts."""
    class_name = type(layer).__name__
    colspan = max(1, int(show_dtype) + int(show_trainable) + (2 if show_shapes else 0))
    title = (f"<b>{html.escape(name)}</b> ({html.escape(class_name)})" if show_layer_names
             else f"<b>{html.escape(class_name)}</b>")
    label = ('<<table border="0" cellborder="1" bgcolor="black" cellpadding="10">'
             f'<tr><td colspan="{colspan}" bgcolor="black">'
             f'<font point-size="16" color="white">{title}</font></td></tr>')
    activation = getattr(layer, "activation", None)
    if show_layer_activations and activation is not None:
        label += (f'<tr><td bgcolor="white" colspan="{colspan}"><font point-size="14">'
                  f"Activation: <b>{html.escape(_activation_name(activation))}</b>"
                  "</font></td></tr>")
    input_shape, output_shape, dtype = shapes or (None, None, None)

    def cell(text: str) -> str:
        return f'<td bgcolor="white"><font point-size="14">{text}</font></td>'

    cells = []
    if show_shapes:
        if class_name != "InputLayer":
            cells.append(cell(f"Input shape: <b>{_format_shape(input_shape)}</b>"))
        cells.append(cell(f"Output shape: <b>{_format_shape(output_shape)}</b>"))
    if show_dtype:
        cells.append(cell(f"Output dtype: <b>{dtype or '?'}</b>"))
    weights = list(layer.parameters()) + list(layer.buffers())
    if show_trainable and weights:
        trainable = getattr(layer, "trainable", any(p.requires_grad for p in layer.parameters()))
        cells.append('<td bgcolor="forestgreen"><font point-size="14" color="white">'
                     "<b>Trainable</b></font></td>" if trainable else
                     '<td bgcolor="firebrick"><font point-size="14" color="white">'
                     "<b>Non-trainable</b></font></td>")
    if cells:
        label += f"<tr>{''.join(cells)}</tr>"
    return label + "</table>>"


def _calls(model: nn.Module) -> list[tuple[nn.Module, int, nn.Module, int]]:
    """(source layer, its output's index, destination layer, the input's index) per tensor
    passed between two layers of the model."""
    if _kind(model) == "sequential":
        layers = model.layers
        return [(a, 0, b, 0) for a, b in zip(layers, layers[1:])]
    return [(tensor.node.layer, tensor.index, node.layer, position)
            for node in model._nodes for position, tensor in enumerate(node.inputs)]


def _innermost_source(layer: nn.Module, index: int) -> nn.Module:
    """The layer inside (nested) models that produces a model's output `index`."""
    while _kind(layer) != "other":
        if _kind(layer) == "sequential":
            layer, index = layer.layers[-1], 0
        else:
            tensor = layer._flat_outputs[index]
            layer, index = tensor.node.layer, tensor.index
    return layer


def _innermost_destination(layer: nn.Module, index: int) -> nn.Module:
    """The box inside (nested) models that receives a model's input `index`: a functional
    model's Input, a Sequential model's first layer."""
    while _kind(layer) != "other":
        if _kind(layer) == "sequential":
            layer = layer.layers[0]
        else:
            layer, index = layer._flat_inputs[index].node.layer, 0
    return layer


def _add_edge(pydot: Any, dot: Any, source: nn.Module, destination: nn.Module) -> None:
    source_id, destination_id = str(id(source)), str(id(destination))
    if not dot.get_edge(source_id, destination_id):
        dot.add_edge(pydot.Edge(source_id, destination_id, penwidth="2"))


def model_to_dot(model: nn.Module, show_shapes: bool = False, show_dtype: bool = False,
                 show_layer_names: bool = True, rankdir: str = "TB", expand_nested: bool = False,
                 dpi: int = 200, subgraph: bool = False, show_layer_activations: bool = False,
                 show_trainable: bool = False, splines: str = "ortho", **kwargs: Any) -> Any:
    """The model's layer graph as a `pydot.Dot` (a dashed `pydot.Cluster` when `subgraph`).

    Node names are `str(id(layer))`; each label names the layer and its class, plus its
    activation, input and output shapes, output dtype and trainability when asked.
    `expand_nested` draws a nested functional or Sequential model as a cluster of its layers.
    """
    pydot = _pydot()
    if kwargs.pop("layer_range", None) is not None:
        raise ValueError(
            "`layer_range` is not an argument of model_to_dot or plot_model (Keras 3 removed "
            "it). Build a model from the layers you want drawn and plot that."
        )
    if kwargs:
        raise ValueError(
            f"Unrecognized keyword arguments: {sorted(kwargs)}. model_to_dot takes show_shapes, "
            "show_dtype, show_layer_names, rankdir, expand_nested, dpi, subgraph, "
            "show_layer_activations, show_trainable and splines."
        )
    if rankdir not in _RANKDIRS:
        raise ValueError(
            f"`rankdir` must be one of {list(_RANKDIRS)} (top to bottom, left to right, ...). "
            f"Received: rankdir={rankdir!r}."
        )
    if not getattr(model, "built", True):
        raise ValueError(
            f"Model {getattr(model, 'name', type(model).__name__)!r} has not yet been built, so "
            "it has no layer graph to draw. Build it by calling it on data, by giving the first "
            "layer an input_shape, or with model.build(input_shape)."
        )
    if subgraph:
        dot = pydot.Cluster(graph_name=model.name, style="dashed", label=model.name,
                            labeljust="l")
    else:
        dot = pydot.Dot(rankdir=rankdir, concentrate=True, dpi=dpi, splines=splines)
        dot.set_node_defaults(shape="record")
    options = {"show_layer_names": show_layer_names, "show_layer_activations":
               show_layer_activations, "show_dtype": show_dtype, "show_shapes": show_shapes,
               "show_trainable": show_trainable}

    def node(layer: nn.Module, name: str, shapes: Any) -> Any:
        return pydot.Node(str(id(layer)), label=_label(layer, name, shapes, **options),
                          fontname="Helvetica", border="0", margin="0")

    from lamina.models.summary import display_name

    kind = _kind(model)
    if kind == "other":
        # A subclassed model has no graph of its own: one box, as in Keras.
        shape_in = getattr(model, "_build_input_shape", None)
        dot.add_node(node(model, model.name, (shape_in, getattr(model, "_output_shape", None),
                                              None)))
        return dot
    shapes = _layer_shapes(model)
    for layer in model.layers:
        if expand_nested and _kind(layer) != "other":
            dot.add_subgraph(model_to_dot(
                layer, show_shapes=show_shapes, show_dtype=show_dtype,
                show_layer_names=show_layer_names, rankdir=rankdir, expand_nested=True,
                subgraph=True, show_layer_activations=show_layer_activations,
                show_trainable=show_trainable))
        else:
            dot.add_node(node(layer, display_name(model, layer), shapes.get(id(layer))))
    for source, output_index, destination, input_index in _calls(model):
        if expand_nested:
            source = _innermost_source(source, output_index)
            destination = _innermost_destination(destination, input_index)
        _add_edge(pydot, dot, source, destination)
    return dot


def plot_model(model: nn.Module, to_file: str | os.PathLike = "model.png",
               show_shapes: bool = False, show_dtype: bool = False,
               show_layer_names: bool = False, rankdir: str = "TB", expand_nested: bool = False,
               dpi: int = 200, show_layer_activations: bool = False, show_trainable: bool = False,
               splines: str = "ortho", **kwargs: Any) -> Any:
    """Draws the model's layer graph (`model_to_dot`) into `to_file`.

    The extension picks the format: `.dot` (or `.gv`) writes the graph's source and needs only
    pydot; `.png`, `.svg`, `.pdf` and Graphviz's other formats need Graphviz's `dot` program.
    Returns an `IPython.display` image of a `.png`/`.jpg`/`.svg` when IPython is installed, so
    a notebook shows the plot.
    """
    to_file = os.fspath(to_file)
    extension = os.path.splitext(to_file)[1][1:].lower() or "png"
    dot = model_to_dot(model, show_shapes=show_shapes, show_dtype=show_dtype,
                       show_layer_names=show_layer_names, rankdir=rankdir,
                       expand_nested=expand_nested, dpi=dpi,
                       show_layer_activations=show_layer_activations,
                       show_trainable=show_trainable, splines=splines, **kwargs)
    if extension in _SOURCE_FORMATS:
        dot.write(to_file, format="raw")
        return None
    pydot = _pydot()
    if _graphviz_missing(pydot):
        raise ImportError(
            f"plot_model(to_file={to_file!r}) needs Graphviz's `dot` program to draw a "
            f"{extension!r} image, and it was not found on PATH. Install Graphviz (`apt install "
            "graphviz`, `brew install graphviz`, `conda install graphviz`, or "
            "https://graphviz.org/download/), or write the graph's source without it: "
            "to_file='model.dot'."
        )
    dot.write(to_file, format=extension)
    return _notebook_image(to_file, extension)


def _notebook_image(path: str, extension: str) -> Any:
    try:
        from IPython import display
    except ImportError:
        return None
    if extension == "svg":
        return display.SVG(filename=path)
    if extension in ("png", "jpg", "jpeg", "gif"):
        return display.Image(filename=path)
    return None
