"""References for the attention and transformer tables (tests/support/layer_test.py runs them),
written from the sheet's formulas.

The references take the weights from `get_weights()` (Keras layouts) and recompute the layer
with plain torch ops: the sheet's `scaled_dot_product_attention` (matmul / sqrt(d_k),
`masked_fill(mask == 0, -1e9)`, softmax), `F.layer_norm`, `F.linear`. They never call lamina.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lamina.layers.layer import Layer

Tensor = torch.Tensor


# ---------------------------------------------------------------- references from the sheet

def sheet_scaled_dot_product_attention(Q, K, V, mask=None):
    """The sheet's `MultiHeadAttention.scaled_dot_product_attention`, verbatim."""
    d_k = Q.size(-1)
    scores = torch.matmul(Q, K.transpose(-2, -1)) / math.sqrt(d_k)
    if mask is not None:
        scores = scores.masked_fill(mask == 0, -1e9)
    attention_weights = F.softmax(scores, dim=-1)
    output = torch.matmul(attention_weights, V)
    return output, attention_weights


def sheet_positional_encoding(seq_len, d_model):
    """The sheet's `get_positional_encoding`, verbatim."""
    pe = torch.zeros(seq_len, d_model)
    position = torch.arange(0, seq_len, dtype=torch.float).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d_model, 2).float() *
                         (-math.log(10000.0) / d_model))
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe.unsqueeze(0)


def _tensors(layer: Layer, like: Tensor) -> list[Tensor]:
    return [torch.as_tensor(w, dtype=like.dtype) for w in layer.get_weights()]


def mha_from_weights(weights: list[Tensor], use_bias: bool, query, value, key=None, mask=None):
    """Keras-layout MHA weights applied as the sheet does: project, split heads, attend, merge,
    project back. `mask` is `(B, T, S)` (1 = attend). Returns (output, weights)."""
    key = value if key is None else key
    if use_bias:
        wq, bq, wk, bk, wv, bv, wo, bo = weights
    else:
        wq, wk, wv, wo = weights
        bq = bk = bv = bo = None

    def project(x, kernel, bias):  # (B, T, dim) x (dim, N, H) -> (B, N, T, H)
        projected = torch.einsum("btd,dnh->bnth", x, kernel)
        return projected if bias is None else projected + bias[:, None, :]

    Q, K, V = project(query, wq, bq), project(key, wk, bk), project(value, wv, bv)
    output, attention_weights = sheet_scaled_dot_product_attention(
        Q, K, V, None if mask is None else mask[:, None])
    heads, value_dim = wo.shape[0], wo.shape[1]
    result = torch.einsum("bnth,nho->bto", output, wo.reshape(heads, value_dim, -1))
    if bo is not None:
        result = result + bo.reshape(-1)
    return result.reshape(result.shape[:2] + wo.shape[2:]), attention_weights


def mha_reference(layer, query, value, key=None, attention_mask=None, use_causal_mask=False,
                  return_attention_scores=False, query_mask=None, value_mask=None):
    mask = _combine_reference_masks(query, value, attention_mask, use_causal_mask, query_mask,
                                    value_mask)
    output, scores = mha_from_weights(_tensors(layer, query), layer.use_bias, query, value, key,
                                      mask)
    return (output, scores) if return_attention_scores else output


def _combine_reference_masks(query, value, attention_mask, causal, query_mask=None,
                             value_mask=None):
    T, S = query.shape[1], value.shape[1]
    mask = torch.ones(query.shape[0], T, S, dtype=torch.bool)
    if attention_mask is not None:
        mask = mask & attention_mask.bool()
    if causal:
        mask = mask & torch.tril(torch.ones(T, S, dtype=torch.bool))
    if query_mask is not None:
        mask = mask & query_mask.bool()[:, :, None]
    if value_mask is not None:
        mask = mask & value_mask.bool()[:, None, :]
    return mask


def mha_einsum_reference(layer, query, value, dot_equation, combine_equation, softmax_axes,
                         return_attention_scores=False, attention_mask=None):
    """Rank-4 inputs with attention axes: Keras's einsum equations written out per case; the
    mask gets the heads axis where Keras inserts it."""
    wq, bq, wk, bk, wv, bv, wo, bo = _tensors(layer, query)
    Q = torch.einsum("bxyd,dnh->bxynh", query, wq) + bq
    K = torch.einsum("bxyd,dnh->bxynh", value, wk) + bk
    V = torch.einsum("bxyd,dnh->bxynh", value, wv) + bv
    scores = torch.einsum(dot_equation, K, Q) / math.sqrt(Q.shape[-1])
    if attention_mask is not None:
        mask = attention_mask.unsqueeze(-2 * softmax_axes - 1)
        scores = scores.masked_fill(mask == 0, -1e9)
    flat = scores.flatten(-softmax_axes) if softmax_axes > 1 else scores
    scores = F.softmax(flat, dim=-1).reshape(scores.shape)
    heads_out = torch.einsum(combine_equation, scores, V)
    out = torch.einsum("bxynh,nho->bxyo", heads_out, wo) + bo
    return (out, scores) if return_attention_scores else out


