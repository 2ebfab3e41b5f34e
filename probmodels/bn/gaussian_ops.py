"""Exact algorithms for linear-Gaussian Bayesian networks: pure tensor functions.

A network enters as :class:`GaussianNetworkTensors`: intercepts ``b``, a weight
matrix ``W`` and noise variances ``v`` of variables ``0 .. n-1`` numbered in a
topological order, so ``W[i, j]`` (the weight of parent ``j`` in the mean of
``i``) is zero unless ``j < i``. The structural equations ``x = b + W x + e``
with ``e ~ N(0, diag(v))`` give ``x = A (b + e)`` with ``A = (I - W)^{-1}``,
unit lower triangular and found by one triangular solve; the joint is
``N(A b, A diag(v) A^T)`` and ``A diag(sqrt v)`` is already the Cholesky
factor of its covariance. A variance of zero marks a variable fixed by an
intervention. Leading batch dims (e.g. posterior draws of the parameters)
broadcast between all arguments.

Evidence is a boolean mask ``observed`` and ``values`` (entries at unobserved
positions are ignored), both ``(..., n)``. Conditioning pads the unobserved
block with the identity, ``M = P S P + (I - P)`` with ``P = diag(observed)``:
``M`` is positive definite, and its Cholesky factor gives the gain
``S_{.e} S_ee^{-1}`` and ``log det S_ee`` without gathering sub-matrices, so
rows with different observed sets broadcast in one call and no inverse is
formed. Observed variables come out as point masses at their values.
Conditional samples use Matheron's rule: a joint draw ``x`` is moved to
``x + S_{.e} S_ee^{-1} (x_e^* - x_e)``, exact and without a second factorisation.

Learning: :func:`least_squares` (per-node maximum likelihood) and
:func:`normal_inverse_gamma_update` (the conjugate posterior of one node's
coefficients and variance, with the closed-form log marginal likelihood).

Reference: D. Koller and N. Friedman (2009), Probabilistic Graphical Models,
section 7.2; K. P. Murphy (2007), Conjugate Bayesian analysis of the Gaussian
distribution, section 9; J. T. Wilson et al. (2020), Efficiently sampling
functions from Gaussian process posteriors (Matheron's rule).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

import torch

from ..exceptions import DataError

__all__ = [
    "GaussianNetworkTensors",
    "JointGaussian",
    "ConditionalGaussian",
    "NormalInverseGamma",
    "batch_shape",
    "joint_gaussian",
    "condition",
    "sample",
    "intervene",
    "least_squares",
    "normal_inverse_gamma_update",
]

_LOG_2PI = math.log(2 * math.pi)


class GaussianNetworkTensors(NamedTuple):
    """A linear-Gaussian network as tensors, variables in a topological order."""

    intercept: torch.Tensor
    """``(*batch, n)`` intercepts ``b``."""
    weights: torch.Tensor
    """``(*batch, n, n)`` strictly lower triangular; ``weights[..., i, j]`` multiplies parent ``j`` of ``i``."""
    variance: torch.Tensor
    """``(*batch, n)`` noise variances, ``> 0`` (``0`` for a variable fixed by an intervention)."""


class JointGaussian(NamedTuple):
    """The joint normal distribution of all variables."""

    mean: torch.Tensor
    """``(*batch, n)``."""
    covariance: torch.Tensor
    """``(*batch, n, n)``."""
    scale_tril: torch.Tensor
    """``(*batch, n, n)`` lower triangular with ``scale_tril @ scale_tril.mT == covariance``."""


class ConditionalGaussian(NamedTuple):
    """All variables given the evidence; observed ones are point masses at their values."""

    mean: torch.Tensor
    """``(*batch, n)`` conditional means."""
    covariance: torch.Tensor
    """``(*batch, n, n)`` conditional covariance (zero rows and columns at observed variables)."""
    log_evidence: torch.Tensor
    """``(*batch)`` log density of the observed values under the joint (0 when nothing is observed)."""


class NormalInverseGamma(NamedTuple):
    """``beta | sigma^2 ~ N(mean, sigma^2 precision^{-1})``, ``sigma^2 ~ InverseGamma(shape, rate)``."""

    mean: torch.Tensor
    """``(*batch, p)`` coefficients' location (intercept first)."""
    precision: torch.Tensor
    """``(*batch, p, p)`` precision of the coefficients in units of ``1 / sigma^2``."""
    shape: torch.Tensor
    """``(*batch)`` inverse-gamma shape."""
    rate: torch.Tensor
    """``(*batch)`` inverse-gamma rate (scale)."""


