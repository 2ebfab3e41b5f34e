"""Parameter learning for discrete Bayesian networks from a pandas DataFrame.

- :func:`maximum_likelihood`: relative frequencies (``missing="em"``: the EM
  algorithm with exact E-steps for rows with missing cells).
- :func:`dirichlet_posterior`: the conjugate posterior of every CPT row under
  a Dirichlet prior (BDeu with an equivalent sample size, K2, or user
  pseudo-counts), as a :class:`DirichletPosterior`: posterior mean network,
  posterior draws of all CPTs as one batched network (:meth:`~DirichletPosterior.sample_cpts`),
  queries with credible intervals, and the closed-form log marginal likelihood
  of the data (the BDeu/K2 score), which is the exact evidence of the model.

States of a node come from ``state_names``, else from the CPD of the
structure network, else from the categories of a categorical column, else
from the sorted distinct values. Missing cells raise :class:`DataError`
unless EM is asked for; rows are never dropped silently. The Bayesian
treatment of missing cells and hidden nodes (a posterior of the CPTs by NUTS
or SVI) is :func:`~probmodels.bn.model.cpt_posterior`.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import pandas as pd
import torch

from .._validation import check_positive_int
from ..exceptions import ConvergenceWarning, DataError, ModelSpecError
from . import ops
from ._design import (
    PRIORS,
    Design,
    Structure,
    check_prior,
    cpt_pseudo_counts,
    family_counts,
    normalise,
    prepare_design,
    refuse_missing_cells,
)
from ._uncertain import UncertainQuery, query_on_draws
from .network import DiscreteBayesianNetwork

__all__ = [
    "PRIORS",
    "maximum_likelihood",
    "dirichlet_posterior",
    "log_marginal_likelihood",
    "DirichletPosterior",
    "UncertainQuery",
]


class DirichletPosterior:
    """Independent Dirichlet posteriors of the rows of every CPT (complete data, conjugate prior).

    Built by :func:`dirichlet_posterior`. ``counts[node]`` and
    ``pseudo_counts[node]`` are shaped ``(*parent_cards, card)``; the
    posterior of each row is ``Dirichlet(pseudo_counts + counts)``.
    """

    def __init__(
        self, design: Design, counts: dict[Hashable, torch.Tensor], pseudo_counts: dict[Hashable, torch.Tensor]
    ) -> None:
        self._design = design._replace(codes=design.codes[:0])
        self.counts = counts
        self.pseudo_counts = pseudo_counts

    def mean(self) -> DiscreteBayesianNetwork:
        """The network of posterior-mean CPTs ``(N + a) / (N_j + a_j)``."""
        return self._design.network({n: normalise(self.counts[n] + self.pseudo_counts[n]) for n in self._design.nodes})

    def sample_cpts(self, n_draws: int) -> DiscreteBayesianNetwork:
        """Posterior draws of all CPTs as one network with batch shape ``(n_draws,)``.

        Queries on it (:class:`Inference`) return one answer per draw. Draws use
        torch's global random state (seed it with ``torch.manual_seed``).
        """
        n_draws = check_positive_int(n_draws, "n_draws")
        tables = {}
        for node in self._design.nodes:
            concentration = self.counts[node] + self.pseudo_counts[node]
            tables[node] = torch.distributions.Dirichlet(concentration).sample((n_draws,))
        return self._design.network(tables)

    def log_marginal_likelihood(self, per_family: bool = False) -> torch.Tensor | dict[Hashable, torch.Tensor]:
        """``log p(data | structure)`` with the CPTs integrated out (closed form per family).

        With the BDeu prior this is the BDeu score, with K2 the K2 score.

        Parameters
        ----------
        per_family : bool, default False
            Return ``{node: local score}`` instead of their sum.
        """
        local = {}
        for node in self._design.nodes:
            card = len(self._design.states[node])
            local[node] = ops.dirichlet_log_marginal(
                self.counts[node].reshape(-1, card), self.pseudo_counts[node].reshape(-1, card)
            )
        return local if per_family else torch.stack(list(local.values())).sum()

    def query_with_uncertainty(
        self,
        variables: Sequence[Hashable],
        evidence: Mapping[Hashable, Hashable] | None = None,
        *,
        n_draws: int = 1000,
        level: float = 0.9,
        joint: bool = False,
        do: Mapping[Hashable, Hashable] | None = None,
    ) -> UncertainQuery | dict[Hashable, UncertainQuery]:
        """A query answered on ``n_draws`` posterior draws of the CPTs, with a credible interval.

        Parameters
        ----------
        variables, evidence, joint, do
            As in :meth:`Inference.query`.
        n_draws : int, default 1000
            Number of posterior draws (one batched contraction).
        level : float, default 0.9
            Probability mass of the equal-tailed interval.

        Returns
        -------
        UncertainQuery or dict of UncertainQuery
            Mean, interval and draws of ``P(variables | evidence)``.
        """
        return query_on_draws(self.sample_cpts(n_draws), variables, evidence, level=level, joint=joint, do=do)


def maximum_likelihood(
    structure: Structure,
    data: pd.DataFrame,
    *,
    state_names: Mapping[Hashable, Sequence[Hashable]] | None = None,
    missing: str = "raise",
    max_iter: int = 200,
    tol: float = 1e-10,
    device: str | torch.device | None = None,
) -> DiscreteBayesianNetwork:
    """Maximum-likelihood CPTs: relative frequencies of each family's states.

    Parent configurations never seen in the data get a uniform row (as in
    pgmpy and bnlearn).

    Parameters
    ----------
    structure : DiscreteBayesianNetwork, networkx.DiGraph or iterable of edges
        The DAG (a network's CPDs fix parent orders and states; otherwise
        parents are sorted by name).
    data : pandas.DataFrame
        One column per node (extra columns are ignored).
    state_names : mapping, optional
        ``{node: states}``, overriding the states found otherwise.
    missing : {"raise", "em"}, default "raise"
        ``"em"``: fit by expectation-maximisation over the missing cells
        (missing at random assumed); the E-step is one batched exact query per
        family over the rows that miss part of it.
    max_iter, tol
        EM stops when the log-likelihood gains less than ``tol`` times its
        magnitude; a :class:`ConvergenceWarning` is issued after ``max_iter``.
    device : str or torch.device, optional
        Device of the computation and of the returned tables (float64).

    Returns
    -------
    DiscreteBayesianNetwork
        The fitted network.
    """
    if missing not in ("raise", "em"):
        raise ModelSpecError(f"missing must be 'raise' or 'em', got {missing!r}.")
    if isinstance(data, pd.DataFrame) and len(data) == 0:
        raise DataError(
            "data has 0 rows: maximum likelihood has nothing to estimate the CPTs from; pass at least one row "
            "(dirichlet_posterior accepts empty data and returns the prior)."
        )
    design = prepare_design(structure, data, state_names, device)
    if missing == "raise" or not bool((design.codes < 0).any()):
        refuse_missing_cells(design, data, "fit with maximum_likelihood(..., missing='em'), impute them")
        return design.network({n: normalise(family_counts(design, n)) for n in design.nodes})
    return _em(design, check_positive_int(max_iter, "max_iter"), tol)


def dirichlet_posterior(
    structure: Structure,
    data: pd.DataFrame,
    *,
    prior: str = "bdeu",
    equivalent_sample_size: float = 10.0,
    pseudo_counts: float | Mapping[Hashable, Any] | None = None,
    state_names: Mapping[Hashable, Sequence[Hashable]] | None = None,
    device: str | torch.device | None = None,
) -> DirichletPosterior:
    """Conjugate Dirichlet posterior of all CPTs from complete data.

    Parameters
    ----------
    structure, data, state_names, device
        As in :func:`maximum_likelihood` (missing cells raise :class:`DataError`:
        the posterior is not closed-form then).
    prior : {"bdeu", "k2", "dirichlet"}, default "bdeu"
        ``"bdeu"``: every cell gets ``equivalent_sample_size / (q r)`` (``q``
        parent configurations, ``r`` states); ``"k2"``: every cell gets 1;
        ``"dirichlet"``: ``pseudo_counts``.
    equivalent_sample_size : float, default 10.0
        For BDeu.
    pseudo_counts : float or mapping, optional
        For ``"dirichlet"``: one positive number for every cell, or
        ``{node: array (*parent_cards, card)}``.

    Returns
    -------
    DirichletPosterior
    """
    prior = check_prior(prior)
    design = prepare_design(structure, data, state_names, device)
    remedy = (
        "the Dirichlet posterior has no closed form with missing cells; sample it with "
        "probmodels.bn.cpt_posterior(...), impute them, use maximum_likelihood(..., missing='em')"
    )
    refuse_missing_cells(design, data, remedy)
    counts = {n: family_counts(design, n) for n in design.nodes}
    alphas = {n: cpt_pseudo_counts(n, counts[n], prior, equivalent_sample_size, pseudo_counts) for n in design.nodes}
    return DirichletPosterior(design, counts, alphas)


def log_marginal_likelihood(
    structure: Structure,
    data: pd.DataFrame,
    *,
    prior: str = "bdeu",
    equivalent_sample_size: float = 10.0,
    pseudo_counts: float | Mapping[Hashable, Any] | None = None,
    state_names: Mapping[Hashable, Sequence[Hashable]] | None = None,
    per_family: bool = False,
) -> torch.Tensor | dict[Hashable, torch.Tensor]:
    """Closed-form ``log p(data | structure)`` under Dirichlet priors (the BDeu or K2 score).

    Shorthand for ``dirichlet_posterior(...).log_marginal_likelihood(per_family)``.
    """
    posterior = dirichlet_posterior(
        structure, data, prior=prior, equivalent_sample_size=equivalent_sample_size,
        pseudo_counts=pseudo_counts, state_names=state_names,
    )
    return posterior.log_marginal_likelihood(per_family)


# ----------------------------------------------------------------------------- helpers


def _em(design: Design, max_iter: int, tol: float) -> DiscreteBayesianNetwork:
    codes, cards = design.codes, design.cards()
    unobserved = [n for n, all_missing in zip(design.nodes, (codes < 0).all(0).tolist()) if all_missing]
    if unobserved:
        raise DataError(
            f"columns {unobserved} are entirely missing (latent variables); EM for latent variables is not supported yet."
        )
    families = {n: design.family(n) for n in design.nodes}
    incomplete = {n: (codes[:, f[0] + [f[1]]] < 0).any(1) for n, f in families.items()}
    tables = {n: normalise(family_counts(design, n, ~incomplete[n]) + 1) for n in design.nodes}
    all_vars = tuple(range(len(design.nodes)))
    previous = -float("inf")
    for _ in range(max_iter):
        net = ops.NetworkTensors(tuple(cards), tuple(tuple(f[0]) for f in families.values()), tuple(tables.values()))
        loglik = float(ops.log_probability_of_evidence(net, all_vars, codes).sum())
        for n, (parents, child) in families.items():
            counts = family_counts(design, n, ~incomplete[n])
            if bool(incomplete[n].any()):
                posterior = ops.marginals(net, tuple(parents) + (child,), all_vars, codes[incomplete[n]]).probs
                counts = counts + posterior.sum(0)
            tables[n] = normalise(counts)
        if loglik - previous <= tol * abs(loglik):
            break
        previous = loglik
    else:
        message = f"EM did not converge in {max_iter} iterations (log-likelihood {loglik:.6g}); raise max_iter."
        warnings.warn(message, ConvergenceWarning, stacklevel=3)
    return design.network(tables)