def luong_reference(layer, inputs, mask=None, use_causal_mask=False,
                    return_attention_scores=False):
    """Attention: scores = q k^T (* scale) or concat_w * sum(tanh(scale (q + k)))."""
    query, value = inputs[0], inputs[1]
    key = inputs[2] if len(inputs) > 2 else value
    weights = _tensors(layer, query)
    scale = weights.pop(0) if layer.use_scale else None
    if layer.score_mode == "dot":
        scores = query @ key.transpose(-2, -1)
        if scale is not None:
            scores = scores * scale
    else:
        pairs = query[:, :, None, :] + key[:, None, :, :]
        if scale is not None:
            pairs = scale * pairs
        scores = weights[0] * torch.tanh(pairs).sum(-1)
    return _apply_reference_scores(scores, value, mask, use_causal_mask, return_attention_scores)


def additive_reference(layer, inputs, mask=None, use_causal_mask=False,
                       return_attention_scores=False):
    """AdditiveAttention: scores = sum(scale * tanh(q + k), axis=-1)."""
    query, value = inputs[0], inputs[1]
    key = inputs[2] if len(inputs) > 2 else value
    pairs = torch.tanh(query[:, :, None, :] + key[:, None, :, :])
    if layer.use_scale:
        pairs = _tensors(layer, query)[0] * pairs
    return _apply_reference_scores(pairs.sum(-1), value, mask, use_causal_mask,
                                   return_attention_scores)


def _apply_reference_scores(scores, value, mask, causal, return_attention_scores):
    query_mask, value_mask = (mask[0], mask[1]) if mask is not None else (None, None)
    keep = torch.ones(scores.shape, dtype=torch.bool)
    if value_mask is not None:
        keep = keep & value_mask.bool()[:, None, :]
    if causal:
        keep = keep & torch.tril(torch.ones(scores.shape[-2:], dtype=torch.bool))
    weights = F.softmax(scores.masked_fill(~keep, -1e9), dim=-1)
    result = weights @ value
    if query_mask is not None:
        result = result * query_mask[..., None].to(result.dtype)
    return (result, weights) if return_attention_scores else result


def encoder_reference(layer, inputs, padding_mask=None, attention_mask=None,
                      return_attention_scores=False):
    """The sheet's TransformerBlock (post-norm) or its pre-norm variant, from Keras weights:
    MHA (8 arrays), attention LayerNorm (2), feed-forward LayerNorm (2), Dense, Dense."""
    w = _tensors(layer, inputs)
    mha, (g1, b1), (g2, b2), (k1, c1, k2, c2) = w[:8], w[8:10], w[10:12], w[12:16]
    if padding_mask is None:
        padding_mask = getattr(inputs, "_keras_mask", None)
    mask = _combine_reference_masks(inputs, inputs, attention_mask, False, padding_mask,
                                    padding_mask)
    return _block_reference(layer, inputs, [(mha, None, mask, (g1, b1))], (k1, c1, k2, c2),
                            (g2, b2), return_attention_scores)


def decoder_reference(layer, decoder_sequence, encoder_sequence=None, decoder_padding_mask=None,
                      encoder_padding_mask=None, use_causal_mask=True):
    """Causal self-attention, optional cross-attention, feed-forward; keras-hub's weight order."""
    w = _tensors(layer, decoder_sequence)
    self_mask = _combine_reference_masks(decoder_sequence, decoder_sequence, None,
                                         use_causal_mask, decoder_padding_mask,
                                         decoder_padding_mask)
    blocks = [(w[:8], None, self_mask, tuple(w[8:10]))]
    rest = w[10:]
    if encoder_sequence is not None:
        cross_mask = _combine_reference_masks(decoder_sequence, encoder_sequence, None, False,
                                              decoder_padding_mask, encoder_padding_mask)
        blocks.append((rest[:8], encoder_sequence, cross_mask, tuple(rest[8:10])))
        rest = rest[10:]
    return _block_reference(layer, decoder_sequence, blocks, tuple(rest[:4]), tuple(rest[4:6]))


def _block_reference(layer, x, attention_blocks, feedforward, feedforward_norm,
                     return_attention_scores=False):
    eps, hidden = layer.layer_norm_epsilon, (x.shape[-1],)

    def norm(t, gamma_beta):
        return F.layer_norm(t, hidden, gamma_beta[0], gamma_beta[1], eps)

    scores = None
    for weights, memory, mask, gamma_beta in attention_blocks:
        attend_input = norm(x, gamma_beta) if layer.normalize_first else x
        value = attend_input if memory is None else memory
        attended, scores = mha_from_weights(weights, True, attend_input, value, None, mask)
        x = x + attended if layer.normalize_first else norm(x + attended, gamma_beta)
    k1, c1, k2, c2 = feedforward
    ff_input = norm(x, feedforward_norm) if layer.normalize_first else x
    ff = F.linear(F.relu(F.linear(ff_input, k1.t(), c1)), k2.t(), c2)
    x = x + ff if layer.normalize_first else norm(x + ff, feedforward_norm)
    return (x, scores) if return_attention_scores else x
