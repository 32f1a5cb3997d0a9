"""Keras's core ops (`keras.ops.core`): conversion, dtypes, scatter/slice updates, and control
flow run eagerly in Python (torch executes as it goes; `torch.compile` traces the loops)."""

from __future__ import annotations

import builtins
from typing import Any, Callable, Sequence

import numpy as np
import torch

from lamina import config, tree
from lamina.ops._op import op, public_names, standardize_dtype, to_tensor

Tensor = torch.Tensor


def _is_symbolic(x: Any) -> bool:
    from lamina._symbolic import KerasTensor

    return isinstance(x, KerasTensor)


def convert_to_tensor(x: Any, dtype: Any = None, sparse: bool | None = None,
                      ragged: bool | None = None) -> Any:
    """A torch tensor from array-like data (symbolic tensors pass through, cast if asked)."""
    if _is_symbolic(x):
        return x if dtype is None else cast(x, dtype)
    return to_tensor(x, dtype)


def convert_to_numpy(x: Any) -> np.ndarray:
    """A NumPy array holding `x`'s values (moved to the CPU, detached)."""
    if _is_symbolic(x):
        raise TypeError("A symbolic tensor has no values to convert to NumPy: call the model on "
                        "data first.")
    if isinstance(x, Tensor):
        x = x.detach().cpu()
        if x.dtype == torch.bfloat16:
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def is_tensor(x: Any) -> bool:
    """True for a torch tensor."""
    return isinstance(x, Tensor)


def shape(x: Any) -> tuple:
    """The shape as a tuple of ints (None for a symbolic tensor's free axes)."""
    if _is_symbolic(x):
        return x.shape
    return tuple(to_tensor(x).shape) if not isinstance(x, Tensor) else tuple(x.shape)


def dtype(x: Any) -> str:
    """The Keras name of `x`'s dtype ('float32')."""
    if _is_symbolic(x) or isinstance(x, Tensor):
        return config.dtype_name(x.dtype)
    return config.dtype_name(to_tensor(x).dtype)


@op
def cast(x: Any, dtype: Any) -> Tensor:
    """`x` converted to `dtype`."""
    return to_tensor(x).to(standardize_dtype(dtype))


@op
def saturate_cast(x: Any, dtype: Any) -> Tensor:
    """`x` cast to `dtype`, clipped to its range first (no wrap-around)."""
    x = to_tensor(x)
    target = standardize_dtype(dtype)
    if target.is_floating_point or target == torch.bool:
        if target.is_floating_point and x.dtype.is_floating_point:
            info = torch.finfo(target)
            x = torch.clamp(x, info.min, info.max)
        return x.to(target)
    info = torch.iinfo(target)
    if x.dtype.is_floating_point:
        x = torch.clamp(x.double(), info.min, info.max)
    else:
        x = torch.clamp(x.long(), info.min, info.max)
    return x.to(target)


@op
def stop_gradient(variable: Any) -> Tensor:
    """`variable` cut out of the autograd graph."""
    return to_tensor(variable).detach()


@op
def unstack(x: Any, num: int | None = None, axis: int = 0) -> list[Tensor]:
    """The slices of `x` along `axis`, as a list."""
    x = to_tensor(x)
    if num is not None and num != x.shape[axis]:
        raise ValueError(f"`num` ({num}) must equal the size of axis {axis} ({x.shape[axis]}).")
    return list(torch.unbind(x, dim=axis))


@op
def slice(inputs: Any, start_indices: Sequence[int], shape: Sequence[int]) -> Tensor:
    """The block of `shape` starting at `start_indices`."""
    x = to_tensor(inputs)
    index = tuple(builtins.slice(int(s), int(s) + int(n))
                  for s, n in zip(_ints(start_indices), _ints(shape)))
    return x[index]


def _ints(values: Any) -> list[int]:
    if isinstance(values, Tensor):
        return [int(v) for v in values.tolist()]
    return [int(v) for v in values]


@op
def slice_update(inputs: Any, start_indices: Sequence[int], updates: Any) -> Tensor:
    """A copy of `inputs` with the block at `start_indices` replaced by `updates`."""
    x = to_tensor(inputs).clone()
    updates = to_tensor(updates, x.dtype, x.device)
    index = tuple(builtins.slice(s, s + n) for s, n in zip(_ints(start_indices), updates.shape))
    x[index] = updates
    return x


