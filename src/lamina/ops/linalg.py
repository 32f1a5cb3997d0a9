"""Keras's linear-algebra ops (`keras.ops.linalg`) on torch.linalg."""

from __future__ import annotations

from typing import Any, Callable

import torch

from lamina.ops._op import floating, op, promote, public_names, to_tensor

Tensor = torch.Tensor


def _f(x: Any) -> Tensor:
    return floating(to_tensor(x))


@op
def cholesky(x: Any, upper: bool = False) -> Tensor:
    """Cholesky factor of a symmetric positive-definite matrix (lower, or upper if asked)."""
    return torch.linalg.cholesky(_f(x), upper=upper)


@op
def cholesky_inverse(x: Any, upper: bool = False) -> Tensor:
    """Inverse of `A` from its Cholesky factor `x`."""
    return torch.cholesky_inverse(_f(x), upper=upper)


@op
def det(x: Any) -> Tensor:
    """Determinant of (batches of) square matrices."""
    return torch.linalg.det(_f(x))


@op
def eig(x: Any) -> tuple[Tensor, Tensor]:
    """Eigenvalues and right eigenvectors of a general square matrix (complex)."""
    return torch.linalg.eig(_f(x))


@op
def eigh(x: Any) -> tuple[Tensor, Tensor]:
    """Eigenvalues (ascending) and eigenvectors of a symmetric matrix."""
    return torch.linalg.eigh(_f(x))


@op
def inv(x: Any) -> Tensor:
    """Inverse of (batches of) square matrices."""
    return torch.linalg.inv(_f(x))


@op
def lstsq(a: Any, b: Any, rcond: float | None = None) -> Tensor:
    """The least-squares solution `x` of `a @ x = b`."""
    a, b = (floating(t) for t in promote(a, b))
    vector = b.ndim == 1
    solution = torch.linalg.lstsq(a, b[:, None] if vector else b, rcond=rcond,
                                  driver="gelsd").solution
    return solution[:, 0] if vector else solution


@op
def lu_factor(x: Any) -> tuple[Tensor, Tensor]:
    """The packed LU factorization and the (0-based, int32) pivot indices, as SciPy's."""
    lu, pivots = torch.linalg.lu_factor(_f(x))
    return lu, (pivots - 1).to(torch.int32)


@op
def matrix_rank(x: Any, tol: float | None = None) -> Tensor:
    """Rank of a matrix (singular values above `tol`), int32."""
    return torch.linalg.matrix_rank(_f(x), atol=tol).to(torch.int32) if tol is not None else \
        torch.linalg.matrix_rank(_f(x)).to(torch.int32)


@op
def norm(x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Vector norm (1 axis, or the flattened tensor) or matrix norm (2 axes), NumPy's `ord`s."""
    x = _f(x)
    if axis is None:
        if ord is None:
            return torch.linalg.vector_norm(x, 2, keepdim=keepdims)
        axis = tuple(range(x.ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    if len(axes) == 1:
        return torch.linalg.vector_norm(x, 2 if ord is None else ord, dim=axes,
                                        keepdim=keepdims)
    return torch.linalg.matrix_norm(x, "fro" if ord is None else ord, dim=axes,
                                    keepdim=keepdims)


@op
def pinv(x: Any, rcond: float | None = None) -> Tensor:
    """Moore-Penrose pseudo-inverse."""
    return torch.linalg.pinv(_f(x), rtol=rcond)


@op
def qr(x: Any, mode: str = "reduced") -> tuple[Tensor, Tensor]:
    """QR decomposition ('reduced' or 'complete')."""
    if mode not in ("reduced", "complete"):
        raise ValueError(f"`mode` must be 'reduced' or 'complete'. Received: mode={mode!r}.")
    return torch.linalg.qr(_f(x), mode=mode)


@op
def solve(a: Any, b: Any) -> Tensor:
    """The solution `x` of `a @ x = b`."""
    a, b = (floating(t) for t in promote(a, b))
    return torch.linalg.solve(a, b)


@op
def solve_triangular(a: Any, b: Any, lower: bool = False) -> Tensor:
    """The solution of `a @ x = b` for triangular `a`."""
    a, b = (floating(t) for t in promote(a, b))
    vector = b.ndim == a.ndim - 1
    out = torch.linalg.solve_triangular(a, b[..., None] if vector else b, upper=not lower)
    return out[..., 0] if vector else out


@op
def svd(x: Any, full_matrices: bool = True, compute_uv: bool = True) -> Any:
    """Singular value decomposition: (u, s, vh), or s alone without `compute_uv`."""
    x = _f(x)
    if not compute_uv:
        return torch.linalg.svdvals(x)
    return torch.linalg.svd(x, full_matrices=full_matrices)


def jvp(fun: Callable, primals: Any, tangents: Any, has_aux: bool = False) -> Any:
    """Jacobian-vector product: `(fun(*primals), J @ tangents)` (plus aux with `has_aux`)."""
    primals = tuple(to_tensor(p) for p in primals)
    tangents = tuple(to_tensor(t) for t in tangents)
    aux = []

    def main(*args: Tensor) -> Any:
        if not has_aux:
            return fun(*args)
        out, extra = fun(*args)
        aux.append(extra)
        return out

    outputs, product = torch.autograd.functional.jvp(main, primals, tangents)
    return (outputs, product, aux[0]) if has_aux else (outputs, product)


__all__ = public_names(globals(), __name__)
