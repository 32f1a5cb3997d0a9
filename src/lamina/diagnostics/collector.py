"""The statistics the doctor reads from a running `fit`, kept on the device.

Every `every`-th training step is sampled: forward hooks (registered for that step only) watch
the activations, and the trainer's `after_backward` hook gives the batch and the loss with the
gradients still present. Each sample adds a few fused kernels and no host sync; everything is
read back once per epoch.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from lamina.diagnostics.model_info import Tap, Unit

Tensor = torch.Tensor

# sigmoid outputs within this distance of 0 or 1 (tanh: of -1 or 1) count as saturated.
SATURATION_MARGIN = 0.01


class _Moments:
    """Per-feature (last axis) sums of a tensor's values, on the device."""

    def __init__(self, features: int, device: torch.device):
        self.sum = torch.zeros(features, dtype=torch.float64, device=device)
        self.squares = torch.zeros_like(self.sum)
        self.count = 0

    def add(self, tensor: Tensor) -> None:
        # Summed in the data's precision (a batch is small), accumulated in float64. A NaN
        # makes the sums NaN, which no threshold flags: the non-finite guard reports it.
        values = tensor.detach().reshape(-1, tensor.shape[-1])
        self.sum += values.sum(0)
        self.squares += (values * values).sum(0)
        self.count += values.shape[0]

    def read(self) -> dict[str, Any]:
        mean = (self.sum / max(self.count, 1)).cpu().numpy()
        variance = np.maximum((self.squares / max(self.count, 1)).cpu().numpy() - mean ** 2, 0)
        return {"mean": mean.tolist(), "std": np.sqrt(variance).tolist(), "count": self.count}