@op
def scatter(indices: Any, values: Any, shape: Sequence[int]) -> Tensor:
    """A zero tensor of `shape` with `values` added at `indices` (duplicates accumulate)."""
    values = to_tensor(values)
    indices = to_tensor(indices, device=values.device).long()
    out = torch.zeros(tuple(_ints(shape)), dtype=values.dtype, device=values.device)
    out.index_put_(tuple(indices.reshape(-1, indices.shape[-1]).T),
                   values.reshape((-1,) + tuple(out.shape[indices.shape[-1]:])), accumulate=True)
    return out


@op
def scatter_update(inputs: Any, indices: Any, updates: Any, reduction: str | None = None
                   ) -> Tensor:
    """A copy of `inputs` with `updates` written at `indices` (the last axis of `indices`
    indexes the leading axes of `inputs`); `reduction`: None (replace), 'add', 'max', 'min',
    'mul'."""
    x = to_tensor(inputs).clone()
    indices = to_tensor(indices, device=x.device).long()
    updates = to_tensor(updates, x.dtype, x.device)
    position = tuple(indices.reshape(-1, indices.shape[-1]).T)
    updates = updates.reshape((-1,) + tuple(x.shape[indices.shape[-1]:]))
    if reduction is None:
        x[position] = updates
    elif reduction == "add":
        x.index_put_(position, updates, accumulate=True)
    elif reduction in ("max", "min", "mul"):
        for row, update in zip(torch.stack(position, -1) if position else [], updates):
            key = tuple(row.tolist())
            combine = {"max": torch.maximum, "min": torch.minimum, "mul": torch.mul}[reduction]
            x[key] = combine(x[key], update)
    else:
        raise ValueError(f"`reduction` must be None, 'add', 'max', 'min' or 'mul'. Received: "
                         f"reduction={reduction!r}.")
    return x


# ---- control flow: eager Python on real tensors ------------------------------------------------
# scan, map and their kin record a node on symbolic tensors (the shape is found by running them)
# but are never saveable: a file cannot hold their Python function.

def _tree_map(fn: Callable, *trees: Any) -> Any:
    # None inside a step's output stays None, as Keras's scan leaves it.
    return tree.map_structure(fn, *trees, none_is_leaf=False)


def cond(pred: Any, true_fn: Callable, false_fn: Callable) -> Any:
    """`true_fn()` if `pred` else `false_fn()`."""
    return true_fn() if builtins.bool(to_tensor(pred)) else false_fn()


def switch(index: Any, branches: Sequence[Callable], *operands: Any) -> Any:
    """`branches[index](*operands)`, `index` clamped into range as in Keras."""
    chosen = builtins.min(builtins.max(int(to_tensor(index)), 0), len(branches) - 1)
    return branches[chosen](*operands)


def while_loop(cond: Callable, body: Callable, loop_vars: Any,
               maximum_iterations: int | None = None) -> Any:
    """Runs `loop_vars = body(*loop_vars)` while `cond(*loop_vars)` holds (at most
    `maximum_iterations` times)."""
    single = not isinstance(loop_vars, (list, tuple))
    state = (loop_vars,) if single else tuple(loop_vars)
    count = 0
    while builtins.bool(cond(*state)) and (maximum_iterations is None or
                                          count < maximum_iterations):
        result = body(*state)
        state = (result,) if single else tuple(result)
        count += 1
    if single:
        return state[0]
    return type(loop_vars)(state) if isinstance(loop_vars, list) else state


def fori_loop(lower: int, upper: int, body_fun: Callable, init_val: Any) -> Any:
    """`val = body_fun(i, val)` for i in [lower, upper)."""
    value = init_val
    for i in range(int(lower), int(upper)):
        value = body_fun(i, value)
    return value


