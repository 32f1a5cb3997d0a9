"""How a recurrent layer runs a sequence: in torch's fused kernel, or one step at a time.

- **Fused** (`run_fused`): a built-in cell whose math is torch's (LSTM and GRU with tanh/sigmoid,
  GRU with `reset_after=True`, SimpleRNN with tanh or relu) runs in one call of torch's fused
  kernel (`torch.lstm`, `torch.gru`, `torch.rnn_tanh`, `torch.rnn_relu`; cuDNN on a GPU) with the
  layer's own parameters. Input `dropout` is one mask per sequence, as Keras draws it, applied
  before the kernel.
- **Step loop** (`run_loop`): everything else (recurrent_dropout while training, other
  activations, GRU with `reset_after=False`, custom cells, `use_cudnn=False`) runs the Keras
  equations one step at a time; for built-in cells the input projection of all steps is still
  one matrix product.

Masks follow Keras: a masked step leaves the state unchanged and its output repeats the previous
output (zeros before the first real step, or zeros everywhere masked when
`zero_output_for_mask=True`). The fused kernel gets the same result by moving each sequence's real
steps to the front (for right-padded masks, the usual `pad_sequences(padding='post')` case, this
moves nothing) and reading each sequence's outputs and final state at its real steps: no host
sync. Only an LSTM whose final carry `c` is wanted (`return_state` or `stateful`) under a mask
runs packed (`pack_padded_sequence`), which needs the lengths on the host: one small
device-to-host copy per such call. (On CPU the unpacked kernel is also the faster one:
docs/provenance.md.)
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

Tensor = torch.Tensor

_FUSED_KERNELS: dict[str, Callable[..., Any]] = {
    "LSTM": torch.lstm, "GRU": torch.gru, "RNN_TANH": torch.rnn_tanh, "RNN_RELU": torch.rnn_relu,
}


def flatten_states(states: Any) -> list[Tensor]:
    if isinstance(states, (list, tuple)):
        return [t for s in states for t in flatten_states(s)]
    return [states]


def pack_states(structure: Any, flat: Iterator[Tensor]) -> Any:
    if isinstance(structure, (list, tuple)):
        return [pack_states(s, flat) for s in structure]
    return next(flat)


def _broadcast_mask(keep: Tensor, like: Tensor) -> Tensor:
    """A (batch,) mask shaped to broadcast over a state of any rank."""
    return keep.view(keep.shape[0], *([1] * (like.ndim - 1)))


def run_fused(cell: Any, inputs: Tensor, states: list[Tensor], mask: Tensor | None,
              need_sequences: bool, need_states: bool, zero_output_for_mask: bool
              ) -> tuple[Tensor | None, Tensor, list[Tensor] | None]:
    """Run a whole sequence through torch's fused kernel. Returns (outputs, last, states); the
    states are None when not needed and not free (an LSTM's carry under a mask)."""
    kernel = _FUSED_KERNELS[cell._fused_mode]
    params = cell._fused_params()
    hidden = [s.unsqueeze(0) for s in states]
    # cuDNN keeps what backward needs only in training mode; ask for it whenever autograd records.
    train = torch.is_grad_enabled()
    if mask is None:
        result = kernel(inputs, hidden if len(hidden) > 1 else hidden[0], params, cell.use_bias,
                        1, 0.0, train, False, True)
        new_states = [r[0] for r in result[1:]]
        return (result[0] if need_sequences else None), new_states[0], new_states

    # Keras's masked recurrence is the plain recurrence over each sequence's real steps: move
    # them to the front, in order (for a right-padded mask this reorders nothing). Outputs at
    # the real steps are then exact whatever follows them, and the state after the last real
    # step is the output there, except an LSTM's carry, which needs the packed kernel.
    order = torch.sort((~mask).to(torch.uint8), dim=1, stable=True).indices
    inputs = inputs.gather(1, order.unsqueeze(-1).expand_as(inputs))
    lengths = mask.sum(1)
    new_states = None
    if need_states and len(states) > 1:
        outputs, new_states = _run_packed(kernel, cell, inputs, hidden, lengths, train)
    else:
        outputs = kernel(inputs, hidden if len(hidden) > 1 else hidden[0], params,
                         cell.use_bias, 1, 0.0, train, False, True)[0]
    width = outputs.shape[-1]
    last_step = (lengths - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, width)
    last = outputs.gather(1, last_step)[:, 0]
    if new_states is None and len(states) == 1:
        new_states = [last]
    has_steps = (lengths > 0).unsqueeze(1)
    if new_states is not None:
        # A fully masked sequence keeps its initial state.
        new_states = [torch.where(has_steps, n, s) for n, s in zip(new_states, states)]
    last = last.masked_fill(~has_steps, 0.0)
    if zero_output_for_mask:
        last = last.masked_fill(~mask[:, -1:], 0.0)
    if not need_sequences:
        return None, last, new_states
    # A masked step repeats the output of the last real step before it (zeros if none).
    done = mask.cumsum(1)
    index = (done - 1).clamp(min=0).unsqueeze(-1).expand(-1, -1, width)
    keep = mask if zero_output_for_mask else done > 0
    return outputs.gather(1, index).masked_fill(~keep.unsqueeze(-1), 0.0), last, new_states


def _run_packed(kernel: Callable[..., Any], cell: Any, inputs: Tensor, hidden: list[Tensor],
                lengths: Tensor, train: bool) -> tuple[Tensor, list[Tensor]]:
    """The fused kernel over packed sequences (real steps first): padded outputs and the states
    after each sequence's last real step."""
    # pack_padded_sequence sorts the lengths on the host: this call's one device-to-host copy.
    # A fully masked sequence is packed with one dummy step; the caller restores its state.
    packed = pack_padded_sequence(inputs, lengths.cpu().clamp(min=1), batch_first=True,
                                  enforce_sorted=False)
    hidden = [h.index_select(1, packed.sorted_indices) for h in hidden]
    result = kernel(packed.data, packed.batch_sizes, hidden if len(hidden) > 1 else hidden[0],
                    cell._fused_params(), cell.use_bias, 1, 0.0, train, False)
    outputs, _ = pad_packed_sequence(
        PackedSequence(result[0], packed.batch_sizes, packed.sorted_indices,
                       packed.unsorted_indices),
        batch_first=True, total_length=inputs.shape[1],
    )
    return outputs, [r.index_select(1, packed.unsorted_indices)[0] for r in result[1:]]


def run_loop(step: Callable[[int, Any], tuple[Tensor, Any]], steps: int, states: Any,
             mask: Tensor | None, need_sequences: bool, zero_output_for_mask: bool
             ) -> tuple[Tensor | None, Tensor, Any]:
    """Keras's recurrence one step at a time: `step(t, states) -> (output, new_states)`."""
    outputs = []
    output = None
    for t in range(steps):
        new_output, new_states = step(t, states)
        if mask is not None:
            keep = mask[:, t]
            flat = [torch.where(_broadcast_mask(keep, n), n, s)
                    for n, s in zip(flatten_states(new_states), flatten_states(states))]
            new_states = pack_states(new_states, iter(flat))
            previous = new_output.new_zeros(()) if output is None or zero_output_for_mask \
                else output
            new_output = torch.where(_broadcast_mask(keep, new_output), new_output, previous)
        output, states = new_output, new_states
        if need_sequences:
            outputs.append(output)
    return (torch.stack(outputs, 1) if need_sequences else None), output, states
