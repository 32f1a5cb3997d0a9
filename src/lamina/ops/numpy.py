"""Keras's NumPy-style ops (`keras.ops.numpy`) on torch: NumPy's names, arguments and meanings,
Keras's dtype rules (ints are int32, Python scalars are weak, float math on ints is floatx)."""

from __future__ import annotations

import builtins
import math as _math
from typing import Any, Callable, Sequence

import numpy as np
import torch

from lamina import config
from lamina.ops._op import (canonical_axis, device_of, floating, op, promote, public_names,
                            result_dtype, standardize_dtype, to_tensor)

Tensor = torch.Tensor
_INT32 = torch.int32


def _floatx() -> torch.dtype:
    return config.torch_dtype(None)


def _dtype_or(dtype: Any, default: torch.dtype) -> torch.dtype:
    return default if dtype is None else standardize_dtype(dtype)


# ---- element-wise, one input -----------------------------------------------------------------

def _float_unary(name: str, torch_fn: Callable, doc: str) -> Callable:
    def function(x: Any) -> Tensor:
        return torch_fn(floating(to_tensor(x)))

    function.__name__ = function.__qualname__ = name
    function.__doc__ = doc
    return op(function)


def _same_unary(name: str, torch_fn: Callable, doc: str) -> Callable:
    def function(x: Any) -> Tensor:
        return torch_fn(to_tensor(x))

    function.__name__ = function.__qualname__ = name
    function.__doc__ = doc
    return op(function)


arccos = _float_unary("arccos", torch.arccos, "Inverse cosine, element-wise.")
arccosh = _float_unary("arccosh", torch.arccosh, "Inverse hyperbolic cosine, element-wise.")
arcsin = _float_unary("arcsin", torch.arcsin, "Inverse sine, element-wise.")
arcsinh = _float_unary("arcsinh", torch.arcsinh, "Inverse hyperbolic sine, element-wise.")
arctan = _float_unary("arctan", torch.arctan, "Inverse tangent, element-wise.")
arctanh = _float_unary("arctanh", torch.arctanh, "Inverse hyperbolic tangent, element-wise.")
cos = _float_unary("cos", torch.cos, "Cosine, element-wise.")
cosh = _float_unary("cosh", torch.cosh, "Hyperbolic cosine, element-wise.")
sin = _float_unary("sin", torch.sin, "Sine, element-wise.")
sinh = _float_unary("sinh", torch.sinh, "Hyperbolic sine, element-wise.")
tan = _float_unary("tan", torch.tan, "Tangent, element-wise.")
tanh = _float_unary("tanh", torch.tanh, "Hyperbolic tangent, element-wise.")
exp = _float_unary("exp", torch.exp, "`e ** x`, element-wise.")
exp2 = _float_unary("exp2", torch.exp2, "`2 ** x`, element-wise.")
expm1 = _float_unary("expm1", torch.expm1, "`exp(x) - 1`, accurate near 0.")
log = _float_unary("log", torch.log, "Natural logarithm, element-wise.")
log10 = _float_unary("log10", torch.log10, "Base-10 logarithm, element-wise.")
log1p = _float_unary("log1p", torch.log1p, "`log(1 + x)`, accurate near 0.")
log2 = _float_unary("log2", torch.log2, "Base-2 logarithm, element-wise.")
sqrt = _float_unary("sqrt", torch.sqrt, "Non-negative square root, element-wise.")
cbrt = _float_unary("cbrt", lambda x: torch.sign(x) * torch.abs(x) ** (1.0 / 3.0),
                    "Cube root, element-wise (real for negative inputs).")
deg2rad = _float_unary("deg2rad", torch.deg2rad, "Degrees to radians.")
rad2deg = _float_unary("rad2deg", torch.rad2deg, "Radians to degrees.")
reciprocal = _float_unary("reciprocal", torch.reciprocal, "`1 / x`, element-wise.")
sinc = _float_unary("sinc", torch.sinc, "Normalized sinc: `sin(pi x) / (pi x)`.")
i0 = _float_unary("i0", torch.special.i0, "Modified Bessel function of the first kind, order 0.")
fabs = _float_unary("fabs", torch.abs, "Absolute value as a float.")
abs = _same_unary("abs", torch.abs, "Absolute value, element-wise.")
absolute = _same_unary("absolute", torch.abs, "Absolute value, element-wise.")
negative = _same_unary("negative", torch.negative, "`-x`, element-wise.")
sign = _same_unary("sign", torch.sign, "-1, 0 or 1 by the sign of each element.")
signbit = _same_unary("signbit", torch.signbit, "True where the sign bit is set (-0.0 too).")
isfinite = _same_unary("isfinite", torch.isfinite, "True where finite.")
isinf = _same_unary("isinf", torch.isinf, "True where infinite.")
isnan = _same_unary("isnan", torch.isnan, "True where NaN.")
isneginf = _same_unary("isneginf", torch.isneginf, "True where negative infinity.")
isposinf = _same_unary("isposinf", torch.isposinf, "True where positive infinity.")
logical_not = _same_unary("logical_not", torch.logical_not, "Element-wise NOT.")
bitwise_invert = _same_unary("bitwise_invert", torch.bitwise_not, "Bit-wise NOT.")
bitwise_not = _same_unary("bitwise_not", torch.bitwise_not, "Bit-wise NOT.")
conj = _same_unary("conj", lambda x: torch.conj(x).resolve_conj(), "Complex conjugate.")
conjugate = _same_unary("conjugate", lambda x: torch.conj(x).resolve_conj(), "Complex conjugate.")
copy = _same_unary("copy", torch.clone, "A copy of `x`.")


def _rounding(name: str, torch_fn: Callable) -> Callable:
    def function(x: Any) -> Tensor:
        x = to_tensor(x)
        if not x.dtype.is_floating_point:
            return x.to(_floatx())
        return torch_fn(x)

    function.__name__ = function.__qualname__ = name
    function.__doc__ = f"`{name}` of each element; integer inputs become floatx as in Keras."
    return op(function)


floor = _rounding("floor", torch.floor)
ceil = _rounding("ceil", torch.ceil)


@op
def trunc(x: Any) -> Tensor:
    """Rounds toward zero; integer inputs are returned unchanged."""
    x = to_tensor(x)
    return torch.trunc(x) if x.dtype.is_floating_point else x


@op
def square(x: Any) -> Tensor:
    """`x * x`, element-wise (bools become int32)."""
    x = to_tensor(x)
    if x.dtype == torch.bool:
        x = x.to(_INT32)
    return torch.square(x)


@op
def round(x: Any, decimals: int = 0) -> Tensor:
    """Round half to even to `decimals` places."""
    x = to_tensor(x)
    if not x.dtype.is_floating_point:
        if decimals >= 0:
            return x
        factor = 10 ** (-decimals)
        return (torch.round(x.double() / factor) * factor).to(x.dtype)
    return torch.round(x, decimals=decimals)


@op
def angle(x: Any) -> Tensor:
    """The argument (phase) of complex values; 0 or pi for reals."""
    x = to_tensor(x)
    return torch.angle(x if x.is_complex() else floating(x))


@op
def real(x: Any) -> Tensor:
    """The real part."""
    x = to_tensor(x)
    return torch.real(x) if x.is_complex() else x


@op
def imag(x: Any) -> Tensor:
    """The imaginary part (zeros for real inputs)."""
    x = to_tensor(x)
    return torch.imag(x) if x.is_complex() else torch.zeros_like(x)


@op
def isreal(x: Any) -> Tensor:
    """True where the imaginary part is zero."""
    x = to_tensor(x)
    return torch.imag(x) == 0 if x.is_complex() else torch.ones_like(x, dtype=torch.bool)


@op
def nan_to_num(x: Any, nan: float = 0.0, posinf: float | None = None,
               neginf: float | None = None) -> Tensor:
    """Replaces NaN by `nan` and infinities by `posinf`/`neginf` (default: the dtype's extremes)."""
    x = to_tensor(x)
    if not x.dtype.is_floating_point:
        return x
    return torch.nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf)


# ---- element-wise, two inputs ----------------------------------------------------------------

