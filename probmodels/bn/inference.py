"""Queries on a :class:`~probmodels.bn.DiscreteBayesianNetwork` by variable and state names.

:class:`Inference` translates names to codes, calls the tensor algorithms of
:mod:`probmodels.bn.ops` and names the results. Single queries take evidence
as ``{node: state}``; batched ones take a DataFrame with one row per query
(missing cells = not observed) and run as ONE contraction. A batched network
(e.g. posterior draws of the CPTs) adds its batch dims in front of every result.
Single queries on an unbatched CPU network are answered from a per-pattern
cache of the joint ``P(query, evidence variables)``, indexed by the observed
states (see :data:`JOINT_CACHE_ENTRIES`).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

from .._validation import check_positive_int
from ..exceptions import DataError, ModelSpecError, ShapeError
from . import contract, gibbs, ops
from ._named_queries import _NamedQueries
from .network import DiscreteBayesianNetwork

__all__ = ["Inference", "QueryResult"]

Evidence = Mapping[Hashable, Hashable]

JOINT_CACHE_ENTRIES = 1 << 14
"""Largest joint ``P(query, evidence variables)`` that :class:`Inference` caches per query pattern."""
JOINT_STEP_ENTRIES = 1 << 20
"""Largest contraction step allowed when computing such a joint; larger patterns are answered without the cache."""
JOINT_CACHE_PATTERNS = 1024
"""Query patterns whose joints one :class:`Inference` keeps (the oldest is dropped first)."""


def encode_column(column: pd.Series, states: Sequence[Hashable], name: Hashable) -> np.ndarray:
    """State codes of a DataFrame column: ``-1`` for missing values; :class:`DataError` for unknown values."""
    if isinstance(column.dtype, pd.CategoricalDtype) and list(column.cat.categories) == list(states):
        return column.array.codes.astype(np.int64)
    values = column.astype(object)
    mapped = values.map({s: i for i, s in enumerate(states)})
    unknown = mapped.isna() & values.notna()
    if unknown.any():
        raise DataError(
            f"column {name!r} holds {values[unknown].unique()[:5].tolist()} (first at row {unknown.idxmax()!r}), "
            f"which are not states of {name!r}: {tuple(states)}."
        )
    return mapped.fillna(-1).to_numpy(dtype=np.int64)


def column_states(column: pd.Series, name: Hashable) -> tuple[Hashable, ...]:
    """States of a DataFrame column: its categories when categorical, else its sorted distinct observed values."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return tuple(column.cat.categories)
    try:
        return tuple(sorted(column.dropna().unique().tolist()))
    except TypeError:
        raise DataError(f"column {name!r} mixes value types that cannot be sorted; pass state_names={{{name!r}: [...]}}.") from None


class QueryResult(NamedTuple):
    """A (joint) distribution over named variables, possibly batched."""

    variables: tuple[Hashable, ...]
    """The query variables, in the order of the last axes of ``probs``."""
    states: tuple[tuple[Hashable, ...], ...]
    """State names of each variable."""
    probs: torch.Tensor
    """``(*batch, *cards)`` probabilities ``P(variables | evidence)``."""
    log_evidence: torch.Tensor
    """``(*batch)`` ``log P(evidence)`` (a likelihood-weighting estimate for approximate queries)."""

    def to_pandas(self) -> pd.Series | pd.DataFrame:
        """A Series indexed by states (unbatched) or a DataFrame with one row per batch element (1-D batch)."""
        index = pd.MultiIndex.from_product(self.states, names=self.variables)
        if len(self.variables) == 1:
            index = index.get_level_values(0)
        batch = self.probs.dim() - len(self.variables)
        flat = self.probs.detach().cpu().reshape(self.probs.shape[:batch] + (-1,)).numpy()
        if batch == 0:
            return pd.Series(flat, index=index, name="probability")
        if batch == 1:
            return pd.DataFrame(flat, columns=index)
        raise ShapeError(
            f"to_pandas handles at most one batch dim; probs has batch shape {tuple(self.probs.shape[:batch])}."
        )


