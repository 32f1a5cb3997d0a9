"""The sequence models equal the sheet's torch modules (written in `torch_reference.py`) given
the same weights, mapped by hand into Keras's layouts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lamina
from lamina import applications

from . import torch_reference


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().numpy()


def _dense(linear: torch.nn.Linear) -> list[np.ndarray]:
    return [_numpy(linear.weight.t()), _numpy(linear.bias)]


def _recurrent_weights(module: torch.nn.Module, layer: int, kind: str) -> list[np.ndarray]:
    """Keras's [kernel, recurrent_kernel, bias] from torch's layer `layer` of `module`."""
    w_ih, w_hh, b_ih, b_hh = (getattr(module, f"{name}_l{layer}") for name in
                              ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
    if kind != "gru":
        # SimpleRNN: one gate; LSTM: torch's (i, f, g, o) is Keras's (i, f, c, o). Keras has one
        # bias where torch adds two.
        return [_numpy(w_ih.t()), _numpy(w_hh.t()), _numpy(b_ih + b_hh)]
    # GRU: torch's gates are (r, z, n), Keras's (z, r, h); reset_after=True is torch's
    # formulation, with the input and recurrent biases kept apart as Keras's (2, 3 * units).
    def keras_order(tensor: torch.Tensor) -> torch.Tensor:
        r, z, n = tensor.chunk(3)
        return torch.cat([z, r, n])

    return [_numpy(keras_order(w_ih).t()), _numpy(keras_order(w_hh).t()),
            np.stack([_numpy(keras_order(b_ih)), _numpy(keras_order(b_hh))])]


@pytest.mark.parametrize("kind, layers", [("simple_rnn", 1), ("lstm", 2), ("gru", 2)])
def test_recurrent_models_equal_the_sheets_modules(kind, layers):
    torch.manual_seed(0)
    if kind == "simple_rnn":
        reference = torch_reference.SimpleRNN(4, 6, 3)
        model = applications.SimpleRNNModel(4, 6, 3)
        recurrent = reference.rnn
    elif kind == "lstm":
        reference = torch_reference.LSTMModel(4, 6, layers, 3)
        model = applications.LSTMModel(4, 6, layers, 3)
        recurrent = reference.lstm
    else:
        reference = torch_reference.GRUModel(4, 6, layers, 3)
        model = applications.GRUModel(4, 6, layers, 3)
        recurrent = reference.gru
    for index in range(layers):
        model.get_layer(f"{kind}_{index}").set_weights(_recurrent_weights(recurrent, index, kind))
    model.get_layer("fc").set_weights(_dense(reference.fc))
    x = torch.randn(5, 7, 4)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=1e-5, atol=1e-5)


def test_transformer_model_equals_the_sheets_module():
    vocab, d, heads, layers, d_ff, length, classes = 40, 16, 4, 2, 32, 10, 3
    torch.manual_seed(0)
    reference = torch_reference.TransformerModel(vocab, d, heads, layers, d_ff, length,
                                                 classes).eval()
    model = applications.TransformerModel(vocab, d, heads, layers, d_ff, length, classes)
    model.get_layer("embeddings").set_weights([_numpy(reference.token_embedding.weight),
                                               _numpy(reference.position_embedding.weight)])
    head_dim = d // heads
    for index, block in enumerate(reference.transformer_blocks):
        encoder = model.get_layer(f"transformer_block_{index}")
        attention = block.attention
        projections = []
        for linear in (attention.W_q, attention.W_k, attention.W_v):
            projections += [_numpy(linear.weight.t()).reshape(d, heads, head_dim),
                            _numpy(linear.bias).reshape(heads, head_dim)]
        projections += [_numpy(attention.W_o.weight.t()).reshape(heads, head_dim, d),
                        _numpy(attention.W_o.bias)]
        encoder.self_attention_layer.set_weights(projections)
        encoder.self_attention_layer_norm.set_weights([_numpy(block.norm1.weight),
                                                       _numpy(block.norm1.bias)])
        encoder.feedforward_layer_norm.set_weights([_numpy(block.norm2.weight),
                                                    _numpy(block.norm2.bias)])
        encoder.feedforward_intermediate_dense.set_weights(_dense(block.feed_forward[0]))
        encoder.feedforward_output_dense.set_weights(_dense(block.feed_forward[2]))
    model.get_layer("norm").set_weights([_numpy(reference.norm.weight),
                                         _numpy(reference.norm.bias)])
    model.get_layer("classifier").set_weights(_dense(reference.classifier))
    for sequence in (length, 6):  # the full length, and a shorter sequence
        tokens = torch.randint(0, vocab, (3, sequence))
        with torch.no_grad():
            torch.testing.assert_close(model(tokens), reference(tokens), rtol=1e-5, atol=1e-5)


def test_padding_is_ignored_with_mask_zero():
    lamina.set_random_seed(0)
    model = applications.TransformerModel(30, 16, 2, 2, 32, 8, 3, mask_zero=True)
    tokens = torch.tensor([[5, 7, 9, 11]])
    padded = torch.tensor([[5, 7, 9, 11, 0, 0, 0, 0]])
    with torch.no_grad():
        torch.testing.assert_close(model(padded), model(tokens), rtol=1e-5, atol=1e-5)


def test_segment_embeddings_take_a_second_input():
    lamina.set_random_seed(0)
    model = applications.TransformerModel(30, 16, 2, 1, 32, 8, 3, type_vocab_size=2, pooler=True)
    assert [t.shape for t in model.inputs] == [(None, 8), (None, 8)]
    tokens = torch.randint(1, 30, (2, 8))
    with torch.no_grad():
        first = model([tokens, torch.zeros_like(tokens)])
        second = model([tokens, torch.ones_like(tokens)])
    assert first.shape == (2, 3) and not torch.allclose(first, second)


@pytest.mark.parametrize("kwargs, message", [
    ({"d_model": 10, "num_heads": 4}, r"`d_model` must be divisible by `num_heads`.*d_model=10"),
    ({"num_layers": 0}, r"`num_layers` must be a positive integer. Received: num_layers=0"),
    ({"type_vocab_size": -1}, r"`type_vocab_size` must be a non-negative integer"),
    ({"dropout": 1.0}, r"`dropout` must be a float in the range \[0, 1\)"),
])
def test_transformer_argument_errors(kwargs, message):
    arguments = {"vocab_size": 30, "d_model": 16, "num_heads": 2, "num_layers": 1, "d_ff": 32,
                 "max_seq_length": 8, "num_classes": 3}
    keywords = {k: kwargs.pop(k) for k in ("type_vocab_size", "dropout") if k in kwargs}
    with pytest.raises(ValueError, match=message):
        applications.TransformerModel(**{**arguments, **kwargs}, **keywords)


@pytest.mark.parametrize("builder, args, message", [
    (applications.LSTMModel, (0, 8, 1, 3), r"`input_size` must be a positive integer"),
    (applications.GRUModel, (4, 8, 0, 3), r"`num_layers` must be a positive integer"),
    (applications.SimpleRNNModel, (4, -2, 3), r"`hidden_size` must be a positive integer"),
])
def test_recurrent_argument_errors(builder, args, message):
    with pytest.raises(ValueError, match=message):
        builder(*args)
