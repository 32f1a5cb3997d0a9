"""TextVectorization: raw strings -> token indices or bag-of-words vectors, inside a model.

Torch has no string tensors, so the layer takes Python strings (a `str`, a list of them, or a
numpy array of shape `(batch,)` or `(batch, 1)`), does the string work in Python on the CPU, and
returns int64 (or float) tensors on the layer's device (it follows `.to(device)`).
"""

from __future__ import annotations

import codecs
import numbers
import re
import string
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from lamina._registry import register
from lamina.layers.core import serialize_argument
from lamina.layers.layer import Layer
from lamina.layers.preprocessing.lookup import (
    VocabularyTable,
    charge_padded_width,
    decode_text,
    forward_with_string_probes,
    optional_int,
    read_vocabulary_file,
    refuse_vocabulary_path,
    standardize_output_mode,
    string_array,
)
from lamina.saving.serialization import deserialize

Tensor = torch.Tensor

MASK_TOKEN = ""
OOV_TOKEN = "[UNK]"
_STANDARDIZE = ("lower_and_strip_punctuation", "lower", "strip_punctuation")
_SPLIT = ("whitespace", "character")
_OUTPUT_MODES = ("int", "multi_hot", "count", "tf_idf")
# The ASCII punctuation Keras strips: !"#$%&'()*+,-./:;<=>?@[\]^_`{|}~
_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}]")


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value is None or callable(value) or value in choices:
        return
    raise ValueError(
        f"`{name}` must be one of {', '.join(repr(c) for c in choices)}, None, or a callable. "
        f"Received: {name}={value!r}."
    )


def _ngram_widths(ngrams: Any) -> tuple[int, ...]:
    if ngrams is None:
        return ()
    if isinstance(ngrams, numbers.Integral) and not isinstance(ngrams, bool) and ngrams >= 1:
        return tuple(range(1, int(ngrams) + 1))
    if (isinstance(ngrams, (list, tuple)) and ngrams and all(
            isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 1
            for n in ngrams)):
        return tuple(int(n) for n in ngrams)
    raise ValueError(
        "`ngrams` must be None, a positive integer (all n-grams up to it), or a tuple of positive "
        f"integers (those n-gram sizes). Received: ngrams={ngrams!r}."
    )


