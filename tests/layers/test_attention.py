"""MultiHeadAttention, Attention and AdditiveAttention: the table (shapes, references, parameter
counts, gradcheck, config and save/load) and the behaviours the sheet and Keras promise."""

from __future__ import annotations

import math

import pytest
import torch

import lamina
from lamina import layers
from lamina.errors import ShapeError

from support.layer_test import CallCase, call_layer_tests, randomize

from .attention_references import (
    additive_reference,
    luong_reference,
    mha_einsum_reference,
    mha_reference,
    sheet_scaled_dot_product_attention,
)


def _randn(g, *shape):
    return torch.randn(*shape, generator=g)


def _attention_mask(g, batch, target, source):
    mask = torch.rand(batch, target, source, generator=g) > 0.4
    mask[..., 0] = True  # every query keeps at least one key
    return mask


def _padding(lengths, total):
    return torch.arange(total)[None, :] < torch.tensor(lengths)[:, None]


# Keras's parameter count of MultiHeadAttention: per projection dim * heads * depth + heads * depth,
# output heads * value_dim * out + out.
CASES = [
    CallCase("mha_self", lambda: layers.MultiHeadAttention(num_heads=2, key_dim=3),
             lambda g: ((x := _randn(g, 2, 4, 6), x), {}), mha_reference,
             [(2, 4, 6)], params=4 * (6 * 2 * 3 + 2 * 3)),
    CallCase("mha_cross_key_value_dims",
             lambda: layers.MultiHeadAttention(2, 3, value_dim=4, output_shape=5),
             lambda g: ((_randn(g, 2, 4, 6), _randn(g, 2, 3, 7), _randn(g, 2, 3, 8)), {}),
             mha_reference, [(2, 4, 5)],
             params=(6 * 6 + 6) + (8 * 6 + 6) + (7 * 8 + 8) + (8 * 5 + 5)),
    CallCase("mha_no_bias", lambda: layers.MultiHeadAttention(2, 3, use_bias=False),
             lambda g: ((_randn(g, 2, 4, 6), _randn(g, 2, 5, 6)), {}), mha_reference,
             [(2, 4, 6)], params=4 * 36),
    CallCase("mha_output_shape_tuple", lambda: layers.MultiHeadAttention(2, 3, output_shape=(2, 3)),
             lambda g: ((_randn(g, 2, 4, 6), _randn(g, 2, 5, 6)), {}), mha_reference,
             [(2, 4, 2, 3)], params=3 * 42 + (2 * 3 * 6 + 6)),
    CallCase("mha_attention_mask", lambda: layers.MultiHeadAttention(2, 3),
             lambda g: ((_randn(g, 2, 4, 6), _randn(g, 2, 5, 6)),
                        {"attention_mask": _attention_mask(g, 2, 4, 5)}),
             mha_reference, [(2, 4, 6)], params=168),
    CallCase("mha_causal", lambda: layers.MultiHeadAttention(2, 3),
             lambda g: ((x := _randn(g, 2, 5, 6), x), {"use_causal_mask": True}), mha_reference,
             [(2, 5, 6)], params=168),
    CallCase("mha_causal_and_mask_scores", lambda: layers.MultiHeadAttention(2, 3),
             lambda g: ((_randn(g, 2, 4, 6), _randn(g, 2, 5, 6)),
                        {"attention_mask": _attention_mask(g, 2, 4, 5), "use_causal_mask": True,
                         "return_attention_scores": True}),
             mha_reference, [(2, 4, 6), (2, 2, 4, 5)], params=168),
    CallCase("mha_axes_1_2", lambda: layers.MultiHeadAttention(2, 3, attention_axes=(1, 2)),
             lambda g: ((x := _randn(g, 2, 2, 3, 4), x), {"return_attention_scores": True}),
             lambda layer, q, v, **kw: mha_einsum_reference(
                 layer, q, v, "buvnh,bxynh->bnxyuv", "bnxyuv,buvnh->bxynh", 2, True),
             [(2, 2, 3, 4), (2, 2, 2, 3, 2, 3)], params=3 * (4 * 6 + 6) + (6 * 4 + 4)),
    CallCase("mha_axis_2", lambda: layers.MultiHeadAttention(2, 3, attention_axes=-2),
             lambda g: ((_randn(g, 2, 2, 3, 4), _randn(g, 2, 2, 5, 4)),
                        {"return_attention_scores": True}),
             lambda layer, q, v, **kw: mha_einsum_reference(
                 layer, q, v, "bxvnh,bxynh->bxnyv", "bxnyv,bxvnh->bxynh", 1, True),
             [(2, 2, 3, 4), (2, 2, 2, 3, 5)], params=118),
    CallCase("attention_dot", lambda: layers.Attention(),
             lambda g: (([_randn(g, 2, 3, 4), _randn(g, 2, 5, 4)],), {}), luong_reference,
             [(2, 3, 4)], params=0),
    CallCase("attention_scaled_key_scores", lambda: layers.Attention(use_scale=True),
             lambda g: (([_randn(g, 2, 3, 4), _randn(g, 2, 5, 6), _randn(g, 2, 5, 4)],),
                        {"return_attention_scores": True}),
             luong_reference, [(2, 3, 6), (2, 3, 5)], params=1),
    CallCase("attention_concat_masked_causal",
             lambda: layers.Attention(use_scale=True, score_mode="concat"),
             lambda g: (([_randn(g, 2, 4, 3), _randn(g, 2, 4, 3)],),
                        {"mask": [_padding([4, 2], 4), _padding([3, 4], 4)],
                         "use_causal_mask": True}),
             luong_reference, [(2, 4, 3)], params=2),
    CallCase("additive", lambda: layers.AdditiveAttention(),
             lambda g: (([_randn(g, 2, 3, 4), _randn(g, 2, 5, 4)],), {}), additive_reference,
             [(2, 3, 4)], params=4),
    CallCase("additive_unscaled_masked_scores", lambda: layers.AdditiveAttention(use_scale=False),
             lambda g: (([_randn(g, 2, 3, 4), _randn(g, 2, 5, 2), _randn(g, 2, 5, 4)],),
                        {"mask": [_padding([3, 1], 3), _padding([5, 2], 5)],
                         "return_attention_scores": True}),
             additive_reference, [(2, 3, 2), (2, 3, 5)], params=0),
]


