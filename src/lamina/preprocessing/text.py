"""Keras's legacy text preprocessing: `Tokenizer`, `text_to_word_sequence`, `one_hot`, `hashing_trick`.

Behaviour matches `keras.preprocessing.text` exactly: index 0 is never a word, `oov_token` (when
given) is index 1, other words are indexed by decreasing count with ties in order of first
appearance, and `num_words` keeps indices `< num_words` (so `num_words - 1` words, the
`oov_token` among them).
"""

from __future__ import annotations

import collections
import hashlib
import json
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from lamina._registry import register

DEFAULT_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'
_MATRIX_MODES = ("binary", "count", "tfidf", "freq")


def text_to_word_sequence(
    input_text: str, filters: str = DEFAULT_FILTERS, lower: bool = True, split: str = " "
) -> list[str]:
    """Split a text into words: lowercase, replace every `filters` character by `split`, split.

    >>> text_to_word_sequence("Hello, World! Hello.")
    ['hello', 'world', 'hello']
    """
    if not isinstance(input_text, str):
        raise TypeError(
            f"`input_text` must be a string. Received: {type(input_text).__name__} {input_text!r}."
        )
    if lower:
        input_text = input_text.lower()
    input_text = input_text.translate(str.maketrans({character: split for character in filters}))
    return [word for word in input_text.split(split) if word]


def hashing_trick(
    text: str,
    n: int,
    hash_function: Callable[[str], int] | str | None = None,
    filters: str = DEFAULT_FILTERS,
    lower: bool = True,
    split: str = " ",
    analyzer: Callable[[str], list[str]] | None = None,
) -> list[int]:
    """Hash each word of `text` to an index in `[1, n)`: `hash_function(word) % (n - 1) + 1`.

    Args:
        hash_function: None (Python's `hash`, which differs between processes unless
            PYTHONHASHSEED is set), 'md5' (stable), or a function from str to int.
    """
    _check_vocabulary_size(n)
    if hash_function is None:
        hash_function = hash
    elif hash_function == "md5":
        hash_function = _md5_hash
    elif not callable(hash_function):
        raise ValueError(
            "`hash_function` must be None, 'md5' or a function from str to int. "
            f"Received: hash_function={hash_function!r}."
        )
    if analyzer is None:
        words = text_to_word_sequence(text, filters=filters, lower=lower, split=split)
    else:
        words = analyzer(text)
    return [hash_function(word) % (n - 1) + 1 for word in words]


def one_hot(
    input_text: str,
    n: int,
    filters: str = DEFAULT_FILTERS,
    lower: bool = True,
    split: str = " ",
    analyzer: Callable[[str], list[str]] | None = None,
) -> list[int]:
    """Encode a text as word indices in `[1, n)` with Python's `hash` (`hashing_trick`)."""
    return hashing_trick(
        input_text, n, hash_function=hash, filters=filters, lower=lower, split=split, analyzer=analyzer
    )


def _md5_hash(word: str) -> int:
    return int(hashlib.md5(word.encode(), usedforsecurity=False).hexdigest(), 16)


def _check_vocabulary_size(n: Any) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(
            "`n` (the size of the hashing space) must be an integer >= 2; indices fall in "
            f"[1, n). Received: n={n!r}."
        )


