"""Every torch function a saved TorchOp may call: it round-trips through a JSON config, computes
what torch computes on the same data, and can be sized on the meta device (which is how a load
bounds its output before allocating)."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import lamina
from lamina._symbolic import KerasTensor, record_torch_op
from lamina.layers.core import _SAFE_TORCH_FUNCTIONS, _safe_torch_function
from lamina.saving import deserialize, serialize

Tensor = torch.Tensor


def apply(function, *args, **kwargs):
    """Call `function` on real tensors, or record it on symbolic ones (as a user's code does)."""
    flat = [*args, *kwargs.values()]
    flat += [v for a in args if isinstance(a, (list, tuple)) for v in a]
    if any(isinstance(v, KerasTensor) for v in flat):
        return record_torch_op(function, args, kwargs)
    return function(*args, **kwargs)


def t(x):
    return x.transpose(0, 1)


def image(x):
    return x.reshape(-1, 1, 2, 2)


def volume(x):
    return x.reshape(-1, 1, 1, 2, 2)


def sequence(x):
    return x.unsqueeze(1)


def bools(x):
    return x > 0.5


UNARY = lambda f, a, b: apply(f, a)  # noqa: E731
BINARY = lambda f, a, b: apply(f, a, b)  # noqa: E731
ON_DIM = lambda f, a, b: apply(f, a, 1)  # noqa: E731
BOOLEAN = lambda f, a, b: apply(f, bools(a), bools(b))  # noqa: E731
SPLIT = lambda f, a, b: apply(f, a, 2, 1)  # noqa: E731
CLAMP = lambda f, a, b: apply(f, a, 0.2, 0.6)  # noqa: E731

# How to call each function (default: on `a` alone); a, b are (batch, 4) inputs in (0.1, 0.9).
CALLS = {
    "torch": {
        **dict.fromkeys(
            "add sub subtract mul multiply div divide true_divide floor_divide fmod remainder pow "
            "float_power atan2 arctan2 hypot logaddexp logaddexp2 xlogy maximum minimum fmax fmin "
            "eq ne lt le gt ge greater greater_equal less less_equal not_equal isclose ldexp "
            "logical_and logical_or logical_xor inner".split(), BINARY),
        **dict.fromkeys("bitwise_and bitwise_or bitwise_xor".split(), BOOLEAN),
        "bitwise_not": lambda f, a, b: apply(f, bools(a)),
        **dict.fromkeys(
            "argsort cumsum cumprod logcumsumexp cummax cummin logsumexp softmax log_softmax sort "
            "unsqueeze unbind std_mean var_mean count_nonzero".split(), ON_DIM),
        **dict.fromkeys("chunk split tensor_split repeat_interleave".split(), SPLIT),
        **dict.fromkeys("clamp clip".split(), CLAMP),
        "clamp_min": lambda f, a, b: apply(f, a, 0.3),
        "clamp_max": lambda f, a, b: apply(f, a, 0.6),
        "kthvalue": lambda f, a, b: apply(f, a, 2, 1),
        "topk": lambda f, a, b: apply(f, a, 2),
        "flip": lambda f, a, b: apply(f, a, (1,)),
        "roll": lambda f, a, b: apply(f, a, 1, 1),
        **dict.fromkeys("movedim moveaxis swapaxes swapdims transpose".split(),
                        lambda f, a, b: apply(f, a, 0, 1)),
        "permute": lambda f, a, b: apply(f, a, (1, 0)),
        "reshape": lambda f, a, b: apply(f, a, (-1, 2, 2)),
        "squeeze": lambda f, a, b: apply(f, sequence(a), 1),
        "unflatten": lambda f, a, b: apply(f, a, 1, (2, 2)),
        "narrow": lambda f, a, b: apply(f, a, 1, 0, 2),
        "select": lambda f, a, b: apply(f, a, 1, 0),
        "index_select": lambda f, a, b: apply(f, a, 1, torch.argmax(b, 1)),
        "gather": lambda f, a, b: apply(f, a, 1, torch.argsort(b, 1)),
        "take_along_dim": lambda f, a, b: apply(f, a, torch.argsort(b, 1), 1),
        "tile": lambda f, a, b: apply(f, a, (1, 2)),
        "broadcast_to": lambda f, a, b: apply(f, sequence(a), (-1, 2, 4)),
        **dict.fromkeys("cat concat concatenate stack".split(),
                        lambda f, a, b: apply(f, [a, b], 1)),
        **dict.fromkeys("hstack vstack dstack column_stack".split(),
                        lambda f, a, b: apply(f, [a, b])),
        "matmul": lambda f, a, b: apply(f, a, t(b)),
        "mm": lambda f, a, b: apply(f, a, t(b)),
        "bmm": lambda f, a, b: apply(f, sequence(a), b.unsqueeze(2)),
        "baddbmm": lambda f, a, b: apply(f, sequence(a)[:, :, :1], sequence(a), b.unsqueeze(2)),
        "addmm": lambda f, a, b: apply(f, torch.mm(a, t(b)), a, t(b)),
        "mv": lambda f, a, b: apply(f, a, b[0]),
        "dot": lambda f, a, b: apply(f, a[0], b[0]),
        "outer": lambda f, a, b: apply(f, a[0], b[0]),
        "cross": lambda f, a, b: apply(f, a[:, :3], b[:, :3], dim=1),
        "kron": BINARY,
        "tensordot": lambda f, a, b: apply(f, a, b, dims=([1], [1])),
        "einsum": lambda f, a, b: apply(f, "bi,bi->b", a, b),
        "diagonal": lambda f, a, b: apply(f, torch.diag_embed(a), 0, 1, 2),
        "where": lambda f, a, b: apply(f, bools(a), a, b),
        "lerp": lambda f, a, b: apply(f, a, b, 0.3),
        **dict.fromkeys("addcdiv addcmul".split(), lambda f, a, b: apply(f, a, a, b, value=0.5)),
    },
    "torch.nn.functional": {
        **dict.fromkeys("softmax softmin log_softmax glu".split(), ON_DIM),
        "threshold": lambda f, a, b: apply(f, a, 0.5, 0.0),
        **dict.fromkeys(
            "binary_cross_entropy binary_cross_entropy_with_logits huber_loss kl_div l1_loss "
            "mse_loss smooth_l1_loss cross_entropy cosine_similarity pairwise_distance "
            "linear".split(), BINARY),
        "nll_loss": lambda f, a, b: apply(f, a, torch.argmax(b, 1)),
        "kl_div": lambda f, a, b: apply(f, a, b, reduction="batchmean"),
        "bilinear": lambda f, a, b: apply(f, a, b, a.unsqueeze(2) * b.unsqueeze(1)),
        "prelu": lambda f, a, b: apply(f, a, b[0, :1]),
        "embedding": lambda f, a, b: apply(f, torch.argmax(a, 1), t(b)),
        "one_hot": lambda f, a, b: apply(f, torch.argmax(a, 1), 4),
        **dict.fromkeys("layer_norm rms_norm".split(), lambda f, a, b: apply(f, a, (4,))),
        "group_norm": lambda f, a, b: apply(f, a.unsqueeze(2), 2),
        "local_response_norm": lambda f, a, b: apply(f, a.unsqueeze(2), 2),
        **{f"conv{d}d": (lambda shape: lambda f, a, b: apply(f, shape(a), shape(b[:1])))(shape)
           for d, shape in ((1, sequence), (2, image), (3, volume))},
        **{f"conv_transpose{d}d": (lambda shape: lambda f, a, b: apply(f, shape(a), shape(b[:1])))(
            shape) for d, shape in ((1, sequence), (2, image), (3, volume))},
        **{f"{kind}_pool{d}d": (lambda shape, size: lambda f, a, b: apply(f, shape(a), size))(
            shape, size) for kind in ("avg", "max") for d, shape, size in (
                (1, sequence, 2), (2, image, 2), (3, volume, (1, 2, 2)))},
        **{f"lp_pool{d}d": (lambda shape: lambda f, a, b: apply(f, shape(a), 2, 2))(shape)
           for d, shape in ((1, sequence), (2, image))},
        **{f"adaptive_{kind}_pool{d}d": (lambda shape: lambda f, a, b: apply(f, shape(a), 1))(
            shape) for kind in ("avg", "max") for d, shape in (
                (1, sequence), (2, image), (3, volume))},
        "pad": lambda f, a, b: apply(f, a, (1, 2)),
        "interpolate": lambda f, a, b: apply(f, sequence(a), scale_factor=2.0),
        "unfold": lambda f, a, b: apply(f, image(a), 1),
        "fold": lambda f, a, b: apply(f, a.reshape(-1, 1, 4), (2, 2), 1),
        "pixel_shuffle": lambda f, a, b: apply(f, a.reshape(-1, 4, 1, 1), 2),
        "pixel_unshuffle": lambda f, a, b: apply(f, image(a), 2),
        "scaled_dot_product_attention": lambda f, a, b: apply(f, image(a), image(b), image(a)),
    },
    "torch.Tensor": {
        **dict.fromkeys(
            "__add__ __eq__ __floordiv__ __ge__ __gt__ __le__ __lt__ __mod__ __mul__ __ne__ "
            "__pow__ __radd__ __rmul__ __rpow__ __rsub__ __rtruediv__ __sub__ __truediv__ add div "
            "eq ge gt le lt mul ne pow sub type_as expand_as view_as reshape_as".split(), BINARY),
        **dict.fromkeys("__and__ __or__ __ror__ __xor__ __rxor__".split(), BOOLEAN),
        **dict.fromkeys("__invert__ logical_not".split(), lambda f, a, b: apply(f, bools(a))),
        **dict.fromkeys("__matmul__ __rmatmul__ matmul".split(),
                        lambda f, a, b: apply(f, a, t(b))),
        "__getitem__": lambda f, a, b: apply(f, a, (slice(None), slice(0, 3, 2))),
        **dict.fromkeys(
            "argsort cumprod cumsum logsumexp softmax log_softmax sort unbind unsqueeze".split(),
            ON_DIM),
        **dict.fromkeys("chunk split repeat_interleave".split(), SPLIT),
        **dict.fromkeys("clamp clip".split(), CLAMP),
        "topk": lambda f, a, b: apply(f, a, 2),
        "narrow": lambda f, a, b: apply(f, a, 1, 0, 2),
        "select": lambda f, a, b: apply(f, a, 1, 0),
        "squeeze": lambda f, a, b: apply(f, sequence(a), 1),
        "permute": lambda f, a, b: apply(f, a, 1, 0),
        "transpose": lambda f, a, b: apply(f, a, 0, 1),
        "unflatten": lambda f, a, b: apply(f, a, 1, (2, 2)),
        **dict.fromkeys("view reshape".split(), lambda f, a, b: apply(f, a, -1, 2, 2)),
        "expand": lambda f, a, b: apply(f, sequence(a), -1, 2, -1),
        "repeat": lambda f, a, b: apply(f, a, 1, 2),
        "tile": lambda f, a, b: apply(f, a, (1, 2)),
        "roll": lambda f, a, b: apply(f, a, 1, 1),
        "flip": lambda f, a, b: apply(f, a, (1,)),
        "gather": lambda f, a, b: apply(f, a, 1, torch.argsort(b, 1)),
        "masked_fill": lambda f, a, b: apply(f, a, bools(a), 0.0),
        "where": lambda f, a, b: apply(f, a, bools(a), b),
        "diagonal": lambda f, a, b: apply(f, torch.diag_embed(a), 0, 1, 2),
    },
}

CASES = [(namespace, name) for namespace, names in _SAFE_TORCH_FUNCTIONS.items()
         for name in sorted(names)]


def first_tensor(value):
    return value[0] if isinstance(value, (list, tuple)) else value


@pytest.mark.parametrize("namespace, name", CASES, ids=[f"{n}.{f}" for n, f in CASES])
def test_allowed_torch_op_round_trips_and_computes_as_torch(namespace, name):
    function = _safe_torch_function(f"{namespace}.{name}")
    call = CALLS[namespace].get(name, UNARY)
    generator = torch.Generator().manual_seed(0)
    x, y = (0.1 + 0.8 * torch.rand(3, 4, generator=generator) for _ in range(2))
    expected = first_tensor(call(function, x, y))

    a, b = lamina.Input(shape=(4,)), lamina.Input(shape=(4,))
    # `b` as a second output keeps the model's inputs in its graph when the op ignores `b`.
    model = lamina.Model([a, b], [first_tensor(call(function, a, b)), b])
    config = json.loads(json.dumps(serialize(model)))
    saved = [layer["config"]["function"] for layer in config["config"]["layers"]
             if layer["class_name"] == "TorchOp"]
    # The op is saved under a name that resolves to this very function (aliases included).
    assert any(_safe_torch_function(s) is function for s in saved), saved
    clone = deserialize(config)
    torch.testing.assert_close(clone([x, y])[0], expected, equal_nan=True)

    # Loading sizes each op on the meta device first: it must run there.
    meta = first_tensor(call(function, x.to("meta"), y.to("meta")))
    assert meta.shape == expected.shape and meta.dtype == expected.dtype
