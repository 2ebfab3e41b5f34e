"""Kernel Stein discrepancy (KSD) of a sample against a model's posterior, with a bootstrap test.

With the score ``s = grad log p`` in unconstrained space and a kernel ``k``,
the Stein kernel

``k_p(x, y) = s(x).s(y) k + s(x).grad_y k + s(y).grad_x k + tr(grad_x grad_y k)``

has mean zero under ``p``, and ``KSD^2 = mean_ij k_p(x_i, x_j)`` over a sample
is zero exactly when the sample follows ``p`` (for the inverse multiquadric
kernel ``k = (c^2 + |x - y|^2)^beta``, ``-1 < beta < 0``, it also detects
non-convergence, Gorham and Mackey 2017).

The ``n x n`` Stein kernel is never held whole: it is built block by block
from matrix products on the draws' device (CPU or GPU), and each block also
feeds the bootstrap. The p-value comes from a wild bootstrap of the
degenerate V-statistic (Chwialkowski et al. 2016): multipliers ``W`` that are
i.i.d. Rademacher signs for independent draws, and for MCMC chains a sign
process that flips with probability ``1 / (1 + tau)`` at each step, ``tau``
the chains' integrated autocorrelation time (number of draws / smallest ESS).
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Mapping, NamedTuple

import torch

from .._validation import check_positive_int
from ..core.posterior import Posterior
from ..exceptions import ModelSpecError
from .stein import Source, effective_sizes, score_draws

__all__ = ["KSDResult", "ksd", "thinned_ksd"]

KERNELS = ("imq",)
KSD_ALPHA = 0.01
"""Bootstrap p-value below which reports and comparisons flag a fit's draws."""


class KSDResult(NamedTuple):
    """Result of :func:`ksd`.

    Attributes
    ----------
    ksd : float
        The kernel Stein discrepancy, the square root of the V-statistic
        ``mean_ij k_p(x_i, x_j)``.
    p_value : float
        Bootstrap p-value of "the draws follow the target": small values
        reject.
    num_draws : int
        Number of draws (all chains).
    dim : int
        Number of unconstrained coordinates.
    kernel, beta, c : str, float, float
        The base kernel ``(c^2 + |x - y|^2)^beta``.
    flip_probability : float
        Probability that the bootstrap sign process flips between consecutive
        draws (0.5: i.i.d. Rademacher signs).
    n_bootstrap : int
        Number of bootstrap replicates.
    """

    ksd: float
    p_value: float
    num_draws: int
    dim: int
    kernel: str
    beta: float
    c: float
    flip_probability: float
    n_bootstrap: int


def ksd(
    source: Source,
    draws: Mapping[str, Any] | Posterior | None = None,
    *model_args: Any,
    model_kwargs: Mapping[str, Any] | None = None,
    log_density: Callable[[torch.Tensor], torch.Tensor] | None = None,
    kernel: str = "imq",
    beta: float = -0.5,
    c: float = 1.0,
    batch_size: int = 2048,
    n_bootstrap: int = 1000,
    seed: int = 0,
    independent: bool | None = None,
) -> KSDResult:
    """Kernel Stein discrepancy of draws against a model's posterior, with a bootstrap p-value.

    Parameters
    ----------
    source, draws, *model_args, model_kwargs, log_density
        What to check, as in :func:`~probmodels.diagnostics.stein.stein_check`:
        a Posterior with its model attached, a Pyro model followed by
        ``site -> constrained draws`` (or a Posterior) and its data, or
        unconstrained draws ``(n, dim)`` / ``(chain, draw, dim)`` with
        ``log_density``.
    kernel
        Base kernel; ``"imq"``, the inverse multiquadric
        ``(c^2 + |x - y|^2)^beta``.
    beta, c
        Its exponent, in (-1, 0), and scale, > 0. Coordinates enter
        unscaled, so ``c`` is in the units of the unconstrained draws.
    batch_size
        Rows and columns per block of the Stein kernel (memory
        ``batch_size^2`` floats per block).
    n_bootstrap
        Bootstrap replicates for the p-value.
    seed
        Seed of the bootstrap's own generator.
    independent
        Whether the draws are independent (Rademacher bootstrap) or chains
        (autocorrelated sign process); default as in ``stein_check``.

    Returns
    -------
    KSDResult

    Raises
    ------
    ModelSpecError
        An unknown kernel or a parameter out of range.
    ShapeError, DataError
        Bad draws, as for ``stein_check``.

    References
    ----------
    .. [1] J. Gorham and L. Mackey, "Measuring sample quality with kernels",
       ICML 2017.
    .. [2] K. Chwialkowski, H. Strathmann and A. Gretton, "A kernel test of
       goodness of fit", ICML 2016.
    .. [3] Q. Liu, J. D. Lee and M. Jordan, "A kernelized Stein discrepancy
       for goodness-of-fit tests", ICML 2016.
    """
    if kernel not in KERNELS:
        raise ModelSpecError(f"kernel must be one of {KERNELS}, got {kernel!r}.")
    if not isinstance(beta, numbers.Real) or not -1.0 < float(beta) < 0.0:
        raise ModelSpecError(f"beta must lie in (-1, 0), got {beta!r}; the usual choice is beta=-0.5.")
    if not isinstance(c, numbers.Real) or not (float(c) > 0.0 and math.isfinite(float(c))):
        raise ModelSpecError(f"c must be a positive number, got {c!r}; the usual choice is c=1.0.")
    batch_size = check_positive_int(batch_size, "batch_size")
    n_bootstrap = check_positive_int(n_bootstrap, "n_bootstrap")
    scored = score_draws(
        source, draws, model_args, model_kwargs, log_density=log_density, independent=independent, batch_size=batch_size
    )
    chains, per_chain, dim = scored.u.shape
    if scored.independent:
        flip = 0.5
    else:
        tau = chains * per_chain / float(effective_sizes(scored.u, independent=False).min())
        flip = 1.0 / (1.0 + tau)
    generator = torch.Generator(device=scored.u.device).manual_seed(seed)
    signs = _sign_process(chains, per_chain, n_bootstrap, flip, scored.u, generator)
    u = scored.u.reshape(-1, dim)
    s = scored.score.reshape(-1, dim)
    total, boot = _stein_sums(u, s, signs, float(beta), float(c), batch_size)
    n = u.shape[0]
    p_value = (1.0 + float((boot >= total).sum())) / (1.0 + n_bootstrap)
    return KSDResult(
        ksd=math.sqrt(max(float(total), 0.0)) / n,
        p_value=p_value,
        num_draws=n,
        dim=dim,
        kernel=kernel,
        beta=float(beta),
        c=float(c),
        flip_probability=flip,
        n_bootstrap=n_bootstrap,
    )


