"""What went wrong when `fit` stopped on bad values: the errors fit's own checks raise
(up-front validation, the non-finite guard, the losses' shape checks) turned into events of the
run record, located in the failing batch when the doctor still holds it.

This runs only on the failure path, so it may read tensors back and re-run the failing batch.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from lamina.errors import DataError, NonFiniteError, ShapeError

_UPFRONT_NONFINITE = re.compile(r"`([^`]+)` holds (\d+) NaN and (\d+) infinite values "
                                r"\(the first in sample (\d+)\)")
_GUARD_LOCATION = re.compile(r"Training batch (\d+) of epoch (\d+)")
_LABEL_WORDS = ("label", "y_true", "`y`")


def events_from_error(error: BaseException, last: tuple[int, int, Any] | None, model: Any,
                      trainer: Any) -> list[dict[str, Any]]:
    """Events for an exception `fit` raised; `last` is (epoch, batch, data) of the last batch
    the doctor saw."""
    message = str(error).split("\n")[0]
    if isinstance(error, NonFiniteError):
        located = _GUARD_LOCATION.search(message)
        if located and last is not None:
            batch, epoch = int(located.group(1)), int(located.group(2)) - 1
            if (epoch, batch) == last[:2]:
                return locate(epoch, batch, last[2], model, trainer)
        epoch = int(located.group(2)) - 1 if located else None
        return [{"kind": "nonfinite_step", "epoch": epoch, "message": message}]
    if isinstance(error, DataError):
        upfront = _UPFRONT_NONFINITE.search(message)
        if upfront:
            where, nan, inf, sample = upfront.groups()
            return [{"kind": "nonfinite_inputs", "where": where.split("[")[0].split(" ")[-1],
                     "epoch": None,
                     "message": f"fit's data check refused `{where}`: {nan} NaN and {inf} "
                                f"infinite values, the first in sample {sample}"}]
    if isinstance(error, (DataError, ShapeError)) and any(w in message for w in _LABEL_WORDS):
        return [{"kind": "label_error", "epoch": last[0] if last else None,
                 "message": message}]
    return []


def locate(epoch: int, batch: int, data: Any, model: Any, trainer: Any) -> list[dict[str, Any]]:
    """The bad values of a batch whose step went non-finite: in the data itself, else the first
    layer whose output (or, walking back from the output, whose gradient) is NaN/Inf."""
    from lamina.training.data_adapters import unpack_x_y_sample_weight
    from lamina.training.validation import named_leaves

    x, y, sample_weight = unpack_x_y_sample_weight(data)
    notes = []
    for part, structure in (("x", x), ("y", y), ("sample_weight", sample_weight)):
        for name, tensor in named_leaves(structure, part):
            if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
                continue
            bad = ~torch.isfinite(tensor.detach())
            if bad.any():
                rows = bad.reshape(bad.shape[0], -1).any(1).nonzero().flatten().tolist()
                features = bad.reshape(-1, bad.shape[-1]).any(0).nonzero().flatten().tolist() \
                    if bad.ndim > 1 else []
                nan = int(torch.isnan(tensor).sum())
                text = (f"{name} of training batch {batch} (epoch {epoch + 1}) holds {nan} NaN "
                        f"and {int(bad.sum()) - nan} infinite values in rows {_few(rows)}")
                if features:
                    text += f", features (last axis) {_few(features)}"
                notes.append((name, text))
    if notes:
        return [{"kind": "nonfinite_inputs", "where": notes[0][0].split("[")[0], "epoch": epoch,
                 "batch": batch, "message": "; ".join(t for _, t in notes)}]
    layer, how = _first_nonfinite_layer(model, trainer, x, y, sample_weight)
    message = f"training batch {batch} of epoch {epoch + 1} made the loss or gradients NaN/Inf " \
              "although its data is finite"
    if layer is not None:
        message += f"; the first layer to go non-finite is {layer} ({how})"
    return [{"kind": "nonfinite_step", "epoch": epoch, "batch": batch, "layer": layer,
             "message": message}]


def _few(values: list[int]) -> str:
    shown = ", ".join(map(str, values[:5]))
    return shown + (f" and {len(values) - 5} more" if len(values) > 5 else "")


def _first_nonfinite_layer(model: Any, trainer: Any, x: Any, y: Any,
                           sample_weight: Any) -> tuple[str | None, str]:
    """Re-run the batch with hooks, then put the model (weights, buffers, mode, RNG) back."""
    from lamina.diagnostics.model_info import display_name, units_and_taps

    saved = {k: v.detach().clone() for k, v in model.state_dict().items()}
    rng = torch.random.get_rng_state()
    was_training = model.training
    found: list[str] = []
    handles = []
    for path, module in model.named_modules():
        if not path:
            continue

        def watch(module, inputs, output, path=path):
            if not found and isinstance(output, torch.Tensor) and output.is_floating_point() \
                    and not bool(torch.isfinite(output).all()):
                found.append(display_name(model, path))
        handles.append(module.register_forward_hook(watch))
    try:
        model.train()
        with torch.enable_grad():
            y_pred = model(x)
            for handle in handles:
                handle.remove()
            if found:
                return found[0], "its output"
            losses = getattr(trainer, "_output_losses", [])
            if len(losses) != 1 or losses[0][3] is not None:
                return None, ""
            for parameter in model.parameters():
                parameter.grad = None
            losses[0][1](y, y_pred, sample_weight).backward()
        units, _ = units_and_taps(model)
        for unit in reversed(units):
            if any(p.grad is not None and not bool(torch.isfinite(p.grad).all())
                   for p in unit.parameters):
                return unit.name, "its gradient, walking back from the output"
        return None, ""
    except Exception:  # the analysis must never hide the error being analysed
        return None, ""
    finally:
        for handle in handles:
            handle.remove()
        for parameter in model.parameters():
            parameter.grad = None
        with torch.no_grad():
            model.load_state_dict(saved)
        model.train(was_training)
        torch.random.set_rng_state(rng)
