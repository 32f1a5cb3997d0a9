"""The one layer harness: table rows and the generic checks every layer family runs on them.

A row names a layer (a factory, so each check gets a fresh instance), an input shape with its
batch axis, Keras's output shape and parameter count, and an oracle: a reference written in the
test from `torch.nn.functional` ops (or the sheet's formula) that reads the layer's weights
through `get_weights()`, in Keras's layout. The checks below iterate the rows:

    output shape (eager, symbolic and `compute_output_shape`), numerics against the reference,
    `gradcheck` in float64, parameter count, config round trip, save/load inside a Sequential,
    and bad inputs with the message expected.

Every layer family's table runs through this one harness: rows taking one tensor here
(`LayerCase`, or `class_case` for a class and its arguments; a row may return several tensors,
as a recurrent layer's `[output, *states]`), rows that take several tensors or call arguments
(attention, transformer blocks) in `CallCase` below. The references are oracles and live beside
their tests (tests/layers/conv_references.py, attention_references.py,
recurrent_references.py). Sequence helpers (`padded_batch`) are at the end.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch

import lamina
from lamina.layers.layer import Layer
from lamina.saving.serialization import deserialize, serialize

Tensor = torch.Tensor


@dataclasses.dataclass
class LayerCase:
    """One row of a layer table."""

    id: str
    make: Callable[..., Any]  # make(**base_kwargs) -> a fresh, unbuilt layer
    input_shape: tuple[int, ...]
    # A list of shapes for a layer returning several tensors.
    output_shape: tuple[int, ...] | list[tuple[int, ...]]
    params: int = 0
    # reference(layer, x) -> the expected output (or list of outputs), from the layer's
    # Keras-layout weights.
    reference: Callable[[Any, Tensor], Any] | None = None
    # Integer inputs (token ids) drawn from [low, high); None for float inputs.
    int_range: tuple[int, int] | None = None
    gradcheck: bool = True
    # gradcheck in training mode (batch statistics); False for layers random in training.
    gradcheck_training: bool = True
    # A smaller input for gradcheck (its cost grows with the input's size); None: input_shape.
    gradcheck_shape: tuple[int, ...] | None = None
    # Lambda layers only load with safe_mode=False.
    safe_mode: bool = True
    # (input shape, error type, regex the message must match), each a bad call of the layer.
    bad_inputs: list[tuple[tuple[int, ...], type, str]] = dataclasses.field(default_factory=list)
    # Every weight random (`randomize`), for layers whose biases are not 1-D (a GRU's (2, 3u))
    # or whose reference must see every term; otherwise `distinct_weights`.
    random_weights: bool = False

    def __str__(self) -> str:
        return self.id


def class_case(id: str, cls: type, kwargs: dict[str, Any], input_shape: tuple[int, ...],
               output_shape: tuple[int, ...], reference: Callable[[Any, Tensor], Tensor] | None
               = None, params: int = 0, gradcheck_shape: tuple[int, ...] | None = None,
               **options: Any) -> LayerCase:
    """A row for `cls(**kwargs)`, in the positional order the convolution tables are written;
    `options` are LayerCase's other fields."""
    return LayerCase(id, functools.partial(cls, **kwargs), input_shape, output_shape, params,
                     reference, gradcheck_shape=gradcheck_shape, **options)


def ids(cases: list[LayerCase]) -> list[str]:
    return [case.id for case in cases]


def make_input(case: LayerCase, shape: tuple[int, ...] | None = None, seed: int = 0,
               dtype: torch.dtype = torch.float32) -> Tensor:
    """A seeded input for the case: normal floats, or token ids in `int_range`."""
    shape = shape or case.input_shape
    if case.int_range is not None:
        return torch.randint(*case.int_range, shape, generator=generator(seed))
    return random_input(shape, seed, dtype)


def random_input(shape: tuple[int, ...], seed: int = 0, dtype: torch.dtype = torch.float64
                 ) -> Tensor:
    """Seeded standard normal values (float64 by default, the references' precision)."""
    return torch.randn(shape, generator=generator(seed), dtype=dtype)


