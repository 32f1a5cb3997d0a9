"""Softmax, log_softmax and cross-entropy over short rows (lamina/_short_softmax.py).

torch's float32 CPU kernels take a row shorter than one SIMD vector element by element; lamina
pads such rows with -inf where that was measured to pay. These tests hold the padded path to
numpy's float64 formulas and to torch's own errors, and check where it is (and is not) taken.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

import lamina
from lamina import _short_softmax, activations, layers, ops


class _RecordPads(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.pads = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten.constant_pad_nd.default:
            self.pads.append(tuple(args[1]))
        return func(*args, **(kwargs or {}))


def _numpy_log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


@pytest.fixture
def avx512(monkeypatch):
    """The measured 16-lane kernels, whatever this machine dispatches to."""
    monkeypatch.setattr(_short_softmax, "_vector_width", lambda: 16)


@pytest.mark.parametrize("shape, pads", [
    ((1024, 10), (0, 6)),  # a 10-class head at evaluate's batch size
    ((512, 5), (0, 11)),
    ((64, 32, 7), (0, 9)),  # any leading shape
    ((4, 10), None),  # too few elements for the pad to pay
    ((1024, 2), None),  # two classes run as fast either way
    ((1024, 16), None),  # already a whole vector
    ((1024, 100), None),
])
def test_softmax_and_log_softmax_match_the_formula_on_either_path(avx512, shape, pads):
    torch.manual_seed(0)
    x = torch.randn(shape) * 4
    expected = _numpy_log_softmax(x.numpy())
    recorder = _RecordPads()
    with recorder:
        log_p = activations.log_softmax(x)
        p = activations.softmax(x)
    assert recorder.pads == ([pads] * 2 if pads else [])
    assert log_p.shape == p.shape == x.shape and log_p.is_contiguous() and p.is_contiguous()
    np.testing.assert_allclose(log_p.numpy(), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(p.numpy(), np.exp(expected), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_matches_the_formula_and_torchs_ignore_index(avx512, reduction):
    torch.manual_seed(0)
    logits = torch.randn(1024, 10) * 3
    labels = torch.randint(0, 10, (1024,))
    labels[::7] = -100  # torch's default ignore_index
    recorder = _RecordPads()
    with recorder:
        loss = _short_softmax.cross_entropy(logits, labels, reduction=reduction)
    assert recorder.pads == [(0, 6)]
    log_p = _numpy_log_softmax(logits.numpy())
    kept = labels.numpy() != -100
    per_sample = np.zeros(1024)
    per_sample[kept] = -log_p[kept, labels.numpy()[kept]]
    expected = {"none": per_sample, "sum": per_sample.sum(),
                "mean": per_sample.sum() / kept.sum()}[reduction]
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_a_label_past_the_classes_gets_torchs_error_not_an_infinite_loss(avx512):
    # Columns 10-15 exist only in the padded rows; a label there must not read them.
    logits = torch.randn(1024, 10)
    labels = torch.zeros(1024, dtype=torch.int64)
    labels[5] = 12
    with pytest.raises(IndexError, match="out of bounds"):
        _short_softmax.cross_entropy(logits, labels)
    with pytest.raises(IndexError, match="out of bounds"):
        F.cross_entropy(logits, labels)


def test_infinite_and_nan_rows_come_out_as_torchs(avx512):
    x = torch.randn(512, 10)
    x[0, 3] = float("inf")
    x[1] = float("-inf")
    x[2, :4] = float("-inf")
    x[3, 7] = float("nan")
    x[4, 0] = 1e30
    with torch.no_grad():
        torch.testing.assert_close(activations.softmax(x), torch.softmax(x, -1), equal_nan=True)
        torch.testing.assert_close(activations.log_softmax(x), torch.log_softmax(x, -1),
                                   equal_nan=True)


@pytest.mark.parametrize("shape, pads", [
    ((256, 10), False),  # a usual training batch: the pad and slice nodes cost more than they save
    ((1024, 3), False),  # too few classes for the backward pass to gain
    ((1024, 10), True),
    ((512, 15), True),
])
def test_a_gradient_takes_the_padded_path_only_on_large_batches(avx512, shape, pads):
    torch.manual_seed(0)
    logits = (torch.randn(shape) * 3).requires_grad_()
    labels = torch.randint(0, shape[1], shape[:1])
    upstream = torch.randn(shape)
    recorder = _RecordPads()
    with recorder:
        loss = _short_softmax.cross_entropy(logits, labels) \
            + (activations.softmax(logits) * upstream).sum()
    assert bool(recorder.pads) == pads
    loss.backward()
    # d/dz of mean(-log p_y) + sum(g * p): (p - onehot) / n + p * (g - sum(g * p)).
    log_p = _numpy_log_softmax(logits.detach().numpy())
    p, g = np.exp(log_p), upstream.double().numpy()
    onehot = np.eye(shape[1])[labels.numpy()]
    expected = (p - onehot) / shape[0] + p * (g - (g * p).sum(-1, keepdims=True))
    np.testing.assert_allclose(logits.grad.numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_other_dtypes_and_other_axes_keep_torchs_kernel(avx512, dtype):
    recorder = _RecordPads()
    with recorder:
        activations.softmax(torch.randn(1024, 10, dtype=dtype))
        activations.softmax(torch.randn(10, 1024), axis=0)
        ops.log_softmax(torch.randn(1024, 10, 4), axis=1)
    assert recorder.pads == []


@pytest.mark.parametrize("capability, classes, pad", [
    ("AVX512", 10, 6), ("AVX512", 15, 1), ("AVX2", 10, 0), ("AVX2", 5, 3), ("DEFAULT", 5, 0),
])
def test_the_vector_width_follows_the_kernels_torch_dispatches_to(monkeypatch, capability,
                                                                 classes, pad):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    _short_softmax._vector_width.cache_clear()
    try:
        assert _short_softmax.padding(torch.zeros(1024, classes)) == pad
    finally:
        _short_softmax._vector_width.cache_clear()


def test_a_softmax_model_predicts_and_evaluates_what_numpy_computes(avx512):
    # The sheet's form: Dense(softmax) with sparse categorical cross-entropy and accuracy;
    # predict and evaluate take the padded path, fit's gradients do not.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1024, 20)).astype(np.float32)
    y = rng.integers(0, 10, 1024)
    model = lamina.Sequential([lamina.Input((20,)), layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=256, epochs=1, verbose=0)
    kernel, bias = (w.detach().double().numpy() for w in (model.layers[0].kernel,
                                                          model.layers[0].bias))
    log_p = _numpy_log_softmax(x.astype(np.float64) @ kernel + bias)
    recorder = _RecordPads()
    with recorder:
        probabilities = model.predict(x, batch_size=1024, verbose=0)
    assert recorder.pads
    np.testing.assert_allclose(probabilities, np.exp(log_p), rtol=1e-5, atol=1e-6)
    loss, accuracy = model.evaluate(x, y, batch_size=1024, verbose=0)
    np.testing.assert_allclose(loss, -log_p[np.arange(1024), y].mean(), rtol=1e-5)
    assert accuracy == pytest.approx((log_p.argmax(1) == y).mean())


def test_exported_graphs_keep_torchs_kernel(avx512, tmp_path):
    # An exported graph would bake the branch in, or guard on a dynamic batch size.
    model = lamina.Sequential([lamina.Input((20,)), layers.Dense(10, activation="softmax")])
    x = torch.randn(512, 20)
    with torch.no_grad():
        static = torch.export.export(model, (x,)).module()
    model.export(str(tmp_path / "m.pt2"), format="torch", verbose=False)  # a dynamic batch
    dynamic = torch.export.load(str(tmp_path / "m.pt2")).module()
    for program in (static, dynamic):
        assert not [node for node in program.graph.nodes if "pad" in str(node.target)]
        with torch.no_grad():
            torch.testing.assert_close(program(x), model(x))
