"""A GPT-like causal language model (Radford et al., 2018/2019): token + learned position
embeddings, pre-norm decoder blocks with causal self-attention (GPT-2's layout, GELU
feed-forward), a final LayerNorm and a linear head to next-token logits, with `generate()`
(greedy, temperature and top-k sampling)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lamina._registry import register
from lamina.errors import ShapeError
from lamina.layers.core import Dense, Dropout, check_positive_int, check_rate
from lamina.layers.normalization import LayerNormalization
from lamina.layers.transformer import PositionalEmbedding, TransformerDecoder
from lamina.models.model import Model

Tensor = torch.Tensor


@register("GPT")
class GPT(Model):
    """Decoder-only transformer language model: `logits = lm_head(norm(blocks(embed(tokens))))`,
    where position t sees only tokens <= t.

    Args:
        vocab_size: number of token ids.
        max_length: longest context (the position table's size); `generate` keeps the last
            `max_length` tokens as context.
        d_model: embedding and hidden size.
        num_heads: attention heads (`d_model` must be divisible by it).
        num_layers: decoder blocks.
        d_ff: feed-forward size (default `4 * d_model`, as GPT-2).
        dropout: rate in the embeddings, attention and residual branches.

    Input `(batch, sequence)` token ids, sequence <= max_length; output `(batch, sequence,
    vocab_size)` next-token logits (train with
    `SparseCategoricalCrossentropy(from_logits=True)` against the inputs shifted by one).
    Built at construction, since the input shape is known from the arguments.

    >>> model = GPT(vocab_size=20, max_length=8, d_model=16, num_heads=2, num_layers=1)
    >>> model(torch.zeros(1, 5, dtype=torch.long)).shape
    torch.Size([1, 5, 20])
    """

    def __init__(self, vocab_size: int, max_length: int, d_model: int = 128, num_heads: int = 4,
                 num_layers: int = 4, d_ff: int | None = None, dropout: float = 0.0,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.vocab_size = check_positive_int("vocab_size", vocab_size)
        self.max_length = check_positive_int("max_length", max_length)
        self.d_model = check_positive_int("d_model", d_model)
        self.num_heads = check_positive_int("num_heads", num_heads)
        self.num_layers = check_positive_int("num_layers", num_layers)
        if d_model % num_heads:
            raise ValueError(
                f"`d_model` must be divisible by `num_heads` (each head has d_model // num_heads "
                f"features). Received: d_model={d_model}, num_heads={num_heads}."
            )
        self.d_ff = 4 * d_model if d_ff is None else check_positive_int("d_ff", d_ff)
        self._d_ff_argument = d_ff
        self.dropout = check_rate("dropout", dropout)
        self.embeddings = PositionalEmbedding(max_length, vocab_size, d_model, name="embeddings")
        self.embeddings_dropout = Dropout(self.dropout, name="embeddings_dropout")
        self.blocks = [
            TransformerDecoder(self.d_ff, num_heads, dropout=self.dropout, activation="gelu",
                               normalize_first=True, name=f"transformer_block_{index}")
            for index in range(num_layers)
        ]
        self.norm = LayerNormalization(epsilon=1e-5, name="norm")
        self.lm_head = Dense(vocab_size, name="lm_head")
        self._maybe_build((None, max_length))

    def build(self, input_shape):
        length = input_shape[1]
        self.embeddings.build_from_config_shape((None, length))
        hidden = (None, length, self.d_model)
        for block in self.blocks:
            block.build_from_config_shape(hidden)
        self.norm.build_from_config_shape(hidden)
        self.lm_head.build_from_config_shape(hidden)
        self._output_shape = self.compute_output_shape(input_shape)

    def call(self, inputs, training=None):
        x = self.embeddings_dropout(self.embeddings(inputs), training=training)
        for block in self.blocks:
            x = block(x, training=training)
        return self.lm_head(self.norm(x))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.vocab_size,)

    @torch.no_grad()
    def generate(self, prompt: Any, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, greedy: bool = False,
                 seed: int | None = None) -> Tensor:
        """Extend `prompt` by `max_new_tokens` tokens, one at a time, each conditioned on the
        last `max_length` tokens.

        Each step picks from the last position's logits z: `greedy` takes `argmax(z)`; otherwise
        a token is sampled from `softmax(z / temperature)`, restricted to the `top_k` most
        likely tokens when `top_k` is given (lower temperatures sharpen the distribution).

        Args:
            prompt: token ids, `(batch, length)` or `(length,)`, length >= 1.
            max_new_tokens: number of tokens to append.
            temperature: > 0; divides the logits before sampling.
            top_k: sample among the k most likely tokens only.
            greedy: take the most likely token (temperature and top_k do not apply).
            seed: makes sampling reproducible.

        Returns: the prompt followed by the new tokens, an int64 tensor of the prompt's rank.
        """
        tokens = torch.as_tensor(np.asarray(prompt) if not isinstance(prompt, Tensor) else prompt)
        is_integer = not (tokens.dtype.is_floating_point or tokens.dtype == torch.bool)
        if not is_integer or tokens.ndim not in (1, 2) or tokens.shape[-1] == 0:
            raise ShapeError(
                f"GPT.generate: `prompt` must hold integer token ids of shape (batch, length) or "
                f"(length,), with length >= 1. Received: a {tokens.dtype} tensor of shape "
                f"{tuple(tokens.shape)}."
            )
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or \
                max_new_tokens < 0:
            raise ValueError(f"`max_new_tokens` must be a non-negative integer. Received: "
                             f"max_new_tokens={max_new_tokens!r}.")
        if not greedy and not temperature > 0:
            raise ValueError(f"`temperature` must be positive (use greedy=True for the most "
                             f"likely token). Received: temperature={temperature!r}.")
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or
                                  not 1 <= top_k <= self.vocab_size):
            raise ValueError(f"`top_k` must be an integer in [1, vocab_size={self.vocab_size}]. "
                             f"Received: top_k={top_k!r}.")
        squeeze = tokens.ndim == 1
        device = self.lm_head.kernel.device
        tokens = tokens.reshape(-1, tokens.shape[-1]).to(device=device, dtype=torch.long)
        generator = None
        if seed is not None:
            generator = torch.Generator(device=device)
            generator.manual_seed(seed)
        was_training = self.training
        self.train(False)
        try:
            for _ in range(max_new_tokens):
                logits = self(tokens[:, -self.max_length:])[:, -1, :]
                if greedy:
                    next_token = logits.argmax(dim=-1, keepdim=True)
                else:
                    logits = logits / temperature
                    if top_k is not None:
                        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
                        logits = logits.masked_fill(logits < kth, float("-inf"))
                    next_token = torch.multinomial(logits.softmax(dim=-1), 1, generator=generator)
                tokens = torch.cat([tokens, next_token], dim=1)
        finally:
            self.train(was_training)
        return tokens[0] if squeeze else tokens

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size,
                "max_length": self.max_length, "d_model": self.d_model,
                "num_heads": self.num_heads, "num_layers": self.num_layers,
                "d_ff": self._d_ff_argument, "dropout": self.dropout}


register("GPT", kind="model")(GPT)
