"""Keras 3 custom-training scripts run with `import lamina as keras`.

Each test mirrors the structure of a keras.io script (the PyTorch "customizing fit()" guide, the
VAE, DCGAN and WGAN-GP examples) on tiny synthetic data, and each Keras behaviour these scripts
rely on is checked side by side with real Keras 3 (torch backend) where it is installed.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import lamina as keras
from lamina import layers, ops

os.environ.setdefault("KERAS_BACKEND", "torch")


@pytest.fixture(scope="module")
def keras_ref():
    return pytest.importorskip("keras")


def _numpy(tensor):
    # Keras's own numpy conversions warn under NumPy 2 (warnings are errors here).
    return tensor.detach().cpu().numpy()


def _fit_recording_step_data(module, x, y=None):
    """Which structure `train_step` receives from fit (Keras or lamina, same script)."""
    seen = []

    class Recorder(module.Model):
        def train_step(self, data):
            seen.append(data)
            return {}

    inputs = module.Input(shape=(3,))
    model = Recorder(inputs, module.layers.Dense(1)(inputs))
    model.compile(optimizer="sgd")
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    return seen


@pytest.mark.parametrize("with_y", [False, True])
def test_train_step_receives_x_itself_for_x_only_data_as_keras(keras_ref, with_y):
    x = np.random.default_rng(0).random((8, 3)).astype("float32")
    y = np.arange(8, dtype="float32")[:, None] if with_y else None
    ours = _fit_recording_step_data(keras, x, y)
    theirs = _fit_recording_step_data(keras_ref, x, y)
    assert len(ours) == len(theirs) == 2
    for mine, reference in zip(ours, theirs):
        assert isinstance(mine, tuple) == isinstance(reference, tuple)
        mine = mine if isinstance(mine, tuple) else (mine,)
        reference = reference if isinstance(reference, tuple) else (reference,)
        assert len(mine) == len(reference)
        for a, b in zip(mine, reference):
            np.testing.assert_allclose(_numpy(a), _numpy(b))


def test_metrics_after_compile_are_listed_as_keras_lists_them(keras_ref):
    for module in (keras, keras_ref):
        inputs = module.Input(shape=(3,))
        model = module.Model(inputs, module.layers.Dense(1)(inputs))
        model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
        names = [m.name for m in model.metrics]
        if module is keras_ref:
            reference = names
        else:
            ours = names
    assert ours == reference == ["loss", "compile_metrics"]


class GuideModel(keras.Model):
    """The PyTorch guide's `CustomModel`: its own step, the compiled loss and metrics."""

    def train_step(self, data):
        x, y = data
        self.zero_grad()
        y_pred = self(x, training=True)
        loss = self.compute_loss(y=y, y_pred=y_pred)
        loss.backward()
        trainable_weights = [v for v in self.trainable_weights]
        gradients = [v.value.grad for v in trainable_weights]
        with torch.no_grad():
            self.optimizer.apply(gradients, trainable_weights)
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(y, y_pred)
        return {m.name: m.result() for m in self.metrics}


