"""Transformer building blocks: the sinusoidal positional encoding, learned position
embeddings, and the encoder and decoder blocks (keras-hub's `TransformerEncoder` and
`TransformerDecoder` arguments).

The blocks are composable layers: stack `TransformerEncoder`s over `PositionalEmbedding` for a
BERT-like encoder, or `TransformerDecoder`s (causal self-attention, no encoder) for a GPT-like
language model.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch

from lamina import activations, config
from lamina import initializers as initializers_module
from lamina import regularizers as regularizers_module
from lamina._load_budget import charge_output
from lamina._registry import register
from lamina.errors import ShapeError
from lamina.layers.attention import MultiHeadAttention
from lamina.layers.core import Dense, Dropout, Embedding, check_positive_int, check_rate, \
    serialize_argument
from lamina.layers.layer import Layer, check_input_rank
from lamina.layers.normalization import LayerNormalization

Tensor = torch.Tensor


def get_positional_encoding(seq_len: int, d_model: int, *, max_wavelength: float = 10000.0,
                            dtype: Any = None, device: Any = None) -> Tensor:
    """The sinusoidal positional encoding (Vaswani et al., 2017), shape `(1, seq_len, d_model)`:

        PE(pos, 2i)   = sin(pos / 10000^(2i / d_model))
        PE(pos, 2i+1) = cos(pos / 10000^(2i / d_model))

    computed as the usual PyTorch code does
    (`div_term = exp(arange(0, d_model, 2) * -log(10000) / d_model)`, in float32, or float64
    when `dtype` is float64). An odd `d_model`, which that code rejects, gets a last sine column
    and no matching cosine. `max_wavelength` replaces 10000.

    >>> get_positional_encoding(4, 6).shape
    torch.Size([1, 4, 6])
    """
    if isinstance(seq_len, bool) or not isinstance(seq_len, numbers.Integral) or seq_len < 0:
        raise ValueError(
            f"`seq_len` must be a non-negative integer. Received: seq_len={seq_len!r}."
        )
    d_model = check_positive_int("d_model", d_model)
    if not max_wavelength > 0:
        raise ValueError(
            f"`max_wavelength` must be positive. Received: max_wavelength={max_wavelength!r}."
        )
    dtype = config.torch_dtype(dtype)
    compute_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    pe = torch.zeros(seq_len, d_model, dtype=compute_dtype, device=device)
    position = torch.arange(0, seq_len, dtype=compute_dtype, device=device).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d_model, 2, device=device).to(compute_dtype)
                         * (-math.log(max_wavelength) / d_model))
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term[: d_model // 2])
    return pe.unsqueeze(0).to(dtype)


class _SinusoidalEncoding(Layer):
    """Base of the sinusoidal encodings: a table of `get_positional_encoding` kept for the
    longest sequence seen, on the inputs' device and dtype, so a call only slices it."""

    def __init__(self, max_wavelength: float = 10000.0, **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(max_wavelength, bool) or not isinstance(max_wavelength, numbers.Real) \
                or max_wavelength <= 0:
            raise ValueError(
                f"`max_wavelength` must be a positive number. Received: "
                f"max_wavelength={max_wavelength!r}."
            )
        self.max_wavelength = max_wavelength
        self.supports_masking = True
        self._table: Tensor | None = None

    def build(self, input_shape):
        check_input_rank(self, input_shape, min_rank=2,
                         description="(batch, ..., sequence, features)")

    def _encoding(self, inputs: Tensor, start_index: int) -> Tensor:
        """`(sequence, features)` rows `start_index ...` of the table."""
        length, depth = inputs.shape[-2], inputs.shape[-1]
        end = start_index + length
        table = self._table
        if table is None or table.shape[0] < end or table.shape[1] != depth or \
                table.dtype != inputs.dtype or table.device != inputs.device or \
                table.is_inference() != torch.is_inference_mode_enabled():
            # A saved call's start_index is config data: refuse a huge table while loading.
            charge_output(end * depth, (end, depth), self.name)
            table = get_positional_encoding(end, depth, max_wavelength=self.max_wavelength,
                                            dtype=inputs.dtype, device=inputs.device)[0]
            self._table = table
        return table[start_index:end]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "max_wavelength": self.max_wavelength}


