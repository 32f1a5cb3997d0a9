"""`model.summary()`: Keras 3's box-drawn table, in plain text.

Keras draws the table with rich; Lamina draws the same characters itself (rich is no dependency
here): rich's table layout for Keras's settings (each column `padding=(0, 1)`, widths from
`positions` shrunk evenly to fit `line_length`, words wrapped and over-long words cut with `…`)
is reproduced in `_fit_widths` and `_wrap`. Colours are left out: the text is the same in a
terminal, a log and a notebook.
"""

from __future__ import annotations

import re
import shutil
import sys
from typing import Any, Callable, Sequence

from torch import nn

_TOP, _HEADER_RULE, _ROW_RULE, _BOTTOM = "┏━┳┓", "┡━╇┩", "├─┼┤", "└─┴┘"
_ELLIPSIS = "…"


def readable_memory_size(size: float) -> str:
    """`397.54 KB`: bytes in the largest unit that keeps the number at 1 or more."""
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if size / 1024 < 1:
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} PB"


def _weights_of(layer: nn.Module) -> list:
    from lamina.layers.layer import Layer

    if isinstance(layer, Layer):
        return layer.weights
    return list(layer.state_dict(keep_vars=True).values())


def _count(tensors: Sequence) -> int:
    return sum(t.numel() for t in tensors)


def _memory(tensors: Sequence) -> int:
    unique = {id(t): t for t in tensors}.values()
    return sum(t.numel() * t.element_size() for t in unique)