def distinct_weights(weights: list[np.ndarray], seed: int = 0) -> list[np.ndarray]:
    """`weights` with every 1-D array replaced by its own random draw in [0.5, 1.5): positive (a
    variance stays valid), non-zero (a forgotten bias shows) and different from every other
    array, so a layer that swaps gamma and beta, or the mean and the variance, disagrees with a
    reference that reads them in Keras's order."""
    rng = np.random.default_rng(seed)
    return [w if w.ndim != 1 else rng.uniform(0.5, 1.5, w.shape).astype(w.dtype) for w in weights]


def built_layer(case: LayerCase, dtype: str = "float64", shape: tuple[int, ...] | None = None,
                **overrides: Any) -> Any:
    """The case's layer (its arguments updated by `overrides`) built in `dtype` on inputs of
    `shape` (by default the case's), with `distinct_weights` or, for `random_weights` rows,
    `randomize`."""
    layer = case.make(dtype=dtype, **overrides)
    layer(make_input(case, shape=shape, dtype=getattr(torch, dtype)))
    if case.random_weights:
        randomize(layer)
    else:
        layer.set_weights(distinct_weights(layer.get_weights()))
    return layer


@pytest.fixture
def single_thread():
    """One thread: the tensors are tiny, and OpenMP's spinning threads make gradcheck's many small
    calls far slower on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------------------------ the checks


def check_output_shape(case: LayerCase) -> None:
    """Eager, symbolic (functional API) and declared shapes all equal Keras's."""
    several = isinstance(case.output_shape, list)
    expected = case.output_shape if several else [case.output_shape]
    layer = case.make()
    outputs = layer(make_input(case))
    assert isinstance(outputs, list) == several
    assert [tuple(o.shape) for o in as_list(outputs)] == expected
    assert all(o.dtype == torch.float32 for o in as_list(outputs))
    symbolic_shapes = [(None,) + shape[1:] for shape in expected]
    declared = layer.compute_output_shape((None,) + case.input_shape[1:])
    assert [tuple(d) for d in (declared if several else [declared])] == symbolic_shapes
    dtype = "int64" if case.int_range is not None else None
    inputs = lamina.Input(shape=case.input_shape[1:], dtype=dtype)
    assert [tuple(t.shape) for t in as_list(case.make()(inputs))] == symbolic_shapes


def check_reference(case: LayerCase, atol: float = 1e-10, rtol: float = 1e-9) -> None:
    """The float64 outputs (each of them, for a layer returning several) equal the reference's
    on a fresh seeded input."""
    layer = built_layer(case)
    x = make_input(case, seed=1, dtype=torch.float64)
    expected = as_list(case.reference(layer, x))
    got = as_list(layer(x))
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.shape == e.shape
        torch.testing.assert_close(g, e, atol=atol, rtol=rtol)


def check_gradcheck(case: LayerCase) -> None:
    """Gradients of the output w.r.t. the input (float inputs) and every trainable weight."""
    layer = built_layer(case, shape=case.gradcheck_shape)
    # Gradients as in training (batch statistics for BatchNormalization).
    layer.train(case.gradcheck_training)
    x = make_input(case, shape=case.gradcheck_shape, seed=2, dtype=torch.float64)
    weights = tuple(layer.trainable_weights)
    if case.int_range is None:
        x.requires_grad_(True)
        inputs = (x,) + weights
        assert torch.autograd.gradcheck(lambda x, *w: layer(x), inputs, eps=1e-6, atol=1e-5)
    else:
        assert torch.autograd.gradcheck(lambda *w: layer(x), weights, eps=1e-6, atol=1e-5)


def check_params(case: LayerCase) -> None:
    layer = built_layer(case)
    assert layer.count_params() == case.params
    assert sum(w.size for w in layer.get_weights()) == case.params


def check_config_round_trip(case: LayerCase) -> None:
    """`from_config(get_config())` gives a layer with the same config and, after
    `set_weights(get_weights())`, the same outputs."""
    layer = built_layer(case)
    config = layer.get_config()
    if case.safe_mode:
        clone = type(layer).from_config(config)
    else:
        clone = type(layer).from_config(config, safe_mode=False)
    assert clone.get_config() == config
    x = make_input(case, seed=3, dtype=torch.float64)
    clone(x)
    clone.set_weights(layer.get_weights())
    torch.testing.assert_close(clone(x), layer(x))


