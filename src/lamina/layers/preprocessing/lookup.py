"""StringLookup and IntegerLookup: tokens -> vocabulary indices (or encodings), and back with
`invert=True`; and `VocabularyTable`, the vocabulary they share with TextVectorization.

Index layout, as Keras: in 'int' mode the mask token (when set) is index 0, then
`num_oov_indices` out-of-vocabulary indices, then the tokens; the other modes have no mask index
and drop masked inputs. `adapt` orders tokens by decreasing count, ties by decreasing token
(Keras's `np.lexsort((tokens, counts))[::-1]`).
"""

from __future__ import annotations

import math
import numbers
import os
import zlib
from collections import Counter
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from lamina import _load_budget
from lamina._registry import register
from lamina._symbolic import KerasTensor
from lamina.errors import UnsafeLoadError
from lamina.layers.layer import Layer
from lamina.layers.preprocessing.category_encoding import encode_categorical, encoded_shape

Tensor = torch.Tensor

OUTPUT_MODES = ("int", "one_hot", "multi_hot", "count", "tf_idf")
_OUTPUT_MODE_ALIASES = {"binary": "multi_hot", "tf-idf": "tf_idf"}


def standardize_output_mode(output_mode: Any, allowed: Sequence[str] = OUTPUT_MODES) -> str:
    output_mode = _OUTPUT_MODE_ALIASES.get(output_mode, output_mode)
    if output_mode not in allowed:
        raise ValueError(
            f"`output_mode` must be one of {', '.join(repr(m) for m in allowed)}. "
            f"Received: output_mode={output_mode!r}."
        )
    return output_mode


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def optional_int(name: str, value: Any, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(
            f"`{name}` must be None or an integer >= {minimum}. Received: {name}={value!r}."
        )
    return int(value)


class VocabularyTable:
    """The vocabulary of a lookup layer: special tokens, learned or given tokens, their indices
    and (for 'tf_idf') inverse document frequencies, all plain Python."""

    def __init__(self, layer: Layer, *, mask_token: Any, oov_token: Any, num_oov_indices: int,
                 max_tokens: int | None, pad_to_max_tokens: bool, output_mode: str):
        self.layer = layer
        self.mask_token, self.oov_token = mask_token, oov_token
        self.num_oov_indices = num_oov_indices
        self.max_tokens, self.pad_to_max_tokens = max_tokens, pad_to_max_tokens
        self.output_mode = output_mode
        self.oov_start = 1 if mask_token is not None and output_mode == "int" else 0
        self.specials = [mask_token] * self.oov_start + [oov_token] * num_oov_indices
        self.tokens: list | None = None
        self.index: dict = {}
        self.idf: list[float] | None = None

    @property
    def token_start(self) -> int:
        return len(self.specials)

    def vocabulary(self, include_special_tokens: bool = True) -> list:
        tokens = list(self.tokens or [])
        return self.specials + tokens if include_special_tokens else tokens

    def size(self) -> int:
        return self.token_start + len(self.tokens or [])

    def depth(self) -> int:
        """The width of the counting outputs."""
        if self.pad_to_max_tokens:
            return self.max_tokens
        if self.tokens is None:
            raise ValueError(
                f"Layer {self.layer.name!r} ({type(self.layer).__name__}, "
                f"output_mode={self.output_mode!r}) has no vocabulary yet, so its output width "
                "is unknown. Call adapt(data), pass `vocabulary=`, or set pad_to_max_tokens=True "
                "with max_tokens."
            )
        return self.size()

    def assign(self, tokens: list, idf: list[float] | None) -> None:
        self.tokens = list(tokens)
        self.index = {token: self.token_start + i for i, token in enumerate(self.tokens)}
        self.idf = idf

    def set(self, entries: list, idf_weights: Any, invert: bool = False) -> None:
        """Set the vocabulary from `entries` (optionally led by the special tokens)."""
        if self.output_mode == "tf_idf" and idf_weights is None:
            raise ValueError(
                "output_mode='tf_idf' needs `idf_weights` (one per vocabulary entry) with a "
                "vocabulary. Pass them, or call adapt() to learn both."
            )
        if self.output_mode != "tf_idf" and idf_weights is not None:
            raise ValueError(
                "`idf_weights` only applies to output_mode='tf_idf'. Received: "
                f"output_mode={self.output_mode!r}."
            )
        if not entries:
            raise ValueError("Cannot set an empty vocabulary. Pass at least one token.")
        found_specials = entries[:self.token_start] == self.specials
        tokens = entries[self.token_start:] if found_specials else entries
        repeated = sorted(token for token, count in Counter(tokens).items() if count > 1)
        if repeated:
            raise ValueError(
                f"The vocabulary repeats the tokens {repeated}. Each token may appear once."
            )
        for reserved, name in ((self.mask_token, "mask"), (self.oov_token if invert else None,
                                                           "out-of-vocabulary")):
            if reserved is not None and reserved in tokens:
                raise ValueError(
                    f"The vocabulary contains the {name} token {reserved!r} at position "
                    f"{entries.index(reserved)}. Leave the special tokens out, or put exactly "
                    f"{self.specials} first."
                )
        size = self.token_start + len(tokens)
        if self.max_tokens is not None and size > self.max_tokens:
            raise ValueError(
                f"The vocabulary has {size} entries (special tokens included), more than "
                f"max_tokens={self.max_tokens}."
            )
        idf = None
        if idf_weights is not None:
            weights = np.asarray(idf_weights.detach().cpu() if isinstance(idf_weights, Tensor)
                                 else idf_weights, dtype=np.float64)
            if weights.ndim != 1 or len(weights) != len(entries):
                raise ValueError(
                    f"`idf_weights` must be a 1-D list with one weight per vocabulary entry "
                    f"({len(entries)}). Received shape {weights.shape}."
                )
            # Without given special tokens, they get the mean weight (Keras's default).
            idf = weights.tolist() if found_specials else \
                [float(weights.mean())] * self.token_start + weights.tolist()
        self.assign(tokens, idf)

    def learn(self, documents: Iterable[list]) -> None:
        """Learn the vocabulary (and document frequencies) from token lists, one per document."""
        counts: Counter = Counter()
        document_counts: Counter = Counter()
        number = 0
        for tokens in documents:
            counts.update(tokens)
            number += 1
            if self.output_mode == "tf_idf":
                document_counts.update(set(tokens))
        name = type(self.layer).__name__
        if number == 0:
            raise ValueError(f"{name}.adapt() received no data. Pass a non-empty collection.")
        for special in (self.mask_token, self.oov_token):
            counts.pop(special, None)
        if not counts:
            raise ValueError(f"{name}.adapt() found no tokens in {number} samples.")
        tokens = sorted(counts, key=lambda token: (counts[token], token), reverse=True)
        if self.max_tokens is not None:
            tokens = tokens[:self.max_tokens - self.token_start]
        idf = None
        if self.output_mode == "tf_idf":
            weights = [math.log(1.0 + number / (1.0 + document_counts[t])) for t in tokens]
            idf = [sum(weights) / len(weights)] * self.token_start + weights
        self.assign(tokens, idf)

    def idf_tensor(self, dtype: torch.dtype, device: torch.device) -> Tensor | None:
        """The weights of the 'tf_idf' output columns (zeros past the vocabulary)."""
        if self.idf is None:
            return None
        return torch.tensor(self.idf + [0.0] * (self.depth() - len(self.idf)), dtype=dtype,
                            device=device)


def refuse_vocabulary_path(config_dict: dict[str, Any], layer_name: str, safe_mode: bool) -> None:
    """A saved config's vocabulary is data, never a file to open: a path in a file someone
    sent could name `/dev/zero` or a FIFO, or read a file of the loading machine into the
    model. Lamina saves the vocabulary itself (get_config), so only a hand-made file has one."""
    vocabulary = config_dict.get("vocabulary")
    if safe_mode and isinstance(vocabulary, (str, bytes, os.PathLike)):
        raise UnsafeLoadError(
            f"The saved {layer_name} config gives its vocabulary as the path {vocabulary!r}. "
            "Loading opens no file a config names: the vocabulary must be stored inside the "
            "saved file as a list of tokens (Lamina's get_config() does this; re-save the "
            "model). If you trust the file and the path, load it with safe_mode=False."
        )


def charge_padded_width(max_tokens: int | None, pad_to_max_tokens: bool, output_mode: str,
                        layer_name: str) -> None:
    """While a model is rebuilt, refuse a counting output padded to an absurd `max_tokens`
    (its idf table and every output row are that wide) before anything is allocated."""
    if pad_to_max_tokens and output_mode != "int" and max_tokens is not None:
        _load_budget.charge_output(max_tokens, (None, max_tokens), layer_name)


def read_vocabulary_file(path: str, encoding: str) -> list[str]:
    try:
        with open(path, encoding=encoding) as handle:
            entries = handle.read().splitlines()
    except OSError as error:
        raise ValueError(
            f"Could not read the vocabulary file {path!r}: {error}. Pass a list of tokens or the "
            "path of a text file with one token per line."
        ) from None
    while entries and entries[-1] == "":
        entries.pop()
    return entries


def decode_text(value: Any, where: str, encoding: str, layer_name: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode(encoding)
    raise TypeError(
        f"{layer_name} expects strings, but {where} is {value!r} of type "
        f"{type(value).__name__}. Pass text (a list or numpy array of str); convert numbers with "
        "str() first."
    )


def string_array(inputs: Any, layer_name: str) -> np.ndarray:
    """Inputs as a numpy object array of strings (torch has no string tensors)."""
    if isinstance(inputs, Tensor):
        raise TypeError(
            f"{layer_name} takes strings, but received a tensor of dtype {inputs.dtype}: torch "
            "has no string tensors. Pass a list or numpy array of Python strings."
        )
    try:
        return np.asarray(inputs, dtype=object)
    except ValueError:
        raise TypeError(
            f"{layer_name} takes strings or (nested) lists of them of one shape. Received a "
            f"ragged nested sequence: {inputs!r:.80}."
        ) from None


def forward_with_string_probes(layer: Layer, forward: Callable, args: tuple, kwargs: dict,
                               make_probes: Callable[[tuple], tuple]) -> Any:
    """Call `forward`; a symbolic input (from `Input` or a Sequential being built) stands for a
    batch of strings, so lend it string shape probes for the call."""
    inputs = args[0] if args else next(iter(kwargs.values()), None)
    if not isinstance(inputs, KerasTensor):
        return forward(*args, **kwargs)
    saved = inputs.probes
    inputs.probes = make_probes(inputs.shape)
    try:
        outputs = forward(*args, **kwargs)
    finally:
        inputs.probes = saved
    # The probe calls recorded the first probe's concrete shape; keep the symbolic one.
    layer._output_shape = outputs.shape
    return outputs


def _lookup_string_probes(shape: tuple) -> tuple[np.ndarray, np.ndarray]:
    if all(d is None for d in shape):
        shape = (None,)  # unknown rank: a Sequential built from a plain list records no shape
    return tuple(np.full(tuple((batch if i == 0 else batch + 2) if d is None else d
                               for i, d in enumerate(shape)), "a", dtype=object)
                 for batch in (1, 2))


class _BaseLookup(Layer):
    """Base of StringLookup and IntegerLookup: arguments, vocabulary, adapt, encodings."""

    def __init__(self, max_tokens: int | None, num_oov_indices: int, mask_token: Any,
                 oov_token: Any, invert: bool, output_mode: str, pad_to_max_tokens: bool,
                 sparse: bool, **kwargs: Any):
        # Keras writes these bookkeeping entries into configs; the vocabulary carries them.
        kwargs.pop("vocabulary_size", None)
        kwargs.pop("has_input_vocabulary", None)
        super().__init__(**kwargs)
        self.max_tokens = optional_int("max_tokens", max_tokens, minimum=2)
        num_oov_indices = optional_int("num_oov_indices", num_oov_indices, minimum=0)
        self.num_oov_indices = 1 if num_oov_indices is None else num_oov_indices
        self.output_mode = standardize_output_mode(output_mode)
        if invert and self.output_mode != "int":
            raise ValueError(
                "`invert=True` maps indices back to tokens, so `output_mode` must be 'int'. "
                f"Received: output_mode={self.output_mode!r}."
            )
        if pad_to_max_tokens and self.max_tokens is None:
            raise ValueError(
                "`pad_to_max_tokens=True` needs `max_tokens`, the width to pad to. "
                "Received: max_tokens=None."
            )
        if sparse:
            raise ValueError(
                "`sparse=True` is not supported: torch has no sparse outputs here. Use the dense "
                "output."
            )
        self.mask_token, self.oov_token = mask_token, oov_token
        self.invert = bool(invert)
        self.pad_to_max_tokens = bool(pad_to_max_tokens)
        self.sparse = False
        charge_padded_width(self.max_tokens, self.pad_to_max_tokens, self.output_mode, self.name)
        self._table = VocabularyTable(
            self, mask_token=mask_token, oov_token=oov_token,
            num_oov_indices=self.num_oov_indices, max_tokens=self.max_tokens,
            pad_to_max_tokens=self.pad_to_max_tokens, output_mode=self.output_mode)
        # No weights (the vocabulary is config); this buffer follows `.to(device)`.
        self.register_buffer("_device_tracker", torch.empty(0), persistent=False)
        self.register_buffer("_idf", None, persistent=False)

    def _initial_vocabulary(self, vocabulary: Any, idf_weights: Any) -> None:
        """The end of a subclass's __init__: the given vocabulary, or none until adapt()."""
        if vocabulary is not None:
            self.set_vocabulary(vocabulary, idf_weights)
        elif idf_weights is not None:
            raise ValueError(
                "`idf_weights` needs the `vocabulary` it weights. Pass both, or neither and call "
                "adapt()."
            )
        else:
            self._vocabulary_changed()

    # ------------------------------------------------------------------ vocabulary

    def set_vocabulary(self, vocabulary: Any, idf_weights: Any = None) -> None:
        """Set the vocabulary (a list, optionally led by the special tokens, or a file path)
        and, for 'tf_idf', one inverse document frequency per entry."""
        self._table.set(self._entries(vocabulary), idf_weights, invert=self.invert)
        self._vocabulary_changed()

    def get_vocabulary(self, include_special_tokens: bool = True) -> list:
        """The vocabulary in index order, special tokens first unless told otherwise."""
        return self._table.vocabulary(include_special_tokens)

    def vocabulary_size(self) -> int:
        """The number of vocabulary entries, special tokens included."""
        return self._table.size()

    def adapt(self, data: Any, steps: int | None = None) -> None:
        """Learn the vocabulary from data: an array of tokens (each row a document for
        'tf_idf'), or an iterable of such batches, of which at most `steps` are read."""
        steps = optional_int("steps", steps, minimum=1)
        self._table.learn(self._documents(data, steps))
        self._vocabulary_changed()

    def _vocabulary_changed(self) -> None:
        self._idf = self._table.idf_tensor(self._dtype, self._device_tracker.device)

    def _documents(self, data: Any, steps: int | None) -> Iterator[list]:
        for batch in _adapt_batches(data, steps, type(self).__name__):
            values = self._tokens_of(batch)
            rows = values.reshape(-1, 1) if values.ndim <= 1 else values.reshape(len(values), -1)
            yield from (row.tolist() for row in rows)

    # ------------------------------------------------------------------ calling

    def call(self, inputs):
        if self.invert:
            return self._invert(inputs)
        indices = self._indices(inputs)
        if self.output_mode == "int":
            return indices
        depth = self._table.depth()
        # Masked inputs (index -1) go to an extra column that is then dropped, as Keras drops them.
        outputs = encode_categorical(indices.masked_fill(indices < 0, depth),
                                     "count" if self.output_mode == "tf_idf" else self.output_mode,
                                     depth + 1, self._dtype)[..., :depth]
        return outputs * self._idf if self.output_mode == "tf_idf" else outputs

    def _oov_error(self, values: Any) -> ValueError:
        return ValueError(
            f"Layer {self.name!r} ({type(self).__name__}) has num_oov_indices=0, so every input "
            f"must be in its vocabulary; found {values}. Set num_oov_indices=1 (or more)."
        )

    def compute_output_shape(self, input_shape):
        if self.output_mode == "int":
            return tuple(input_shape)
        depth = self.max_tokens if self.pad_to_max_tokens else (
            self.vocabulary_size() if self._table.tokens is not None else None)
        mode = "count" if self.output_mode == "tf_idf" else self.output_mode
        return encoded_shape(tuple(input_shape), mode, depth)

    @classmethod
    def from_config(cls, config_dict: dict[str, Any], safe_mode: bool = True) -> "_BaseLookup":
        refuse_vocabulary_path(config_dict, cls.__name__, safe_mode)
        return cls(**config_dict)

    def get_config(self):
        return {
            **super().get_config(), "max_tokens": self.max_tokens,
            "num_oov_indices": self.num_oov_indices, "mask_token": self.mask_token,
            "oov_token": self.oov_token,
            "vocabulary": self.get_vocabulary() if self._table.tokens is not None else None,
            "idf_weights": self._table.idf, "invert": self.invert,
            "output_mode": self.output_mode, "pad_to_max_tokens": self.pad_to_max_tokens,
            "sparse": self.sparse,
        }


@register("StringLookup")
class StringLookup(_BaseLookup):
    """Maps strings to vocabulary indices (or one-hot, multi-hot, count, tf-idf vectors), or,
    with `invert=True`, indices back to strings (a numpy array: torch has no string tensors).

    Args:
        max_tokens: the largest vocabulary size, special tokens included.
        num_oov_indices: out-of-vocabulary indices; with more than one, unknown strings are
            spread over them by a CRC32 hash (Keras uses FarmHash, so buckets differ); with 0,
            unknown strings are an error.
        mask_token: a token meaning "no value" (index 0 in 'int' mode, dropped otherwise).
        oov_token: the token returned for unknown indices when inverting.
        vocabulary: a list of tokens or the path of a file with one per line.
        idf_weights: with 'tf_idf' and a vocabulary, one weight per entry.
        invert: map indices to tokens.
        output_mode: 'int', 'one_hot', 'multi_hot', 'count' or 'tf_idf'.
        pad_to_max_tokens: make the counting outputs `max_tokens` wide.
        sparse: must be False.
        encoding: the encoding of `bytes` inputs.

    Input shape: strings of any shape. Output shape: the same (int64) in 'int' mode; as
    CategoryEncoding's otherwise (the last axis is one sample).

    >>> layer = StringLookup(vocabulary=["a", "b", "c"])
    >>> layer([["a", "c"], ["d", "b"]])
    tensor([[1, 3],
            [0, 2]])
    """

    def __init__(self, max_tokens: int | None = None, num_oov_indices: int = 1,
                 mask_token: str | None = None, oov_token: str = "[UNK]",
                 vocabulary: Sequence[str] | str | None = None, idf_weights: Any = None,
                 invert: bool = False, output_mode: str = "int", pad_to_max_tokens: bool = False,
                 sparse: bool = False, encoding: str = "utf-8", name: str | None = None,
                 **kwargs: Any):
        super().__init__(max_tokens, num_oov_indices, mask_token, oov_token, invert, output_mode,
                         pad_to_max_tokens, sparse, name=name, **kwargs)
        if mask_token is not None and not isinstance(mask_token, str):
            raise TypeError(f"`mask_token` must be a string or None. Received: "
                            f"mask_token={mask_token!r}.")
        if not isinstance(oov_token, str):
            raise TypeError(f"`oov_token` must be a string. Received: oov_token={oov_token!r}.")
        self.encoding = encoding
        self._initial_vocabulary(vocabulary, idf_weights)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.invert:
            return super().forward(*args, **kwargs)
        return forward_with_string_probes(self, super().forward, args, kwargs,
                                          _lookup_string_probes)

    def _entries(self, vocabulary: Any) -> list[str]:
        if isinstance(vocabulary, str):
            return read_vocabulary_file(vocabulary, self.encoding)
        if not isinstance(vocabulary, (list, tuple, np.ndarray)):
            raise TypeError(
                "`vocabulary` must be a list of strings or the path of a text file. "
                f"Received: {type(vocabulary).__name__}."
            )
        return [decode_text(token, f"vocabulary[{i}]", self.encoding, "StringLookup")
                for i, token in enumerate(np.asarray(vocabulary, dtype=object).ravel())]

    def _tokens_of(self, inputs: Any) -> np.ndarray:
        array = string_array(inputs, "StringLookup")
        flat = [decode_text(value, f"input element {i}", self.encoding, "StringLookup")
                for i, value in enumerate(array.ravel())]
        return np.array(flat, dtype=object).reshape(array.shape)

    def _index_of(self, token: str) -> int:
        index = self._table.index.get(token)
        if index is not None:
            return index
        if token == self.mask_token:
            return 0 if self.output_mode == "int" else -1
        if self.num_oov_indices == 1:
            return self._table.oov_start
        if self.num_oov_indices == 0:
            raise self._oov_error(repr(token))
        bucket = zlib.crc32(token.encode(self.encoding)) % self.num_oov_indices
        return self._table.oov_start + bucket

    def _indices(self, inputs: Any) -> Tensor:
        tokens = self._tokens_of(inputs)
        indices = [self._index_of(token) for token in tokens.ravel()]
        return torch.tensor(indices, dtype=torch.int64).reshape(tokens.shape).to(
            self._device_tracker.device)

    def _invert(self, inputs: Any) -> np.ndarray:
        indices = np.asarray(inputs.detach().cpu() if isinstance(inputs, Tensor) else inputs)
        vocabulary = self._table.vocabulary()
        flat = [vocabulary[i] if 0 <= i < len(vocabulary) else self.oov_token
                for i in indices.ravel().tolist()]
        return np.array(flat, dtype=object).reshape(indices.shape)

    def get_config(self):
        return {**super().get_config(), "encoding": self.encoding}


@register("IntegerLookup")
class IntegerLookup(_BaseLookup):
    """Maps integers to vocabulary indices (or one-hot, multi-hot, count, tf-idf vectors), or,
    with `invert=True`, indices back to integers. Runs on the tensors' device.

    Args:
        max_tokens, num_oov_indices, vocabulary, idf_weights, invert, output_mode,
            pad_to_max_tokens, sparse: as StringLookup (with more than one OOV index, unknown
            values go to `floormod(value, num_oov_indices)`, as Keras).
        mask_token: an integer meaning "no value" (index 0 in 'int' mode, dropped otherwise).
        oov_token: the value returned for unknown indices when inverting (default -1).
        vocabulary_dtype: 'int64' or 'int32'.

    Input shape: integers of any shape. Output shape: as StringLookup.

    >>> IntegerLookup(vocabulary=[12, 36, 1138])(torch.tensor([[12, 1138], [42, 36]]))
    tensor([[1, 3],
            [0, 2]])
    """

    def __init__(self, max_tokens: int | None = None, num_oov_indices: int = 1,
                 mask_token: int | None = None, oov_token: int = -1,
                 vocabulary: Sequence[int] | str | None = None, vocabulary_dtype: str = "int64",
                 idf_weights: Any = None, invert: bool = False, output_mode: str = "int",
                 sparse: bool = False, pad_to_max_tokens: bool = False, name: str | None = None,
                 **kwargs: Any):
        if mask_token is not None and not _is_integer(mask_token):
            raise TypeError(f"`mask_token` must be an integer or None. Received: "
                            f"mask_token={mask_token!r}.")
        if not _is_integer(oov_token):
            raise TypeError(f"`oov_token` must be an integer. Received: oov_token={oov_token!r}.")
        super().__init__(max_tokens, num_oov_indices,
                         None if mask_token is None else int(mask_token), int(oov_token), invert,
                         output_mode, pad_to_max_tokens, sparse, name=name, **kwargs)
        if vocabulary_dtype not in ("int64", "int32"):
            raise ValueError(
                "`vocabulary_dtype` must be 'int64' or 'int32'. "
                f"Received: vocabulary_dtype={vocabulary_dtype!r}."
            )
        self.vocabulary_dtype = vocabulary_dtype
        # Sorted keys with their indices (a searchsorted lookup on the device) and the inverse.
        for buffer in ("_keys", "_values", "_inverse"):
            self.register_buffer(buffer, None, persistent=False)
        self._initial_vocabulary(vocabulary, idf_weights)

    def _entries(self, vocabulary: Any) -> list[int]:
        if isinstance(vocabulary, str):
            entries = read_vocabulary_file(vocabulary, "utf-8")
            try:
                return [int(entry) for entry in entries]
            except ValueError:
                raise ValueError(
                    f"The vocabulary file {vocabulary!r} must hold one integer per line."
                ) from None
        values = np.asarray(vocabulary.detach().cpu() if isinstance(vocabulary, Tensor)
                            else vocabulary)
        if values.dtype.kind not in "iu":
            raise TypeError(
                "IntegerLookup's `vocabulary` must hold integers. Received values of dtype "
                f"{values.dtype}."
            )
        return [int(v) for v in values.ravel()]

    def _tokens_of(self, inputs: Any) -> np.ndarray:
        values = np.asarray(inputs.detach().cpu() if isinstance(inputs, Tensor) else inputs)
        if values.dtype.kind not in "iuf":
            raise TypeError(
                f"IntegerLookup takes integers. Received values of dtype {values.dtype}."
            )
        return values.astype(np.int64)

    def _vocabulary_changed(self) -> None:
        super()._vocabulary_changed()
        device = self._device_tracker.device
        tokens = torch.tensor(self._table.tokens or [], dtype=torch.int64)
        order = torch.argsort(tokens)
        self._keys = tokens[order].to(device)
        self._values = (order + self._table.token_start).to(device)
        self._inverse = torch.tensor(self._table.vocabulary(), dtype=torch.int64, device=device)

    def _indices(self, inputs: Any) -> Tensor:
        if not isinstance(inputs, Tensor):
            inputs = torch.as_tensor(self._tokens_of(inputs))
        inputs = inputs.to(device=self._device_tracker.device, dtype=torch.int64)
        if self._table.tokens:
            position = torch.searchsorted(self._keys, inputs).clamp(max=len(self._keys) - 1)
            found = self._keys[position] == inputs
            known = self._values[position]
        else:
            found = torch.zeros_like(inputs, dtype=torch.bool)
            known = inputs
        if self.num_oov_indices == 0:
            unknown = ~found if self.mask_token is None else ~found & (inputs != self.mask_token)
            if bool(unknown.any()):
                raise self._oov_error(inputs[unknown][:5].tolist())
            oov = torch.zeros_like(inputs)
        else:
            oov = self._table.oov_start + torch.remainder(inputs, self.num_oov_indices)
        indices = torch.where(found, known, oov)
        if self.mask_token is not None:
            masked = 0 if self.output_mode == "int" else -1
            indices = indices.masked_fill(inputs == self.mask_token, masked)
        return indices

    def _invert(self, inputs: Any) -> Tensor:
        if not isinstance(inputs, Tensor):
            inputs = torch.as_tensor(np.asarray(inputs))
        inputs = inputs.to(device=self._device_tracker.device, dtype=torch.int64)
        size = len(self._inverse)
        inside = (inputs >= 0) & (inputs < size)
        tokens = self._inverse[inputs.clamp(0, max(size - 1, 0))] if size else inputs
        return torch.where(inside, tokens, torch.full_like(inputs, self.oov_token))

    def get_config(self):
        return {**super().get_config(), "vocabulary_dtype": self.vocabulary_dtype}


def _adapt_batches(data: Any, steps: int | None, layer_name: str) -> Iterator[Any]:
    """The batches of adapt() data: one array (or list), or an iterable of batches (a
    generator, a `PyDataset`; `(x, y)` batches give `x`), at most `steps` of them."""
    from lamina.utils.py_dataset import PyDataset

    if isinstance(data, (str, bytes)):
        raise TypeError(
            f"{layer_name}.adapt() takes a collection; received a single string. Wrap it in a "
            "list: adapt([text])."
        )
    if isinstance(data, (list, tuple, np.ndarray, Tensor)):
        yield data
        return
    if isinstance(data, PyDataset):
        dataset = data
        data = (dataset[i] for i in range(len(dataset)))
    elif not isinstance(data, Iterable):
        raise TypeError(
            f"{layer_name}.adapt() takes a list or array, or an iterable of such batches. "
            f"Received: {type(data).__name__}."
        )
    for step, batch in enumerate(data):
        if steps is not None and step >= steps:
            return
        if isinstance(batch, tuple) and len(batch) in (2, 3) and not isinstance(batch[0], str):
            batch = batch[0]  # an (x, y) batch
        yield batch


__all__ = ["IntegerLookup", "StringLookup", "VocabularyTable"]
