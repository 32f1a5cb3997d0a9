"""Is a small Lamina CNN (channels_last, Keras layers) as fast as the same CNN in raw torch?

Conv2D(32, 3x3, relu, same) -> MaxPooling2D -> Conv2D(64, 3x3, relu, same) -> MaxPooling2D ->
Flatten -> Dense(10), forward + backward on (batch, 28, 28, 1) batches, against nn.Conv2d & co.
on NCHW batches with identical weights (checked: the outputs agree). Repetitions alternate
between the two contenders in one process; medians are compared. Prints
`speed ratio = torch time / lamina time` (>= 0.9 is the target; > 1 means Lamina is faster).

    python bench/cnn_layers.py [--batch-size 128] [--repeats 30] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import lamina
from lamina import layers


def lamina_model() -> lamina.models.Sequential:
    return lamina.models.Sequential([
        lamina.Input((28, 28, 1)),
        layers.Conv2D(32, (3, 3), activation="relu", padding="same"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu", padding="same"),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dense(10),
    ])


def torch_model_like(model: lamina.models.Sequential) -> nn.Sequential:
    """The same network on NCHW with the Lamina model's weights (Keras layouts converted)."""
    reference = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 10),
    )
    kernel1, bias1, kernel2, bias2, dense, dense_bias = (
        torch.as_tensor(w) for w in model.get_weights())
    with torch.no_grad():
        reference[0].weight.copy_(kernel1.permute(3, 2, 0, 1))
        reference[0].bias.copy_(bias1)
        reference[3].weight.copy_(kernel2.permute(3, 2, 0, 1))
        reference[3].bias.copy_(bias2)
        # Keras flattens (h, w, c); torch flattens (c, h, w).
        reference[7].weight.copy_(dense.reshape(7, 7, 64, 10).permute(3, 2, 0, 1).reshape(10, -1))
        reference[7].bias.copy_(dense_bias)
    return reference


def step_time(model: nn.Module, batch: torch.Tensor) -> float:
    start = time.perf_counter()
    model(batch).square().mean().backward()
    for parameter in model.parameters():
        parameter.grad = None
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    ours = lamina_model()
    theirs = torch_model_like(ours)
    ours.train()
    theirs.train()
    nhwc = torch.rand(args.batch_size, 28, 28, 1)
    nchw = nhwc.permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        torch.testing.assert_close(ours(nhwc), theirs(nchw), atol=1e-4, rtol=1e-4)

    for _ in range(args.warmup):
        step_time(ours, nhwc)
        step_time(theirs, nchw)
    lamina_times, torch_times = [], []
    for _ in range(args.repeats):
        lamina_times.append(step_time(ours, nhwc))
        torch_times.append(step_time(theirs, nchw))

    lamina_ms = statistics.median(lamina_times) * 1e3
    torch_ms = statistics.median(torch_times) * 1e3
    print(f"small CNN forward+backward, batch {args.batch_size}, {torch.get_num_threads()} "
          f"thread(s), median of {args.repeats}")
    print(f"  lamina (channels_last, Keras layers): {lamina_ms:8.2f} ms")
    print(f"  torch  (NCHW, nn.Conv2d & co.):       {torch_ms:8.2f} ms")
    print(f"  speed ratio (torch / lamina): {torch_ms / lamina_ms:.2f}x (target >= 0.9x)")


if __name__ == "__main__":
    main()
