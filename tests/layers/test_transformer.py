"""Positional encodings and transformer blocks: the table (shapes, references from the sheet's
TransformerBlock, parameter counts, gradcheck, config and save/load), masks, causality, and
composition into BERT-like and GPT-like models."""

from __future__ import annotations

import math

import pytest
import torch

import lamina
from lamina import layers
from lamina.errors import ShapeError

from support.layer_test import CallCase, call_layer_tests

from .attention_references import (
    decoder_reference,
    encoder_reference,
    sheet_positional_encoding,
)


def _randn(g, *shape):
    return torch.randn(*shape, generator=g)


def _padding(lengths, total):
    return torch.arange(total)[None, :] < torch.tensor(lengths)[:, None]


def _weights(layer, like):
    return [torch.as_tensor(w, dtype=like.dtype) for w in layer.get_weights()]


def formula_positional_encoding(seq_len, d_model, dtype):
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d))."""
    pos = torch.arange(seq_len, dtype=dtype)[:, None]
    two_i = torch.arange(d_model, dtype=dtype)[None, :] // 2 * 2
    angle = pos / 10000 ** (two_i / d_model)
    even = torch.arange(d_model)[None, :] % 2 == 0
    return torch.where(even, torch.sin(angle), torch.cos(angle))[None]


def positional_encoding_reference(layer, inputs, start_index=0):
    pe = formula_positional_encoding(start_index + inputs.shape[1], inputs.shape[2], inputs.dtype)
    return inputs + pe[:, start_index:]


def sine_encoding_reference(layer, inputs, start_index=0):
    pe = formula_positional_encoding(start_index + inputs.shape[1], inputs.shape[2], inputs.dtype)
    return pe[:, start_index:].expand(inputs.shape)


def position_embedding_reference(layer, inputs, start_index=0):
    table = _weights(layer, inputs)[0]
    return table[start_index:start_index + inputs.shape[1]].expand(inputs.shape)


def positional_embedding_reference(layer, tokens):
    """The sheet's BERT-like embeddings: token_embedding(x) + position_embedding(positions)."""
    token_table, position_table = _weights(layer, layer.token_embeddings.embeddings)
    positions = torch.arange(tokens.shape[1]).unsqueeze(0).expand_as(tokens)
    return torch.nn.functional.embedding(tokens, token_table) + \
        torch.nn.functional.embedding(positions, position_table)


# Keras-hub's parameter counts: MHA 4 * (h*h + h) for hidden h (heads * head_dim = h), two
# LayerNorms 2 * 2h, feed-forward (h*d_ff + d_ff) + (d_ff*h + h).
ENCODER_PARAMS = 4 * (8 * 8 + 8) + 2 * 16 + (8 * 16 + 16) + (16 * 8 + 8)
CROSS_PARAMS = (8 * 8 + 8) + 2 * (6 * 8 + 8) + (8 * 8 + 8) + 16  # encoder dim 6

CASES = [
    CallCase("positional_encoding", lambda: layers.PositionalEncoding(),
             lambda g: ((_randn(g, 2, 5, 6),), {}), positional_encoding_reference,
             [(2, 5, 6)], params=0),
    CallCase("positional_encoding_odd_start", lambda: layers.PositionalEncoding(),
             lambda g: ((_randn(g, 2, 3, 4),), {"start_index": 2}), positional_encoding_reference,
             [(2, 3, 4)], params=0),
    CallCase("sine_position_encoding", lambda: layers.SinePositionEncoding(),
             lambda g: ((_randn(g, 2, 5, 6),), {}), sine_encoding_reference, [(2, 5, 6)], params=0),
    CallCase("position_embedding", lambda: layers.PositionEmbedding(sequence_length=7),
             lambda g: ((_randn(g, 2, 5, 6),), {"start_index": 1}), position_embedding_reference,
             [(2, 5, 6)], params=7 * 6),
    CallCase("positional_embedding", lambda: layers.PositionalEmbedding(7, 11, 6, mask_zero=True),
             lambda g: ((torch.randint(0, 11, (2, 5), generator=g),), {}),
             positional_embedding_reference, [(2, 5, 6)], params=11 * 6 + 7 * 6),
    CallCase("encoder_post_norm", lambda: layers.TransformerEncoder(16, 2),
             lambda g: ((_randn(g, 2, 5, 8),), {}), encoder_reference, [(2, 5, 8)],
             params=ENCODER_PARAMS),
    CallCase("encoder_pre_norm_masks_scores",
             lambda: layers.TransformerEncoder(16, 2, normalize_first=True),
             lambda g: ((_randn(g, 2, 5, 8),),
                        {"padding_mask": _padding([5, 3], 5),
                         "attention_mask": (torch.rand(2, 5, 5, generator=g) > 0.3)
                         | torch.eye(5, dtype=torch.bool),
                         "return_attention_scores": True}),
             encoder_reference, [(2, 5, 8), (2, 2, 5, 5)], params=ENCODER_PARAMS,
             valid=lambda x, padding_mask, **kw: [padding_mask[..., None],
                                                  padding_mask[:, None, :, None]]),
    CallCase("decoder_only", lambda: layers.TransformerDecoder(16, 2),
             lambda g: ((_randn(g, 2, 5, 8),), {}), decoder_reference, [(2, 5, 8)],
             params=ENCODER_PARAMS),
    CallCase("decoder_cross_masks",
             lambda: layers.TransformerDecoder(16, 2),
             lambda g: ((_randn(g, 2, 5, 8), _randn(g, 2, 4, 6)),
                        {"decoder_padding_mask": _padding([5, 2], 5),
                         "encoder_padding_mask": _padding([4, 1], 4)}),
             decoder_reference, [(2, 5, 8)], params=ENCODER_PARAMS + CROSS_PARAMS,
             valid=lambda x, memory, decoder_padding_mask, **kw: [decoder_padding_mask[..., None]]),
    CallCase("decoder_pre_norm_cross_not_causal",
             lambda: layers.TransformerDecoder(16, 2, normalize_first=True),
             lambda g: ((_randn(g, 2, 5, 8), _randn(g, 2, 4, 6)), {"use_causal_mask": False}),
             decoder_reference, [(2, 5, 8)], params=ENCODER_PARAMS + CROSS_PARAMS),
]


