"""IMDB movie-review sentiment (25,000 + 25,000 reviews as word-index sequences), cached."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from lamina.datasets._download import get_file
from lamina.datasets._safe_pickle import load_npz

ORIGIN_FOLDER = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
FILE_HASH = "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f"
WORD_INDEX_HASH = "bfafd718b763782e994055a2d397834f"  # md5, as Keras pins it


def load_data(
    path: str = "imdb.npz",
    num_words: int | None = None,
    skip_top: int = 0,
    maxlen: int | None = None,
    seed: int = 113,
    start_char: int | None = 1,
    oov_char: int | None = 2,
    index_from: int = 3,
    *,
    cache_dir: str | os.PathLike | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load IMDB as Keras does: reviews as lists of word indices, ranked by frequency.

    Each review is shuffled with `seed` (train and test separately), prefixed by `start_char`,
    and its word ranks shifted by `index_from` (0 is padding, 1 start, 2 out-of-vocabulary).
    Words outside `[skip_top, num_words)` become `oov_char` (or are dropped when it is None).

    Args:
        num_words: keep indices below this; None keeps all.
        skip_top: also treat the `skip_top` lowest indices as out of vocabulary.
        maxlen: drop reviews of `maxlen` or more indices (start included); None keeps all.

    Returns:
        `(x_train, y_train), (x_test, y_test)`: object arrays of Python int lists, and int64
        labels (1 positive, 0 negative).
    """
    local = get_file(path, origin=ORIGIN_FOLDER + "imdb.npz", file_hash=FILE_HASH, cache_dir=cache_dir)
    arrays = load_npz(local)
    rng = np.random.RandomState(seed)
    splits = []
    for x_key, y_key in (("x_train", "y_train"), ("x_test", "y_test")):
        order = np.arange(len(arrays[x_key]))
        rng.shuffle(order)
        splits.append((arrays[x_key][order], arrays[y_key][order]))

    prepared = []
    for reviews, labels in splits:
        shifted = [
            ([start_char] if start_char is not None else []) + [word + index_from for word in review]
            for review in reviews
        ]
        if maxlen:
            kept = [i for i, review in enumerate(shifted) if len(review) < maxlen]
            shifted, labels = [shifted[i] for i in kept], labels[kept]
            if not shifted:
                raise ValueError(
                    f"No review is shorter than maxlen={maxlen}, so nothing is left. Increase maxlen."
                )
        prepared.append((shifted, labels))

    if not num_words:
        num_words = max(max(review) for reviews, _ in prepared for review in reviews if review)
    results = []
    for reviews, labels in prepared:
        if oov_char is not None:
            reviews = [[w if skip_top <= w < num_words else oov_char for w in review] for review in reviews]
        else:
            reviews = [[w for w in review if skip_top <= w < num_words] for review in reviews]
        results.append((_object_array(reviews), np.asarray(labels, dtype=np.int64)))
    return results[0], results[1]


def get_word_index(path: str = "imdb_word_index.json", *, cache_dir: str | os.PathLike | None = None) -> dict[str, int]:
    """The word -> rank mapping of IMDB (add `index_from` to match `load_data`'s indices)."""
    local = get_file(path, origin=ORIGIN_FOLDER + "imdb_word_index.json", file_hash=WORD_INDEX_HASH, cache_dir=cache_dir)
    with open(local, encoding="utf-8") as file:
        return json.load(file)


def _object_array(sequences: list[list[Any]]) -> np.ndarray:
    # np.array(list_of_lists) would build a 2D array when all lists happen to share a length.
    array = np.empty(len(sequences), dtype=object)
    for position, sequence in enumerate(sequences):
        array[position] = sequence
    return array