def thinned_ksd(fit: Posterior, max_draws: int = 1000, **kwargs: Any) -> KSDResult:
    """:func:`ksd` of a Posterior with its model attached, on at most ``max_draws`` draws.

    The statistic costs O(draws^2), so the draws are thinned evenly within
    each chain; ``kwargs`` go to :func:`ksd`.
    """
    step = max(1, math.ceil(fit.num_chains * fit.num_draws / max_draws))
    draws = {site.name: fit[site.name][:, ::step] for site in fit.info.latents}
    return ksd(fit.model, draws, *fit.model_args, model_kwargs=fit.model_kwargs, independent=fit.method.startswith("svi"), **kwargs)


def _sign_process(
    chains: int, per_chain: int, replicates: int, flip: float, like: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Bootstrap multipliers ``(chains * per_chain, replicates)``: a random start per chain, then a sign flip with probability ``flip`` at each draw."""
    shape = (chains, per_chain, replicates)
    uniform = torch.rand(shape, generator=generator, device=like.device, dtype=like.dtype)
    steps = torch.where(uniform < flip, -torch.ones_like(uniform), torch.ones_like(uniform))
    start = torch.rand((chains, 1, replicates), generator=generator, device=like.device, dtype=like.dtype)
    steps[:, :1] = torch.where(start < 0.5, -1.0, 1.0)
    return torch.cumprod(steps, dim=1).reshape(chains * per_chain, replicates)


def _stein_sums(
    u: torch.Tensor, s: torch.Tensor, signs: torch.Tensor, beta: float, c: float, block: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``sum_ij k_p(u_i, u_j)`` and, per replicate ``b``, ``sum_ij W_ib W_jb k_p(u_i, u_j)``.

    Only blocks on and above the diagonal are built; the kernel is symmetric.
    """
    n, dim = u.shape
    sq = (u * u).sum(-1)
    su = (s * u).sum(-1)
    total = u.new_zeros(())
    boot = u.new_zeros(signs.shape[1])
    for i in range(0, n, block):
        rows = slice(i, min(i + block, n))
        for j in range(i, n, block):
            cols = slice(j, min(j + block, n))
            k = _stein_kernel_block(u[rows], s[rows], sq[rows], su[rows], u[cols], s[cols], sq[cols], su[cols], beta, c, dim)
            weight = 1.0 if i == j else 2.0
            total = total + weight * k.sum()
            boot = boot + weight * ((k @ signs[cols]) * signs[rows]).sum(0)
    return total, boot


def _stein_kernel_block(
    x: torch.Tensor, sx: torch.Tensor, sqx: torch.Tensor, sux: torch.Tensor,
    y: torch.Tensor, sy: torch.Tensor, sqy: torch.Tensor, suy: torch.Tensor,
    beta: float, c: float, dim: int,
) -> torch.Tensor:
    """The IMQ Stein kernel between rows of ``x`` and of ``y`` from matrix products (no ``(n, n, dim)`` tensor).

    With ``r = x - y`` and ``q = c^2 + |r|^2``:
    ``k_p = (sx.sy) q^b + q^(b-1) (2b (sy - sx).r - 4b(b-1) |r|^2 / q - 2 b dim)``,
    built in place to keep memory traffic to a few ``(rows, cols)`` buffers.
    """
    r2 = torch.addmm(sqx.unsqueeze(1) + sqy.unsqueeze(0), x, y.T, alpha=-2.0).clamp_min_(0.0)
    q = r2 + c * c
    q_b = q.rsqrt() if beta == -0.5 else q.pow(beta)
    # (sy - sx).r = s(y).x - s(y).y - s(x).x + s(x).y
    cross = torch.addmm(-(sux.unsqueeze(1) + suy.unsqueeze(0)), torch.cat([x, sx], 1), torch.cat([sy, y], 1).T)
    inner = r2.div_(q).mul_(-4.0 * beta * (beta - 1.0)).add_(cross, alpha=2.0 * beta).sub_(2.0 * beta * dim)
    kernel = torch.mm(sx, sy.T).add_(inner.div_(q))
    return kernel.mul_(q_b)
