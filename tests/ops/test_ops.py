"""lamina.ops against outside oracles: every op name has a row in cases.py checked against
NumPy/SciPy; the same rows run inside functional models (symbolic = eager), against real Keras 3
on its torch backend (values and dtypes), and a model of ops saves, loads and refuses names
outside the registered table."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

import lamina
from lamina import config, ops
from lamina._symbolic import KerasTensor
from lamina.errors import FileFormatError, UnsafeLoadError
from lamina.models import model_from_json
from lamina.ops._op import SAVEABLE
from lamina.saving import serialize
from tests.ops.cases import CASES, FUNCTIONAL, INTROSPECTION, RANDOM, Case

IDS = []
for _case in CASES:
    _id, _n = _case.id, 2
    while _id in IDS:
        _id, _n = f"{_case.id}-{_n}", _n + 1
    IDS.append(_id)


def function_of(case: Case):
    return getattr(ops.image if case.group == "image" else ops, case.name)


def to_numpy(value):
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, (list, tuple)):
        return [to_numpy(v) for v in value]
    return np.asarray(value)


def assert_close(ours, reference, atol: float, where: str = "") -> None:
    if isinstance(reference, (list, tuple)):
        assert isinstance(ours, (list, tuple)), f"{where}: expected a sequence, got {ours!r:.60}"
        assert len(ours) >= len(reference), where
        for i, (a, b) in enumerate(zip(ours, reference)):
            assert_close(a, b, atol, f"{where}[{i}]")
        return
    ours, reference = np.asarray(to_numpy(ours)), np.asarray(reference)
    assert ours.shape == reference.shape, f"{where}: shape {ours.shape} != {reference.shape}"
    if np.isfinite(atol):
        np.testing.assert_allclose(ours.astype(np.complex128 if np.iscomplexobj(ours) else
                                               np.float64),
                                   reference.astype(np.complex128 if np.iscomplexobj(reference)
                                                    else np.float64),
                                   rtol=1e-5, atol=atol, equal_nan=True, err_msg=where)


def dtypes_of(value):
    if isinstance(value, torch.Tensor):
        return [config.dtype_name(value.dtype)]
    if isinstance(value, (list, tuple)):
        return [d for v in value for d in dtypes_of(v)]
    return []


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_matches_numpy_reference(case):
    out = function_of(case)(*case.args, **case.kwargs)
    if case.post is not None:
        out = case.post(to_numpy(out))
    reference = (case.ref or getattr(np, case.name))(*case.args, **case.kwargs)
    assert_close(out, reference, case.atol, case.id)
    if case.dtype is not None:
        assert set(dtypes_of(out)) == {case.dtype}


def test_every_op_has_a_row():
    names = {n for n in ops.__all__ if n not in ("core", "image", "linalg", "math", "nn", "numpy")}
    names |= {f"image.{n}" for n in ops.image.__all__}
    covered = {c.id for c in CASES}
    assert names - covered - FUNCTIONAL - INTROSPECTION - RANDOM == set()


def test_inputs_may_be_numpy_scalars_lists_or_tensors():
    expected = np.array([2.0, 4.0], np.float32)
    for x in (np.array([1.0, 2.0], np.float32), [1.0, 2.0], torch.tensor([1.0, 2.0])):
        out = ops.multiply(x, 2)
        assert out.dtype == torch.float32
        np.testing.assert_array_equal(out.numpy(), expected)
    assert ops.add(1, 2).dtype == torch.int32
    assert ops.add(1, 2.0).dtype == torch.float32
    assert ops.convert_to_tensor(np.arange(3)).dtype == torch.int64
    assert ops.convert_to_tensor([True, False]).dtype == torch.bool
    assert ops.add(torch.ones(2, dtype=torch.float16), 2.5).dtype == torch.float16
    assert ops.mean(torch.ones(2, dtype=torch.float16)).dtype == torch.float16


def test_introspection_ops():
    x = torch.zeros(2, 3, dtype=torch.int32)
    assert ops.shape(x) == (2, 3) and ops.dtype(x) == "int32" and ops.is_tensor(x)
    assert not ops.is_tensor(np.zeros(2))
    np.testing.assert_array_equal(ops.convert_to_numpy(x), np.zeros((2, 3), np.int32))
    symbolic = lamina.Input((5,))
    assert ops.shape(symbolic) == (None, 5) and ops.dtype(symbolic) == "float32"
    with pytest.raises(TypeError, match="no values"):
        ops.convert_to_numpy(symbolic)


def test_scan_walks_nested_structures_as_keras_does():
    # Keras's scan: xs and the outputs may be any tree; None inside an output stays None.
    a = np.arange(6, dtype=np.float32).reshape(3, 2)
    b = np.ones((3, 2), np.float32)

    def step(carry, x):
        carry = carry + 2 * x["a"] + x["b"]
        return carry, {"sum": carry, "pair": (carry * 2, None)}

    carry, ys = ops.scan(step, torch.zeros(2), {"b": b, "a": a})
    expected = np.cumsum(2 * a + b, axis=0)
    np.testing.assert_allclose(carry.numpy(), expected[-1])
    np.testing.assert_allclose(ys["sum"].numpy(), expected)
    np.testing.assert_allclose(ys["pair"][0].numpy(), 2 * expected)
    assert ys["pair"][1] is None
    carry, ys = ops.scan(lambda c, x: (c + 1, None), 0, None, length=3)
    assert (carry, ys) == (3, None)
    sums = ops.associative_scan(lambda p, q: {"x": p["x"] + q["x"], "y": p["y"] * q["y"]},
                                {"x": a, "y": a + 1})
    np.testing.assert_allclose(sums["x"].numpy(), np.cumsum(a, axis=0))
    np.testing.assert_allclose(sums["y"].numpy(), np.cumprod(a + 1, axis=0))


def test_control_flow_against_python():
    assert int(ops.cond(torch.tensor(True), lambda: torch.tensor(1), lambda: torch.tensor(2))) == 1
    assert int(ops.switch(5, [lambda x: x, lambda x: x * 10], torch.tensor(3))) == 30
    assert int(ops.while_loop(lambda i: i < 10, lambda i: i * 2, torch.tensor(1))) == 16
    i, total = ops.while_loop(lambda i, t: i < 5, lambda i, t: (i + 1, t + i), (0, 0))
    assert (i, total) == (5, 10)
    assert ops.fori_loop(0, 5, lambda i, v: v + i, 0) == 10
    xs = np.arange(6, dtype=np.float32)
    carry, ys = ops.scan(lambda c, x: (c + x, c * x), 0.0, torch.tensor(xs))
    np.testing.assert_allclose(ys.numpy(), (np.cumsum(xs) - xs) * xs)
    assert float(carry) == xs.sum()
    _, ys = ops.scan(lambda c, x: (c + x, c + x), torch.tensor(0.0), torch.tensor(xs),
                     reverse=True)
    np.testing.assert_allclose(ys.numpy(), np.cumsum(xs[::-1])[::-1])
    np.testing.assert_allclose(ops.associative_scan(torch.add, torch.tensor(xs)).numpy(),
                               np.cumsum(xs))
    np.testing.assert_allclose(ops.map(lambda x: x ** 2, torch.tensor(xs)).numpy(), xs ** 2)
    m = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_allclose(ops.vectorized_map(lambda r: r.sum(), torch.tensor(m)).numpy(),
                               m.sum(1))
    np.testing.assert_allclose(ops.vectorize(lambda a, b: a * b + 1)(m, m[0]).numpy(),
                               m * m[0] + 1)


def test_custom_gradient_and_jvp():
    @ops.custom_gradient
    def clipped_identity(x):
        return x * 1.0, lambda upstream: torch.clamp(upstream, -0.5, 0.5)

    x = torch.tensor([1.0, 2.0], requires_grad=True)
    (clipped_identity(x) * torch.tensor([3.0, -0.1])).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.5, -0.1])
    value, tangent = ops.linalg.jvp(lambda v: v ** 3, (torch.tensor([2.0]),),
                                    (torch.tensor([1.0]),))
    assert float(value) == 8.0 and float(tangent) == 12.0
    stopped = torch.tensor([2.0], requires_grad=True)
    assert not ops.stop_gradient(stopped * 3).requires_grad


# ---- symbolic: the same rows inside a functional model -----------------------------------------

def _symbolic_inputs(args, kwargs):
    """Inputs of fixed batch shape for every ndarray argument (and those in a list); NumPy
    scalars become Python numbers, as a saved config holds them."""
    inputs, feeds = [], []

    def make(value):
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray) and value.ndim >= 1 and value.dtype != np.complex64:
            value = np.ascontiguousarray(value)
            tensor = lamina.Input(batch_shape=value.shape, dtype=config.dtype_name(
                torch.from_numpy(value).dtype))
            inputs.append(tensor)
            feeds.append(torch.from_numpy(np.ascontiguousarray(value)))
            return tensor
        if isinstance(value, list) and value and all(isinstance(v, np.ndarray) for v in value):
            return [make(v) for v in value]
        return value

    return [make(a) for a in args], {k: make(v) for k, v in kwargs.items()}, inputs, feeds


SYMBOLIC = [(c, i) for c, i in zip(CASES, IDS) if c.symbolic]


@pytest.mark.parametrize("case", [c for c, _ in SYMBOLIC], ids=[i for _, i in SYMBOLIC])
def test_symbolic_matches_eager_and_round_trips(case):
    args, kwargs, inputs, feeds = _symbolic_inputs(case.args, case.kwargs)
    assert inputs, f"{case.id} has no array input to make symbolic"
    outputs = function_of(case)(*args, **kwargs)
    flat = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    assert all(isinstance(t, KerasTensor) for t in flat)
    model = lamina.Model(inputs, flat)
    got = model(feeds if len(feeds) > 1 else feeds[0])
    got = list(got) if isinstance(got, (list, tuple)) else [got]
    eager = function_of(case)(*case.args, **case.kwargs)
    eager = list(eager) if isinstance(eager, (list, tuple)) else [eager]
    rebuilt = model_from_json(json.dumps(serialize(model)))  # saved by name, loaded by name
    again = rebuilt(feeds if len(feeds) > 1 else feeds[0])
    again = list(again) if isinstance(again, (list, tuple)) else [again]
    for a, b, c in zip(got, eager, again):
        assert a.dtype == b.dtype == c.dtype
        if np.isfinite(case.atol):
            np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(to_numpy(c), to_numpy(b), rtol=1e-6, atol=1e-6)


def _ops_model():
    x = lamina.Input((6, 8, 3))
    y = ops.image.resize(x, (3, 4))
    # A constant argument is saved as data: a nested list, not a tensor.
    y = ops.nn.relu(ops.conv(y, np.full((2, 2, 3, 4), 0.1).tolist(), padding="same"))
    y = ops.max_pool(y, 2)
    y = ops.reshape(y, (-1, 8))
    y = ops.concatenate([ops.softmax(y), ops.expand_dims(ops.mean(y, axis=-1), -1)], axis=-1)
    y = ops.where(ops.greater(y, 0.1), ops.square(y), ops.clip(y, 0.0, 0.05))
    y = ops.logsumexp(y, axis=-1, keepdims=True) + ops.sum(ops.cumsum(y, axis=1), axis=-1,
                                                           keepdims=True)
    return lamina.Model(x, y)


def test_model_of_ops_saves_and_loads(tmp_path):
    model = _ops_model()
    data = torch.rand(2, 6, 8, 3)
    expected = model(data)
    path = tmp_path / "ops.keras"
    model.save(path)
    loaded = lamina.models.load_model(path)
    torch.testing.assert_close(loaded(data), expected)
    functions = [layer["config"]["function"] for layer in serialize(model)["config"]["layers"]
                 if layer["class_name"] == "TorchOp"]
    assert "lamina.ops.image.resize" in functions and "lamina.ops.logsumexp" in functions
    assert all(f.startswith("lamina.ops.") or f.startswith("torch.") for f in functions)
    rebuilt = model_from_json(json.dumps(serialize(model)))
    torch.testing.assert_close(rebuilt(data), expected)


def _ops_config(function: str) -> dict:
    x = lamina.Input((4,))
    config_dict = json.loads(json.dumps(serialize(lamina.Model(x, ops.relu(x)))))
    entry = next(e for e in config_dict["config"]["layers"] if e["class_name"] == "TorchOp")
    assert entry["config"]["function"] == "lamina.ops.relu"
    entry["config"]["function"] = function
    return config_dict


@pytest.mark.parametrize("function", [
    "lamina.ops._op.resolve", "lamina.ops.nonexistent", "lamina.ops.scan", "lamina.ops.cond",
    "lamina.ops.core.convert_to_numpy", "lamina.ops.numpy.np.load", "lamina.random.normal",
    "lamina.ops.image.os.system", "lamina.ops.relu.__globals__",
])
def test_load_refuses_names_outside_the_table(function):
    with pytest.raises(UnsafeLoadError, match="Refusing to load"):
        model_from_json(json.dumps(_ops_config(function)))


def test_saveable_table_is_pure_ops():
    assert "lamina.ops.relu" in SAVEABLE and "lamina.ops.image.resize" in SAVEABLE
    for name in ("scan", "cond", "map", "convert_to_numpy", "shape", "custom_gradient",
                 "vectorized_map", "while_loop", "fori_loop", "switch", "associative_scan"):
        assert f"lamina.ops.{name}" not in SAVEABLE
    assert not any("random" in name for name in SAVEABLE)
    assert "lamina.ops.image.elastic_transform" not in SAVEABLE


def test_ops_taking_functions_work_symbolically_but_do_not_save():
    x = lamina.Input((3,))
    with pytest.raises(TypeError, match="symbolic tensor has no value.*custom Layer"):
        ops.cond(ops.sum(x) > 0, lambda: x, lambda: -x)
    model = lamina.Model(x, ops.vectorized_map(lambda row: row * 2, x))
    assert model(torch.tensor([[-1.0, 0.0, 2.0]])).tolist() == [[-2.0, 0.0, 4.0]]
    with pytest.raises(ValueError, match="Cannot save"):
        model.get_config()


# ---- real Keras 3 as the oracle for signatures, values and dtypes ------------------------------

KERAS_CASES = [(c, i) for c, i in zip(CASES, IDS) if c.keras]


@pytest.fixture(scope="module")
def keras_ops():
    os.environ["KERAS_BACKEND"] = "torch"
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("Keras was imported earlier with another backend")
    return keras.ops


@pytest.mark.parametrize("case", [c for c, _ in KERAS_CASES], ids=[i for _, i in KERAS_CASES])
def test_matches_keras(case, keras_ops):
    module = keras_ops.image if case.group == "image" else keras_ops
    theirs = getattr(module, case.name)(*case.args, **case.kwargs)
    ours = function_of(case)(*case.args, **case.kwargs)
    if case.post is not None:
        ours, theirs = case.post(to_numpy(ours)), case.post(to_numpy(theirs))
    assert_close(ours, to_numpy(theirs), builtins_max(case.atol, 1e-5), case.id)
    assert dtypes_of(ours) == dtypes_of(theirs) or case.post is not None


def builtins_max(a: float, b: float) -> float:
    return a if a > b else b


def test_load_budget_bounds_ops_sized_by_config_numbers():
    config_dict = _ops_config("lamina.ops.tile")
    entry = next(e for e in config_dict["config"]["layers"] if e["class_name"] == "TorchOp")
    entry["config"]["args"].append({"__tuple__": [100_000, 100_000]})
    with pytest.raises(FileFormatError, match=r"shape \(200000, 400000\).*refusing to allocate"):
        model_from_json(json.dumps(config_dict))


def test_reshape_keeps_the_symbolic_batch_axis():
    x = lamina.Input((4, 3))
    model = lamina.Model(x, ops.reshape(x, (ops.shape(x)[0], -1)))
    data = torch.rand(5, 4, 3)
    torch.testing.assert_close(model(data), data.reshape(5, 12))


# ---- devices: arrays and scalars follow the op's tensor; new tensors torch's default device ----
# The meta device stands in for a GPU: a CPU tensor mixed with a meta one is an error in torch,
# exactly as a CPU tensor mixed with a CUDA one.

IMAGES = np.random.default_rng(1).random((2, 6, 8, 3)).astype(np.float32)
DEVICE_CASES = [
    ("add", lambda x: ops.add(x, np.ones((3, 4), np.float32))),
    ("where", lambda x: ops.where(np.ones((3, 4), bool), x, 0.0)),
    ("clip", lambda x: ops.clip(x, np.zeros(4, np.float32), 1.0)),
    ("take", lambda x: ops.take(x, [0, 2], axis=1)),
    ("concatenate", lambda x: ops.concatenate([x, np.zeros((1, 4), np.float32)], axis=0)),
    ("pad reflect", lambda x: ops.pad(x, 1, mode="reflect")),
    ("layer_normalization", lambda x: ops.layer_normalization(x, np.ones(4, np.float32))),
    ("conv", lambda x: ops.conv(x.reshape(1, 3, 4, 1), np.ones((2, 2, 1, 2), np.float32))),
    ("one_hot", lambda x: ops.one_hot(ops.cast(x, "int32"), 5)),
    ("sparse_categorical_crossentropy",
     lambda x: ops.sparse_categorical_crossentropy([0, 1, 3], x, from_logits=True)),
    ("dot_product_attention", lambda x: ops.dot_product_attention(
        x.reshape(1, 3, 1, 4), x.reshape(1, 3, 1, 4), x.reshape(1, 3, 1, 4), is_causal=True)),
    ("segment_sum", lambda x: ops.segment_sum(x, [0, 0, 1], num_segments=2)),
    ("scatter_update", lambda x: ops.scatter_update(x, [[0, 1]], [5.0])),
    ("slice_update", lambda x: ops.slice_update(x, (0, 0), np.ones((1, 2), np.float32))),
    ("affine_transform", lambda x: ops.image.affine_transform(
        x.reshape(1, 3, 4, 1), np.array([1, 0, 0.5, 0, 1, 0, 0, 0], np.float32))),
    ("gaussian_blur", lambda x: ops.image.gaussian_blur(x.reshape(1, 3, 4, 1))),
    ("rgb_to_grayscale", lambda x: ops.image.rgb_to_grayscale(x[:, :3].reshape(1, 1, 3, 3))),
    ("sparsemax", lambda x: ops.sparsemax(x)),
    ("random.dropout", lambda x: lamina.random.dropout(x, 0.5, seed=1)),
    ("random.shuffle", lambda x: lamina.random.shuffle(x, seed=1)),
]


@pytest.mark.parametrize("function", [f for _, f in DEVICE_CASES], ids=[n for n, _ in DEVICE_CASES])
def test_results_stay_on_the_tensor_device(function):
    x = torch.rand(3, 4)
    expected = function(x)
    out = function(x.to("meta"))
    flat = out if isinstance(out, (list, tuple)) else [out]
    assert all(t.device.type == "meta" for t in flat)
    assert [tuple(t.shape) for t in flat] == [tuple(t.shape) for t in (
        expected if isinstance(expected, (list, tuple)) else [expected])]


def test_new_tensors_follow_the_default_device_context():
    with torch.device("meta"):
        created = [ops.arange(4), ops.zeros((2, 3)), ops.ones(2), ops.eye(3), ops.full((2,), 1.0),
                   ops.linspace(0, 1, 5), ops.convert_to_tensor(np.ones(3)), ops.array([1, 2]),
                   lamina.random.normal((2,), seed=1), lamina.random.uniform((2,)),
                   lamina.random.randint((2,), 0, 3, seed=1), lamina.random.gamma((2,), 2.0)]
    assert all(t.device.type == "meta" for t in created)
    # A seeded draw gives the same numbers whatever the default device: it samples on the CPU.
    torch.testing.assert_close(lamina.random.normal((3,), seed=5),
                               lamina.random.normal((3,), seed=5))


def test_elastic_transform():
    images = torch.from_numpy(IMAGES)
    torch.testing.assert_close(ops.image.elastic_transform(images, alpha=0.0, seed=1), images)
    warped = ops.image.elastic_transform(images, alpha=3.0, sigma=1.0, seed=1)
    assert warped.shape == images.shape and not torch.allclose(warped, images)
    # Bilinear sampling with reflection blends pixels of the same channel: values stay in range.
    assert warped.min() >= images.min() - 1e-6 and warped.max() <= images.max() + 1e-6
    torch.testing.assert_close(ops.image.elastic_transform(images, alpha=3.0, sigma=1.0, seed=1),
                               warped)
    assert not torch.allclose(ops.image.elastic_transform(images, alpha=3.0, sigma=1.0, seed=2),
                              warped)
    with pytest.raises(TypeError, match="random numbers"):
        ops.image.elastic_transform(lamina.Input((6, 8, 3)))