def test_guide_train_step_updates_the_compiled_metrics_from_the_first_step():
    rng = np.random.default_rng(1)
    x = rng.random((64, 8)).astype("float32")
    y = (x @ rng.random((8, 1)) + 0.1).astype("float32")
    inputs = keras.Input(shape=(8,))
    model = GuideModel(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse", metrics=["mae"])
    history = model.fit(x, y, batch_size=64, epochs=3, verbose=0)
    # One full batch per epoch: the logged loss is the MSE of the weights before that step.
    assert set(history.history) == {"loss", "mae"}
    assert history.history["loss"][-1] < history.history["loss"][0]
    kernel, bias = (w.detach().numpy() for w in model.trainable_weights)
    before = model.predict(x, verbose=0)
    np.testing.assert_allclose(before, x @ kernel + bias, rtol=1e-5, atol=1e-6)
    evaluated = model.evaluate(x, y, verbose=0, return_dict=True)
    np.testing.assert_allclose(evaluated["mae"], np.abs(before - y).mean(), rtol=1e-5)
    assert [m.name for m in model.metrics] == ["loss", "mae"]


def test_overridden_compute_loss_drives_the_default_steps():
    seen = []

    class MyModel(keras.Model):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.loss_tracker = keras.metrics.Mean(name="loss")

        def compute_loss(self, x, y, y_pred, sample_weight, training=True):
            seen.append(training)
            loss = ops.mean(ops.abs(y_pred - y) ** 3)  # not the compiled loss
            self.loss_tracker.update_state(loss)
            return loss

        @property
        def metrics(self):
            return [self.loss_tracker]

    rng = np.random.default_rng(2)
    x, y = rng.random((16, 4)).astype("float32"), rng.random((16, 1)).astype("float32")
    inputs = keras.Input(shape=(4,))
    model = MyModel(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer="sgd", loss="mse")
    logged = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    cubic = np.mean(np.abs(model.predict(x, verbose=0) - y) ** 3)
    np.testing.assert_allclose(logged["loss"], cubic, rtol=1e-5)
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert seen == [False, True, True]


class ActivityPenalty(layers.Layer):
    """A layer that adds `rate * sum(inputs ** 2)` with `add_loss` (Keras's guide layer)."""

    def __init__(self, rate=0.01, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate

    def call(self, inputs):
        self.add_loss(self.rate * ops.sum(ops.square(inputs)))
        return inputs


def _add_loss_model(module, penalty_layer):
    inputs = module.Input(shape=(3,))
    hidden = module.layers.Dense(2, name="hidden")(inputs)
    outputs = module.layers.Dense(1, name="out")(penalty_layer(hidden))
    model = module.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss="mse")
    return model


def test_add_loss_terms_enter_the_loss_as_in_keras(keras_ref):
    class ReferencePenalty(keras_ref.layers.Layer):
        def call(self, inputs):
            self.add_loss(0.01 * keras_ref.ops.sum(keras_ref.ops.square(inputs)))
            return inputs

    rng = np.random.default_rng(3)
    x, y = rng.random((10, 3)).astype("float32"), rng.random((10, 1)).astype("float32")
    ours = _add_loss_model(keras, ActivityPenalty(0.01))
    theirs = _add_loss_model(keras_ref, ReferencePenalty())
    ours.set_weights([_numpy(w.value) for w in theirs.weights])
    ours(x)
    theirs(x)
    assert len(ours.losses) == len(theirs.losses) == 1
    np.testing.assert_allclose(ours.losses[0].item(), theirs.losses[0].item(), rtol=1e-5)
    np.testing.assert_allclose(ours.evaluate(x, y, batch_size=10, verbose=0),
                               theirs.evaluate(x, y, batch_size=10, verbose=0), rtol=1e-5)


def test_add_loss_alone_trains_and_the_next_call_drops_the_last_terms():
    penalty = ActivityPenalty(0.5)
    inputs = keras.Input(shape=(3,))
    model = keras.Model(inputs, penalty(keras.layers.Dense(2)(inputs)))
    x = torch.ones(4, 3)
    model(x)
    out = model(x)
    assert len(model.losses) == 1  # the last call's term, not one per call
    expected = 0.5 * float((out.detach() ** 2).sum())
    np.testing.assert_allclose(model.losses[0].item(), expected, rtol=1e-6)
    # A hand-written loop: each backward sees only its own call's graph.
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):
        out = model(x)
        loss = out.pow(2).mean() + sum(model.losses)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    # compile without a loss: the add_loss term is the whole loss, as in Keras.
    model.compile(optimizer="sgd")
    expected = 0.5 * float((model(x).detach() ** 2).sum())
    history = model.fit(x.numpy(), epochs=1, batch_size=4, verbose=0)
    np.testing.assert_allclose(history.history["loss"][0], expected, rtol=1e-5)


