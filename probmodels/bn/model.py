"""Bayesian CPTs of a discrete Bayesian network through the inference core, for missing data and hidden nodes.

:class:`DirichletCPTModel` is a Pyro program: every CPT is one Dirichlet
site ``cpt_<node>`` of shape ``(n_parent_configs, card)`` (one independent
Dirichlet per row, BDeu, K2 or user pseudo-counts), and the data enter as
integer codes ``(n_rows, n_nodes)`` with ``-1`` for a missing cell. Each
row's log-likelihood sums its missing cells out exactly
(:mod:`~probmodels.bn._row_likelihood`) and is the
``pyro.factor`` ``"data"`` in the data plate ``"rows"``, so LOO and WAIC see one term per
row. :func:`cpt_posterior` builds it from a DataFrame, runs
:func:`~probmodels.fit_mcmc` (NUTS) or :func:`~probmodels.fit_svi`, and
returns a :class:`CPTPosterior`: posterior draws of all CPTs as one batched
network, the posterior-mean network, and queries with credible intervals.

With complete data the posterior is conjugate (:func:`~probmodels.bn.dirichlet_posterior`
draws it exactly, and :meth:`DirichletCPTModel.exact_log_evidence` is the
BDeu/K2 score); missing cells make it a mixture of Dirichlets, which this
module samples. Missing cells are assumed missing at random.

Hidden nodes. The states of a hidden node are identified only up to a
relabelling: with a symmetric prior the posterior has one mode per
permutation of its states (label switching). Chains may settle in different
modes (R-hat then warns) or one chain may visit several; the CPT entries of
the hidden node and of its children are then averages over relabellings, so
their means drift toward symmetric values and their intervals widen. Queries
about observed nodes only (the hidden node summed out) do not depend on the
labels and are unaffected.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pyro
import pyro.distributions as dist
import torch

from ..core.mcmc import fit_mcmc
from ..core.posterior import Posterior
from ..core.svi import fit_svi
from ..exceptions import DataError, ModelSpecError, ShapeError
from ._design import Design, Structure, check_prior, cpt_pseudo_counts, family_counts, prepare_design
from ._learning import learning_structure
from ._row_likelihood import RowPlan, evaluate_rows, plan_rows
from ._uncertain import UncertainQuery, query_on_draws
from .inference import encode_column
from .learn import DirichletPosterior
from .network import DiscreteBayesianNetwork

__all__ = ["DirichletCPTModel", "CPTPosterior", "cpt_posterior", "METHODS"]

METHODS = ("nuts", "svi")
"""Accepted values of ``method`` in :func:`cpt_posterior`."""


class DirichletCPTModel:
    """Dirichlet priors on all CPTs of a discrete Bayesian network, as a Pyro program.

    Call it as ``model(codes)`` with ``codes`` ``(n_rows, n_nodes)`` integer
    state codes, columns in the order of :attr:`nodes`, ``-1`` for a missing
    cell (:meth:`encode` makes them from a DataFrame).

    Parameters
    ----------
    structure : DiscreteBayesianNetwork, networkx.DiGraph or iterable of (parent, child) pairs
        The DAG (a network's CPDs fix parent orders and states).
    state_names : mapping, optional
        ``{node: states}`` for every node whose states the structure network
        does not give.
    prior : {"bdeu", "k2", "dirichlet"}, default "bdeu"
        As in :func:`~probmodels.bn.dirichlet_posterior`.
    equivalent_sample_size : float, default 10.0
        For BDeu.
    pseudo_counts : float or mapping, optional
        For ``"dirichlet"``: one positive number or ``{node: array (*parent_cards, card)}``.

    Attributes
    ----------
    nodes : tuple
        Nodes in topological order (the code columns).
    parents, states : dict
        Parents (CPT axis order) and state names of every node.
    concentration : dict of str to torch.Tensor
        Dirichlet parameters of each node's CPT, ``(*parent_cards, card)`` float64.
    sites : dict
        ``node -> name`` of its Pyro sample site (``"cpt_<node>"``).
    """

    observed: ClassVar[tuple[str, ...]] = ("data",)
    max_plate_nesting: ClassVar[int] = 1

    def __init__(
        self,
        structure: Structure,
        state_names: Mapping[Hashable, Sequence[Hashable]] | None = None,
        *,
        prior: str = "bdeu",
        equivalent_sample_size: float = 10.0,
        pseudo_counts: float | Mapping[Hashable, Any] | None = None,
    ) -> None:
        prior = check_prior(prior)
        template, _, nodes, parents = learning_structure(structure, pd.DataFrame(), DiscreteBayesianNetwork)
        states = {}
        for node in nodes:
            if state_names is not None and node in state_names:
                states[node] = tuple(state_names[node])
            elif template is not None and template.has_cpd(node):
                states[node] = template.states(node)
            else:
                raise ModelSpecError(
                    f"the states of node {node!r} are unknown; pass state_names={{{node!r}: [...]}} "
                    "or a structure network with a CPD for it."
                )
            if not states[node] or len(set(states[node])) != len(states[node]):
                raise ModelSpecError(f"the states {states[node]} of {node!r} must be a non-empty list of distinct names.")
        self.nodes, self.parents, self.states = nodes, parents, states
        self.sites = {node: f"cpt_{node}" for node in nodes}
        if len(set(self.sites.values())) != len(nodes):
            raise ModelSpecError(
                f"nodes {list(nodes)} have names that coincide as strings; site names 'cpt_<node>' must be unique."
            )
        self._design = Design(nodes, parents, states, torch.zeros(0, len(nodes), dtype=torch.int32))
        self.concentration = {
            node: cpt_pseudo_counts(
                node, torch.zeros(self._design.table_shape(node), dtype=torch.float64), prior,
                equivalent_sample_size, pseudo_counts,
            )
            for node in nodes
        }
        index = {node: i for i, node in enumerate(nodes)}
        self._cards = tuple(len(states[node]) for node in nodes)
        self._parent_indices = tuple(tuple(index[p] for p in parents[node]) for node in nodes)
        self._cast: dict[tuple[torch.dtype, torch.device], list[torch.Tensor]] = {}
        self._planned: tuple[torch.Tensor, int, RowPlan] | None = None

    # ------------------------------------------------------------------ the Pyro program
    def __call__(self, codes: torch.Tensor) -> None:
        plan = self._plan(codes)
        dtype = torch.get_default_dtype()
        tables = []
        for node, concentration in zip(self.nodes, self._concentrations(dtype, codes.device)):
            value = pyro.sample(self.sites[node], dist.Dirichlet(concentration).to_event(1))
            tables.append(value.reshape(value.shape[:-2] + self._design.table_shape(node)))
        with pyro.plate("rows", codes.shape[0], dim=-1):
            pyro.factor("data", evaluate_rows(plan, tuple(tables), self._parent_indices))

    def _plan(self, codes: torch.Tensor) -> RowPlan:
        """The checked codes' :class:`RowPlan`, made once per codes tensor (so a traced call has no data-dependent step)."""
        # the cache holds the tensor itself, so identity plus its version counter (bumped by in-place edits) is sound
        if self._planned is None or self._planned[0] is not codes or self._planned[1] != codes._version:
            self.check_codes(codes)
            self._planned = (codes, codes._version, plan_rows(self._cards, self._parent_indices, codes))
        return self._planned[2]

    def _concentrations(self, dtype: torch.dtype, device: torch.device) -> list[torch.Tensor]:
        key = (dtype, device)
        if key not in self._cast:
            self._cast[key] = [
                self.concentration[n].reshape(-1, len(self.states[n])).to(dtype=dtype, device=device) for n in self.nodes
            ]
        return self._cast[key]

    # ------------------------------------------------------------------ data
    def encode(self, data: pd.DataFrame, device: str | torch.device | None = None) -> torch.Tensor:
        """``(n_rows, n_nodes)`` long codes of a DataFrame (NaN/None -> ``-1``; absent node columns -> hidden).

        Raises
        ------
        DataError
            A column that is not a node, or a value that is not a state of its node.
        """
        if not isinstance(data, pd.DataFrame):
            raise TypeError(f"data must be a pandas DataFrame with one column per node, got {type(data).__name__}.")
        check_columns(data, self.nodes)
        columns = [
            encode_column(data[n], self.states[n], n) if n in data.columns else np.full(len(data), -1, dtype=np.int64)
            for n in self.nodes
        ]
        codes = np.stack(columns, -1).reshape(len(data), len(self.nodes))
        return torch.as_tensor(codes, dtype=torch.long, device=device)

    def check_codes(self, codes: torch.Tensor) -> None:
        """Raise :class:`ShapeError`/:class:`DataError` unless ``codes`` are ``(n_rows, n_nodes)`` codes in ``[-1, card)``."""
        if not isinstance(codes, torch.Tensor) or codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool:
            raise DataError(
                f"codes must be an integer tensor of state codes (-1 = missing), got "
                f"{getattr(codes, 'dtype', type(codes).__name__)}; make them with model.encode(dataframe)."
            )
        if codes.dim() != 2 or codes.shape[1] != len(self.nodes):
            raise ShapeError(
                f"codes have shape {tuple(codes.shape)}; expected (n_rows, {len(self.nodes)}), one column per node "
                f"in the order {list(self.nodes)}."
            )
        cards = torch.tensor(self._cards, device=codes.device)
        bad = (codes < -1) | (codes >= cards)
        if bool(bad.any()):
            j = int(bad.any(0).nonzero()[0])
            raise DataError(
                f"codes of node {self.nodes[j]!r} (column {j}) hold {codes[:, j][bad[:, j]][:3].tolist()}, outside "
                f"[-1, {self._cards[j]}); -1 marks a missing cell."
            )

    # ------------------------------------------------------------------ exact answers
    def conjugate_posterior(self, codes: torch.Tensor) -> DirichletPosterior:
        """The exact (conjugate) posterior of complete data; :class:`ModelSpecError` with missing cells."""
        self.check_codes(codes)
        if bool((codes < 0).any()):
            raise ModelSpecError(
                "the data have missing cells (or hidden nodes), so the CPT posterior is a mixture of Dirichlets and "
                "the evidence has no closed form; estimate it with probmodels.diagnostics.log_evidence(fit, "
                "method='bridge') on a fit of this model."
            )
        design = self._design._replace(codes=codes.to(torch.int32))
        counts = {n: family_counts(design, n) for n in self.nodes}
        alphas = {n: self.concentration[n].to(counts[n].device) for n in self.nodes}
        return DirichletPosterior(design, counts, alphas)

    def exact_log_evidence(self, codes: torch.Tensor) -> float:
        """Closed-form ``log p(codes)`` with the CPTs integrated out: the BDeu/K2 score of complete data.

        Raises
        ------
        ModelSpecError
            When a cell is missing: the evidence is then a sum over all
            completions and has no closed form; use
            ``probmodels.diagnostics.log_evidence(fit, method="bridge")``.
        """
        return float(self.conjugate_posterior(codes).log_marginal_likelihood())

    def network(self, tables: Mapping[Hashable, torch.Tensor]) -> DiscreteBayesianNetwork:
        """The network with CPTs ``{node: (*batch, *parent_cards, card)}`` (or site values ``(*batch, q, card)``)."""
        shaped = {}
        for node in self.nodes:
            table = torch.as_tensor(tables[node])
            shaped[node] = table.reshape(table.shape[:-2] + self._design.table_shape(node))
        return self._design.network(shaped)


class CPTPosterior:
    """Posterior of all CPTs fitted through the inference core (built by :func:`cpt_posterior`).

    Attributes
    ----------
    posterior : Posterior
        The core's result: draws of the sites ``cpt_<node>`` shaped
        ``(chain, draw, n_parent_configs, card)``, diagnostics, ArviZ export,
        and the input of :func:`probmodels.diagnostics.log_evidence`.
    model : DirichletCPTModel
        The model it samples.
    hidden : tuple
        Nodes without a column in the data.
    """

    def __init__(self, posterior: Posterior, model: DirichletCPTModel, hidden: Sequence[Hashable] = ()) -> None:
        self.posterior = posterior
        self.model = model
        self.hidden = tuple(hidden)

    @property
    def num_draws(self) -> int:
        """Number of posterior draws, all chains together."""
        return self.posterior.num_chains * self.posterior.num_draws

    def sample_cpts(self, n_draws: int | None = None) -> DiscreteBayesianNetwork:
        """Posterior draws of all CPTs as one network with batch shape ``(n_draws,)``.

        Parameters
        ----------
        n_draws : int, optional
            How many of the fit's draws to use, evenly spaced over all chains
            (thinning, so no random state is involved); None: all of them.

        Raises
        ------
        ModelSpecError
            When more draws are asked for than the fit has.
        """
        total = self.num_draws
        if n_draws is None:
            n_draws = total
        if isinstance(n_draws, bool) or not isinstance(n_draws, (int, np.integer)) or not 1 <= n_draws <= total:
            raise ModelSpecError(
                f"n_draws must be an integer in [1, {total}] (the fit's draws, all chains), got {n_draws!r}; "
                "fit with more num_samples for more draws."
            )
        picks = torch.linspace(0, total - 1, int(n_draws)).round().long()
        draws = {n: self.posterior.flat(site) for n, site in self.model.sites.items()}
        return self.model.network({n: value[picks.to(value.device)] for n, value in draws.items()})

    def mean(self) -> DiscreteBayesianNetwork:
        """The network of posterior-mean CPTs."""
        return self.model.network({n: self.posterior.flat(s).mean(0) for n, s in self.model.sites.items()})

    def query_with_uncertainty(
        self,
        variables: Sequence[Hashable],
        evidence: Mapping[Hashable, Hashable] | None = None,
        *,
        n_draws: int | None = None,
        level: float = 0.9,
        joint: bool = False,
        do: Mapping[Hashable, Hashable] | None = None,
    ) -> UncertainQuery | dict[Hashable, UncertainQuery]:
        """A query answered on posterior draws of the CPTs, with a credible interval.

        Parameters
        ----------
        variables, evidence, joint, do
            As in :meth:`~probmodels.bn.Inference.query`.
        n_draws : int, optional
            Draws to use (see :meth:`sample_cpts`); None: all.
        level : float, default 0.9
            Probability mass of the equal-tailed interval.

        Returns
        -------
        UncertainQuery or dict of UncertainQuery
            As :meth:`~probmodels.bn.DirichletPosterior.query_with_uncertainty`.
        """
        return query_on_draws(self.sample_cpts(n_draws), variables, evidence, level=level, joint=joint, do=do)


def cpt_posterior(
    structure: Structure,
    data: pd.DataFrame,
    *,
    method: str = "nuts",
    prior: str = "bdeu",
    equivalent_sample_size: float = 10.0,
    pseudo_counts: float | Mapping[Hashable, Any] | None = None,
    state_names: Mapping[Hashable, Sequence[Hashable]] | None = None,
    device: str | torch.device | None = None,
    seed: int = 0,
    **inference_kwargs: Any,
) -> CPTPosterior:
    """Posterior of all CPTs from data with missing cells and hidden nodes, by NUTS or SVI.

    Every missing cell is summed over its states exactly inside the
    likelihood (missing at random assumed); no row is dropped. With complete
    data this samples the conjugate posterior of :func:`~probmodels.bn.dirichlet_posterior`.

    Parameters
    ----------
    structure : DiscreteBayesianNetwork, networkx.DiGraph or iterable of (parent, child) pairs
        The DAG (a network's CPDs fix parent orders and states).
    data : pandas.DataFrame
        One column per observed node; NaN/None marks a missing cell. A
        structure node without a column is hidden (its states must come from
        ``state_names`` or the structure network). A column that is not a node
        raises.
    method : {"nuts", "svi"}, default "nuts"
        :func:`~probmodels.fit_mcmc` or :func:`~probmodels.fit_svi`.
    prior, equivalent_sample_size, pseudo_counts
        The Dirichlet prior, as in :func:`~probmodels.bn.dirichlet_posterior`.
    state_names : mapping, optional
        ``{node: states}``, overriding the states found otherwise.
    device : str or torch.device, optional
        Where to compute (default CPU); the dtype is torch's default dtype.
    seed : int, default 0
        Seed of the core's run.
    **inference_kwargs
        Passed to the core, e.g. ``num_samples``, ``num_warmup``,
        ``num_chains``, ``progress_bar`` (NUTS) or ``num_steps``, ``guide``
        (SVI).

    Returns
    -------
    CPTPosterior

    Raises
    ------
    DataError
        A column that is not a node, a value that is not a state, a hidden
        node without states, or data without any observed cell.

    Warns
    -----
    UserWarning
        When a node is hidden: its posterior is multimodal by label switching
        (see the module notes).

    Examples
    --------
    >>> fit = cpt_posterior(net, data, num_samples=500, num_chains=2)   # doctest: +SKIP
    >>> fit.query_with_uncertainty(["Cancer"], {"Xray": "positive"})["Cancer"].to_pandas()  # doctest: +SKIP
    """
    if method not in METHODS:
        raise ModelSpecError(f"method must be one of {METHODS}, got {method!r}.")
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame with one column per node, got {type(data).__name__}.")
    nodes = learning_structure(structure, data, DiscreteBayesianNetwork).nodes
    check_columns(data, nodes)
    design = prepare_design(structure, data, state_names, device, allow_hidden=True)
    hidden = tuple(n for n in design.nodes if n not in data.columns)
    if not bool((design.codes >= 0).any()):
        raise DataError(
            f"data ({len(data)} rows) has no observed cell, so there is nothing to learn from; pass rows with "
            "observed values (without data the posterior is the prior: dirichlet_posterior on an empty DataFrame "
            "with the node columns returns it exactly)."
        )
    model = DirichletCPTModel(
        structure, design.states, prior=prior, equivalent_sample_size=equivalent_sample_size,
        pseudo_counts=pseudo_counts,
    )
    if hidden:
        warnings.warn(
            f"nodes {list(hidden)} are hidden: their states are identified only up to relabelling, so the posterior "
            "has one mode per permutation of their states (label switching). CPT entries of these nodes and of their "
            "children may average over relabellings (means pulled together, wide intervals, R-hat warnings); queries "
            "about observed nodes only are unaffected.",
            UserWarning,
            stacklevel=2,
        )
    codes = design.codes.long().contiguous()
    if method == "nuts":
        fit = fit_mcmc(model, codes, seed=seed, **inference_kwargs)
    else:
        fit = fit_svi(model, codes, seed=seed, **inference_kwargs)
    return CPTPosterior(fit, model, hidden)


def check_columns(data: pd.DataFrame, nodes: Sequence[Hashable]) -> None:
    """:class:`DataError` for a DataFrame column that is not a node (a typo would make a node silently hidden)."""
    unknown = [c for c in data.columns if c not in set(nodes)]
    if unknown:
        raise DataError(
            f"data columns {unknown} are not nodes of the structure (its nodes are {list(nodes)}); drop them with "
            f"data.drop(columns={unknown}) or fix their names (a node without a column is treated as hidden)."
        )
