"""Every model of the registry builds, runs forward at a small size, trains a few steps with
its loss going down, and survives a config round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lamina
from lamina import applications
from lamina.errors import UnknownNameError

from .cases import BY_NAME, CASES, ModelCase


def test_every_registered_model_has_a_case():
    assert sorted(BY_NAME) == applications.list_models()


def _build(case: ModelCase):
    lamina.set_random_seed(0)
    return applications.create_model(case.name, **case.kwargs)


def _step_size(model, loss_fn, x, y) -> float:
    """A learning rate whose first plain gradient step lowers the loss by about 5% to first
    order (`loss - lr * |g|^2`). Batch norm over a batch of 4 gives the deep ResNets gradient
    norms of 1e4..1e5 at initialization (torch's own ResNets give the same), so one
    fixed rate cannot serve every network of the zoo."""
    model.train()
    loss = loss_fn(torch.as_tensor(y), model(torch.as_tensor(x)))
    grads = torch.autograd.grad(loss, [p for p in model.parameters() if p.requires_grad])
    model.train(False)
    return 0.05 * loss.item() / sum(g.pow(2).sum() for g in grads).item()


@pytest.mark.parametrize("case", [c for c in CASES if c.trained], ids=lambda c: c.name)
def test_builds_runs_and_trains(case):
    model = _build(case)
    assert isinstance(model, lamina.Model) and isinstance(model, torch.nn.Module)
    assert model.output_shape == case.output_shape
    x, y = case.make_data(np.random.default_rng(0))
    with torch.no_grad():
        out = model(torch.as_tensor(x))
    assert tuple(out.shape) == (len(x),) + case.output_shape[1:]
    assert torch.isfinite(out).all()

    loss_fn = lamina.losses.SparseCategoricalCrossentropy(from_logits=case.logits)
    model.compile(optimizer=lamina.optimizers.SGD(_step_size(model, loss_fn, x, y)), loss=loss_fn)
    history = model.fit(x, y, batch_size=len(x), epochs=3, shuffle=False, verbose=0)
    losses = history.history["loss"]
    assert all(after < before for before, after in zip(losses, losses[1:])), losses


@pytest.mark.parametrize("case", [c for c in CASES if not c.trained], ids=lambda c: c.name)
def test_scaled_variants_build(case):
    with torch.device("meta"):
        model = applications.create_model(case.name, **case.kwargs)
        out = model(torch.empty((2,) + case.kwargs["input_shape"]))
    assert model.output_shape == case.output_shape
    assert tuple(out.shape) == (2,) + case.output_shape[1:]


@pytest.mark.parametrize("name", ["LeNet5", "resnet18", "LSTMModel", "TransformerModel", "GPT",
                                  "EfficientNetB0", "ConvNeXtTiny"])
def test_config_round_trip_gives_the_same_outputs(name):
    case = BY_NAME[name]
    model = _build(case)
    x, _ = case.make_data(np.random.default_rng(1))
    clone = type(model).from_config(model.get_config())
    clone.set_weights(model.get_weights())
    with torch.no_grad():
        torch.testing.assert_close(clone(torch.as_tensor(x)), model(torch.as_tensor(x)))


@pytest.mark.parametrize("name", ["LeNet5", "resnet18", "GRUModel", "TransformerModel", "GPT"])
def test_save_and_load_give_the_same_outputs(name, tmp_path):
    case = BY_NAME[name]
    model = _build(case)
    x, _ = case.make_data(np.random.default_rng(2))
    model.save(tmp_path / "model.keras")
    loaded = lamina.models.load_model(tmp_path / "model.keras")
    with torch.no_grad():
        torch.testing.assert_close(loaded(torch.as_tensor(x)), model(torch.as_tensor(x)))
    if hasattr(model, "generate"):
        prompt = torch.as_tensor(x[:1, :3])
        assert torch.equal(loaded.generate(prompt, 4, greedy=True),
                           model.generate(prompt, 4, greedy=True))


def test_create_model_passes_arguments_and_names_unknown_models():
    model = applications.create_model("lenet5", classes=4)  # names are case-insensitive
    assert model.output_shape == (None, 4)
    with pytest.raises(UnknownNameError,
                       match=r"Unknown model name 'resnet19'.*Did you mean 'resnet18'"):
        applications.create_model("resnet19")
    with pytest.raises(TypeError, match=r"`name` must be a model name \(a string\)"):
        applications.create_model(applications.resnet18)
