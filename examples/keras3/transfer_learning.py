"""Transfer learning and fine-tuning (keras.io's guide, imports swapped for Lamina).

The guide's recipe on a Keras application: a base model with `include_top=False`, frozen
(`base_model.trainable = False`) and called with `training=False` so its BatchNormalization
layers stay in inference mode; a new head trained on top; then the whole model unfrozen and
fine-tuned at a low learning rate. The cats-vs-dogs download becomes a folder of generated
JPEGs (stripes in two orientations) read with `image_dataset_from_directory`.

The ImageNet weights are a download, and a randomly initialised base is no feature extractor
(its outputs vanish), so a stand-in is made first: the base is trained for a moment on a
related pretext task (stripe orientation and width, on other images), saved with
`save_weights`, and loaded with `weights=path` as Keras's ImageNet file would be. MobileNetV2 at
alpha=0.35 on 32x32 images keeps this small.

    LAMINA_EXAMPLES_SMALL=1 python examples/keras3/transfer_learning.py
"""

import os
import tempfile

import numpy as np
from PIL import Image

import lamina as keras

SMALL = os.environ.get("LAMINA_EXAMPLES_SMALL") == "1"
keras.utils.set_random_seed(1337)

workdir = tempfile.mkdtemp()
rng = np.random.default_rng(1)
side = 32


def stripes(horizontal, width):
    pattern = (np.arange(side) // width) % 2
    pattern = np.tile(pattern[:, None], (1, side)) if horizontal else np.tile(pattern, (side, 1))
    image = pattern[..., None] * rng.integers(80, 255, size=3) + rng.normal(0, 25, size=(side, side, 3))
    return np.clip(image, 0, 255).astype("uint8")


# ## A stand-in for the ImageNet weights: pretraining on a pretext task
pretext_labels = rng.integers(0, 4, size=256 if SMALL else 2000)
pretext_images = np.stack([stripes(label % 2 == 0, 2 + 2 * (label // 2)) for label in pretext_labels])
pretext_base = keras.applications.MobileNetV2(weights=None, input_shape=(side, side, 3), alpha=0.35, include_top=False)
# A few dozen steps instead of ImageNet's many thousands: let the BatchNormalization moving
# statistics (which the frozen base will use) catch up within them.
for layer in pretext_base.layers:
    if isinstance(layer, keras.layers.BatchNormalization):
        layer.momentum = 0.7
pretext_model = keras.Sequential([
    keras.Input((side, side, 3)),
    keras.layers.Rescaling(scale=1 / 127.5, offset=-1),
    pretext_base,
    keras.layers.GlobalAveragePooling2D(),
    keras.layers.Dense(4),
])
pretext_model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
pretext_model.fit(pretext_images, pretext_labels, epochs=2 if SMALL else 5, batch_size=32, verbose=0)
pretrained_path = os.path.join(workdir, "mobilenet_v2_pretext.weights.h5")
pretext_base.save_weights(pretrained_path)

# ## Getting the data
data_dir = os.path.join(workdir, "cats_vs_dogs")
for class_name in ("cat", "dog"):
    os.makedirs(os.path.join(data_dir, class_name))
    for i in range(48 if SMALL else 500):
        image = stripes(class_name == "cat", 4)
        Image.fromarray(image).save(os.path.join(data_dir, class_name, f"{i}.jpg"))

train_ds, validation_ds = keras.utils.image_dataset_from_directory(
    data_dir,
    validation_split=0.25,
    subset="both",
    seed=1337,
    image_size=(side, side),
    batch_size=16,
    label_mode="binary",
)
print(f"Number of training batches: {train_ds.cardinality()}")

# ## Using random data augmentation
augmentation_layers = [
    keras.layers.RandomFlip("horizontal"),
]


def data_augmentation(x):
    for layer in augmentation_layers:
        x = layer(x)
    return x


train_ds = train_ds.map(lambda x, y: (data_augmentation(x), y))
train_ds = train_ds.cache().prefetch(buffer_size=keras.AUTOTUNE)
validation_ds = validation_ds.cache().prefetch(buffer_size=keras.AUTOTUNE)

# ## Build a model
base_model = keras.applications.MobileNetV2(
    weights=pretrained_path,  # keras.io loads "imagenet" here
    input_shape=(side, side, 3),
    alpha=0.35,
    include_top=False,
)  # Do not include the ImageNet classifier at the top.

# Freeze the base_model
base_model.trainable = False

# Create new model on top
inputs = keras.Input(shape=(side, side, 3))

# MobileNetV2 expects inputs in [-1, 1].
scale_layer = keras.layers.Rescaling(scale=1 / 127.5, offset=-1)
x = scale_layer(inputs)

# The base model contains batchnorm layers. We want to keep them in inference mode
# when we unfreeze the base model for fine-tuning, so we make sure that the
# base_model is running in inference mode here.
x = base_model(x, training=False)
x = keras.layers.GlobalAveragePooling2D()(x)
x = keras.layers.Dropout(0.2)(x)  # Regularize with dropout
outputs = keras.layers.Dense(1)(x)
model = keras.Model(inputs, outputs)

model.summary(show_trainable=True)

# ## Train the top layer
model.compile(
    optimizer=keras.optimizers.Adam(1e-2 if SMALL else 1e-3),
    loss=keras.losses.BinaryCrossentropy(from_logits=True),
    metrics=[keras.metrics.BinaryAccuracy()],
)

frozen_before = [w.copy() for w in base_model.get_weights()]
epochs = 4 if SMALL else 20
print("Fitting the top layer of the model")
model.fit(train_ds, epochs=epochs, validation_data=validation_ds, verbose=2)
frozen_unchanged = all(np.array_equal(a, b) for a, b in zip(frozen_before, base_model.get_weights()))
print("frozen base unchanged (BatchNormalization statistics included):", frozen_unchanged)

# ## Do a round of fine-tuning of the entire model
base_model.trainable = True
model.summary(show_trainable=True)

model.compile(
    optimizer=keras.optimizers.Adam(1e-4 if SMALL else 1e-5),  # Low learning rate
    loss=keras.losses.BinaryCrossentropy(from_logits=True),
    metrics=[keras.metrics.BinaryAccuracy()],
)

print("Fitting the end-to-end model")
model.fit(train_ds, epochs=1 if SMALL else 2, validation_data=validation_ds, verbose=2)

print("Test dataset evaluation")
_, accuracy = model.evaluate(validation_ds, verbose=0)
assert frozen_unchanged
print(f"final binary_accuracy: {accuracy:.4f}")
