"""Is lamina's LSTM as fast as torch's? LSTM(128) over a (64, 50, 32) batch, forward + backward.

Contenders with identical weights, side by side:
- raw `torch.nn.LSTM` (batch_first);
- `lamina.layers.LSTM(128)` (Keras layouts, one call of torch's fused kernel);
- the same layer with a right-padded mask (unpacked kernel, no host sync), next to `nn.LSTM` on
  the same sequences packed with `pack_padded_sequence`, the usual torch way;
- the same layer forced onto the Python step loop (`use_cudnn=False`), to show what the fused
  kernel buys.
Timings are interleaved (each round times every contender once) so drift in machine load hits
them all alike; the median over rounds is reported, and the speed relative to raw torch (target
>= 0.9x: lamina at least 90% of torch's speed). One intra-op thread, so oneDNN's thread pool does
not turn a busy machine's scheduling noise into the measurement.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import numpy as np
import torch
from torch import nn

from lamina import layers

BATCH, STEPS, FEATURES, UNITS = 64, 50, 32, 128
ROUNDS = 30
CALLS_PER_ROUND = 3


def torch_lstm_like(layer: layers.LSTM) -> nn.LSTM:
    """An nn.LSTM holding the lamina layer's weights (Keras gate order i, f, c, o is torch's)."""
    kernel, recurrent_kernel, bias = layer.get_weights()
    reference = nn.LSTM(FEATURES, UNITS, batch_first=True)
    with torch.no_grad():
        reference.weight_ih_l0.copy_(torch.from_numpy(kernel.T))
        reference.weight_hh_l0.copy_(torch.from_numpy(recurrent_kernel.T))
        reference.bias_ih_l0.copy_(torch.from_numpy(bias))
        reference.bias_hh_l0.zero_()
    return reference


def forward_backward(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                     parameters: list[torch.Tensor]) -> Callable[[], None]:
    def run() -> None:
        for p in parameters:
            p.grad = None
        fn(x).sum().backward()

    return run


def time_once(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    for _ in range(CALLS_PER_ROUND):
        fn()
    return (time.perf_counter() - start) / CALLS_PER_ROUND


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x = torch.randn(BATCH, STEPS, FEATURES)
    lamina_lstm = layers.LSTM(UNITS)
    lamina_lstm(x)
    lamina_lstm.train()
    reference = torch_lstm_like(lamina_lstm).train()
    step_loop = layers.LSTM(UNITS, use_cudnn=False)
    step_loop(x)
    step_loop.set_weights(lamina_lstm.get_weights())
    lengths = torch.randint(STEPS // 2, STEPS + 1, (BATCH,))
    mask = torch.arange(STEPS) < lengths[:, None]

    def torch_packed(v: torch.Tensor) -> torch.Tensor:
        packed = nn.utils.rnn.pack_padded_sequence(v, lengths, batch_first=True,
                                                   enforce_sorted=False)
        return reference(packed)[1][0][0]

    with torch.no_grad():
        torch.testing.assert_close(lamina_lstm(x), reference(x)[0][:, -1], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(lamina_lstm(x, mask=mask), torch_packed(x), rtol=1e-4,
                                   atol=1e-5)

    contenders = {
        "torch nn.LSTM": forward_backward(lambda v: reference(v)[0][:, -1], x,
                                          list(reference.parameters())),
        "lamina LSTM": forward_backward(lamina_lstm, x, list(lamina_lstm.parameters())),
        "torch nn.LSTM, packed": forward_backward(torch_packed, x, list(reference.parameters())),
        "lamina LSTM, right-padded mask": forward_backward(
            lambda v: lamina_lstm(v, mask=mask), x, list(lamina_lstm.parameters())),
        "lamina LSTM, step loop": forward_backward(step_loop, x, list(step_loop.parameters())),
    }
    for fn in contenders.values():  # warm-up: oneDNN primitives, allocator
        for _ in range(3):
            fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(ROUNDS):
        for name, fn in contenders.items():
            times[name].append(time_once(fn))

    baseline_of = {name: "torch nn.LSTM, packed" if "mask" in name else "torch nn.LSTM"
                   for name in times}
    print(f"LSTM({UNITS}) forward+backward on ({BATCH}, {STEPS}, {FEATURES}), "
          f"{torch.get_num_threads()} threads, median of {ROUNDS} rounds")
    for name, samples in times.items():
        median = statistics.median(samples)
        spread = np.percentile(samples, [25, 75]) * 1e3
        speed = statistics.median(times[baseline_of[name]]) / median
        print(f"  {name:32s} {median * 1e3:8.2f} ms  (IQR {spread[0]:6.2f}-{spread[1]:6.2f})  "
              f"{speed:5.2f}x the speed of {baseline_of[name]}")


if __name__ == "__main__":
    main()
