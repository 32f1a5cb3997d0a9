"""Text in the functional API: `Input(dtype="string")` into StringLookup / TextVectorization,
through fit, predict, a Dataset and save/load. The oracle is the same network fed the integer
ids computed by hand (a Python dict over the vocabulary)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lamina as keras
from lamina import layers
from lamina.errors import DataError
from lamina.utils import Dataset, StringTensor

WORDS = ["good", "great", "fine", "bad", "awful", "poor"]


def corpus(count: int = 48, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, count)
    texts = [" ".join(rng.choice(WORDS[:3] if label else WORDS[3:], size=3)) for label in labels]
    return np.array(texts), labels.astype(np.float32)


def ids_by_hand(texts, vocabulary: list[str], length: int) -> np.ndarray:
    # TextVectorization's int mode: index 0 pads, 1 is out-of-vocabulary, then the vocabulary.
    table = {word: i for i, word in enumerate(vocabulary)}
    out = np.zeros((len(texts), length), dtype=np.int64)
    for row, text in enumerate(texts):
        tokens = [table.get(word, 1) for word in text.lower().split()][:length]
        out[row, : len(tokens)] = tokens
    return out


def text_model(vectorizer, seed: int = 0) -> tuple[keras.Model, keras.Model]:
    """(model reading strings, the same layers reading integer ids)."""
    keras.utils.set_random_seed(seed)
    embed = layers.Embedding(16, 4)
    pool = layers.GlobalAveragePooling1D()
    dense = layers.Dense(1, activation="sigmoid")
    text = keras.Input(shape=(1,), dtype="string")
    strings = keras.Model(text, dense(pool(embed(vectorizer(text)))))
    ids = keras.Input(shape=(vectorizer.get_config()["output_sequence_length"],), dtype="int64")
    integers = keras.Model(ids, dense(pool(embed(ids))))
    return strings, integers


@pytest.fixture
def vectorizer():
    texts, _ = corpus()
    layer = layers.TextVectorization(max_tokens=16, output_sequence_length=5)
    layer.adapt(texts)
    return layer


def test_symbolic_string_input_and_forward_match_hand_computed_ids(vectorizer):
    text = keras.Input(shape=(1,), dtype="string")
    assert text.dtype == "string" and "dtype=string" in repr(text)
    assert vectorizer(text).shape == (None, 5)
    strings, integers = text_model(vectorizer)
    texts, _ = corpus(6, seed=1)
    texts[0] = "good unseenword Bad"
    ids = ids_by_hand(texts, vectorizer.get_vocabulary(), 5)
    expected = integers(torch.as_tensor(ids)).detach().numpy()
    for given in (texts, list(texts), texts[:, None], texts.astype(object), np.char.encode(texts, "utf-8")):
        np.testing.assert_allclose(strings(given).detach().numpy(), expected, rtol=1e-6)


def test_fit_on_strings_equals_fit_on_their_ids(vectorizer):
    texts, labels = corpus()
    ids = ids_by_hand(texts, vectorizer.get_vocabulary(), 5)
    histories = []
    for data in ("strings", "ids"):
        strings, integers = text_model(vectorizer)
        model = strings if data == "strings" else integers
        model.compile(keras.optimizers.Adam(0.05), "binary_crossentropy", metrics=["accuracy"])
        x = texts if data == "strings" else ids
        histories.append(model.fit(x, labels, batch_size=8, epochs=4, shuffle=False, verbose=0,
                                   validation_split=0.25).history)
    for key in ("loss", "val_loss", "accuracy"):
        np.testing.assert_allclose(histories[0][key], histories[1][key], rtol=1e-5)
    assert histories[0]["accuracy"][-1] == 1.0  # the two word sets separate the classes


def test_predict_dataset_and_save_load(vectorizer, tmp_path):
    texts, labels = corpus()
    model, _ = text_model(vectorizer)
    model.compile(keras.optimizers.Adam(0.05), "binary_crossentropy", metrics=["accuracy"])
    dataset = Dataset.from_tensor_slices((texts, labels)).shuffle(48, seed=0).batch(8)
    text_batch, _ = next(iter(dataset))
    assert isinstance(text_batch, StringTensor)
    model.fit(dataset, epochs=3, verbose=0)
    loss, accuracy = model.evaluate(dataset, verbose=0)
    assert accuracy == 1.0
    probe = ["good great", "awful poor bad", "never seen"]
    before = model.predict(probe, verbose=0)
    assert before.shape == (3, 1) and before[0, 0] > 0.5 > before[1, 0]
    np.testing.assert_allclose(model.predict(Dataset.from_tensor_slices(np.array(probe)).batch(2), verbose=0), before)
    path = tmp_path / "text.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.inputs[0].dtype == "string"
    np.testing.assert_allclose(loaded.predict(probe, verbose=0), before, rtol=1e-6)


def test_string_lookup_and_a_numeric_input_side_by_side():
    vocabulary = ["red", "green", "blue"]
    color = keras.Input(shape=(1,), dtype="string", name="color")
    size = keras.Input(shape=(1,), name="size")
    index = layers.StringLookup(vocabulary=vocabulary)(color)
    model = keras.Model([color, size], layers.Concatenate()([layers.Lambda(lambda t: t.float())(index), size]))
    out = model([np.array(["blue", "mauve", "red"]), np.array([[1.0], [2.0], [3.0]])])
    expected_index = [[{word: i + 1 for i, word in enumerate(vocabulary)}.get(w, 0)] for w in ["blue", "mauve", "red"]]
    np.testing.assert_array_equal(out.detach().numpy(), np.hstack([expected_index, [[1.0], [2.0], [3.0]]]))
    out = model({"color": ["green"], "size": np.array([[5.0]])})
    assert out.tolist() == [[2.0, 5.0]]


def test_errors_name_the_input_and_the_fix(vectorizer):
    model, _ = text_model(vectorizer)
    with pytest.raises(TypeError, match=r"has dtype 'string' but received an array of dtype float.*list or NumPy array of str"):
        model(np.zeros((2, 1)))
    numeric = keras.Sequential([keras.Input((2,)), layers.Dense(1)])
    with pytest.raises(DataError, match="numeric array"):
        numeric.predict(np.array([["a", "b"]]), verbose=0)


def test_sequential_and_subclassed_models_with_a_text_layer_fit_on_strings(vectorizer):
    texts, labels = corpus()

    class Classifier(keras.Model):
        def __init__(self):
            super().__init__()
            self.vectorize = vectorizer
            self.embed = layers.Embedding(16, 4)
            self.pool = layers.GlobalAveragePooling1D()
            self.out = layers.Dense(1, activation="sigmoid")

        def call(self, text):
            return self.out(self.pool(self.embed(self.vectorize(text))))

    sequential = keras.Sequential([vectorizer, layers.Embedding(16, 4), layers.GlobalAveragePooling1D(),
                                   layers.Dense(1, activation="sigmoid")])
    for model in (sequential, Classifier()):
        model.compile(keras.optimizers.Adam(0.05), "binary_crossentropy", metrics=["accuracy"])
        history = model.fit(texts, labels, batch_size=8, epochs=4, verbose=0)
        assert history.history["accuracy"][-1] == 1.0
        assert model.predict(list(texts[:3]), verbose=0).shape == (3, 1)
