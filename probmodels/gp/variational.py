"""Whitened inducing-point variational posteriors: the machinery shared by the sparse and classification GPs.

The latent function at ``m`` inducing inputs ``Z`` is written ``u = L v``
with ``L`` the Cholesky factor of ``K(Z, Z)`` and ``v ~ N(0, I)`` a priori;
the variational posterior is ``q(v) = N(mean, scale_tril scale_tril^T)``
(:class:`InducingPosterior`). Everything here is a pure tensor function:

:func:`inducing_cholesky`, :func:`whiten`
    the factor ``L`` and ``A = L^{-1} K(Z, X)`` and ``diag K(X, X)``, the projections every other
    function works with.
:func:`marginals`
    mean and variance (or covariance) of ``f(X)`` under ``q``.
:func:`kl_divergence`
    ``KL(q(v) || N(0, I))``.
:func:`gaussian_expected_log_lik`, :func:`bernoulli_expected_log_lik`
    expected log-likelihoods (closed form; Gauss-Hermite quadrature).
:func:`from_natural`
    mean and Cholesky factor from natural parameters (for natural-gradient steps, Hensman et al. 2013).
:func:`collapsed_bound`
    the Titsias (2009) bound with the optimal ``q`` integrated out.
:func:`init_inducing`
    inducing inputs by k-means++ (seeding plus Lloyd iterations) or a random subset.

References
----------
Titsias, M. (2009). Variational learning of inducing variables in sparse Gaussian processes. AISTATS.
Hensman, J., Fusi, N., Lawrence, N. D. (2013). Gaussian processes for big data. UAI.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping, NamedTuple

import numpy as np
import torch

from ..exceptions import ModelSpecError
from .cpu_blas import solve_lower
from .kernels import Kernel
from .ops import jittered_cholesky

__all__ = [
    "InducingPosterior",
    "Projection",
    "LINKS",
    "INDUCING_INITS",
    "inducing_cholesky",
    "whiten",
    "marginals",
    "kl_divergence",
    "gauss_hermite",
    "gaussian_expected_log_lik",
    "bernoulli_expected_log_lik",
    "predictive_probability",
    "from_natural",
    "collapsed_bound",
    "init_inducing",
]

LINKS = ("logit", "probit")
INDUCING_INITS = ("kmeans++", "random")


class InducingPosterior(NamedTuple):
    """The whitened variational posterior ``q(v) = N(mean, scale_tril scale_tril^T)``.

    Attributes
    ----------
    mean : Tensor
        ``(m,)``.
    scale_tril : Tensor
        Lower-triangular ``(m, m)`` with a positive diagonal.
    """

    mean: torch.Tensor
    scale_tril: torch.Tensor


class Projection(NamedTuple):
    """The inducing-point projection of some inputs ``X``.

    Attributes
    ----------
    chol : Tensor
        Cholesky factor ``L`` of ``K(Z, Z)`` (jitter added only when needed), ``(m, m)``.
    cross : Tensor
        ``A = L^{-1} K(Z, X)``, ``(m, n)``.
    diag : Tensor
        ``diag K(X, X)``, ``(n,)``.
    """

    chol: torch.Tensor
    cross: torch.Tensor
    diag: torch.Tensor


def inducing_cholesky(
    kernel: Kernel, values: Mapping[str, torch.Tensor], Z: torch.Tensor, *, jitter: float = 0.0,
    what: str = "K(Z, Z) of the inducing points",
) -> torch.Tensor:
    """Lower Cholesky factor of ``K(Z, Z) + jitter * mean(diag K(Z, Z)) I``, with further jitter only if that fails."""
    kzz = kernel.matrix(values, Z, Z)
    if jitter:
        scale = jitter * kzz.diagonal(dim1=-2, dim2=-1).mean(-1)
        kzz = kzz + scale[..., None, None] * torch.eye(Z.shape[0], dtype=Z.dtype, device=Z.device)
    return jittered_cholesky(kzz, what=what)[0]


def whiten(
    kernel: Kernel, values: Mapping[str, torch.Tensor], Z: torch.Tensor, X: torch.Tensor, *,
    chol: torch.Tensor | None = None, jitter: float = 0.0, what: str = "K(Z, Z) of the inducing points",
) -> Projection:
    """Project inputs ``X`` on the inducing inputs ``Z``.

    Parameters
    ----------
    kernel, values
        The kernel and its hyperparameter values (unbatched; extra names such as the noise are ignored).
    Z, X
        Inducing inputs ``(m, d)`` and inputs ``(n, d)``.
    chol
        A factor from :func:`inducing_cholesky` already computed for these values.
    jitter
        Added to the diagonal of ``K(Z, Z)``, relative to its mean diagonal (the
        inducing variables become ``f(Z)`` plus independent noise of that
        variance, so every bound stays a valid bound); further jitter is added
        only if the factorisation fails.
    what
        Named in jitter warnings and errors.

    Raises
    ------
    InferenceError
        ``K(Z, Z)`` holds NaN/inf or stays singular with the largest jitter.
    """
    if chol is None:
        chol = inducing_cholesky(kernel, values, Z, jitter=jitter, what=what)
    kzx = kernel.matrix(values, Z, X)
    if torch.is_grad_enabled() and (chol.requires_grad or kzx.requires_grad):
        cross = torch.linalg.solve_triangular(chol, kzx, upper=False)
    else:
        cross = solve_lower(chol, kzx)  # no graph needed: SciPy's BLAS on the CPU
    return Projection(chol, cross, kernel.diag(values, X))


def marginals(q: InducingPosterior, proj: Projection, *, full_cov: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of ``f(X)`` under ``q``: ``A^T mean`` and ``k(x, x) - |A|^2 + |S^T A|^2``.

    With ``full_cov`` the second result is the covariance
    ``K(X, X) - A^T A + A^T S S^T A``; then ``proj.diag`` must be the full
    matrix ``K(X, X)``.
    """
    A = proj.cross
    mean = A.transpose(-1, -2) @ q.mean
    SA = q.scale_tril.transpose(-1, -2) @ A
    if full_cov:
        return mean, proj.diag - A.transpose(-1, -2) @ A + SA.transpose(-1, -2) @ SA
    return mean, (proj.diag - (A * A).sum(-2) + (SA * SA).sum(-2)).clamp_min(0.0)


