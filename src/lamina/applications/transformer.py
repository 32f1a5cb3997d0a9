"""The BERT-like encoder classifier (`TransformerModel`) of the reference PyTorch code
(docs/provenance.md): token + learned position embeddings, dropout, N post-norm transformer
blocks (its `TransformerBlock`), a final LayerNorm, and a dense classifier on the first
([CLS]) position.

BERT's two other input-side parts are options: segment (token type) embeddings
(`type_vocab_size=2`, a second input of segment ids) and the tanh `pooler` on [CLS]. With both and
BERT-base's sizes (`vocab_size=30522, d_model=768, num_heads=12, num_layers=12, d_ff=3072,
max_seq_length=512`) the encoder has BERT-base's 109,482,240 parameters plus the classifier.
"""

from __future__ import annotations

from typing import Any

from lamina._registry import register
from lamina.layers.core import Dense, Dropout, Embedding, check_positive_int, check_rate
from lamina.layers.merging import Add
from lamina.layers.normalization import LayerNormalization
from lamina.layers.transformer import PositionalEmbedding, TransformerEncoder
from lamina.models.functional import Input
from lamina.models.model import Model


@register("TransformerModel", kind="model")
def TransformerModel(vocab_size: int, d_model: int, num_heads: int, num_layers: int, d_ff: int,
                     max_seq_length: int, num_classes: int, *, dropout: float = 0.1,
                     type_vocab_size: int = 0, pooler: bool = False, mask_zero: bool = False,
                     classifier_activation: Any = None,
                     name: str = "transformer_model") -> Model:
    """The reference `TransformerModel(vocab_size, d_model, num_heads, num_layers, d_ff,
    max_seq_length, num_classes)` as a functional model.

    Args:
        vocab_size, d_model, num_heads, num_layers, d_ff, max_seq_length, num_classes: the
            reference's. `d_model` must be divisible by `num_heads` (heads of
            `d_model // num_heads`).
        dropout: (keyword-only) after the embeddings and in every block (the reference's 0.1).
        type_vocab_size: (keyword-only) number of segment types; > 0 adds BERT's segment
            embeddings and a second input `segment_ids`.
        pooler: (keyword-only) BERT's `Dense(d_model, tanh)` on [CLS] before the classifier.
        mask_zero: (keyword-only) token 0 is padding: attention ignores padded positions.
        classifier_activation: (keyword-only) activation of the classifier (None: logits, as
            the reference).
        name: (keyword-only) the model's name.

    Inputs: `token_ids (batch, sequence)` integers, sequence <= max_seq_length (and
    `segment_ids` of the same shape with `type_vocab_size`). Output: `(batch, num_classes)`.

    >>> TransformerModel(100, 16, 2, 2, 32, 10, 3).output_shape
    (None, 3)
    """
    for argument, value in (("vocab_size", vocab_size), ("d_model", d_model),
                            ("num_heads", num_heads), ("num_layers", num_layers), ("d_ff", d_ff),
                            ("max_seq_length", max_seq_length), ("num_classes", num_classes)):
        check_positive_int(argument, value)
    if d_model % num_heads:
        raise ValueError(
            f"`d_model` must be divisible by `num_heads` (each head has d_model // num_heads "
            f"features). Received: d_model={d_model}, num_heads={num_heads}."
        )
    check_rate("dropout", dropout)
    if isinstance(type_vocab_size, bool) or not isinstance(type_vocab_size, int) or \
            type_vocab_size < 0:
        raise ValueError(
            "`type_vocab_size` must be a non-negative integer (0: no segment embeddings). "
            f"Received: type_vocab_size={type_vocab_size!r}."
        )
    # The sequence axis is fixed at max_seq_length so shape inference never probes longer
    # sequences than the position table holds; shorter sequences run all the same.
    tokens = Input(shape=(max_seq_length,), dtype="int64", name="token_ids")
    inputs: Any = tokens
    x = PositionalEmbedding(max_seq_length, vocab_size, d_model, mask_zero=mask_zero,
                            name="embeddings")(tokens)
    if type_vocab_size:
        segments = Input(shape=(max_seq_length,), dtype="int64", name="segment_ids")
        inputs = [tokens, segments]
        segment_embedding = Embedding(type_vocab_size, d_model, name="segment_embeddings")
        x = Add(name="add_segments")([x, segment_embedding(segments)])
    x = Dropout(dropout, name="embeddings_dropout")(x)
    for index in range(num_layers):
        x = TransformerEncoder(d_ff, num_heads, dropout=dropout,
                               name=f"transformer_block_{index}")(x)
    x = LayerNormalization(epsilon=1e-5, name="norm")(x)
    x = x[:, 0]  # the [CLS] (first) position
    if pooler:
        x = Dense(d_model, activation="tanh", name="pooler")(x)
    outputs = Dense(num_classes, activation=classifier_activation, name="classifier")(x)
    return Model(inputs, outputs, name=name)