def check_save_load(case: LayerCase, directory: Path) -> None:
    """Inside a small Sequential: `.keras` save then `load_model` gives equal outputs and weights."""
    dtype = "int64" if case.int_range is not None else None
    model = lamina.Sequential([lamina.Input(case.input_shape[1:], dtype=dtype), case.make()])
    path = directory / "model.keras"
    model.save(path)
    loaded = lamina.models.load_model(path, safe_mode=case.safe_mode)
    x = make_input(case, seed=4)
    torch.testing.assert_close(loaded(x), model(x))
    for mine, theirs in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)


def check_bad_inputs(case: LayerCase) -> None:
    for shape, error, match in case.bad_inputs:
        layer = case.make()
        layer(make_input(case))
        with pytest.raises(error, match=match):
            layer(make_input(case, shape=shape))


# ------------------------------------------------------------------------------ the tests


def generic_layer_tests(cases: list[LayerCase], save_load_every: int = 1
                        ) -> dict[str, Callable[..., None]]:
    """The table-driven tests every layer family runs, parametrized over its rows.

    A test file adds them with `globals().update(generic_layer_tests(CASES))`: output shape,
    reference numerics, gradcheck, parameter count, config and save/load round trips (on every
    `save_load_every`-th row: a file per row is slow for large tables), and the bad inputs of
    the rows that list some.
    """

    def over(selected: list[LayerCase]):
        return pytest.mark.parametrize("case", selected, ids=ids(selected))

    differentiable = [c for c in cases if c.gradcheck]
    with_bad_inputs = [c for c in cases if c.bad_inputs]

    @over(cases)
    def test_output_shape(case):
        check_output_shape(case)

    @over(cases)
    def test_matches_reference(case):
        check_reference(case)

    @over(differentiable)
    def test_gradcheck(case, single_thread):
        check_gradcheck(case)

    @over(cases)
    def test_parameter_count(case):
        check_params(case)

    @over(cases)
    def test_config_round_trip(case):
        check_config_round_trip(case)

    @over(cases[::save_load_every])
    def test_save_load(case, tmp_path):
        check_save_load(case, tmp_path)

    tests = {f.__name__: f for f in (test_output_shape, test_matches_reference, test_gradcheck,
                                     test_parameter_count, test_config_round_trip, test_save_load)}
    if with_bad_inputs:
        @over(with_bad_inputs)
        def test_bad_inputs(case):
            check_bad_inputs(case)

        tests["test_bad_inputs"] = test_bad_inputs
    return tests


# ------------------------------------------------------------ rows called with several arguments


@dataclasses.dataclass
class CallCase:
    """A row for a layer called with several tensors or call arguments (attention, transformer
    blocks): how to make it, its call arguments, the reference, and what Keras says about it
    (output shape(s), parameter count)."""

    id: str
    make: Callable[[], Layer]
    inputs: Callable[[torch.Generator], tuple[tuple, dict]]
    reference: Callable[..., Any]
    output_shapes: list[tuple]
    params: int
    atol: float = 1e-5
    # Per output, the positions that carry meaning (a padded query's row does not): a function
    # of the call arguments returning multiplicative masks, or None for "all".
    valid: Callable[..., list[Tensor]] | None = None


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randomize(layer: Layer, seed: int = 0) -> None:
    """Non-trivial weights (non-zero biases, non-unit norms) so the references test every term."""
    g = generator(seed)
    layer.set_weights([0.5 * torch.randn(w.shape, generator=g, dtype=torch.float64).numpy()
                       for w in layer.get_weights()])


def as_list(outputs: Any) -> list[Tensor]:
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def to_numpy(value: Any) -> Any:
    """A tensor, or a list of them, as NumPy arrays."""
    if isinstance(value, (list, tuple)):
        return [to_numpy(v) for v in value]
    return value.detach().cpu().numpy()


def _map(value: Any, fn: Callable[[Tensor], Any]) -> Any:
    if isinstance(value, Tensor):
        return fn(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_map(v, fn) for v in value)
    if isinstance(value, dict):
        return {k: _map(v, fn) for k, v in value.items()}
    return value


