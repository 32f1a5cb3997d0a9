"""Attention layers: MultiHeadAttention (Vaswani et al., 2017), Attention (Luong dot-product)
and AdditiveAttention (Bahdanau).

Scaled dot-product attention (Vaswani et al., 2017) is `softmax(Q K^T / sqrt(d_k)) V`. MultiHeadAttention
runs it through `torch.nn.functional.scaled_dot_product_attention` (a fused kernel) unless the
attention scores are asked for. Masks follow Keras: a boolean mask (True = attend) becomes an
additive bias of -1e9 on the scores (-3e4 in float16), so a query whose keys are all masked
attends uniformly, as in Keras and PyTorch's usual `masked_fill(mask == 0, -1e9)`.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from lamina import constraints as constraints_module
from lamina import initializers as initializers_module
from lamina import regularizers as regularizers_module
from lamina._registry import register
from lamina.errors import ShapeError
from lamina.layers.core import Dropout, check_positive_int, check_rate, serialize_argument
from lamina.layers.layer import Layer

Tensor = torch.Tensor


def large_negative(dtype: torch.dtype) -> float:
    """The bias that masks a score: -1e9, or -3e4 in float16 whose range ends at 65504."""
    return -3e4 if dtype == torch.float16 else -1e9


def mask_to_bias(mask: Tensor, dtype: torch.dtype, value: float | None = None) -> Tensor:
    """A boolean mask (True = keep) as an additive bias: 0 where kept, a large negative
    elsewhere."""
    fill = large_negative(dtype) if value is None else value
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, fill)


def causal_mask(query_length: int, key_length: int, device: torch.device) -> Tensor:
    """`(query_length, key_length)` booleans, True where key position <= query position."""
    return torch.ones(query_length, key_length, dtype=torch.bool, device=device).tril()


def _shape_text(shape: Sequence[Any]) -> str:
    return str(tuple(shape))


def _describe(inputs: Any) -> str:
    """An argument as an error message shows it: tensors by their shapes."""
    if isinstance(inputs, Tensor):
        return f"a tensor of shape {tuple(inputs.shape)}"
    if isinstance(inputs, (list, tuple)):
        items = ", ".join(str(tuple(x.shape)) if isinstance(x, Tensor) else repr(x) for x in inputs)
        return f"a {type(inputs).__name__} of {len(inputs)}: [{items}]"
    return repr(inputs)


@register("MultiHeadAttention")
class MultiHeadAttention(Layer):
    """Multi-head attention (Vaswani et al., 2017): each head computes
    `softmax(Q_h K_h^T / sqrt(key_dim)) V_h` on its own projections, and the heads' outputs are
    concatenated and projected back.

    `query`, `key`, `value` of shapes `(B, T, dim)`, `(B, S, dim_k)`, `(B, S, dim_v)` are projected
    to `(B, T, num_heads, key_dim)`, `(B, S, num_heads, key_dim)` and
    `(B, S, num_heads, value_dim)`; if `query`, `key` and `value` are the same tensor this is
    self-attention. Higher-rank inputs `(B, d1, ..., dn, dim)` attend over `attention_axes`
    (default: all of d1..dn, flattened) and treat the other axes as batch axes.

    Weights use Keras's layouts and order: query/key/value kernels `(dim, num_heads, key_dim)`
    (value: `value_dim`), biases `(num_heads, key_dim)`, output kernel
    `(num_heads, value_dim, *output_shape)` and bias `output_shape`.

    Args:
        num_heads: number of attention heads.
        key_dim: size of each head for query and key.
        value_dim: size of each head for value (default: `key_dim`).
        dropout: dropout rate on the attention probabilities.
        use_bias: whether the projections have biases.
        output_shape: shape of the output besides the batch and sequence axes (an int or a
            tuple); default: the query's last dimension.
        attention_axes: the input axes attention is applied over (default: all but the batch
            and feature axes).
        flash_attention: None (automatic: the fused kernel whenever scores are not requested),
            True (always the fused kernel: returning scores or dropout is then an error, as in
            Keras) or False (always the explicit softmax path).
        seed: makes the dropout masks reproducible (runs the explicit path in training).

    Call arguments: `query`, `value`, `key=None`, `query_mask`, `value_mask`, `key_mask`
    (default: the inputs' Keras masks, e.g. from `Embedding(mask_zero=True)`), `attention_mask`
    (booleans `(B, T, S)`, True = attend), `return_attention_scores`, `training`,
    `use_causal_mask` (position t attends only to positions <= t).

    Returns `(B, T, E)` (E = the query's last dimension or `output_shape`) and, with
    `return_attention_scores=True`, the attention probabilities `(B, num_heads, T, S)`.

    >>> layer = MultiHeadAttention(num_heads=2, key_dim=4)
    >>> layer(torch.ones(1, 3, 8), torch.ones(1, 5, 8)).shape
    torch.Size([1, 3, 8])

    The activity regularizer, if any, applies to the layer's output (Keras applies it to each of
    the four projections' outputs).
    """

    # Keras keeps these weights in EinsumDense sublayers; weights files store them there.
    _keras_weight_groups = {"query": "query_dense", "key": "key_dense", "value": "value_dense",
                            "attention_output": "output_dense"}

    def __init__(
        self,
        num_heads: int,
        key_dim: int,
        value_dim: int | None = None,
        dropout: float = 0.0,
        use_bias: bool = True,
        output_shape: int | Sequence[int] | None = None,
        attention_axes: int | Sequence[int] | None = None,
        flash_attention: bool | None = None,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        seed: int | None = None,
        **kwargs: Any,
    ):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.num_heads = check_positive_int("num_heads", num_heads, layer=self)
        self.key_dim = check_positive_int("key_dim", key_dim, layer=self)
        self.value_dim = self.key_dim if value_dim is None else check_positive_int(
            "value_dim", value_dim, layer=self)
        self.dropout = check_rate("dropout", dropout)
        self.use_bias = bool(use_bias)
        if output_shape is not None:
            shape = (output_shape,) if isinstance(output_shape, numbers.Integral) else output_shape
            if not isinstance(shape, (list, tuple)) or not shape or any(
                    isinstance(d, bool) or not isinstance(d, numbers.Integral) or d <= 0
                    for d in shape):
                raise ValueError(
                    f"Layer {self.name!r} (MultiHeadAttention): `output_shape` must be a positive "
                    "integer or a tuple of positive integers. Received: "
                    f"output_shape={output_shape!r}."
                )
            output_shape = tuple(int(d) for d in shape)
        # Not `self.output_shape`: that name is the base Layer's inferred output shape.
        self._attention_output_shape = output_shape
        if attention_axes is not None:
            axes = (attention_axes,) if isinstance(attention_axes, numbers.Integral) \
                else attention_axes
            if not isinstance(axes, (list, tuple)) or not axes or any(
                    isinstance(a, bool) or not isinstance(a, numbers.Integral) for a in axes):
                raise ValueError(
                    f"Layer {self.name!r} (MultiHeadAttention): `attention_axes` must be an int, "
                    f"list, or tuple of ints. Received: attention_axes={attention_axes!r}."
                )
            attention_axes = tuple(int(a) for a in axes)
        self.attention_axes = attention_axes
        if flash_attention not in (None, True, False):
            raise ValueError(
                f"`flash_attention` must be None, True or False. Received: "
                f"flash_attention={flash_attention!r}."
            )
        if flash_attention and self.dropout > 0:
            raise ValueError(
                f"Layer {self.name!r} (MultiHeadAttention): dropout is not supported when "
                f"flash_attention=True (received dropout={self.dropout}). Set dropout=0.0 or "
                "flash_attention=None."
            )
        self.flash_attention = flash_attention
        self.kernel_initializer = initializers_module.get(kernel_initializer)
        self.bias_initializer = initializers_module.get(bias_initializer)
        self.kernel_regularizer = regularizers_module.get(kernel_regularizer)
        self.bias_regularizer = regularizers_module.get(bias_regularizer)
        self.kernel_constraint = constraints_module.get(kernel_constraint)
        self.bias_constraint = constraints_module.get(bias_constraint)
        self.seed = seed
        self._scale = 1.0 / math.sqrt(self.key_dim)
        # Masks are consumed here (turned into attention masks), so the base class must not
        # forward the query's mask on its own: `call` sets the output's mask itself.
        self.supports_masking = False

    # ----------------------------------------------------------------- build

    def forward(self, query: Any, value: Any, key: Any = None, **kwargs: Any) -> Any:
        # Keras lets query/value/key come by keyword; the base class builds from positional
        # arguments only, so hand them over positionally (key only when given).
        if key is None:
            return super().forward(query, value, **kwargs)
        return super().forward(query, value, key, **kwargs)

    def build(self, query_shape, value_shape=None, key_shape=None):
        if value_shape is None and query_shape and isinstance(query_shape[0], (list, tuple)):
            # Called by the base class with the shapes of all positional inputs in one tuple.
            shapes = list(query_shape)
            query_shape, value_shape = shapes[0], shapes[1]
            key_shape = shapes[2] if len(shapes) > 2 else None
        if value_shape is None:
            raise ValueError(
                f"Layer {self.name!r} (MultiHeadAttention) needs both a query and a value. Call "
                "it as layer(query, value) (value may be the query itself, for self-attention)."
            )
        query_shape, value_shape = tuple(query_shape), tuple(value_shape)
        key_shape = value_shape if key_shape is None else tuple(key_shape)
        self._check_build_shapes(query_shape, value_shape, key_shape)
        rank = len(query_shape)
        self._resolve_attention_axes(rank, query_shape)
        heads, output_dims = self.num_heads, self._attention_output_shape or (query_shape[-1],)
        self._query_dim, self._key_input_dim, self._value_input_dim = (
            query_shape[-1], key_shape[-1], value_shape[-1])
        self._output_dims = output_dims
        self._output_size = math.prod(output_dims)

        def kernel(shape, name):
            return self.add_weight(shape=shape, initializer=self.kernel_initializer,
                                   regularizer=self.kernel_regularizer,
                                   constraint=self.kernel_constraint, name=name)

        def bias(shape, name):
            if not self.use_bias:
                return None
            return self.add_weight(shape=shape, initializer=self.bias_initializer,
                                   regularizer=self.bias_regularizer,
                                   constraint=self.bias_constraint, name=name)

        # Keras's order: query, key, value, output, each kernel then bias.
        self.query_kernel = kernel((query_shape[-1], heads, self.key_dim), "query/kernel")
        self.query_bias = bias((heads, self.key_dim), "query/bias")
        self.key_kernel = kernel((key_shape[-1], heads, self.key_dim), "key/kernel")
        self.key_bias = bias((heads, self.key_dim), "key/bias")
        self.value_kernel = kernel((value_shape[-1], heads, self.value_dim), "value/kernel")
        self.value_bias = bias((heads, self.value_dim), "value/bias")
        self.output_kernel = kernel((heads, self.value_dim) + tuple(output_dims),
                                    "attention_output/kernel")
        self.output_bias = bias(tuple(output_dims), "attention_output/bias")
        self.dropout_layer = Dropout(self.dropout, seed=self.seed, dtype=self._dtype,
                                     name=f"{self.name}_dropout")

    def _check_build_shapes(self, query_shape, value_shape, key_shape) -> None:
        layer = f"Layer {self.name!r} (MultiHeadAttention)"
        if len(query_shape) < 3:
            raise ShapeError(
                f"{layer} expects a query of rank >= 3, (batch, sequence..., features), but "
                f"received a query of shape {_shape_text(query_shape)}."
            )
        if len(value_shape) != len(query_shape) or len(key_shape) != len(query_shape):
            raise ShapeError(
                f"{layer} expects query, value and key of the same rank. Received query shape "
                f"{_shape_text(query_shape)}, value shape {_shape_text(value_shape)}, key shape "
                f"{_shape_text(key_shape)}."
            )
        if any(a is not None and b is not None and a != b
               for a, b in zip(value_shape[1:-1], key_shape[1:-1])):
            raise ShapeError(
                f"{layer}: all dimensions of `value` and `key`, except the last one, must be "
                f"equal. Received value shape {_shape_text(value_shape)} and key shape "
                f"{_shape_text(key_shape)}."
            )
        for role, shape in (("query", query_shape), ("value", value_shape), ("key", key_shape)):
            if shape[-1] is None:
                raise ShapeError(
                    f"{layer} needs the last (feature) axis of `{role}` to be known to create its "
                    f"projection. Received {role} shape {_shape_text(shape)}."
                )

    def _resolve_attention_axes(self, rank: int, query_shape: tuple) -> None:
        """Precompute the permutations between Keras's layout and the heads layout
        `(*batch axes, heads, attention positions, head_dim)` that torch's attention takes."""
        if self.attention_axes is None:
            axes = tuple(range(1, rank - 1))
        else:
            # Negative axes count from the end of the input, as in Keras.
            axes = tuple(a if a >= 0 else rank + a for a in self.attention_axes)
            if any(not 1 <= a <= rank - 2 for a in axes) or len(set(axes)) != len(axes):
                raise ValueError(
                    f"Layer {self.name!r} (MultiHeadAttention): `attention_axes` must be distinct "
                    f"axes of the input other than the batch axis (0) and the feature axis (-1); "
                    f"for an input of shape {_shape_text(query_shape)} that is any of "
                    f"{list(range(1, rank - 1))}. Received: attention_axes={self.attention_axes}."
                )
        batch_axes = tuple(a for a in range(rank - 1) if a not in axes)
        heads_axis, depth_axis = rank - 1, rank
        # Projected tensors are (B, d1..dn, heads, depth): rank + 1 axes.
        self._axes = axes
        self._batch_axes = batch_axes
        self._to_heads_order = batch_axes + (heads_axis,) + axes + (depth_axis,)
        self._from_heads_order = tuple(self._to_heads_order.index(i) for i in range(rank + 1))
        self._simple = axes == (1,) and batch_axes == (0,)

    # ----------------------------------------------------------------- call

    def call(self, query, value, key=None, query_mask=None, value_mask=None, key_mask=None,
             attention_mask=None, return_attention_scores=False, training=None,
             use_causal_mask=False):
        if return_attention_scores and self.flash_attention is True:
            raise ValueError(
                f"Layer {self.name!r} (MultiHeadAttention): returning attention scores is not "
                "supported when flash_attention=True. Create the layer with "
                "flash_attention=None to get the scores."
            )
        if key is None:
            key = value
        self._check_features(query, value, key)
        if query_mask is None:
            query_mask = getattr(query, "_keras_mask", None)
        if value_mask is None:
            value_mask = getattr(value, "_keras_mask", None)
        if key_mask is None and key is not value:
            key_mask = getattr(key, "_keras_mask", None)

        q = self._to_heads(self._project(query, self.query_kernel, self.query_bias))
        k = self._to_heads(self._project(key, self.key_kernel, self.key_bias))
        v = self._to_heads(self._project(value, self.value_kernel, self.value_bias))
        # q: (*batch, heads, T, key_dim); k: (*batch, heads, S, key_dim); v: (..., S, value_dim)
        mask = self._combined_mask(query, key, query_mask, value_mask, key_mask, attention_mask)
        dropping = bool(training) and self.dropout > 0
        fused = self.flash_attention is True or (
            self.flash_attention is None and not return_attention_scores
            and not (dropping and self.seed is not None))
        if fused:
            causal_only = use_causal_mask and mask is None
            if use_causal_mask and mask is not None:
                mask = mask & causal_mask(q.shape[-2], k.shape[-2], q.device)
            bias = None if mask is None else mask_to_bias(mask, q.dtype)
            outputs = F.scaled_dot_product_attention(
                q, k, v, attn_mask=bias, dropout_p=self.dropout if dropping else 0.0,
                is_causal=causal_only, scale=self._scale)
            scores = None
        else:
            if use_causal_mask:
                causal = causal_mask(q.shape[-2], k.shape[-2], q.device)
                mask = causal if mask is None else mask & causal
            # Keras scales the query before the product.
            logits = torch.matmul(q * self._scale, k.transpose(-2, -1))
            if mask is not None:
                logits = logits + mask_to_bias(mask, logits.dtype)
            scores = torch.softmax(logits, dim=-1)
            probabilities = self.dropout_layer(scores, training=True) if dropping else scores
            outputs = torch.matmul(probabilities, v)
        result = self._output_projection(self._from_heads(outputs, query.shape))
        if query_mask is not None:
            result._keras_mask = query_mask
        if return_attention_scores:
            return result, self._scores_in_keras_layout(scores, query.shape, key.shape)
        return result

    def _check_features(self, query: Tensor, value: Tensor, key: Tensor) -> None:
        rank = len(self._to_heads_order) - 1
        if query.shape[-1] == self._query_dim and value.shape[-1] == self._value_input_dim \
                and key.shape[-1] == self._key_input_dim \
                and query.ndim == value.ndim == key.ndim == rank:
            return
        for role, tensor, expected in (("query", query, self._query_dim),
                                       ("value", value, self._value_input_dim),
                                       ("key", key, self._key_input_dim)):
            if tensor.shape[-1] != expected or tensor.ndim != rank:
                raise ShapeError(
                    f"Layer {self.name!r} (MultiHeadAttention) was built for a {role} of rank "
                    f"{rank} with last dimension {expected}, but "
                    f"received a {role} of shape {tuple(tensor.shape)}. Its projection kernel has "
                    f"shape ({expected}, {self.num_heads}, "
                    f"{self.value_dim if role == 'value' else self.key_dim})."
                )

    def _project(self, inputs: Tensor, kernel: Tensor, bias: Tensor | None) -> Tensor:
        """`(B, ..., dim) -> (B, ..., heads, depth)`; the kernel stays in Keras's layout."""
        outputs = F.linear(inputs, kernel.flatten(1).t(), None if bias is None else bias.flatten())
        return outputs.view(*outputs.shape[:-1], *kernel.shape[1:])

    def _to_heads(self, projected: Tensor) -> Tensor:
        if self._simple:
            return projected.transpose(1, 2)
        heads = projected.permute(self._to_heads_order)
        first = len(self._batch_axes) + 1
        return heads.flatten(first, first + len(self._axes) - 1)

    def _from_heads(self, outputs: Tensor, query_shape: torch.Size) -> Tensor:
        """`(*batch, heads, T, value_dim) -> (B, d1..dn, heads * value_dim)`."""
        if self._simple:
            return outputs.transpose(1, 2).flatten(-2)
        first = len(self._batch_axes) + 1
        attention_sizes = tuple(query_shape[a] for a in self._axes)
        outputs = outputs.unflatten(first, attention_sizes).permute(self._from_heads_order)
        return outputs.flatten(-2)

    def _output_projection(self, outputs: Tensor) -> Tensor:
        flat_kernel = self.output_kernel.reshape(-1, self._output_size)
        bias = None if self.output_bias is None else self.output_bias.reshape(-1)
        result = F.linear(outputs, flat_kernel.t(), bias)
        if len(self._output_dims) > 1:
            result = result.view(*result.shape[:-1], *self._output_dims)
        return result

    def _scores_in_keras_layout(self, scores: Tensor, query_shape, key_shape) -> Tensor:
        """`(*batch, heads, T, S)` with the attention axes flattened -> Keras's
        `(*batch, heads, *query attention axes, *key attention axes)`."""
        if self._simple:
            return scores
        sizes = tuple(query_shape[a] for a in self._axes) + tuple(key_shape[a] for a in self._axes)
        return scores.reshape(scores.shape[:-2] + sizes)

    def _combined_mask(self, query, key, query_mask, value_mask, key_mask,
                       attention_mask) -> Tensor | None:
        """AND of the padding masks and `attention_mask`, in the heads layout
        `(*batch or 1, heads or 1, T, S)`; None if there is no mask (Keras's
        `_compute_attention_mask`)."""
        mask = None
        if query_mask is not None:
            # (*batch, T) -> (*batch, 1, T, 1)
            mask = self._padding_mask(query_mask, query, "query_mask").unsqueeze(-1)
        for name, padding in (("value_mask", value_mask), ("key_mask", key_mask)):
            if padding is not None:
                # (*batch, S) -> (*batch, 1, 1, S)
                padding = self._padding_mask(padding, key, name).unsqueeze(-2)
                mask = padding if mask is None else mask & padding
        if attention_mask is not None:
            attention_mask = self._attention_mask(attention_mask, query, key)
            mask = attention_mask if mask is None else mask & attention_mask
        return mask

    def _padding_mask(self, padding: Tensor, inputs: Tensor, name: str) -> Tensor:
        if tuple(padding.shape) != tuple(inputs.shape[:-1]):
            raise ShapeError(
                f"Layer {self.name!r} (MultiHeadAttention): `{name}` must have the shape of its "
                f"input without the feature axis, {tuple(inputs.shape[:-1])}, but received a "
                f"mask of shape {tuple(padding.shape)}."
            )
        padding = padding.to(torch.bool)
        if self._simple:
            return padding.unsqueeze(1)
        heads = padding.unsqueeze(-1).permute(self._to_heads_order[:-1])
        first = len(self._batch_axes) + 1
        return heads.flatten(first, first + len(self._axes) - 1)

    def _attention_mask(self, attention_mask: Tensor, query: Tensor, key: Tensor) -> Tensor:
        """Keras's `(*batch, *query attention axes, *key attention axes)` booleans -> heads
        layout; missing leading axes broadcast and the heads axis is inserted as Keras does."""
        axes = self._axes
        batch_sizes = tuple(query.shape[a] for a in self._batch_axes)
        query_sizes = tuple(query.shape[a] for a in axes)
        key_sizes = tuple(key.shape[a] for a in axes)
        scores_shape = batch_sizes + (self.num_heads,) + query_sizes + key_sizes
        mask = attention_mask.to(torch.bool)
        # Keras inserts the heads axis in front of the attention axes until the ranks agree, so
        # a (B, T, S) mask serves every head and a (B, heads, T, S) one each head separately.
        fits = mask.ndim <= len(scores_shape)
        if fits:
            for _ in range(len(scores_shape) - mask.ndim):
                mask = mask.unsqueeze(-2 * len(axes) - 1)
            try:
                fits = tuple(torch.broadcast_shapes(mask.shape, scores_shape)) == scores_shape
            except RuntimeError:
                fits = False
        if not fits:
            expected = batch_sizes + query_sizes + key_sizes
            raise ShapeError(
                f"Layer {self.name!r} (MultiHeadAttention): `attention_mask` must be booleans of "
                f"shape {expected} (batch, query length, key length), or broadcastable to it; "
                f"received a mask of shape {tuple(attention_mask.shape)} for a query of shape "
                f"{tuple(query.shape)} and a key of shape {tuple(key.shape)}."
            )
        if len(axes) > 1:
            mask = mask.expand(mask.shape[:-2 * len(axes)] + query_sizes + key_sizes)
            mask = mask.flatten(-len(axes), -1).flatten(-1 - len(axes), -2)
        return mask

    # ----------------------------------------------------------------- shapes and config

    def compute_output_shape(self, query_shape, value_shape, key_shape=None):
        query_shape, value_shape = tuple(query_shape), tuple(value_shape)
        key_shape = value_shape if key_shape is None else tuple(key_shape)
        if any(a is not None and b is not None and a != b
               for a, b in zip(value_shape[1:-1], key_shape[1:-1])):
            raise ShapeError(
                f"Layer {self.name!r} (MultiHeadAttention): all dimensions of `value` and `key`, "
                f"except the last one, must be equal. Received value shape "
                f"{_shape_text(value_shape)} and key shape {_shape_text(key_shape)}."
            )
        if self._attention_output_shape:
            return query_shape[:-1] + self._attention_output_shape
        return query_shape

    def get_config(self):
        output_shape = self._attention_output_shape
        axes = self.attention_axes
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "value_dim": self.value_dim,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "output_shape": None if output_shape is None else list(output_shape),
            "attention_axes": None if axes is None else list(axes),
            "flash_attention": self.flash_attention,
            "kernel_initializer": serialize_argument(self.kernel_initializer),
            "bias_initializer": serialize_argument(self.bias_initializer),
            "kernel_regularizer": serialize_argument(self.kernel_regularizer),
            "bias_regularizer": serialize_argument(self.bias_regularizer),
            "kernel_constraint": serialize_argument(self.kernel_constraint),
            "bias_constraint": serialize_argument(self.bias_constraint),
            "seed": self.seed,
        }


class _DenseAttention(Layer):
    """Base of Attention and AdditiveAttention: `inputs=[query, value(, key)]`,
    `mask=[query_mask, value_mask]`; subclasses define the scores `(B, Tq, Tv)`."""

    # The bias that removes a masked score (Keras's `_apply_scores`: 65504 in float16).
    _float16_bias = -65504.0

    def __init__(self, use_scale: bool, dropout: float, seed: int | None, **kwargs: Any):
        super().__init__(**kwargs)
        self.use_scale = bool(use_scale)
        self.dropout = check_rate("dropout", dropout)
        self.seed = seed
        self.supports_masking = False

    def build(self, input_shape):
        shapes = self._check_inputs(input_shape)
        query_shape, value_shape, key_shape = shapes
        layer = f"Layer {self.name!r} ({type(self).__name__})"
        if len(query_shape) != 3 or len(value_shape) != 3 or len(key_shape) != 3:
            raise ShapeError(
                f"{layer} expects query, value and key of rank 3, (batch, time, features). "
                f"Received shapes {[tuple(s) for s in shapes]}."
            )
        if query_shape[-1] is not None and key_shape[-1] is not None and \
                query_shape[-1] != key_shape[-1]:
            raise ShapeError(
                f"{layer} compares queries with keys, so their last dimensions must be equal. "
                f"Received query shape {tuple(query_shape)} and key shape {tuple(key_shape)}."
            )
        if value_shape[1] is not None and key_shape[1] is not None and \
                value_shape[1] != key_shape[1]:
            raise ShapeError(
                f"{layer}: value and key must have the same number of time steps. Received "
                f"value shape {tuple(value_shape)} and key shape {tuple(key_shape)}."
            )
        self._build_scores(query_shape[-1])
        self.dropout_layer = Dropout(self.dropout, seed=self.seed, dtype=self._dtype,
                                     name=f"{self.name}_dropout")

    def _build_scores(self, dim: int | None) -> None:
        raise NotImplementedError

    def _check_inputs(self, inputs: Any) -> list:
        layer = f"Layer {self.name!r} ({type(self).__name__})"
        # In build the entries are shapes, in call tensors; a bare tensor (or its shape, a
        # tuple of ints) is not a list of inputs.
        if not isinstance(inputs, (list, tuple)) or not 2 <= len(inputs) <= 3 or any(
                not isinstance(x, (Tensor, list, tuple)) for x in inputs):
            raise ValueError(
                f"{layer} must be called on a list of inputs, namely [query, value] or "
                f"[query, value, key]. Received: {_describe(inputs)}."
            )
        inputs = list(inputs)
        return [inputs[0], inputs[1], inputs[2] if len(inputs) > 2 else inputs[1]]

    # The feature size the weights fix (AdditiveAttention's scale vector), else None.
    _feature_dim: int | None = None

    def _check_call_shapes(self, query: Tensor, value: Tensor, key: Tensor) -> None:
        dim = query.shape[-1]
        if query.ndim == value.ndim == key.ndim == 3 and key.shape[-1] == dim and \
                value.shape[1] == key.shape[1] and self._feature_dim in (None, dim):
            return
        expected = "" if self._feature_dim is None else f" of size {self._feature_dim}"
        raise ShapeError(
            f"Layer {self.name!r} ({type(self).__name__}) expects a query (batch, Tq, dim) and "
            f"a key (batch, Tv, dim) with the same last dimension{expected}, and a value "
            f"(batch, Tv, dim_v). Received query shape {tuple(query.shape)}, value shape "
            f"{tuple(value.shape)}, key shape {tuple(key.shape)}."
        )

    def _check_mask(self, mask: Any, query: Tensor, value: Tensor) -> tuple:
        layer = f"Layer {self.name!r} ({type(self).__name__})"
        if not isinstance(mask, (list, tuple)) or not 2 <= len(mask) <= 3:
            raise ValueError(
                f"{layer}: `mask` must be a list [query_mask, value_mask]. Received: "
                f"{_describe(mask)}."
            )
        query_mask, value_mask = mask[0], mask[1]
        for name, m, tensor in (("query_mask", query_mask, query),
                                ("value_mask", value_mask, value)):
            if m is not None and tuple(m.shape) != tuple(tensor.shape[:-1]):
                raise ShapeError(
                    f"{layer}: `{name}` must have shape {tuple(tensor.shape[:-1])} (batch, time), "
                    f"but received a mask of shape {tuple(m.shape)}."
                )
        return query_mask, value_mask

    def call(self, inputs, mask=None, training=None, return_attention_scores=False,
             use_causal_mask=False):
        query, value, key = self._check_inputs(inputs)
        self._check_call_shapes(query, value, key)
        if mask is None:
            mask = [getattr(query, "_keras_mask", None), getattr(value, "_keras_mask", None)]
        query_mask, value_mask = self._check_mask(mask, query, value)
        scores_mask = None
        if value_mask is not None:
            scores_mask = value_mask.to(torch.bool).unsqueeze(-2)  # (B, 1, Tv)
        if use_causal_mask:
            causal = causal_mask(query.shape[-2], value.shape[-2], query.device)
            scores_mask = causal if scores_mask is None else scores_mask & causal
        bias = None
        if scores_mask is not None:
            fill = self._float16_bias if query.dtype == torch.float16 else -1e9
            bias = mask_to_bias(scores_mask, query.dtype, fill)
        dropping = bool(training) and self.dropout > 0
        result = weights = None
        if not return_attention_scores and not (dropping and self.seed is not None):
            result = self._fused(query, key, value, bias, self.dropout if dropping else 0.0)
        if result is None:
            scores = self._scores(query, key)
            if bias is not None:
                scores = scores + bias
            weights = torch.softmax(scores, dim=-1)
            if dropping:
                weights = self.dropout_layer(weights, training=True)
            result = torch.matmul(weights, value)
        if query_mask is not None:
            result = result * query_mask.unsqueeze(-1).to(result.dtype)
            result._keras_mask = query_mask
        if return_attention_scores:
            return result, weights
        return result

    def _scores(self, query: Tensor, key: Tensor) -> Tensor:
        raise NotImplementedError

    def _fused(self, query: Tensor, key: Tensor, value: Tensor, bias: Tensor | None,
               dropout_p: float) -> Tensor | None:
        """The result through torch's fused attention kernel, or None if the scores have no
        fused form (the caller then computes them explicitly)."""
        return None

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0][:-1]) + (input_shape[1][-1],)

    def get_config(self):
        return {**super().get_config(), "use_scale": self.use_scale, "dropout": self.dropout,
                "seed": self.seed}


