"""Patterns from the official Keras 3 examples that stopped at `keras.ops`/`keras.random`,
run with `import lamina as keras`: a VAE sampling layer with a SeedGenerator, a token and
position embedding built with ops.arange, and ops on a functional model's tensors; each trains
and its loss falls."""

from __future__ import annotations

import numpy as np
import torch

import lamina as keras
from lamina import layers, ops


class Sampling(layers.Layer):
    """Keras's VAE example: z = mean + exp(log_var / 2) * epsilon."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(1337)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        batch = ops.shape(z_mean)[0]
        dim = ops.shape(z_mean)[1]
        epsilon = keras.random.normal(shape=(batch, dim), seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon


class TokenAndPositionEmbedding(layers.Layer):
    """Keras's text-classification-with-transformer example."""

    def __init__(self, maxlen, vocab_size, embed_dim, **kwargs):
        super().__init__(**kwargs)
        self.token_emb = layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
        self.pos_emb = layers.Embedding(input_dim=maxlen, output_dim=embed_dim)

    def call(self, x):
        maxlen = ops.shape(x)[-1]
        positions = ops.arange(start=0, stop=maxlen, step=1)
        return self.token_emb(x) + self.pos_emb(positions)


def test_vae_sampling_layer_trains_and_advances_its_seed():
    inputs = keras.Input((8,))
    h = layers.Dense(16, activation="relu")(inputs)
    z_mean, z_log_var = layers.Dense(2)(h), layers.Dense(2)(h)
    sampling = Sampling()
    z = sampling([z_mean, z_log_var])
    assert sampling.seed_generator.state.tolist() == [1337, 0]  # building draws nothing
    outputs = layers.Dense(8)(z)
    model = keras.Model(inputs, outputs)
    sampler = next(m for m in model.modules() if isinstance(m, Sampling))
    model.compile(optimizer="adam", loss="mse")
    data = np.random.default_rng(0).random((64, 8)).astype(np.float32)
    counter = int(sampler.seed_generator.state[1])
    history = model.fit(data, data, epochs=5, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert int(sampler.seed_generator.state[1]) >= counter + 5 * 4  # one draw per step
    assert any(w is sampler.seed_generator.state for w in model.non_trainable_weights)


def test_token_and_position_embedding_with_ops_trains():
    inputs = keras.Input((10,), dtype="int32")
    x = TokenAndPositionEmbedding(10, 50, 8)(inputs)
    x = ops.mean(x, axis=1)  # an op on the functional model's tensors
    outputs = layers.Dense(2, activation="softmax")(ops.relu(x))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    rng = np.random.default_rng(1)
    tokens = rng.integers(0, 50, (128, 10)).astype(np.int32)
    labels = (tokens[:, 0] < 25).astype(np.int32)
    history = model.fit(tokens, labels, epochs=8, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    probabilities = model.predict(tokens[:4], verbose=0)
    np.testing.assert_allclose(probabilities.sum(-1), np.ones(4), rtol=1e-5)
    assert torch.is_tensor(ops.convert_to_tensor(probabilities))