def test_activity_regularizer_losses_are_the_last_calls_only():
    dense = layers.Dense(2, activity_regularizer="l2", kernel_initializer="ones")
    model = keras.Sequential([keras.Input((3,)), dense])
    assert model.losses == []  # building (shape probes) adds none
    x = torch.ones(2, 3)
    for _ in range(3):
        model(x)
    # Keras 3's L2 activity penalty per sample: 0.01 * sum(outputs ** 2) / batch
    # = 0.01 * (2 * 2 * 3 ** 2) / 2 (real Keras gives 0.18 for this model).
    assert len(model.losses) == 1
    np.testing.assert_allclose(model.losses[0].item(), 0.18, rtol=1e-6)


def test_inputs_are_cast_to_the_input_dtype_and_rank_one_arrays_expanded():
    flag = keras.Input(shape=(1,), name="flag")
    count = keras.Input(shape=(1,), name="count")
    merged = layers.Concatenate()([flag, count])
    model = keras.Model([flag, count], layers.Dense(1, kernel_initializer="ones")(merged))
    flags = np.array([True, False, True])
    counts = np.array([3, 4, 5], dtype=np.uint8)  # rank 1, as a DataFrame column gives it
    out = model.predict([flags, counts], verbose=0)
    np.testing.assert_allclose(out[:, 0], [4.0, 4.0, 6.0])
    direct = model([torch.tensor([True]), torch.tensor([[7]])])
    assert direct.dtype == torch.float32 and direct.item() == 8.0


def test_random_flip_called_directly_augments_as_keras(keras_ref):
    x = np.random.default_rng(4).random((32, 4, 4, 1)).astype("float32")

    def flipped(out):
        return int(sum(not np.allclose(out[i], x[i]) for i in range(len(x))))

    theirs = flipped(_numpy(keras_ref.layers.RandomFlip("horizontal")(x)))
    flip = keras.layers.RandomFlip("horizontal", seed=0)
    ours = flipped(flip(x).numpy())
    assert theirs > 0 and ours > 0  # both flip about half of the batch
    pipeline = keras.Sequential([keras.layers.RandomFlip("horizontal", seed=1)])
    assert flipped(pipeline(x).numpy()) > 0
    assert flipped(pipeline(x, training=False).numpy()) == 0
    assert flipped(keras.Sequential([keras.Input((4, 4, 1)), flip]).predict(x, verbose=0)) == 0
    pipeline.eval()  # a torch user's explicit inference mode wins
    assert flipped(pipeline(x).numpy()) == 0


def test_variable_api_matches_keras(keras_ref):
    ours, theirs = layers.Dense(2, name="proj"), keras_ref.layers.Dense(2, name="proj")
    ours.build((None, 3))
    theirs.build((None, 3))
    for mine, reference in zip(ours.weights, theirs.weights):
        assert (mine.name, mine.path, mine.trainable) == \
            (reference.name, reference.path, reference.trainable)
        assert tuple(mine.shape) == tuple(reference.shape)
    kernel, reference = ours.kernel, theirs.kernel
    value = np.arange(6, dtype="float32").reshape(3, 2)
    kernel.assign(value)
    reference.assign(value)
    kernel.assign_add(np.ones((3, 2), "float32"))
    reference.assign_add(np.ones((3, 2), "float32"))
    kernel.assign_sub(0.5 * np.ones((3, 2), "float32"))
    reference.assign_sub(0.5 * np.ones((3, 2), "float32"))
    np.testing.assert_array_equal(kernel.numpy(), _numpy(reference.value))
    assert kernel.value is kernel and kernel.requires_grad and kernel.grad_fn is None
    moving = layers.BatchNormalization(name="bn")
    moving.build((None, 2))
    assert [(w.path, w.trainable) for w in moving.non_trainable_weights] == \
        [("bn/moving_mean", False), ("bn/moving_variance", False)]
    with pytest.raises(ValueError, match=r"shape \(2,\) to variable 'proj/kernel'"):
        kernel.assign(np.zeros(2))