@register("PositionalEncoding")
class PositionalEncoding(_SinusoidalEncoding):
    """Adds the sinusoidal positional encoding to its inputs:
    `outputs = inputs + PE[start_index : start_index + sequence]` (see `get_positional_encoding`).

    Input and output shape: `(batch, sequence, features)`. Masks pass through.

    >>> PositionalEncoding()(torch.zeros(2, 5, 8)).shape
    torch.Size([2, 5, 8])
    """

    def call(self, inputs, start_index=0):
        return inputs + self._encoding(inputs, start_index)


@register("SinePositionEncoding")
class SinePositionEncoding(_SinusoidalEncoding):
    """The sinusoidal positional encoding for its inputs' shape (keras-hub's layer): returns
    `PE[start_index : start_index + sequence]` broadcast to the inputs' shape, to be added to
    them (`x + SinePositionEncoding()(x)`). `PositionalEncoding` does the addition itself.

    >>> SinePositionEncoding()(torch.zeros(2, 5, 8)).shape
    torch.Size([2, 5, 8])
    """

    def call(self, inputs, start_index=0):
        # A copy, not a view of the cached table: an in-place op on the result must not
        # change the encoding of later calls.
        return self._encoding(inputs, start_index).expand(inputs.shape).clone()


@register("PositionEmbedding")
class PositionEmbedding(Layer):
    """Learned position embeddings (keras-hub's layer): a `(sequence_length, features)` table
    whose rows `start_index ...` are returned, broadcast to the inputs' shape, to be added to
    them.

    Args:
        sequence_length: the longest sequence the layer accepts.
        initializer: initializer of the table.

    >>> PositionEmbedding(10)(torch.zeros(2, 5, 8)).shape
    torch.Size([2, 5, 8])
    """

    def __init__(self, sequence_length: int, initializer: Any = "glorot_uniform", **kwargs: Any):
        super().__init__(**kwargs)
        self.sequence_length = check_positive_int("sequence_length", sequence_length)
        self.initializer = initializers_module.get(initializer)
        self.supports_masking = True

    def build(self, input_shape):
        check_input_rank(self, input_shape, min_rank=2,
                         description="(batch, ..., sequence, features)")
        if input_shape[-1] is None:
            raise ShapeError(
                f"Layer {self.name!r} (PositionEmbedding) needs the feature axis to be known. "
                f"Received an input of shape {tuple(input_shape)}."
            )
        self.embeddings = self.add_weight(shape=(self.sequence_length, input_shape[-1]),
                                          initializer=self.initializer, name="embeddings")

    def call(self, inputs, start_index=0):
        end = start_index + inputs.shape[-2]
        if end > self.sequence_length:
            raise ShapeError(
                f"Layer {self.name!r} (PositionEmbedding) has embeddings for "
                f"sequence_length={self.sequence_length} positions, but received an input of "
                f"shape {tuple(inputs.shape)} (positions {start_index}..{end - 1}). Create it with "
                "a larger sequence_length (a symbolic Input needs a fixed sequence length)."
            )
        return self.embeddings[start_index:end].expand(inputs.shape)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "sequence_length": self.sequence_length,
                "initializer": serialize_argument(self.initializer)}


