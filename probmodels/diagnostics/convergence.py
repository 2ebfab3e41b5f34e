"""Post-run convergence checks that turn into :class:`~probmodels.exceptions.ConvergenceWarning`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .arviz import ess, rhat, to_arviz
from .nested_rhat import posterior_nested_rhat

if TYPE_CHECKING:
    from ..core.posterior import Posterior

__all__ = ["ConvergenceReport", "check_convergence"]


def _worst(dataset, pick) -> tuple[float, str]:
    """The extreme value over every variable and coordinate of an ArviZ statistic, and where."""
    best_value, best_name = math.nan, ""
    for name, array in dataset.data_vars.items():
        values = np.asarray(array.values, dtype=float).ravel()
        values = values[np.isfinite(values)]
        if values.size == 0:
            continue
        candidate = pick(values)
        if math.isnan(best_value) or pick([best_value, candidate]) == candidate:
            best_value, best_name = float(candidate), str(name)
    return best_value, best_name


@dataclass
class ConvergenceReport:
    """Convergence diagnostics of an MCMC run.

    Attributes
    ----------
    num_chains, num_draws : int
        Sizes of the run.
    num_divergent : int
        Post-warmup divergent transitions.
    max_rhat : float
        Largest rank-normalised split R-hat over all parameters, and ``rhat_site``
        where; nested R-hat when the run grouped its chains into superchains.
    min_ess_bulk, min_ess_tail : float
        Smallest bulk and tail effective sample sizes, and ``ess_site`` where
        the smaller of the two is.
    num_max_tree_depth : int
        Transitions that stopped at the maximum tree depth.
    messages : list of str
        One sentence per failed check, saying what to do.
    """

    num_chains: int
    num_draws: int
    num_divergent: int
    max_rhat: float
    rhat_site: str
    min_ess_bulk: float
    min_ess_tail: float
    ess_site: str
    num_max_tree_depth: int
    messages: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return not self.messages


def check_convergence(
    posterior: "Posterior",
    *,
    rhat_threshold: float = 1.01,
    min_ess_per_chain: float = 100.0,
    max_tree_depth: int | None = None,
) -> ConvergenceReport:
    """Check an MCMC posterior for divergences, R-hat, ESS and tree-depth saturation.

    Parameters
    ----------
    posterior
        An MCMC result.
    rhat_threshold
        Largest acceptable R-hat (Vehtari et al. 2021 recommend 1.01).
    min_ess_per_chain
        Smallest acceptable bulk and tail ESS, per chain (per superchain
        when the run has superchains: many short chains cannot each reach it).
    max_tree_depth
        The sampler's maximum tree depth (taken from the posterior's attrs by default).

    Examples
    --------
    Two chains stuck around different values fail the R-hat check:

    >>> import torch
    >>> from probmodels import Posterior
    >>> from probmodels.diagnostics import check_convergence
    >>> g = torch.Generator().manual_seed(0)
    >>> draws = torch.randn(2, 500, generator=g) + torch.tensor([[0.0], [3.0]])
    >>> result = check_convergence(Posterior({"mu": draws}, method="manual"))
    >>> result.ok, round(result.max_rhat, 1)
    (False, 1.8)
    >>> print(result.messages[0])
    R-hat of 'mu' is 1.751 > 1.01; the chains disagree. Run longer warmup and more draws, or check for multimodality.
    """
    idata = to_arviz(posterior, log_likelihood=False)
    chains, draws = posterior.num_chains, posterior.num_draws
    stats = posterior.sample_stats
    divergent = int(stats["diverging"].sum()) if "diverging" in stats else 0
    depth_limit = max_tree_depth if max_tree_depth is not None else posterior.attrs.get("max_tree_depth")
    saturated = int((stats["tree_depth"] >= depth_limit).sum()) if depth_limit is not None and "tree_depth" in stats else 0
    superchains = posterior.attrs.get("num_superchains")
    if superchains:
        worst = {name: float(np.nanmax(v)) for name, v in posterior_nested_rhat(posterior).items() if np.isfinite(v).any()}
        rhat_site = max(worst, key=worst.get, default="")
        max_rhat = worst.get(rhat_site, math.nan)
        rhat_name = "nested R-hat"
    else:
        max_rhat, rhat_site = _worst(rhat(idata), max) if chains > 1 else (math.nan, "")
        rhat_name = "R-hat"
    min_bulk, bulk_site = _worst(ess(idata, "bulk"), min)
    min_tail, tail_site = _worst(ess(idata, "tail"), min)
    messages = []
    if divergent:
        messages.append(
            f"{divergent} of {chains * draws} post-warmup transitions diverged; the posterior may be biased. "
            "Raise target_accept (e.g. 0.95) or reparameterise (non-centred hierarchies)."
        )
    if max_rhat > rhat_threshold:
        messages.append(
            f"{rhat_name} of {rhat_site!r} is {max_rhat:.3f} > {rhat_threshold}; the chains disagree. Run longer "
            "warmup and more draws, or check for multimodality."
        )
    need = min_ess_per_chain * (superchains or chains)
    if min(min_bulk, min_tail) < need:
        messages.append(
            f"effective sample size is too small: smallest bulk ESS {min_bulk:.0f} (of {bulk_site!r}), smallest tail "
            f"ESS {min_tail:.0f} (of {tail_site!r}); need {need:.0f} ({min_ess_per_chain:.0f} per "
            f"{'superchain' if superchains else 'chain'}). Draw more samples."
        )
    if saturated:
        messages.append(
            f"{saturated} transitions hit the maximum tree depth {depth_limit}; the sampler is inefficient. "
            "Raise max_tree_depth or use dense_mass=True for correlated posteriors."
        )
    ess_site = bulk_site if min_bulk <= min_tail else tail_site
    return ConvergenceReport(chains, draws, divergent, max_rhat, rhat_site, min_bulk, min_tail, ess_site, saturated, messages)
