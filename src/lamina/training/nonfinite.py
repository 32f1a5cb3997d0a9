"""Keep NaN and Inf out of a model during `fit`.

Up-front checks (validation.py) catch bad in-memory data; this guard catches what only the
computation shows: NaN/Inf in a streamed batch, an overflowing input, a learning rate that blows
up. After each backward pass it checks the loss, the gradients and the statistics the forward
pass updated (BatchNormalization's moving mean and variance) with one fused kernel
(`_amp_foreach_non_finite_check_and_unscale_`, GradScaler's own check); exact mode leaves the
gradients to the next step's loss and the epoch-end weight check.

- Exact mode (`check_every == 1`, the default on CPU where reading a flag costs nothing, and
  whenever TerminateOnNaN is in the callbacks): the flag is read at once; a bad step is never
  applied and the statistics its forward pass changed are put back, so the model is exactly as
  it was before the failing step.
- Deferred mode (accelerators): the flag accumulates on the device with no host sync and
  is read every `check_every` steps and at each epoch end; a bad step rolls the
  model back to the snapshot taken at the previous check.

Either way the weights are also checked at each epoch end (an update with finite gradients can
still overflow), and the snapshot (weights, buffers, optimizer state) is refreshed there.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from lamina.errors import NonFiniteError
from lamina.training.data_adapters import unpack_x_y_sample_weight
from lamina.training.validation import named_leaves

Tensor = torch.Tensor


def _unique(tensors: Any) -> list[Tensor]:
    seen, result = set(), []
    for tensor in tensors:
        if id(tensor) not in seen:
            seen.add(id(tensor))
            result.append(tensor)
    return result


def _forward_state(model: torch.nn.Module) -> list[Tensor]:
    """Tensors a training forward pass may change: buffers, and the non-trainable weights of
    trainable layers (lamina's BatchNormalization keeps its moving statistics as such). Frozen
    layers' weights are left out: they do not change, and a frozen backbone can be large."""
    tensors = list(model.buffers())
    for module in model.modules():
        if getattr(module, "trainable", True):
            tensors.extend(p for p in module.parameters(recurse=False) if not p.requires_grad)
    return _unique(tensors)


def _clone(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_clone(v) for v in value)
    return value


class NonFiniteGuard:
    """Detects a non-finite step, rolls the model back and raises `NonFiniteError` (or, with
    `stop_training`, skips the step and stops training as TerminateOnNaN asks)."""

    def __init__(self, trainer: Any, check_every: int, stop_training: bool):
        self.trainer = trainer
        self.model = trainer.model
        self.check_every = check_every
        self.exact = check_every == 1
        self.stop_training = stop_training
        # A weight sharded by FSDP (a DTensor) is saved and put back as this process's shard.
        self.state = [t.to_local() if hasattr(t, "to_local") else t
                      for t in _unique([*self.model.parameters(), *self.model.buffers()])]
        forward_state = _forward_state(self.model)
        self.forward_state = [t for t in forward_state if t.is_floating_point()]
        # Exact mode puts back what the failing forward pass changed: one small copy per step,
        # and none at all for a model without buffers or moving statistics.
        self._forward_saved = [t.detach().clone() for t in forward_state] if self.exact else []
        self._forward_all = forward_state if self.exact else []
        device = self.state[0].device if self.state else torch.device("cpu")
        self._found = torch.zeros(1, device=device)
        self._one = torch.ones(1, device=device)
        self._first_bad = torch.full((), -1, dtype=torch.long, device=device)
        self._since_check: list[tuple[int, int]] = []
        self._saved: list[Tensor] = []
        self._saved_optimizer: Any = None
        self._checked_at = "the start of fit"
        self.epoch = self.step = 0
        self._batch: Any = None
        self._applied = False
        self.snapshot()

    # ------------------------------------------------------------------ snapshot

    def snapshot(self) -> None:
        with torch.no_grad():
            if self._saved:
                torch._foreach_copy_(self._saved, self.state)
            else:
                self._saved = [t.detach().clone() for t in self.state]
        optimizer = self.trainer.optimizer
        self._saved_optimizer = _clone(optimizer.state_dict()) if optimizer.built else None

    def restore(self) -> None:
        """Back to the last snapshot: weights, buffers and optimizer state."""
        with torch.no_grad():
            torch._foreach_copy_(self.state, self._saved)
        optimizer = self.trainer.optimizer
        if self._saved_optimizer is not None:
            optimizer.load_state_dict(_clone(self._saved_optimizer))
        if optimizer.built:
            optimizer.zero_grad()

    # ------------------------------------------------------------------ each step

    def begin_step(self, epoch: int, step: int, batch: Any) -> None:
        self.epoch, self.step, self._batch, self._applied = epoch, step, batch, False
        if self._forward_saved:
            with torch.no_grad():
                torch._foreach_copy_(self._forward_saved, self._forward_all)
        if not self.exact:
            self._since_check.append((epoch, step))

    def reject(self, loss: Tensor, check_gradients: bool = True) -> bool:
        """After backward, before the update: True when the update must be skipped."""
        found = self._found
        if self.exact:
            # The loss and the changed statistics only: scanning every gradient each step
            # costs a measurable share of a small step (docs/provenance.md). A gradient that is
            # non-finite under a finite loss corrupts the weights, which the next step's loss or
            # the epoch-end check sees; the rollback then goes to the last snapshot instead.
            if not self.forward_state:
                # One read of the scalar instead of isfinite's four kernels and a read, and no
                # grad-mode switch: it builds no graph (cheaper per step: docs/provenance.md).
                if _loss_finite(loss):
                    self._applied = True
                    return False
                return self._bad_step(loss)
            check_gradients = False
        with torch.no_grad():
            found.zero_()
            tensors = list(self.forward_state)
            if check_gradients:
                tensors += [v.grad for v in self.trainer.optimizer.variables if v.grad is not None]
            if tensors:
                torch._amp_foreach_non_finite_check_and_unscale_(tensors, found, self._one)
            found.add_(~torch.isfinite(loss.detach().float().reshape(1)))
            if not self.exact:
                index = len(self._since_check) - 1
                bad = (found > 0).reshape(()) & (self._first_bad < 0)
                self._first_bad.copy_(torch.where(bad, index, self._first_bad))
                self._applied = True
                return False
        if not found.item():
            self._applied = True
            return False
        return self._bad_step(loss)

    def _bad_step(self, loss: Tensor) -> bool:
        self._undo_forward()
        self.trainer.optimizer.zero_grad()
        # An earlier update with finite gradients may have overflowed the weights; only the
        # snapshot predates it.
        rolled_back = not self._state_finite()
        if rolled_back:
            self.restore()
        if self.stop_training:
            self.model.stop_training = True
            return True
        raise NonFiniteError(self._message(self.epoch, self.step, loss, rolled_back))

    def failed_step(self) -> str:
        """A step raised: put the model back as it was before it (or at the last check), and
        say which."""
        if self.exact and not self._applied:
            self._undo_forward()
            if self.trainer.optimizer.built:
                self.trainer.optimizer.zero_grad()
            if self._state_finite():
                return "The model is as it was before that batch."
        self.restore()
        return f"The model was rolled back to {self._checked_at}."

    def _undo_forward(self) -> None:
        if self._forward_saved:
            with torch.no_grad():
                torch._foreach_copy_(self._forward_all, self._forward_saved)

    # ------------------------------------------------------------------ sync points

    def due(self, step: int) -> bool:
        return not self.exact and (step + 1) % self.check_every == 0

    def _state_finite(self) -> bool:
        found = self._found
        with torch.no_grad():
            found.zero_()
            floating = [t for t in self.state if t.is_floating_point()]
            torch._amp_foreach_non_finite_check_and_unscale_(floating, found, self._one)
        return not found.item()

    def check(self, where: str) -> None:
        """A sync point: raise (after rolling back) if anything went non-finite since the last
        one, else take a new snapshot."""
        first_bad = -1 if self.exact else int(self._first_bad)
        if first_bad >= 0 or not self._state_finite():
            self.restore()
            if first_bad >= 0:
                epoch, step = self._since_check[first_bad]
                message = self._message(epoch, step, None)
            else:
                message = (
                    f"The weights became NaN or infinite during epoch {self.epoch + 1} although "
                    "every loss and gradient was finite: the updates overflowed. The model was "
                    f"rolled back to {self._checked_at}. Lower the learning rate or set "
                    "clipnorm/global_clipnorm on the optimizer."
                )
            raise NonFiniteError(message)
        self._first_bad.fill_(-1)
        self._since_check = []
        self._checked_at = where
        self.snapshot()

    # ------------------------------------------------------------------ the message

    def _message(self, epoch: int, step: int, loss: Tensor | None,
                 rolled_back: bool = True) -> str:
        if self.exact and not rolled_back:
            what = "loss" if loss is not None and not bool(torch.isfinite(loss).all()) else \
                "gradients or normalization statistics"
            rolled = "The model is unchanged by that batch (weights, optimizer state and " \
                     "normalization statistics as before it)."
        else:
            what = "loss, gradients or normalization statistics"
            rolled = f"The model was rolled back to {self._checked_at}."
        return (
            f"Training batch {step} of epoch {epoch + 1} made the {what} NaN or infinite. "
            f"{rolled}{_describe_batch(self._batch) if self.exact else ''} Look for NaN/Inf or "
            "huge values in that batch (scale inputs to about [-1, 1]), or lower the learning "
            "rate; add TerminateOnNaN to stop training instead of raising."
        )


def _loss_finite(loss: Tensor) -> bool:
    # Neither reads records anything for autograd, so the loss needs no detach.
    if loss.numel() == 1:
        return math.isfinite(loss.item())
    return bool(torch.isfinite(loss).all())


def _describe_batch(batch: Any) -> str:
    """What is wrong in the batch itself, when something is (read only on the failure path)."""
    notes = []
    x, y, sample_weight = unpack_x_y_sample_weight(batch)
    for part, structure in (("x", x), ("y", y), ("sample_weight", sample_weight)):
        for name, tensor in named_leaves(structure, part):
            if not isinstance(tensor, Tensor) or not tensor.is_floating_point():
                continue
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                notes.append(f"its {name} holds {bad} NaN/Inf values")
            elif tensor.numel():
                largest = float(tensor.abs().max())
                if largest > 1e15:
                    notes.append(f"its {name} holds values as large as {largest:.3g}")
    return f" In that batch, {'; '.join(notes)}." if notes else ""
