"""Connectionist temporal classification (Graves et al., 2006) on `torch.nn.functional.ctc_loss`.

Keras's layout: `y_true` is `(batch, max_label_length)` integer labels padded with 0, which is
also the blank class; `y_pred` is `(batch, time, num_classes)` logits (log-softmax is applied
here). Every sequence uses all `time` steps; a label's length is its count of non-zero entries.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from lamina._registry import register
from lamina.errors import ShapeError
from lamina.losses.loss import Loss, as_float_tensor


@register("ctc", kind="loss")
def ctc(y_true: Any, y_pred: Any) -> torch.Tensor:
    """CTC loss per sequence: `L = -log Σ_{π ∈ B⁻¹(y)} Π_t softmax(y_pred_t)[π_t]`,

    the negative log-probability of all alignments `π` that collapse (merge repeats, drop
    blanks) to the label sequence `y`. Blank is class 0. Returns shape `(batch,)`.

    >>> logits = torch.zeros(1, 2, 3)  # uniform over {blank, 1, 2} at both steps
    >>> round(float(ctc(torch.tensor([[1]]), logits)), 4)  # 3 of 9 paths give [1]
    1.0986
    """
    y_pred = as_float_tensor(y_pred)
    if y_pred.dtype in (torch.float16, torch.bfloat16):
        y_pred = y_pred.float()
    y_true = torch.as_tensor(y_true, device=y_pred.device)
    if y_true.dim() != 2 or y_pred.dim() != 3 or y_true.shape[0] != y_pred.shape[0]:
        raise ShapeError(
            "`ctc` needs y_true of shape (batch, max_label_length) (integer labels, 0-padded) "
            "and y_pred of shape (batch, time, num_classes) (logits). Received: "
            f"y_true.shape={tuple(y_true.shape)}, y_pred.shape={tuple(y_pred.shape)}."
        )
    batch, time = y_pred.shape[0], y_pred.shape[1]
    targets = y_true.long()
    target_lengths = (targets != 0).sum(dim=-1)
    input_lengths = torch.full((batch,), time, dtype=torch.long, device=y_pred.device)
    log_probs = F.log_softmax(y_pred, dim=-1).transpose(0, 1)  # (time, batch, classes)
    return F.ctc_loss(
        log_probs, targets, input_lengths, target_lengths, blank=0, reduction="none"
    )


@register("CTC")
class CTC(Loss):
    """CTC loss; see `ctc`. `y_true`: `(batch, max_label_length)` labels, 0-padded (0 is the
    blank); `y_pred`: `(batch, time, num_classes)` logits."""

    def __init__(
        self,
        reduction: str | None = "sum_over_batch_size",
        name: str = "ctc",
        dtype: str | None = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        return ctc(y_true, y_pred)

    def check_inputs(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> None:
        super().check_inputs(y_true, y_pred)
        if y_pred.dim() == 3 and y_true.numel() and (
            bool((y_true < 0).any()) or bool((y_true >= y_pred.shape[-1]).any())
        ):
            raise ValueError(
                f"`{self.name}` needs labels in [0, {y_pred.shape[-1]}) (num_classes of "
                f"y_pred, 0 being the blank/padding). Received labels from "
                f"{int(y_true.min())} to {int(y_true.max())}."
            )