class Sampling(layers.Layer):
    """The VAE example's sampling layer: z = mean + exp(log_var / 2) * epsilon."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(1337)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        epsilon = keras.random.normal(shape=ops.shape(z_mean), seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon


class VAE(keras.Model):
    """The VAE example's model: a train_step and no call, trackers in `metrics`."""

    def __init__(self, encoder, decoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.total_loss_tracker = keras.metrics.Mean(name="total_loss")
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")

    @property
    def metrics(self):
        return [self.total_loss_tracker, self.reconstruction_loss_tracker, self.kl_loss_tracker]

    def train_step(self, data):
        self.zero_grad()
        z_mean, z_log_var, z = self.encoder(data)
        reconstruction = self.decoder(z)
        reconstruction_loss = ops.mean(ops.sum(
            keras.losses.binary_crossentropy(data, reconstruction), axis=(1, 2)))
        kl_loss = -0.5 * (1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var))
        kl_loss = ops.mean(ops.sum(kl_loss, axis=1))
        total_loss = reconstruction_loss + kl_loss
        total_loss.backward()
        weights = self.trainable_weights
        with torch.no_grad():
            self.optimizer.apply([v.value.grad for v in weights], weights)
        self.total_loss_tracker.update_state(total_loss)
        self.reconstruction_loss_tracker.update_state(reconstruction_loss)
        self.kl_loss_tracker.update_state(kl_loss)
        return {m.name: m.result() for m in self.metrics}


def test_vae_example_fits_x_only_data_with_its_own_trackers():
    keras.utils.set_random_seed(0)
    latent_dim = 2
    encoder_inputs = keras.Input(shape=(8, 8, 1))
    x = layers.Conv2D(4, 3, activation="relu", strides=2, padding="same")(encoder_inputs)
    x = layers.Flatten()(x)
    z_mean = layers.Dense(latent_dim, name="z_mean")(x)
    z_log_var = layers.Dense(latent_dim, name="z_log_var")(x)
    z = Sampling()([z_mean, z_log_var])
    encoder = keras.Model(encoder_inputs, [z_mean, z_log_var, z], name="encoder")
    latent_inputs = keras.Input(shape=(latent_dim,))
    x = layers.Dense(4 * 4 * 4, activation="relu")(latent_inputs)
    x = layers.Reshape((4, 4, 4))(x)
    decoder_outputs = layers.Conv2DTranspose(1, 3, activation="sigmoid", strides=2,
                                             padding="same")(x)
    decoder = keras.Model(latent_inputs, decoder_outputs, name="decoder")
    digits = (np.random.default_rng(5).random((32, 8, 8, 1)) > 0.5).astype("float32")
    vae = VAE(encoder, decoder)
    vae.compile(optimizer=keras.optimizers.Adam(0.01))
    history = vae.fit(digits, epochs=3, batch_size=16, verbose=0)
    assert set(history.history) == {"total_loss", "reconstruction_loss", "kl_loss"}
    total = history.history["total_loss"]
    # Trackers reset each epoch (Keras resets model.metrics): the sum holds per epoch.
    for epoch in range(3):
        np.testing.assert_allclose(
            total[epoch], history.history["reconstruction_loss"][epoch]
            + history.history["kl_loss"][epoch], rtol=1e-5)
    assert total[-1] < total[0]


class GAN(keras.Model):
    """The DCGAN example's model: its own compile(), two optimizers, a train_step and no call."""

    def __init__(self, discriminator, generator, latent_dim):
        super().__init__()
        self.discriminator = discriminator
        self.generator = generator
        self.latent_dim = latent_dim
        self.seed_generator = keras.random.SeedGenerator(1337)

    def compile(self, d_optimizer, g_optimizer, loss_fn):
        super().compile()
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.loss_fn = loss_fn
        self.d_loss_metric = keras.metrics.Mean(name="d_loss")
        self.g_loss_metric = keras.metrics.Mean(name="g_loss")

    @property
    def metrics(self):
        return [self.d_loss_metric, self.g_loss_metric]

    def _step(self, network, optimizer, loss):
        self.zero_grad()
        loss.backward()
        weights = network.trainable_weights
        with torch.no_grad():
            optimizer.apply([v.value.grad for v in weights], weights)

    def train_step(self, real_images):
        batch_size = ops.shape(real_images)[0]
        latent = keras.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)
        generated = self.generator(latent)
        combined = ops.concatenate([generated.detach(), real_images], axis=0)
        labels = ops.concatenate([ops.ones((batch_size, 1)), ops.zeros((batch_size, 1))], axis=0)
        d_loss = self.loss_fn(labels, self.discriminator(combined))
        self._step(self.discriminator, self.d_optimizer, d_loss)
        latent = keras.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)
        misleading = ops.zeros((batch_size, 1))
        g_loss = self.loss_fn(misleading, self.discriminator(self.generator(latent)))
        self._step(self.generator, self.g_optimizer, g_loss)
        self.d_loss_metric.update_state(d_loss)
        self.g_loss_metric.update_state(g_loss)
        return {"d_loss": self.d_loss_metric.result(), "g_loss": self.g_loss_metric.result()}


