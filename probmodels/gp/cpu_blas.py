"""Cholesky factors, triangular solves and Gram matrices through SciPy's LAPACK and BLAS for CPU tensors.

Exact GPs spend their time in Cholesky factorisations, sparse GPs in
``L^{-1} B`` and ``A A^T`` with ``m x b`` operands. On the CPU, the
OpenBLAS that SciPy ships runs these faster than the routines PyTorch's
CPU wheels call (measured with one thread on the benchmark machine, an AMD
EPYC): ``?potrf`` by 10-60 %, ``?trsm`` (without PyTorch's copy into
column-major order) and ``?syrk`` (one triangle of ``A A^T``, half the work
of a general product) by two to three times. The functions take operands
in whatever memory order they come (row-major arrays go to BLAS as the
transposed problem, without copies) and return new tensors; other devices
and dtypes, batched operands, and inputs that need a gradient (for
:func:`cholesky`) use PyTorch's routines. None records an autograd graph:
they are building blocks for hand-written backward passes and for code
that needs no gradient.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["cholesky", "solve_lower", "gram"]


def _blas_ready(*tensors: torch.Tensor) -> bool:
    return all(t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64) and t.dim() == 2 for t in tensors)


def _fortran(t: torch.Tensor) -> tuple[np.ndarray, bool]:
    """A Fortran-ordered array holding ``t`` (``False``) or ``t^T`` (``True``), a view when the memory allows."""
    array = t.detach().numpy()
    if array.flags.f_contiguous:
        return array, False
    if array.flags.c_contiguous:
        return array.T, True
    return np.asfortranarray(array), False


def cholesky(cov: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """Lower Cholesky factor of ``cov`` (``(..., n, n)``, its lower triangle is read) and whether it failed.

    A 2-D CPU ``cov`` that needs no gradient goes to LAPACK's ``?potrf``
    through SciPy (faster than PyTorch's CPU routine for every size we
    measured, most for small ``n``); anything else to
    :func:`torch.linalg.cholesky_ex`. The factor's upper triangle is zero.
    """
    if not _blas_ready(cov) or (torch.is_grad_enabled() and cov.requires_grad):
        chol, info = torch.linalg.cholesky_ex(cov)
        return chol, bool((info > 0).any())
    from scipy.linalg import lapack

    potrf = lapack.dpotrf if cov.dtype == torch.float64 else lapack.spotrf
    a, a_transposed = _fortran(cov)
    # The lower triangle of cov is the upper one of cov^T: factor U^T U and return L = U^T (then row-major).
    factor, info = potrf(a, lower=int(not a_transposed), clean=1, overwrite_a=0)
    chol = torch.from_numpy(factor.T if a_transposed else factor)
    return chol, info != 0


def solve_lower(L: torch.Tensor, B: torch.Tensor, *, transpose: bool = False) -> torch.Tensor:
    """``L^{-1} B``, or ``L^{-T} B`` with ``transpose``, for lower-triangular ``L`` ``(m, m)`` and ``B`` ``(m, k)``."""
    if not (_blas_ready(L, B) and L.dtype == B.dtype):
        with torch.no_grad():
            return torch.linalg.solve_triangular(L.mT if transpose else L, B, upper=transpose)
    from scipy.linalg import blas

    trsm = blas.dtrsm if L.dtype == torch.float64 else blas.strsm
    a, a_transposed = _fortran(L)  # a holds L (lower) or L^T (upper)
    b, b_transposed = _fortran(B)
    if not b_transposed:
        # op(a) X = B with op(a) = L or L^T as asked.
        out = trsm(1.0, a, b, side=0, lower=int(not a_transposed), trans_a=int(a_transposed != transpose))
        return torch.from_numpy(out)
    # b holds B^T: solve X^T op(a) = B^T with op(a) the transpose of the matrix asked for.
    out = trsm(1.0, a, b, side=1, lower=int(not a_transposed), trans_a=int(a_transposed == transpose))
    return torch.from_numpy(out).mT


def gram(A: torch.Tensor) -> torch.Tensor:
    """``A A^T`` for ``A`` ``(m, k)``, exactly symmetric."""
    if not _blas_ready(A):
        with torch.no_grad():
            return A @ A.mT
    from scipy.linalg import blas

    syrk = blas.dsyrk if A.dtype == torch.float64 else blas.ssyrk
    a, a_transposed = _fortran(A)
    upper = torch.from_numpy(syrk(1.0, a, trans=int(a_transposed), lower=0)).triu()
    return upper + upper.triu(1).mT
