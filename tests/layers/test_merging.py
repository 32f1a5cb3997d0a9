"""Merging layers on lists of tensors: Concatenate, Add, Subtract, Multiply, Average, Maximum,
Minimum, Dot; their masks, their functional forms and their errors."""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Any, Callable

import pytest
import torch
import torch.nn.functional as F
from support.layer_test import single_thread  # noqa: F401 - a fixture

import lamina
from lamina import layers
from lamina.errors import ShapeError


@dataclasses.dataclass
class MergeCase:
    id: str
    make: Callable[..., Any]
    input_shapes: list[tuple[int, ...]]
    output_shape: tuple[int, ...]
    reference: Callable[[list[torch.Tensor]], torch.Tensor]


def _sum(xs):
    return functools.reduce(torch.add, xs)


CASES = [
    MergeCase("concatenate", layers.Concatenate, [(2, 3), (2, 4)], (2, 7),
              lambda xs: torch.cat(xs, dim=-1)),
    MergeCase("concatenate_axis_1", functools.partial(layers.Concatenate, axis=1),
              [(2, 3, 4), (2, 2, 4)], (2, 5, 4), lambda xs: torch.cat(xs, dim=1)),
    MergeCase("add", layers.Add, [(2, 3)] * 3, (2, 3), _sum),
    MergeCase("subtract", layers.Subtract, [(2, 3, 2)] * 2, (2, 3, 2), lambda xs: xs[0] - xs[1]),
    MergeCase("multiply", layers.Multiply, [(2, 3)] * 3,
              (2, 3), lambda xs: xs[0] * xs[1] * xs[2]),
    MergeCase("average", layers.Average, [(2, 4)] * 2, (2, 4), lambda xs: (xs[0] + xs[1]) / 2),
    MergeCase("maximum", layers.Maximum, [(2, 4)] * 3, (2, 4),
              lambda xs: torch.stack(xs).amax(0)),
    MergeCase("minimum", layers.Minimum, [(2, 4)] * 2, (2, 4), lambda xs: torch.minimum(*xs)),
    MergeCase("dot", functools.partial(layers.Dot, axes=1), [(2, 3)] * 2, (2, 1),
              lambda xs: (xs[0] * xs[1]).sum(-1, keepdim=True)),
    MergeCase("dot_normalized", functools.partial(layers.Dot, axes=1, normalize=True),
              [(2, 3)] * 2, (2, 1),
              lambda xs: F.cosine_similarity(xs[0], xs[1], dim=-1)[:, None]),
    MergeCase("dot_batch_matmul", functools.partial(layers.Dot, axes=(2, 2)),
              [(2, 3, 4), (2, 5, 4)], (2, 3, 5), lambda xs: xs[0] @ xs[1].transpose(1, 2)),
    MergeCase("dot_axis_1_3d", functools.partial(layers.Dot, axes=1), [(2, 4, 3), (2, 4, 5)],
              (2, 3, 5), lambda xs: xs[0].transpose(1, 2) @ xs[1]),
]
IDS = [c.id for c in CASES]


