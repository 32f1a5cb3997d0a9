"""Image classification from scratch (keras.io's example, imports swapped for Lamina).

The Cats-vs-Dogs download is replaced by a folder of small generated JPEGs: "horizontal" images
carry horizontal stripes and "vertical" ones vertical stripes, in random colours with noise.
Everything else is the keras.io script: `image_dataset_from_directory` with a validation
split, an augmentation pipeline mapped over the dataset, a small Xception-style network with
residual connections, checkpoints, and inference on one file.

    python examples/keras3/image_classification_from_scratch.py
    LAMINA_EXAMPLES_SMALL=1 python examples/keras3/image_classification_from_scratch.py  # seconds
"""

import os
import tempfile

import numpy as np
from PIL import Image

import lamina as keras
from lamina import layers

SMALL = os.environ.get("LAMINA_EXAMPLES_SMALL") == "1"
keras.utils.set_random_seed(1337)

# ## Generate the data: one folder per class, as the Cats-vs-Dogs archive unpacks.
workdir = tempfile.mkdtemp()
data_dir = os.path.join(workdir, "PetImages")
rng = np.random.default_rng(0)
per_class = 40 if SMALL else 400
side = 24
for class_name in ("horizontal", "vertical"):
    os.makedirs(os.path.join(data_dir, class_name))
    for i in range(per_class):
        period = rng.integers(4, 9)
        stripes = (np.arange(side) // (period // 2)) % 2
        pattern = np.tile(stripes[:, None], (1, side)) if class_name == "horizontal" else np.tile(stripes, (side, 1))
        colour = rng.integers(60, 255, size=3)
        image = pattern[..., None] * colour + rng.normal(0, 20, size=(side, side, 3))
        Image.fromarray(np.clip(image, 0, 255).astype("uint8")).save(
            os.path.join(data_dir, class_name, f"{i}.jpg"), quality=90)

# ## Generate a Dataset
image_size = (side, side)
batch_size = 16 if SMALL else 64

train_ds, val_ds = keras.utils.image_dataset_from_directory(
    data_dir,
    validation_split=0.2,
    subset="both",
    seed=1337,
    image_size=image_size,
    batch_size=batch_size,
)

# ## Visualize the data (the keras.io script plots these nine with matplotlib)
for images, labels in train_ds.take(1):
    first_nine = [images[i].numpy().astype("uint8") for i in range(9)]
    print("first labels:", [int(label) for label in labels[:9]], "image", first_nine[0].shape, first_nine[0].dtype)

# ## Using image data augmentation
data_augmentation_layers = [
    layers.RandomFlip("horizontal"),
    layers.RandomRotation(0.05),
]


def data_augmentation(images):
    for layer in data_augmentation_layers:
        images = layer(images)
    return images


# ## Configure the dataset for performance
train_ds = train_ds.map(
    lambda img, label: (data_augmentation(img), label),
    num_parallel_calls=keras.AUTOTUNE,
)
train_ds = train_ds.prefetch(keras.AUTOTUNE)
val_ds = val_ds.prefetch(keras.AUTOTUNE)


# ## Build a model
# The moving statistics of BatchNormalization settle over a few hundred steps at Keras's
# momentum of 0.99; the small run takes a few dozen, so it lets them move faster.
bn_momentum = 0.6 if SMALL else 0.99


def make_model(input_shape, num_classes):
    inputs = keras.Input(shape=input_shape)

    x = layers.Rescaling(1.0 / 255)(inputs)
    x = layers.Conv2D(16, 3, strides=2, padding="same")(x)
    x = layers.BatchNormalization(momentum=bn_momentum)(x)
    x = layers.Activation("relu")(x)

    previous_block_activation = x  # Set aside residual

    for size in [16, 32]:
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size, 3, padding="same")(x)
        x = layers.BatchNormalization(momentum=bn_momentum)(x)

        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size, 3, padding="same")(x)
        x = layers.BatchNormalization(momentum=bn_momentum)(x)

        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)

        # Project residual
        residual = layers.Conv2D(size, 1, strides=2, padding="same")(previous_block_activation)
        x = layers.add([x, residual])  # Add back residual
        previous_block_activation = x  # Set aside next residual

    x = layers.SeparableConv2D(48, 3, padding="same")(x)
    x = layers.BatchNormalization(momentum=bn_momentum)(x)
    x = layers.Activation("relu")(x)

    x = layers.GlobalAveragePooling2D()(x)
    if num_classes == 2:
        units = 1
    else:
        units = num_classes

    x = layers.Dropout(0.25)(x)
    # We specify activation=None so as to return logits
    outputs = layers.Dense(units, activation=None)(x)
    return keras.Model(inputs, outputs)


model = make_model(input_shape=image_size + (3,), num_classes=2)
model.summary()

# ## Train the model
epochs = 7 if SMALL else 25

callbacks = [
    keras.callbacks.ModelCheckpoint(os.path.join(workdir, "save_at_{epoch}.keras")),
]
model.compile(
    optimizer=keras.optimizers.Adam(3e-3),
    loss=keras.losses.BinaryCrossentropy(from_logits=True),
    metrics=[keras.metrics.BinaryAccuracy(name="acc")],
)
history = model.fit(
    train_ds,
    epochs=epochs,
    callbacks=callbacks,
    validation_data=val_ds,
    verbose=2,
)

# ## Run inference on new data
path = os.path.join(data_dir, "vertical", "3.jpg")
img = keras.utils.load_img(path, target_size=image_size)
img_array = keras.utils.img_to_array(img)
img_array = keras.ops.expand_dims(img_array, 0)  # Create batch axis

predictions = model.predict(img_array, verbose=0)
score = float(keras.ops.sigmoid(predictions[0][0]))
print(f"This image is {100 * (1 - score):.2f}% horizontal and {100 * score:.2f}% vertical.")

reloaded = keras.models.load_model(os.path.join(workdir, f"save_at_{epochs}.keras"))
_, val_acc = reloaded.evaluate(val_ds, verbose=0)
print(f"final val_acc: {val_acc:.4f}")