def batch_shape(net: GaussianNetworkTensors) -> torch.Size:
    """Broadcast batch shape of the network's tensors."""
    return torch.broadcast_shapes(net.intercept.shape[:-1], net.weights.shape[:-2], net.variance.shape[:-1])


def joint_gaussian(net: GaussianNetworkTensors) -> JointGaussian:
    """Mean, covariance and Cholesky factor of the joint normal, ``A b`` and ``A diag(v) A^T``."""
    n = net.intercept.shape[-1]
    shape = batch_shape(net) + (n, n)
    eye = torch.eye(n, dtype=net.weights.dtype, device=net.weights.device)
    lower = (eye - net.weights).expand(shape)
    transform = torch.linalg.solve_triangular(lower, eye.expand(shape), upper=False, unitriangular=True)
    mean = (transform @ net.intercept.unsqueeze(-1)).squeeze(-1)
    scale_tril = transform * net.variance.sqrt().unsqueeze(-2)
    return JointGaussian(mean, scale_tril @ scale_tril.mT, scale_tril)


def condition(
    mean: torch.Tensor, covariance: torch.Tensor, observed: torch.Tensor, values: torch.Tensor
) -> ConditionalGaussian:
    """Condition ``N(mean, covariance)`` on the ``observed`` entries taking ``values``.

    Parameters
    ----------
    mean : torch.Tensor
        ``(..., n)``.
    covariance : torch.Tensor
        ``(..., n, n)``; its observed block must be positive definite.
    observed : torch.Tensor
        ``(..., n)`` boolean mask of the observed entries.
    values : torch.Tensor
        ``(..., n)`` observed values (ignored where not observed).

    Returns
    -------
    ConditionalGaussian
        Batch dims broadcast from all arguments (the covariance only from those of
        ``covariance`` and ``observed``).

    Raises
    ------
    DataError
        When the covariance of the observed entries is not positive definite
        (e.g. a variable fixed by an intervention is observed).
    """
    observed = observed.to(torch.bool)
    mask = observed.to(covariance.dtype)
    residual = torch.where(observed, values - mean, torch.zeros_like(mean))
    padded = covariance * (mask.unsqueeze(-1) * mask.unsqueeze(-2)) + torch.diag_embed(1 - mask)
    chol, info = torch.linalg.cholesky_ex(padded)
    if bool((info > 0).any()):
        raise DataError(
            "the covariance of the observed variables is not positive definite: an observed variable is fixed "
            "by an intervention or is (numerically) a linear function of the others; drop it from the evidence."
        )
    gain = torch.linalg.solve_triangular(chol, covariance * mask.unsqueeze(-1), upper=False)
    white = torch.linalg.solve_triangular(chol, residual.unsqueeze(-1), upper=False)
    free = 1 - mask
    cond_mean = torch.where(observed, values, mean + (gain.mT @ white).squeeze(-1))
    cond_cov = (covariance - gain.mT @ gain) * (free.unsqueeze(-1) * free.unsqueeze(-2))
    log_det = chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    log_evidence = -0.5 * white.squeeze(-1).pow(2).sum(-1) - log_det - 0.5 * mask.sum(-1) * _LOG_2PI
    return ConditionalGaussian(cond_mean, cond_cov, log_evidence)