globals().update(call_layer_tests(CASES))


# ---------------------------------------------------------------- the sheet's snippet


def test_sheet_snippet_shapes_scores_and_parameters() -> None:
    layer = layers.MultiHeadAttention(num_heads=8, key_dim=64)
    g = torch.Generator().manual_seed(0)
    query, value = torch.randn(2, 5, 512, generator=g), torch.randn(2, 7, 512, generator=g)
    output, scores = layer(query, value, return_attention_scores=True)
    assert output.shape == (2, 5, 512)
    assert scores.shape == (2, 8, 5, 7)
    assert layer.count_params() == 1_050_624
    assert [w.shape for w in layer.get_weights()] == [
        (512, 8, 64), (8, 64), (512, 8, 64), (8, 64), (512, 8, 64), (8, 64), (8, 64, 512), (512,)]
    torch.testing.assert_close(scores.sum(-1), torch.ones(2, 8, 5))
    # Keras's initial kernels, with non-zero biases so every term is checked.
    layer.set_weights([w if w.ndim != 2 and w.shape != (512,) else
                       w + 0.1 * torch.randn(w.shape, generator=g).numpy()
                       for w in layer.get_weights()])
    want, want_scores = mha_reference(layer, query, value, return_attention_scores=True)
    got, got_scores = layer(query, value, return_attention_scores=True)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got_scores, want_scores, atol=1e-5, rtol=1e-4)
    # Without scores the fused kernel computes the same thing.
    torch.testing.assert_close(layer(query, value), want, atol=1e-4, rtol=1e-4)


def test_functional_shapes_follow_keras() -> None:
    query, value = lamina.Input(shape=(None, 16)), lamina.Input(shape=(None, 12))
    layer = layers.MultiHeadAttention(num_heads=2, key_dim=4)
    output, scores = layer(query, value, return_attention_scores=True)
    assert output.shape == (None, None, 16)
    assert scores.shape == (None, 2, None, None)
    assert layer.compute_output_shape((None, 3, 16), (None, 4, 12)) == (None, 3, 16)
    projected = layers.MultiHeadAttention(2, 4, output_shape=(2, 5))
    assert projected.compute_output_shape((None, 3, 16), (None, 4, 12)) == (None, 3, 2, 5)
    assert layers.Attention().compute_output_shape([(None, 3, 4), (None, 5, 6)]) == (None, 3, 6)


