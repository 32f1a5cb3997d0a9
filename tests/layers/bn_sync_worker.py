"""Run in forked processes by test_normalization: one half of a batch per process."""

from __future__ import annotations

import numpy as np
import torch


def run(rank: int, world: int, init_file: str, data: np.ndarray, gamma: np.ndarray,
        beta: np.ndarray, upstream: np.ndarray, results) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}",
                                         rank=rank, world_size=world)
    try:
        from lamina import layers

        layer = layers.BatchNormalization(momentum=0.5, synchronized=True, dtype="float64")
        part = np.array_split(data, world)[rank]
        x = torch.tensor(part, requires_grad=True)
        layer(x[:1])
        layer.set_weights([gamma, beta, np.zeros_like(gamma), np.ones_like(gamma)])
        layer.train()
        outputs = layer(x, training=True)
        (outputs * torch.as_tensor(np.array_split(upstream, world)[rank])).sum().backward()
        results.put((rank, outputs.detach().numpy(), x.grad.numpy(),
                     layer.gamma.grad.numpy(), layer.get_weights()[2], layer.get_weights()[3]))
    finally:
        torch.distributed.destroy_process_group()
