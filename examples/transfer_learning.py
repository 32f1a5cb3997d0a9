"""Transfer learning as the sheet shows it, end to end on the bundled digits.

1. "Pretraining": a ResNet50 learns digits 0-4; its weights go to a file (the stand-in for
   Keras's ImageNet file, which lamina never downloads: pass `--weights path/to/
   resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5` to use Keras's own).
2. The sheet's recipe: `ResNet50(weights=file, include_top=False)`, `trainable = False`, and a new
   head, trained on digits 5-9; the frozen base (batch norms included) does not change.
3. Fine-tuning: unfreeze the top block, recompile with a small learning rate, train a little more.

    python examples/transfer_learning.py
"""

from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np
import torch

import lamina as keras

SIZE = 32
Split = tuple[np.ndarray, np.ndarray]


def digits_as_rgb(subset: range) -> tuple[Split, Split]:
    """Digits of `subset`, 8x8 gray upsampled to 32x32x3, labels renumbered from 0."""
    (x_train, y_train), (x_test, y_test) = keras.datasets.digits.load_data()

    def prepare(images, labels):
        keep = np.isin(labels, list(subset))
        images = np.repeat(np.repeat(images[keep], SIZE // 8, axis=1), SIZE // 8, axis=2)
        return np.repeat(images, 3, axis=3), labels[keep] - subset.start

    return prepare(x_train, y_train), prepare(x_test, y_test)


def recalibrate_batch_norm(model: keras.Model, images: np.ndarray) -> None:
    """Set each BatchNormalization's moving statistics to those of `images` (one pass in
    training mode with momentum 0, what `torch.optim.swa_utils.update_bn` does). After a short
    training run the moving averages (momentum 0.99) still lag the weights, and a frozen base
    runs on them; published ImageNet weights come with settled statistics."""
    layers = [m for m in model.modules() if isinstance(m, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    model.train()
    with torch.no_grad():
        model(torch.as_tensor(images))
    model.train(False)
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum


def pretrain(path: str) -> None:
    (x, y), (x_test, y_test) = digits_as_rgb(range(0, 5))
    model = keras.applications.ResNet50(weights=None, input_shape=(SIZE, SIZE, 3), classes=5)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=4, batch_size=32, verbose=2)
    recalibrate_batch_norm(model, x)
    print("pretraining accuracy (digits 0-4):",
          model.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"])
    model.save_weights(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--weights", help="a weights file for the base (default: pretrain one)")
    args = parser.parse_args()
    keras.set_random_seed(0)
    weights = args.weights
    if weights is None:
        weights = os.path.join(tempfile.mkdtemp(), "resnet50_digits.weights.h5")
        pretrain(weights)

    num_classes = 5
    (x, y), (x_test, y_test) = digits_as_rgb(range(5, 10))

    # TensorFlow part of the sheet, after `import lamina as keras`; weights from a local file.
    base_model = keras.applications.ResNet50(
        weights=weights,
        include_top=False,
        input_shape=(SIZE, SIZE, 3)
    )
    base_model.trainable = False  # Freeze base model

    # Add custom head
    model = keras.Sequential([
        base_model,
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(1024, activation='relu'),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(num_classes, activation='softmax')
    ])
    model.summary()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=5, batch_size=64, verbose=2)
    print("frozen base, new head (digits 5-9):",
          model.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"])

    # Fine-tuning: unfreeze the convolutions of the last stage; the batch norms stay frozen (in
    # inference mode), as Keras's fine-tuning guide advises. Recompile so the optimizer sees the
    # newly trainable weights.
    base_model.trainable = True
    for layer in base_model.layers:
        layer.trainable = layer.name.startswith("conv5_") and \
            not isinstance(layer, keras.layers.BatchNormalization)
    model.summary(show_trainable=True)
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=3, batch_size=64, verbose=2)
    print("after fine-tuning conv5:",
          model.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"])


if __name__ == "__main__":
    main()