@register("TextVectorization")
class TextVectorization(Layer):
    """Maps strings to token indices (`output_mode='int'`) or to per-string token counts.

    Each string is standardized, split into tokens, optionally extended with n-grams, and looked
    up in a vocabulary learned by `adapt(texts)` or given as `vocabulary`. As in Keras, index 0
    is padding ('') and 1 the out-of-vocabulary token '[UNK]' in 'int' mode; the other modes have
    no padding index, so '[UNK]' is 0. `adapt` orders the vocabulary by decreasing frequency,
    ties by decreasing token (Keras's `np.lexsort((tokens, counts))[::-1]`), and keeps the
    `max_tokens` first entries, special tokens included.

    Args:
        max_tokens: the largest vocabulary size, special tokens included.
        standardize: 'lower_and_strip_punctuation', 'lower', 'strip_punctuation', None, or a
            callable `str -> str` (lowercasing is Python's `str.lower`, so it covers Unicode).
        split: 'whitespace', 'character', None (each string is one token), or a callable
            `str -> list[str]`.
        ngrams: None, an integer n (all n-grams up to n), or a tuple of n-gram sizes; n-grams
            join tokens with a space.
        output_mode: 'int' (padded index sequences), 'multi_hot' (1 where a token occurs),
            'count' (occurrences), or 'tf_idf' (`count * log(1 + documents / (1 +
            document_frequency))`; '[UNK]' gets the mean weight).
        output_sequence_length: in 'int' mode, pad or truncate sequences to this length (else
            pad to the longest string of the batch).
        pad_to_max_tokens: in the counting modes, make the output `max_tokens` wide.
        vocabulary: a list of tokens (optionally led by the special tokens) or a path to a text
            file with one token per line.
        idf_weights: with `output_mode='tf_idf'` and a `vocabulary`, one weight per entry.
        sparse, ragged: must be False (torch has no sparse or ragged outputs here).
        encoding: the encoding of `bytes` inputs.

    Input shape: a string, or strings of shape `(batch,)` or `(batch, 1)`.
    Output shape: `(batch, sequence_length)` int64 in 'int' mode, else `(batch, num_tokens)`
    floats.

    >>> layer = TextVectorization(output_sequence_length=4)
    >>> layer.adapt(["foo bar", "bar baz", "baz bada boom"])
    >>> layer(["foo qux bar", "qux baz"])
    tensor([[4, 1, 3, 0],
            [1, 2, 0, 0]])
    """

    def __init__(self, max_tokens: int | None = None,
                 standardize: str | Callable[[str], str] | None = "lower_and_strip_punctuation",
                 split: str | Callable[[str], list[str]] | None = "whitespace",
                 ngrams: int | Sequence[int] | None = None, output_mode: str = "int",
                 output_sequence_length: int | None = None, pad_to_max_tokens: bool = False,
                 vocabulary: Sequence[str] | str | None = None, idf_weights: Any = None,
                 sparse: bool = False, ragged: bool = False, encoding: str = "utf-8",
                 name: str | None = None, **kwargs: Any):
        super().__init__(name=name, **kwargs)
        _check_choice("standardize", standardize, _STANDARDIZE)
        _check_choice("split", split, _SPLIT)
        output_mode = standardize_output_mode(output_mode, _OUTPUT_MODES)
        self._ngram_widths = _ngram_widths(ngrams)
        if ngrams is not None and split is None:
            raise ValueError(
                "`ngrams` needs the strings split into tokens: set `split` (e.g. 'whitespace'). "
                f"Received: ngrams={ngrams!r}, split=None."
            )
        self.max_tokens = optional_int("max_tokens", max_tokens, minimum=2)
        self.output_sequence_length = optional_int("output_sequence_length",
                                                   output_sequence_length, minimum=1)
        if output_sequence_length is not None and output_mode != "int":
            raise ValueError(
                "`output_sequence_length` only applies to output_mode='int'. Received: "
                f"output_sequence_length={output_sequence_length!r}, output_mode={output_mode!r}."
            )
        if pad_to_max_tokens and self.max_tokens is None:
            raise ValueError(
                "`pad_to_max_tokens=True` needs `max_tokens`, the width to pad to. "
                "Received: max_tokens=None."
            )
        for flag, value in (("sparse", sparse), ("ragged", ragged)):
            if value:
                raise ValueError(
                    f"`{flag}=True` is not supported: torch has no {flag} outputs here. Use the "
                    "dense output (in 'int' mode index 0 is padding, and Embedding(mask_zero=True) "
                    "masks it)."
                )
        try:
            codecs.lookup(encoding)
        except (LookupError, TypeError):
            raise ValueError(f"Unknown `encoding`: {encoding!r}. Use e.g. 'utf-8'.") from None
        self.standardize = standardize
        self.split = split
        self.ngrams = tuple(ngrams) if isinstance(ngrams, list) else ngrams
        self.output_mode = output_mode
        self.pad_to_max_tokens = bool(pad_to_max_tokens)
        charge_padded_width(self.max_tokens, self.pad_to_max_tokens, output_mode, self.name)
        self.sparse, self.ragged, self.encoding = bool(sparse), bool(ragged), encoding
        self._table = VocabularyTable(
            self, mask_token=MASK_TOKEN, oov_token=OOV_TOKEN, num_oov_indices=1,
            max_tokens=self.max_tokens, pad_to_max_tokens=self.pad_to_max_tokens,
            output_mode=output_mode)
        # The layer has no weights; this empty buffer follows `.to(device)` so outputs (built
        # on the CPU from Python strings) land where the rest of the model is.
        self.register_buffer("_device_tracker", torch.empty(0), persistent=False)
        self.register_buffer("_idf", None, persistent=False)
        if vocabulary is not None:
            self.set_vocabulary(vocabulary, idf_weights)
        elif idf_weights is not None:
            raise ValueError(
                "`idf_weights` needs the `vocabulary` it weights. Pass both, or neither and call "
                "adapt()."
            )

    # ------------------------------------------------------------------ vocabulary

    def set_vocabulary(self, vocabulary: Sequence[str] | str, idf_weights: Any = None) -> None:
        """Set the vocabulary (and, for 'tf_idf', one inverse document frequency per entry).

        `vocabulary` is a list of tokens, optionally led by the special tokens ('' and '[UNK]'
        in 'int' mode, '[UNK]' otherwise), or the path of a text file with one token per line.
        """
        if isinstance(vocabulary, str):
            entries = read_vocabulary_file(vocabulary, self.encoding)
        elif isinstance(vocabulary, (list, tuple, np.ndarray)):
            entries = [decode_text(token, f"vocabulary[{i}]", self.encoding, "TextVectorization")
                       for i, token in enumerate(np.asarray(vocabulary, dtype=object).ravel())]
        else:
            raise TypeError(
                "`vocabulary` must be a list of strings or the path of a text file. "
                f"Received: {type(vocabulary).__name__}."
            )
        self._table.set(entries, idf_weights)
        self._idf = self._table.idf_tensor(self._dtype, self._device_tracker.device)

    def get_vocabulary(self, include_special_tokens: bool = True) -> list[str]:
        """The vocabulary in index order (with '' and '[UNK]' first unless told otherwise)."""
        return self._table.vocabulary(include_special_tokens)

    def vocabulary_size(self) -> int:
        """The number of vocabulary entries, special tokens included."""
        return self._table.size()

    def adapt(self, data: Any, batch_size: int | None = None, steps: int | None = None) -> None:
        """Learn the vocabulary (and document frequencies) from texts.

        `data` is a list or array of strings (each one a document), or an iterable of such
        batches (a generator, a `PyDataset`; `(x, y)` batches use `x`), of which at most `steps`
        are read. `batch_size` is accepted for Keras compatibility: arrays are read in one pass.
        """
        optional_int("batch_size", batch_size, minimum=1)
        steps = optional_int("steps", steps, minimum=1)
        self._table.learn(tokens for batch in _text_batches(data, steps)
                          for tokens in self._tokenize(batch)[0])
        self._idf = self._table.idf_tensor(self._dtype, self._device_tracker.device)

    # ------------------------------------------------------------------ strings -> tokens

    def _decode(self, value: Any, where: str) -> str:
        return decode_text(value, where, self.encoding, "TextVectorization")

    def _tokens_of(self, text: str) -> list[str]:
        if self.standardize in ("lower", "lower_and_strip_punctuation"):
            text = text.lower()
        if self.standardize in ("strip_punctuation", "lower_and_strip_punctuation"):
            text = _PUNCTUATION.sub("", text)
        elif callable(self.standardize):
            text = self.standardize(text)
            if not isinstance(text, str):
                raise TypeError(
                    f"The `standardize` callable must return a str; it returned {text!r}."
                )
        if self.split == "whitespace":
            tokens = text.split()
        elif self.split == "character":
            tokens = list(text)
        elif callable(self.split):
            tokens = list(self.split(text))
        else:
            return [text]
        if self._ngram_widths:
            tokens = [" ".join(tokens[i:i + width]) for width in self._ngram_widths
                      for i in range(len(tokens) - width + 1)]
        return tokens

    def _tokenize(self, inputs: Any) -> tuple[list[list[str]], str]:
        """Token lists per row, and the input's layout: 'scalar', 'vector' `(batch,)`, 'column'
        `(batch, 1)` or 'matrix' `(batch, k)` (only without `split`: k tokens per row)."""
        if isinstance(inputs, (str, bytes)):
            return [self._tokens_of(self._decode(inputs, "the input"))], "scalar"
        array = string_array(inputs, "TextVectorization")
        if array.ndim == 0:
            return [self._tokens_of(self._decode(array.item(), "the input"))], "scalar"
        if array.ndim > 2 or (array.ndim == 2 and array.shape[1] != 1 and self.split is not None):
            raise ValueError(
                "TextVectorization splits one string per row: the input must have shape "
                f"(batch,) or (batch, 1). Received shape {array.shape}."
            )
        if array.ndim == 2 and array.shape[1] != 1:
            rows = [[self._tokens_of(self._decode(v, f"input[{r}][{c}]"))[0]
                     for c, v in enumerate(row)] for r, row in enumerate(array)]
            return rows, "matrix"
        texts = [self._decode(v, f"input[{i}]") for i, v in enumerate(array.ravel())]
        return [self._tokens_of(text) for text in texts], "vector" if array.ndim == 1 else "column"

    # ------------------------------------------------------------------ calling

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return forward_with_string_probes(self, super().forward, args, kwargs, _string_probes)

    def call(self, inputs):
        rows, layout = self._tokenize(inputs)
        device = self._device_tracker.device
        if self.output_mode == "int":
            outputs = self._indices(rows, layout)
        else:
            outputs = self._counts(rows, device)
        if layout == "scalar":
            outputs = outputs[0]
        return outputs.to(device)

    def _indices(self, rows: list[list[str]], layout: str) -> Tensor:
        index = self._table.index
        # Unknown tokens are '[UNK]' (1); the padding token '' is 0.
        ids = [[index.get(token, 0 if token == MASK_TOKEN else 1) for token in tokens]
               for tokens in rows]
        if self.split is None and self.output_sequence_length is None:
            outputs = torch.tensor(ids, dtype=torch.int64)
            return outputs.squeeze(-1) if layout in ("vector", "scalar") else outputs
        length = self.output_sequence_length
        if length is None:
            length = max((len(row) for row in ids), default=0)
        padded = [row[:length] + [0] * (length - len(row)) for row in ids]
        return torch.tensor(padded, dtype=torch.int64).reshape(len(ids), length)

    def _counts(self, rows: list[list[str]], device: torch.device) -> Tensor:
        depth = self._table.depth()
        index = self._table.index
        # The padding token '' is dropped in the counting modes, as Keras drops its mask token.
        pairs = [(r, index.get(token, 0)) for r, tokens in enumerate(rows)
                 for token in tokens if token != MASK_TOKEN]
        outputs = torch.zeros(len(rows), depth, dtype=self._dtype, device=device)
        if pairs:
            index = torch.tensor(pairs, dtype=torch.int64).T.to(device)
            ones = torch.ones(index.shape[1], dtype=self._dtype, device=device)
            outputs.index_put_((index[0], index[1]), ones, accumulate=True)
        if self.output_mode == "multi_hot":
            outputs.clamp_(max=1.0)
        elif self.output_mode == "tf_idf":
            outputs = outputs * self._idf
        return outputs

    def compute_output_shape(self, input_shape):
        batch = input_shape[0] if len(input_shape) else None
        if self.output_mode != "int":
            depth = self.max_tokens if self.pad_to_max_tokens else (
                self.vocabulary_size() if self._table.tokens is not None else None)
            return (batch, depth)
        if self.split is None and self.output_sequence_length is None:
            return tuple(input_shape)
        return (batch, self.output_sequence_length)

    # ------------------------------------------------------------------ config

    def get_config(self):
        return {
            **super().get_config(),
            "max_tokens": self.max_tokens,
            "standardize": serialize_argument(self.standardize),
            "split": serialize_argument(self.split),
            "ngrams": list(self.ngrams) if isinstance(self.ngrams, tuple) else self.ngrams,
            "output_mode": self.output_mode,
            "output_sequence_length": self.output_sequence_length,
            "pad_to_max_tokens": self.pad_to_max_tokens,
            "vocabulary": self.get_vocabulary() if self._table.tokens is not None else None,
            "idf_weights": self._table.idf,
            "sparse": self.sparse,
            "ragged": self.ragged,
            "encoding": self.encoding,
        }

    @classmethod
    def from_config(cls, config_dict: dict[str, Any], safe_mode: bool = True
                    ) -> "TextVectorization":
        refuse_vocabulary_path(config_dict, cls.__name__, safe_mode)
        config_dict = dict(config_dict)
        # Keras writes these bookkeeping entries too; the vocabulary itself carries them.
        config_dict.pop("vocabulary_size", None)
        config_dict.pop("has_input_vocabulary", None)
        for key in ("standardize", "split"):
            if isinstance(config_dict.get(key), dict):
                config_dict[key] = deserialize(config_dict[key], safe_mode=safe_mode)
        return cls(**config_dict)