def _inputs(case: MergeCase, seed: int = 0, dtype=torch.float64) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=generator, dtype=dtype) for s in case.input_shapes]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_output_shape(case):
    out = case.make()(_inputs(case, dtype=torch.float32))
    assert tuple(out.shape) == case.output_shape
    unbatched = [(None,) + s[1:] for s in case.input_shapes]
    assert tuple(case.make().compute_output_shape(unbatched)) == (None,) + case.output_shape[1:]
    symbolic = [lamina.Input(shape=s[1:]) for s in case.input_shapes]
    assert case.make()(symbolic).shape == (None,) + case.output_shape[1:]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_matches_reference(case):
    xs = _inputs(case, seed=1)
    torch.testing.assert_close(case.make(dtype="float64")(xs), case.reference(xs))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gradcheck(case, single_thread):
    layer = case.make(dtype="float64")
    xs = [x.requires_grad_(True) for x in _inputs(case, seed=2)]
    assert torch.autograd.gradcheck(lambda *xs: layer(list(xs)), tuple(xs), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_config_round_trip_and_save_load(case, tmp_path):
    layer = case.make()
    assert type(layer).from_config(layer.get_config()).get_config() == layer.get_config()
    inputs = [lamina.Input(shape=s[1:]) for s in case.input_shapes]
    model = lamina.Model(inputs, layers.Dense(2)(layer(inputs)))
    model.save(tmp_path / "merge.keras")
    loaded = lamina.models.load_model(tmp_path / "merge.keras")
    xs = _inputs(case, seed=3, dtype=torch.float32)
    torch.testing.assert_close(loaded(xs), model(xs))
    assert layer.count_params() == 0


def test_functional_forms():
    a, b = lamina.Input(shape=(3,)), lamina.Input(shape=(3,))
    model = lamina.Model([a, b], [layers.add([a, b]), layers.concatenate([a, b], axis=-1),
                                  layers.multiply([a, b]), layers.average([a, b])])
    x, y = torch.randn(2, 3), torch.randn(2, 3)
    added, joined, product, mean = model([x, y])
    torch.testing.assert_close(added, x + y)
    torch.testing.assert_close(joined, torch.cat([x, y], dim=-1))
    torch.testing.assert_close(product, x * y)
    torch.testing.assert_close(mean, (x + y) / 2)


# ---------------------------------------------------------------------------------- masks


def _masked(ids):
    embedding = layers.Embedding(10, 2, mask_zero=True)
    return embedding(torch.tensor(ids))


def test_elementwise_merge_keeps_a_step_any_input_keeps():
    a, b = _masked([[1, 2, 0, 0]]), _masked([[3, 0, 0, 4]])
    assert torch.equal(layers.Add()([a, b])._keras_mask, torch.tensor([[True, True, False, True]]))
    unmasked = torch.randn(1, 4, 2)
    assert torch.equal(layers.Multiply()([a, unmasked])._keras_mask, a._keras_mask)


def test_concatenate_masks_by_axis():
    a, b = _masked([[1, 2, 0]]), _masked([[0, 5, 0]])
    features = layers.Concatenate()([a, b])
    assert torch.equal(features._keras_mask, torch.tensor([[True, True, False]]))
    time = layers.Concatenate(axis=1)([a, torch.randn(1, 2, 2)])
    assert torch.equal(time._keras_mask, torch.tensor([[True, True, False, True, True]]))


def test_masks_merge_inside_a_functional_model():
    a, b = lamina.Input(shape=(None,), dtype="int64"), lamina.Input(shape=(None,), dtype="int64")
    ea = layers.Embedding(10, 2, mask_zero=True)(a)
    eb = layers.Embedding(10, 2, mask_zero=True)(b)
    model = lamina.Model([a, b], layers.Add()([ea, eb]))
    out = model([torch.tensor([[1, 0, 0]]), torch.tensor([[0, 0, 2]])])
    assert torch.equal(out._keras_mask, torch.tensor([[True, False, True]]))


def test_dot_does_not_pass_masks():
    a, b = _masked([[1, 2]]), _masked([[3, 4]])
    assert getattr(layers.Dot(axes=2)([a, b]), "_keras_mask", None) is None


# --------------------------------------------------------------------------------- errors


def test_merge_needs_a_list_of_at_least_two_tensors():
    with pytest.raises(ValueError, match=re.escape("Layer 'sum' (Add) must be called on a list of at least 2 tensors. Received input shape: (2, 3).")):
        layers.Add(name="sum")(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"must be called on a list of at least 2 tensors. Received input shape: \[\(2, 3\)\]"):
        layers.Average()([torch.zeros(2, 3)])


def test_subtract_takes_exactly_two_inputs():
    with pytest.raises(ValueError, match="Subtract takes exactly 2 inputs. Received 3."):
        layers.Subtract()([torch.zeros(1, 2)] * 3)


def test_concatenate_names_mismatched_shapes():
    with pytest.raises(ShapeError, match=re.escape("Layer 'cat' (Concatenate) needs inputs with matching shapes except on the concat axis -1. Received: input_shape=[(None, 3, 2), (None, 4, 2)].")):
        layers.Concatenate(name="cat")([lamina.Input((3, 2)), lamina.Input((4, 2))])


def test_mismatched_elementwise_shapes_name_the_layer():
    with pytest.raises(ShapeError, match=r"Layer 'plus' \(Add\) cannot be called on inputs of shape \(None, 3\), \(None, 4\)"):
        layers.Add(name="plus")([lamina.Input((3,)), lamina.Input((4,))])