def _binary(name: str, torch_fn: Callable, doc: str, *, float_result: bool = False,
            bool_to_int: bool = False, takes_scalar: bool = False) -> Callable:
    def function(x1: Any, x2: Any) -> Tensor:
        # The common cases, without dtype bookkeeping: two tensors of one dtype, or a tensor and
        # a Python number that leaves its dtype unchanged (torch's scalars are weak too).
        if type(x1) is Tensor and (x1.dtype.is_floating_point or not (float_result or
                                                                      bool_to_int)):
            if type(x2) is Tensor and x1.dtype == x2.dtype:
                return torch_fn(x1, x2)
            if takes_scalar and (type(x2) is int or (type(x2) is float and
                                                     x1.dtype.is_floating_point)) \
                    and x1.dtype != torch.bool:
                return torch_fn(x1, x2)
        dtype = result_dtype(x1, x2)
        if float_result and not (dtype.is_floating_point or dtype.is_complex):
            dtype = _floatx()
        if bool_to_int and dtype == torch.bool:
            dtype = _INT32
        a, b = promote(x1, x2, dtype=dtype)
        return torch_fn(a, b)

    function.__name__ = function.__qualname__ = name
    function.__doc__ = doc
    return op(function)


def _comparison(name: str, torch_fn: Callable, doc: str) -> Callable:
    def function(x1: Any, x2: Any) -> Tensor:
        a, b = promote(x1, x2)
        return torch_fn(a, b)

    function.__name__ = function.__qualname__ = name
    function.__doc__ = doc
    return op(function)


add = _binary("add", torch.add, "`x1 + x2`, element-wise with broadcasting.",
              takes_scalar=True)
subtract = _binary("subtract", torch.subtract, "`x1 - x2`, element-wise with broadcasting.",
                   bool_to_int=True, takes_scalar=True)
multiply = _binary("multiply", torch.multiply, "`x1 * x2`, element-wise with broadcasting.",
                   takes_scalar=True)
divide = _binary("divide", torch.true_divide, "`x1 / x2` (true division).", float_result=True,
                 takes_scalar=True)
true_divide = _binary("true_divide", torch.true_divide, "`x1 / x2` (true division).",
                      float_result=True, takes_scalar=True)
floor_divide = _binary("floor_divide", torch.floor_divide, "`x1 // x2`, rounding down.",
                       bool_to_int=True)
mod = _binary("mod", torch.remainder, "`x1 % x2` with the divisor's sign, as in NumPy.",
              bool_to_int=True)
fmod = _binary("fmod", torch.fmod, "C's remainder: the result has the dividend's sign.",
               bool_to_int=True)
power = _binary("power", torch.pow, "`x1 ** x2`, element-wise.", bool_to_int=True,
                takes_scalar=True)
maximum = _binary("maximum", torch.maximum, "Element-wise maximum (NaN propagates).")
minimum = _binary("minimum", torch.minimum, "Element-wise minimum (NaN propagates).")
fmax = _binary("fmax", torch.fmax, "Element-wise maximum ignoring NaN.")
fmin = _binary("fmin", torch.fmin, "Element-wise minimum ignoring NaN.")
arctan2 = _binary("arctan2", torch.arctan2, "Angle of the point (x2, x1), quadrant-aware.",
                  float_result=True)
hypot = _binary("hypot", torch.hypot, "`sqrt(x1**2 + x2**2)` without overflow.",
                float_result=True)
logaddexp = _binary("logaddexp", torch.logaddexp, "`log(exp(x1) + exp(x2))`, stably.",
                    float_result=True)
logaddexp2 = _binary("logaddexp2", torch.logaddexp2, "`log2(2**x1 + 2**x2)`, stably.",
                     float_result=True)
heaviside = _binary("heaviside", torch.heaviside, "Step function: 0 below 0, 1 above, x2 at 0.",
                    float_result=True)
nextafter = _binary("nextafter", torch.nextafter,
                    "The next representable float after x1 toward x2.", float_result=True)
gcd = _binary("gcd", torch.gcd, "Greatest common divisor of integers.")
lcm = _binary("lcm", torch.lcm, "Least common multiple of integers.")
bitwise_and = _binary("bitwise_and", torch.bitwise_and, "Bit-wise AND.")
bitwise_or = _binary("bitwise_or", torch.bitwise_or, "Bit-wise OR.")
bitwise_xor = _binary("bitwise_xor", torch.bitwise_xor, "Bit-wise XOR.")
bitwise_left_shift = _binary("bitwise_left_shift", torch.bitwise_left_shift, "`x << y`.")
bitwise_right_shift = _binary("bitwise_right_shift", torch.bitwise_right_shift, "`x >> y`.")
left_shift = _binary("left_shift", torch.bitwise_left_shift, "`x << y`.")
right_shift = _binary("right_shift", torch.bitwise_right_shift, "`x >> y`.")
equal = _comparison("equal", torch.eq, "`x1 == x2`, element-wise.")
not_equal = _comparison("not_equal", torch.ne, "`x1 != x2`, element-wise.")
greater = _comparison("greater", torch.gt, "`x1 > x2`, element-wise.")
greater_equal = _comparison("greater_equal", torch.ge, "`x1 >= x2`, element-wise.")
less = _comparison("less", torch.lt, "`x1 < x2`, element-wise.")
less_equal = _comparison("less_equal", torch.le, "`x1 <= x2`, element-wise.")
logical_and = _comparison("logical_and", torch.logical_and, "Element-wise AND.")
logical_or = _comparison("logical_or", torch.logical_or, "Element-wise OR.")
logical_xor = _comparison("logical_xor", torch.logical_xor, "Element-wise XOR.")


@op
def ldexp(x1: Any, x2: Any) -> Tensor:
    """`x1 * 2**x2` (x2 integer)."""
    device = device_of(x1, x2)
    x1 = floating(to_tensor(float(x1) if isinstance(x1, int) else x1, device=device))
    x2 = to_tensor(x2, device=device)
    if x2.dtype.is_floating_point:
        raise TypeError(f"ldexp's exponent `x2` must be integers. Received dtype {x2.dtype}.")
    return torch.ldexp(x1, x2)


@op
def divide_no_nan(x1: Any, x2: Any) -> Tensor:
    """`x1 / x2`, with 0 wherever `x2 == 0`."""
    dtype = result_dtype(x1, x2)
    if not dtype.is_floating_point:
        dtype = _floatx()
    a, b = promote(x1, x2, dtype=dtype)
    safe = torch.where(b == 0, torch.ones_like(b), b)
    return torch.where(b == 0, torch.zeros_like(a / safe), a / safe)


@op
def isclose(x1: Any, x2: Any, rtol: float = 1e-5, atol: float = 1e-8,
            equal_nan: bool = False) -> Tensor:
    """`|x1 - x2| <= atol + rtol * |x2|`, element-wise."""
    a, b = promote(x1, x2)
    return torch.isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)


@op
def allclose(x1: Any, x2: Any, rtol: float = 1e-5, atol: float = 1e-8,
             equal_nan: bool = False) -> Tensor:
    """True if every pair of elements is close (see `isclose`)."""
    return torch.all(isclose(x1, x2, rtol=rtol, atol=atol, equal_nan=equal_nan))


@op
def clip(x: Any, x_min: Any, x_max: Any) -> Tensor:
    """Limits values to [x_min, x_max] (bools become int32)."""
    x = to_tensor(x)
    if x.dtype == torch.bool:
        x = x.to(_INT32)
    if isinstance(x_min, (int, float)) and isinstance(x_max, (int, float)):
        return torch.clamp(x, x_min, x_max)
    # torch.clamp takes two numbers or two tensors, not one of each.
    return torch.clamp(x, to_tensor(x_min, x.dtype, x.device), to_tensor(x_max, x.dtype, x.device))


@op
def where(condition: Any, x1: Any = None, x2: Any = None) -> Any:
    """`x1` where `condition` holds, else `x2`; with one argument, the indices of non-zeros."""
    condition = to_tensor(condition, device=device_of(condition, x1, x2))
    if x1 is None and x2 is None:
        return nonzero(condition)
    if x1 is None or x2 is None:
        raise ValueError("`where` takes both `x1` and `x2`, or neither. Received only one.")
    a, b = promote(x1, x2)
    return torch.where(condition.bool().to(a.device), a, b)


