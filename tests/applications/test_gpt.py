"""The GPT-like model memorises a short text and generates it back; greedy, temperature and
top-k decoding do what their definitions say."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lamina
from lamina.applications import GPT
from lamina.errors import ShapeError

TEXT = "lamina runs keras on torch. "
CHARS = sorted(set(TEXT))
INDEX = {c: i for i, c in enumerate(CHARS)}
CONTEXT = 12


def _encode(text: str) -> list[int]:
    return [INDEX[c] for c in text]


def _decode(ids) -> str:
    return "".join(CHARS[i] for i in ids)


@pytest.fixture(scope="module")
def trained() -> GPT:
    lamina.set_random_seed(0)
    data = np.array(_encode(TEXT * 2))
    windows = len(TEXT)
    x = np.stack([data[i:i + CONTEXT] for i in range(windows)])
    y = np.stack([data[i + 1:i + CONTEXT + 1] for i in range(windows)])
    model = GPT(len(CHARS), CONTEXT, d_model=32, num_heads=2, num_layers=1)
    model.compile(optimizer=lamina.optimizers.Adam(1e-2),
                  loss=lamina.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=60, batch_size=windows, verbose=0)
    return model


def test_memorises_and_generates_the_text_back(trained):
    prompt = torch.tensor(_encode("lam"))
    # Longer than the context: generation keeps the last `max_length` tokens.
    out = trained.generate(prompt, len(TEXT) + 10, greedy=True)
    assert out.shape == (3 + len(TEXT) + 10,)
    assert _decode(out.tolist()) == (TEXT * 2)[:len(out)]


def test_top_k_of_one_is_greedy_and_seeds_reproduce(trained):
    prompt = torch.tensor([_encode("keras"), _encode("torch")])
    greedy = trained.generate(prompt, 8, greedy=True)
    assert torch.equal(trained.generate(prompt, 8, top_k=1, seed=3), greedy)
    first = trained.generate(prompt, 8, temperature=2.0, seed=7)
    assert torch.equal(trained.generate(prompt, 8, temperature=2.0, seed=7), first)


def test_top_k_samples_only_among_the_k_most_likely(trained):
    prompt = torch.tensor([_encode("runs")] * 64)
    out = trained.generate(prompt, 3, temperature=5.0, top_k=2, seed=0)
    with torch.no_grad():
        for step in range(3):
            context = out[:, :4 + step]
            logits = trained(context)[:, -1, :]
            allowed = torch.topk(logits, 2, dim=-1).indices
            chosen = out[:, 4 + step:5 + step]
            assert (allowed == chosen).any(dim=1).all()


def test_temperature_samples_from_the_softened_distribution(trained):
    prompt = torch.tensor([_encode("on")] * 4000)
    temperature = 3.0
    out = trained.generate(prompt, 1, temperature=temperature, seed=1)[:, -1]
    with torch.no_grad():
        expected = torch.softmax(trained(prompt[:1])[0, -1] / temperature, dim=-1)
    observed = torch.bincount(out, minlength=len(CHARS)).float() / len(out)
    # 4000 draws: each frequency within ~4 standard errors of softmax(z / T).
    tolerance = 4 * (expected * (1 - expected) / 4000).sqrt() + 1e-3
    assert torch.all((observed - expected).abs() < tolerance)


def test_generate_argument_errors(trained):
    prompt = torch.tensor(_encode("lam"))
    with pytest.raises(ShapeError, match=r"`prompt` must hold integer token ids .* Received: a "
                                         r"torch.float32 tensor of shape \(3,\)"):
        trained.generate(prompt.float(), 2)
    with pytest.raises(ShapeError, match=r"length >= 1"):
        trained.generate(torch.zeros(1, 0, dtype=torch.long), 2)
    with pytest.raises(ValueError, match=r"`max_new_tokens` must be a non-negative integer"):
        trained.generate(prompt, -1)
    with pytest.raises(ValueError, match=r"`temperature` must be positive .*temperature=0"):
        trained.generate(prompt, 2, temperature=0)
    with pytest.raises(ValueError, match=rf"`top_k` must be an integer in \[1, vocab_size="
                                         rf"{len(CHARS)}\]. Received: top_k=0"):
        trained.generate(prompt, 2, top_k=0)
    assert torch.equal(trained.generate(prompt.numpy(), 0), prompt)


def test_constructor_errors():
    with pytest.raises(ValueError, match=r"`d_model` must be divisible by `num_heads`.*d_model=10, "
                                         r"num_heads=4"):
        GPT(20, 8, d_model=10, num_heads=4)
    with pytest.raises(ValueError, match=r"`vocab_size` must be a positive integer"):
        GPT(0, 8)
    with pytest.raises(ValueError, match=r"`dropout` must be a float in the range \[0, 1\)"):
        GPT(20, 8, dropout=1.5)


def test_longer_inputs_than_the_context_are_refused():
    model = GPT(20, 4, d_model=8, num_heads=2, num_layers=1)
    with pytest.raises(ShapeError, match=r"sequence_length=4"):
        model(torch.zeros(1, 6, dtype=torch.long))
