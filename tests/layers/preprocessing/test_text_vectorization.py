"""TextVectorization: outputs on a fixed corpus spelled out as Keras gives them (vocabulary by
decreasing count, ties by decreasing token), every mode, standardize/split/ngrams options,
config and save/load (vocabulary in the config), and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import lamina
from lamina import layers
from lamina.saving import register_keras_serializable
from lamina.utils.py_dataset import PyDataset

from .harness import config_round_trip, save_load

CORPUS = ["The cat sat on the mat.", "The dog ate my homework!", "A cat, a dog; a bird?"]
# Counts: the 3, a 3, cat 2, dog 2, the rest 1; equal counts go by decreasing token.
TOKENS = ["the", "a", "dog", "cat", "sat", "on", "my", "mat", "homework", "bird", "ate"]
QUERY = ["The bird sat on a zebra the", "my CAT!"]


def adapted(**kwargs):
    layer = layers.TextVectorization(**kwargs)
    layer.adapt(CORPUS)
    return layer


def test_keras_documented_example():
    layer = layers.TextVectorization(max_tokens=5000, output_mode="int", output_sequence_length=4)
    layer.adapt(["foo bar", "bar baz", "baz bada boom"])
    assert layer([["foo qux bar"], ["qux baz"]]).tolist() == [[4, 1, 3, 0], [1, 2, 0, 0]]
    layer = layers.TextVectorization(max_tokens=5000, output_sequence_length=4,
                                     vocabulary=["earth", "wind", "and", "fire"])
    assert layer.get_vocabulary() == ["", "[UNK]", "earth", "wind", "and", "fire"]


def test_int_mode_on_the_corpus():
    layer = adapted()
    assert layer.get_vocabulary() == ["", "[UNK]"] + TOKENS
    assert layer.get_vocabulary(include_special_tokens=False) == TOKENS
    assert layer.vocabulary_size() == 13
    out = layer(QUERY)
    assert out.dtype == torch.int64
    assert out.tolist() == [[2, 11, 6, 7, 3, 1, 2], [8, 5, 0, 0, 0, 0, 0]]
    assert adapted(output_sequence_length=4)(QUERY).tolist() == [[2, 11, 6, 7], [8, 5, 0, 0]]
    assert adapted(output_sequence_length=9)(QUERY).tolist() == [
        [2, 11, 6, 7, 3, 1, 2, 0, 0], [8, 5, 0, 0, 0, 0, 0, 0, 0]]


def test_max_tokens_keeps_the_most_frequent_entries_special_tokens_included():
    layer = adapted(max_tokens=6)
    assert layer.get_vocabulary() == ["", "[UNK]", "the", "a", "dog", "cat"]
    assert layer(QUERY).tolist() == [[2, 1, 1, 1, 3, 1, 2], [1, 5, 0, 0, 0, 0, 0]]
    assert adapted(max_tokens=6, output_mode="count").get_vocabulary() == [
        "[UNK]", "the", "a", "dog", "cat", "sat"]


def test_counting_modes_on_the_corpus():
    # Non-int vocabulary: '[UNK]' (0), the 1, a 2, dog 3, cat 4, sat 5, on 6, my 7, mat 8,
    # homework 9, bird 10, ate 11. The query counts: [UNK] 1, the 2, a 1, sat 1, on 1, bird 1.
    counts = [1, 2, 1, 0, 0, 1, 1, 0, 0, 0, 1, 0]
    multi_hot = adapted(output_mode="multi_hot")
    assert multi_hot.get_vocabulary() == ["[UNK]"] + TOKENS
    assert multi_hot(QUERY[:1]).tolist() == [[min(c, 1) for c in counts]]
    assert adapted(output_mode="count")(QUERY[:1]).tolist() == [counts]
    # tf_idf: count * log(1 + documents / (1 + document frequency)), 3 documents; 'the', 'dog'
    # and 'cat' are in 2 documents, the rest in 1; '[UNK]' gets the mean weight.
    two, one = math.log(1 + 3 / 3), math.log(1 + 3 / 2)
    idf = [two, one, two, two] + [one] * 7
    idf = [sum(idf) / len(idf)] + idf
    out = adapted(output_mode="tf_idf")(QUERY[:1])
    np.testing.assert_allclose(out.numpy(), [[c * w for c, w in zip(counts, idf)]], rtol=1e-6)
    assert out.dtype == torch.float32


def test_pad_to_max_tokens_widens_the_counting_outputs():
    out = adapted(output_mode="multi_hot", max_tokens=15, pad_to_max_tokens=True)(QUERY)
    assert out.shape == (2, 15) and out[:, 12:].abs().sum() == 0
    out = adapted(output_mode="tf_idf", max_tokens=15, pad_to_max_tokens=True)(QUERY)
    assert out.shape == (2, 15)
    unpadded = layers.TextVectorization(output_mode="multi_hot", max_tokens=15,
                                        pad_to_max_tokens=True, vocabulary=["x"])
    assert unpadded(["x y"]).tolist() == [[1.0, 1.0] + [0.0] * 13]


@pytest.mark.parametrize("standardize,tokens", [
    # One occurrence each, so by decreasing token: 'é' (U+00E9) sorts after 'w'.
    ("lower_and_strip_punctuation", ["école", "world", "hello"]),
    ("lower", ["école", "world!", "hello,"]),
    ("strip_punctuation", ["ÉCOLE", "World", "Hello"]),
    (None, ["ÉCOLE", "World!", "Hello,"]),
])
def test_standardize_options(standardize, tokens):
    layer = layers.TextVectorization(standardize=standardize)
    layer.adapt(["Hello, World! ÉCOLE"])
    assert layer.get_vocabulary(include_special_tokens=False) == tokens


@register_keras_serializable(package="lamina_tests")
def shout(text):
    return text.upper()


@register_keras_serializable(package="lamina_tests")
def split_dashes(text):
    return text.split("-")


def test_callable_standardize_and_split_round_trip_through_the_config():
    layer = layers.TextVectorization(standardize=shout, split=split_dashes)
    layer.adapt(["a-b-a", "c"])
    assert layer.get_vocabulary() == ["", "[UNK]", "A", "C", "B"]
    clone = config_round_trip(layer)
    assert clone.standardize is shout and clone.split is split_dashes
    assert clone(["b-c-d"]).tolist() == layer(["b-c-d"]).tolist() == [[4, 3, 1]]


def test_character_split_keeps_spaces_as_tokens():
    layer = layers.TextVectorization(split="character", standardize=None)
    layer.adapt(["abca"])
    assert layer.get_vocabulary() == ["", "[UNK]", "a", "c", "b"]
    assert layer(["cab "]).tolist() == [[3, 2, 4, 1]]


def test_no_split_makes_each_string_one_token():
    layer = layers.TextVectorization(split=None)
    layer.adapt(["Hello!", "bye", "bye"])
    assert layer.get_vocabulary() == ["", "[UNK]", "bye", "hello"]
    assert layer(["bye", "HELLO", "nope"]).tolist() == [2, 3, 1]
    assert layer(np.array([["bye"], ["x"]])).tolist() == [[2], [1]]
    assert layer(np.array([["bye", "hello"]])).tolist() == [[2, 3]]


@pytest.mark.parametrize("ngrams,vocabulary,expected", [
    (2, ["c", "b c", "b", "a b", "a"], [[6, 4, 2, 1, 5, 3, 1]]),
    ((2,), ["b c", "a b"], [[3, 2, 1]]),
    ((1, 3), ["c", "b", "a b c", "a"], [[5, 3, 2, 1, 4, 1]]),
])
def test_ngrams_follow_the_unigrams(ngrams, vocabulary, expected):
    layer = layers.TextVectorization(ngrams=ngrams)
    layer.adapt(["a b c"])
    assert layer.get_vocabulary(include_special_tokens=False) == vocabulary
    assert layer(["a b c d"]).tolist() == expected


def test_input_layouts_and_bytes():
    layer = adapted()
    assert layer("my cat").tolist() == [8, 5]
    assert layer(np.array([["my cat"], ["the"]])).tolist() == [[8, 5], [2, 0]]
    assert layer(np.array(["my cat"])).tolist() == [[8, 5]]
    assert layer([b"my cat"]).tolist() == [[8, 5]]
    assert layer(("the",)).tolist() == [[2]]
    counts = adapted(output_mode="count")
    assert counts("the the").tolist() == [0.0, 2.0] + [0.0] * 10


class TextBatches(PyDataset):
    def __init__(self, texts):
        super().__init__(workers=0)
        self.texts = texts

    def __len__(self):
        return len(self.texts)

    def __getitem__(self, index):
        return np.array(self.texts[index:index + 1]), np.zeros(1)


def test_adapt_on_batches_generators_and_datasets():
    expected = adapted().get_vocabulary()
    layer = layers.TextVectorization()
    layer.adapt(TextBatches(CORPUS))
    assert layer.get_vocabulary() == expected
    for data in ([CORPUS[:1], CORPUS[1:]], (batch for batch in [CORPUS[:2], CORPUS[2:]]),
                 [(np.array(CORPUS[:2]), np.zeros(2)), (np.array(CORPUS[2:]), np.zeros(1))],
                 np.array(CORPUS), np.array(CORPUS).reshape(3, 1)):
        layer = layers.TextVectorization()
        layer.adapt(data if not isinstance(data, list) or isinstance(data[0], str)
                    else iter(data))
        assert layer.get_vocabulary() == expected
    layer = layers.TextVectorization()
    layer.adapt(iter([CORPUS[:1], CORPUS[1:]]), steps=1)
    assert layer.get_vocabulary() == ["", "[UNK]", "the", "sat", "on", "mat", "cat"]


def test_given_vocabulary_with_or_without_special_tokens_and_from_a_file(tmp_path):
    plain = layers.TextVectorization(vocabulary=["x", "y"])
    led = layers.TextVectorization(vocabulary=["", "[UNK]", "x", "y"])
    assert plain.get_vocabulary() == led.get_vocabulary() == ["", "[UNK]", "x", "y"]
    path = tmp_path / "vocab.txt"
    path.write_text("x\ny\n", encoding="utf-8")
    from_file = layers.TextVectorization(vocabulary=str(path))
    assert from_file.get_vocabulary() == ["", "[UNK]", "x", "y"]
    assert from_file(["y x z"]).tolist() == [[3, 2, 1]]
    counts = layers.TextVectorization(output_mode="count", vocabulary=["[UNK]", "x"])
    assert counts.get_vocabulary() == ["[UNK]", "x"]


def test_given_idf_weights_pad_unknown_tokens_with_their_mean():
    layer = layers.TextVectorization(output_mode="tf_idf", vocabulary=["x", "y"],
                                     idf_weights=[1.0, 3.0])
    assert layer(["x y y z"]).tolist() == [[2.0, 1.0, 6.0]]
    led = layers.TextVectorization(output_mode="tf_idf", vocabulary=["[UNK]", "x", "y"],
                                   idf_weights=[0.5, 1.0, 3.0])
    assert led(["x y y z"]).tolist() == [[0.5, 1.0, 6.0]]
    led.set_vocabulary(["y"], idf_weights=[4.0])
    assert led(["x y y z"]).tolist() == [[8.0, 8.0]]


def test_outputs_follow_the_layer_device():
    for layer in (adapted(), adapted(output_mode="tf_idf")):
        layer.to("meta")
        assert layer(QUERY).device.type == "meta"


@pytest.mark.parametrize("kwargs", [
    dict(), dict(output_sequence_length=5, max_tokens=8), dict(output_mode="multi_hot"),
    dict(output_mode="count", ngrams=2), dict(output_mode="tf_idf"),
    dict(output_mode="tf_idf", max_tokens=20, pad_to_max_tokens=True),
    dict(split="character", standardize="lower"),
], ids=["int", "int_padded", "multi_hot", "count_bigrams", "tf_idf", "tf_idf_padded",
        "characters"])
def test_config_round_trip_keeps_the_learned_vocabulary(kwargs):
    layer = adapted(**kwargs)
    clone = config_round_trip(layer)
    assert clone.get_vocabulary() == layer.get_vocabulary()
    torch.testing.assert_close(clone(QUERY), layer(QUERY))
    assert clone.compute_output_shape((None,)) == layer.compute_output_shape((None,))


def test_declared_output_shapes():
    assert adapted().compute_output_shape((None,)) == (None, None)
    assert adapted(output_sequence_length=4).compute_output_shape((None, 1)) == (None, 4)
    assert adapted(output_mode="count").compute_output_shape((None,)) == (None, 12)
    assert layers.TextVectorization(output_mode="count", max_tokens=9, pad_to_max_tokens=True) \
        .compute_output_shape((None,)) == (None, 9)
    assert layers.TextVectorization(split=None).compute_output_shape((None, 1)) == (None, 1)


def test_save_load_inside_a_sequential(tmp_path):
    model = lamina.Sequential([adapted(output_sequence_length=5), layers.Embedding(13, 4),
                               layers.Flatten(), layers.Dense(2)])
    model(QUERY)  # builds the model on strings
    before, after = save_load(tmp_path, model, QUERY)
    torch.testing.assert_close(after, before)
    assert model.count_params() == 13 * 4 + 5 * 4 * 2 + 2  # the vocabulary is config, no weights
    model = lamina.Sequential([adapted(output_mode="tf_idf"), layers.Dense(3)])
    model(np.array(QUERY))
    before, after = save_load(tmp_path, model, np.array(QUERY))
    torch.testing.assert_close(after, before)


def test_functional_model_with_a_string_input(tmp_path):
    inputs = lamina.Input(shape=(1,))
    tokens = adapted()(inputs)
    assert tokens.shape == (None, None)
    model = lamina.Model(inputs, layers.Embedding(13, 3)(tokens))
    texts = np.array(QUERY).reshape(2, 1)
    assert model(texts).shape == (2, 7, 3)
    before, after = save_load(tmp_path, model, texts)
    torch.testing.assert_close(after, before)


BAD_INPUTS = [
    (["ok", 3], TypeError, r"expects strings, but input\[1\] is 3 of type int. .* convert "
                           r"numbers with str\(\) first"),
    (["ok", None], TypeError, r"input\[1\] is None of type NoneType"),
    ([1, 2], TypeError, r"received a tensor of dtype torch.int64: torch has no string tensors"),
    (torch.zeros(2), TypeError, r"received a tensor of dtype torch.float32: torch has no string "
                                r"tensors"),
    (np.array([["a", "b"], ["c", "d"]]), ValueError,
     r"input must have shape \(batch,\) or \(batch, 1\). Received shape \(2, 2\)"),
    (np.array([[["a"]]]), ValueError, r"Received shape \(1, 1, 1\)"),
]


@pytest.mark.parametrize("inputs,error,match", BAD_INPUTS)
def test_bad_inputs(inputs, error, match):
    with pytest.raises(error, match=match):
        adapted()(inputs)


BAD_ADAPT = [
    ([], ValueError, r"TextVectorization.adapt\(\) received no data"),
    ("the cat", TypeError, r"received a single string. Wrap it in a list"),
    (["", "!!! ?"], ValueError, r"found no tokens in 2 samples"),
    (torch.ones(3), TypeError, r"takes Python strings; received a tensor"),
    ([3.5], TypeError, r"input\[0\] is 3.5 of type float"),
    (42, TypeError, r"takes a list or array of strings, or an iterable of such batches. "
                    r"Received: int"),
]


@pytest.mark.parametrize("data,error,match", BAD_ADAPT)
def test_bad_adapt_data(data, error, match):
    with pytest.raises(error, match=match):
        layers.TextVectorization().adapt(data)


BAD_ARGUMENTS = [
    (dict(output_mode="one_hot"), r"`output_mode` must be one of 'int', 'multi_hot', 'count', "
                                  r"'tf_idf'. Received: output_mode='one_hot'"),
    (dict(output_mode="count", output_sequence_length=4),
     r"`output_sequence_length` only applies to output_mode='int'"),
    (dict(output_sequence_length=0), r"`output_sequence_length` must be None or an integer >= 1"),
    (dict(max_tokens=1), r"`max_tokens` must be None or an integer >= 2. Received: max_tokens=1"),
    (dict(output_mode="count", pad_to_max_tokens=True), r"`pad_to_max_tokens=True` needs "
                                                        r"`max_tokens`"),
    (dict(sparse=True), r"`sparse=True` is not supported: torch has no sparse outputs here"),
    (dict(ragged=True), r"`ragged=True` is not supported"),
    (dict(ngrams=0), r"`ngrams` must be None, a positive integer"),
    (dict(ngrams=2, split=None), r"`ngrams` needs the strings split into tokens"),
    (dict(standardize="upper"), r"`standardize` must be one of 'lower_and_strip_punctuation', "
                                r"'lower', 'strip_punctuation', None, or a callable"),
    (dict(split="comma"), r"`split` must be one of 'whitespace', 'character', None"),
    (dict(encoding="klingon"), r"Unknown `encoding`: 'klingon'"),
    (dict(vocabulary=["a", "b", "a"]), r"The vocabulary repeats the tokens \['a'\]"),
    (dict(vocabulary=["a", ""]), r"contains the mask token '' at position 1"),
    (dict(vocabulary=["a", "b", "c"], max_tokens=4), r"has 5 entries .* more than max_tokens=4"),
    (dict(vocabulary=[]), r"Cannot set an empty vocabulary"),
    (dict(output_mode="tf_idf", vocabulary=["a"]), r"output_mode='tf_idf' needs `idf_weights`"),
    (dict(vocabulary=["a"], idf_weights=[1.0]), r"`idf_weights` only applies to "
                                                 r"output_mode='tf_idf'"),
    (dict(output_mode="tf_idf", vocabulary=["a"], idf_weights=[1.0, 2.0]),
     r"one weight per vocabulary entry \(1\). Received shape \(2,\)"),
    (dict(output_mode="tf_idf", idf_weights=[1.0]), r"`idf_weights` needs the `vocabulary`"),
    (dict(vocabulary="/no/such/vocabulary.txt"), r"Could not read the vocabulary file"),
]


@pytest.mark.parametrize("kwargs,match", BAD_ARGUMENTS)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        layers.TextVectorization(**kwargs)


def test_bad_vocabulary_types_and_missing_vocabulary():
    with pytest.raises(TypeError, match=r"vocabulary\[1\] is 2 of type int"):
        layers.TextVectorization(vocabulary=["a", 2])
    with pytest.raises(TypeError, match=r"`vocabulary` must be a list of strings or the path"):
        layers.TextVectorization(vocabulary={"a": 1})
    with pytest.raises(ValueError, match=r"has no vocabulary yet, so its output width is "
                                         r"unknown. Call adapt\(data\)"):
        layers.TextVectorization(output_mode="multi_hot")(["a"])
