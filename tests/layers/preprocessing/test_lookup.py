"""StringLookup and IntegerLookup: the outputs Keras documents for every mode, mask and OOV
indices, inversion, adapt ordering, config and save/load, devices, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lamina
from lamina import layers

from .harness import config_round_trip, save_load

STRINGS = ["a", "b", "c", "d"]
STRING_DATA = [["a", "c", "d"], ["d", "z", "b"]]
STRING_BAGS = [["a", "c", "d", "d"], ["d", "z", "b", "z"]]
INTEGERS = [12, 36, 1138, 42]
INTEGER_DATA = [[12, 1138, 42], [42, 1000, 36]]
INTEGER_BAGS = [[12, 1138, 42, 42], [42, 7, 36, 7]]
IDF = [0.25, 0.75, 0.6, 0.4]

# Keras's documented examples: (id, layer, input, expected output). The out-of-vocabulary
# tokens are "z", 1000 and 7.
DOCUMENTED = [
    ("string_int", lambda: layers.StringLookup(vocabulary=STRINGS), STRING_DATA,
     [[1, 3, 4], [4, 0, 2]]),
    ("string_mask", lambda: layers.StringLookup(vocabulary=STRINGS, mask_token=""),
     [["a", "c", "d"], ["d", "", "b"]], [[2, 4, 5], [5, 0, 3]]),
    ("string_one_hot", lambda: layers.StringLookup(vocabulary=STRINGS, output_mode="one_hot"),
     ["a", "b", "c", "d", "z"], np.eye(5)[[1, 2, 3, 4, 0]].tolist()),
    ("string_multi_hot", lambda: layers.StringLookup(vocabulary=STRINGS,
                                                     output_mode="multi_hot"),
     STRING_BAGS, [[0, 1, 0, 1, 1], [1, 0, 1, 0, 1]]),
    ("string_count", lambda: layers.StringLookup(vocabulary=STRINGS, output_mode="count"),
     STRING_BAGS, [[0, 1, 0, 1, 2], [2, 0, 1, 0, 1]]),
    ("string_tf_idf", lambda: layers.StringLookup(vocabulary=STRINGS, output_mode="tf_idf",
                                                  idf_weights=IDF),
     STRING_BAGS, [[0.0, 0.25, 0.0, 0.6, 0.8], [1.0, 0.0, 0.75, 0.0, 0.4]]),
    ("integer_int", lambda: layers.IntegerLookup(vocabulary=INTEGERS), INTEGER_DATA,
     [[1, 3, 4], [4, 0, 2]]),
    ("integer_two_oov", lambda: layers.IntegerLookup(vocabulary=INTEGERS, num_oov_indices=2),
     INTEGER_DATA, [[2, 4, 5], [5, 0, 3]]),
    ("integer_mask", lambda: layers.IntegerLookup(vocabulary=INTEGERS, mask_token=0),
     [[12, 1138, 42], [42, 0, 36]], [[2, 4, 5], [5, 0, 3]]),
    ("integer_one_hot", lambda: layers.IntegerLookup(vocabulary=INTEGERS, output_mode="one_hot"),
     [12, 36, 1138, 42, 7], np.eye(5)[[1, 2, 3, 4, 0]].tolist()),
    ("integer_multi_hot", lambda: layers.IntegerLookup(vocabulary=INTEGERS,
                                                       output_mode="multi_hot"),
     INTEGER_BAGS, [[0, 1, 0, 1, 1], [1, 0, 1, 0, 1]]),
    ("integer_count", lambda: layers.IntegerLookup(vocabulary=INTEGERS, output_mode="count"),
     INTEGER_BAGS, [[0, 1, 0, 1, 2], [2, 0, 1, 0, 1]]),
    ("integer_tf_idf", lambda: layers.IntegerLookup(vocabulary=INTEGERS, output_mode="tf_idf",
                                                    idf_weights=IDF),
     INTEGER_BAGS, [[0.0, 0.25, 0.0, 0.6, 0.8], [1.0, 0.0, 0.75, 0.0, 0.4]]),
]


@pytest.mark.parametrize("name,make,inputs,expected", DOCUMENTED, ids=[c[0] for c in DOCUMENTED])
def test_keras_documented_outputs(name, make, inputs, expected):
    layer = make()
    inputs = np.array(inputs, dtype=object) if name.startswith("string") else np.array(inputs)
    out = layer(inputs)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6)
    assert out.dtype == (torch.int64 if layer.output_mode == "int" else torch.float32)
    clone = config_round_trip(layer)
    np.testing.assert_allclose(clone(inputs).numpy(), expected, rtol=1e-6)


def test_inversion_maps_indices_back():
    strings = layers.StringLookup(vocabulary=STRINGS, invert=True)
    assert strings(torch.tensor([[1, 3, 4], [4, 0, 2]])).tolist() == [["a", "c", "d"],
                                                                      ["d", "[UNK]", "b"]]
    integers = layers.IntegerLookup(vocabulary=INTEGERS, invert=True)
    assert integers(torch.tensor([[1, 3, 4], [4, 0, 2]])).tolist() == [[12, 1138, 42],
                                                                       [42, -1, 36]]
    masked = layers.IntegerLookup(vocabulary=INTEGERS, mask_token=0, invert=True)
    assert masked(torch.tensor([0, 2, 9])).tolist() == [0, 12, -1]


def test_adapt_orders_by_count_then_decreasing_token():
    strings = layers.StringLookup()
    strings.adapt(np.array(STRING_DATA))
    assert strings.get_vocabulary() == ["[UNK]", "d", "z", "c", "b", "a"]
    integers = layers.IntegerLookup()
    integers.adapt(np.array(INTEGER_DATA))
    assert integers.get_vocabulary() == [-1, 42, 1138, 1000, 36, 12]
    assert all(type(token) is int for token in integers.get_vocabulary())
    limited = layers.IntegerLookup(max_tokens=3, mask_token=0)
    limited.adapt(iter([np.array([5, 5, 0, 7]), np.array([7, 7, 9])]))
    assert limited.get_vocabulary() == [0, -1, 7]


def test_tf_idf_learned_by_adapt():
    layer = layers.StringLookup(output_mode="tf_idf")
    layer.adapt(np.array([["x", "y", "x"], ["z", "x", "q"]]))
    # 2 documents: x appears in both, z in one; '[UNK]' gets the mean weight.
    x, once = np.log(1 + 2 / 3), np.log(1 + 2 / 2)
    weights = [x, once, once, once]
    out = layer(np.array([["x", "x", "z", "nope"]]))
    assert layer.get_vocabulary() == ["[UNK]", "x", "z", "y", "q"]
    np.testing.assert_allclose(out.numpy(), [[np.mean(weights), 2 * x, once, 0.0, 0.0]],
                               rtol=1e-6)


def test_several_oov_indices_hash_unknown_strings_consistently():
    layer = layers.StringLookup(vocabulary=STRINGS, num_oov_indices=3)
    assert layer.get_vocabulary()[:3] == ["[UNK]"] * 3
    out = layer(np.array(["a", "zebra", "yak", "zebra"]))
    assert out[0] == 3 and 0 <= int(out[1]) < 3 and 0 <= int(out[2]) < 3 and out[1] == out[3]


def test_masked_inputs_are_dropped_in_counting_modes():
    layer = layers.StringLookup(vocabulary=STRINGS, mask_token="", output_mode="count")
    assert layer.get_vocabulary() == ["[UNK]"] + STRINGS
    assert layer(np.array([["a", "", ""]])).tolist() == [[0.0, 1.0, 0.0, 0.0, 0.0]]


def test_pad_to_max_tokens_and_declared_shapes():
    layer = layers.IntegerLookup(vocabulary=INTEGERS, output_mode="multi_hot", max_tokens=8,
                                 pad_to_max_tokens=True)
    assert layer(np.array(INTEGER_BAGS)).shape == (2, 8)
    assert layer.compute_output_shape((None, 4)) == (None, 8)
    assert layers.StringLookup(vocabulary=STRINGS).compute_output_shape((None, 3)) == (None, 3)
    assert layers.StringLookup(vocabulary=STRINGS, output_mode="one_hot") \
        .compute_output_shape((None, 1)) == (None, 5)


def test_outputs_follow_the_layer_device():
    for layer in (layers.StringLookup(vocabulary=STRINGS),
                  layers.IntegerLookup(vocabulary=INTEGERS, output_mode="count")):
        layer.to("meta")
        inputs = np.array(STRING_DATA) if isinstance(layer, layers.StringLookup) else \
            np.array(INTEGER_DATA)
        assert layer(inputs).device.type == "meta"


def test_save_load_inside_models(tmp_path):
    model = lamina.Sequential([layers.StringLookup(vocabulary=STRINGS), layers.Embedding(5, 2),
                               layers.Flatten(), layers.Dense(1)])
    data = np.array(STRING_DATA)
    model(data)
    before, after = save_load(tmp_path, model, data)
    torch.testing.assert_close(after, before)
    adapted = layers.IntegerLookup(output_mode="count")
    adapted.adapt(np.array(INTEGER_DATA))
    model = lamina.Sequential([lamina.Input(shape=(3,), dtype="int64"), adapted,
                               layers.Dense(2)])
    before, after = save_load(tmp_path, model, torch.tensor(INTEGER_DATA))
    torch.testing.assert_close(after, before)
    inputs = lamina.Input(shape=(3,))
    model = lamina.Model(inputs, layers.Embedding(5, 2)(layers.StringLookup(
        vocabulary=STRINGS)(inputs)))
    assert model(data).shape == (2, 3, 2)
    before, after = save_load(tmp_path, model, data)
    torch.testing.assert_close(after, before)


BAD = [
    (lambda: layers.StringLookup(output_mode="multi_hot", invert=True), ValueError,
     r"`invert=True` maps indices back to tokens, so `output_mode` must be 'int'"),
    (lambda: layers.StringLookup(num_oov_indices=-1), ValueError,
     r"`num_oov_indices` must be None or an integer >= 0"),
    (lambda: layers.StringLookup(max_tokens=1), ValueError, r"`max_tokens` must be None or an "
                                                            r"integer >= 2"),
    (lambda: layers.StringLookup(output_mode="count", pad_to_max_tokens=True), ValueError,
     r"`pad_to_max_tokens=True` needs `max_tokens`"),
    (lambda: layers.StringLookup(sparse=True), ValueError, r"`sparse=True` is not supported"),
    (lambda: layers.StringLookup(oov_token=None), TypeError, r"`oov_token` must be a string"),
    (lambda: layers.StringLookup(mask_token=0), TypeError, r"`mask_token` must be a string or "
                                                           r"None. Received: mask_token=0"),
    (lambda: layers.StringLookup(vocabulary=["a", "a"]), ValueError,
     r"The vocabulary repeats the tokens \['a'\]"),
    (lambda: layers.StringLookup(vocabulary=["a", ""], mask_token=""), ValueError,
     r"contains the mask token '' at position 1"),
    (lambda: layers.StringLookup(vocabulary=["a", "[UNK]"], invert=True), ValueError,
     r"contains the out-of-vocabulary token '\[UNK\]' at position 1"),
    (lambda: layers.StringLookup(vocabulary=STRINGS, max_tokens=3), ValueError,
     r"has 5 entries \(special tokens included\), more than max_tokens=3"),
    (lambda: layers.StringLookup(vocabulary=STRINGS, num_oov_indices=0)(np.array(["z"])),
     ValueError, r"has num_oov_indices=0, so every input must be in its vocabulary; found 'z'"),
    (lambda: layers.StringLookup(vocabulary=STRINGS)(torch.tensor([1, 2])), TypeError,
     r"StringLookup takes strings, but received a tensor of dtype torch.int64"),
    (lambda: layers.StringLookup(vocabulary=STRINGS)(np.array(["a", 3], dtype=object)),
     TypeError, r"StringLookup expects strings, but input element 1 is 3 of type int"),
    (lambda: layers.IntegerLookup(oov_token="x"), TypeError, r"`oov_token` must be an integer"),
    (lambda: layers.IntegerLookup(vocabulary_dtype="float32"), ValueError,
     r"`vocabulary_dtype` must be 'int64' or 'int32'"),
    (lambda: layers.IntegerLookup(vocabulary=["a"]), TypeError,
     r"IntegerLookup's `vocabulary` must hold integers"),
    (lambda: layers.IntegerLookup(vocabulary=INTEGERS, num_oov_indices=0)(torch.tensor([12, 5])),
     ValueError, r"found \[5\]"),
    (lambda: layers.IntegerLookup(vocabulary=INTEGERS, idf_weights=IDF), ValueError,
     r"`idf_weights` only applies to output_mode='tf_idf'"),
    (lambda: layers.IntegerLookup(output_mode="count")(torch.tensor([1])), ValueError,
     r"has no vocabulary yet, so its output width is unknown"),
    (lambda: layers.IntegerLookup().adapt([]), ValueError, r"IntegerLookup.adapt\(\) received "
                                                            r"no data"),
    (lambda: layers.StringLookup().adapt("abc"), TypeError, r"received a single string"),
]


@pytest.mark.parametrize("make,error,match", BAD)
def test_bad_input(make, error, match):
    with pytest.raises(error, match=match):
        make()