# ---- reductions ------------------------------------------------------------------------------

def _sum_dtype(dtype: torch.dtype) -> torch.dtype:
    if dtype in (torch.bool, torch.int8, torch.int16, torch.uint8):
        return _INT32
    return dtype


def _reduce(fn: Callable, x: Tensor, axis: Any, keepdims: bool, **kwargs: Any) -> Tensor:
    axis = canonical_axis(axis)
    if axis is None:
        out = fn(x, **kwargs)
        return out.reshape([1] * x.ndim) if keepdims else out
    if isinstance(axis, tuple) and not axis:
        return x.to(kwargs["dtype"]) if "dtype" in kwargs else x
    return fn(x, dim=axis, keepdim=keepdims, **kwargs)


@op
def sum(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Sum over `axis` (all axes when None); small ints and bools sum in int32."""
    x = to_tensor(x)
    return _reduce(torch.sum, x, axis, keepdims, dtype=_sum_dtype(x.dtype))


@op
def prod(x: Any, axis: Any = None, keepdims: bool = False, dtype: Any = None) -> Tensor:
    """Product over `axis` (all axes when None)."""
    x = to_tensor(x)
    target = _dtype_or(dtype, _sum_dtype(x.dtype))
    if isinstance(canonical_axis(axis), tuple):
        out = x.to(target)
        for a in sorted((a % builtins.max(x.ndim, 1) for a in axis), reverse=True):
            out = torch.prod(out, dim=a, keepdim=keepdims)
        return out
    return _reduce(torch.prod, x, axis, keepdims, dtype=target)


def _mean_dtype(x: Tensor) -> torch.dtype:
    return x.dtype if x.dtype.is_floating_point or x.dtype.is_complex else _floatx()


@op
def mean(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Arithmetic mean over `axis`; integer inputs give floatx."""
    x = to_tensor(x)
    dtype = _mean_dtype(x)
    compute = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    return _reduce(torch.mean, x.to(compute), axis, keepdims).to(dtype)


@op
def var(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Population variance (ddof 0) over `axis`."""
    x = to_tensor(x)
    dtype = _mean_dtype(x)
    return _reduce(torch.var, x.to(dtype), axis, keepdims, correction=0)


@op
def std(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Population standard deviation (ddof 0) over `axis`."""
    x = to_tensor(x)
    dtype = _mean_dtype(x)
    return _reduce(torch.std, x.to(dtype), axis, keepdims, correction=0)


def _extreme(fn: Callable, x: Any, axis: Any, keepdims: bool, initial: Any,
             combine: Callable) -> Tensor:
    x = to_tensor(x)
    if x.numel() == 0 and initial is None:
        raise ValueError(f"Cannot take the {fn.__name__} of an empty tensor (shape "
                         f"{tuple(x.shape)}) without `initial`.")
    if x.numel() == 0:
        return torch.full(_reduced_shape(x, axis, keepdims), initial, dtype=x.dtype,
                          device=x.device)
    out = _reduce(fn, x, axis, keepdims)
    if initial is not None:
        out = combine(out, torch.tensor(initial, dtype=out.dtype, device=out.device))
    return out


def _reduced_shape(x: Tensor, axis: Any, keepdims: bool) -> list[int]:
    axis = canonical_axis(axis)
    axes = range(x.ndim) if axis is None else [a % x.ndim for a in (
        (axis,) if isinstance(axis, int) else axis)]
    return [1 if i in axes else n for i, n in enumerate(x.shape) if keepdims or i not in axes]


@op
def max(x: Any, axis: Any = None, keepdims: bool = False, initial: Any = None) -> Tensor:
    """Maximum over `axis`; `initial` takes part in the comparison."""
    return _extreme(torch.amax, x, axis, keepdims, initial, torch.maximum)


@op
def min(x: Any, axis: Any = None, keepdims: bool = False, initial: Any = None) -> Tensor:
    """Minimum over `axis`; `initial` takes part in the comparison."""
    return _extreme(torch.amin, x, axis, keepdims, initial, torch.minimum)


@op
def amax(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Maximum over `axis`."""
    return _reduce(torch.amax, to_tensor(x), axis, keepdims)


@op
def amin(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Minimum over `axis`."""
    return _reduce(torch.amin, to_tensor(x), axis, keepdims)


@op
def ptp(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Range (max - min) over `axis`."""
    x = to_tensor(x)
    return _reduce(torch.amax, x, axis, keepdims) - _reduce(torch.amin, x, axis, keepdims)


@op
def all(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """True if every element along `axis` is non-zero."""
    x = to_tensor(x).bool()
    if isinstance(canonical_axis(axis), tuple):
        return _reduce(torch.amin, x, axis, keepdims)
    return _reduce(torch.all, x, axis, keepdims)


@op
def any(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """True if some element along `axis` is non-zero."""
    x = to_tensor(x).bool()
    if isinstance(canonical_axis(axis), tuple):
        return _reduce(torch.amax, x, axis, keepdims)
    return _reduce(torch.any, x, axis, keepdims)


@op
def count_nonzero(x: Any, axis: Any = None) -> Tensor:
    """How many elements along `axis` are non-zero (int32)."""
    x = to_tensor(x)
    return torch.count_nonzero(x, dim=canonical_axis(axis)).to(_INT32)


def _arg_reduce(fn: Callable, x: Any, axis: Any, keepdims: bool) -> Tensor:
    x = to_tensor(x)
    if x.dtype == torch.bool:
        x = x.to(_INT32)
    if axis is None:
        out = fn(x.flatten())
        return out.reshape([1] * x.ndim).to(_INT32) if keepdims else out.to(_INT32)
    return fn(x, dim=axis, keepdim=keepdims).to(_INT32)


@op
def argmax(x: Any, axis: int | None = None, keepdims: bool = False) -> Tensor:
    """Index of the maximum along `axis` (of the flattened tensor when None), int32."""
    return _arg_reduce(torch.argmax, x, axis, keepdims)


@op
def argmin(x: Any, axis: int | None = None, keepdims: bool = False) -> Tensor:
    """Index of the minimum along `axis` (of the flattened tensor when None), int32."""
    return _arg_reduce(torch.argmin, x, axis, keepdims)


def _cumulative(fn: Callable, x: Any, axis: Any, dtype: Any) -> Tensor:
    x = to_tensor(x)
    target = _dtype_or(dtype, _sum_dtype(x.dtype))
    if axis is None:
        x, axis = x.flatten(), 0
    return fn(x, dim=axis, dtype=target)


@op
def cumsum(x: Any, axis: int | None = None, dtype: Any = None) -> Tensor:
    """Cumulative sum along `axis` (of the flattened tensor when None)."""
    return _cumulative(torch.cumsum, x, axis, dtype)


@op
def cumprod(x: Any, axis: int | None = None, dtype: Any = None) -> Tensor:
    """Cumulative product along `axis` (of the flattened tensor when None)."""
    return _cumulative(torch.cumprod, x, axis, dtype)


@op
def average(x: Any, axis: int | None = None, weights: Any = None) -> Tensor:
    """Weighted mean along `axis`: `sum(x * w) / sum(w)`; `weights` 1-D along `axis` or full."""
    x = to_tensor(x)
    if weights is None:
        return mean(x, axis=axis)
    w = to_tensor(weights, device=x.device)
    dtype = result_dtype(x, w)
    if not dtype.is_floating_point:
        dtype = _floatx()
    x, w = x.to(dtype), w.to(dtype)
    if axis is not None and w.ndim == 1 and x.ndim > 1:
        shape = [1] * x.ndim
        shape[axis] = -1
        w = w.reshape(shape)
    return torch.sum(x * w, dim=axis) / torch.sum(w.expand_as(x), dim=axis)


def _quantile_method(method: str) -> str:
    valid = ("linear", "lower", "higher", "midpoint", "nearest")
    if method not in valid:
        raise ValueError(f"`method` must be one of {valid}. Received: method={method!r}.")
    return method


def _quantile(x: Any, q: Any, axis: Any, method: str, keepdims: bool, nan: bool) -> Tensor:
    x = to_tensor(x)
    dtype = _mean_dtype(x)
    compute = torch.float64 if dtype == torch.float64 else torch.float32
    q_tensor = to_tensor(q, compute, x.device)
    fn = torch.nanquantile if nan else torch.quantile
    values = x.to(compute)
    axis = canonical_axis(axis)
    if isinstance(axis, tuple):
        axes = sorted(a % x.ndim for a in axis)
        rest = [i for i in range(x.ndim) if i not in axes]
        values = values.permute(rest + axes).reshape([x.shape[i] for i in rest] + [-1])
        out = fn(values, q_tensor, dim=-1, interpolation=_quantile_method(method))
        if keepdims:
            shape = list(out.shape[:q_tensor.ndim]) + [
                1 if i in axes else x.shape[i] for i in range(x.ndim)]
            out = out.reshape(shape)
        return out.to(dtype)
    return fn(values, q_tensor, dim=axis, keepdim=keepdims,
              interpolation=_quantile_method(method)).to(dtype)


@op
def quantile(x: Any, q: Any, axis: Any = None, method: str = "linear",
             keepdims: bool = False) -> Tensor:
    """The q-th quantiles (q in [0, 1]) along `axis`."""
    return _quantile(x, q, axis, method, keepdims, nan=False)


@op
def percentile(x: Any, q: Any, axis: Any = None, method: str = "linear",
               keepdims: bool = False) -> Tensor:
    """The q-th percentiles (q in [0, 100]) along `axis`."""
    return _quantile(x, to_tensor(q, torch.float64) / 100, axis, method, keepdims, nan=False)


@op
def median(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Median along `axis` (mean of the two middle values for even counts, as NumPy)."""
    return _quantile(x, 0.5, axis, "linear", keepdims, nan=False)


# ---- NaN-ignoring reductions -----------------------------------------------------------------

@op
def nansum(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Sum treating NaN as 0."""
    x = to_tensor(x)
    if not x.dtype.is_floating_point:
        return sum(x, axis, keepdims)
    return _reduce(torch.nansum, x, axis, keepdims)


@op
def nanprod(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Product treating NaN as 1."""
    x = to_tensor(x)
    if x.dtype.is_floating_point:
        x = torch.where(torch.isnan(x), torch.ones_like(x), x)
    return prod(x, axis, keepdims)


@op
def nanmean(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Mean of the non-NaN elements."""
    x = to_tensor(x)
    if not x.dtype.is_floating_point:
        return mean(x, axis, keepdims)
    return _reduce(torch.nanmean, x, axis, keepdims)


@op
def nanvar(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Population variance of the non-NaN elements."""
    x = floating(to_tensor(x))
    centre = _reduce(torch.nanmean, x, axis, True)
    return _reduce(torch.nanmean, (x - centre) ** 2, axis, keepdims)


@op
def nanstd(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Population standard deviation of the non-NaN elements."""
    return torch.sqrt(nanvar(x, axis, keepdims))


def _nan_filled(x: Tensor, value: float) -> Tensor:
    if not x.dtype.is_floating_point:
        return x
    return torch.where(torch.isnan(x), torch.full_like(x, value), x)


def _all_nan(x: Tensor, axis: Any, keepdims: bool) -> Tensor | None:
    if not x.dtype.is_floating_point:
        return None
    nan_mask = torch.isnan(x)
    return all(nan_mask, axis, keepdims)


@op
def nanmax(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Maximum ignoring NaN (NaN where a slice is all NaN)."""
    x = to_tensor(x)
    out = _reduce(torch.amax, _nan_filled(x, -_math.inf), axis, keepdims)
    empty = _all_nan(x, axis, keepdims)
    return out if empty is None else torch.where(empty, torch.full_like(out, _math.nan), out)


@op
def nanmin(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Minimum ignoring NaN (NaN where a slice is all NaN)."""
    x = to_tensor(x)
    out = _reduce(torch.amin, _nan_filled(x, _math.inf), axis, keepdims)
    empty = _all_nan(x, axis, keepdims)
    return out if empty is None else torch.where(empty, torch.full_like(out, _math.nan), out)


@op
def nanargmax(x: Any, axis: int | None = None, keepdims: bool = False) -> Tensor:
    """Index of the maximum ignoring NaN."""
    return argmax(_nan_filled(to_tensor(x), -_math.inf), axis, keepdims)


@op
def nanargmin(x: Any, axis: int | None = None, keepdims: bool = False) -> Tensor:
    """Index of the minimum ignoring NaN."""
    return argmin(_nan_filled(to_tensor(x), _math.inf), axis, keepdims)


@op
def nancumsum(x: Any, axis: int | None = None, dtype: Any = None) -> Tensor:
    """Cumulative sum treating NaN as 0."""
    return cumsum(_nan_filled(to_tensor(x), 0.0), axis, dtype)


@op
def nancumprod(x: Any, axis: int | None = None, dtype: Any = None) -> Tensor:
    """Cumulative product treating NaN as 1."""
    return cumprod(_nan_filled(to_tensor(x), 1.0), axis, dtype)


@op
def nanmedian(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Median of the non-NaN elements."""
    return _quantile(x, 0.5, axis, "linear", keepdims, nan=True)


@op
def nanquantile(x: Any, q: Any, axis: Any = None, method: str = "linear",
                keepdims: bool = False) -> Tensor:
    """Quantiles of the non-NaN elements."""
    return _quantile(x, q, axis, method, keepdims, nan=True)


@op
def nanpercentile(x: Any, q: Any, axis: Any = None, method: str = "linear",
                  keepdims: bool = False) -> Tensor:
    """Percentiles of the non-NaN elements."""
    return _quantile(x, to_tensor(q, torch.float64) / 100, axis, method, keepdims, nan=True)


# ---- creation --------------------------------------------------------------------------------

def _shape(shape: Any) -> tuple[int, ...]:
    if isinstance(shape, int):
        return (shape,)
    if isinstance(shape, Tensor):
        return tuple(int(s) for s in shape.tolist())
    return tuple(int(s) for s in shape)


@op
def zeros(shape: Any, dtype: Any = None) -> Tensor:
    """A tensor of zeros (floatx unless `dtype`)."""
    return torch.zeros(_shape(shape), dtype=_dtype_or(dtype, _floatx()))


@op
def ones(shape: Any, dtype: Any = None) -> Tensor:
    """A tensor of ones (floatx unless `dtype`)."""
    return torch.ones(_shape(shape), dtype=_dtype_or(dtype, _floatx()))


@op
def empty(shape: Any, dtype: Any = None) -> Tensor:
    """An uninitialised tensor (floatx unless `dtype`)."""
    return torch.empty(_shape(shape), dtype=_dtype_or(dtype, _floatx()))


@op
def full(shape: Any, fill_value: Any, dtype: Any = None) -> Tensor:
    """A tensor filled with `fill_value` (floatx unless `dtype`, as in Keras)."""
    value = to_tensor(fill_value)
    target = _dtype_or(dtype, _floatx())
    return value.to(target).expand(_shape(shape)).clone()


def _like(x: Any, dtype: Any) -> Tensor:
    x = to_tensor(x)
    return x, _dtype_or(dtype, x.dtype)


@op
def zeros_like(x: Any, dtype: Any = None) -> Tensor:
    """Zeros of `x`'s shape (and dtype unless given)."""
    x, target = _like(x, dtype)
    return torch.zeros_like(x, dtype=target)


@op
def ones_like(x: Any, dtype: Any = None) -> Tensor:
    """Ones of `x`'s shape (and dtype unless given)."""
    x, target = _like(x, dtype)
    return torch.ones_like(x, dtype=target)


@op
def empty_like(x: Any, dtype: Any = None) -> Tensor:
    """An uninitialised tensor of `x`'s shape (and dtype unless given)."""
    x, target = _like(x, dtype)
    return torch.empty_like(x, dtype=target)


@op
def full_like(x: Any, fill_value: Any, dtype: Any = None) -> Tensor:
    """`fill_value` in `x`'s shape (and dtype unless given)."""
    x, target = _like(x, dtype)
    return to_tensor(fill_value, target, x.device).expand(x.shape).clone()


@op
def array(x: Any, dtype: Any = None) -> Tensor:
    """A tensor from array-like data."""
    return to_tensor(x, dtype)


@op
def arange(start: Any, stop: Any = None, step: Any = None, dtype: Any = None) -> Tensor:
    """Evenly spaced values in [start, stop); int32 for integer arguments, floatx for floats."""
    if stop is None:
        start, stop = 0, start
    if step is None:
        step = 1
    values = [start, stop, step]
    if dtype is None:
        dtype = result_dtype(*[v if isinstance(v, (int, float)) else to_tensor(v) for v in values])
        if dtype == torch.bool:
            dtype = _INT32
    values = [v.item() if isinstance(v, Tensor) else v for v in values]
    return torch.arange(*values, dtype=standardize_dtype(dtype))


@op
def linspace(start: Any, stop: Any, num: int = 50, endpoint: bool = True, retstep: bool = False,
             dtype: Any = None, axis: int = 0) -> Any:
    """`num` evenly spaced samples over [start, stop] (or [start, stop) without `endpoint`)."""
    target = _dtype_or(dtype, _floatx())
    start_t = to_tensor(start, torch.float64)
    stop_t = to_tensor(stop, torch.float64)
    divisor = (num - 1) if endpoint else num
    step = (stop_t - start_t) / builtins.max(divisor, 1)
    steps = torch.arange(num, dtype=torch.float64).reshape((-1,) + (1,) * start_t.ndim)
    samples = start_t + steps * step
    if endpoint and num > 1:
        samples[-1] = stop_t
    samples = torch.movedim(samples, 0, axis) if samples.ndim > 1 else samples
    if not target.is_floating_point:
        samples = torch.floor(samples)
    samples = samples.to(target)
    if retstep:
        return samples, step.to(target) if target.is_floating_point else step
    return samples


@op
def logspace(start: Any, stop: Any, num: int = 50, endpoint: bool = True, base: float = 10,
             dtype: Any = None, axis: int = 0) -> Tensor:
    """`base ** linspace(start, stop)`."""
    exponents = linspace(start, stop, num, endpoint, dtype=torch.float64, axis=axis)
    return (float(base) ** exponents).to(_dtype_or(dtype, _floatx()))


@op
def geomspace(start: Any, stop: Any, num: int = 50, endpoint: bool = True, dtype: Any = None,
              axis: int = 0) -> Tensor:
    """Samples evenly spaced on a log scale from `start` to `stop`."""
    start_t, stop_t = to_tensor(start, torch.float64), to_tensor(stop, torch.float64)
    sign_ = torch.sign(start_t)
    exponents = linspace(torch.log10(start_t * sign_), torch.log10(stop_t * sign_), num,
                         endpoint, dtype=torch.float64, axis=axis)
    samples = sign_ * 10.0 ** exponents
    if num > 0:
        index = [builtins.slice(None)] * samples.ndim
        index[axis] = 0
        samples[tuple(index)] = start_t
        if endpoint and num > 1:
            index[axis] = -1
            samples[tuple(index)] = stop_t
    return samples.to(_dtype_or(dtype, _floatx()))


@op
def eye(N: int, M: int | None = None, k: int = 0, dtype: Any = None) -> Tensor:
    """A 2-D tensor with ones on the k-th diagonal."""
    M = N if M is None else M
    return torch.ones(N, M, dtype=torch.bool).triu(k).tril(k).to(_dtype_or(dtype, _floatx()))


@op
def identity(n: int, dtype: Any = None) -> Tensor:
    """The n x n identity matrix."""
    return eye(n, dtype=dtype)


@op
def tri(N: int, M: int | None = None, k: int = 0, dtype: Any = None) -> Tensor:
    """Ones at and below the k-th diagonal."""
    M = N if M is None else M
    return torch.ones(N, M, dtype=torch.bool).tril(k).to(_dtype_or(dtype, _floatx()))


def _window(name: str, torch_fn: Callable) -> Callable:
    def function(x: int) -> Tensor:
        n = int(x.item() if isinstance(x, Tensor) else x)
        return torch_fn(n, periodic=False, dtype=torch.float64).to(_floatx())

    function.__name__ = function.__qualname__ = name
    function.__doc__ = f"The {name.capitalize()} window of `x` points (symmetric, as NumPy)."
    return op(function)


bartlett = _window("bartlett", torch.bartlett_window)
blackman = _window("blackman", torch.blackman_window)
hamming = _window("hamming", torch.hamming_window)
hanning = _window("hanning", torch.hann_window)


@op
def kaiser(x: int, beta: float) -> Tensor:
    """The Kaiser window of `x` points with shape parameter `beta` (symmetric, as NumPy)."""
    n = int(x.item() if isinstance(x, Tensor) else x)
    return torch.kaiser_window(n, periodic=False, beta=float(beta),
                               dtype=torch.float64).to(_floatx())


# ---- shape and indexing ----------------------------------------------------------------------

@op
def reshape(x: Any, newshape: Any) -> Tensor:
    """`x` with shape `newshape` (one -1 allowed). A None (a symbolic model's free batch axis,
    `ops.shape(x)[0]`) is -1, or keeps `x`'s size on that axis when -1 is already used."""
    x = to_tensor(x)
    if isinstance(newshape, int):
        newshape = (newshape,)
    inferred = -1 in newshape
    return torch.reshape(x, tuple(
        (x.shape[i] if inferred else -1) if s is None else s for i, s in enumerate(newshape)))


@op
def ravel(x: Any) -> Tensor:
    """`x` flattened to 1-D."""
    return torch.ravel(to_tensor(x))


@op
def expand_dims(x: Any, axis: Any) -> Tensor:
    """`x` with a new axis of size 1 at `axis` (several when a tuple)."""
    x = to_tensor(x)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    rank = x.ndim + len(axes)
    for a in sorted(a % rank for a in axes):
        x = x.unsqueeze(a)
    return x


@op
def squeeze(x: Any, axis: Any = None) -> Tensor:
    """`x` without the size-1 axes (only those in `axis` when given)."""
    x = to_tensor(x)
    if axis is None:
        return torch.squeeze(x)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    for a in axes:
        if x.shape[a] != 1:
            raise ValueError(f"Cannot squeeze axis {a} of a tensor of shape {tuple(x.shape)}: "
                             "its size is not 1.")
    return torch.squeeze(x, dim=axes)


@op
def transpose(x: Any, axes: Sequence[int] | None = None) -> Tensor:
    """`x` with its axes permuted (reversed when `axes` is None)."""
    x = to_tensor(x)
    if axes is None:
        axes = tuple(reversed(range(x.ndim)))
    return x.permute(tuple(axes))


@op
def swapaxes(x: Any, axis1: int, axis2: int) -> Tensor:
    """`x` with two axes exchanged."""
    return torch.swapaxes(to_tensor(x), axis1, axis2)


@op
def moveaxis(x: Any, source: Any, destination: Any) -> Tensor:
    """`x` with axes moved from `source` to `destination`."""
    return torch.movedim(to_tensor(x), source, destination)


@op
def broadcast_to(x: Any, shape: Any) -> Tensor:
    """`x` broadcast to `shape`."""
    return torch.broadcast_to(to_tensor(x), _shape(shape)).clone()


def _tensors(xs: Sequence[Any]) -> list[Tensor]:
    return promote(*xs)


@op
def concatenate(xs: Sequence[Any], axis: int | None = 0) -> Tensor:
    """Joins tensors along an existing axis (flattened first when `axis` is None)."""
    tensors = _tensors(xs)
    if axis is None:
        return torch.cat([t.flatten() for t in tensors])
    return torch.cat(tensors, dim=axis)


@op
def append(x1: Any, x2: Any, axis: int | None = None) -> Tensor:
    """`x2` appended to `x1` along `axis` (both flattened when None)."""
    return concatenate([x1, x2], axis=axis)


@op
def stack(x: Sequence[Any], axis: int = 0) -> Tensor:
    """Joins tensors along a new axis."""
    return torch.stack(_tensors(x), dim=axis)


@op
def hstack(xs: Sequence[Any]) -> Tensor:
    """Stacks along the second axis (the first for 1-D inputs)."""
    return torch.hstack(_tensors(xs))


@op
def vstack(xs: Sequence[Any]) -> Tensor:
    """Stacks along the first axis (1-D inputs become rows)."""
    return torch.vstack(_tensors(xs))


@op
def dstack(xs: Sequence[Any]) -> Tensor:
    """Stacks along the third axis."""
    return torch.dstack(_tensors(xs))


def _split(x: Tensor, indices_or_sections: Any, axis: int, *, strict: bool) -> list[Tensor]:
    if isinstance(indices_or_sections, int):
        if strict and x.shape[axis] % indices_or_sections:
            raise ValueError(
                f"`split` cannot divide axis {axis} of size {x.shape[axis]} into "
                f"{indices_or_sections} equal sections. Use array_split for unequal sections.")
        return list(torch.tensor_split(x, indices_or_sections, dim=axis))
    return list(torch.tensor_split(x, [int(i) for i in indices_or_sections], dim=axis))


@op
def split(x: Any, indices_or_sections: Any, axis: int = 0) -> list[Tensor]:
    """Equal sections (an int) or pieces cut at the given indices along `axis`."""
    return _split(to_tensor(x), indices_or_sections, axis, strict=True)


@op
def array_split(x: Any, indices_or_sections: Any, axis: int = 0) -> list[Tensor]:
    """Like `split`, allowing sections of unequal size."""
    return _split(to_tensor(x), indices_or_sections, axis, strict=False)


@op
def hsplit(x: Any, indices_or_sections: Any) -> list[Tensor]:
    """Splits along the second axis (the first for 1-D)."""
    x = to_tensor(x)
    return _split(x, indices_or_sections, 1 if x.ndim > 1 else 0, strict=True)


@op
def vsplit(x: Any, indices_or_sections: Any) -> list[Tensor]:
    """Splits along the first axis."""
    return _split(to_tensor(x), indices_or_sections, 0, strict=True)


@op
def dsplit(x: Any, indices_or_sections: Any) -> list[Tensor]:
    """Splits along the third axis."""
    return _split(to_tensor(x), indices_or_sections, 2, strict=True)


@op
def flip(x: Any, axis: Any = None) -> Tensor:
    """Reverses the order of elements along `axis` (all axes when None)."""
    x = to_tensor(x)
    axes = tuple(range(x.ndim)) if axis is None else ((axis,) if isinstance(axis, int) else
                                                      tuple(axis))
    return torch.flip(x, axes)


@op
def fliplr(x: Any) -> Tensor:
    """Reverses the second axis."""
    return torch.fliplr(to_tensor(x))


@op
def flipud(x: Any) -> Tensor:
    """Reverses the first axis."""
    return torch.flipud(to_tensor(x))


@op
def roll(x: Any, shift: Any, axis: Any = None) -> Tensor:
    """Rolls elements along `axis` by `shift` (of the flattened tensor when None)."""
    x = to_tensor(x)
    if axis is None:
        return torch.roll(x.flatten(), shift).reshape(x.shape)
    return torch.roll(x, shift, axis)


@op
def rot90(array: Any, k: int = 1, axes: Sequence[int] = (0, 1)) -> Tensor:
    """Rotates by 90 degrees `k` times in the plane of `axes`."""
    return torch.rot90(to_tensor(array), k, list(axes))


@op
def repeat(x: Any, repeats: Any, axis: int | None = None) -> Tensor:
    """Repeats each element `repeats` times along `axis` (flattened when None)."""
    x = to_tensor(x)
    if isinstance(repeats, (list, tuple, np.ndarray, Tensor)):
        repeats = to_tensor(repeats, device=x.device).long()
    return torch.repeat_interleave(x, repeats, dim=axis)


@op
def tile(x: Any, repeats: Any) -> Tensor:
    """`x` repeated `repeats` times along each axis."""
    repeats = (repeats,) if isinstance(repeats, int) else tuple(int(r) for r in repeats)
    return torch.tile(to_tensor(x), repeats)


@op
def pad(x: Any, pad_width: Any, mode: str = "constant", constant_values: Any = None) -> Tensor:
    """Pads `x` by `pad_width` ((before, after) per axis, or one pair or int for all axes).

    mode: 'constant', 'edge', 'reflect', 'symmetric', 'wrap' (NumPy's names).
    """
    x = to_tensor(x)
    widths = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (x.ndim, 2)).tolist()
    if constant_values is not None and mode != "constant":
        raise ValueError(f"`constant_values` applies only to mode='constant'. Received: "
                         f"mode={mode!r}, constant_values={constant_values!r}.")
    if mode == "constant":
        flat = [w for pair in reversed(widths) for w in pair]
        return torch.nn.functional.pad(x, flat, value=constant_values or 0)
    modes = {"edge": _pad_edge, "reflect": _pad_reflect, "symmetric": _pad_symmetric,
             "wrap": _pad_wrap}
    if mode not in modes:
        raise ValueError(f"`mode` must be one of 'constant', {', '.join(map(repr, modes))}. "
                         f"Received: mode={mode!r}.")
    for axis, (before, after) in enumerate(widths):
        if before or after:
            x = modes[mode](x, axis, before, after)
    return x


def _gathered(x: Tensor, axis: int, index: Tensor) -> Tensor:
    return torch.index_select(x, axis, index)


def _pad_edge(x: Tensor, axis: int, before: int, after: int) -> Tensor:
    n = x.shape[axis]
    index = torch.clamp(torch.arange(-before, n + after, device=x.device), 0, n - 1)
    return _gathered(x, axis, index)


def _pad_reflect(x: Tensor, axis: int, before: int, after: int) -> Tensor:
    n = x.shape[axis]
    period = 2 * (n - 1) if n > 1 else 1
    index = torch.remainder(torch.arange(-before, n + after, device=x.device), period)
    index = torch.where(index >= n, period - index, index)
    return _gathered(x, axis, index)


def _pad_symmetric(x: Tensor, axis: int, before: int, after: int) -> Tensor:
    n = x.shape[axis]
    index = torch.remainder(torch.arange(-before, n + after, device=x.device), 2 * n)
    index = torch.where(index >= n, 2 * n - 1 - index, index)
    return _gathered(x, axis, index)


def _pad_wrap(x: Tensor, axis: int, before: int, after: int) -> Tensor:
    n = x.shape[axis]
    return _gathered(x, axis, torch.remainder(torch.arange(-before, n + after, device=x.device), n))


@op
def take(x: Any, indices: Any, axis: int | None = None) -> Tensor:
    """Elements of `x` at `indices` along `axis` (of the flattened tensor when None); negative
    indices count from the end."""
    x = to_tensor(x)
    indices = to_tensor(indices, device=x.device).long()
    if axis is None:
        x, axis = x.flatten(), 0
    n = x.shape[axis]
    indices = torch.where(indices < 0, indices + n, indices)
    out = torch.index_select(x, axis, indices.flatten())
    axis = axis % x.ndim
    return out.reshape(x.shape[:axis] + indices.shape + x.shape[axis + 1:])


@op
def take_along_axis(x: Any, indices: Any, axis: int | None = None) -> Tensor:
    """Picks values by matching 1-D slices of `indices` and `x` along `axis`."""
    x = to_tensor(x)
    indices = to_tensor(indices, device=x.device).long()
    if axis is None:
        x, axis = x.flatten(), 0
    indices = torch.where(indices < 0, indices + x.shape[axis], indices)
    shape = list(torch.broadcast_shapes(
        tuple(1 if i == axis % x.ndim else s for i, s in enumerate(x.shape)),
        tuple(1 if i == axis % x.ndim else s for i, s in enumerate(indices.shape))))
    x_shape, index_shape = list(shape), list(shape)
    x_shape[axis], index_shape[axis] = x.shape[axis], indices.shape[axis]
    return torch.gather(x.expand(x_shape), axis, indices.expand(index_shape))


@op
def get_item(x: Any, key: Any) -> Tensor:
    """`x[key]`."""
    return to_tensor(x)[key]


@op
def diagonal(x: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Tensor:
    """The diagonal in the plane of `axis1` and `axis2`, as a last axis."""
    return torch.diagonal(to_tensor(x), offset, axis1, axis2)


@op
def diag(x: Any, k: int = 0) -> Tensor:
    """The k-th diagonal of a matrix, or a matrix with a vector on its k-th diagonal."""
    x = to_tensor(x)
    if x.ndim not in (1, 2):
        raise ValueError(f"`diag` takes a 1-D or 2-D input. Received shape {tuple(x.shape)}.")
    return torch.diag(x, k)


@op
def diagflat(x: Any, k: int = 0) -> Tensor:
    """A matrix with the flattened `x` on its k-th diagonal."""
    return torch.diagflat(to_tensor(x), k)


@op
def trace(x: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Tensor:
    """Sum along the diagonal."""
    x = to_tensor(x)
    return sum(torch.diagonal(x, offset, axis1, axis2), axis=-1)


@op
def tril(x: Any, k: int = 0) -> Tensor:
    """`x` with the elements above the k-th diagonal zeroed."""
    return torch.tril(to_tensor(x), k)


@op
def triu(x: Any, k: int = 0) -> Tensor:
    """`x` with the elements below the k-th diagonal zeroed."""
    return torch.triu(to_tensor(x), k)


@op
def nonzero(x: Any) -> tuple[Tensor, ...]:
    """The indices of non-zero elements, one int32 tensor per axis."""
    return tuple(i.to(_INT32) for i in torch.nonzero(to_tensor(x), as_tuple=True))


@op
def meshgrid(*x: Any, indexing: str = "xy") -> list[Tensor]:
    """Coordinate grids from 1-D coordinate vectors ('xy' Cartesian or 'ij' matrix indexing)."""
    if indexing not in ("xy", "ij"):
        raise ValueError(f"`indexing` must be 'xy' or 'ij'. Received: indexing={indexing!r}.")
    return list(torch.meshgrid(*_tensors(x), indexing=indexing))


@op
def select(condlist: Sequence[Any], choicelist: Sequence[Any], default: Any = 0) -> Tensor:
    """The choice of the first true condition, element-wise; `default` where none holds."""
    if len(condlist) != len(choicelist):
        raise ValueError(f"`condlist` and `choicelist` must have the same length. Received "
                         f"{len(condlist)} and {len(choicelist)}.")
    choices = _tensors(list(choicelist) + [default])
    out = choices[-1]
    for condition, choice in zip(reversed(condlist), reversed(choices[:-1])):
        out = torch.where(to_tensor(condition, device=out.device).bool(), choice, out)
    return out


@op
def searchsorted(sorted_sequence: Any, values: Any, side: str = "left") -> Tensor:
    """Indices where `values` would be inserted to keep the 1-D `sorted_sequence` sorted."""
    if side not in ("left", "right"):
        raise ValueError(f"`side` must be 'left' or 'right'. Received: side={side!r}.")
    a, v = promote(sorted_sequence, values)
    return torch.searchsorted(a, v, side=side).to(_INT32)


@op
def digitize(x: Any, bins: Any) -> Tensor:
    """The index of the bin each value falls in (NumPy's `right=False`)."""
    x, bins = promote(x, bins)
    return torch.bucketize(x, bins, right=True).to(_INT32)


@op
def unravel_index(indices: Any, shape: Sequence[int]) -> tuple[Tensor, ...]:
    """Flat indices as a tuple of coordinate tensors for `shape`."""
    indices = to_tensor(indices)
    return tuple(c.to(indices.dtype) for c in torch.unravel_index(indices.long(), tuple(shape)))


@op
def ndim(x: Any) -> int:
    """The number of axes."""
    return to_tensor(x).ndim


@op
def size(x: Any) -> int:
    """The number of elements."""
    return to_tensor(x).numel()


@op
def view(x: Any, dtype: Any = None) -> Tensor:
    """The same bytes read as `dtype`."""
    x = to_tensor(x)
    return x if dtype is None else x.view(standardize_dtype(dtype))


# ---- sorting and sets ------------------------------------------------------------------------

@op
def sort(x: Any, axis: int | None = -1) -> Tensor:
    """Sorted values along `axis` (of the flattened tensor when None)."""
    x = to_tensor(x)
    if axis is None:
        x, axis = x.flatten(), 0
    return torch.sort(x, dim=axis, stable=True).values


@op
def argsort(x: Any, axis: int | None = -1) -> Tensor:
    """Indices that sort `x` along `axis` (stable), int32."""
    x = to_tensor(x)
    if axis is None:
        x, axis = x.flatten(), 0
    if x.ndim == 0:
        return torch.zeros((), dtype=_INT32)
    return torch.argsort(x, dim=axis, stable=True).to(_INT32)


@op
def argpartition(x: Any, kth: int, axis: int = -1) -> Tensor:
    """Indices that partition `x` around its k-th smallest element along `axis` (a full stable
    sort, which is one valid partition)."""
    return argsort(x, axis)


@op
def unique(x: Any, sorted: bool = True, return_index: bool = False,
           return_inverse: bool = False, return_counts: bool = False, axis: int | None = None,
           size: int | None = None, fill_value: Any = None) -> Any:
    """The sorted unique elements (rows/slices along `axis`), optionally with first indices,
    the inverse mapping and the counts; `size` pads or truncates to a fixed length."""
    x = to_tensor(x)
    values, inverse, counts = torch.unique(x, sorted=True, return_inverse=True,
                                           return_counts=True, dim=axis)
    results = [values]
    if return_index:
        flat_inverse = inverse.flatten()
        positions = torch.arange(flat_inverse.numel(), device=x.device)
        first = torch.full((values.shape[0],), flat_inverse.numel(), dtype=torch.int64,
                           device=x.device)
        first = first.scatter_reduce(0, flat_inverse, positions, reduce="amin")
        results.append(first.to(_INT32))
    if return_inverse:
        results.append(inverse.to(_INT32) if axis is not None else inverse.reshape(
            x.shape).to(_INT32))
    if return_counts:
        results.append(counts.to(_INT32))
    if size is not None:
        results = [_fixed_length(r, size, fill_value if i == 0 else 0)
                   if not (return_inverse and i == (2 if return_index else 1)) else r
                   for i, r in enumerate(results)]
    return results[0] if len(results) == 1 else tuple(results)


def _fixed_length(x: Tensor, size: int, fill_value: Any) -> Tensor:
    if x.shape[0] >= size:
        return x[:size]
    fill = x[0] if fill_value is None and x.shape[0] else (fill_value or 0)
    padding = torch.full((size - x.shape[0],) + tuple(x.shape[1:]), 0, dtype=x.dtype,
                         device=x.device)
    padding[...] = torch.as_tensor(fill, dtype=x.dtype)
    return torch.cat([x, padding])


@op
def isin(x1: Any, x2: Any, assume_unique: bool = False, invert: bool = False) -> Tensor:
    """True where an element of `x1` is in `x2`."""
    a, b = promote(x1, x2)
    return torch.isin(a, b, assume_unique=assume_unique, invert=invert)


@op
def bincount(x: Any, weights: Any = None, minlength: int = 0, sparse: bool = False) -> Tensor:
    """Counts of each non-negative integer (weighted sums with `weights`); a 2-D input counts
    each row."""
    if sparse:
        raise ValueError("`sparse=True` is not supported: Lamina's ops return dense tensors.")
    x = to_tensor(x).long()
    length = builtins.max(minlength, int(x.max()) + 1 if x.numel() else 0)
    w = None if weights is None else to_tensor(weights, device=x.device)
    out_dtype = _INT32 if w is None else (w.dtype if w.dtype.is_floating_point else _INT32)
    if x.ndim == 1:
        return torch.bincount(x, weights=w, minlength=length).to(out_dtype)
    values = torch.ones_like(x, dtype=out_dtype) if w is None else w.to(out_dtype)
    out = torch.zeros(x.shape[0], length, dtype=out_dtype, device=x.device)
    return out.scatter_add(1, x, values)


@op
def histogram(x: Any, bins: int = 10, range: Sequence[float] | None = None) -> tuple[Tensor,
                                                                                     Tensor]:
    """Counts in `bins` equal-width bins over `range` (the data's min and max when None), and the
    bin edges."""
    x = floating(to_tensor(x)).flatten()
    if not isinstance(bins, int) or bins <= 0:
        raise ValueError(f"`bins` must be a positive integer. Received: bins={bins!r}.")
    low, high = (float(x.min()), float(x.max())) if range is None else map(float, range)
    edges = torch.linspace(low, high, bins + 1, dtype=torch.float64, device=x.device)
    inside = (x >= low) & (x <= high)
    index = torch.clamp(torch.bucketize(x.double(), edges, right=True) - 1, 0, bins - 1)
    counts = torch.zeros(bins, dtype=_INT32, device=x.device).index_add(
        0, index[inside], torch.ones(int(inside.sum()), dtype=_INT32, device=x.device))
    return counts, edges.to(x.dtype)


# ---- products --------------------------------------------------------------------------------

@op
def matmul(x1: Any, x2: Any) -> Tensor:
    """Matrix product with NumPy's broadcasting (bools multiply as int32)."""
    a, b = promote(x1, x2)
    if a.dtype == torch.bool:
        a, b = a.to(_INT32), b.to(_INT32)
    if not a.dtype.is_floating_point and not a.is_complex():
        # Integer matmul has no CPU kernel for every width: compute exactly in int64.
        return torch.matmul(a.long(), b.long()).to(a.dtype)
    return torch.matmul(a, b)


@op
def dot(x1: Any, x2: Any) -> Tensor:
    """NumPy's `dot`: scalar multiply, inner product, matrix product, or a sum over the last
    axis of x1 and the second-to-last of x2."""
    a, b = promote(x1, x2)
    if a.ndim == 0 or b.ndim == 0:
        return a * b
    if b.ndim == 1:
        return tensordot(a, b, axes=([-1], [0]))
    return tensordot(a, b, axes=([-1], [-2]))


@op
def vdot(x1: Any, x2: Any) -> Tensor:
    """Dot product of the flattened inputs (the first conjugated)."""
    a, b = promote(x1, x2)
    return torch.sum(torch.conj(a.flatten()) * b.flatten()) if a.is_complex() else \
        sum(a.flatten() * b.flatten())


@op
def inner(x1: Any, x2: Any) -> Tensor:
    """Inner product over the last axes."""
    a, b = promote(x1, x2)
    if a.ndim == 0 or b.ndim == 0:
        return a * b
    return tensordot(a, b, axes=([-1], [-1]))


@op
def outer(x1: Any, x2: Any) -> Tensor:
    """Outer product of the flattened inputs."""
    a, b = promote(x1, x2)
    return a.flatten()[:, None] * b.flatten()[None, :]


@op
def tensordot(x1: Any, x2: Any, axes: Any = 2) -> Tensor:
    """Sum of products over the given axes (an int: the last `axes` of x1 and first of x2)."""
    a, b = promote(x1, x2)
    if isinstance(axes, int):
        dims: Any = axes
    else:
        dims = [[axes[0]] if isinstance(axes[0], int) else list(axes[0]),
                [axes[1]] if isinstance(axes[1], int) else list(axes[1])]
    if not a.dtype.is_floating_point and not a.is_complex():
        return torch.tensordot(a.long(), b.long(), dims=dims).to(a.dtype)
    return torch.tensordot(a, b, dims=dims)


@op
def kron(x1: Any, x2: Any) -> Tensor:
    """Kronecker product."""
    a, b = promote(x1, x2)
    return torch.kron(a, b)


@op
def cross(x1: Any, x2: Any, axisa: int = -1, axisb: int = -1, axisc: int = -1,
          axis: int | None = None) -> Tensor:
    """Cross product of 3-vectors (2-vectors get a zero third component)."""
    a, b = promote(x1, x2)
    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = torch.movedim(a, axisa, -1), torch.movedim(b, axisb, -1)
    if a.shape[-1] == 2 and b.shape[-1] == 2:
        return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]
    if a.shape[-1] == 2:
        a = torch.nn.functional.pad(a, (0, 1))
    if b.shape[-1] == 2:
        b = torch.nn.functional.pad(b, (0, 1))
    a, b = torch.broadcast_tensors(a, b)
    return torch.movedim(torch.linalg.cross(a, b, dim=-1), -1, axisc)


@op
def einsum(subscripts: str, *operands: Any, **kwargs: Any) -> Tensor:
    """Einstein summation, e.g. `einsum('ij,jk->ik', a, b)`."""
    tensors = promote(*operands)
    if tensors and not tensors[0].dtype.is_floating_point and not tensors[0].is_complex():
        dtype = tensors[0].dtype if tensors[0].dtype != torch.bool else _INT32
        return torch.einsum(subscripts, *[t.long() for t in tensors]).to(dtype)
    return torch.einsum(subscripts, *tensors)


@op
def correlate(x1: Any, x2: Any, mode: str = "valid") -> Tensor:
    """Cross-correlation of two 1-D sequences ('valid', 'same' or 'full')."""
    a, b = promote(x1, x2)
    if not a.dtype.is_floating_point:
        a, b = a.to(_floatx()), b.to(_floatx())
    if mode not in ("valid", "same", "full"):
        raise ValueError(f"`mode` must be 'valid', 'same' or 'full'. Received: mode={mode!r}.")
    n, m = a.shape[0], b.shape[0]
    padding = {"valid": 0, "full": m - 1, "same": m // 2}[mode]
    signal = torch.nn.functional.pad(a, (padding, padding + (1 if mode == "same" and m % 2 == 0
                                                              else 0) - (0 if mode != "same"
                                                                          else 0)))
    out = torch.nn.functional.conv1d(signal[None, None], b[None, None])[0, 0]
    if mode == "same":
        out = out[:builtins.max(n, m)]
    return out


@op
def vander(x: Any, N: int | None = None, increasing: bool = False) -> Tensor:
    """Vandermonde matrix: columns are powers of the 1-D `x`."""
    x = to_tensor(x)
    return torch.vander(x, N, increasing=increasing)


@op
def trapezoid(y: Any, x: Any = None, dx: float = 1.0, axis: int = -1) -> Tensor:
    """Integral of `y` along `axis` by the trapezoidal rule."""
    y = floating(to_tensor(y))
    if x is None:
        return torch.trapezoid(y, dx=dx, dim=axis)
    return torch.trapezoid(y, floating(to_tensor(x)).to(y.dtype), dim=axis)


@op
def corrcoef(x: Any) -> Tensor:
    """Pearson correlation coefficients between the rows of `x`."""
    return torch.corrcoef(floating(to_tensor(x)))


@op
def diff(a: Any, n: int = 1, axis: int = -1) -> Tensor:
    """The n-th discrete difference along `axis`."""
    return torch.diff(to_tensor(a), n=n, dim=axis)


@op
def slogdet(x: Any) -> tuple[Tensor, Tensor]:
    """Sign and natural log of the absolute determinant."""
    sign_, logabs = torch.linalg.slogdet(floating(to_tensor(x)))
    return sign_, logabs


def vectorize(pyfunc: Callable, *, excluded: Any = None, signature: str | None = None) -> Callable:
    """A function that applies `pyfunc` to each element (or core slice, per `signature`) of its
    tensor arguments, by `torch.vmap` nested once per broadcast axis."""
    if excluded:
        raise ValueError("`excluded` is not supported: close over fixed arguments instead.")
    core_dims = _parse_signature(signature)

    def vectorized(*args: Any) -> Any:
        tensors = [to_tensor(a) for a in args]
        cores = core_dims or [0] * len(tensors)
        loops = [t.ndim - c for t, c in zip(tensors, cores)]
        shape = torch.broadcast_shapes(*[t.shape[:n] for t, n in zip(tensors, loops)])
        tensors = [t.expand(tuple(shape) + t.shape[n:]) for t, n in zip(tensors, loops)]
        fn = pyfunc
        for _ in shape:
            fn = torch.vmap(fn)
        return fn(*tensors)

    return vectorized


def _parse_signature(signature: str | None) -> list[int] | None:
    if signature is None:
        return None
    inputs = signature.split("->")[0]
    groups = [g.strip().strip("()") for g in inputs.split("),")]
    return [len([d for d in g.split(",") if d.strip()]) for g in groups]


__all__ = public_names(globals(), __name__)
