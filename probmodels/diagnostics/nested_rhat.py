"""Nested R-hat: convergence of many short chains grouped into superchains.

With hundreds or thousands of chains of a few hundred draws each, classic
R-hat asks every chain to have forgotten its start and mixed on its own,
which short chains cannot. Nested R-hat (Margossian, Hoffman, Sountsov,
Riou-Durand, Vehtari and Gelman, 2024) groups the chains into ``K``
superchains whose ``M`` chains start from one common point, and compares the
superchain means: it is close to 1 once the superchains have forgotten their
starting points, even when each chain is short.

For superchain ``k`` with chain means ``m_{mk}`` and superchain mean
``m_k``::

    B  = var_k(m_k)                                   (between superchains)
    W  = mean_k( var_m(m_{mk}) + mean_m(var_n(f_{nmk})) )  (within superchains)
    nR = sqrt(1 + B / W)

with unbiased variances over superchains, chains and draws (a variance over
a single chain or draw counts as 0).

References
----------
C. C. Margossian, M. D. Hoffman, P. Sountsov, L. Riou-Durand, A. Vehtari and
A. Gelman (2024). Nested R-hat: assessing the convergence of Markov chain
Monte Carlo when running many short chains. Bayesian Analysis.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..exceptions import ModelSpecError

if TYPE_CHECKING:
    from ..core.posterior import Posterior

__all__ = ["nested_rhat", "posterior_nested_rhat"]


def _variance(values: np.ndarray, axis: int) -> np.ndarray:
    """Unbiased variance along ``axis``; 0 where the axis has a single entry."""
    if values.shape[axis] < 2:
        return np.zeros(np.delete(values.shape, axis))
    return values.var(axis=axis, ddof=1)


def nested_rhat(draws: np.ndarray, num_superchains: int) -> np.ndarray:
    """Nested R-hat of draws shaped ``(chain, draw, *shape)``.

    Parameters
    ----------
    draws
        Chains ``k * M .. (k + 1) * M - 1`` form superchain ``k``, where
        ``M = chains / num_superchains``.
    num_superchains
        Number of superchains ``K >= 2``; it must divide the number of chains.

    Returns
    -------
    numpy.ndarray
        One value per coordinate, shape ``shape``.

    Raises
    ------
    ModelSpecError
        When ``num_superchains`` is below 2 or does not divide the chains.
    """
    draws = np.asarray(draws, dtype=float)
    chains = draws.shape[0]
    if num_superchains < 2 or chains % num_superchains:
        raise ModelSpecError(
            f"num_superchains must be >= 2 and divide the {chains} chains, got {num_superchains}."
        )
    per = chains // num_superchains
    grouped = draws.reshape((num_superchains, per) + draws.shape[1:])
    chain_means = grouped.mean(axis=2)
    superchain_means = chain_means.mean(axis=1)
    between = _variance(superchain_means, 0)
    within_chain = _variance(grouped, 2).mean(axis=1)
    between_chains = _variance(chain_means, 1)
    within = (between_chains + within_chain).mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(1.0 + between / within)


def posterior_nested_rhat(posterior: "Posterior", num_superchains: int | None = None) -> dict[str, np.ndarray]:
    """Nested R-hat of every site of a posterior.

    Parameters
    ----------
    posterior
        An MCMC result.
    num_superchains
        Default: ``posterior.attrs["num_superchains"]``, set by
        ``fit_mcmc(num_superchains=...)``.

    Raises
    ------
    ModelSpecError
        When the number of superchains is neither given nor recorded.
    """
    k = num_superchains if num_superchains is not None else posterior.attrs.get("num_superchains")
    if k is None:
        raise ModelSpecError(
            "the posterior records no superchains; pass num_superchains, or sample with fit_mcmc(num_superchains=...)."
        )
    return {name: nested_rhat(value.cpu().numpy(), int(k)) for name, value in posterior.draws.items()}
