"""Timeseries forecasting for weather prediction (keras.io's example, imports swapped).

The Jena climate CSV is replaced by a generated 10-minute series of seven features (a
temperature with daily and slow cycles, and pressure, humidity and wind correlated with it);
keras.io's pandas selections become NumPy slices. Everything else is the keras.io script:
normalization on the training part, `timeseries_dataset_from_array` with `sampling_rate=step`
and targets shifted `past + future` rows ahead, an LSTM, EarlyStopping and a best-only weights
checkpoint.

    LAMINA_EXAMPLES_SMALL=1 python examples/keras3/timeseries_weather_forecasting.py
"""

import os
import tempfile

import numpy as np

import lamina as keras

SMALL = os.environ.get("LAMINA_EXAMPLES_SMALL") == "1"
keras.utils.set_random_seed(1337)

# ## Generate the climate data: one row every 10 minutes
rows = 2500 if SMALL else 60000
rng = np.random.default_rng(0)
t = np.arange(rows)
day = 144  # rows per day
temperature = 10 + 8 * np.sin(2 * np.pi * t / day) + 5 * np.sin(2 * np.pi * t / (day * 9)) + rng.normal(0, 0.5, rows)
pressure = 1000 - 0.8 * temperature + rng.normal(0, 1, rows)
humidity = 80 - 2 * temperature + rng.normal(0, 3, rows)
wind = np.abs(3 + np.sin(2 * np.pi * t / (day * 3)) + rng.normal(0, 0.5, rows))
features = np.stack([pressure, temperature, temperature - 5 + rng.normal(0, 0.3, rows), humidity,
                     humidity / 10, wind, 1.2 - 0.001 * temperature], axis=1).astype("float32")

split_fraction = 0.715
train_split = int(split_fraction * int(features.shape[0]))
step = 6

past = 120 if SMALL else 720
future = 12 if SMALL else 72
learning_rate = 0.01 if SMALL else 0.001
batch_size = 128 if SMALL else 256
epochs = 5 if SMALL else 10


def normalize(data, train_split):
    data_mean = data[:train_split].mean(axis=0)
    data_std = data[:train_split].std(axis=0)
    return (data - data_mean) / data_std


features = normalize(features, train_split)
train_data = features[0:train_split]
val_data = features[train_split:]

# ## Training dataset
start = past + future
end = start + train_split

x_train = train_data[:, :7]
y_train = features[start:end][:, [1]]

sequence_length = int(past / step)

dataset_train = keras.preprocessing.timeseries_dataset_from_array(
    x_train,
    y_train,
    sequence_length=sequence_length,
    sampling_rate=step,
    batch_size=batch_size,
)

# ## Validation dataset
x_end = len(val_data) - past - future

label_start = train_split + past + future

x_val = val_data[:x_end][:, :7]
y_val = features[label_start:][:, [1]]

dataset_val = keras.preprocessing.timeseries_dataset_from_array(
    x_val,
    y_val,
    sequence_length=sequence_length,
    sampling_rate=step,
    batch_size=batch_size,
)

for batch in dataset_train.take(1):
    inputs, targets = batch

print("Input shape:", inputs.numpy().shape)
print("Target shape:", targets.numpy().shape)

# ## Training
inputs = keras.layers.Input(shape=(inputs.shape[1], inputs.shape[2]))
lstm_out = keras.layers.LSTM(16 if SMALL else 32)(inputs)
outputs = keras.layers.Dense(1)(lstm_out)

model = keras.Model(inputs=inputs, outputs=outputs)
model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss="mse")
model.summary()

path_checkpoint = os.path.join(tempfile.mkdtemp(), "model_checkpoint.weights.h5")
es_callback = keras.callbacks.EarlyStopping(monitor="val_loss", min_delta=0, patience=5)

modelckpt_callback = keras.callbacks.ModelCheckpoint(
    monitor="val_loss",
    filepath=path_checkpoint,
    verbose=1,
    save_weights_only=True,
    save_best_only=True,
)

history = model.fit(
    dataset_train,
    epochs=epochs,
    validation_data=dataset_val,
    callbacks=[es_callback, modelckpt_callback],
    verbose=2,
)

# ## Prediction: the best checkpoint, a few validation windows
model.load_weights(path_checkpoint)
for x, y in dataset_val.take(3):
    print("true", float(y[0].numpy()[0]), "predicted", float(model.predict(x, verbose=0)[0][0]))

print(f"final val_loss: {min(history.history['val_loss']):.4f}")
