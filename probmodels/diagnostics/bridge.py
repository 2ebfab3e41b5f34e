"""Iterative bridge sampling with a normal proposal, in log space.

The estimator of Meng and Wong (1996) as the bridgesampling R package
computes it (Gronau et al. 2017, method ``"normal"``): a multivariate normal
``g`` is fitted to the first half of each chain, and the evidence ``Z`` solves

``Z = (1/N2) Σ_j p(x_j) / (s1 p(x_j) / Z + s2 g(x_j))  /  (1/N1) Σ_i g(θ_i) / (s1 p(θ_i) / Z + s2 g(θ_i))``

with ``θ_i`` the second half of the posterior draws, ``x_j`` draws from
``g``, ``p`` the unnormalised posterior, and ``s1 = ESS / (ESS + N2)``,
``s2 = N2 / (ESS + N2)``. The fixed point is iterated on ``log Z`` with
log-sum-exp, so no density is ever exponentiated. Its relative mean-squared
error is that of Frühwirth-Schnatter (2004).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..exceptions import DataError, InferenceError, ShapeError
from .stein import effective_sizes

__all__ = ["BridgeResult", "NormalProposal", "bridge_sampling", "fit_normal", "MIN_DRAWS_PER_CHAIN"]

MIN_DRAWS_PER_CHAIN = 8


@dataclass(frozen=True)
class NormalProposal:
    """A multivariate normal in unconstrained space.

    Attributes
    ----------
    mean : torch.Tensor
        ``(dim,)``.
    scale_tril : torch.Tensor
        ``(dim, dim)`` lower Cholesky factor of the covariance.
    """

    mean: torch.Tensor
    scale_tril: torch.Tensor

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` draws, ``(n, dim)``, from ``generator``."""
        z = torch.randn((n, self.mean.shape[0]), generator=generator, dtype=self.mean.dtype, device=self.mean.device)
        return self.mean + z @ self.scale_tril.T

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Log density at each row of ``x``, ``(n,)``."""
        white = torch.linalg.solve_triangular(self.scale_tril, (x - self.mean).T, upper=False)
        log_det = torch.log(torch.diagonal(self.scale_tril)).sum()
        return -0.5 * (white**2).sum(0) - log_det - 0.5 * self.mean.shape[0] * math.log(2 * math.pi)


@dataclass(frozen=True)
class BridgeResult:
    """Output of :func:`bridge_sampling`.

    Attributes
    ----------
    log_evidence : float
        The fixed point ``log Z``.
    relative_mse : float
        Frühwirth-Schnatter's estimate of ``E[(Z_hat - Z)^2] / Z^2``.
    iterations : int
        Fixed-point iterations run.
    converged : bool
        Whether the relative change fell below ``tol``.
    last_change : float
        The last relative change of ``Z``.
    ess : float
        Effective sample size of the posterior draws in the iteration (the
        median over coordinates).
    num_fit, num_iter, num_proposal : int
        Posterior draws that fitted the proposal, posterior draws and
        proposal draws in the iteration.
    """

    log_evidence: float
    relative_mse: float
    iterations: int
    converged: bool
    last_change: float
    ess: float
    num_fit: int
    num_iter: int
    num_proposal: int


def fit_normal(points: torch.Tensor) -> NormalProposal:
    """The normal with the sample mean and covariance of ``points`` ``(n, dim)``.

    Raises
    ------
    InferenceError
        The sample covariance is singular (e.g. a chain that never moved).
    """
    mean = points.mean(0)
    centred = points - mean
    covariance = centred.T @ centred / (points.shape[0] - 1)
    scale_tril, info = torch.linalg.cholesky_ex(covariance)
    if int(info) != 0:
        raise InferenceError(
            f"the covariance of the {points.shape[0]} draws used to fit the normal proposal is singular (a coordinate "
            "that never moves, or fewer draws than dimensions); check the chains' mixing or draw more samples."
        )
    return NormalProposal(mean, scale_tril)


def bridge_sampling(
    u: torch.Tensor,
    log_density: Callable[[torch.Tensor], torch.Tensor],
    *,
    num_proposal: int | None,
    tol: float,
    max_iter: int,
    generator: torch.Generator,
) -> BridgeResult:
    """Bridge-sampling estimate of ``log ∫ exp(log_density(u)) du`` from MCMC draws ``u`` ``(chain, draw, dim)``.

    Raises
    ------
    ShapeError
        Fewer than :data:`MIN_DRAWS_PER_CHAIN` draws per chain, or too few to fit the proposal.
    DataError
        The log density is not finite at a posterior draw.
    """
    chains, per_chain, dim = u.shape
    half = per_chain // 2
    if per_chain < MIN_DRAWS_PER_CHAIN or chains * half < 2 * dim:
        raise ShapeError(
            f"fit has {chains} chain(s) of {per_chain} draws of a {dim}-dimensional posterior; bridge sampling needs at "
            f"least {MIN_DRAWS_PER_CHAIN} draws per chain and {2 * dim} draws in the first halves of the chains (which "
            "fit its proposal). Draw more samples."
        )
    proposal = fit_normal(u[:, :half].reshape(-1, dim))
    posterior = u[:, half:]
    n1 = posterior.shape[0] * posterior.shape[1]
    n2 = num_proposal or n1
    flat = posterior.reshape(n1, dim)
    q11 = log_density(flat).double()
    if not bool(torch.isfinite(q11).all()):
        raise DataError(
            f"the log density is not finite at {int((~torch.isfinite(q11)).sum())} of the posterior draws; "
            "these draws do not belong to this model and its data."
        )
    q12 = proposal.log_prob(flat).double()
    x = proposal.sample(n2, generator)
    q21 = log_density(x).double()
    q21 = torch.where(torch.isnan(q21), torch.full_like(q21, -math.inf), q21)
    q22 = proposal.log_prob(x).double()
    ess = float(np.median(effective_sizes(posterior, independent=False)))
    log_s1, log_s2 = math.log(ess / (ess + n2)), math.log(n2 / (ess + n2))
    l1, l2 = q11 - q12, q21 - q22
    log_ratio = math.log(n1 / n2)
    log_z = float(torch.median(l1))
    change, iterations, converged = math.inf, 0, False
    while iterations < max_iter:
        numerator = l2 - torch.logaddexp(log_s1 + l2, torch.full_like(l2, log_s2 + log_z))
        denominator = -torch.logaddexp(log_s1 + l1, torch.full_like(l1, log_s2 + log_z))
        new = log_ratio + float(torch.logsumexp(numerator, 0) - torch.logsumexp(denominator, 0))
        iterations += 1
        change = abs(math.expm1(log_z - new))
        log_z = new
        if change < tol:
            converged = True
            break
    relative_mse = _relative_mse(log_z, q11, q12, q21, q22, log_s1, log_s2, chains)
    return BridgeResult(log_z, relative_mse, iterations, converged, change, ess, chains * half, n1, n2)


def _relative_mse(
    log_z: float, q11: torch.Tensor, q12: torch.Tensor, q21: torch.Tensor, q22: torch.Tensor,
    log_s1: float, log_s2: float, chains: int,
) -> float:
    """Frühwirth-Schnatter's relative MSE: ``V_g(f1)/(N2 E_g(f1)^2) + τ_f2 V_p(f2)/(N1 E_p(f2)^2)``.

    ``f1 = p/(s1 p + s2 g)`` at the proposal draws, ``f2 = g/(s1 p + s2 g)``
    at the posterior draws (``p`` normalised by the estimate), and ``τ_f2`` the
    integrated autocorrelation time of ``f2``, ``N1 / ESS(f2)``.
    """
    log_f1 = (q21 - log_z) - torch.logaddexp(log_s1 + q21 - log_z, log_s2 + q22)
    log_f2 = q12 - torch.logaddexp(log_s1 + q11 - log_z, log_s2 + q12)
    n2 = log_f1.shape[0]
    f1 = torch.exp(log_f1 - log_f1.max())
    f2 = torch.exp(log_f2 - log_f2.max())
    ess_f2 = float(effective_sizes(f2.reshape(chains, -1, 1), independent=False)[0])
    term1 = float(f1.var() / f1.mean() ** 2) / n2
    term2 = float(f2.var() / f2.mean() ** 2) / ess_f2
    return term1 + term2
