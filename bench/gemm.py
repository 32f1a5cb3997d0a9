"""Which float32 matmul path is fastest on this CPU, and is it numerically safe for training?

Dense and Conv layers are GEMM-bound. On a CPU torch can run a float32 GEMM three ways:
- `fp32`: MKL's sgemm (torch's default CPU BLAS), IEEE float32 throughout;
- `fp32->bf16`: float32 tensors, but oneDNN rounds the inputs to bfloat16 and accumulates in
  float32 (`torch.backends.mkldnn.matmul.fp32_precision = "bf16"`, what
  `torch.set_float32_matmul_precision("medium")` selects), where the CPU has bf16 units;
- `bf16`: bfloat16 tensors end to end (what autocast gives a layer under `mixed_bfloat16`).
Each contender is timed interleaved (one call of each per round) on the shapes of a Dense
forward, its two backward GEMMs and a 3x3 Conv2d, and its error is measured against float64:
a path whose relative error is far above float32's (~1e-6) is only a fit for mixed precision,
where the user chose lower precision, not for a float32 model.

A second table answers where `mixed_bfloat16` should keep a Dense in bf16 on the CPU: one
Dense forward + backward from float32 inputs, under bf16 autocast (the casts of the input, the
kernel and the gradients included) against float32, over GEMM shapes rows x input_dim -> units.
Lamina's rule (`CPU_BF16_MIN_DENSE_MACS` in lamina/training/precision.py) keeps bf16 where
rows x input_dim x units reaches 2^24; the column "rule" says what it picks.

A third table answers which memory layout a float32 Dense kernel should be multiplied in: Keras
stores it row-major as `(in, units)`, nn.Linear as `(units, in)`, and the BLAS picks different
kernels for the two. Forward (no autograd) and forward + backward, over output widths 1-32; the
nn.Linear layout includes the per-call transposed copy Lamina makes, and "rule" is what
`Dense` picks (`_NARROW_UNITS`, `_NARROW_MIN_WORK` in lamina/layers/core.py).

Run: `python bench/gemm.py [--rounds N] [--dense-only | --layout-only]`. Prints tables of speed ratios to `fp32` and relative
errors; docs/benchmarks.md records the figures and the decisions.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import time
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

# (name, m, k, n): the MLP of bench/fit_mlp.py at batch 256, a wide Dense, and its backward GEMMs.
MATMULS = (
    ("Dense 256x784->512", 256, 784, 512),
    ("Dense 256x512->512", 256, 512, 512),
    ("Dense grad_w 512x256->784", 512, 256, 784),
    ("Dense 1024x4096->4096", 1024, 4096, 4096),
)
CONV = ("Conv2d 3x3 64->64 @32x32, batch 64", (64, 64, 32, 32), (64, 64, 3, 3))


@contextlib.contextmanager
def fp32_precision(value: str) -> Iterator[None]:
    matmul = torch.backends.mkldnn.matmul
    conv = torch.backends.mkldnn.conv
    before = matmul.fp32_precision, conv.fp32_precision
    matmul.fp32_precision = conv.fp32_precision = value
    try:
        yield
    finally:
        matmul.fp32_precision, conv.fp32_precision = before


def contenders(op: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], a: torch.Tensor,
               b: torch.Tensor) -> dict[str, Callable[[], torch.Tensor]]:
    a16, b16 = a.bfloat16(), b.bfloat16()

    def reduced() -> torch.Tensor:
        with fp32_precision("bf16"):
            return op(a, b)

    return {"fp32": lambda: op(a, b), "fp32->bf16": reduced, "bf16": lambda: op(a16, b16)}


def relative_error(result: torch.Tensor, exact: torch.Tensor) -> float:
    return float((result.double() - exact).norm() / exact.norm())


def measure(name: str, flops: float, op, a: torch.Tensor, b: torch.Tensor, rounds: int) -> None:
    runs = contenders(op, a, b)
    exact = op(a.double(), b.double())
    errors = {key: relative_error(run(), exact) for key, run in runs.items()}
    calls = max(1, int(2e9 / flops))  # about 2 GFLOP per timing, so each takes ~10-100 ms
    times: dict[str, list[float]] = {key: [] for key in runs}
    for run in runs.values():
        run()  # warm-up: oneDNN builds its kernels on the first call
    for _ in range(rounds):
        for key, run in runs.items():
            start = time.perf_counter()
            for _ in range(calls):
                run()
            times[key].append((time.perf_counter() - start) / calls)
    base = statistics.median(times["fp32"])
    cells = [f"{base / statistics.median(times[key]):5.2f}x err {errors[key]:.1e}" for key in runs]
    print(f"| {name:36s} | {flops / base / 1e9:7.1f} | " + " | ".join(cells) + " |")


# (rows, input_dim, units): the MLP's layers at batch 128 and around the rule's threshold.
DENSE_STEPS = (
    (128, 784, 128), (128, 128, 10), (128, 128, 128), (128, 64, 256), (32, 512, 512),
    (128, 256, 256), (512, 128, 128), (128, 2048, 64), (1024, 128, 128), (512, 256, 256),
    (512, 784, 128), (128, 1024, 1024),
)


def dense_step(rows: int, inputs: int, units: int, bf16: bool) -> Callable[[], None]:
    """One Dense forward + backward from a float32 input, under bf16 autocast or not."""
    x = torch.randn(rows, inputs)
    kernel = torch.randn(units, inputs, requires_grad=True)
    bias = torch.zeros(units, requires_grad=True)
    upstream = torch.randn(rows, units)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y = F.linear(x, kernel, bias)
        y.float().backward(upstream)
        kernel.grad = bias.grad = None

    return step


def interleaved_pair(runs: dict[bool, Callable[[], None]], calls: int, rounds: int,
                     clock: Callable[[], float]) -> dict[bool, list[float]]:
    """Each run's time per call in every round, the two alternating (after one warm-up call)."""
    times: dict[bool, list[float]] = {key: [] for key in runs}
    for run in runs.values():
        run()
    for _ in range(rounds):
        for key, run in runs.items():
            start = clock()
            for _ in range(calls):
                run()
            times[key].append((clock() - start) / calls)
    return times


