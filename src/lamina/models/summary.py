"""`model.summary()`: a plain-text table that reads the same in a terminal, a log and a notebook."""

from __future__ import annotations

from typing import Any, Callable

from torch import nn


def _format_shape(shape: Any) -> str:
    if shape is None:
        return "?"
    if isinstance(shape, dict):
        return "{" + ", ".join(f"{k}: {_format_shape(v)}" for k, v in shape.items()) + "}"
    if isinstance(shape, list) or (isinstance(shape, tuple) and shape and isinstance(shape[0], (tuple, list))):
        return "[" + ", ".join(_format_shape(s) for s in shape) + "]"
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _format_bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} GB"


def _weights_of(layer: nn.Module) -> list:
    from lamina.layers.layer import Layer

    if isinstance(layer, Layer):
        return layer.weights
    return list(layer.state_dict(keep_vars=True).values())


def _rows(model: nn.Module, expand_nested: bool, depth: int = 0) -> list[tuple]:
    from lamina.layers.layer import Layer

    rows = []
    # A plain torch module has no name: show the key the model holds it under ('linear').
    keys = {id(child): key for key, child in model.named_children()}
    for layer in model.layers:
        name = getattr(layer, "name", None)
        name = name if isinstance(name, str) else keys.get(id(layer), type(layer).__name__)
        shape = getattr(layer, "_output_shape", None)
        if shape is None:
            shape = model.__dict__.get("_plain_output_shapes", {}).get(id(layer))
        count = sum(t.numel() for t in _weights_of(layer))
        trainable = getattr(layer, "trainable", any(p.requires_grad for p in layer.parameters()))
        rows.append((("  " * depth) + f"{name} ({type(layer).__name__})", _format_shape(shape),
                     f"{count:,}", "Y" if trainable else "N"))
        if expand_nested and isinstance(layer, Layer) and hasattr(layer, "layers") and layer.layers:
            rows.extend(_rows(layer, expand_nested, depth + 1))
    return rows


def print_summary(model: nn.Module, line_length: int | None = None,
                  print_fn: Callable[[str], Any] | None = None, expand_nested: bool = False,
                  show_trainable: bool = False) -> None:
    print_fn = print_fn or print
    if not model.built:
        raise ValueError(
            f"Model {model.name!r} has not yet been built, so it has no output shapes or weights "
            "to summarize. Build it by calling it on data, by giving the first layer an "
            "input_shape, or with model.build(input_shape)."
        )
    headers = ("Layer (type)", "Output Shape", "Param #") + (("Trainable",) if show_trainable else ())
    rows = [r[:3] + ((r[3],) if show_trainable else ()) for r in _rows(model, expand_nested)]
    widths = [max(len(headers[i]), *(len(r[i]) for r in rows)) if rows else len(headers[i])
              for i in range(len(headers))]
    if line_length:
        widths[0] = max(widths[0], line_length - sum(widths[1:]) - 3 * (len(widths) - 1))
    total_width = sum(widths) + 3 * (len(widths) - 1)

    def line(cells: tuple) -> str:
        return "   ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w)
                          for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    weights = model.weights
    total = sum(t.numel() for t in weights)
    trainable = sum(t.numel() for t in model.trainable_weights)
    bytes_of = lambda tensors: sum(t.numel() * t.element_size() for t in tensors)  # noqa: E731
    print_fn(f'Model: "{model.name}"')
    print_fn("=" * total_width)
    print_fn(line(headers))
    print_fn("=" * total_width)
    for row in rows:
        print_fn(line(row))
    print_fn("=" * total_width)
    print_fn(f" Total params: {total:,} ({_format_bytes(bytes_of(weights))})")
    print_fn(f" Trainable params: {trainable:,} ({_format_bytes(bytes_of(model.trainable_weights))})")
    print_fn(f" Non-trainable params: {total - trainable:,} "
             f"({_format_bytes(bytes_of(model.non_trainable_weights))})")