def test_keyword_call_builds_the_key_projection() -> None:
    layer = layers.MultiHeadAttention(2, 3)
    query, value, key = torch.randn(1, 2, 4), torch.randn(1, 3, 5), torch.randn(1, 3, 6)
    assert layer(query=query, value=value, key=key).shape == (1, 2, 4)
    assert [w.shape for w in layer.get_weights()][2] == (6, 2, 3)


# ---------------------------------------------------------------- masks


def _padded_batch(lengths, total, vocabulary=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(1, vocabulary, (len(lengths), total), generator=g)
    return tokens * _padding(lengths, total)


def test_padded_keys_are_ignored_as_each_sequence_alone() -> None:
    lengths, total = [5, 3, 1], 5
    tokens = _padded_batch(lengths, total)
    embedding = layers.Embedding(20, 8, mask_zero=True)
    attention = layers.MultiHeadAttention(num_heads=2, key_dim=4)
    embedded = embedding(tokens)
    batch_output = attention(embedded, embedded)
    assert torch.equal(batch_output._keras_mask, tokens != 0)
    for row, length in enumerate(lengths):
        alone = embedding(tokens[row:row + 1, :length])
        torch.testing.assert_close(batch_output[row:row + 1, :length], attention(alone, alone),
                                   atol=1e-6, rtol=1e-5)


def test_padded_keys_are_ignored_in_a_functional_model() -> None:
    tokens_in = lamina.Input(shape=(None,), dtype="int64")
    x = layers.Embedding(20, 8, mask_zero=True)(tokens_in)
    x = layers.MultiHeadAttention(num_heads=2, key_dim=4)(x, x)
    model = lamina.Model(tokens_in, x)
    lengths, tokens = [4, 2], _padded_batch([4, 2], 4, seed=1)
    batch_output = model(tokens)
    for row, length in enumerate(lengths):
        torch.testing.assert_close(batch_output[row, :length], model(tokens[row:row + 1, :length])[0],
                                   atol=1e-6, rtol=1e-5)


def test_value_and_key_masks_are_read_from_the_tensors() -> None:
    layer = layers.MultiHeadAttention(2, 3)
    g = torch.Generator().manual_seed(2)
    query, value = torch.randn(2, 3, 4, generator=g), torch.randn(2, 5, 4, generator=g)
    value_mask = _padding([2, 5], 5)
    explicit = layer(query, value, value_mask=value_mask)
    masked_value = value.clone()
    masked_value._keras_mask = value_mask
    torch.testing.assert_close(layer(query, masked_value), explicit)
    torch.testing.assert_close(explicit, mha_reference(layer, query, value, value_mask=value_mask))
    key = value.clone()
    key._keras_mask = value_mask
    torch.testing.assert_close(layer(query, value, key), explicit)


def test_per_head_attention_mask() -> None:
    layer = layers.MultiHeadAttention(2, 3)
    g = torch.Generator().manual_seed(8)
    query, value = torch.randn(2, 4, 6, generator=g), torch.randn(2, 5, 6, generator=g)
    layer(query, value)
    randomize(layer)
    first_head = torch.ones(2, 4, 5, dtype=torch.bool)
    second_head = _attention_mask(g, 2, 4, 5)
    per_head = torch.stack([first_head, second_head], dim=1)  # (batch, heads, T, S)
    _, scores = layer(query, value, attention_mask=per_head, return_attention_scores=True)
    _, open_scores = layer(query, value, return_attention_scores=True)
    _, masked_scores = layer(query, value, attention_mask=second_head,
                             return_attention_scores=True)
    torch.testing.assert_close(scores[:, 0], open_scores[:, 0])
    torch.testing.assert_close(scores[:, 1], masked_scores[:, 1])


def test_fully_masked_query_attends_uniformly_as_keras() -> None:
    layer = layers.MultiHeadAttention(1, 2)
    query, value = torch.randn(1, 2, 3), torch.randn(1, 4, 3)
    mask = torch.tensor([[[True, False, True, False], [False, False, False, False]]])
    _, scores = layer(query, value, attention_mask=mask, return_attention_scores=True)
    torch.testing.assert_close(scores[0, 0, 1], torch.full((4,), 0.25))
    assert torch.all(scores[0, 0, 0, [1, 3]] == 0)
    torch.testing.assert_close(layer(query, value, attention_mask=mask),
                               mha_reference(layer, query, value, attention_mask=mask))


def test_masks_over_several_attention_axes() -> None:
    g = torch.Generator().manual_seed(6)
    x = torch.randn(2, 2, 3, 4, generator=g)
    layer = layers.MultiHeadAttention(2, 3, attention_axes=(1, 2))
    layer(x, x)
    randomize(layer)
    # Keras's layout: (batch, query axes..., key axes...).
    mask = torch.rand(2, 2, 3, 2, 3, generator=g) > 0.4
    mask[..., 0, 0] = True
    torch.testing.assert_close(
        layer(x, x, attention_mask=mask),
        mha_einsum_reference(layer, x, x, "buvnh,bxynh->bnxyuv", "bnxyuv,buvnh->bxynh", 2,
                             attention_mask=mask))
    # Attention over axis 2 only: axis 1 is a batch axis of the mask too.
    rows = layers.MultiHeadAttention(2, 3, attention_axes=2)
    rows(x, x)
    randomize(rows)
    row_mask = torch.rand(2, 2, 3, 3, generator=g) > 0.4
    row_mask[..., 0] = True
    torch.testing.assert_close(
        rows(x, x, attention_mask=row_mask),
        mha_einsum_reference(rows, x, x, "bxvnh,bxynh->bxnyv", "bxnyv,bxvnh->bxynh", 1,
                             attention_mask=row_mask))
    # Attending over (1, 2) is attending over the flattened positions, masks and causality too.
    flat = layers.MultiHeadAttention(2, 3)
    flat(x.flatten(1, 2), x.flatten(1, 2))
    flat.set_weights(layer.get_weights())
    padding = _padding([6, 4], 6)
    got = layer(x, x, query_mask=padding.reshape(2, 2, 3), value_mask=padding.reshape(2, 2, 3),
                use_causal_mask=True)
    want = flat(x.flatten(1, 2), x.flatten(1, 2), query_mask=padding, value_mask=padding,
                use_causal_mask=True)
    torch.testing.assert_close(got.flatten(1, 2), want)


@pytest.mark.parametrize("make", [
    lambda: layers.MultiHeadAttention(2, 3),
    lambda: layers.MultiHeadAttention(2, 3, flash_attention=False),
    lambda: layers.Attention(use_scale=True),
    lambda: layers.AdditiveAttention(),
], ids=["mha_fused", "mha_explicit", "attention", "additive"])
def test_causal_output_is_independent_of_later_inputs(make) -> None:
    layer = make()
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 6, 4, generator=g)

    def run(inputs):
        if isinstance(layer, layers.MultiHeadAttention):
            return layer(inputs, inputs, use_causal_mask=True)
        return layer([inputs, inputs], use_causal_mask=True)

    base = run(x)
    for t in range(5):
        changed = x.clone()
        changed[:, t + 1:] = torch.randn(2, 5 - t, 4, generator=g)
        torch.testing.assert_close(run(changed)[:, :t + 1], base[:, :t + 1])
        assert not torch.allclose(run(changed)[:, t + 1:], base[:, t + 1:])


