"""`LayerCase` rows and the generic checks every layer family can run on them.

A row names a layer (a factory, so each check gets a fresh instance), an input shape with its
batch axis, Keras's output shape and parameter count, and an oracle: a reference written in the
test from `torch.nn.functional` ops (or the sheet's formula) that reads the layer's weights
through `get_weights()`, in Keras's layout. The checks below iterate the rows:

    output shape (eager, symbolic and `compute_output_shape`), numerics against the reference,
    `gradcheck` in float64, parameter count, config round trip, save/load inside a Sequential,
    and bad inputs with the message expected.

Every layer family's table runs through this one harness: single-tensor rows here
(`LayerCase`, or `class_case` for a class and its arguments), rows that take several tensors or
call arguments (attention, transformer blocks) in `CallCase` below. The references are oracles
and live beside their tests (tests/layers/conv_references.py, attention_references.py).
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch

import lamina

Tensor = torch.Tensor


@dataclasses.dataclass
class LayerCase:
    """One row of a layer table."""

    id: str
    make: Callable[..., Any]  # make(**base_kwargs) -> a fresh, unbuilt layer
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    params: int = 0
    # reference(layer, x) -> the expected output, from the layer's Keras-layout weights.
    reference: Callable[[Any, Tensor], Tensor] | None = None
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
    generator = torch.Generator().manual_seed(seed)
    if case.int_range is not None:
        return torch.randint(*case.int_range, shape, generator=generator)
    return torch.randn(shape, generator=generator, dtype=dtype)


def distinct_weights(weights: list[np.ndarray], seed: int = 0) -> list[np.ndarray]:
    """`weights` with every 1-D array replaced by its own random draw in [0.5, 1.5): positive (a
    variance stays valid), non-zero (a forgotten bias shows) and different from every other
    array, so a layer that swaps gamma and beta, or the mean and the variance, disagrees with a
    reference that reads them in Keras's order."""
    rng = np.random.default_rng(seed)
    return [w if w.ndim != 1 else rng.uniform(0.5, 1.5, w.shape).astype(w.dtype) for w in weights]


def built_layer(case: LayerCase, dtype: str = "float64", shape: tuple[int, ...] | None = None
                ) -> Any:
    """The case's layer built in `dtype` (on inputs of `shape`, by default the case's), with
    `distinct_weights`."""
    layer = case.make(dtype=dtype)
    layer(make_input(case, shape=shape, dtype=getattr(torch, dtype)))
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
    layer = case.make()
    out = layer(make_input(case))
    assert tuple(out.shape) == case.output_shape
    assert out.dtype == torch.float32
    symbolic_shape = (None,) + case.output_shape[1:]
    declared = layer.compute_output_shape((None,) + case.input_shape[1:])
    assert tuple(declared) == symbolic_shape
    dtype = "int64" if case.int_range is not None else None
    inputs = lamina.Input(shape=case.input_shape[1:], dtype=dtype)
    assert tuple(case.make()(inputs).shape) == symbolic_shape


def check_reference(case: LayerCase, atol: float = 1e-10, rtol: float = 1e-9) -> None:
    layer = built_layer(case)
    x = make_input(case, seed=1, dtype=torch.float64)
    expected = case.reference(layer, x)
    got = layer(x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=atol, rtol=rtol)


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