def to_dtype(value: Any, dtype: torch.dtype) -> Any:
    return _map(value, lambda t: t.to(dtype) if t.dtype.is_floating_point else t)


def built(case: CallCase, dtype: torch.dtype = torch.float32, seed: int = 0):
    """A layer of the case built (in `dtype`) and randomized, with its call arguments."""
    args, kwargs = to_dtype(case.inputs(generator(seed)), dtype)
    layer = case.make()
    if dtype != torch.float32:
        layer = type(layer).from_config({**layer.get_config(), "dtype": str(dtype).split(".")[-1]})
    layer(*args, **kwargs)
    randomize(layer, seed + 1)
    return layer, args, kwargs



def _call_check_output_shapes(case: CallCase) -> None:
    layer, args, kwargs = built(case)
    outputs = as_list(layer(*args, **kwargs))
    assert [tuple(o.shape) for o in outputs] == case.output_shapes


def _valid_outputs(case: CallCase, outputs: list[Tensor], args: tuple, kwargs: dict
                   ) -> list[Tensor]:
    if case.valid is None:
        return outputs
    return [o * m.to(o.dtype) for o, m in zip(outputs, case.valid(*args, **kwargs))]


def _call_check_reference(case: CallCase, dtype: torch.dtype = torch.float32) -> None:
    """All outputs in float32 (a fully masked row attends uniformly in both); in float64 the
    meaningful positions, since adding -1e9 no longer swamps the scores there."""
    layer, args, kwargs = built(case, dtype)
    got = as_list(layer(*args, **kwargs))
    want = as_list(case.reference(layer, *args, **kwargs))
    assert len(got) == len(want)
    atol = case.atol if dtype == torch.float32 else 1e-10
    if dtype == torch.float64:
        got, want = (_valid_outputs(case, o, args, kwargs) for o in (got, want))
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, atol=atol, rtol=atol)


def _call_check_param_count(case: CallCase) -> None:
    layer, _, _ = built(case)
    assert layer.count_params() == case.params
    assert sum(np.size(w) for w in layer.get_weights()) == case.params


def _call_check_gradcheck(case: CallCase) -> None:
    """gradcheck in float64 with respect to the float inputs and every weight."""
    layer, args, kwargs = built(case, torch.float64)
    leaves: list[Tensor] = []

    def collect(t: Tensor) -> Tensor:
        if t.dtype.is_floating_point:
            leaves.append(t.detach().clone().requires_grad_(True))
        return t

    _map((args, kwargs), collect)
    names = [n for n, p in layer.named_parameters() if p.requires_grad]
    params = [p.detach().clone().requires_grad_(True) for n, p in layer.named_parameters()
              if p.requires_grad]
    count = len(leaves)

    def function(*tensors: Tensor):
        position = iter(tensors[:count])
        call_args, call_kwargs = _map(
            (args, kwargs), lambda t: next(position) if t.dtype.is_floating_point else t)
        outputs = torch.func.functional_call(layer, dict(zip(names, tensors[count:])),
                                             tuple(call_args), call_kwargs)
        return tuple(_valid_outputs(case, as_list(outputs), args, kwargs))

    # Fast mode checks random projections of the full Jacobian: every weight and input enters.
    assert torch.autograd.gradcheck(function, tuple(leaves + params), atol=1e-6, fast_mode=True)


def _call_check_training_step(case: CallCase) -> None:
    """In training mode every weight gets a finite gradient and one SGD step changes the output."""
    layer, args, kwargs = built(case)
    if not list(layer.parameters()):
        return
    layer.train()
    outputs = as_list(layer(*args, **kwargs))
    sum(o.square().sum() for o in outputs).backward()
    for name, parameter in layer.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
    layer.eval()
    before = as_list(layer(*args, **kwargs))[0].detach().clone()
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter -= 0.1 * parameter.grad
    assert not torch.allclose(as_list(layer(*args, **kwargs))[0], before)