globals().update(call_layer_tests(CASES))


# ---------------------------------------------------------------- the sheet's positional encoding


@pytest.mark.parametrize("seq_len, d_model", [(1, 2), (7, 4), (50, 16), (3, 512)])
def test_positional_encoding_is_the_sheets(seq_len, d_model) -> None:
    got = layers.get_positional_encoding(seq_len, d_model)
    assert got.shape == (1, seq_len, d_model) and got.dtype == torch.float32
    assert torch.equal(got, sheet_positional_encoding(seq_len, d_model))


def test_positional_encoding_closed_form() -> None:
    # PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d)).
    pe = layers.get_positional_encoding(4, 6, dtype="float64")[0]
    for pos in range(4):
        for i in range(3):
            angle = pos / 10000 ** (2 * i / 6)
            assert pe[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-12)
            assert pe[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-12)
    assert pe[0].tolist() == [0.0, 1.0] * 3


def test_positional_encoding_odd_width_and_wavelength() -> None:
    pe = layers.get_positional_encoding(5, 5, max_wavelength=100.0, dtype="float64")[0]
    positions = torch.arange(5, dtype=torch.float64)
    torch.testing.assert_close(pe[:, 4], torch.sin(positions / 100 ** (4 / 5)))
    torch.testing.assert_close(pe[:, 3], torch.cos(positions / 100 ** (2 / 5)))


def test_encoding_layers_follow_device_dtype_and_length() -> None:
    layer = layers.PositionalEncoding()
    short, long = torch.zeros(1, 3, 4), torch.zeros(2, 9, 4, dtype=torch.float64)
    torch.testing.assert_close(layer(short), sheet_positional_encoding(3, 4))
    got = layer(long)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, layers.get_positional_encoding(9, 4, dtype="float64").expand(2, 9, 4))
    torch.testing.assert_close(layer(short), sheet_positional_encoding(3, 4))
    sine = layers.SinePositionEncoding()
    encoding = sine(short)
    encoding += 1.0
    torch.testing.assert_close(sine(short), sheet_positional_encoding(3, 4))
    masked = torch.zeros(2, 3, 4)
    masked._keras_mask = _padding([3, 1], 3)
    assert torch.equal(layer(masked)._keras_mask, masked._keras_mask)


# ---------------------------------------------------------------- masks and causality


def _tokens(lengths, total, seed=0, vocabulary=30):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, vocabulary, (len(lengths), total), generator=g) * _padding(lengths, total)


def test_encoder_ignores_padding_as_each_sequence_alone() -> None:
    embedding = layers.PositionalEmbedding(8, 30, 8, mask_zero=True)
    encoder = layers.TransformerEncoder(16, 2)
    lengths, tokens = [6, 4, 1], _tokens([6, 4, 1], 6)
    batch_output = encoder(embedding(tokens))
    assert torch.equal(batch_output._keras_mask, tokens != 0)
    for row, length in enumerate(lengths):
        alone = encoder(embedding(tokens[row:row + 1, :length]))
        torch.testing.assert_close(batch_output[row:row + 1, :length], alone, atol=1e-5, rtol=1e-5)
    explicit = encoder(embedding(tokens).detach().clone(), padding_mask=tokens != 0)
    torch.testing.assert_close(explicit, batch_output)


