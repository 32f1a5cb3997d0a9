"""Transfer learning as the sheet shows it: a frozen base under a new head, then fine-tuning the
top blocks."""

from __future__ import annotations

import re

import numpy as np
import torch

import lamina


def _data(count: int, size: int, classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(count, size, size, 3)).astype(np.float32),
            rng.integers(0, classes, size=count))


def _snapshot(model) -> dict[str, np.ndarray]:
    return {f"{layer.name}/{i}": w for layer in model.modules()
            if isinstance(layer, lamina.Layer) and layer._own_weights()
            for i, w in enumerate(layer.get_weights())}


def test_the_sheets_snippet_runs_after_the_import_swap():
    import lamina as keras

    num_classes = 5
    base_model = keras.applications.ResNet50(
        weights=None,
        include_top=False,
        input_shape=(224, 224, 3)
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

    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = _data(2, 224, num_classes)
    model.fit(x, y, epochs=1, batch_size=2, verbose=0)
    assert model.predict(x, verbose=0).shape == (2, num_classes)


def test_frozen_base_keeps_its_weights_and_statistics_while_the_head_learns(tmp_path):
    lamina.set_random_seed(0)
    # Pretrained weights from a file, as the sheet's 'imagenet' (here: a saved random base).
    lamina.applications.ResNet50(include_top=False, input_shape=(32, 32, 3)).save_weights(
        tmp_path / "base.weights.h5")
    base = lamina.applications.ResNet50(weights=str(tmp_path / "base.weights.h5"),
                                        include_top=False, input_shape=(32, 32, 3))
    base.trainable = False
    model = lamina.Sequential([
        base,
        lamina.layers.GlobalAveragePooling2D(),
        lamina.layers.Dense(16, activation="relu", name="head_hidden"),
        lamina.layers.Dense(3, activation="softmax", name="head_out"),
    ])
    lines: list[str] = []
    model.summary(print_fn=lines.append)
    head = 2048 * 16 + 16 + 16 * 3 + 3
    assert f" Trainable params: {head:,} " in "\n".join(lines)
    assert f" Non-trainable params: {base.count_params():,} " in "\n".join(lines)

    before = _snapshot(model)
    x, y = _data(8, 32, 3)
    model.compile(optimizer=lamina.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    after = _snapshot(model)
    for key, value in before.items():
        if key.startswith("head_"):
            assert not np.array_equal(value, after[key]), key
        else:
            # Kernels and batch-norm moving statistics alike: a frozen BatchNormalization runs
            # in inference mode, as in Keras.
            np.testing.assert_array_equal(value, after[key], err_msg=key)


def test_unfreezing_the_top_blocks_for_fine_tuning():
    lamina.set_random_seed(0)
    base = lamina.applications.ResNet50(include_top=False, input_shape=(32, 32, 3))
    model = lamina.Sequential([base, lamina.layers.GlobalAveragePooling2D(),
                               lamina.layers.Dense(3, activation="softmax", name="head")])
    # Keras's recipe: unfreeze the base, then freeze every layer below the top block.
    base.trainable = True
    top_block = [layer for layer in base.layers if layer.name.startswith("conv5_block3_")]
    for layer in base.layers:
        layer.trainable = layer in top_block
    trainable_in_base = sum(p.numel() for layer in top_block for p in layer.parameters())
    lines: list[str] = []
    model.summary(print_fn=lines.append, show_trainable=True)
    text = "\n".join(lines)
    trainable = int(re.search(r" Trainable params: ([\d,]+) ", text).group(1).replace(",", ""))
    assert trainable == trainable_in_base + 2048 * 3 + 3

    before = _snapshot(model)
    x, y = _data(8, 32, 3)
    model.compile(optimizer=lamina.optimizers.SGD(1e-3), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    after = _snapshot(model)
    assert not np.array_equal(before["conv5_block3_3_conv/0"], after["conv5_block3_3_conv/0"])
    # The unfrozen batch norm trains (batch statistics, moving averages updated) ...
    assert not np.array_equal(before["conv5_block3_3_bn/2"], after["conv5_block3_3_bn/2"])
    # ... while everything below the top block stays as it was.
    for key in ("conv5_block2_3_conv/0", "conv4_block6_3_bn/2", "conv1_conv/0"):
        np.testing.assert_array_equal(before[key], after[key], err_msg=key)
    with torch.no_grad():
        assert model(torch.as_tensor(x)).shape == (8, 3)
