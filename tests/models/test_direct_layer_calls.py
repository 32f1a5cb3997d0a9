"""Direct layer calls: inside a Sequential or functional model's call, a built layer with nothing
for the call machinery to do runs its `call` directly (`Layer._calls_directly`); each skipped
wrapper cost ~1% of evaluate at batch 1024 (docs/benchmarks.md). Whatever the machinery would
do must still happen."""

from __future__ import annotations

import warnings

import pytest
import torch

import lamina
from lamina import layers


def _called_model(kind="sequential"):
    stack = [layers.Dense(8, activation="relu"), layers.Dropout(0.5), layers.Dense(3)]
    if kind == "sequential":
        model = lamina.Sequential(stack)
    else:
        inputs = lamina.Input((4,))
        x = inputs
        for layer in stack:
            x = layer(x)
        model = lamina.Model(inputs, x)
    model(torch.randn(2, 4))
    return model, stack


def _by_hand(stack, x, training=False):
    dense, dropout, head = stack
    h = torch.relu(x @ dense.kernel + dense.bias)
    h = dropout.call(h, training=training)
    return h @ head.kernel + head.bias


both_kinds = pytest.mark.parametrize("kind", ["sequential", "functional"])


@both_kinds
def test_a_called_model_runs_its_layers_calls_directly_with_the_same_values(monkeypatch, kind):
    model, stack = _called_model(kind)
    x = torch.randn(5, 4)
    forwards = []
    forward = layers.Layer.forward
    monkeypatch.setattr(layers.Layer, "forward",
                        lambda self, *a, **k: forwards.append(self) or forward(self, *a, **k))
    for training in (None, False):
        forwards.clear()
        out = model(x) if training is None else model(x, training=training)
        # The Dropout's call takes `training`: with none given it goes the full way, which
        # resolves it from the mode; the Dense layers run directly either way.
        assert forwards == ([model, stack[1]] if training is None else [model])
        torch.testing.assert_close(out, _by_hand(stack, x))


@both_kinds
def test_training_reaches_a_directly_called_layer(kind):
    model, stack = _called_model(kind)
    x = torch.ones(64, 4)
    torch.manual_seed(0)
    dropped = model(x, training=True)
    torch.manual_seed(0)
    torch.testing.assert_close(dropped, _by_hand(stack, x, training=True))
    assert not torch.equal(dropped, model(x, training=False))


@both_kinds
def test_hooks_added_after_the_first_call_still_run(kind):
    model, stack = _called_model(kind)
    x = torch.randn(5, 4)
    head = stack[2]
    seen = []
    handle = head.register_forward_pre_hook(lambda module, args: (args[0] * 0,))
    after = head.register_forward_hook(lambda module, args, out: seen.append(out.shape))
    torch.testing.assert_close(model(x, training=False), head.bias.expand(5, 3))
    assert seen == [(5, 3)]
    handle.remove(), after.remove()
    from torch.nn.modules.module import register_module_forward_hook
    everywhere = register_module_forward_hook(lambda module, args, out: seen.append(module))
    try:
        model(x, training=False)
    finally:
        everywhere.remove()
    assert all(layer in seen for layer in stack)


@both_kinds
def test_an_input_spec_or_activity_regularizer_set_after_the_first_call_applies(kind):
    model, stack = _called_model(kind)
    head = stack[2]
    head.activity_regularizer = lamina.regularizers.L2(1.0)
    out = model(torch.randn(5, 4), training=False)
    (penalty,) = model.losses
    torch.testing.assert_close(penalty, (out ** 2).sum() / 5)
    head.activity_regularizer = None
    head.input_spec = lamina.InputSpec(ndim=3)
    with pytest.raises(ValueError, match="expected ndim=3"):
        model(torch.randn(5, 4), training=False)


def test_a_layer_that_overrides_forward_keeps_its_own():
    class Doubling(layers.Layer):
        def call(self, inputs):
            return inputs

        def forward(self, *args, **kwargs):
            return super().forward(*args, **kwargs) * 2

    model = lamina.Sequential([layers.Dense(3), Doubling()])
    x = torch.randn(2, 4)
    model(x)
    dense = model.layers[0]
    torch.testing.assert_close(model(x), (x @ dense.kernel + dense.bias) * 2)
    dense.forward = lambda inputs: torch.zeros(2, 3)  # an instance's own forward, patched in
    torch.testing.assert_close(model(x), torch.zeros(2, 3))


@both_kinds
def test_inputs_the_first_layer_would_cast_go_the_full_way(kind):
    model, _ = _called_model(kind)
    x = torch.randn(5, 4)
    out = model(x.double(), training=False)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, model(x, training=False))


@both_kinds
def test_the_jit_tracer_sees_every_layer_call(kind):
    model, _ = _called_model(kind)
    model.eval()
    x = torch.randn(5, 4)
    with warnings.catch_warnings():  # deprecated in torch 2.13, still what TensorBoard uses
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, (x,))
    torch.testing.assert_close(traced(x), model(x))
    # Each layer is a submodule call of the traced graph, as torch's own modules are.
    assert str(traced.graph).count('prim::CallMethod[name="forward"]') == 3