@register("Attention")
class Attention(_DenseAttention):
    """Dot-product attention, a.k.a. Luong-style attention:
    `scores = query @ key^T` (times a learned scalar `scale` if `use_scale`),
    `output = softmax(scores) @ value`.

    `score_mode="concat"` scores with `concat_score_weight * sum(tanh(scale * (query + key)))`
    instead.

    Args:
        use_scale: learn a scalar that scales the scores.
        score_mode: "dot" or "concat".
        dropout: dropout rate on the attention distribution.
        seed: makes the dropout masks reproducible.

    Call: `layer([query, value])` or `layer([query, value, key])` with shapes `(B, Tq, dim)`,
    `(B, Tv, dim_v)`, `(B, Tv, dim)`; `mask=[query_mask, value_mask]` (default: the inputs'
    Keras masks); `return_attention_scores`; `use_causal_mask`. Returns `(B, Tq, dim_v)` (zero
    at masked query steps) and optionally the attention distribution `(B, Tq, Tv)`.

    >>> Attention()([torch.ones(2, 3, 4), torch.ones(2, 5, 4)]).shape
    torch.Size([2, 3, 4])
    """

    def __init__(self, use_scale: bool = False, score_mode: str = "dot", dropout: float = 0.0,
                 seed: int | None = None, **kwargs: Any):
        super().__init__(use_scale=use_scale, dropout=dropout, seed=seed, **kwargs)
        if score_mode not in ("dot", "concat"):
            raise ValueError(
                "Invalid value for argument score_mode. Expected one of {'dot', 'concat'}. "
                f"Received: score_mode={score_mode!r}."
            )
        self.score_mode = score_mode

    def _build_scores(self, dim):
        self.scale = self.add_weight(shape=(), initializer="ones", name="scale") \
            if self.use_scale else None
        self.concat_score_weight = self.add_weight(
            shape=(), initializer="ones", name="concat_score_weight") \
            if self.score_mode == "concat" else None

    def _scores(self, query, key):
        if self.score_mode == "dot":
            scores = torch.matmul(query, key.transpose(-2, -1))
            return scores * self.scale if self.scale is not None else scores
        # (B, Tq, 1, dim) + (B, 1, Tv, dim) -> (B, Tq, Tv, dim)
        pairs = query.unsqueeze(-2) + key.unsqueeze(-3)
        if self.scale is not None:
            pairs = self.scale * pairs
        return self.concat_score_weight * torch.tanh(pairs).sum(dim=-1)

    def _fused(self, query, key, value, bias, dropout_p):
        if self.score_mode != "dot":
            return None
        # (scale * q) . k = scale * (q . k); torch's kernel then adds the bias.
        if self.scale is not None:
            query = query * self.scale
        return F.scaled_dot_product_attention(query, key, value, attn_mask=bias,
                                              dropout_p=dropout_p, scale=1.0)

    def get_config(self):
        return {**super().get_config(), "score_mode": self.score_mode}