class Inference(_NamedQueries):
    """Exact (and likelihood-weighting or Gibbs) inference on a discrete Bayesian network.

    Parameters
    ----------
    network : DiscreteBayesianNetwork
        A network with a CPD for every node. Later changes to it are not seen:
        build a new :class:`Inference` after :meth:`~DiscreteBayesianNetwork.add_cpd`.

    Examples
    --------
    >>> from probmodels.bn import DiscreteBayesianNetwork, Inference
    >>> net = DiscreteBayesianNetwork(cpds={
    ...     "rain": ((), ("no", "yes"), [0.8, 0.2]),
    ...     "wet": (("rain",), ("dry", "wet"), [[0.9, 0.1], [0.2, 0.8]]),
    ... })
    >>> infer = Inference(net)
    >>> infer.query(["rain"], evidence={"wet": "wet"})["rain"].probs.round(decimals=3).tolist()
    [0.333, 0.667]
    >>> infer.map_query(["rain"], {"wet": "wet"})
    {'rain': 'yes'}
    >>> infer.query(["wet"], do={"rain": "yes"})["wet"].probs.tolist()
    [0.2, 0.8]
    """

    _NETWORK = DiscreteBayesianNetwork
    network: DiscreteBayesianNetwork
    _tensors: ops.NetworkTensors

    def __init__(self, network: DiscreteBayesianNetwork) -> None:
        super().__init__(network)  # validates the tensors once (they are immutable for this object)
        self._states = {node: network.states(node) for node in self._nodes}
        self._joints: dict[tuple[tuple[int, ...], tuple[int, ...]], tuple[np.ndarray, np.ndarray] | None] = {}

    # ------------------------------------------------------------------ exact queries

    def query(
        self,
        variables: Sequence[Hashable],
        evidence: Evidence | None = None,
        *,
        joint: bool = False,
        do: Evidence | None = None,
    ) -> QueryResult | dict[Hashable, QueryResult]:
        """Posterior ``P(variables | evidence)``, optionally under interventions ``do``.

        Parameters
        ----------
        variables : sequence of node names
            Query variables.
        evidence : mapping, optional
            ``{node: state}`` observations (None/NaN values are ignored).
        joint : bool, default False
            Return one joint distribution instead of one marginal per variable.
        do : mapping, optional
            ``{node: state}`` interventions (graph surgery before conditioning).

        Returns
        -------
        QueryResult or dict of QueryResult
            The joint (``joint=True``) or ``{variable: marginal}``.

        Raises
        ------
        DataError
            When the evidence has probability zero (the conditional is undefined).
        """
        ev_vars, codes = self._evidence_codes(evidence)
        return self._query(variables, ev_vars, codes, joint, do, lambda rows: dict(evidence or {}))

    def query_batch(
        self,
        variables: Sequence[Hashable],
        evidence: pd.DataFrame,
        *,
        joint: bool = False,
        do: Evidence | None = None,
    ) -> QueryResult | dict[Hashable, QueryResult]:
        """:meth:`query` for every row of ``evidence`` in one contraction; results gain a row axis.

        Parameters
        ----------
        variables, joint, do
            As in :meth:`query`.
        evidence : pandas.DataFrame
            One column per evidence node, state names as values; a missing
            value (NaN/None) means the node is not observed in that row.

        Returns
        -------
        QueryResult or dict of QueryResult
            ``probs`` shaped ``(*network_batch, n_rows, *cards)``.
        """
        ev_vars, codes = self._frame_codes(evidence)
        return self._query(variables, ev_vars, codes, joint, do, lambda rows: evidence.iloc[rows[:3]].to_dict("records"))

    def log_probability(
        self, evidence: Evidence | pd.DataFrame | None = None, *, do: Evidence | None = None
    ) -> torch.Tensor:
        """``log P(evidence)``: a scalar for a mapping, one value per row for a DataFrame (``-inf`` if impossible).

        For a DataFrame of complete rows this is the per-observation log-likelihood.
        """
        ev_vars, codes = self._codes(evidence)
        log_prob = ops.log_probability_of_evidence(self._net(do), ev_vars, self._align(codes))
        return log_prob.movedim(0, len(self._batch)) if codes.dim() > 1 else log_prob

    def map_query(
        self, variables: Sequence[Hashable] | None = None, evidence: Evidence | pd.DataFrame | None = None
    ) -> dict[Hashable, Hashable] | pd.DataFrame:
        """Most probable states of ``variables`` given the evidence.

        With ``variables=None`` this is the most probable explanation of every
        unobserved node (max-product); otherwise the other unobserved nodes are
        summed out. Ties go to the first state.

        Parameters
        ----------
        variables : sequence, optional
            Nodes to maximise over; None means all unobserved nodes.
        evidence : mapping or DataFrame, optional
            One evidence set, or one per row (answered in one batched pass).

        Returns
        -------
        dict or pandas.DataFrame
            ``{node: state}``, or one row per evidence row (unbatched network only).
        """
        batched = isinstance(evidence, pd.DataFrame)
        ev_vars, codes = self._codes(evidence)
        if variables is None:
            observed = set(ev_vars) if not batched else {v for j, v in enumerate(ev_vars) if bool((codes[:, j] >= 0).all())}
            variables = [node for node in self._nodes if self._index[node] not in observed]
        query = self._variables(variables)
        result = ops.map_assignment(self._net(None), query, ev_vars, self._align(codes))
        self._check_possible(
            result.log_prob, lambda rows: evidence.iloc[rows[:3]].to_dict("records") if batched else evidence
        )
        names = [self._nodes[v] for v in query]
        if batched and not self._batch:
            values = result.codes.cpu().numpy()
            columns = {n: pd.Categorical.from_codes(values[:, j], self._states[n]) for j, n in enumerate(names)}
            return pd.DataFrame(columns, index=evidence.index)
        if batched or self._batch:
            raise ShapeError(
                "map_query names the states for an unbatched network; "
                "use probmodels.bn.ops.map_assignment for the codes on a batched one."
            )
        return {n: self._states[n][int(c)] for n, c in zip(names, result.codes.tolist())}

    # ------------------------------------------------------------------ sampling

    def sample(
        self,
        num_samples: int,
        evidence: Evidence | None = None,
        *,
        codes: bool = False,
        generator: torch.Generator | None = None,
    ) -> pd.DataFrame:
        """Forward (ancestral) samples; with evidence, likelihood-weighted samples.

        Parameters
        ----------
        num_samples : int
            Number of rows.
        evidence : mapping, optional
            ``{node: state}``: observed nodes are clamped and the rows get a
            ``_weight`` column ``P(evidence | parents)``.
        codes : bool, default False
            Integer state codes instead of categorical columns of state names.
        generator : torch.Generator, optional
            Source of randomness.

        Returns
        -------
        pandas.DataFrame
            One column per node (in :attr:`DiscreteBayesianNetwork.nodes` order).
        """
        if self._batch:
            raise ShapeError(f"sample needs an unbatched network; this one has batch shape {self._batch}. Use ops.sample.")
        num_samples = check_positive_int(num_samples, "num_samples")
        ev_vars, ev_codes = self._evidence_codes(evidence)
        draws = ops.sample(self._tensors, num_samples, ev_vars, ev_codes, generator)
        values = draws.codes.cpu().numpy()
        column = lambda i, n: values[:, i] if codes else pd.Categorical.from_codes(values[:, i], self._states[n])  # noqa: E731
        frame = pd.DataFrame({n: column(i, n) for i, n in enumerate(self._nodes)})
        if ev_vars:
            frame["_weight"] = draws.log_weights.exp().cpu().numpy()
        return frame

    def approximate_query(
        self,
        variables: Sequence[Hashable],
        evidence: Evidence | None = None,
        *,
        num_samples: int = 10_000,
        method: str = "likelihood_weighting",
        num_chains: int = 100,
        burn_in: int = 100,
        generator: torch.Generator | None = None,
    ) -> QueryResult:
        """Joint ``P(variables | evidence)`` estimated by likelihood weighting or Gibbs sampling.

        Parameters
        ----------
        variables : sequence of node names
            Query variables.
        evidence : mapping, optional
            ``{node: state}`` observations (None/NaN values are ignored).
        num_samples : int, default 10000
            Number of draws (Gibbs: split over the chains, rounded up to a multiple of ``num_chains``).
        method : {"likelihood_weighting", "gibbs"}, default "likelihood_weighting"
            Weighted ancestral samples (:func:`~probmodels.bn.ops.sample`), or
            ``num_chains`` Gibbs chains (:func:`~probmodels.bn.gibbs.gibbs_sample`).
        num_chains : int, default 100
            Gibbs only: parallel chains, started from weight-resampled likelihood-weighted draws.
        burn_in : int, default 100
            Gibbs only: sweeps discarded at the start of each chain.
        generator : torch.Generator, optional
            Source of randomness (on the network's device).

        Returns
        -------
        QueryResult
            (Weighted) frequencies (batched networks: one estimate per batch
            element) and ``log_evidence`` = log of the mean likelihood weight
            (Gibbs: of the ``num_chains`` initial draws).

        Raises
        ------
        ModelSpecError
            For an unknown ``method``.
        DataError
            When no likelihood-weighted draw fits the evidence, which is
            always so when it has probability zero.
        """
        methods = ("likelihood_weighting", "gibbs")
        if method not in methods:
            raise ModelSpecError(f"method must be one of {methods}, got {method!r}.")
        num_samples = check_positive_int(num_samples, "num_samples")
        query = self._variables(variables)
        ev_vars, ev_codes = self._evidence_codes(evidence)
        if method == "gibbs":
            num_chains = check_positive_int(num_chains, "num_chains")
            num_draws = -(-num_samples // num_chains)
            chains = gibbs.gibbs_sample(
                self._tensors, num_chains, num_draws, ev_vars, ev_codes, burn_in=burn_in, generator=generator
            )
            codes, log_evidence = chains.codes.flatten(0, 1), chains.log_evidence
            weights = torch.ones(codes.shape[:-1], dtype=log_evidence.dtype, device=codes.device)
        else:
            draws = ops.sample(self._tensors, num_samples, ev_vars, ev_codes, generator)
            codes, weights = draws.codes, draws.log_weights.exp()
            log_evidence = torch.logsumexp(draws.log_weights, 0) - np.log(num_samples)
        flat = torch.zeros_like(codes[..., 0])
        for v in query:
            flat = flat * self._tensors.cards[v] + codes[..., v]
        size = int(np.prod([self._tensors.cards[v] for v in query]))
        totals = torch.zeros(weights.shape[1:] + (size,), dtype=weights.dtype, device=weights.device)
        totals.scatter_add_(-1, flat.movedim(0, -1), weights.movedim(0, -1))
        self._check_possible(log_evidence, lambda rows: dict(evidence or {}))
        mass = totals.sum(-1, keepdim=True)
        probs = (totals / mass).reshape(totals.shape[:-1] + tuple(self._tensors.cards[v] for v in query))
        names = tuple(self._nodes[v] for v in query)
        return QueryResult(names, tuple(self._states[n] for n in names), probs, log_evidence)

    # ------------------------------------------------------------------ helpers

    def _query(self, variables, ev_vars, codes, joint, do, describe) -> QueryResult | dict[Hashable, QueryResult]:
        query = self._variables(variables)
        net = self._net(do)
        codes = self._align(codes)
        groups = [query] if joint else [(v,) for v in query]
        results = {}
        for group in groups:
            result = self._cached_marginals(group, ev_vars, codes) if not do else None
            if result is None:
                result = ops.marginals(net, group, ev_vars, codes)
            self._check_possible(result.log_evidence, describe)
            probs, log_evidence = result.probs, result.log_evidence
            if codes.dim() > 1:
                probs, log_evidence = probs.movedim(0, len(self._batch)), log_evidence.movedim(0, len(self._batch))
            names = tuple(self._nodes[v] for v in group)
            results[names] = QueryResult(names, tuple(self._states[n] for n in names), probs, log_evidence)
        return results[tuple(self._nodes[v] for v in query)] if joint else {k[0]: r for k, r in results.items()}

    def _cached_marginals(
        self, group: tuple[int, ...], ev_vars: tuple[int, ...], codes: torch.Tensor
    ) -> ops.Marginals | None:
        """One query answered from the cached joint ``P(group, evidence variables)``, or None when not applicable.

        Applies to an unbatched CPU network, one evidence set and query
        variables disjoint from the evidence. The joint of each (query,
        evidence variables) pattern is contracted once (when it has at most
        :data:`JOINT_CACHE_ENTRIES` entries and no step of its contraction more
        than :data:`JOINT_STEP_ENTRIES`) and every later query with that
        pattern only indexes the conditional ``P(q | e) = J[q, e] / sum_q J[q, e]``
        (zeros where ``P(e) = sum_q J[q, e]`` is zero) and ``log P(e)``, cached with
        it, by the observed states.
        """
        if self._batch or codes.dim() != 1 or codes.device.type != "cpu" or set(group) & set(ev_vars):
            return None
        key = (group, ev_vars)
        if key not in self._joints:
            net, scope = self._tensors, group + ev_vars
            kept = ops._relevant(net.parents, frozenset(scope))  # ancestors: barren nodes sum to one
            labels = [net.parents[v] + (v,) for v in kept]
            if (
                np.prod([net.cards[v] for v in scope]) > JOINT_CACHE_ENTRIES
                or contract.largest_step(labels, scope, {v: net.cards[v] for v in kept}) > JOINT_STEP_ENTRIES
            ):
                self._joints[key] = None
            else:
                joint = contract.sum_contract([net.tables[v] for v in kept], labels, scope).numpy()
                evidence = joint.sum(tuple(range(len(group))))
                safe = np.where(evidence > 0, evidence, 1)
                with np.errstate(divide="ignore"):
                    self._joints[key] = (joint / safe, np.log(evidence))
            if len(self._joints) > JOINT_CACHE_PATTERNS:
                del self._joints[next(iter(self._joints))]
        cached = self._joints[key]
        if cached is None:
            return None
        conditional, log_evidence = cached
        states = tuple(codes.tolist())
        probs = torch.from_numpy(conditional[(...,) + states].copy())
        return ops.Marginals(probs, torch.tensor(log_evidence[states], dtype=probs.dtype))

    def _net(self, do: Evidence | None) -> ops.NetworkTensors:
        if not do:
            return self._tensors
        forced = {self._index[self._node(n)]: self.network.state_code(n, s) for n, s in do.items()}
        return ops.intervene(self._tensors, forced)

    def _align(self, codes: torch.Tensor) -> torch.Tensor:
        """Put the rows of batched evidence in front of the network's batch dims."""
        return codes.reshape(codes.shape[:1] + (1,) * len(self._batch) + codes.shape[1:]) if codes.dim() > 1 else codes

    def _evidence_codes(self, evidence: Evidence | None) -> tuple[tuple[int, ...], torch.Tensor]:
        items = [(n, s) for n, s in (evidence or {}).items() if not (pd.api.types.is_scalar(s) and pd.isna(s))]
        ev_vars = tuple(self._index[self._node(n)] for n, _ in items)
        codes = [self.network.state_code(n, s) for n, s in items]
        return ev_vars, torch.tensor(codes, dtype=torch.long, device=self.network.device)

    def _codes(self, evidence: Evidence | pd.DataFrame | None) -> tuple[tuple[int, ...], torch.Tensor]:
        return self._frame_codes(evidence) if isinstance(evidence, pd.DataFrame) else self._evidence_codes(evidence)

    def _frame_codes(self, frame: pd.DataFrame) -> tuple[tuple[int, ...], torch.Tensor]:
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"evidence must be a pandas DataFrame with one column per node, got {type(frame).__name__}.")
        columns = [encode_column(frame[name], self._states[self._node(name)], name) for name in frame.columns]
        codes = np.stack(columns, -1) if columns else np.zeros((len(frame), 0), dtype=np.int64)
        ev_vars = tuple(self._index[n] for n in frame.columns)
        return ev_vars, torch.as_tensor(codes, device=self.network.device)

    @staticmethod
    def _check_possible(log_evidence: torch.Tensor, describe) -> None:
        if not log_evidence.dim() and log_evidence.item() > -math.inf:
            return
        impossible = torch.isneginf(log_evidence)
        if bool(impossible.any()):
            where = impossible.nonzero()
            rows = where[:, 0].unique().tolist() if log_evidence.dim() else []
            raise DataError(
                f"the evidence {describe(rows)} has probability 0 under the network"
                + (f" (at batch index {where[0].tolist()}, {int(impossible.sum())} cases)" if log_evidence.dim() else "")
                + ", so the conditional distribution is undefined; fix the evidence, or use log_probability, "
                "which returns -inf for it."
            )
