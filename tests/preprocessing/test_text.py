"""`Tokenizer` and the text helpers against Keras's rules, with the expected outputs worked out
by hand on a fixed corpus (see the counts below)."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest

from lamina._registry import lookup
from lamina.preprocessing.text import (
    Tokenizer,
    hashing_trick,
    one_hot,
    text_to_word_sequence,
    tokenizer_from_json,
)

CORPUS = [
    "The cat sat on the mat.",
    "The dog ate my homework!",
    "My cat, the dog and I",
]
# Word counts in order of first appearance: the 4, cat 2, sat 1, on 1, mat 1, dog 2, ate 1,
# my 2, homework 1, and 1, i 1. Ranked by count, ties by first appearance:
WORD_INDEX = {
    "the": 1, "cat": 2, "dog": 3, "my": 4, "sat": 5, "on": 6,
    "mat": 7, "ate": 8, "homework": 9, "and": 10, "i": 11,
}
SEQUENCES = [[1, 2, 5, 6, 1, 7], [1, 3, 8, 4, 9], [4, 2, 1, 3, 10, 11]]
# With oov_token='<OOV>' at index 1 every word moves up by one.
OOV_SEQUENCES = [[2, 3, 6, 7, 2, 8], [2, 4, 9, 5, 10], [5, 3, 2, 4, 11, 12]]


def fitted(**kwargs) -> Tokenizer:
    tokenizer = Tokenizer(**kwargs)
    tokenizer.fit_on_texts(CORPUS)
    return tokenizer


def test_cheat_sheet_snippet():
    texts = CORPUS
    from lamina.preprocessing.sequence import pad_sequences
    from lamina.preprocessing.text import Tokenizer

    tokenizer = Tokenizer(num_words=10000, oov_token='<OOV>')
    tokenizer.fit_on_texts(texts)
    sequences = tokenizer.texts_to_sequences(texts)
    padded = pad_sequences(sequences, maxlen=100, padding='post')

    assert sequences == OOV_SEQUENCES
    assert padded.shape == (3, 100) and padded.dtype == np.int32
    np.testing.assert_array_equal(padded[1, :6], [2, 4, 9, 5, 10, 0])
    assert not padded[:, 6:].any()


def test_vocabulary_is_ranked_by_count_then_first_appearance():
    tokenizer = fitted()
    assert tokenizer.word_index == WORD_INDEX
    assert tokenizer.index_word == {index: word for word, index in WORD_INDEX.items()}
    assert list(tokenizer.word_counts.items())[:3] == [("the", 4), ("cat", 2), ("sat", 1)]
    assert tokenizer.word_docs["the"] == 3 and tokenizer.word_docs["cat"] == 2 and tokenizer.word_docs["sat"] == 1
    assert tokenizer.index_docs[1] == 3 and tokenizer.index_docs[11] == 1
    assert tokenizer.document_count == 3


def test_texts_to_sequences():
    assert fitted().texts_to_sequences(CORPUS) == SEQUENCES
    assert fitted(oov_token="<OOV>").texts_to_sequences(CORPUS) == OOV_SEQUENCES


def test_unknown_words_are_dropped_or_become_the_oov_index():
    assert fitted().texts_to_sequences(["the bird and the cat"]) == [[1, 10, 1, 2]]
    assert fitted(oov_token="<OOV>").texts_to_sequences(["the bird and the cat"]) == [[2, 1, 11, 2, 3]]


def test_num_words_keeps_indices_below_it_index_zero_included():
    # num_words=5 keeps indices 1..4: the, cat, dog, my.
    assert fitted(num_words=5).texts_to_sequences(CORPUS) == [[1, 2, 1], [1, 3, 4], [4, 2, 1, 3]]
    # With an oov token it takes index 1, so only the, cat, dog remain and `my` becomes OOV.
    assert fitted(num_words=5, oov_token="<OOV>").texts_to_sequences(CORPUS) == [
        [2, 3, 1, 1, 2, 1],
        [2, 4, 1, 1, 1],
        [1, 3, 2, 4, 1, 1],
    ]


def test_sequences_to_texts():
    assert fitted().sequences_to_texts([[1, 2, 5, 99]]) == ["the cat sat"]
    assert fitted(num_words=5, oov_token="<OOV>").sequences_to_texts([[2, 6, 3]]) == ["the <OOV> cat"]


def test_char_level_counts_characters_without_filters():
    tokenizer = Tokenizer(char_level=True)
    tokenizer.fit_on_texts(["abcA", "b a"])
    # a 3, b 2, c 1, ' ' 1: ties by first appearance.
    assert tokenizer.word_index == {"a": 1, "b": 2, "c": 3, " ": 4}
    assert tokenizer.texts_to_sequences(["Cab "]) == [[3, 1, 2, 4]]


def test_pre_tokenized_lists_and_analyzer():
    tokenizer = Tokenizer()
    tokenizer.fit_on_texts([["Hello", "world"], ["hello"]])
    assert tokenizer.word_index == {"hello": 1, "world": 2}
    tokenizer = Tokenizer(analyzer=lambda text: text.split("-"))
    tokenizer.fit_on_texts(["a-b-a"])
    assert tokenizer.word_index == {"a": 1, "b": 2}


def test_lower_false_and_custom_split():
    tokenizer = Tokenizer(lower=False, split="|", filters="")
    tokenizer.fit_on_texts(["Cat|cat|Cat"])
    assert tokenizer.word_index == {"Cat": 1, "cat": 2}


# Row 0 of the corpus: indices [1, 2, 5, 6, 1, 7], so counts 1: 2, 2: 1, 5: 1, 6: 1, 7: 1 out
# of 6 words; documents containing them (of 3): the 3, cat 2, sat/on/mat 1.
MATRIX_ROW_0 = {
    "binary": {1: 1, 2: 1, 5: 1, 6: 1, 7: 1},
    "count": {1: 2, 2: 1, 5: 1, 6: 1, 7: 1},
    "freq": {1: 2 / 6, 2: 1 / 6, 5: 1 / 6, 6: 1 / 6, 7: 1 / 6},
    "tfidf": {
        1: (1 + math.log(2)) * math.log(1 + 3 / (1 + 3)),
        2: 1 * math.log(1 + 3 / (1 + 2)),
        5: math.log(1 + 3 / 2),
        6: math.log(1 + 3 / 2),
        7: math.log(1 + 3 / 2),
    },
}


@pytest.mark.parametrize("mode", list(MATRIX_ROW_0))
def test_texts_to_matrix_modes(mode):
    matrix = fitted().texts_to_matrix(CORPUS, mode=mode)
    assert matrix.shape == (3, len(WORD_INDEX) + 1) and matrix.dtype == np.float64
    expected = np.zeros(len(WORD_INDEX) + 1)
    for index, value in MATRIX_ROW_0[mode].items():
        expected[index] = value
    np.testing.assert_allclose(matrix[0], expected, rtol=1e-12)


def test_num_words_sets_the_matrix_width_and_drops_larger_indices():
    matrix = fitted(num_words=4).texts_to_matrix(CORPUS, mode="count")
    assert matrix.shape == (3, 4)
    np.testing.assert_array_equal(matrix[0], [0, 2, 1, 0])


def test_fit_on_sequences_feeds_tfidf():
    tokenizer = Tokenizer(num_words=4)
    tokenizer.fit_on_sequences([[1, 2, 2], [2, 3]])
    assert tokenizer.document_count == 2
    assert dict(tokenizer.index_docs) == {1: 1, 2: 2, 3: 1}
    row = tokenizer.sequences_to_matrix([[2, 2, 3]], mode="tfidf")[0]
    np.testing.assert_allclose(row, [0, 0, (1 + math.log(2)) * math.log(1 + 2 / 3), math.log(2)], rtol=1e-12)


def test_json_round_trip_keeps_the_vocabulary_and_behaviour():
    tokenizer = fitted(num_words=6, oov_token="<OOV>")
    restored = tokenizer_from_json(tokenizer.to_json())
    assert restored.word_index == tokenizer.word_index
    assert restored.index_word == tokenizer.index_word
    assert restored.word_counts == tokenizer.word_counts
    assert restored.index_docs == tokenizer.index_docs
    assert restored.texts_to_sequences(CORPUS) == tokenizer.texts_to_sequences(CORPUS)
    np.testing.assert_array_equal(restored.texts_to_matrix(CORPUS, "tfidf"), tokenizer.texts_to_matrix(CORPUS, "tfidf"))
    assert restored.to_json() == tokenizer.to_json()
    restored.fit_on_texts(["the new words"])  # the restored counters keep working
    assert restored.word_index["the"] == 2


def test_json_has_keras_layout_and_reads_keras_files():
    payload = json.loads(fitted().to_json())
    assert payload["class_name"] == "Tokenizer"
    assert set(payload["config"]) == {
        "num_words", "filters", "lower", "split", "char_level", "oov_token", "document_count",
        "word_counts", "word_docs", "index_docs", "index_word", "word_index",
    }
    keras_written = json.dumps({
        "class_name": "Tokenizer",
        "config": {
            "num_words": None, "filters": "", "lower": True, "split": " ", "char_level": False,
            "oov_token": None, "document_count": 1,
            "word_counts": '{"hi": 2, "yo": 1}', "word_docs": '{"hi": 1, "yo": 1}',
            "index_docs": '{"1": 1, "2": 1}', "index_word": '{"1": "hi", "2": "yo"}',
            "word_index": '{"hi": 1, "yo": 2}',
        },
    })
    tokenizer = tokenizer_from_json(keras_written)
    assert tokenizer.texts_to_sequences(["yo hi"]) == [[2, 1]]
    assert tokenizer.index_word == {1: "hi", 2: "yo"}


def test_config_round_trip_and_registry():
    tokenizer = fitted(num_words=7, oov_token="?", analyzer=None)
    config = tokenizer.get_config()
    assert Tokenizer.from_config(config).get_config() == config
    assert lookup("preprocessing", "Tokenizer") is Tokenizer


def test_analyzer_is_passed_back_to_tokenizer_from_json():
    def analyzer(text):
        return text.split("-")

    tokenizer = Tokenizer(analyzer=analyzer)
    tokenizer.fit_on_texts(["a-b"])
    restored = tokenizer_from_json(tokenizer.to_json(), analyzer=analyzer)
    assert restored.texts_to_sequences(["b-a"]) == [[2, 1]]


def test_text_to_word_sequence():
    assert text_to_word_sequence("Hello, World! Hello.") == ["hello", "world", "hello"]
    assert text_to_word_sequence("Hi, there!", filters="") == ["hi,", "there!"]
    assert text_to_word_sequence("Hello World", lower=False) == ["Hello", "World"]
    assert text_to_word_sequence("a;b", split=";", filters="") == ["a", "b"]


def test_hashing_trick_formula():
    # hash_function=len: len('aa') % 4 + 1 = 3, len('bbb') % 4 + 1 = 4.
    assert hashing_trick("aa bbb", 5, hash_function=len) == [3, 4]
    expected = [int(hashlib.md5(word.encode()).hexdigest(), 16) % 9 + 1 for word in ("hello", "world")]
    assert hashing_trick("Hello world", 10, hash_function="md5") == expected


def test_one_hot_indices_are_in_range_and_consistent():
    indices = one_hot("a b a c", 7)
    assert all(1 <= index < 7 for index in indices)
    assert indices[0] == indices[2]


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: Tokenizer().fit_on_texts("the cat"), TypeError, "not a single string .* Wrap it in a list"),
        (lambda: Tokenizer().fit_on_texts(["ok", None]), TypeError, "position 1 is NoneType: None"),
        (lambda: Tokenizer().fit_on_texts(["ok", float("nan")]), TypeError, "position 1 is float: nan"),
        (lambda: fitted().texts_to_sequences([b"bytes"]), TypeError, "position 0 is bytes"),
        (lambda: Tokenizer().fit_on_texts([["a", 1]]), TypeError, "position 0 holds a int"),
        (lambda: Tokenizer().fit_on_texts(42), TypeError, "`texts` must be a list of strings"),
        (lambda: text_to_word_sequence(3), TypeError, "`input_text` must be a string. Received: int 3"),
        (lambda: Tokenizer(num_words=0), ValueError, "`num_words` must be a positive integer or None. Received: num_words=0"),
        (lambda: Tokenizer(split=""), ValueError, "`split` must be a non-empty string"),
        (lambda: Tokenizer(oov_token=1), TypeError, "`oov_token` must be a string or None"),
        (lambda: Tokenizer(analyzer="split"), TypeError, "`analyzer` must be a function"),
        (lambda: Tokenizer(document_count=-1), ValueError, "`document_count` must be a non-negative integer"),
        (lambda: fitted().texts_to_matrix(CORPUS, mode="tf"), ValueError, "Unknown vectorization mode 'tf'. Valid modes"),
        (lambda: Tokenizer().sequences_to_matrix([[1]]), ValueError, "Pass num_words=... or call fit_on_texts first"),
        (lambda: Tokenizer(num_words=3).sequences_to_matrix([[1]], mode="tfidf"), ValueError, "mode='tfidf' needs document frequencies"),
        (lambda: hashing_trick("a", 1), ValueError, r"`n` .* must be an integer >= 2"),
        (lambda: hashing_trick("a", 5, hash_function="sha1"), ValueError, "`hash_function` must be None, 'md5'"),
        (lambda: tokenizer_from_json("not json"), ValueError, "is not the JSON of a Tokenizer"),
        (lambda: tokenizer_from_json("[1, 2]"), ValueError, 'The JSON has no "config" object'),
    ],
)
def test_bad_input_messages(call, error, message):
    with pytest.raises(error, match=message):
        call()