@register("AdditiveAttention")
class AdditiveAttention(_DenseAttention):
    """Additive attention, a.k.a. Bahdanau-style attention:
    `scores = sum(scale * tanh(query + key), axis=-1)` over the feature axis, with `scale` a
    learned vector (if `use_scale`), then `output = softmax(scores) @ value`.

    Args:
        use_scale: learn a per-feature scale vector of shape `(dim,)`.
        dropout: dropout rate on the attention distribution.
        seed: makes the dropout masks reproducible.

    Call arguments and shapes as `Attention`.

    >>> AdditiveAttention()([torch.ones(2, 3, 4), torch.ones(2, 5, 4)]).shape
    torch.Size([2, 3, 4])
    """

    def __init__(self, use_scale: bool = True, dropout: float = 0.0, seed: int | None = None,
                 **kwargs: Any):
        super().__init__(use_scale=use_scale, dropout=dropout, seed=seed, **kwargs)

    def _build_scores(self, dim):
        if self.use_scale and dim is None:
            raise ShapeError(
                f"Layer {self.name!r} (AdditiveAttention) needs the feature axis of the query to "
                "be known to create its scale vector."
            )
        self.scale = self.add_weight(shape=(dim,), initializer="glorot_uniform", name="scale") \
            if self.use_scale else None
        self._feature_dim = dim if self.use_scale else None

    def _scores(self, query, key):
        # (B, Tq, 1, dim) + (B, 1, Tv, dim) -> (B, Tq, Tv, dim)
        pairs = torch.tanh(query.unsqueeze(-2) + key.unsqueeze(-3))
        if self.scale is not None:
            pairs = self.scale * pairs
        return pairs.sum(dim=-1)