@register("PositionalEmbedding")
class PositionalEmbedding(Layer):
    """Token embeddings plus learned position embeddings, the input layer of BERT/GPT-like
    models: `outputs = token_embeddings[tokens] + position_embeddings[0:sequence]`.

    Args:
        sequence_length: the longest sequence the layer accepts.
        input_dim: vocabulary size (largest token index + 1).
        output_dim: embedding size.
        embeddings_initializer: initializer of both tables.
        mask_zero: treat token 0 as padding and emit a mask (as `Embedding(mask_zero=True)`),
            which attention layers and `TransformerEncoder` use to ignore padded positions.

    Input shape: `(batch, sequence)` integers. Output shape: `(batch, sequence, output_dim)`.
    Weights: `token_embeddings/embeddings (input_dim, output_dim)`, then
    `position_embeddings/embeddings (sequence_length, output_dim)`.

    >>> PositionalEmbedding(10, 100, 8)(torch.tensor([[5, 7, 0]])).shape
    torch.Size([1, 3, 8])
    """

    def __init__(self, sequence_length: int, input_dim: int, output_dim: int,
                 embeddings_initializer: Any = "uniform", mask_zero: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.sequence_length = check_positive_int("sequence_length", sequence_length)
        self.input_dim = check_positive_int("input_dim", input_dim)
        self.output_dim = check_positive_int("output_dim", output_dim)
        self.embeddings_initializer = initializers_module.get(embeddings_initializer)
        self.mask_zero = bool(mask_zero)
        self.supports_masking = self.mask_zero
        self._produces_mask = self.mask_zero

    def build(self, input_shape):
        check_input_rank(self, input_shape, rank=2, description="(batch, sequence) of token ids")
        if input_shape[1] is not None and input_shape[1] > self.sequence_length:
            raise ShapeError(
                f"Layer {self.name!r} (PositionalEmbedding) accepts sequences of at most "
                f"sequence_length={self.sequence_length} tokens, but received an input of shape "
                f"{tuple(input_shape)}."
            )
        self.token_embeddings = Embedding(self.input_dim, self.output_dim,
                                          embeddings_initializer=self.embeddings_initializer,
                                          dtype=self._dtype, name="token_embeddings")
        self.token_embeddings.build_from_config_shape(input_shape)
        self.position_embeddings = PositionEmbedding(self.sequence_length,
                                                     initializer=self.embeddings_initializer,
                                                     dtype=self._dtype, name="position_embeddings")
        self.position_embeddings.build_from_config_shape(tuple(input_shape) + (self.output_dim,))

    def call(self, inputs):
        if inputs.shape[-1] > self.sequence_length:
            raise ShapeError(
                f"Layer {self.name!r} (PositionalEmbedding) accepts sequences of at most "
                f"sequence_length={self.sequence_length} tokens, but received an input of shape "
                f"{tuple(inputs.shape)}. Cut the sequences (a symbolic Input needs a fixed "
                f"length: Input(shape=({self.sequence_length},))) or raise sequence_length."
            )
        tokens = self.token_embeddings(inputs)
        return tokens + self.position_embeddings(tokens)

    def compute_mask(self, inputs, mask=None):
        return inputs != 0 if self.mask_zero else None

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def get_config(self):
        return {**super().get_config(), "sequence_length": self.sequence_length,
                "input_dim": self.input_dim, "output_dim": self.output_dim,
                "embeddings_initializer": serialize_argument(self.embeddings_initializer),
                "mask_zero": self.mask_zero}


def _check_block_masks(layer: Layer, sequence: Tensor, padding_mask: Tensor | None,
                       attention_mask: Tensor | None, key_length: int, names: tuple[str, str]):
    """Padding masks are `(batch, sequence)`; attention masks `(batch, sequence, key_length)`."""
    padding_name, attention_name = names
    batch, length = sequence.shape[0], sequence.shape[1]
    if padding_mask is not None and tuple(padding_mask.shape) != (batch, length):
        raise ShapeError(
            f"Layer {layer.name!r} ({type(layer).__name__}): `{padding_name}` must have shape "
            f"(batch, sequence) = {(batch, length)}, but received a mask of shape "
            f"{tuple(padding_mask.shape)}."
        )
    if attention_mask is not None:
        shape = tuple(attention_mask.shape)
        expected = (batch, length, key_length)
        if len(shape) != 3 or any(s not in (1, e) for s, e in zip(shape, expected)):
            raise ShapeError(
                f"Layer {layer.name!r} ({type(layer).__name__}): `{attention_name}` must have "
                f"shape (batch, target length, source length) = {expected}, but received a mask "
                f"of shape {shape}."
            )


def _hidden_and_head_dims(layer: Layer, shape: Any, num_heads: int) -> tuple[int, int]:
    check_input_rank(layer, shape, rank=3, description="(batch, sequence, hidden_dim)")
    hidden_dim = shape[-1]
    if hidden_dim is None:
        raise ShapeError(
            f"Layer {layer.name!r} ({type(layer).__name__}) needs the hidden (last) axis of its "
            f"input to be known. Received an input of shape {tuple(shape)}."
        )
    head_dim = hidden_dim // num_heads
    if head_dim == 0:
        raise ValueError(
            f"Layer {layer.name!r} ({type(layer).__name__}): the attention head size "
            f"hidden_dim // num_heads is zero. The hidden dimension {hidden_dim} of the input "
            f"(shape {tuple(shape)}) must be at least num_heads={num_heads}."
        )
    return hidden_dim, head_dim


class _TransformerBlock(Layer):
    """Shared arguments and feed-forward part of the encoder and decoder blocks."""

    def __init__(self, intermediate_dim: int, num_heads: int, dropout: float, activation: Any,
                 layer_norm_epsilon: float, kernel_initializer: Any, bias_initializer: Any,
                 normalize_first: bool, **kwargs: Any):
        super().__init__(**kwargs)
        self.intermediate_dim = check_positive_int("intermediate_dim", intermediate_dim)
        self.num_heads = check_positive_int("num_heads", num_heads)
        self.dropout = check_rate("dropout", dropout)
        self.activation = activations.get(activation)
        if not layer_norm_epsilon > 0:
            raise ValueError(
                f"`layer_norm_epsilon` must be positive. Received: "
                f"layer_norm_epsilon={layer_norm_epsilon!r}."
            )
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.kernel_initializer = initializers_module.get(kernel_initializer)
        self.bias_initializer = initializers_module.get(bias_initializer)
        self.normalize_first = bool(normalize_first)
        self.supports_masking = True

    def _dense_kwargs(self) -> dict[str, Any]:
        return {"kernel_initializer": self.kernel_initializer,
                "bias_initializer": self.bias_initializer, "dtype": self._dtype}

    def _attention(self, name: str, query_shape, value_shape, head_dim: int,
                   **extra: Any) -> MultiHeadAttention:
        layer = MultiHeadAttention(self.num_heads, head_dim, dropout=self.dropout, name=name,
                                   **self._dense_kwargs(), **extra)
        layer.build_from_config_shape((tuple(query_shape), tuple(value_shape)))
        return layer

    def _layer_norm(self, name: str, shape) -> LayerNormalization:
        layer = LayerNormalization(epsilon=self.layer_norm_epsilon, dtype=self._dtype, name=name)
        layer.build_from_config_shape(shape)
        return layer

    def _build_feedforward_denses(self, shape, hidden_dim: int, **extra: Any) -> None:
        self.feedforward_intermediate_dense = Dense(
            self.intermediate_dim, activation=self.activation,
            name="feedforward_intermediate_dense", **self._dense_kwargs(), **extra)
        self.feedforward_intermediate_dense.build_from_config_shape(shape)
        self.feedforward_output_dense = Dense(hidden_dim, name="feedforward_output_dense",
                                              **self._dense_kwargs(), **extra)
        self.feedforward_output_dense.build_from_config_shape(
            tuple(shape[:-1]) + (self.intermediate_dim,))

    def _pre_norm(self, x: Tensor, layer_norm: LayerNormalization) -> Tensor:
        return layer_norm(x) if self.normalize_first else x

    def _add_and_norm(self, residual: Tensor, x: Tensor, layer_norm: LayerNormalization) -> Tensor:
        """Post-norm `norm(residual + x)` (the original Transformer's block, BERT), or the plain
        sum when the norm came first (pre-norm, GPT-2)."""
        return residual + x if self.normalize_first else layer_norm(residual + x)

    def _feedforward_block(self, x: Tensor, training: Any) -> Tensor:
        residual = x
        x = self._pre_norm(x, self.feedforward_layer_norm)
        x = self.feedforward_output_dense(self.feedforward_intermediate_dense(x))
        x = self.feedforward_dropout(x, training=training)
        return self._add_and_norm(residual, x, self.feedforward_layer_norm)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "intermediate_dim": self.intermediate_dim,
            "num_heads": self.num_heads,
            "dropout": self.dropout,
            "activation": activations.serialize(self.activation),
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "kernel_initializer": serialize_argument(self.kernel_initializer),
            "bias_initializer": serialize_argument(self.bias_initializer),
            "normalize_first": self.normalize_first,
        }