def test_attention_query_mask_zeroes_outputs_and_propagates() -> None:
    layer = layers.Attention()
    query, value = torch.randn(2, 3, 4), torch.randn(2, 5, 4)
    query._keras_mask = _padding([3, 1], 3)
    output = layer([query, value])
    assert torch.all(output[1, 1:] == 0) and torch.any(output[0] != 0)
    assert torch.equal(output._keras_mask, query._keras_mask)


# ---------------------------------------------------------------- paths, dropout, dtypes


def test_fused_and_explicit_paths_agree() -> None:
    g = torch.Generator().manual_seed(4)
    query, value = torch.randn(2, 4, 6, generator=g), torch.randn(2, 5, 6, generator=g)
    mask = _attention_mask(g, 2, 4, 5)
    fused = layers.MultiHeadAttention(2, 3)
    fused(query, value)
    randomize(fused)
    explicit = layers.MultiHeadAttention(2, 3, flash_attention=False)
    explicit(query, value)
    explicit.set_weights(fused.get_weights())
    for kwargs in ({}, {"attention_mask": mask}, {"use_causal_mask": True},
                   {"attention_mask": mask, "use_causal_mask": True}):
        torch.testing.assert_close(fused(query, value, **kwargs), explicit(query, value, **kwargs),
                                   atol=1e-6, rtol=1e-5)