@op(saveable=False)
def scan(f: Callable, init: Any, xs: Any = None, length: int | None = None,
         reverse: bool = False, unroll: int = 1) -> tuple[Any, Any]:
    """`carry, y = f(carry, x)` over the leading axis of `xs`; returns the final carry and the
    stacked ys."""
    leaves, spec = tree.flatten_with_spec(xs) if xs is not None else ([], None)
    leaves = [to_tensor(leaf) for leaf in leaves]
    n = length if not leaves else leaves[0].shape[0]
    if n is None:
        raise ValueError("`scan` needs `xs` or `length`.")
    order = range(n - 1, -1, -1) if reverse else range(n)
    carry, ys = init, []
    for i in order:
        x = spec.unflatten([leaf[i] for leaf in leaves]) if leaves else None
        carry, y = f(carry, x)
        ys.append(y)
    if reverse:
        ys.reverse()
    if not ys or ys[0] is None:
        return carry, None
    stacked = _tree_map(lambda *items: torch.stack([to_tensor(i) for i in items]), *ys)
    return carry, stacked


@op(saveable=False)
def associative_scan(f: Callable, elems: Any, reverse: bool = False, axis: int = 0) -> Any:
    """Inclusive prefix scan with the associative binary `f` along `axis` (sequential)."""
    leaves, spec = tree.flatten_with_spec(elems)
    leaves = [torch.movedim(to_tensor(leaf), axis, 0) for leaf in leaves]
    n = leaves[0].shape[0]
    order = list(range(n - 1, -1, -1)) if reverse else list(range(n))
    outputs, carry = [None] * n, None
    for i in order:
        item = spec.unflatten([leaf[i] for leaf in leaves])
        carry = item if carry is None else (f(item, carry) if reverse else f(carry, item))
        outputs[i] = carry
    stacked = _tree_map(lambda *items: torch.movedim(torch.stack(items), 0, axis), *outputs)
    return stacked


@op(saveable=False)
def map(f: Callable, xs: Any) -> Any:
    """`f` applied to each slice of `xs` along its leading axis, stacked."""
    _, ys = scan(lambda carry, x: (carry, f(x)), None, xs)
    return ys


@op(saveable=False)
def vectorized_map(function: Callable, elements: Any) -> Any:
    """`function` applied to each slice along the leading axis, batched by `torch.vmap`."""
    if isinstance(elements, (list, tuple)):
        return torch.vmap(lambda *e: function(type(elements)(e)))(
            *[to_tensor(e) for e in elements])
    return torch.vmap(function)(to_tensor(elements))


def custom_gradient(f: Callable) -> Callable:
    """Decorator: `f(*args)` returns `(output, grad_fn)`; backward calls `grad_fn(upstream)` to
    get the gradients of the tensor arguments."""
    class _Function(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, *args: Any) -> Any:
            output, grad_fn = f(*args)
            ctx.grad_fn = grad_fn
            return output

        @staticmethod
        def backward(ctx: Any, *upstream: Any) -> Any:
            grads = ctx.grad_fn(*upstream)
            return grads if isinstance(grads, tuple) else (grads,)

    def wrapper(*args: Any) -> Any:
        return _Function.apply(*[to_tensor(a) if not isinstance(a, Tensor) else a
                                 for a in args])

    return wrapper


@op
def rearrange(tensor: Any, pattern: str, **axes_lengths: int) -> Tensor:
    """einops-style axis rearrangement: `rearrange(x, 'b (h w) c -> b h w c', h=4)`."""
    x = to_tensor(tensor)
    left, right = (side.strip() for side in pattern.split("->"))
    in_groups, out_groups = _parse_groups(left), _parse_groups(right)
    sizes = dict(axes_lengths)
    for group, size in zip(in_groups, x.shape):
        unknown = [a for a in group if a not in sizes]
        known = 1
        for a in group:
            known *= sizes.get(a, 1)
        if len(unknown) == 1:
            sizes[unknown[0]] = size // known
    flat_in = [a for g in in_groups for a in g]
    x = x.reshape([sizes[a] for a in flat_in])
    flat_out = [a for g in out_groups for a in g]
    x = x.permute([flat_in.index(a) for a in flat_out])
    out_shape = []
    for group in out_groups:
        size = 1
        for a in group:
            size *= sizes[a]
        out_shape.append(size)
    return x.reshape(out_shape)


def _parse_groups(side: str) -> list[list[str]]:
    groups, current, inside = [], [], False
    for token in side.replace("(", " ( ").replace(")", " ) ").split():
        if token == "(":
            inside, current = True, []
        elif token == ")":
            inside = False
            groups.append(current)
        elif inside:
            current.append(token)
        else:
            groups.append([token])
    return groups


__all__ = public_names(globals(), __name__)