def _string_probes(shape: tuple) -> tuple[np.ndarray, np.ndarray]:
    rank = len(shape)
    if rank == 2 and shape[1] in (None, 1):
        tail: tuple = (1,)
    elif rank == 1 or all(d is None for d in shape):
        # Unknown rank: a Sequential built from a list of strings records one None per string.
        tail = ()
    else:
        tail = tuple(1 if d is None else d for d in shape[1:])
    return (np.full((1,) + tail, "a", dtype=object), np.full((2,) + tail, "a a", dtype=object))


def _text_batches(data: Any, steps: int | None) -> Iterator[Any]:
    from lamina.utils.py_dataset import PyDataset

    if isinstance(data, (str, bytes)):
        raise TypeError(
            "TextVectorization.adapt() takes a collection of texts; received a single string. "
            "Wrap it in a list: adapt([text])."
        )
    if isinstance(data, Tensor):
        raise TypeError(
            "TextVectorization.adapt() takes Python strings; received a tensor of dtype "
            f"{data.dtype} (torch has no string tensors)."
        )
    if isinstance(data, (list, tuple, np.ndarray)):
        yield data
        return
    if isinstance(data, PyDataset):
        dataset = data
        data = (dataset[i] for i in range(len(dataset)))
    elif not isinstance(data, Iterable):
        raise TypeError(
            "TextVectorization.adapt() takes a list or array of strings, or an iterable of such "
            f"batches. Received: {type(data).__name__}."
        )
    for step, batch in enumerate(data):
        if steps is not None and step >= steps:
            return
        if isinstance(batch, tuple) and len(batch) in (2, 3) and not isinstance(batch[0], str):
            batch = batch[0]  # an (x, y) batch
        yield batch


__all__ = ["TextVectorization"]
