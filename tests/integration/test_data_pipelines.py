"""Data to fit, end to end: the sheet's text pipeline into an LSTM, and every streaming source."""

from __future__ import annotations

import numpy as np
import torch

import lamina as keras
from lamina import layers
from lamina.preprocessing.image import ImageDataGenerator
from lamina.preprocessing.sequence import pad_sequences
from lamina.preprocessing.text import Tokenizer


def sentiment_corpus(n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    positive = ["great", "wonderful", "loved", "excellent", "fun", "brilliant"]
    negative = ["awful", "boring", "hated", "terrible", "dull", "waste"]
    filler = ["the", "movie", "was", "a", "plot", "and", "actors", "film", "story", "it"]
    texts, labels = [], []
    for _ in range(n):
        label = int(rng.integers(0, 2))
        words = list(rng.choice(filler, size=int(rng.integers(5, 20))))
        cue = positive if label else negative
        for _ in range(int(rng.integers(1, 3))):
            words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(cue)))
        texts.append(" ".join(words))
        labels.append(label)
    return texts, np.array(labels)


def test_imdb_like_sentiment_pipeline_beats_chance():
    texts, labels = sentiment_corpus(600)
    tokenizer = Tokenizer(num_words=10000, oov_token='<OOV>')
    tokenizer.fit_on_texts(texts)
    sequences = tokenizer.texts_to_sequences(texts)
    padded = pad_sequences(sequences, maxlen=100, padding='post')
    keras.set_random_seed(0)
    model = keras.Sequential([
        keras.Input(shape=(100,), dtype="int64"),
        layers.Embedding(len(tokenizer.word_index) + 1, 16, mask_zero=True),
        layers.LSTM(16),
        layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="binary_crossentropy",
                  metrics=["accuracy"])
    model.fit(padded[:500], labels[:500], batch_size=32, epochs=6, verbose=0)
    _, accuracy = model.evaluate(padded[500:], labels[500:], verbose=0)
    assert accuracy > 0.85  # chance is 0.5


def image_data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    images = rng.random((n, 8, 8, 1)).astype("float32") * 0.2
    images[labels == 1, :, :4] += 0.8  # class 1: bright left half
    return images, labels


def small_cnn():
    model = keras.Sequential([
        keras.Input(shape=(8, 8, 1)),
        layers.Conv2D(4, 3, activation="relu", padding="same"),
        layers.GlobalAveragePooling2D(),
        layers.Dense(2, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.05),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_image_data_generator_flow_feeds_fit():
    images, labels = image_data()
    generator = ImageDataGenerator(rescale=1.0, width_shift_range=0.1, horizontal_flip=False)
    model = small_cnn()
    history = model.fit(generator.flow(images, labels, batch_size=16, seed=0), epochs=8, verbose=0)
    assert history.history["accuracy"][-1] > 0.9


def test_a_torch_dataloader_with_workers_works_unchanged():
    images, labels = image_data()
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(images), torch.from_numpy(labels))
    loader = torch.utils.data.DataLoader(dataset, batch_size=16, shuffle=True, num_workers=2)
    history = small_cnn().fit(loader, epochs=8, verbose=0)
    assert history.history["accuracy"][-1] > 0.9


def test_a_py_dataset_with_worker_threads_feeds_fit_and_evaluate():
    images, labels = image_data()

    class Batches(keras.utils.PyDataset):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)

        def __len__(self):
            return 6

        def __getitem__(self, index):
            part = slice(index * 16, (index + 1) * 16)
            return images[part], labels[part]

    model = small_cnn()
    history = model.fit(Batches(workers=2), validation_data=Batches(), epochs=8, verbose=0)
    assert history.history["val_accuracy"][-1] > 0.9
    assert model.predict(Batches(), verbose=0).shape == (96, 2)