def kl_divergence(q: InducingPosterior) -> torch.Tensor:
    """``KL(N(mean, S S^T) || N(0, I)) = (tr(S S^T) + |mean|^2 - m - log det(S S^T)) / 2``."""
    S = q.scale_tril
    log_det = 2.0 * torch.log(S.diagonal(dim1=-2, dim2=-1).abs()).sum(-1)
    return 0.5 * ((S * S).sum((-2, -1)) + (q.mean * q.mean).sum(-1) - S.shape[-1] - log_det)


def gauss_hermite(num: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes and weights for ``E[g(z)], z ~ N(0, 1)`` as ``sum(weights * g(nodes))`` (exact for polynomials of degree < 2 num)."""
    nodes, weights = np.polynomial.hermite.hermgauss(num)
    return (
        torch.as_tensor(nodes * math.sqrt(2.0), dtype=like.dtype, device=like.device),
        torch.as_tensor(weights / math.sqrt(math.pi), dtype=like.dtype, device=like.device),
    )


def gaussian_expected_log_lik(y: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """``E_{f ~ N(mean, var)} log N(y | f, noise)`` per point, in closed form."""
    return -0.5 * (torch.log(2.0 * math.pi * noise) + ((y - mean) ** 2 + var) / noise)


def _log_link(link: str, f: torch.Tensor) -> torch.Tensor:
    """``log p(y = 1 | f)``; ``log p(y = 0 | f)`` is the same at ``-f`` (both links are symmetric)."""
    if link == "probit":
        return torch.special.log_ndtr(f)
    return torch.nn.functional.logsigmoid(f)


def bernoulli_expected_log_lik(
    y: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, link: str, quadrature: tuple[torch.Tensor, torch.Tensor]
) -> torch.Tensor:
    """``E_{f ~ N(mean, var)} log p(y | f)`` per point for labels ``y`` in {0, 1}, by Gauss-Hermite quadrature.

    Parameters
    ----------
    quadrature
        Nodes and weights from :func:`gauss_hermite`.
    """
    nodes, weights = quadrature
    sign = 2.0 * y - 1.0
    f = mean.unsqueeze(-1) + var.clamp_min(0.0).sqrt().unsqueeze(-1) * nodes
    return (_log_link(link, sign.unsqueeze(-1) * f) * weights).sum(-1)


def predictive_probability(
    mean: torch.Tensor, var: torch.Tensor, link: str, quadrature: tuple[torch.Tensor, torch.Tensor]
) -> torch.Tensor:
    """``E_{f ~ N(mean, var)} p(y = 1 | f)``: closed form ``Phi(mean / sqrt(1 + var))`` for probit, quadrature for logit."""
    if link == "probit":
        return torch.special.ndtr(mean / torch.sqrt(1.0 + var))
    nodes, weights = quadrature
    f = mean.unsqueeze(-1) + var.clamp_min(0.0).sqrt().unsqueeze(-1) * nodes
    return (torch.sigmoid(f) * weights).sum(-1)


def from_natural(shift: torch.Tensor, precision: torch.Tensor) -> InducingPosterior:
    """Mean and lower Cholesky factor of the covariance of ``N`` with ``precision`` and ``shift = precision mean``."""
    chol_prec, _ = jittered_cholesky(precision, what="the precision of the variational posterior")
    mean = torch.cholesky_solve(shift.unsqueeze(-1), chol_prec).squeeze(-1)
    cov = torch.cholesky_inverse(chol_prec)
    scale_tril, _ = jittered_cholesky(0.5 * (cov + cov.transpose(-1, -2)), what="the covariance of the variational posterior")
    return InducingPosterior(mean, scale_tril)


def collapsed_bound(chunks: Iterable[tuple[Projection, torch.Tensor]], noise: torch.Tensor) -> torch.Tensor:
    """Titsias' collapsed bound ``log N(y | 0, Q + noise I) - tr(K - Q) / (2 noise)`` with ``Q = A^T A``.

    It is the ELBO at the optimal ``q`` and never exceeds the exact log
    marginal likelihood; with the inducing inputs equal to the training
    inputs ``Q = K`` and the two coincide. Cost ``O(n m^2)`` by Woodbury.

    Parameters
    ----------
    chunks
        ``(projection, y)`` for consecutive pieces of the data (one piece is fine),
        all projected on the same inducing inputs.
    noise
        The Gaussian noise variance.
    """
    n, aat, ay, yy, trace = 0, 0.0, 0.0, 0.0, 0.0
    for proj, y in chunks:
        A = proj.cross
        n += y.shape[-1]
        aat = aat + A @ A.transpose(-1, -2)
        ay = ay + A @ y
        yy = yy + (y * y).sum(-1)
        trace = trace + proj.diag.sum(-1) - (A * A).sum((-2, -1))
    eye = torch.eye(ay.shape[-1], dtype=ay.dtype, device=ay.device)
    chol_b, _ = jittered_cholesky(eye + aat / noise, what="I + A A^T / noise of the collapsed bound")
    c = torch.linalg.solve_triangular(chol_b, ay.unsqueeze(-1), upper=False).squeeze(-1) / noise
    log_det = torch.log(chol_b.diagonal(dim1=-2, dim2=-1)).sum(-1) + 0.5 * n * torch.log(noise)
    lml = -0.5 * n * math.log(2.0 * math.pi) - log_det - 0.5 * (yy / noise - (c * c).sum(-1))
    return lml - 0.5 * trace / noise


def init_inducing(
    X: torch.Tensor, num: int, method: str, generator: torch.Generator, *, lloyd_iters: int = 10, max_points: int = 10_000
) -> torch.Tensor:
    """``num`` inducing inputs from the rows of ``X`` (``num <= len(X)``).

    ``"kmeans++"``: k-means++ seeding (each new centre drawn with probability
    proportional to its squared distance to the nearest centre so far)
    followed by ``lloyd_iters`` Lloyd iterations, on a random subset of
    ``max(max_points, num)`` rows when ``X`` is larger; an empty cluster
    keeps its centre. ``"random"``: a random subset of the rows.
    """
    if method not in INDUCING_INITS:
        raise ModelSpecError(f"inducing_init must be one of {INDUCING_INITS}, got {method!r}.")
    n = X.shape[0]
    if method == "random":
        return X[torch.randperm(n, generator=generator, device=X.device)[:num]].clone()
    if n > max(max_points, num):
        X = X[torch.randperm(n, generator=generator, device=X.device)[: max(max_points, num)]]
        n = X.shape[0]
    first = int(torch.randint(n, (1,), generator=generator, device=X.device))
    centres = [X[first]]
    nearest = ((X - X[first]) ** 2).sum(-1)
    for _ in range(1, num):
        total = nearest.sum()
        weights = nearest / total if float(total) > 0 else torch.ones_like(nearest) / n
        index = int(torch.multinomial(weights, 1, generator=generator))
        centres.append(X[index])
        nearest = torch.minimum(nearest, ((X - X[index]) ** 2).sum(-1))
    Z = torch.stack(centres)
    for _ in range(lloyd_iters):
        labels = torch.cdist(X, Z).argmin(-1)
        counts = torch.bincount(labels, minlength=num).to(X.dtype)
        sums = torch.zeros_like(Z).index_add_(0, labels, X)
        Z = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1.0)[:, None], Z)
    return Z
