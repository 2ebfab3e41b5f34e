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
unless EM is asked for; rows are never dropped silently.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import networkx as nx
import numpy as np
import pandas as pd
import torch

from .._validation import check_positive_int, check_probability
from ..exceptions import ConvergenceWarning, DataError, ModelSpecError
from . import ops
from ._learning import learning_structure, refuse_missing
from .inference import Inference, encode_column
from .network import DiscreteBayesianNetwork

__all__ = [
    "PRIORS",
    "maximum_likelihood",
    "dirichlet_posterior",
    "log_marginal_likelihood",
    "DirichletPosterior",
    "UncertainQuery",
]

PRIORS = ("bdeu", "k2", "dirichlet")
"""Accepted values of ``prior``."""

Structure = DiscreteBayesianNetwork | nx.DiGraph | Iterable[tuple[Hashable, Hashable]]


class _Design(NamedTuple):
    """A structure with states, and the data as codes (``-1`` = missing)."""

    nodes: tuple[Hashable, ...]
    parents: dict[Hashable, tuple[Hashable, ...]]
    states: dict[Hashable, tuple[Hashable, ...]]
    codes: torch.Tensor

    def cards(self) -> list[int]:
        return [len(self.states[n]) for n in self.nodes]

    def family(self, node: Hashable) -> tuple[list[int], int]:
        index = {n: i for i, n in enumerate(self.nodes)}
        return [index[p] for p in self.parents[node]], index[node]

    def network(self, tables: Mapping[Hashable, torch.Tensor]) -> DiscreteBayesianNetwork:
        cpds = {n: (self.parents[n], self.states[n], tables[n]) for n in self.nodes}
        t = next(iter(tables.values()))
        return DiscreteBayesianNetwork(nodes=self.nodes, cpds=cpds, dtype=t.dtype, device=t.device)


class UncertainQuery(NamedTuple):
    """A query answered on posterior draws of the CPTs."""

    variables: tuple[Hashable, ...]
    """Query variables, in the order of the last axes."""
    states: tuple[tuple[Hashable, ...], ...]
    """Their state names."""
    mean: torch.Tensor
    """``(*cards)`` posterior mean of ``P(variables | evidence, CPTs)``."""
    lower: torch.Tensor
    """``(*cards)`` lower end of the equal-tailed credible interval."""
    upper: torch.Tensor
    """``(*cards)`` upper end."""
    draws: torch.Tensor
    """``(n_draws, *cards)`` the query on every draw."""

    def to_pandas(self) -> pd.DataFrame:
        """Columns ``mean``, ``lower``, ``upper``, one row per state (combination)."""
        index = pd.MultiIndex.from_product(self.states, names=self.variables)
        columns = {k: getattr(self, k).detach().cpu().reshape(-1).numpy() for k in ("mean", "lower", "upper")}
        return pd.DataFrame(columns, index=index.get_level_values(0) if len(self.variables) == 1 else index)


class DirichletPosterior:
    """Independent Dirichlet posteriors of the rows of every CPT (complete data, conjugate prior).

    Built by :func:`dirichlet_posterior`. ``counts[node]`` and
    ``pseudo_counts[node]`` are shaped ``(*parent_cards, card)``; the
    posterior of each row is ``Dirichlet(pseudo_counts + counts)``.
    """

    def __init__(
        self, design: _Design, counts: dict[Hashable, torch.Tensor], pseudo_counts: dict[Hashable, torch.Tensor]
    ) -> None:
        self._design = design._replace(codes=design.codes[:0])
        self.counts = counts
        self.pseudo_counts = pseudo_counts

    def mean(self) -> DiscreteBayesianNetwork:
        """The network of posterior-mean CPTs ``(N + a) / (N_j + a_j)``."""
        return self._design.network({n: _normalise(self.counts[n] + self.pseudo_counts[n]) for n in self._design.nodes})

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
        level = check_probability(level, "level")
        results = Inference(self.sample_cpts(n_draws)).query(variables, evidence, joint=joint, do=do)
        tails = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)

        def summarise(result: Any) -> UncertainQuery:
            lower, upper = torch.quantile(result.probs, tails.to(result.probs), dim=0)
            return UncertainQuery(result.variables, result.states, result.probs.mean(0), lower, upper, result.probs)

        return summarise(results) if joint else {n: summarise(r) for n, r in results.items()}


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
    design = _prepare(structure, data, state_names, device)
    if missing == "raise" or not bool((design.codes < 0).any()):
        _refuse_missing(design, data, "fit with maximum_likelihood(..., missing='em'), impute them")
        return design.network({n: _normalise(_counts(design, n)) for n in design.nodes})
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
    prior = str(prior).lower()
    if prior not in PRIORS:
        raise ModelSpecError(f"prior must be one of {PRIORS}, got {prior!r}.")
    design = _prepare(structure, data, state_names, device)
    remedy = (
        "the Dirichlet posterior has no closed form with missing cells; "
        "impute them, use maximum_likelihood(..., missing='em')"
    )
    _refuse_missing(design, data, remedy)
    counts = {n: _counts(design, n) for n in design.nodes}
    alphas = {n: _pseudo_counts(n, counts[n], prior, equivalent_sample_size, pseudo_counts) for n in design.nodes}
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