def test_dcgan_example_trains_both_networks_with_its_own_optimizers():
    keras.utils.set_random_seed(1)
    latent_dim = 4
    discriminator = keras.Sequential([
        keras.Input(shape=(8, 8, 1)),
        layers.Conv2D(4, 3, strides=2, padding="same"),
        layers.LeakyReLU(negative_slope=0.2),
        layers.Flatten(),
        layers.Dense(1, activation="sigmoid"),
    ], name="discriminator")
    generator = keras.Sequential([
        keras.Input(shape=(latent_dim,)),
        layers.Dense(4 * 4 * 4),
        layers.Reshape((4, 4, 4)),
        layers.Conv2DTranspose(1, 3, strides=2, padding="same", activation="sigmoid"),
    ], name="generator")
    images = np.random.default_rng(6).random((16, 8, 8, 1)).astype("float32")
    gan = GAN(discriminator, generator, latent_dim)
    gan.compile(d_optimizer=keras.optimizers.Adam(1e-3), g_optimizer=keras.optimizers.Adam(1e-3),
                loss_fn=keras.losses.BinaryCrossentropy())
    d_before = [w.numpy() for w in discriminator.weights]
    g_before = [w.numpy() for w in generator.weights]
    history = gan.fit(images, epochs=2, batch_size=8, verbose=0)
    assert set(history.history) == {"d_loss", "g_loss"}
    assert all(np.isfinite(v).all() for v in history.history.values())
    assert all(not np.allclose(a, w.numpy()) for a, w in zip(d_before, discriminator.weights))
    assert all(not np.allclose(a, w.numpy()) for a, w in zip(g_before, generator.weights))
    assert gan.d_optimizer.iterations == gan.g_optimizer.iterations == 4


class WGAN(keras.Model):
    """The WGAN-GP example's model: extra critic steps and a gradient penalty, plain logs."""

    def __init__(self, discriminator, generator, latent_dim, discriminator_extra_steps=2,
                 gp_weight=10.0):
        super().__init__()
        self.discriminator = discriminator
        self.generator = generator
        self.latent_dim = latent_dim
        self.d_steps = discriminator_extra_steps
        self.gp_weight = gp_weight

    def compile(self, d_optimizer, g_optimizer, d_loss_fn, g_loss_fn):
        super().compile()
        self.d_optimizer, self.g_optimizer = d_optimizer, g_optimizer
        self.d_loss_fn, self.g_loss_fn = d_loss_fn, g_loss_fn

    def gradient_penalty(self, batch_size, real_images, fake_images):
        alpha = keras.random.normal((batch_size, 1, 1, 1), 0.0, 1.0)
        interpolated = (real_images + alpha * (fake_images - real_images)).requires_grad_(True)
        pred = self.discriminator(interpolated, training=True)
        grads, = torch.autograd.grad(pred.sum(), interpolated, create_graph=True)
        norm = ops.sqrt(ops.sum(ops.square(grads), axis=[1, 2, 3]))
        return ops.mean((norm - 1.0) ** 2)

    def _apply(self, network, optimizer, loss):
        network.zero_grad()
        loss.backward()
        weights = network.trainable_weights
        with torch.no_grad():
            optimizer.apply([v.value.grad for v in weights], weights)

    def train_step(self, real_images):
        if isinstance(real_images, tuple):
            real_images = real_images[0]
        batch_size = ops.shape(real_images)[0]
        for _ in range(self.d_steps):
            latent = keras.random.normal((batch_size, self.latent_dim))
            fake_images = self.generator(latent, training=True).detach()
            d_cost = self.d_loss_fn(real_img=self.discriminator(real_images, training=True),
                                    fake_img=self.discriminator(fake_images, training=True))
            d_loss = d_cost + self.gradient_penalty(batch_size, real_images,
                                                     fake_images) * self.gp_weight
            self._apply(self.discriminator, self.d_optimizer, d_loss)
        latent = keras.random.normal((batch_size, self.latent_dim))
        g_loss = self.g_loss_fn(self.discriminator(self.generator(latent, training=True),
                                                   training=True))
        self._apply(self.generator, self.g_optimizer, g_loss)
        return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach()}