def measure_dense(rounds: int, clock: Callable[[], float] = time.perf_counter) -> None:
    from lamina.training.precision import CPU_BF16_MIN_DENSE_MACS

    print("\n| Dense step rows x in -> units | MACs | fp32 us | bf16 speed (min-max) | rule |")
    print("|---|---:|---:|---|---|")
    for rows, inputs, units in DENSE_STEPS:
        runs = {False: dense_step(rows, inputs, units, False),
                True: dense_step(rows, inputs, units, True)}
        macs = rows * inputs * units
        calls = max(3, int(5e7 / macs))
        times = interleaved_pair(runs, calls, rounds, clock)
        speeds = sorted(a / b for a, b in zip(times[False], times[True]))
        base = statistics.median(times[False])
        rule = "bf16" if macs >= CPU_BF16_MIN_DENSE_MACS else "fp32"
        print(f"| {rows}x{inputs}->{units} | {macs / 1e6:.1f}M | {base * 1e6:.0f} | "
              f"{base / statistics.median(times[True]):.2f}x ({speeds[0]:.2f}-{speeds[-1]:.2f}) "
              f"| {rule} |", flush=True)


LAYOUT_SHAPES = ((32, 784), (128, 128), (128, 784), (1024, 128), (1024, 784))  # rows, input_dim
LAYOUT_UNITS = (1, 2, 3, 5, 8, 10, 12, 16, 32)


def layout_step(rows: int, inputs: int, units: int, linear_layout: bool,
                backward: bool) -> Callable[[], None]:
    """One Dense product on the row-major Keras kernel, or on nn.Linear's layout (copy included)."""
    x = torch.randn(rows, inputs, requires_grad=backward)
    kernel = torch.randn(inputs, units, requires_grad=backward)
    bias = torch.zeros(units, requires_grad=backward)
    upstream = torch.randn(rows, units)

    def step() -> None:
        with torch.set_grad_enabled(backward):
            y = (F.linear(x, kernel.t().contiguous(), bias) if linear_layout
                 else torch.addmm(bias, x, kernel))
        if backward:
            y.backward(upstream)
            x.grad = kernel.grad = bias.grad = None

    return step


def measure_layouts(rounds: int, clock: Callable[[], float] = time.perf_counter) -> None:
    from lamina.layers.core import _NARROW_MIN_WORK, _NARROW_UNITS

    print("\n| rows x in -> units | row-major fwd us | nn.Linear layout fwd | fwd+bwd us | "
          "nn.Linear layout fwd+bwd | rule |")
    print("|---|---:|---:|---:|---:|---|")
    for rows, inputs in LAYOUT_SHAPES:
        for units in LAYOUT_UNITS:
            cells = []
            for backward in (False, True):
                runs = {layout: layout_step(rows, inputs, units, layout, backward)
                        for layout in (False, True)}
                calls = max(5, int(2e7 / (rows * inputs * units * (3 if backward else 1))))
                times = interleaved_pair(runs, calls, rounds, clock)
                speeds = sorted(a / b for a, b in zip(times[False], times[True]))
                cells += [f"{statistics.median(times[False]) * 1e6:.0f}",
                          f"{statistics.median(speeds):.2f}x ({speeds[0]:.2f}-{speeds[-1]:.2f})"]
            picked = units in _NARROW_UNITS and rows * inputs >= _NARROW_MIN_WORK
            print(f"| {rows}x{inputs}->{units} | {' | '.join(cells)} | "
                  f"{'nn.Linear' if picked else 'row-major'} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--dense-only", action="store_true",
                        help="only the Dense step table (the bf16 fallback rule)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="cpu: the Dense table counts this process's CPU seconds (a "
                             "machine shared with other jobs)")
    parser.add_argument("--layout-only", action="store_true",
                        help="only the kernel-layout table (Dense's narrow-output rule)")
    parser.add_argument("--threads", type=int, default=None, help="torch's thread count")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.manual_seed(0)
    flags = open("/proc/cpuinfo").read() if platform.system() == "Linux" else ""
    units = [flag for flag in ("avx512_bf16", "amx_bf16", "avx512f", "avx2") if f" {flag}" in flags]
    print(f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"flags {' '.join(units)}; torch {torch.__version__}")
    if args.dense_only:
        measure_dense(args.rounds, clock)
        return
    if args.layout_only:
        measure_layouts(args.rounds, clock)
        return
    print("| GEMM | fp32 GFLOP/s | fp32 | fp32->bf16 | bf16 |")
    print("|---|---|---|---|---|")
    for name, m, k, n in MATMULS:
        measure(name, 2.0 * m * k * n, torch.mm, torch.randn(m, k), torch.randn(k, n) / k**0.5,
                args.rounds)
    name, image, kernel = CONV
    flops = 2.0 * image[0] * kernel[0] * kernel[1] * kernel[2] * kernel[3] * image[2] * image[3]
    measure(name, flops, lambda x, w: F.conv2d(x, w, padding=1), torch.randn(image),
            torch.randn(kernel) / (kernel[1] * 9) ** 0.5, args.rounds)
    measure_dense(args.rounds, clock)
    measure_layouts(args.rounds, clock)


if __name__ == "__main__":
    main()
