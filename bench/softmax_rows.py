"""Softmax over short rows: torch's CPU kernel against the rows padded to a whole vector.

torch's float32 CPU kernels for softmax, log_softmax and cross_entropy over the last axis take a
row shorter than one SIMD vector element by element. Lamina pads such rows with -inf where that
pays (lamina/_short_softmax.py). Each cell times torch's kernel and the padded path
interleaved, forward only and forward + backward, over rows x classes; "rule" says what Lamina
picks without a gradient / with one.

Run: `python bench/softmax_rows.py [--rounds N] [--clock cpu]`; docs/benchmarks.md ("Short
softmax rows") records the figures and the decision. `ATEN_CPU_CAPABILITY=avx2` in the
environment measures the AVX2 kernels on an AVX-512 machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
import torch.nn.functional as F

from gemm import interleaved_pair
from lamina import _short_softmax

ROWS = (64, 128, 256, 512, 1024, 4096)
CLASSES = (2, 3, 5, 10, 15, 16, 17, 100)


def kernel_step(kind: str, rows: int, classes: int, padded: bool,
                backward: bool) -> Callable[[], None]:
    """One softmax or cross-entropy call, on torch's kernel or on rows padded to the vector."""
    width = _short_softmax._vector_width() or 16
    pad = (-classes) % width
    x = torch.randn(rows, classes, requires_grad=backward)
    labels = torch.randint(0, classes, (rows,))
    upstream = torch.randn(rows, classes)

    def forward() -> torch.Tensor:
        if kind == "cross_entropy":
            if not padded:
                return F.cross_entropy(x, labels)
            return F.nll_loss(_short_softmax._on_vector_path(torch.log_softmax, x, pad), labels)
        if not padded:
            return torch.softmax(x, dim=-1)
        return _short_softmax._on_vector_path(torch.softmax, x, pad).contiguous()

    def step() -> None:
        with torch.set_grad_enabled(backward):
            y = forward()
        if backward:
            y.backward(None if y.ndim == 0 else upstream)
            x.grad = None

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    args = parser.parse_args()
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, kernels {torch.backends.cpu.get_cpu_capability()}, "
          f"vector width {_short_softmax._vector_width()} floats, 1 thread; padded time / torch's, "
          "median (range)")
    print("\n| kernel | rows x classes | torch fwd us | padded fwd | torch fwd+bwd us | "
          "padded fwd+bwd | rule without / with grad |")
    print("|---|---|---:|---:|---:|---:|---|")
    for kind in ("cross_entropy", "softmax"):
        for rows in ROWS:
            for classes in CLASSES:
                cells = []
                for backward in (False, True):
                    runs = {padded: kernel_step(kind, rows, classes, padded, backward)
                            for padded in (False, True)}
                    calls = max(5, int(3e5 / (rows * classes)))
                    times = interleaved_pair(runs, calls, args.rounds, clock)
                    ratios = sorted(p / t for t, p in zip(times[False], times[True]))
                    cells += [f"{statistics.median(times[False]) * 1e6:.1f}",
                              f"{statistics.median(ratios):.2f} ({ratios[0]:.2f}-{ratios[-1]:.2f})"]
                rules = [_short_softmax.padding(torch.empty(rows, classes, requires_grad=grad))
                         for grad in (False, True)]
                rule = " / ".join("padded" if pad else "torch" for pad in rules)
                print(f"| {kind} | {rows}x{classes} | {' | '.join(cells)} | {rule} |", flush=True)


if __name__ == "__main__":
    main()
