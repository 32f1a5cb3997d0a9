"""Variational autoencoder (keras.io's VAE example, imports swapped for Lamina).

MNIST is replaced by the bundled 8x8 digits (no download), so the encoder has two stride-2
convolutions down to 2x2 and the decoder two transposed ones back up. The model is keras.io's:
a `Sampling` layer drawing from `keras.random.normal` with a `SeedGenerator`, functional encoder
and decoder, and a `keras.Model` subclass with its own `train_step` and loss trackers. The
step is written as Keras 3's guide writes it for the torch backend ("Customizing what happens
in fit() with PyTorch"): `zero_grad`, `backward`, `optimizer.apply`, where keras.io's
TensorFlow version uses `tf.GradientTape`.

    LAMINA_EXAMPLES_SMALL=1 python examples/keras3/variational_autoencoder.py
"""

import os

import numpy as np
import torch

import lamina as keras
from lamina import layers, ops

SMALL = os.environ.get("LAMINA_EXAMPLES_SMALL") == "1"
keras.utils.set_random_seed(1337)


# ## Create a sampling layer
class Sampling(layers.Layer):
    """Uses (z_mean, z_log_var) to sample z, the vector encoding a digit."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(1337)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        batch = ops.shape(z_mean)[0]
        dim = ops.shape(z_mean)[1]
        epsilon = keras.random.normal(shape=(batch, dim), seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon


# ## Build the encoder
latent_dim = 2

encoder_inputs = keras.Input(shape=(8, 8, 1))
x = layers.Conv2D(32, 3, activation="relu", strides=2, padding="same")(encoder_inputs)
x = layers.Conv2D(64, 3, activation="relu", strides=2, padding="same")(x)
x = layers.Flatten()(x)
x = layers.Dense(16, activation="relu")(x)
z_mean = layers.Dense(latent_dim, name="z_mean")(x)
z_log_var = layers.Dense(latent_dim, name="z_log_var")(x)
z = Sampling()([z_mean, z_log_var])
encoder = keras.Model(encoder_inputs, [z_mean, z_log_var, z], name="encoder")
encoder.summary()

# ## Build the decoder
latent_inputs = keras.Input(shape=(latent_dim,))
x = layers.Dense(2 * 2 * 64, activation="relu")(latent_inputs)
x = layers.Reshape((2, 2, 64))(x)
x = layers.Conv2DTranspose(64, 3, activation="relu", strides=2, padding="same")(x)
x = layers.Conv2DTranspose(32, 3, activation="relu", strides=2, padding="same")(x)
decoder_outputs = layers.Conv2DTranspose(1, 3, activation="sigmoid", padding="same")(x)
decoder = keras.Model(latent_inputs, decoder_outputs, name="decoder")
decoder.summary()


# ## Define the VAE as a `Model` with a custom `train_step`
class VAE(keras.Model):
    def __init__(self, encoder, decoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.total_loss_tracker = keras.metrics.Mean(name="total_loss")
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")

    @property
    def metrics(self):
        return [
            self.total_loss_tracker,
            self.reconstruction_loss_tracker,
            self.kl_loss_tracker,
        ]

    def train_step(self, data):
        self.zero_grad()
        z_mean, z_log_var, z = self.encoder(data)
        reconstruction = self.decoder(z)
        reconstruction_loss = ops.mean(
            ops.sum(
                keras.losses.binary_crossentropy(data, reconstruction),
                axis=(1, 2),
            )
        )
        kl_loss = -0.5 * (1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var))
        kl_loss = ops.mean(ops.sum(kl_loss, axis=1))
        total_loss = reconstruction_loss + kl_loss
        total_loss.backward()
        trainable_weights = [v for v in self.trainable_weights]
        gradients = [v.value.grad for v in trainable_weights]
        with torch.no_grad():
            self.optimizer.apply(gradients, trainable_weights)
        self.total_loss_tracker.update_state(total_loss)
        self.reconstruction_loss_tracker.update_state(reconstruction_loss)
        self.kl_loss_tracker.update_state(kl_loss)
        return {
            "loss": self.total_loss_tracker.result(),
            "reconstruction_loss": self.reconstruction_loss_tracker.result(),
            "kl_loss": self.kl_loss_tracker.result(),
        }


# ## Train the VAE
(x_train, _), (x_test, _) = keras.datasets.digits.load_data()
digits = np.concatenate([x_train, x_test], axis=0)
if SMALL:
    digits = digits[:384]

vae = VAE(encoder, decoder)
vae.compile(optimizer=keras.optimizers.Adam(learning_rate=3e-3))
history = vae.fit(digits, epochs=5 if SMALL else 30, batch_size=64, verbose=2)

# ## Display how the latent space clusters different digit classes (keras.io plots this)
z_mean, _, _ = vae.encoder.predict(x_test[:200], verbose=0)
print("latent means of 200 test digits:", z_mean.shape)
decoded = decoder.predict(np.array([[0.0, 0.0], [1.0, -1.0]], dtype="float32"), verbose=0)
print("decoded grid points:", decoded.shape, float(decoded.min()), float(decoded.max()))

losses = history.history["loss"]
print(f"final loss_ratio: {losses[-1] / losses[0]:.4f}")