def test_decoder_is_causal_and_ignores_encoder_padding() -> None:
    g = torch.Generator().manual_seed(1)
    decoder = layers.TransformerDecoder(16, 2)
    x, memory = torch.randn(2, 6, 8, generator=g), torch.randn(2, 4, 6, generator=g)
    encoder_mask = _padding([4, 2], 4)
    base = decoder(x, memory, encoder_padding_mask=encoder_mask)
    for t in range(5):
        changed = x.clone()
        changed[:, t + 1:] = torch.randn(2, 5 - t, 8, generator=g)
        got = decoder(changed, memory, encoder_padding_mask=encoder_mask)
        torch.testing.assert_close(got[:, :t + 1], base[:, :t + 1])
        assert not torch.allclose(got[:, t + 1:], base[:, t + 1:])
    padded_memory = memory.clone()
    padded_memory[1, 2:] = 100.0
    torch.testing.assert_close(decoder(x, padded_memory, encoder_padding_mask=encoder_mask), base)
    torch.testing.assert_close(decoder(x[1:], memory[1:, :2]), base[1:], atol=1e-5, rtol=1e-5)


def test_decoder_without_causal_mask_sees_the_future() -> None:
    decoder = layers.TransformerDecoder(16, 2)
    x = torch.randn(1, 4, 8)
    changed = x.clone()
    changed[:, 3] += 1.0
    assert not torch.allclose(decoder(x, use_causal_mask=False)[:, 0],
                              decoder(changed, use_causal_mask=False)[:, 0])


def test_blocks_train_with_dropout_and_gradients() -> None:
    encoder = layers.TransformerEncoder(16, 2, dropout=0.5)
    x = torch.randn(2, 5, 8)
    inference = encoder(x)
    torch.testing.assert_close(encoder(x), inference)
    encoder.train()
    trained = encoder(x)
    assert not torch.allclose(trained, inference)
    trained.sum().backward()
    assert all(p.grad is not None for p in encoder.parameters())


# ---------------------------------------------------------------- composition (zoo-style models)


def test_bert_like_classifier_in_a_functional_model(tmp_path) -> None:
    tokens = lamina.Input(shape=(5,), dtype="int64")
    x = layers.PositionalEmbedding(16, 30, 8, mask_zero=True)(tokens)
    x = layers.TransformerEncoder(16, 2)(x)
    x = layers.TransformerEncoder(16, 2)(x)
    x = layers.LayerNormalization(epsilon=1e-5)(x)
    outputs = layers.Dense(3)(x[:, 0])
    model = lamina.Model(tokens, outputs)
    assert outputs.shape == (None, 3)
    data = _tokens([5, 3], 5, seed=2)
    model.save(tmp_path / "bert.keras")
    loaded = lamina.models.load_model(tmp_path / "bert.keras")
    torch.testing.assert_close(loaded(data), model(data))


def test_fit_learns_with_a_transformer_classifier() -> None:
    lamina.set_random_seed(0)
    tokens = lamina.Input(shape=(6,), dtype="int64")
    x = layers.PositionalEmbedding(6, 30, 16, mask_zero=True)(tokens)
    x = layers.TransformerEncoder(32, 2, dropout=0.1)(x)
    outputs = layers.Dense(2)(x[:, 0])
    model = lamina.Model(tokens, outputs)
    model.compile(optimizer="adam", metrics=["accuracy"],
                  loss=lamina.losses.SparseCategoricalCrossentropy(from_logits=True))
    data = torch.randint(1, 30, (64, 6), generator=torch.Generator().manual_seed(0))
    labels = (data[:, 0] > 15).long()
    history = model.fit(data, labels, epochs=8, batch_size=16, verbose=0).history
    assert history["loss"][-1] < 0.7 * history["loss"][0]


def test_gpt_like_stack_in_a_sequential_model(tmp_path) -> None:
    model = lamina.Sequential([
        lamina.Input(shape=(6,), dtype="int64"),
        layers.PositionalEmbedding(6, 30, 8),
        layers.TransformerDecoder(16, 2, normalize_first=True),
        layers.TransformerDecoder(16, 2, normalize_first=True),
        layers.Dense(30),
    ])
    assert model.output_shape == (None, 6, 30)
    tokens = _tokens([6, 6], 6, seed=3)
    logits = model(tokens)
    changed = tokens.clone()
    changed[:, 4:] = (changed[:, 4:] + 1) % 30
    torch.testing.assert_close(model(changed)[:, :4], logits[:, :4])
    model.save(tmp_path / "gpt.keras")
    torch.testing.assert_close(lamina.models.load_model(tmp_path / "gpt.keras")(tokens), logits)