def test_dropout_applies_in_training_only_and_scores_stay_a_distribution() -> None:
    layer = layers.MultiHeadAttention(2, 3, dropout=0.5)
    query = torch.randn(2, 6, 4)
    inference = layer(query, query)
    torch.testing.assert_close(layer(query, query), inference)
    assert not torch.allclose(layer(query, query, training=True), inference)
    # Keras returns the attention probabilities before dropout.
    _, scores = layer(query, query, training=True, return_attention_scores=True)
    torch.testing.assert_close(scores.sum(-1), torch.ones(2, 2, 6))


def test_seeded_dropout_is_reproducible() -> None:
    query = torch.randn(2, 6, 4)
    outputs = []
    for _ in range(2):
        layer = layers.MultiHeadAttention(2, 3, dropout=0.5, seed=7)
        layer(query, query)
        layer.set_weights([w * 0 + 0.1 for w in layer.get_weights()])
        outputs.append(layer(query, query, training=True))
    torch.testing.assert_close(outputs[0], outputs[1])


def test_attention_dropout_in_training() -> None:
    layer = layers.Attention(dropout=0.5)
    query = torch.randn(2, 6, 4)
    assert torch.equal(layer([query, query]), layer([query, query]))
    assert not torch.allclose(layer([query, query], training=True), layer([query, query]))


def test_sheet_scaled_dot_product_attention_matches_torch() -> None:
    g = torch.Generator().manual_seed(5)
    Q, K, V = (torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64) for _ in range(3))
    out, weights = sheet_scaled_dot_product_attention(Q, K, V)
    torch.testing.assert_close(out, torch.nn.functional.scaled_dot_product_attention(Q, K, V))
    torch.testing.assert_close(weights, torch.softmax(Q @ K.transpose(-2, -1) / math.sqrt(5), -1))


def test_float64_layer() -> None:
    layer = layers.MultiHeadAttention(2, 3, dtype="float64")
    x = torch.randn(1, 3, 4, dtype=torch.float64)
    assert layer(x, x).dtype == torch.float64
    assert all(w.dtype.name == "float64" for w in layer.get_weights())


