"""`Model.stateless_call`: a forward pass on given weight values, leaving the model as it was.

Keras maps each variable to a value in a `StatelessScope`; here torch's
`torch.func.functional_call` swaps the values in for the call and puts the model's own tensors
back after it. Trainable values go in as given, so gradients flow to them; non-trainable values
go in as copies, which the call's in-place updates (BatchNormalization's moving statistics)
change and which come back as the new state.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from lamina.layers.layer import Layer

Tensor = torch.Tensor


class _CallAndLosses(nn.Module):
    """The model's call, then its losses read while the given values are still swapped in (a
    weight penalty is computed on the values passed, not on the model's own weights)."""

    def __init__(self, model: nn.Module, return_losses: bool) -> None:
        super().__init__()
        self.model = model
        self.return_losses = return_losses

    def forward(self, args: tuple, kwargs: dict) -> tuple[Any, list[Tensor] | None]:
        outputs = self.model(*args, **kwargs)
        return outputs, (list(self.model.losses) if self.return_losses else None)


def stateless_call(model: Layer, trainable_variables: Sequence[Any],
                   non_trainable_variables: Sequence[Any], args: tuple, kwargs: dict,
                   return_losses: bool = False) -> tuple:
    """`(outputs, non_trainable_variables[, losses])` of `model(*args, **kwargs)` run on the given
    values, in the order of `model.trainable_variables` / `model.non_trainable_variables`."""
    if not model.built:
        raise ValueError(
            f"To call stateless_call, {type(model).__name__} must be built (i.e. its variables "
            "must have been already created). You can build it by calling it on some data."
        )
    own_trainable = model.trainable_variables
    own_non_trainable = model.non_trainable_variables
    for what, given, own in (("trainable_variables", trainable_variables, own_trainable),
                             ("non_trainable_variables", non_trainable_variables,
                              own_non_trainable)):
        if len(given) != len(own):
            raise ValueError(
                f"Argument `{what}` must be a list of tensors corresponding 1:1 to "
                f"{type(model).__name__}().{what}. Received list with length {len(given)}, "
                f"but expected {len(own)} variables. Pass `model.{what}` (or new values for "
                "them, in that order)."
            )
    names = _names_by_tensor(model)
    # Keyed by the names under `_CallAndLosses`, which holds the model as `model`.
    values: dict[str, Tensor] = {}
    for own, given in zip(own_trainable, trainable_variables):
        _map(values, names[id(own)], _value_for(own, given, names[id(own)][0]))
    for own, given in zip(own_non_trainable, non_trainable_variables):
        # A copy: the call updates state in place, and the caller's tensors (often the model's
        # own, `model.non_trainable_variables`) must not change.
        _map(values, names[id(own)], _value_for(own, given, names[id(own)][0]).clone())
    try:
        outputs, losses = torch.func.functional_call(
            _CallAndLosses(model, return_losses), values, (args, kwargs))
    finally:
        # The call's `add_loss` terms are returned, not kept; as in Keras, the terms of the
        # call before it are gone too (a call starts by dropping them).
        model._clear_losses()
    # functional_call writes a value the call re-assigned (`self.count = self.count + 1`) back
    # into `values`; in-place updates (moving statistics) changed the copies themselves.
    new_state = [values[names[id(own)][0]] for own in own_non_trainable]
    if return_losses:
        return outputs, new_state, losses
    return outputs, new_state


def _names_by_tensor(model: nn.Module) -> dict[int, list[str]]:
    """Every name a weight has in the module tree (a shared layer's weights have several)."""
    names: dict[int, list[str]] = {}
    for name, tensor in [*model.named_parameters(remove_duplicate=False),
                         *model.named_buffers(remove_duplicate=False)]:
        names.setdefault(id(tensor), []).append(f"model.{name}")
    return names


def _value_for(own: Tensor, given: Any, name: str) -> Tensor:
    """`given` as a tensor of the variable's dtype and device (as Keras converts it), keeping
    its autograd history."""
    value = torch.as_tensor(given, dtype=own.dtype, device=own.device)
    if value.shape != own.shape:
        raise ValueError(
            f"stateless_call received a value of shape {tuple(value.shape)} for variable "
            f"{getattr(own, 'path', name.removeprefix('model.'))!r}, whose shape is "
            f"{tuple(own.shape)}. Pass the values in the order of model.trainable_variables / "
            "model.non_trainable_variables."
        )
    return value


def _map(values: dict[str, Tensor], names: list[str], value: Tensor) -> None:
    for name in names:
        values[name] = value