def test_wgan_gp_example_runs_critic_steps_with_a_gradient_penalty():
    keras.utils.set_random_seed(2)
    latent_dim = 3
    critic = keras.Sequential([keras.Input((4, 4, 1)), layers.Flatten(), layers.Dense(8),
                               layers.LeakyReLU(0.2), layers.Dense(1)])
    generator = keras.Sequential([keras.Input((latent_dim,)), layers.Dense(16),
                                  layers.Reshape((4, 4, 1))])
    wgan = WGAN(critic, generator, latent_dim)
    wgan.compile(d_optimizer=keras.optimizers.Adam(1e-3), g_optimizer=keras.optimizers.Adam(1e-3),
                 d_loss_fn=lambda real_img, fake_img: ops.mean(fake_img) - ops.mean(real_img),
                 g_loss_fn=lambda fake_img: -ops.mean(fake_img))
    images = np.random.default_rng(7).random((8, 4, 4, 1)).astype("float32")
    history = wgan.fit(images, epochs=2, batch_size=4, verbose=0)
    assert set(history.history) == {"d_loss", "g_loss"}
    assert wgan.d_optimizer.iterations == 2 * 2 * 2 and wgan.g_optimizer.iterations == 4


def test_a_model_with_only_train_step_says_what_to_do_when_called():
    gan = GAN(keras.Sequential([keras.Input((2,)), layers.Dense(1)]),
              keras.Sequential([keras.Input((2,)), layers.Dense(2)]), 2)
    with pytest.raises(NotImplementedError, match="has no `call` method"):
        gan(torch.zeros(1, 2))


def test_layer_input_and_output_are_the_first_calls_tensors_as_in_keras(keras_ref):
    for module in (keras, keras_ref):
        inputs = module.Input(shape=(3,))
        dense, merge = module.layers.Dense(2), module.layers.Concatenate()
        hidden = dense(inputs)
        merged = merge([hidden, inputs])
        dense(module.Input(shape=(3,)))  # a second call: input/output stay the first call's
        assert dense.input is inputs and dense.output is hidden
        assert merge.input == [hidden, inputs] and merge.output is merged
        with pytest.raises(AttributeError):
            module.layers.Dense(2).input


def test_a_sub_layer_named_output_is_not_shadowed():
    class Head(keras.Model):
        def __init__(self):
            super().__init__()
            self.output = layers.Dense(1)
            self.input = "kept"

        def call(self, x):
            return self.output(x)

    head = Head()
    assert isinstance(head.output, layers.Dense) and head.input == "kept"
    assert head(torch.ones(2, 4)).shape == (2, 1)
    assert [name for name, _ in head.named_parameters()] == ["output.kernel", "output.bias"]


def test_compute_metrics_before_any_loss_resolves_the_compiled_metrics():
    class MetricsFirst(keras.Model):
        def train_step(self, data):
            x, y = data
            y_pred = self(x, training=True)
            logs = self.compute_metrics(x, y, y_pred.detach())
            return {k: v for k, v in logs.items() if k != "loss"}

    inputs = keras.Input(shape=(2,))
    model = MetricsFirst(inputs, layers.Dense(1, kernel_initializer="ones")(inputs))
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    x, y = np.ones((4, 2), "float32"), np.zeros((4, 1), "float32")
    history = model.fit(x, y, batch_size=4, verbose=0)
    assert history.history == {"mae": [2.0]}
