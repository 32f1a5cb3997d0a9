"""TensorBoard's Keras arguments, read back from the files with TensorBoard's own reader."""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest

import lamina as keras
from lamina import layers

EventAccumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator").EventAccumulator


def _data(n=32):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 6)).astype("float32")
    return x, (x[:, 0] > 0).astype("int64")


def _model():
    net = keras.Sequential([layers.Dense(4, activation="relu", input_shape=(6,)),
                            layers.Dense(2, activation="softmax")])
    net.compile("sgd", "sparse_categorical_crossentropy")
    return net


def _events(path):
    return EventAccumulator(str(path), size_guidance={"images": 0, "scalars": 0}).Reload()


def test_write_graph_traces_the_model_once(tmp_path):
    board = keras.callbacks.TensorBoard(tmp_path, write_graph=True)
    _model().fit(*_data(), batch_size=8, epochs=2, verbose=0, callbacks=[board])
    graph = _events(tmp_path / "train").Graph()
    ops = {node.op for node in graph.node}
    assert {"aten::relu_", "aten::softmax"} <= ops  # Dense rectifies its product in place
    # The two Dense layers (the only matrix products), traced once, not once per batch.
    assert sum(node.op in ("aten::addmm", "aten::linear") for node in graph.node) == 2


def test_write_graph_false_writes_no_graph(tmp_path):
    board = keras.callbacks.TensorBoard(tmp_path, write_graph=False)
    _model().fit(*_data(), batch_size=8, epochs=1, verbose=0, callbacks=[board])
    assert not _events(tmp_path / "train").Tags()["graph"]


def test_write_images_draws_each_weight_as_keras_lays_it_out(tmp_path):
    net = _model()
    board = keras.callbacks.TensorBoard(tmp_path, histogram_freq=1, write_images=True,
                                        write_graph=False)
    net.fit(*_data(), batch_size=8, epochs=1, verbose=0, callbacks=[board])
    events = _events(tmp_path / "train")
    kernel = net.layers[0].kernel.detach().numpy()  # (6, 4): drawn transposed, 4 x 6
    images = {tag: events.Images(tag)[-1] for tag in events.Tags()["images"]}
    kernel_tag = f"{net.layers[0].kernel.path}/image"
    bias_tag = f"{net.layers[0].bias.path}/image"
    assert {kernel_tag, bias_tag} <= set(images)
    assert (images[kernel_tag].height, images[kernel_tag].width) == (4, 6)
    assert (images[bias_tag].height, images[bias_tag].width) == (1, 4)
    import io

    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(images[kernel_tag].encoded_image_string)))
    pixels = pixels[..., 0] if pixels.ndim == 3 else pixels
    scaled = (kernel.T - kernel.min()) / (kernel.max() - kernel.min()) * 255
    np.testing.assert_allclose(pixels, scaled, atol=1.0)


def test_steps_per_second_and_update_freq_batch(tmp_path):
    board = keras.callbacks.TensorBoard(tmp_path, write_steps_per_second=True,
                                        update_freq="batch", write_graph=False)
    _model().fit(*_data(), batch_size=8, epochs=2, verbose=0, callbacks=[board])
    events = _events(tmp_path / "train")
    rates = events.Scalars("batch_steps_per_second")
    assert [r.step for r in rates] == list(range(1, 9)) and all(r.value > 0 for r in rates)
    assert [e.step for e in events.Scalars("epoch_steps_per_second")] == [0, 1]
    assert [e.step for e in events.Scalars("batch_loss")] == list(range(1, 9))


def test_profile_batch_writes_a_torch_profiler_trace_of_those_batches(tmp_path):
    board = keras.callbacks.TensorBoard(tmp_path, profile_batch=(2, 3), write_graph=False)
    _model().fit(*_data(), batch_size=8, epochs=1, verbose=0, callbacks=[board])
    traces = glob.glob(str(tmp_path / "train" / "*.pt.trace.json*"))
    assert len(traces) == 1
    import gzip
    import json

    opener = gzip.open if traces[0].endswith(".gz") else open
    with opener(traces[0], "rt") as file:
        trace = json.load(file)
    names = [event.get("name", "") for event in trace["traceEvents"]]
    # Batches 2 and 3 profiled: each runs the two Dense layers' forward matrix products.
    assert names.count("aten::addmm") == 4


@pytest.mark.parametrize("bad", [-1, (3, 2), "a,b", (1, 2, 3), 1.5])
def test_profile_batch_errors_name_the_value(bad):
    with pytest.raises(ValueError, match="profile_batch must be a non-negative integer"):
        keras.callbacks.TensorBoard(profile_batch=bad)


def test_embeddings_are_written_for_the_projector_with_metadata(tmp_path):
    net = keras.Sequential([layers.Embedding(5, 3, name="words", input_shape=(2,)),
                            layers.Flatten(), layers.Dense(1)])
    net.compile("sgd", "mse")
    labels = tmp_path / "labels.tsv"
    labels.write_text("\n".join(f"word{i}" for i in range(5)) + "\n", encoding="utf-8")
    board = keras.callbacks.TensorBoard(tmp_path / "logs", embeddings_freq=2, write_graph=False,
                                        embeddings_metadata={"words": str(labels)})
    x = np.random.default_rng(0).integers(0, 5, size=(16, 2))
    net.fit(x, np.zeros((16, 1), "float32"), epochs=2, verbose=0, callbacks=[board])
    config = (tmp_path / "logs" / "train" / "projector_config.pbtxt").read_text()
    assert "words" in config
    [tensors] = glob.glob(str(tmp_path / "logs" / "train" / "*" / "*words*" / "tensors.tsv"))
    written = np.loadtxt(tensors, delimiter="\t")
    np.testing.assert_allclose(written, net.layers[0].embeddings.detach().numpy(), rtol=1e-6)
    with open(os.path.join(os.path.dirname(tensors), "metadata.tsv"), encoding="utf-8") as file:
        metadata = file.read().split()
    assert metadata == [f"word{i}" for i in range(5)]


def test_a_model_that_cannot_be_traced_warns_once_and_trains_on(tmp_path):
    import torch

    class Untraceable(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = layers.Dense(2, activation="softmax")

        def call(self, x):
            if torch.jit.is_tracing():
                raise RuntimeError("data-dependent control flow")
            return self.dense(x)

    net = Untraceable()
    net.compile("sgd", "sparse_categorical_crossentropy")
    board = keras.callbacks.TensorBoard(tmp_path)
    with pytest.warns(UserWarning, match=r"could not trace the model.*write_graph=False") as caught:
        history = net.fit(*_data(), batch_size=8, epochs=2, verbose=0, callbacks=[board])
    assert len([w for w in caught if "could not trace" in str(w.message)]) == 1
    assert len(history.history["loss"]) == 2