@register("TransformerEncoder")
class TransformerEncoder(_TransformerBlock):
    """Transformer encoder block (Vaswani et al., 2017), a PyTorch `TransformerBlock`:

        x = LayerNorm(x + Dropout(MultiHeadAttention(x, x)))
        x = LayerNorm(x + Dropout(Dense(hidden_dim)(Dense(intermediate_dim, activation)(x))))

    With `normalize_first=True` the norms move before each sub-block (pre-norm, as GPT-2):
    `x = x + Dropout(f(LayerNorm(x)))`. Each head has size `hidden_dim // num_heads`.

    Args:
        intermediate_dim: hidden size of the feed-forward network (`d_ff`).
        num_heads: number of attention heads.
        dropout: rate shared by the attention probabilities and both residual branches.
        activation: activation of the feed-forward network's first layer.
        layer_norm_epsilon: epsilon of the layer normalizations.
        normalize_first: pre-norm instead of post-norm.

    Call arguments: `inputs (batch, sequence, hidden_dim)`; `padding_mask (batch, sequence)`
    (default: the inputs' Keras mask, e.g. from `PositionalEmbedding(mask_zero=True)`);
    `attention_mask (batch, sequence, sequence)` (True = attend);
    `return_attention_scores`. Returns the same shape as `inputs` (and the scores
    `(batch, num_heads, sequence, sequence)` if asked).

    >>> TransformerEncoder(intermediate_dim=32, num_heads=2)(torch.zeros(2, 5, 8)).shape
    torch.Size([2, 5, 8])
    """

    def __init__(self, intermediate_dim: int, num_heads: int, dropout: float = 0,
                 activation: Any = "relu", layer_norm_epsilon: float = 1e-05,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None,
                 activity_regularizer: Any = None, normalize_first: bool = False, **kwargs: Any):
        super().__init__(intermediate_dim, num_heads, dropout, activation, layer_norm_epsilon,
                         kernel_initializer, bias_initializer, normalize_first,
                         activity_regularizer=activity_regularizer, **kwargs)
        self.kernel_regularizer = regularizers_module.get(kernel_regularizer)
        self.bias_regularizer = regularizers_module.get(bias_regularizer)

    def build(self, input_shape):
        hidden_dim, head_dim = _hidden_and_head_dims(self, input_shape, self.num_heads)
        regularizers = {"kernel_regularizer": self.kernel_regularizer,
                        "bias_regularizer": self.bias_regularizer}
        # Keras-hub's order, which fixes the order of get_weights().
        self.self_attention_layer = self._attention("self_attention_layer", input_shape,
                                                    input_shape, head_dim, **regularizers)
        self.self_attention_layer_norm = self._layer_norm("self_attention_layer_norm", input_shape)
        self.self_attention_dropout = Dropout(self.dropout, name="self_attention_dropout")
        self.feedforward_layer_norm = self._layer_norm("feedforward_layer_norm", input_shape)
        self._build_feedforward_denses(input_shape, hidden_dim, **regularizers)
        self.feedforward_dropout = Dropout(self.dropout, name="feedforward_dropout")

    def call(self, inputs, padding_mask=None, attention_mask=None, training=None,
             return_attention_scores=False):
        if padding_mask is None:
            padding_mask = getattr(inputs, "_keras_mask", None)
        _check_block_masks(self, inputs, padding_mask, attention_mask, inputs.shape[1],
                           ("padding_mask", "attention_mask"))
        x = self._pre_norm(inputs, self.self_attention_layer_norm)
        x = self.self_attention_layer(
            x, x, query_mask=padding_mask, value_mask=padding_mask, attention_mask=attention_mask,
            return_attention_scores=return_attention_scores, training=training)
        if return_attention_scores:
            x, scores = x
        x = self.self_attention_dropout(x, training=training)
        x = self._add_and_norm(inputs, x, self.self_attention_layer_norm)
        x = self._feedforward_block(x, training)
        if return_attention_scores:
            return x, scores
        return x

    def get_config(self):
        return {**super().get_config(),
                "kernel_regularizer": serialize_argument(self.kernel_regularizer),
                "bias_regularizer": serialize_argument(self.bias_regularizer)}