@register("Tokenizer", kind="preprocessing")
class Tokenizer:
    """Turn texts into sequences of word indices or into bag-of-words matrices.

    Args:
        num_words: keep only indices `< num_words` (the `num_words - 1` most frequent words,
            `oov_token` included) when converting; None keeps all. Fitting always counts all.
        filters: characters replaced by `split` before splitting (punctuation, tab, newline).
        lower: lowercase texts first.
        split: the word separator.
        char_level: every character is a token (filters do not apply).
        oov_token: the token (index 1) that replaces unknown words; dropped when None.
        analyzer: a function from a text to its list of tokens, replacing the split/filter step.
        document_count: texts seen so far (keyword-only, restored from a saved config).
        word_counts, word_docs, index_docs, word_index, index_word: the fitted vocabulary
            (keyword-only, as dicts or the JSON strings `get_config` writes).

    >>> tokenizer = Tokenizer(num_words=10000, oov_token="<OOV>")
    >>> tokenizer.fit_on_texts(["the cat sat", "the dog"])
    >>> tokenizer.texts_to_sequences(["the bird sat"])
    [[2, 1, 4]]
    """

    def __init__(
        self,
        num_words: int | None = None,
        filters: str = DEFAULT_FILTERS,
        lower: bool = True,
        split: str = " ",
        char_level: bool = False,
        oov_token: str | None = None,
        analyzer: Callable[[str], list[str]] | None = None,
        *,
        document_count: int = 0,
        word_counts: dict[str, int] | str | None = None,
        word_docs: dict[str, int] | str | None = None,
        index_docs: dict[int, int] | str | None = None,
        word_index: dict[str, int] | str | None = None,
        index_word: dict[int, str] | str | None = None,
    ) -> None:
        if num_words is not None and (
            isinstance(num_words, bool) or not isinstance(num_words, (int, np.integer)) or num_words < 1
        ):
            raise ValueError(
                f"`num_words` must be a positive integer or None. Received: num_words={num_words!r}."
            )
        if not isinstance(filters, str):
            raise TypeError(f"`filters` must be a string of characters. Received: filters={filters!r}.")
        if not isinstance(split, str) or not split:
            raise ValueError(f"`split` must be a non-empty string. Received: split={split!r}.")
        if oov_token is not None and not isinstance(oov_token, str):
            raise TypeError(
                f"`oov_token` must be a string or None. Received: oov_token={oov_token!r}."
            )
        if analyzer is not None and not callable(analyzer):
            raise TypeError(
                "`analyzer` must be a function from a text to a list of tokens, or None. "
                f"Received: analyzer={analyzer!r}."
            )
        if isinstance(document_count, bool) or not isinstance(document_count, (int, np.integer)) or document_count < 0:
            raise ValueError(
                "`document_count` must be a non-negative integer. "
                f"Received: document_count={document_count!r}."
            )
        self.num_words = None if num_words is None else int(num_words)
        self.filters = filters
        self.lower = bool(lower)
        self.split = split
        self.char_level = bool(char_level)
        self.oov_token = oov_token
        self.analyzer = analyzer
        self.document_count = int(document_count)
        self.word_counts: collections.OrderedDict[str, int] = collections.OrderedDict(
            _load_mapping(word_counts, "word_counts")
        )
        self.word_docs: collections.defaultdict[str, int] = collections.defaultdict(
            int, _load_mapping(word_docs, "word_docs")
        )
        self.index_docs: collections.defaultdict[int, int] = collections.defaultdict(
            int, {int(key): count for key, count in _load_mapping(index_docs, "index_docs").items()}
        )
        self.word_index: dict[str, int] = dict(_load_mapping(word_index, "word_index"))
        self.index_word: dict[int, str] = {
            int(key): word for key, word in _load_mapping(index_word, "index_word").items()
        }

    def fit_on_texts(self, texts: Iterable[str | Sequence[str]]) -> None:
        """Count the words of `texts` (strings, or lists of tokens) and rebuild `word_index`."""
        for position, text in enumerate(_check_texts(texts)):
            self.document_count += 1
            tokens = self._tokens(text, position)
            for token in tokens:
                self.word_counts[token] = self.word_counts.get(token, 0) + 1
            for token in set(tokens):
                self.word_docs[token] += 1
        # sort() is stable, so words with equal counts keep their order of first appearance.
        ranked = sorted(self.word_counts.items(), key=lambda item: item[1], reverse=True)
        vocabulary = [] if self.oov_token is None else [self.oov_token]
        vocabulary.extend(word for word, _ in ranked)
        # Index 0 is reserved for padding and never names a word.
        self.word_index = {word: index for index, word in enumerate(vocabulary, start=1)}
        self.index_word = {index: word for word, index in self.word_index.items()}
        for word, count in self.word_docs.items():
            self.index_docs[self.word_index[word]] = count

    def fit_on_sequences(self, sequences: Sequence[Sequence[int]]) -> None:
        """Count in how many sequences each index occurs (for `tfidf`), from index sequences."""
        self.document_count += len(sequences)
        for sequence in sequences:
            for index in set(sequence):
                self.index_docs[index] += 1

    def texts_to_sequences(self, texts: Iterable[str | Sequence[str]]) -> list[list[int]]:
        """Each text as the list of its words' indices (unknown words -> `oov_token` or dropped)."""
        return list(self.texts_to_sequences_generator(texts))

    def texts_to_sequences_generator(
        self, texts: Iterable[str | Sequence[str]]
    ) -> Iterator[list[int]]:
        oov_index = self.word_index.get(self.oov_token) if self.oov_token is not None else None
        for position, text in enumerate(_check_texts(texts)):
            sequence = []
            for token in self._tokens(text, position):
                index = self.word_index.get(token)
                if index is not None and not (self.num_words and index >= self.num_words):
                    sequence.append(index)
                elif oov_index is not None:
                    sequence.append(oov_index)
            yield sequence

    def sequences_to_texts(self, sequences: Iterable[Sequence[int]]) -> list[str]:
        """Each index sequence back as a space-joined text (indices past `num_words` -> OOV)."""
        return list(self.sequences_to_texts_generator(sequences))

    def sequences_to_texts_generator(self, sequences: Iterable[Sequence[int]]) -> Iterator[str]:
        oov_index = self.word_index.get(self.oov_token) if self.oov_token is not None else None
        for sequence in sequences:
            words = []
            for index in sequence:
                word = self.index_word.get(index)
                if word is not None and not (self.num_words and index >= self.num_words):
                    words.append(word)
                elif oov_index is not None:
                    words.append(self.index_word[oov_index])
            yield " ".join(words)

    def texts_to_matrix(self, texts: Iterable[str | Sequence[str]], mode: str = "binary") -> np.ndarray:
        """A `(len(texts), num_words)` bag-of-words matrix; see `sequences_to_matrix`."""
        return self.sequences_to_matrix(self.texts_to_sequences(texts), mode=mode)

    def sequences_to_matrix(self, sequences: Sequence[Sequence[int]], mode: str = "binary") -> np.ndarray:
        """A `(len(sequences), num_words)` float64 matrix, one row per sequence.

        With `c` the count of index `j` in a sequence of length `L` and `N` documents seen:
        'binary': 1 if present; 'count': `c`; 'freq': `c / L`;
        'tfidf': `(1 + log c) * log(1 + N / (1 + docs(j)))`, `docs(j)` = documents containing `j`.
        Without `num_words` the width is `len(word_index) + 1`.
        """
        if mode not in _MATRIX_MODES:
            raise ValueError(
                f"Unknown vectorization mode {mode!r}. Valid modes are: {', '.join(_MATRIX_MODES)}."
            )
        if self.num_words:
            num_words = self.num_words
        elif self.word_index:
            num_words = len(self.word_index) + 1
        else:
            raise ValueError(
                "Cannot size the matrix: the Tokenizer has no `num_words` and no vocabulary. "
                "Pass num_words=... or call fit_on_texts first."
            )
        if mode == "tfidf" and not self.document_count:
            raise ValueError(
                "mode='tfidf' needs document frequencies: call fit_on_texts or fit_on_sequences first."
            )
        matrix = np.zeros((len(sequences), num_words))
        for row, sequence in enumerate(sequences):
            if not len(sequence):
                continue
            counts = collections.Counter(index for index in sequence if index < num_words)
            for index, count in counts.items():
                if mode == "count":
                    matrix[row, index] = count
                elif mode == "freq":
                    matrix[row, index] = count / len(sequence)
                elif mode == "binary":
                    matrix[row, index] = 1
                else:
                    # Weighting scheme 2 of https://en.wikipedia.org/wiki/Tf%E2%80%93idf
                    term_frequency = 1 + np.log(count)
                    inverse_document_frequency = np.log(
                        1 + self.document_count / (1 + self.index_docs.get(index, 0))
                    )
                    matrix[row, index] = term_frequency * inverse_document_frequency
        return matrix

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, vocabulary included as JSON strings (Keras's layout)."""
        return {
            "num_words": self.num_words,
            "filters": self.filters,
            "lower": self.lower,
            "split": self.split,
            "char_level": self.char_level,
            "oov_token": self.oov_token,
            "analyzer": self.analyzer,
            "document_count": self.document_count,
            "word_counts": json.dumps(self.word_counts),
            "word_docs": json.dumps(self.word_docs),
            "index_docs": json.dumps(self.index_docs),
            "index_word": json.dumps(self.index_word),
            "word_index": json.dumps(self.word_index),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Tokenizer:
        return cls(**config)

    def to_json(self, **kwargs: Any) -> str:
        """The tokenizer as Keras's JSON (`{"class_name": "Tokenizer", "config": ...}`).

        An `analyzer` is a function and is not written; pass it again to `tokenizer_from_json`.
        `kwargs` go to `json.dumps` (e.g. `indent=2`).
        """
        config = self.get_config()
        del config["analyzer"]
        return json.dumps({"class_name": type(self).__name__, "config": config}, **kwargs)

    def _tokens(self, text: str | Sequence[str], position: int) -> Sequence[str]:
        if self.char_level or isinstance(text, (list, tuple)):
            if isinstance(text, (list, tuple)):
                _check_tokens(text, position)
                return [token.lower() for token in text] if self.lower else list(text)
            return text.lower() if self.lower else text
        if self.analyzer is not None:
            return self.analyzer(text)
        return text_to_word_sequence(text, filters=self.filters, lower=self.lower, split=self.split)


def tokenizer_from_json(
    json_string: str, *, analyzer: Callable[[str], list[str]] | None = None
) -> Tokenizer:
    """A `Tokenizer` from the JSON `Tokenizer.to_json` (or Keras) wrote.

    Args:
        json_string: the JSON text.
        analyzer: the tokenizer's `analyzer` function, which JSON cannot hold.
    """
    try:
        payload = json.loads(json_string)
    except (TypeError, json.JSONDecodeError) as error:
        raise ValueError(
            f"`json_string` is not the JSON of a Tokenizer ({error}). Pass the text that "
            "Tokenizer.to_json() returned."
        ) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("config"), dict):
        raise ValueError(
            'The JSON has no "config" object; pass the text that Tokenizer.to_json() returned.'
        )
    return Tokenizer.from_config({**payload["config"], "analyzer": analyzer})


def _load_mapping(value: dict | str | None, name: str) -> dict:
    if value is None:
        return {}
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, dict):
        raise TypeError(
            f"`{name}` must be a dict or its JSON string. Received: {type(value).__name__}."
        )
    return value


def _check_texts(texts: Any) -> Iterable[Any]:
    if isinstance(texts, (str, bytes)):
        raise TypeError(
            "`texts` must be a list of strings, not a single string (which would be read one "
            f"character per text). Received: texts={texts[:40]!r}. Wrap it in a list: [text]."
        )
    if not hasattr(texts, "__iter__"):
        raise TypeError(f"`texts` must be a list of strings. Received: {type(texts).__name__}.")
    for position, text in enumerate(texts):
        if not isinstance(text, (str, list, tuple)):
            raise TypeError(
                "`texts` must hold strings (or lists of tokens); the item at position "
                f"{position} is {type(text).__name__}: {text!r}. Convert it with str() or "
                "drop missing values first."
            )
        yield text


def _check_tokens(tokens: Sequence[Any], position: int) -> None:
    for token in tokens:
        if not isinstance(token, str):
            raise TypeError(
                f"The token list at position {position} holds a {type(token).__name__} "
                f"({token!r}); tokens must be strings."
            )
