"""Exact Gaussian-process algebra as pure tensor functions (no Pyro, no GPyTorch).

Everything here is exact dense linear algebra on a Cholesky factor: no
conjugate gradients, no Lanczos, whatever the size. Functions take tensors
with optional leading batch dimensions (one covariance per posterior draw)
and run on the device and in the dtype of their inputs.

Two Cholesky entry points, for two situations:

:func:`jittered_cholesky`
    for fits and predictions: when the factorisation fails it retries with a
    growing jitter on the diagonal, warning each time, and raises
    :class:`~probmodels.exceptions.InferenceError` when even the largest
    jitter fails.
:func:`masked_log_marginal_likelihood`
    for samplers: never raises; a batch member whose covariance is not
    positive definite gets log density ``-inf`` (a rejected, divergent
    proposal).

The gradient of :func:`log_marginal_likelihood` needs the inverse of the
covariance once per evaluation (:func:`cholesky_inverse`); on the CPU the
factorisations and that inverse go through SciPy's LAPACK
(:mod:`probmodels.gp.cpu_blas`).
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import torch

from ..exceptions import InferenceError
from .cpu_blas import cholesky

__all__ = [
    "CholeskyJitterWarning",
    "GPFactor",
    "cholesky_inverse",
    "JITTERS",
    "jittered_cholesky",
    "factorize",
    "log_marginal_likelihood",
    "masked_log_marginal_likelihood",
    "predictive_moments",
]

JITTERS = (1e-10, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4)


class CholeskyJitterWarning(UserWarning):
    """A covariance matrix needed jitter on its diagonal before its Cholesky factorisation succeeded."""


class GPFactor(NamedTuple):
    """A factorised GP training covariance.

    Attributes
    ----------
    chol : Tensor
        Lower Cholesky factor ``L`` of ``K + noise I (+ jitter I)``, ``(..., n, n)``.
    alpha : Tensor
        ``(K + noise I)^{-1} y``, ``(..., n)``.
    jitter : float
        The jitter that was added (relative to the mean diagonal times that mean; 0 when none was needed).
    """

    chol: torch.Tensor
    alpha: torch.Tensor
    jitter: float


def jittered_cholesky(cov: torch.Tensor, *, what: str = "the kernel matrix") -> tuple[torch.Tensor, float]:
    """Lower Cholesky factor of ``cov`` (``(..., n, n)``), adding jitter only when needed.

    The jitter tried grows through :data:`JITTERS`, each relative to the mean
    of the diagonal; every retry emits a :class:`CholeskyJitterWarning`. The
    added jitter is a constant, so gradients flow through ``cov`` unchanged.

    Returns
    -------
    chol, jitter
        The factor and the absolute jitter added (0.0 when none).

    Raises
    ------
    InferenceError
        ``cov`` holds NaN/inf, or is not positive definite even with the largest jitter.
    """
    # One reduction pass: a sum is finite exactly when no entry is NaN/inf (barring overflow, which the exact check rules out).
    if not bool(torch.isfinite(cov.sum())) and not bool(torch.isfinite(cov).all()):
        raise InferenceError(
            f"{what} contains NaN or inf values; the hyperparameters are most likely outside a usable range "
            "(check for a lengthscale or outputscale that overflowed)."
        )
    chol, failed = cholesky(cov)
    if not failed:
        return chol, 0.0
    scale = float(cov.detach().diagonal(dim1=-2, dim2=-1).mean().abs().clamp_min(1e-300))
    eye = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)
    for relative in JITTERS:
        jitter = relative * scale
        warnings.warn(
            f"the Cholesky factorisation of {what} failed; retrying with jitter {jitter:.3g} "
            f"({relative:.0e} of the mean diagonal) added. Common causes: duplicate inputs with (near) zero noise, "
            "or a very long lengthscale.",
            CholeskyJitterWarning,
            stacklevel=3,
        )
        chol, failed = cholesky(cov + jitter * eye)
        if not failed:
            return chol, jitter
    raise InferenceError(
        f"{what} ({cov.shape[-1]} x {cov.shape[-1]}) is not positive definite even with jitter {JITTERS[-1]:.0e} of "
        "its mean diagonal; raise the noise (or its lower bound), remove duplicate inputs, or shorten the lengthscale."
    )


def factorize(cov: torch.Tensor, y: torch.Tensor, *, what: str = "the kernel matrix") -> GPFactor:
    """Cholesky factor of ``cov`` (with jitter escalation) and ``alpha = cov^{-1} y``."""
    chol, jitter = jittered_cholesky(cov, what=what)
    alpha = torch.cholesky_solve(y.unsqueeze(-1), chol).squeeze(-1)
    return GPFactor(chol, alpha, jitter)


def cholesky_inverse(chol: torch.Tensor) -> torch.Tensor:
    """``(L L^T)^{-1}`` from a lower Cholesky factor ``L`` ``(..., n, n)`` whose upper triangle is zero.

    Same values as :func:`torch.cholesky_inverse`; on the CPU in float32 and
    float64 it calls LAPACK's ``potri`` through SciPy, which with the
    OpenBLAS that SciPy ships is markedly faster than the routine PyTorch's
    CPU builds link, and fills the other triangle with one pass. The result
    is a fresh contiguous tensor the caller may overwrite.
    """
    if chol.device.type != "cpu" or chol.dtype not in (torch.float32, torch.float64) or chol.requires_grad:
        return torch.cholesky_inverse(chol).contiguous()
    from scipy.linalg import lapack

    potri = lapack.dpotri if chol.dtype == torch.float64 else lapack.spotri
    n = chol.shape[-1]
    flat = chol.reshape(-1, n, n)
    out = torch.empty_like(flat, memory_format=torch.contiguous_format)
    for member, factor in zip(out, flat):
        # A Fortran-ordered copy of L (lower), or of L^T (upper) when L is row-major: potri works in place on it.
        array = factor.numpy()
        if array.flags.f_contiguous:
            work, lower = array.copy(order="F"), 1
        else:
            work, lower = array.T.copy(order="F"), 0
        inverse, info = potri(work, lower=lower, overwrite_c=1)
        if info != 0:
            return torch.cholesky_inverse(chol).contiguous()
        # One triangle holds the inverse, the other zeros: add the transpose, then halve the doubled diagonal.
        half = torch.from_numpy(inverse)
        torch.add(half, half.mT, out=member)
        member.diagonal().mul_(0.5)
    return out.reshape(chol.shape)


def _lml_from_factor(chol: torch.Tensor, alpha: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    n = chol.shape[-1]
    fit = (y * alpha).sum(-1)
    log_det = torch.log(chol.diagonal(dim1=-2, dim2=-1)).sum(-1)
    return -0.5 * fit - log_det - 0.5 * n * math.log(2.0 * math.pi)


class _ExactLML(torch.autograd.Function):
    """``log N(y | 0, cov)`` from a given Cholesky factor, with the classic gradient
    ``d/dcov = (alpha alpha^T - cov^{-1}) / 2`` (one ``cholesky_inverse`` instead of
    differentiating through the factorisation)."""

    @staticmethod
    def forward(ctx, cov: torch.Tensor, y: torch.Tensor, chol: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(chol, alpha)
        return _lml_from_factor(chol, alpha, y)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        chol, alpha = ctx.saved_tensors
        grad_cov = grad_y = None
        g = grad[..., None, None]
        if ctx.needs_input_grad[0]:
            # In place on the fresh inverse: (g / 2) (alpha alpha^T - cov^{-1}), the outer product as a rank-one update.
            n = chol.shape[-1]
            grad_cov = cholesky_inverse(chol).mul_(-0.5 * g)
            half = (0.5 * grad).unsqueeze(-1) * alpha
            grad_cov.view(-1, n, n).baddbmm_(half.reshape(-1, n, 1), alpha.reshape(-1, 1, n))
        if ctx.needs_input_grad[1]:
            grad_y = -grad.unsqueeze(-1) * alpha
        return grad_cov, grad_y, None, None


def log_marginal_likelihood(cov: torch.Tensor, y: torch.Tensor, *, what: str = "the kernel matrix") -> tuple[torch.Tensor, GPFactor]:
    """Exact ``log N(y | 0, cov)`` and the factor it used.

    Parameters
    ----------
    cov
        Covariance of the observations (kernel plus noise), ``(..., n, n)``.
    y
        Observations, ``(..., n)`` (broadcast against ``cov``'s batch).
    what
        Named in warnings and errors.

    Returns
    -------
    lml, factor
        Log marginal likelihood ``(...)``, differentiable in ``cov`` and ``y``,
        and the :class:`GPFactor` (detached).
    """
    factor = factorize(cov.detach(), y.detach(), what=what)
    lml = _ExactLML.apply(cov, y.expand(cov.shape[:-1]), factor.chol, factor.alpha)
    return lml, factor


def masked_log_marginal_likelihood(cov: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``log N(y | 0, cov)`` per batch member, ``-inf`` where ``cov`` is not positive definite.

    Never raises and never warns, so a sampler can call it at any proposal;
    the gradient of a failed member is zero. Works under ``torch.func.vmap``
    and graph tracing.
    """
    _, info = torch.linalg.cholesky_ex(cov.detach())
    failed = (info > 0) | ~torch.isfinite(cov).all(-1).all(-1)
    eye = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)
    safe = torch.where(failed[..., None, None], eye, torch.nan_to_num(cov))
    chol = torch.linalg.cholesky_ex(safe)[0]
    alpha = torch.cholesky_solve(y.expand(safe.shape[:-1]).unsqueeze(-1), chol).squeeze(-1)
    lml = _lml_from_factor(chol, alpha, y)
    return torch.where(failed, torch.full_like(lml, -math.inf), lml)


def predictive_moments(
    factor: GPFactor, cross: torch.Tensor, test: torch.Tensor, *, full_cov: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and variance (or covariance) of the latent function at test inputs.

    Parameters
    ----------
    factor
        The training factor from :func:`factorize`.
    cross
        ``k(X_train, X_test)``, ``(..., n, m)``.
    test
        ``k(X_test, X_test)``: its diagonal ``(..., m)``, or the full matrix
        ``(..., m, m)`` when ``full_cov``.
    full_cov
        Return the ``(..., m, m)`` covariance instead of the variances.

    Returns
    -------
    mean, var_or_cov
        ``(..., m)`` and ``(..., m)`` (clamped at 0) or ``(..., m, m)``.
    """
    mean = (cross * factor.alpha.unsqueeze(-1)).sum(-2)
    v = torch.linalg.solve_triangular(factor.chol, cross, upper=False)
    if full_cov:
        return mean, test - v.transpose(-1, -2) @ v
    return mean, (test - (v * v).sum(-2)).clamp_min(0.0)