@register("TransformerDecoder")
class TransformerDecoder(_TransformerBlock):
    """Transformer decoder block (Vaswani et al., 2017): causal self-attention, then (when
    called with an encoder sequence) cross-attention on the encoder's outputs, then the
    feed-forward network, each with dropout, a residual connection and layer normalization
    (post-norm, or pre-norm with `normalize_first=True` as GPT-2).

    Called as `layer(decoder_sequence)` it has no cross-attention (a GPT-like decoder-only
    block); as `layer(decoder_sequence, encoder_sequence)` it has one. The number of inputs is
    fixed by the first call.

    Args: as `TransformerEncoder` without the regularizers (keras-hub's `TransformerDecoder`).
    Heads of the cross-attention also have size `hidden_dim // num_heads`; the encoder sequence
    may have another width, which its key/value projections map from.

    Call arguments: `decoder_sequence (batch, T, hidden_dim)`, `encoder_sequence (batch, S, dim)`,
    `decoder_padding_mask (batch, T)`, `decoder_attention_mask (batch, T, T)`,
    `encoder_padding_mask (batch, S)`, `encoder_attention_mask (batch, T, S)` (padding masks
    default to the sequences' Keras masks), `use_causal_mask` (default True: position t sees
    only positions <= t). Returns the shape of `decoder_sequence`.

    >>> TransformerDecoder(intermediate_dim=32, num_heads=2)(torch.zeros(2, 5, 8)).shape
    torch.Size([2, 5, 8])
    """

    def __init__(self, intermediate_dim: int, num_heads: int, dropout: float = 0,
                 activation: Any = "relu", layer_norm_epsilon: float = 1e-05,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 normalize_first: bool = False, **kwargs: Any):
        super().__init__(intermediate_dim, num_heads, dropout, activation, layer_norm_epsilon,
                         kernel_initializer, bias_initializer, normalize_first, **kwargs)

    def forward(self, decoder_sequence: Any, encoder_sequence: Any = None, **kwargs: Any) -> Any:
        # The base class builds from positional arguments: pass the encoder sequence that way.
        if encoder_sequence is None:
            return super().forward(decoder_sequence, **kwargs)
        return super().forward(decoder_sequence, encoder_sequence, **kwargs)

    def build(self, decoder_sequence_shape, encoder_sequence_shape=None):
        if not isinstance(decoder_sequence_shape, (list, tuple)):
            # The base class unpacked a rank-2 shape into the two arguments.
            shape = (decoder_sequence_shape, encoder_sequence_shape)
            check_input_rank(self, shape, rank=3, description="(batch, sequence, hidden_dim)")
        hidden_dim, head_dim = _hidden_and_head_dims(self, decoder_sequence_shape, self.num_heads)
        self.self_attention = self._attention("self_attention", decoder_sequence_shape,
                                              decoder_sequence_shape, head_dim)
        self.self_attention_layer_norm = self._layer_norm("self_attention_layer_norm",
                                                          decoder_sequence_shape)
        self.self_attention_dropout = Dropout(self.dropout, name="self_attention_dropout")
        self.cross_attention = None
        if encoder_sequence_shape is not None:
            if len(encoder_sequence_shape) != 3:
                raise ShapeError(
                    f"Layer {self.name!r} (TransformerDecoder) expects an encoder sequence of rank "
                    f"3, (batch, sequence, features), but received shape "
                    f"{tuple(encoder_sequence_shape)}."
                )
            self.cross_attention = self._attention("cross_attention", decoder_sequence_shape,
                                                   encoder_sequence_shape, head_dim,
                                                   value_dim=head_dim)
            self.cross_attention_layer_norm = self._layer_norm("cross_attention_layer_norm",
                                                               decoder_sequence_shape)
            self.cross_attention_dropout = Dropout(self.dropout, name="cross_attention_dropout")
        # Keras-hub's order: the feed-forward denses before their layer norm.
        self._build_feedforward_denses(decoder_sequence_shape, hidden_dim)
        self.feedforward_layer_norm = self._layer_norm("feedforward_layer_norm",
                                                       decoder_sequence_shape)
        self.feedforward_dropout = Dropout(self.dropout, name="feedforward_dropout")

    def call(self, decoder_sequence, encoder_sequence=None, decoder_padding_mask=None,
             decoder_attention_mask=None, encoder_padding_mask=None, encoder_attention_mask=None,
             use_causal_mask=True, training=None):
        has_cross_attention = self.cross_attention is not None
        if has_cross_attention != (encoder_sequence is not None):
            built = "with" if has_cross_attention else "without"
            given = "without" if has_cross_attention else "with"
            raise ValueError(
                f"Layer {self.name!r} (TransformerDecoder) was built {built} cross-attention "
                f"(by its first call) but is now called {given} an encoder_sequence. The number of "
                "call arguments must not change: use layer(decoder_sequence, encoder_sequence) "
                "for a block with cross-attention, or layer(decoder_sequence) for one without."
            )
        if decoder_padding_mask is None:
            decoder_padding_mask = getattr(decoder_sequence, "_keras_mask", None)
        length = decoder_sequence.shape[1]
        _check_block_masks(self, decoder_sequence, decoder_padding_mask, decoder_attention_mask,
                           length, ("decoder_padding_mask", "decoder_attention_mask"))

        x = self._pre_norm(decoder_sequence, self.self_attention_layer_norm)
        x = self.self_attention(
            x, x, query_mask=decoder_padding_mask, value_mask=decoder_padding_mask,
            attention_mask=decoder_attention_mask, use_causal_mask=use_causal_mask,
            training=training)
        x = self.self_attention_dropout(x, training=training)
        x = self._add_and_norm(decoder_sequence, x, self.self_attention_layer_norm)
        if has_cross_attention:
            if encoder_padding_mask is None:
                encoder_padding_mask = getattr(encoder_sequence, "_keras_mask", None)
            _check_block_masks(self, encoder_sequence, encoder_padding_mask, None, 0,
                               ("encoder_padding_mask", ""))
            _check_block_masks(self, decoder_sequence, None, encoder_attention_mask,
                               encoder_sequence.shape[1], ("", "encoder_attention_mask"))
            residual = x
            x = self._pre_norm(x, self.cross_attention_layer_norm)
            x = self.cross_attention(
                x, encoder_sequence, query_mask=decoder_padding_mask,
                value_mask=encoder_padding_mask, attention_mask=encoder_attention_mask,
                training=training)
            x = self.cross_attention_dropout(x, training=training)
            x = self._add_and_norm(residual, x, self.cross_attention_layer_norm)
        return self._feedforward_block(x, training)
