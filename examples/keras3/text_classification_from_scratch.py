"""Text classification from scratch (keras.io's example, imports swapped for Lamina).

The IMDB archive is replaced by generated reviews written to the same folder layout
(`train/pos`, `train/neg`, `test/...`): positive reviews draw from positive words, negative ones
from negative words, both padded with neutral words, HTML line breaks and punctuation. The rest
is the keras.io script: `text_dataset_from_directory`, a `TextVectorization` layer adapted on
the text-only dataset and mapped over it, a 1D convnet, and the end-to-end model that takes raw
strings (`keras.Input(shape=(1,), dtype="string")`).

Two lines differ from keras.io because they call TensorFlow, not Keras: the custom
standardization works on one Python `str` (keras.io uses `tf.strings`), and the batch gets its
last axis by NumPy indexing (`text[..., None]` for `tf.expand_dims(text, -1)`).

    LAMINA_EXAMPLES_SMALL=1 python examples/keras3/text_classification_from_scratch.py
"""

import os
import re
import string
import tempfile

import numpy as np

import lamina as keras
from lamina import layers

SMALL = os.environ.get("LAMINA_EXAMPLES_SMALL") == "1"
keras.utils.set_random_seed(1337)

# ## Generate the data in the aclImdb layout
root = os.path.join(tempfile.mkdtemp(), "aclImdb")
rng = np.random.default_rng(0)
POSITIVE = "great wonderful superb moving brilliant delightful charming masterpiece".split()
NEGATIVE = "awful boring dreadful clumsy tedious terrible pointless mess".split()
NEUTRAL = "the film movie plot actor scene story director camera music it was and a of".split()
per_class = {"train": 120 if SMALL else 1000, "test": 40 if SMALL else 500}
for subset, count in per_class.items():
    for label, words in (("pos", POSITIVE), ("neg", NEGATIVE)):
        os.makedirs(os.path.join(root, subset, label))
        for i in range(count):
            tokens = list(rng.choice(NEUTRAL, size=rng.integers(15, 40)))
            for position in rng.integers(0, len(tokens), size=3):
                tokens.insert(int(position), str(rng.choice(words)).capitalize() + "!")
            review = " ".join(tokens[:20]) + " <br /><br /> " + " ".join(tokens[20:]) + "."
            with open(os.path.join(root, subset, label, f"{i}.txt"), "w", encoding="utf-8") as file:
                file.write(review)

# ## Load the data
batch_size = 32
raw_train_ds = keras.utils.text_dataset_from_directory(
    os.path.join(root, "train"),
    batch_size=batch_size,
    validation_split=0.2,
    subset="training",
    seed=1337,
)
raw_val_ds = keras.utils.text_dataset_from_directory(
    os.path.join(root, "train"),
    batch_size=batch_size,
    validation_split=0.2,
    subset="validation",
    seed=1337,
)
raw_test_ds = keras.utils.text_dataset_from_directory(os.path.join(root, "test"), batch_size=batch_size)

print(f"Number of batches in raw_train_ds: {raw_train_ds.cardinality()}")
print(f"Number of batches in raw_val_ds: {raw_val_ds.cardinality()}")
print(f"Number of batches in raw_test_ds: {raw_test_ds.cardinality()}")

for text_batch, label_batch in raw_train_ds.take(1):
    for i in range(2):
        print(text_batch.numpy()[i])
        print(label_batch.numpy()[i])


# ## Prepare the data
def custom_standardization(input_data):
    lowercase = input_data.lower()
    stripped_html = lowercase.replace("<br />", " ")
    return re.sub(f"[{re.escape(string.punctuation)}]", "", stripped_html)


max_features = 500 if SMALL else 20000
embedding_dim = 16 if SMALL else 128
sequence_length = 48 if SMALL else 500

vectorize_layer = keras.layers.TextVectorization(
    standardize=custom_standardization,
    max_tokens=max_features,
    output_mode="int",
    output_sequence_length=sequence_length,
)

# Now that the vectorize_layer has been created, call `adapt` on a text-only
# dataset to create the vocabulary.
text_ds = raw_train_ds.map(lambda x, y: x)
vectorize_layer.adapt(text_ds)


def vectorize_text(text, label):
    text = text[..., None]
    return vectorize_layer(text), label


train_ds = raw_train_ds.map(vectorize_text)
val_ds = raw_val_ds.map(vectorize_text)
test_ds = raw_test_ds.map(vectorize_text)

train_ds = train_ds.cache().prefetch(buffer_size=10)
val_ds = val_ds.cache().prefetch(buffer_size=10)
test_ds = test_ds.cache().prefetch(buffer_size=10)

# ## Build a model
filters = 16 if SMALL else 128
inputs = keras.Input(shape=(None,), dtype="int64")
x = layers.Embedding(max_features, embedding_dim)(inputs)
x = layers.Dropout(0.5)(x)
x = layers.Conv1D(filters, 7, padding="valid", activation="relu", strides=3)(x)
x = layers.Conv1D(filters, 7, padding="valid", activation="relu", strides=3)(x)
x = layers.GlobalMaxPooling1D()(x)
x = layers.Dense(filters, activation="relu")(x)
x = layers.Dropout(0.5)(x)
predictions = layers.Dense(1, activation="sigmoid", name="predictions")(x)

model = keras.Model(inputs, predictions)
# The small run takes a few dozen steps, so it learns faster than keras.io's default.
optimizer = keras.optimizers.Adam(5e-3) if SMALL else "adam"
model.compile(loss="binary_crossentropy", optimizer=optimizer, metrics=["accuracy"])

# ## Train the model
epochs = 8 if SMALL else 3
model.fit(train_ds, validation_data=val_ds, epochs=epochs, verbose=2)
model.evaluate(test_ds, verbose=0)

# ## Make an end-to-end model
inputs = keras.Input(shape=(1,), dtype="string")
indices = vectorize_layer(inputs)
outputs = model(indices)

end_to_end_model = keras.Model(inputs, outputs)
end_to_end_model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])

_, test_accuracy = end_to_end_model.evaluate(raw_test_ds, verbose=0)
print(end_to_end_model.predict(["A wonderful, moving film!", "Tedious and awful. <br /> A mess."], verbose=0))
print(f"final test_accuracy: {test_accuracy:.4f}")