def sample(
    net: GaussianNetworkTensors,
    num_samples: int,
    observed: torch.Tensor | None = None,
    values: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draws ``(num_samples, *batch, n)`` from the joint, or from the conditional given evidence.

    Forward (ancestral) sampling is one triangular product ``mean + scale_tril @ z``;
    with ``observed``/``values`` the draws are conditioned by Matheron's rule.
    """
    joint = joint_gaussian(net)
    noise = torch.randn(
        (num_samples,) + joint.mean.shape, generator=generator, dtype=joint.mean.dtype, device=joint.mean.device
    )
    draws = joint.mean + (joint.scale_tril @ noise.unsqueeze(-1)).squeeze(-1)
    if observed is None:
        return draws
    return condition(draws, joint.covariance, observed, values).mean


def intervene(net: GaussianNetworkTensors, forced: Mapping[int, float | torch.Tensor]) -> GaussianNetworkTensors:
    """Graph surgery ``do(x_i = value)``: row ``i`` of ``weights`` cleared, intercept ``value``, variance 0."""
    shape = batch_shape(net)
    n = net.intercept.shape[-1]
    intercept = net.intercept.expand(shape + (n,)).clone()
    weights = net.weights.expand(shape + (n, n)).clone()
    variance = net.variance.expand(shape + (n,)).clone()
    for index, value in forced.items():
        intercept[..., index] = torch.as_tensor(value, dtype=intercept.dtype, device=intercept.device)
        weights[..., index, :] = 0
        variance[..., index] = 0
    return GaussianNetworkTensors(intercept, weights, variance)


def least_squares(design: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Least-squares coefficients by QR, the MLE of the variance, and the rank of ``design``.

    Parameters
    ----------
    design : torch.Tensor
        ``(..., rows, p)`` with ``rows >= p``.
    target : torch.Tensor
        ``(..., rows)``.

    Returns
    -------
    coef, variance, rank : torch.Tensor
        ``(..., p)``, ``(...)`` mean squared residual, ``(...)`` numerical rank
        (the coefficients are meaningful only when it equals ``p``).
    """
    q, r = torch.linalg.qr(design)
    diagonal = r.diagonal(dim1=-2, dim2=-1).abs()
    tolerance = max(design.shape[-2:]) * torch.finfo(design.dtype).eps * diagonal.amax(-1, keepdim=True)
    rank = (diagonal > tolerance).sum(-1)
    coef = torch.linalg.solve_triangular(r, q.mT @ target.unsqueeze(-1), upper=True).squeeze(-1)
    residual = target - (design @ coef.unsqueeze(-1)).squeeze(-1)
    return coef, residual.pow(2).mean(-1), rank


def normal_inverse_gamma_update(
    prior: NormalInverseGamma, design: torch.Tensor, target: torch.Tensor
) -> tuple[NormalInverseGamma, torch.Tensor]:
    """Conjugate update of a normal linear regression, and ``log p(target | design)``.

    Parameters
    ----------
    prior : NormalInverseGamma
        Prior of the coefficients (``p`` of them) and the noise variance.
    design : torch.Tensor
        ``(..., rows, p)``.
    target : torch.Tensor
        ``(..., rows)``.

    Returns
    -------
    posterior : NormalInverseGamma
        ``precision_n = precision_0 + X^T X``, ``mean_n = precision_n^{-1} (precision_0 mean_0 + X^T y)``,
        ``shape_n = shape_0 + rows / 2``,
        ``rate_n = rate_0 + (|y - X mean_n|^2 + (mean_n - mean_0)^T precision_0 (mean_n - mean_0)) / 2``.
    log_marginal : torch.Tensor
        ``(...)`` the exact log evidence, the coefficients and variance integrated out.
    """
    rows = target.shape[-1]
    precision = prior.precision + design.mT @ design
    chol = torch.linalg.cholesky(precision)
    rhs = (prior.precision @ prior.mean.unsqueeze(-1)) + design.mT @ target.unsqueeze(-1)
    mean = torch.cholesky_solve(rhs, chol).squeeze(-1)
    residual = target - (design @ mean.unsqueeze(-1)).squeeze(-1)
    shift = (mean - prior.mean).unsqueeze(-1)
    penalty = (shift.mT @ prior.precision @ shift).squeeze(-1).squeeze(-1)
    shape = prior.shape + rows / 2
    rate = prior.rate + 0.5 * (residual.pow(2).sum(-1) + penalty)
    log_det_prior = torch.linalg.cholesky(prior.precision).diagonal(dim1=-2, dim2=-1).log().sum(-1)
    log_det_post = chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    log_marginal = (
        -0.5 * rows * _LOG_2PI
        + log_det_prior
        - log_det_post
        + prior.shape * prior.rate.log()
        - shape * rate.log()
        + torch.lgamma(shape)
        - torch.lgamma(prior.shape)
    )
    return NormalInverseGamma(mean, precision, shape, rate), log_marginal