class Collector:
    """Samples a fit's gradients, updates, activations, inputs and labels."""

    def __init__(self, model: torch.nn.Module, units: list[Unit], taps: list[Tap], every: int):
        self.model = model
        self.units = units
        self.taps = taps
        self.every = every
        self.parameters = [p for u in units for p in u.parameters]
        self._owner = torch.tensor([i for i, u in enumerate(units) for _ in u.parameters],
                                   dtype=torch.long)
        self._numel = torch.tensor([sum(p.numel() for p in u.parameters) for u in units],
                                   dtype=torch.float64)
        # float16 mixed precision's GradScaler: its gradients are scaled by `_scale`, a device
        # tensor it creates at the first step and updates in place (dividing costs no sync).
        self.scaler: Any = None
        # Label histograms have this many bins: the output width, and 2 for one sigmoid unit.
        self.classes = max(2, units[-1].width or 2) if units else 2
        self.sampling = False
        self.step = 0
        self.batch = 0
        self._handles: list = []
        self._snapshot: list[Tensor] = []
        self.reset_epoch()

    def reset_epoch(self) -> None:
        self.rows: list[tuple[int, Tensor, Tensor]] = []  # (batch, loss, gradient RMS)
        self.updates: list[Tensor] = []
        self.ever_active: dict[str, Tensor] = {}
        self.saturated: dict[str, list[Tensor]] = {}
        self.inputs: dict[str, _Moments] = {}
        self.labels: dict[str, Any] = {}

    def _on(self, device: torch.device) -> tuple[Tensor, Tensor]:
        """The parameter-to-layer index and layer sizes on `device`, copied there once (a
        host-to-device copy per sample would be a sync point)."""
        if self._owner.device != device:
            self._owner, self._numel = self._owner.to(device), self._numel.to(device)
        return self._owner, self._numel

    # ------------------------------------------------------------------ per step

    def begin_step(self, batch: int) -> None:
        self.batch = batch
        self.sampling = self.step % self.every == 0
        if self.sampling:
            self._handles = [t.module.register_forward_hook(self._watcher(t)) for t in self.taps]

    def _watcher(self, tap: Tap):
        def watch(module, inputs, output):
            if isinstance(output, (tuple, list)):
                output = output[0]
            if not isinstance(output, Tensor) or not output.is_floating_point():
                return
            output = output.detach()
            if tap.kind == "relu":
                axis = tap.unit_axis % output.ndim if output.ndim > 1 else 0
                active = (output > 0).movedim(axis, -1).reshape(-1, output.shape[axis]).any(0)
                seen = self.ever_active.get(tap.name)
                self.ever_active[tap.name] = active if seen is None else seen | active
            else:
                low = 0.0 if tap.kind == "sigmoid" else -1.0
                pinned = (output < low + SATURATION_MARGIN) | (output > 1.0 - SATURATION_MARGIN)
                self.saturated.setdefault(tap.name, []).append(pinned.float().mean())
        return watch

    def _remove_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def after_backward(self, data: Any, loss: Tensor) -> None:
        self._remove_hooks()
        with torch.no_grad():
            grads = [p.grad for p in self.parameters]
            present = [i for i, g in enumerate(grads) if g is not None]
            squares = torch.zeros(len(self.units), dtype=torch.float64, device=loss.device)
            owner, numel = self._on(loss.device)
            if present:
                norms = torch.stack(torch._foreach_norm([grads[i] for i in present]))
                index = owner if len(present) == len(grads) else owner[
                    torch.tensor(present, device=loss.device)]
                squares.index_add_(0, index, norms.double() ** 2)
            rms = (squares / numel).sqrt()
            scale = getattr(self.scaler, "_scale", None)
            if scale is not None:
                rms = rms / scale.double()
            self.rows.append((self.batch, loss.detach().float().reshape(()), rms))
            if not self._snapshot:
                self._snapshot = [p.detach().clone() for p in self.parameters]
            else:
                torch._foreach_copy_(self._snapshot, [p.detach() for p in self.parameters])
            self._watch_data(data)

    def end_step(self) -> None:
        if self.sampling:
            self._remove_hooks()
            if self._snapshot and len(self.updates) < len(self.rows):
                with torch.no_grad():
                    current = [p.detach() for p in self.parameters]
                    moved = torch.stack(torch._foreach_norm(torch._foreach_sub(current,
                                                                               self._snapshot)))
                    size = torch.stack(torch._foreach_norm(self._snapshot))
                    device = moved.device
                    owner = self._on(device)[0]
                    units = len(self.units)
                    moved_sq = torch.zeros(units, dtype=torch.float64, device=device)
                    size_sq = torch.zeros_like(moved_sq)
                    moved_sq.index_add_(0, owner, moved.double() ** 2)
                    size_sq.index_add_(0, owner, size.double() ** 2)
                    self.updates.append((moved_sq / size_sq.clamp_min(1e-30)).sqrt())
        self.sampling = False
        self.step += 1

    # ------------------------------------------------------------------ data

    def _watch_data(self, data: Any) -> None:
        from lamina.training.data_adapters import unpack_x_y_sample_weight
        from lamina.training.validation import named_leaves

        x, y, _ = unpack_x_y_sample_weight(data)
        for name, tensor in named_leaves(x, "x"):
            if isinstance(tensor, Tensor) and tensor.is_floating_point() and tensor.ndim >= 2:
                moments = self.inputs.get(name)
                if moments is None:
                    moments = self.inputs[name] = _Moments(tensor.shape[-1], tensor.device)
                moments.add(tensor)
        leaves = named_leaves(y, "y")
        if len(leaves) == 1 and isinstance(leaves[0][1], Tensor):
            self._watch_labels(leaves[0][1])

    def _watch_labels(self, y: Tensor) -> None:
        y = y.detach()
        if y.numel() == 0:
            return
        values = y.double()
        stats = self.labels
        rows = values.reshape(values.shape[0], -1) if values.ndim else values.reshape(1, 1)
        summary = torch.stack([
            values.min(), values.max(), (values != values.round()).double().sum(),
            rows.sum(1).min(), rows.sum(1).max(), values.sum(), (values * values).sum()])
        if "summary" not in stats:
            stats["summary"], stats["count"], stats["shape"] = [], 0, list(y.shape[1:])
        stats["summary"].append(summary)
        stats["count"] += int(values.numel())
        stats["rows"] = stats.get("rows", 0) + int(rows.shape[0])
        if rows.shape[1] > 1:
            histogram = rows.sum(0)  # one-hot (or soft) labels: the column sums
        else:
            # A fixed length keeps bincount's size-finding sync off the device.
            classes = values.reshape(-1).round().clamp(0, self.classes - 1).long()
            histogram = torch.zeros(self.classes, dtype=torch.float64, device=y.device)
            histogram.index_add_(0, classes, torch.ones_like(classes, dtype=torch.float64))
        stored = stats.get("histogram")
        stats["histogram"] = histogram if stored is None or stored.shape != histogram.shape \
            else stored + histogram

    # ------------------------------------------------------------------ epoch end

    def read_epoch(self) -> dict[str, Any]:
        """Everything sampled this epoch, read back to the host in one go."""
        out: dict[str, Any] = {"steps": [s for s, _, _ in self.rows]}
        if self.rows:
            out["loss"] = torch.stack([loss for _, loss, _ in self.rows]).cpu().tolist()
            out["grad_rms"] = torch.stack([rms for _, _, rms in self.rows]).cpu().tolist()
        if self.updates:
            out["update_ratio"] = torch.stack(self.updates).cpu().tolist()
        out["dead"] = {name: float(1.0 - active.float().mean()) for name, active
                       in self.ever_active.items()}
        out["saturated"] = {name: float(torch.stack(v).mean()) for name, v
                            in self.saturated.items()}
        out["inputs"] = {name: moments.read() for name, moments in self.inputs.items()}
        if self.labels.get("summary"):
            summary = torch.stack(self.labels["summary"]).cpu().numpy()
            out["labels"] = {
                "count": self.labels["count"], "rows": self.labels["rows"],
                "shape": self.labels["shape"],
                "min": float(summary[:, 0].min()), "max": float(summary[:, 1].max()),
                "non_integer": float(summary[:, 2].sum()),
                "row_sum_min": float(summary[:, 3].min()),
                "row_sum_max": float(summary[:, 4].max()),
                "sum": float(summary[:, 5].sum()), "squares": float(summary[:, 6].sum()),
                "histogram": self.labels["histogram"].cpu().tolist(),
            }
        self.reset_epoch()
        return {k: v for k, v in out.items() if v or v == 0}


def clean(value: Any) -> Any:
    """NaN and infinity as None, so the record is strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value