def _call_check_config_round_trip(case: CallCase) -> None:
    layer, args, kwargs = built(case)
    config = layer.get_config()
    json.dumps(config)
    clone = type(layer).from_config(json.loads(json.dumps(config)))
    assert clone.get_config() == config
    clone(*args, **kwargs)
    clone.set_weights(layer.get_weights())
    for a, b in zip(as_list(layer(*args, **kwargs)), as_list(clone(*args, **kwargs))):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # By its registered Keras name, as a saved model refers to it.
    revived = deserialize(serialize(layer))
    assert type(revived) is type(layer) and revived.get_config() == config


def _input_for(tensor: Tensor):
    dtype = str(tensor.dtype).split(".")[-1]
    return lamina.Input(shape=tuple(tensor.shape[1:]), dtype=dtype)


def model_around(layer: Layer, args: tuple, kwargs: dict):
    """The layer inside a model: a Sequential when it takes one tensor and nothing else,
    otherwise a functional model with an Input per tensor argument. Returns (model, feed)."""
    tensors: list[Tensor] = []
    _map((args, kwargs), lambda t: tensors.append(t))
    single = len(args) == 1 and isinstance(args[0], Tensor) and not kwargs
    if single:
        return lamina.Sequential([_input_for(args[0]), layer]), args[0]
    symbols = [_input_for(t) for t in tensors]
    position = iter(symbols)
    call_args, call_kwargs = _map((args, kwargs), lambda t: next(position))
    outputs = layer(*call_args, **call_kwargs)
    outputs = list(outputs) if isinstance(outputs, tuple) else outputs
    if len(symbols) == 1:
        return lamina.Model(symbols[0], outputs), tensors[0]
    return lamina.Model(symbols, outputs), tensors


def _call_check_save_load(case: CallCase, tmp_path) -> None:
    args, kwargs = case.inputs(generator(0))
    model, feed = model_around(case.make(), args, kwargs)
    for layer in model.layers:
        if not isinstance(layer, lamina.models.InputLayer):
            randomize(layer, 3)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = lamina.models.load_model(path)
    for a, b in zip(as_list(model(feed)), as_list(loaded(feed))):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def call_layer_tests(cases: list[CallCase]) -> dict[str, Callable[..., None]]:
    """The table-driven tests of `CallCase` rows, as `generic_layer_tests` gives for
    `LayerCase`: output shapes, references in float32 and float64, parameter count, gradcheck,
    one training step, config and save/load round trips."""

    def over(selected: list[CallCase]):
        return pytest.mark.parametrize("case", selected, ids=[case.id for case in selected])

    @over(cases)
    def test_output_shapes(case):
        _call_check_output_shapes(case)

    @over(cases)
    def test_matches_reference(case):
        _call_check_reference(case)
        _call_check_reference(case, torch.float64)

    @over(cases)
    def test_parameter_count(case):
        _call_check_param_count(case)

    @over(cases)
    def test_gradcheck(case):
        _call_check_gradcheck(case)

    @over(cases)
    def test_training_step(case):
        _call_check_training_step(case)

    @over(cases)
    def test_config_round_trip(case):
        _call_check_config_round_trip(case)

    @over(cases)
    def test_save_load(case, tmp_path):
        _call_check_save_load(case, tmp_path)

    return {f.__name__: f for f in (test_output_shapes, test_matches_reference,
                                    test_parameter_count, test_gradcheck, test_training_step,
                                    test_config_round_trip, test_save_load)}


# ------------------------------------------------------------------------------ sequences


def padded_batch(lengths: list[int], steps: int, features: int, padding: str, seed: int = 0
                 ) -> tuple[Tensor, Tensor, list[Tensor]]:
    """float64 sequences of the given lengths, padded with zeros 'pre' or 'post' to `steps`.
    Returns (batch, mask, the unpadded sequences), to check a masked batch against each
    sequence alone."""
    sequences = [random_input((1, n, features), seed=seed + i) for i, n in enumerate(lengths)]
    batch = torch.zeros(len(lengths), steps, features, dtype=torch.float64)
    mask = torch.zeros(len(lengths), steps, dtype=torch.bool)
    for i, (sequence, n) in enumerate(zip(sequences, lengths)):
        where = slice(0, n) if padding == "post" else slice(steps - n, steps)
        batch[i, where] = sequence[0]
        mask[i, where] = True
    return batch, mask, sequences
