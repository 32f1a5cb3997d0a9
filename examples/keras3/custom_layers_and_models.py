"""Making new layers and models via subclassing (keras.io's Keras 3 guide, imports swapped).

The guide's layers, as written there: weights made with `add_weight` and used through
`keras.ops`, non-trainable state updated with `assign_add`, deferred `build(input_shape)`,
nested layers, `add_loss`, `get_config`/`from_config`, a `training` argument with
`keras.random.dropout` and a `SeedGenerator`; then they are put together into a model trained
with `fit` on a small synthetic regression, saved and loaded with `custom_objects`.

    LAMINA_EXAMPLES_SMALL=1 python examples/keras3/custom_layers_and_models.py
"""

import os
import tempfile

import numpy as np

import lamina as keras
from lamina import ops

SMALL = os.environ.get("LAMINA_EXAMPLES_SMALL") == "1"
keras.utils.set_random_seed(1337)


# ## The `Layer` class: the combination of state (weights) and some computation
class Linear(keras.layers.Layer):
    def __init__(self, units=32, input_dim=32):
        super().__init__()
        self.w = self.add_weight(
            shape=(input_dim, units),
            initializer="random_normal",
            trainable=True,
        )
        self.b = self.add_weight(shape=(units,), initializer="zeros", trainable=True)

    def call(self, inputs):
        return ops.matmul(inputs, self.w) + self.b


x = ops.ones((2, 2))
linear_layer = Linear(4, 2)
y = linear_layer(x)
print(y)
assert linear_layer.weights == [linear_layer.w, linear_layer.b]


# ## Layers can have non-trainable weights
class ComputeSum(keras.layers.Layer):
    def __init__(self, input_dim):
        super().__init__()
        self.total = self.add_weight(initializer="zeros", shape=(input_dim,), trainable=False)

    def call(self, inputs):
        self.total.assign_add(ops.sum(inputs, axis=0))
        return self.total


x = ops.ones((2, 2))
my_sum = ComputeSum(2)
y = my_sum(x)
print(y.numpy())
y = my_sum(x)
print(y.numpy())
assert y.numpy().tolist() == [4.0, 4.0]
print("weights:", len(my_sum.weights))
print("non-trainable weights:", len(my_sum.non_trainable_weights))
print("trainable_weights:", my_sum.trainable_weights)


# ## Best practice: deferring weight creation until the shape of the inputs is known
class Linear(keras.layers.Layer):
    def __init__(self, units=32):
        super().__init__()
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(
            shape=(input_shape[-1], self.units),
            initializer="random_normal",
            trainable=True,
        )
        self.b = self.add_weight(shape=(self.units,), initializer="random_normal", trainable=True)

    def call(self, inputs):
        return ops.matmul(inputs, self.w) + self.b

    def get_config(self):
        return {"units": self.units}


# At instantiation, we don't know on what inputs this is going to get called
linear_layer = Linear(32)

# The layer's weights are created dynamically the first time the layer is called
y = linear_layer(x)


# ## Layers are recursively composable
class MLPBlock(keras.layers.Layer):
    def __init__(self):
        super().__init__()
        self.linear_1 = Linear(32)
        self.linear_2 = Linear(32)
        self.linear_3 = Linear(1)

    def call(self, inputs):
        x = self.linear_1(inputs)
        x = keras.activations.relu(x)
        x = self.linear_2(x)
        x = keras.activations.relu(x)
        return self.linear_3(x)


mlp = MLPBlock()
y = mlp(ops.ones(shape=(3, 64)))  # The first call to the `mlp` will create the weights
print("weights:", len(mlp.weights))
print("trainable weights:", len(mlp.trainable_weights))
assert len(mlp.weights) == 6


# ## The `add_loss()` method
class ActivityRegularizationLayer(keras.layers.Layer):
    def __init__(self, rate=1e-2):
        super().__init__()
        self.rate = rate

    def call(self, inputs):
        self.add_loss(self.rate * ops.mean(inputs))
        return inputs

    def get_config(self):
        return {"rate": self.rate}


class OuterLayer(keras.layers.Layer):
    def __init__(self):
        super().__init__()
        self.activity_reg = ActivityRegularizationLayer(1e-2)

    def call(self, inputs):
        return self.activity_reg(inputs)


layer = OuterLayer()
assert len(layer.losses) == 0  # No losses yet since the layer has never been called

_ = layer(ops.zeros((1, 1)))
assert len(layer.losses) == 1  # We created one loss value

# `layer.losses` gets reset at the start of each __call__
_ = layer(ops.zeros((1, 1)))
assert len(layer.losses) == 1  # This is the loss created during the call above


# ## Privileged `training` argument in the `call()` method
class CustomDropout(keras.layers.Layer):
    def __init__(self, rate, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate
        self.seed_generator = keras.random.SeedGenerator(1337)

    def call(self, inputs, training=None):
        if training:
            return keras.random.dropout(inputs, rate=self.rate, seed=self.seed_generator)
        return inputs

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}


dropout = CustomDropout(0.5)
ones = ops.ones((1000,))
kept = float(ops.mean(ops.cast(dropout(ones, training=True) > 0, "float32")))
print("fraction kept at rate 0.5:", kept)
assert 0.4 < kept < 0.6 and bool(ops.all(dropout(ones, training=False) == ones))

# ## Putting it all together: a model of custom layers, trained with fit
rng = np.random.default_rng(0)
features = rng.normal(size=(512 if SMALL else 4096, 8)).astype("float32")
targets = (np.sin(features[:, :1]) + features[:, 1:2] * features[:, 2:3]).astype("float32")

inputs = keras.Input(shape=(8,))
x = Linear(64)(inputs)
x = keras.layers.Activation("relu")(x)
x = CustomDropout(0.1)(x)
x = ActivityRegularizationLayer(1e-3)(x)
x = Linear(64)(x)
x = keras.layers.Activation("relu")(x)
outputs = Linear(1)(x)
model = keras.Model(inputs, outputs)
model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="mse")
history = model.fit(features, targets, batch_size=32, epochs=15 if SMALL else 40, validation_split=0.2, verbose=2)

path = os.path.join(tempfile.mkdtemp(), "custom.keras")
model.save(path)
custom_objects = {"Linear": Linear, "CustomDropout": CustomDropout, "ActivityRegularizationLayer": ActivityRegularizationLayer}
reloaded = keras.models.load_model(path, custom_objects=custom_objects)
np.testing.assert_allclose(reloaded.predict(features[:16], verbose=0), model.predict(features[:16], verbose=0), rtol=1e-5)

# The targets' variance is what predicting their mean would score.
print(f"final val_loss_over_variance: {history.history['val_loss'][-1] / targets[-len(targets) // 5:].var():.4f}")