def test_registered_names_and_layers_namespace() -> None:
    from lamina._registry import lookup

    for name in ("MultiHeadAttention", "Attention", "AdditiveAttention"):
        assert lookup("layer", name) is getattr(layers, name)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("kwargs, message", [
    ({"num_heads": 0, "key_dim": 4}, r"'bad' \(MultiHeadAttention\): `num_heads` must be a positive integer. Received: num_heads=0"),
    ({"num_heads": 2, "key_dim": 0}, r"`key_dim` must be a positive integer. Received: key_dim=0"),
    ({"num_heads": 2, "key_dim": -3}, r"Received: key_dim=-3"),
    ({"num_heads": 2, "key_dim": 2.5}, r"Received: key_dim=2.5"),
    ({"num_heads": 2, "key_dim": 4, "value_dim": 0}, r"Received: value_dim=0"),
    ({"num_heads": 2, "key_dim": 4, "dropout": 1.5}, r"`dropout` must be a float in the range \[0, 1\)"),
    ({"num_heads": 2, "key_dim": 4, "output_shape": (2, 0)}, r"`output_shape` must be a positive integer or a tuple"),
    ({"num_heads": 2, "key_dim": 4, "attention_axes": "time"}, r"`attention_axes` must be an int"),
    ({"num_heads": 2, "key_dim": 4, "flash_attention": True, "dropout": 0.1}, r"dropout is not supported when flash_attention=True"),
])
def test_multi_head_attention_bad_arguments(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        layers.MultiHeadAttention(name="bad", **kwargs)


def test_multi_head_attention_bad_shapes() -> None:
    layer = layers.MultiHeadAttention(2, 3, name="mha")
    with pytest.raises(ShapeError, match=r"'mha' \(MultiHeadAttention\) expects a query of rank >= 3.*\(2, 4\)"):
        layer(torch.randn(2, 4), torch.randn(2, 4))
    with pytest.raises(ShapeError, match=r"all dimensions of `value` and `key`, except the last one, must be equal.*\(2, 5, 4\).*\(2, 6, 4\)"):
        layers.MultiHeadAttention(2, 3)(torch.randn(2, 3, 4), torch.randn(2, 5, 4), torch.randn(2, 6, 4))
    with pytest.raises(ValueError, match=r"`attention_axes` must be distinct axes.*\[1\]. Received: attention_axes=\(2,\)"):
        layers.MultiHeadAttention(2, 3, attention_axes=2)(torch.randn(1, 3, 4), torch.randn(1, 3, 4))
    layer(torch.randn(2, 3, 4), torch.randn(2, 5, 6))
    with pytest.raises(ShapeError, match=r"'mha' \(MultiHeadAttention\) was built for a query of rank 3 with last dimension 4, but received a query of shape \(2, 3, 5\)"):
        layer(torch.randn(2, 3, 5), torch.randn(2, 5, 6))
    with pytest.raises(ShapeError, match=r"built for a value of rank 3 with last dimension 6, but received a value of shape \(2, 5, 4\)"):
        layer(torch.randn(2, 3, 4), torch.randn(2, 5, 4))
    with pytest.raises(ShapeError, match=r"`attention_mask` must be booleans of shape \(2, 3, 5\).*received a mask of shape \(2, 5, 3\)"):
        layer(torch.randn(2, 3, 4), torch.randn(2, 5, 6), attention_mask=torch.ones(2, 5, 3, dtype=torch.bool))
    with pytest.raises(ShapeError, match=r"`value_mask` must have the shape of its input without the feature axis, \(2, 5\), but received a mask of shape \(2, 4\)"):
        layer(torch.randn(2, 3, 4), torch.randn(2, 5, 6), value_mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ShapeError, match=r"`query_mask` must have the shape.*\(2, 3\).*\(3,\)"):
        layer(torch.randn(2, 3, 4), torch.randn(2, 5, 6), query_mask=torch.ones(3, dtype=torch.bool))


def test_flash_attention_refuses_scores() -> None:
    layer = layers.MultiHeadAttention(2, 3, flash_attention=True)
    x = torch.randn(1, 3, 4)
    assert layer(x, x).shape == (1, 3, 4)
    with pytest.raises(ValueError, match="returning attention scores is not supported when flash_attention=True"):
        layer(x, x, return_attention_scores=True)


def test_dense_attention_bad_input() -> None:
    with pytest.raises(ValueError, match=r"Expected one of \{'dot', 'concat'\}. Received: score_mode='cosine'"):
        layers.Attention(score_mode="cosine")
    x = torch.randn(2, 3, 4)
    with pytest.raises(ValueError, match=r"'att' \(Attention\) must be called on a list of inputs, namely \[query, value\]"):
        layers.Attention(name="att")(x)
    with pytest.raises(ValueError, match=r"must be called on a list of inputs.*Received: a list of 1: \[\(2, 3, 4\)\]"):
        layers.Attention()([x])
    with pytest.raises(ShapeError, match=r"'add' \(AdditiveAttention\) compares queries with keys.*\(2, 3, 4\).*\(2, 5, 6\)"):
        layers.AdditiveAttention(name="add")([x, torch.randn(2, 5, 6)])
    with pytest.raises(ShapeError, match=r"value and key must have the same number of time steps"):
        layers.Attention()([x, torch.randn(2, 5, 4), torch.randn(2, 6, 4)])
    additive = layers.AdditiveAttention(name="add2")
    additive([x, x])
    with pytest.raises(ShapeError, match=r"'add2' \(AdditiveAttention\) expects a query \(batch, Tq, dim\) and a key \(batch, Tv, dim\) with the same last dimension of size 4.*query shape \(2, 3, 5\)"):
        additive([torch.randn(2, 3, 5), torch.randn(2, 3, 5)])
    built_layer = layers.Attention()
    built_layer([x, x])
    with pytest.raises(ShapeError, match=r"Received query shape \(2, 3, 4\), value shape \(2, 6, 4\), key shape \(2, 5, 4\)"):
        built_layer([x, torch.randn(2, 6, 4), torch.randn(2, 5, 4)])
    layer = layers.Attention(name="att2")
    with pytest.raises(ValueError, match=r"'att2' \(Attention\): `mask` must be a list \[query_mask, value_mask\]"):
        layer([x, x], mask=torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ShapeError, match=r"`value_mask` must have shape \(2, 3\) \(batch, time\), but received a mask of shape \(2, 4\)"):
        layer([x, x], mask=[None, torch.ones(2, 4, dtype=torch.bool)])