def _is_shape(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and all(d is None or isinstance(d, int) for d in value)


def format_shape(shape: Any) -> str:
    """`(None, 128)` for one output; a structure of them, unquoted, for several (as Keras)."""
    if shape is None:
        return "?"
    if _is_shape(shape):
        return "(" + ", ".join(str(d) for d in shape) + ")"

    def formatted(value: Any) -> Any:
        if _is_shape(value):
            return "(" + ", ".join(str(d) for d in value) + ")"
        if isinstance(value, dict):
            return {k: formatted(v) for k, v in value.items()}
        return type(value)(formatted(v) for v in value)

    return str(formatted(shape)).replace("'", "")


def display_name(model: nn.Module, layer: nn.Module) -> str:
    # A plain torch module has no name: show the key its model holds it under ('linear').
    name = getattr(layer, "name", None)
    if isinstance(name, str):
        return name
    names = model.__dict__.get("_layer_names") or {}
    if id(layer) in names:
        return names[id(layer)]
    keys = {id(child): key for key, child in model.named_children()}
    return keys.get(id(layer), type(layer).__name__)


def _output_shape(model: nn.Module, layer: nn.Module) -> Any:
    shape = getattr(layer, "_output_shape", None)
    if shape is None:
        shape = model.__dict__.get("_plain_output_shapes", {}).get(id(layer))
    return shape


def _sequential_like(model: nn.Module) -> bool:
    """Keras's test: a chain of single-input calls, each layer called once."""
    nodes = model.__dict__.get("_nodes")
    if nodes is None:  # Sequential and subclassed models are listed as a sequence
        return True
    called = [id(node.layer) for node in nodes]
    return (len(model._flat_outputs) == 1 and all(len(node.inputs) <= 1 for node in nodes)
            and len(called) == len(set(called)))


def _connections(model: nn.Module) -> dict[int, str]:
    """`dense[0][0], input_b[0][0]` per layer: for each of its calls in this model, each input
    tensor's producing layer, the index of that layer's call, and the output's index."""
    call_index: dict[int, int] = {}
    per_layer: dict[int, int] = {}
    for node in model._nodes:
        call_index[id(node)] = per_layer.get(id(node.layer), 0)
        per_layer[id(node.layer)] = call_index[id(node)] + 1
    connected: dict[int, list[str]] = {}
    for node in model._nodes:
        entries = connected.setdefault(id(node.layer), [])
        for tensor in node.inputs:
            source = tensor.node
            entries.append(f"{display_name(model, source.layer)}[{call_index[id(source)]}]"
                           f"[{tensor.index}]")
    return {key: ", ".join(value) for key, value in connected.items() if value}


def layer_index_bounds(names: list[str], layer_range: Any) -> tuple[int, int]:
    """`(first, last + 1)` for `layer_range=(start, end)`: the first layer whose name matches
    `start` and the last that matches `end` (regular expressions, matched at the start)."""
    if layer_range is None:
        return 0, len(names)
    if not isinstance(layer_range, (list, tuple)) or len(layer_range) != 2:
        raise ValueError(
            "`layer_range` must be a list or tuple of 2 layer names (or regular expressions), "
            f"the first and last layers to show. Received: layer_range={layer_range!r}."
        )
    if not all(isinstance(name, str) for name in layer_range):
        raise ValueError(
            f"`layer_range` must hold 2 strings. Received: layer_range={layer_range!r}."
        )
    lower = [i for i, name in enumerate(names) if re.match(layer_range[0], name)]
    upper = [i for i, name in enumerate(names) if re.match(layer_range[1], name)]
    if not lower or not upper:
        missing = layer_range[0] if not lower else layer_range[1]
        raise ValueError(
            f"`layer_range` entry {missing!r} matches no layer name. Received: "
            f"layer_range={layer_range!r}; the layers are {names}."
        )
    if min(lower) > max(upper):
        return min(upper), max(lower) + 1
    return min(lower), max(upper) + 1


def _column_widths(line_length: int, positions: Sequence[float]) -> list[int]:
    # Positions up to 1 are fractions of the line; larger ones count characters.
    relative = positions[-1] <= 1
    widths, current = [], 0
    for position in positions:
        end = int(position * line_length) if relative else int(position)
        if end - current < 4:
            raise ValueError(
                f"The summary's columns need at least 4 characters each; line_length="
                f"{line_length} with positions={list(positions)} leaves {end - current}. Pass "
                "a larger line_length (or positions further apart)."
            )
        widths.append(end - current)
        current = end
    return widths


def _ratio_reduce(excess: int, widths: list[int]) -> list[int]:
    """Takes `excess` characters from the columns as evenly as rounding allows, front first."""
    remaining, shares, result = excess, len(widths), []
    for width in widths:
        taken = min(width, round(remaining / shares))
        result.append(width - taken)
        remaining -= taken
        shares -= 1
    return result


def _fit_widths(widths: list[int], line_length: int) -> list[int]:
    """Each column's outer width (its text plus a space either side) once the table, borders
    included, is fitted into `line_length`."""
    available = line_length - (len(widths) + 1)
    outer = [min(width + 2, available) for width in widths]
    if sum(outer) > available:
        outer = _ratio_reduce(sum(outer) - available, outer)
    return outer


def _wrap(text: str, width: int, justify: str) -> list[str]:
    """The lines of one cell: words wrapped to `width`, a word longer than a line cut to
    `width - 1` characters and `…`, each line padded to `width` as `justify` says."""
    breaks, offset = [], 0
    for match in re.finditer(r"\s*\S+\s*", text):
        start, word = match.start(), match.group()
        length = len(word.rstrip())
        if width - offset >= length:
            offset += len(word)
        elif length > width:
            if start:
                breaks.append(start)
            offset = len(word)
        elif offset and start:
            breaks.append(start)
            offset = len(word)
    lines = [text[a:b] for a, b in zip([0] + breaks, breaks + [len(text)])]
    result = []
    for line in lines:
        if len(line) > width:  # trailing blanks past the width go first
            trailing = len(line) - len(line.rstrip())
            line = line[:len(line) - min(trailing, len(line) - width)]
        if justify != "left":
            line = line.rstrip()
        if len(line) > width:
            line = line[:width - 1] + _ELLIPSIS
        if justify == "right":
            line = line.rjust(width)
        elif justify == "center":
            left = (width - len(line)) // 2
            line = (" " * left + line).ljust(width)
        else:
            line = line.ljust(width)
        result.append(line)
    return result


def _table(header: list[str], rows: list[list[str]], justify: list[str],
           outer: list[int]) -> list[str]:
    def rule(chars: str) -> str:
        left, fill, middle, right = chars
        return left + middle.join(fill * width for width in outer) + right

    def cells(row: list[str], border: str, header: bool = False) -> list[str]:
        wrapped = [_wrap(text, width - 2, how) for text, width, how in zip(row, outer, justify)]
        height = max(len(lines) for lines in wrapped)
        # Short cells are filled with blank lines: below the text, above it in the header.
        columns = [[" " * (width - 2)] * (height - len(lines)) + lines if header
                   else lines + [" " * (width - 2)] * (height - len(lines))
                   for lines, width in zip(wrapped, outer)]
        return [border + border.join(f" {column[index]} " for column in columns) + border
                for index in range(height)]

    out = [rule(_TOP), *cells(header, "┃", header=True), rule(_HEADER_RULE)]
    for index, row in enumerate(rows):
        if index:
            out.append(rule(_ROW_RULE))
        out.extend(cells(row, "│"))
    out.append(rule(_BOTTOM))
    return out


def _rows(model: nn.Module, layers: list[nn.Module], connections: dict[int, str] | None,
          show_trainable: bool, expand_nested: bool, level: int = 0) -> list[list[str]]:
    from lamina.layers.layer import Layer
    from lamina.models.model import Model

    rows = []
    for layer in layers:
        prefix = "   " * level + "└ " if level else ""
        name = f"{prefix}{display_name(model, layer)} ({type(layer).__name__})"
        weights = _weights_of(layer)
        built = getattr(layer, "built", True)
        params = f"{_count(weights):,}" if built else "0 (unbuilt)"
        row = [name, format_shape(_output_shape(model, layer)), params]
        if connections is not None:
            # An expanded inner layer's calls belong to the inner model's graph, not this one.
            row.append(connections.get(id(layer), "-") if not level else "-")
        if show_trainable:
            trainable = getattr(layer, "trainable", None) if isinstance(layer, Layer) else \
                any(p.requires_grad for p in layer.parameters())
            row.append(("Y" if trainable else "N") if weights else "-")
        rows.append(row)
        if expand_nested and isinstance(layer, Model) and layer.layers:
            rows.extend(_rows(layer, layer.layers, connections, show_trainable, expand_nested,
                              level + 1))
    return rows


def _optimizer_variables(model: nn.Module) -> tuple[int, int] | None:
    """(count, bytes) of the optimizer's variables as Keras holds them (an int32 step counter,
    the learning rate, the slots), once the optimizer is built."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not getattr(optimizer, "built", False) or \
            not hasattr(optimizer, "keras_variables"):
        return None
    arrays, _ = optimizer.keras_variables(optimizer.variables)
    count = sum(a.size for a in arrays)
    size = sum(a.nbytes for a in arrays[1:]) + 4 * arrays[0].size
    return count, size


def _line_length(default: int, line_length: int | None, positions: Sequence[float]) -> int:
    if line_length:
        return line_length
    # A terminal narrower than the table is honoured, as in Keras; one that reports no width
    # (0 columns in some CI runners and containers) or too few for the columns is not.
    columns = shutil.get_terminal_size().columns
    if columns - 4 < default:
        try:
            _column_widths(columns - 4, positions)
            return columns - 4
        except ValueError:
            return default
    return default


def summary_text(model: nn.Module, line_length: int | None = None,
                 positions: Sequence[float] | None = None, expand_nested: bool = False,
                 show_trainable: bool = False, layer_range: Any = None) -> str:
    """What `model.summary()` prints, as one string ending in a newline."""
    sequential_like = _sequential_like(model)
    if sequential_like:
        default, header = 88, ["Layer (type)", "Output Shape", "Param #"]
        positions = list(positions or [0.45, 0.80, 1.0])
        justify = ["left", "left", "right"]
        connections = None
    else:
        default, header = 108, ["Layer (type)", "Output Shape", "Param #", "Connected to"]
        positions = list(positions or [0.3, 0.56, 0.74, 1.0])
        justify = ["left", "left", "right", "left"]
        connections = _connections(model)
    if show_trainable:
        default += 12
        positions = [p * 0.90 for p in positions] + [1.0]
        header.append("Trainable")
        justify.append("center")
    line_length = _line_length(default, line_length, positions)
    outer = _fit_widths(_column_widths(line_length, positions), line_length)

    layers = model.layers
    first, last = layer_index_bounds([display_name(model, layer) for layer in layers],
                                     layer_range)
    rows = _rows(model, layers[first:last], connections, show_trainable, expand_nested)

    trainable, frozen = model.trainable_weights, model.non_trainable_weights
    total, size = _count(trainable) + _count(frozen), _memory(trainable) + _memory(frozen)
    optimizer = _optimizer_variables(model)
    if optimizer is not None:
        total, size = total + optimizer[0], size + optimizer[1]
    totals = [("Total", total, size), ("Trainable", _count(trainable), _memory(trainable)),
              ("Non-trainable", _count(frozen), _memory(frozen))]
    if optimizer is not None:
        totals.append(("Optimizer", *optimizer))
    lines = [f'Model: "{model.name}"', *_table(header, rows, justify, outer)]
    lines += [f" {kind} params: {count:,} ({readable_memory_size(bytes_)})"
              for kind, count, bytes_ in totals]
    return "\n".join(lines) + "\n"


def print_summary(model: nn.Module, line_length: int | None = None,
                  positions: Sequence[float] | None = None,
                  print_fn: Callable[[str], Any] | None = None, expand_nested: bool = False,
                  show_trainable: bool = False, layer_range: Any = None) -> None:
    """Prints `summary_text`; `print_fn`, when given, receives the whole text in one call, as
    Keras 3 calls it."""
    text = summary_text(model, line_length=line_length, positions=positions,
                        expand_nested=expand_nested, show_trainable=show_trainable,
                        layer_range=layer_range)
    if print_fn is not None:
        print_fn(text)
    else:
        sys.stdout.write(text)
