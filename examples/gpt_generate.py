"""A character-level GPT-like model learns a short text, then generates with greedy decoding,
temperature sampling and top-k sampling.

    python examples/gpt_generate.py
"""

from __future__ import annotations

import numpy as np
import torch

import lamina
from lamina.applications import GPT

TEXT = (
    "Every lamina layer and model is a torch.nn.Module, and any nn.Module can be used as a "
    "lamina layer or trained with fit. "
)
CONTEXT = 32


def main() -> None:
    lamina.set_random_seed(0)
    chars = sorted(set(TEXT))
    index = {c: i for i, c in enumerate(chars)}
    data = np.array([index[c] for c in TEXT * 2])
    # Every window of the text, each target the window shifted by one character.
    starts = range(len(TEXT))
    x = np.stack([data[i:i + CONTEXT] for i in starts])
    y = np.stack([data[i + 1:i + CONTEXT + 1] for i in starts])

    model = GPT(vocab_size=len(chars), max_length=CONTEXT, d_model=64, num_heads=4, num_layers=2)
    model.summary()
    model.compile(optimizer=lamina.optimizers.Adam(3e-3),
                  loss=lamina.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=80, batch_size=32, verbose=0)

    prompt = torch.tensor([index[c] for c in "Every"])
    decode = lambda ids: "".join(chars[i] for i in ids.tolist())  # noqa: E731
    print("greedy:     ", decode(model.generate(prompt, 120, greedy=True)))
    print("temperature:", decode(model.generate(prompt, 120, temperature=0.8, seed=0)))
    print("top-k=3:    ", decode(model.generate(prompt, 120, temperature=1.0, top_k=3, seed=0)))


if __name__ == "__main__":
    main()