def test_encoder_decoder_functional_model_builds_cross_attention() -> None:
    source, target = lamina.Input(shape=(None, 8)), lamina.Input(shape=(None, 8))
    memory = layers.TransformerEncoder(16, 2)(source)
    decoder = layers.TransformerDecoder(16, 2)
    outputs = decoder(target, encoder_sequence=memory)
    model = lamina.Model([source, target], outputs)
    assert decoder.cross_attention is not None
    assert model([torch.randn(2, 3, 8), torch.randn(2, 4, 8)]).shape == (2, 4, 8)


def test_registered_names() -> None:
    from lamina._registry import lookup

    for name in ("PositionalEncoding", "SinePositionEncoding", "PositionEmbedding",
                 "PositionalEmbedding", "TransformerEncoder", "TransformerDecoder"):
        assert lookup("layer", name) is getattr(layers, name)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("make, message", [
    (lambda: layers.TransformerEncoder(0, 2), r"`intermediate_dim` must be a positive integer. Received: intermediate_dim=0"),
    (lambda: layers.TransformerEncoder(16, 0), r"`num_heads` must be a positive integer. Received: num_heads=0"),
    (lambda: layers.TransformerDecoder(16, 2, dropout=1.0), r"`dropout` must be a float in the range \[0, 1\)"),
    (lambda: layers.TransformerEncoder(16, 2, layer_norm_epsilon=0), r"`layer_norm_epsilon` must be positive"),
    (lambda: layers.PositionalEncoding(max_wavelength=0), r"`max_wavelength` must be a positive number"),
    (lambda: layers.PositionalEmbedding(0, 10, 4), r"`sequence_length` must be a positive integer"),
    (lambda: layers.get_positional_encoding(4, 0), r"`d_model` must be a positive integer. Received: d_model=0"),
    (lambda: layers.get_positional_encoding(-1, 4), r"`seq_len` must be a non-negative integer"),
])
def test_bad_arguments(make, message) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_shapes_name_the_layer() -> None:
    with pytest.raises(ValueError, match=r"'enc' \(TransformerEncoder\): the attention head size hidden_dim // num_heads is zero. The hidden dimension 3 of the input \(shape \(2, 5, 3\)\) must be at least num_heads=4"):
        layers.TransformerEncoder(8, 4, name="enc")(torch.randn(2, 5, 3))
    with pytest.raises(ShapeError, match=r"'enc2' \(TransformerEncoder\) is incompatible: expected rank 3.*\(2, 8\)"):
        layers.TransformerEncoder(8, 2, name="enc2")(torch.randn(2, 8))
    with pytest.raises(ShapeError, match=r"'dec' \(TransformerDecoder\) is incompatible: expected rank 3"):
        layers.TransformerDecoder(8, 2, name="dec")(torch.randn(2, 8))
    encoder = layers.TransformerEncoder(8, 2, name="enc3")
    x = torch.randn(2, 5, 4)
    with pytest.raises(ShapeError, match=r"'enc3' \(TransformerEncoder\): `padding_mask` must have shape \(batch, sequence\) = \(2, 5\), but received a mask of shape \(2, 4\)"):
        encoder(x, padding_mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ShapeError, match=r"`attention_mask` must have shape \(batch, target length, source length\) = \(2, 5, 5\), but received a mask of shape \(2, 5\)"):
        encoder(x, attention_mask=torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(ShapeError, match=r"'pos' \(PositionalEmbedding\) accepts sequences of at most sequence_length=4 tokens, but received an input of shape \(1, 6\)"):
        layers.PositionalEmbedding(4, 10, 3, name="pos")(torch.ones(1, 6, dtype=torch.long))
    table = layers.PositionEmbedding(4, name="table")
    with pytest.raises(ShapeError, match=r"'table' \(PositionEmbedding\) has embeddings for sequence_length=4 positions, but received an input of shape \(1, 3, 2\) \(positions 2..4\)"):
        table(torch.zeros(1, 3, 2), start_index=2)


def test_decoder_call_arguments_must_not_change() -> None:
    decoder = layers.TransformerDecoder(8, 2, name="dec")
    decoder(torch.randn(1, 3, 4))
    with pytest.raises(ValueError, match=r"'dec' \(TransformerDecoder\) was built without cross-attention.*now called with an encoder_sequence"):
        decoder(torch.randn(1, 3, 4), torch.randn(1, 2, 4))
    cross = layers.TransformerDecoder(8, 2, name="cross")
    cross(torch.randn(1, 3, 4), torch.randn(1, 2, 4))
    with pytest.raises(ValueError, match=r"was built with cross-attention.*now called without an encoder_sequence"):
        cross(torch.randn(1, 3, 4))
    with pytest.raises(ShapeError, match=r"`encoder_attention_mask` must have shape \(batch, target length, source length\) = \(1, 3, 2\)"):
        cross(torch.randn(1, 3, 4), torch.randn(1, 2, 4),
              encoder_attention_mask=torch.ones(1, 2, 3, dtype=torch.bool))
