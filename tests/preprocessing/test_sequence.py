"""`pad_sequences`: Keras's padding and truncation rules, one row per case."""

from __future__ import annotations

import numpy as np
import pytest

from lamina.preprocessing.sequence import pad_sequences
from lamina.utils import pad_sequences as utils_pad_sequences

SEQUENCES = [[1, 2, 3], [4, 5], [6]]

CASES = [
    # (id, sequences, kwargs, expected)
    ("defaults-pre", SEQUENCES, {}, [[1, 2, 3], [0, 4, 5], [0, 0, 6]]),
    ("padding-post", SEQUENCES, {"padding": "post"}, [[1, 2, 3], [4, 5, 0], [6, 0, 0]]),
    ("truncate-pre", SEQUENCES, {"maxlen": 2}, [[2, 3], [4, 5], [0, 6]]),
    ("truncate-post", SEQUENCES, {"maxlen": 2, "truncating": "post"}, [[1, 2], [4, 5], [0, 6]]),
    ("both-post", SEQUENCES, {"maxlen": 2, "truncating": "post", "padding": "post"}, [[1, 2], [4, 5], [6, 0]]),
    ("longer-maxlen", [[1]], {"maxlen": 4}, [[0, 0, 0, 1]]),
    ("value", SEQUENCES, {"value": -1}, [[1, 2, 3], [-1, 4, 5], [-1, -1, 6]]),
    ("empty-sequence", [[], [1]], {}, [[0], [1]]),
    ("numpy-rows", [np.array([7, 8]), np.array([9])], {}, [[7, 8], [0, 9]]),
    ("maxlen-zero", SEQUENCES, {"maxlen": 0}, np.zeros((3, 0), dtype=np.int32)),
    ("no-sequences", [], {}, np.zeros((0, 0), dtype=np.int32)),
]


@pytest.mark.parametrize("sequences, kwargs, expected", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_padding_and_truncation(sequences, kwargs, expected):
    padded = pad_sequences(sequences, **kwargs)
    assert padded.dtype == np.int32
    np.testing.assert_array_equal(padded, np.asarray(expected, dtype=np.int32).reshape(padded.shape))
    assert padded.shape == np.asarray(expected).shape


def test_float_dtype_keeps_fractional_padding():
    padded = pad_sequences([[1.5, 2.5], [3.0]], dtype="float32", value=0.5)
    assert padded.dtype == np.float32
    np.testing.assert_array_equal(padded, [[1.5, 2.5], [0.5, 3.0]])


def test_strings_with_object_dtype():
    padded = pad_sequences([["a", "b"], ["c"]], dtype=object, value="<pad>")
    assert padded.tolist() == [["a", "b"], ["<pad>", "c"]]


def test_elements_with_a_shape_become_trailing_axes():
    padded = pad_sequences([[[1, 2], [3, 4]], [[5, 6]]])
    assert padded.shape == (2, 2, 2)
    np.testing.assert_array_equal(padded, [[[1, 2], [3, 4]], [[0, 0], [5, 6]]])


def test_utils_reexports_the_same_function():
    assert utils_pad_sequences is pad_sequences


@pytest.mark.parametrize(
    "sequences, kwargs, message",
    [
        (SEQUENCES, {"padding": "middle"}, "`padding` must be 'pre' or 'post'. Received: padding='middle'"),
        (SEQUENCES, {"truncating": "end"}, "`truncating` must be 'pre' or 'post'. Received: truncating='end'"),
        (5, {}, "`sequences` must be a list of sequences"),
        ("abc", {}, "`sequences` must be a list of sequences"),
        ([1, 2], {}, "the item at position 0 is not one: 1"),
        (["a text"], {}, "the item at position 0 is not one: 'a text'. Tokenize texts first"),
        (SEQUENCES, {"maxlen": -1}, "`maxlen` must be a non-negative integer or None. Received: maxlen=-1"),
        (SEQUENCES, {"value": "x"}, "cannot hold the string padding value 'x'. Pass dtype=object"),
        ([[[1, 2]], [[1, 2, 3]]], {}, r"position 1 has elements of shape \(3,\), but the first"),
    ],
)
def test_bad_input_messages(sequences, kwargs, message):
    with pytest.raises(ValueError, match=message):
        pad_sequences(sequences, **kwargs)
