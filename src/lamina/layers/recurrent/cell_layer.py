"""What SimpleRNN, LSTM and GRU share: each takes its cell's constructor arguments as its own
(declared in its signature, in Keras's order for that layer) and reads them back from the cell,
so the cell's signature is the one definition of what they mean."""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping

from lamina.layers.layer import Layer
from lamina.layers.core import check_positive_int
from lamina.layers.recurrent.base import cell_property, check_dropout


def cell_argument_names(cell_class: type) -> list[str]:
    """The arguments `cell_class.__init__` declares (beyond `self` and `**kwargs`)."""
    return [p.name for p in inspect.signature(cell_class.__init__).parameters.values()
            if p.name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD]


def make_cell(layer: Layer, cell_class: type, arguments: Mapping[str, Any], name: str) -> Any:
    """The layer's cell, built from the cell's arguments among `arguments` (the layer's
    constructor arguments); the errors name the layer, not its cell."""
    check_positive_int("units", arguments["units"], layer=layer)
    check_dropout(layer, "dropout", arguments["dropout"])
    check_dropout(layer, "recurrent_dropout", arguments["recurrent_dropout"])
    return cell_class(**{key: arguments[key] for key in cell_argument_names(cell_class)},
                      dtype=layer._dtype, trainable=layer.trainable, name=name)


def with_cell_arguments(cell_class: type) -> Callable[[type], type]:
    """Class decorator: `layer.units`, `layer.dropout`, ... read the cell's values, as in
    Keras, for every argument of `cell_class`."""
    def decorate(layer_class: type) -> type:
        for key in cell_argument_names(cell_class):
            if key not in layer_class.__dict__:
                setattr(layer_class, key, cell_property(key))
        return layer_class
    return decorate