def _prepare(structure: Structure, data: pd.DataFrame, state_names: Mapping | None, device: Any) -> _Design:
    template, graph, nodes, parents = learning_structure(structure, data, DiscreteBayesianNetwork)
    absent = [n for n in graph if n not in data.columns]
    if absent:
        raise DataError(f"data has no column for nodes {absent}; its columns are {list(data.columns)}.")
    states = {}
    for n in nodes:
        column = data[n]
        if state_names is not None and n in state_names:
            states[n] = tuple(state_names[n])
        elif template is not None and template.has_cpd(n):
            states[n] = template.states(n)
        elif isinstance(column.dtype, pd.CategoricalDtype):
            states[n] = tuple(column.cat.categories)
        else:
            try:
                states[n] = tuple(sorted(column.dropna().unique().tolist()))
            except TypeError:
                raise DataError(
                    f"column {n!r} mixes value types that cannot be sorted; pass state_names={{{n!r}: [...]}}."
                ) from None
        if not states[n]:
            raise DataError(f"column {n!r} has no observed value, so its states are unknown; pass state_names.")
    codes = np.stack([encode_column(data[n], states[n], n) for n in nodes], dtype=np.int32)
    codes = codes.reshape(len(nodes), len(data))
    # column-major int32 (N, V): every node's column is contiguous, which family counting needs to be fast
    return _Design(nodes, parents, states, torch.as_tensor(codes, device=device).T)


def _refuse_missing(design: _Design, data: pd.DataFrame, remedy: str) -> None:
    refuse_missing(design.nodes, (design.codes < 0).cpu().numpy(), data, remedy)


def _counts(design: _Design, node: Hashable, rows: torch.Tensor | None = None) -> torch.Tensor:
    parents, child = design.family(node)
    codes = design.codes if rows is None else design.codes[rows]
    return ops._family_counts(codes, design.cards(), parents + [child])  # callers drop or refuse missing cells


def _normalise(counts: torch.Tensor) -> torch.Tensor:
    totals = counts.sum(-1, keepdim=True)
    uniform = torch.full_like(counts, 1.0 / counts.shape[-1])
    return torch.where(totals > 0, counts / torch.where(totals > 0, totals, torch.ones_like(totals)), uniform)


def _pseudo_counts(node: Hashable, counts: torch.Tensor, prior: str, ess: float, pseudo: Any) -> torch.Tensor:
    if prior == "k2":
        return torch.ones_like(counts)
    if prior == "bdeu":
        if not float(ess) > 0:
            raise ModelSpecError(f"equivalent_sample_size must be > 0, got {ess!r}; a common choice is 1 or 10.")
        return torch.full_like(counts, float(ess) / counts.numel())
    if pseudo is None:
        raise ModelSpecError(
            "prior='dirichlet' needs pseudo_counts: a positive number or {node: array (*parent_cards, card)}."
        )
    value = pseudo[node] if isinstance(pseudo, Mapping) else pseudo
    alpha = torch.as_tensor(np.asarray(value, dtype=np.float64), dtype=counts.dtype, device=counts.device)
    if alpha.dim() and tuple(alpha.shape) != tuple(counts.shape):
        raise ModelSpecError(
            f"pseudo_counts[{node!r}] has shape {tuple(alpha.shape)}; expected (*parent_cards, card) = {tuple(counts.shape)}."
        )
    if not bool((alpha > 0).all()):
        raise ModelSpecError(f"pseudo_counts for {node!r} must all be > 0 (Dirichlet parameters).")
    return alpha.expand_as(counts).clone()


def _em(design: _Design, max_iter: int, tol: float) -> DiscreteBayesianNetwork:
    codes, cards = design.codes, design.cards()
    unobserved = [n for n, all_missing in zip(design.nodes, (codes < 0).all(0).tolist()) if all_missing]
    if unobserved:
        raise DataError(
            f"columns {unobserved} are entirely missing (latent variables); EM for latent variables is not supported yet."
        )
    families = {n: design.family(n) for n in design.nodes}
    incomplete = {n: (codes[:, f[0] + [f[1]]] < 0).any(1) for n, f in families.items()}
    tables = {n: _normalise(_counts(design, n, ~incomplete[n]) + 1) for n in design.nodes}
    all_vars = tuple(range(len(design.nodes)))
    previous = -float("inf")
    for _ in range(max_iter):
        net = ops.NetworkTensors(tuple(cards), tuple(tuple(f[0]) for f in families.values()), tuple(tables.values()))
        loglik = float(ops.log_probability_of_evidence(net, all_vars, codes).sum())
        for n, (parents, child) in families.items():
            counts = _counts(design, n, ~incomplete[n])
            if bool(incomplete[n].any()):
                posterior = ops.marginals(net, tuple(parents) + (child,), all_vars, codes[incomplete[n]]).probs
                counts = counts + posterior.sum(0)
            tables[n] = _normalise(counts)
        if loglik - previous <= tol * abs(loglik):
            break
        previous = loglik
    else:
        message = f"EM did not converge in {max_iter} iterations (log-likelihood {loglik:.6g}); raise max_iter."
        warnings.warn(message, ConvergenceWarning, stacklevel=3)
    return design.network(tables)
