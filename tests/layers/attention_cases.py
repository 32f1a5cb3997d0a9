"""Shared harness for the attention and transformer layers: one row per configuration, generic
checks that iterate the rows, and references written from the sheet's formulas.

The references take the weights from `get_weights()` (Keras layouts) and recompute the layer
with plain torch ops: the sheet's `scaled_dot_product_attention` (matmul / sqrt(d_k),
`masked_fill(mask == 0, -1e9)`, softmax), `F.layer_norm`, `F.linear`. They never call lamina.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

import lamina
from lamina.layers.layer import Layer
from lamina.saving.serialization import deserialize, serialize

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


# ---------------------------------------------------------------- the table's row

@dataclass
class Case:
    """One layer configuration: how to make it, its call arguments, the reference, and what
    Keras says about it (output shape(s), parameter count)."""

    id: str
    make: Callable[[], Layer]
    inputs: Callable[[torch.Generator], tuple[tuple, dict]]
    reference: Callable[..., Any]
    output_shapes: list[tuple]
    params: int
    atol: float = 1e-5
    # Per output, the positions that carry meaning (a padded query's row does not): a function
    # of the call arguments returning multiplicative masks, or None for "all".
    valid: Callable[..., list[Tensor]] | None = None


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randomize(layer: Layer, seed: int = 0) -> None:
    """Non-trivial weights (non-zero biases, non-unit norms) so the references test every term."""
    g = generator(seed)
    layer.set_weights([0.5 * torch.randn(w.shape, generator=g, dtype=torch.float64).numpy()
                       for w in layer.get_weights()])


def as_list(outputs: Any) -> list[Tensor]:
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def _map(value: Any, fn: Callable[[Tensor], Any]) -> Any:
    if isinstance(value, Tensor):
        return fn(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_map(v, fn) for v in value)
    if isinstance(value, dict):
        return {k: _map(v, fn) for k, v in value.items()}
    return value


def to_dtype(value: Any, dtype: torch.dtype) -> Any:
    return _map(value, lambda t: t.to(dtype) if t.dtype.is_floating_point else t)


def built(case: Case, dtype: torch.dtype = torch.float32, seed: int = 0):
    """A layer of the case built (in `dtype`) and randomized, with its call arguments."""
    args, kwargs = to_dtype(case.inputs(generator(seed)), dtype)
    layer = case.make()
    if dtype != torch.float32:
        layer = type(layer).from_config({**layer.get_config(), "dtype": str(dtype).split(".")[-1]})
    layer(*args, **kwargs)
    randomize(layer, seed + 1)
    return layer, args, kwargs


# ---------------------------------------------------------------- generic checks

def check_output_shapes(case: Case) -> None:
    layer, args, kwargs = built(case)
    outputs = as_list(layer(*args, **kwargs))
    assert [tuple(o.shape) for o in outputs] == case.output_shapes


def _valid_outputs(case: Case, outputs: list[Tensor], args: tuple, kwargs: dict) -> list[Tensor]:
    if case.valid is None:
        return outputs
    return [o * m.to(o.dtype) for o, m in zip(outputs, case.valid(*args, **kwargs))]


def check_reference(case: Case, dtype: torch.dtype = torch.float32) -> None:
    """All outputs in float32 (a fully masked row attends uniformly in both); in float64 the
    meaningful positions, since adding -1e9 no longer swamps the scores there."""
    layer, args, kwargs = built(case, dtype)
    got = as_list(layer(*args, **kwargs))
    want = as_list(case.reference(layer, *args, **kwargs))
    assert len(got) == len(want)
    atol = case.atol if dtype == torch.float32 else 1e-10
    if dtype == torch.float64:
        got, want = (_valid_outputs(case, o, args, kwargs) for o in (got, want))
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, atol=atol, rtol=atol)


def check_param_count(case: Case) -> None:
    layer, _, _ = built(case)
    assert layer.count_params() == case.params
    assert sum(np.size(w) for w in layer.get_weights()) == case.params


def check_gradcheck(case: Case) -> None:
    """gradcheck in float64 with respect to the float inputs and every weight."""
    layer, args, kwargs = built(case, torch.float64)
    leaves: list[Tensor] = []

    def collect(t: Tensor) -> Tensor:
        if t.dtype.is_floating_point:
            leaves.append(t.detach().clone().requires_grad_(True))
        return t

    _map((args, kwargs), collect)
    names = [n for n, p in layer.named_parameters() if p.requires_grad]
    params = [p.detach().clone().requires_grad_(True) for n, p in layer.named_parameters()
              if p.requires_grad]
    count = len(leaves)

    def function(*tensors: Tensor):
        position = iter(tensors[:count])
        call_args, call_kwargs = _map(
            (args, kwargs), lambda t: next(position) if t.dtype.is_floating_point else t)
        outputs = torch.func.functional_call(layer, dict(zip(names, tensors[count:])),
                                             tuple(call_args), call_kwargs)
        return tuple(_valid_outputs(case, as_list(outputs), args, kwargs))

    # Fast mode checks random projections of the full Jacobian: every weight and input enters.
    assert torch.autograd.gradcheck(function, tuple(leaves + params), atol=1e-6, fast_mode=True)


def check_training_step(case: Case) -> None:
    """In training mode every weight gets a finite gradient and one SGD step changes the output."""
    layer, args, kwargs = built(case)
    if not list(layer.parameters()):
        return
    layer.train()
    outputs = as_list(layer(*args, **kwargs))
    sum(o.square().sum() for o in outputs).backward()
    for name, parameter in layer.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
    layer.eval()
    before = as_list(layer(*args, **kwargs))[0].detach().clone()
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter -= 0.1 * parameter.grad
    assert not torch.allclose(as_list(layer(*args, **kwargs))[0], before)


def check_config_round_trip(case: Case) -> None:
    layer, args, kwargs = built(case)
    config = layer.get_config()
    json.dumps(config)
    clone = type(layer).from_config(json.loads(json.dumps(config)))
    assert clone.get_config() == config
    clone(*args, **kwargs)
    clone.set_weights(layer.get_weights())
    for a, b in zip(as_list(layer(*args, **kwargs)), as_list(clone(*args, **kwargs))):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # By its registered Keras name, as a saved model refers to it.
    revived = deserialize(serialize(layer))
    assert type(revived) is type(layer) and revived.get_config() == config


def _input_for(tensor: Tensor):
    dtype = str(tensor.dtype).split(".")[-1]
    return lamina.Input(shape=tuple(tensor.shape[1:]), dtype=dtype)


def model_around(layer: Layer, args: tuple, kwargs: dict):
    """The layer inside a model: a Sequential when it takes one tensor and nothing else,
    otherwise a functional model with an Input per tensor argument. Returns (model, feed)."""
    tensors: list[Tensor] = []
    _map((args, kwargs), lambda t: tensors.append(t))
    single = len(args) == 1 and isinstance(args[0], Tensor) and not kwargs
    if single:
        return lamina.Sequential([_input_for(args[0]), layer]), args[0]
    symbols = [_input_for(t) for t in tensors]
    position = iter(symbols)
    call_args, call_kwargs = _map((args, kwargs), lambda t: next(position))
    outputs = layer(*call_args, **call_kwargs)
    outputs = list(outputs) if isinstance(outputs, tuple) else outputs
    if len(symbols) == 1:
        return lamina.Model(symbols[0], outputs), tensors[0]
    return lamina.Model(symbols, outputs), tensors


def check_save_load(case: Case, tmp_path) -> None:
    args, kwargs = case.inputs(generator(0))
    model, feed = model_around(case.make(), args, kwargs)
    for layer in model.layers:
        if not isinstance(layer, lamina.models.InputLayer):
            randomize(layer, 3)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = lamina.models.load_model(path)
    for a, b in zip(as_list(model(feed)), as_list(loaded(feed))):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
