"""Decomposable structure scores of discrete Bayesian networks.

A decomposable score is a sum of local scores, one per family (node and
parent set), each a function of the family's contingency table
``N[j, k]`` (``j`` a parent configuration, ``k`` a state of the node):

- ``"bic"``: ``sum_jk N_jk log(N_jk / N_j) - log(N) / 2 * q (r - 1)``;
- ``"aic"``: the same log-likelihood minus ``q (r - 1)``;
- ``"bdeu"``: the log marginal likelihood under Dirichlet rows with every cell
  ``ess / (q r)`` (likelihood-equivalent);
- ``"k2"``: the log marginal likelihood under Dirichlet(1) rows.

``q`` is the number of parent configurations, ``r`` the number of states,
``N`` the number of rows. Every term vanishes for an empty cell or row, so
the scores are computed from the nonzero counts only (pgmpy's K2 is off by
``lgamma(r)`` for every unseen parent configuration; this module is not).

:func:`family_score` is the pure scoring function of count tensors (numpy or
torch, batched over leading axes); :class:`DecomposableScore` encodes a
DataFrame once and caches the local scores by node and parent set, which is
what a structure search needs.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import networkx as nx
import numpy as np
import pandas as pd
import torch
from scipy.special import gammaln, xlogy

from ..exceptions import DataError, ModelSpecError
from .inference import column_states, encode_column

__all__ = ["SCORES", "DiscreteData", "DecomposableScore", "encode_data", "family_score"]

SCORES = ("bic", "aic", "bdeu", "k2")
"""Accepted values of ``score``."""

_DENSE_CELLS = 1 << 20


class DiscreteData(NamedTuple):
    """A DataFrame as state codes, one row per variable."""

    nodes: tuple[Hashable, ...]
    """Variables, in the order of the data's columns."""
    states: dict[Hashable, tuple[Hashable, ...]]
    """State names of every variable."""
    cards: np.ndarray
    """``(V,)`` number of states of every variable."""
    codes: np.ndarray
    """``(V, N)`` int64 state codes (row ``i`` holds the codes of ``nodes[i]``)."""


def encode_data(data: pd.DataFrame, state_names: Mapping[Hashable, Sequence[Hashable]] | None = None) -> DiscreteData:
    """Encode every column of ``data`` as state codes.

    The states of a column come from ``state_names``, else from its categories
    when it is categorical, else from its sorted distinct values.

    Parameters
    ----------
    data : pandas.DataFrame
        One column per variable, complete (no missing cells).
    state_names : mapping, optional
        ``{column: states}`` for some or all columns.

    Returns
    -------
    DiscreteData

    Raises
    ------
    DataError
        For missing cells, values outside ``state_names``, duplicate or
        unsortable columns, or an empty frame.
    """
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame with one column per variable, got {type(data).__name__}.")
    if len(data) == 0 or data.shape[1] == 0:
        raise DataError(f"data is empty (shape {data.shape}); structure learning needs rows and columns.")
    if not data.columns.is_unique:
        duplicated = data.columns[data.columns.duplicated()].unique().tolist()
        raise DataError(f"data has duplicate columns {duplicated}; give every variable one column.")
    state_names = dict(state_names or {})
    unknown = [n for n in state_names if n not in data.columns]
    if unknown:
        raise DataError(f"state_names names {unknown}, which are not columns of data {list(data.columns)}.")
    missing = data.isna()
    if bool(missing.to_numpy().any()):
        per_column = {c: int(k) for c, k in missing.sum().items() if k}
        rows = data.index[missing.any(axis=1).to_numpy()][:5].tolist()
        raise DataError(
            f"data has missing values {per_column} (first rows {rows}); structure learning needs complete data: "
            "drop the rows explicitly with data.dropna() or impute them."
        )
    states = {}
    for name in data.columns:
        column = data[name]
        if name in state_names:
            states[name] = tuple(state_names[name])
        else:
            states[name] = column_states(column, name)
        if not states[name]:
            raise DataError(f"state_names[{name!r}] is empty; list the states of {name!r}.")
    codes = np.stack([encode_column(data[n], states[n], n) for n in data.columns])
    cards = np.array([len(states[n]) for n in data.columns], dtype=np.int64)
    return DiscreteData(tuple(data.columns), states, cards, np.ascontiguousarray(codes, dtype=np.int64))


def family_score(
    counts: np.ndarray | torch.Tensor,
    score: str = "bic",
    *,
    equivalent_sample_size: float = 10.0,
    sample_size: float | None = None,
) -> np.ndarray | torch.Tensor:
    """Local score of families from their contingency tables.

    Parameters
    ----------
    counts : numpy.ndarray or torch.Tensor
        ``(..., q, r)`` counts: ``q`` parent configurations, ``r`` states.
    score : {"bic", "aic", "bdeu", "k2"}, default "bic"
        The score (see the module docstring).
    equivalent_sample_size : float, default 10.0
        For ``"bdeu"``.
    sample_size : float, optional
        ``N`` in the BIC penalty; by default the total of each table.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        ``(...)`` local scores, of the type of ``counts``.
    """
    score = _check_score(score)
    ess = _check_ess(equivalent_sample_size) if score == "bdeu" else 1.0
    if counts.ndim < 2:
        raise ModelSpecError(f"counts must be shaped (..., q, r), got shape {tuple(counts.shape)}.")
    q, r = counts.shape[-2], counts.shape[-1]
    if isinstance(counts, torch.Tensor):
        counts = counts.to(torch.float64)
        lgamma, xlog, total = torch.lgamma, torch.xlogy, counts.sum((-2, -1))
    else:
        counts = np.asarray(counts, dtype=np.float64)
        lgamma, xlog, total = gammaln, xlogy, counts.sum((-2, -1))
    rows = counts.sum(-1)
    if score in ("bic", "aic"):
        loglik = xlog(counts, counts).sum((-2, -1)) - xlog(rows, rows).sum(-1)
        n = total if sample_size is None else sample_size
        factor = 1.0 if score == "aic" else 0.5 * (n.log() if isinstance(n, torch.Tensor) else np.log(n))
        return loglik - factor * q * (r - 1)
    cell, row = (1.0, float(r)) if score == "k2" else (ess / (q * r), ess / q)
    cells = (lgamma(counts + cell) - math.lgamma(cell)).sum((-2, -1))
    return cells + (math.lgamma(row) - lgamma(rows + row)).sum(-1)


class DecomposableScore:
    """A decomposable score of discrete data, with local scores cached by (node, parent set).

    Parameters
    ----------
    data : pandas.DataFrame
        One column per variable (categorical or plain columns), complete.
    score : {"bic", "aic", "bdeu", "k2"}, default "bic"
        The score (see the module docstring).
    equivalent_sample_size : float, default 10.0
        For ``"bdeu"``.
    state_names : mapping, optional
        ``{column: states}``, as in :func:`encode_data`.

    Examples
    --------
    >>> score = DecomposableScore(data, "bdeu", equivalent_sample_size=1)  # doctest: +SKIP
    >>> score.local("dysp", ("bronc", "either"))                            # doctest: +SKIP
    """

    def __init__(
        self,
        data: pd.DataFrame,
        score: str = "bic",
        *,
        equivalent_sample_size: float = 10.0,
        state_names: Mapping[Hashable, Sequence[Hashable]] | None = None,
    ) -> None:
        self.score = _check_score(score)
        self.equivalent_sample_size = _check_ess(equivalent_sample_size) if self.score == "bdeu" else None
        self.data = encode_data(data, state_names)
        self._index = {n: i for i, n in enumerate(self.data.nodes)}
        self._penalty = 0.5 * math.log(self.n_rows) if self.score == "bic" else 1.0
        self._cache: dict[tuple[int, tuple[int, ...]], float] = {}

    @property
    def nodes(self) -> tuple[Hashable, ...]:
        """The variables, in the order of the data's columns."""
        return self.data.nodes

    @property
    def n_rows(self) -> int:
        """Number of rows of the data."""
        return int(self.data.codes.shape[1])

    @property
    def cache_size(self) -> int:
        """Number of local scores computed so far."""
        return len(self._cache)

    def index(self, node: Hashable) -> int:
        """Position of ``node`` among :attr:`nodes`; :class:`DataError` naming the columns when absent."""
        try:
            return self._index[node]
        except (KeyError, TypeError):
            raise DataError(f"{node!r} is not a column of the data; its columns are {list(self.nodes)}.") from None

    def local(self, node: Hashable, parents: Iterable[Hashable] = ()) -> float:
        """Local score of ``node`` given ``parents`` (order does not matter)."""
        parents = tuple(parents)
        if node in parents or len(set(parents)) != len(parents):
            raise ModelSpecError(f"parents {list(parents)} of {node!r} must be distinct and must not contain {node!r}.")
        return self.local_by_index(self.index(node), tuple(self.index(p) for p in parents))

    def local_by_index(self, child: int, parents: Sequence[int]) -> float:
        """Local score by variable positions; cached by ``(child, sorted(parents))``."""
        key = (child, tuple(sorted(parents)))
        value = self._cache.get(key)
        if value is None:
            value = self._cache[key] = self._compute(*key)
        return value

    def total(self, graph: nx.DiGraph | Iterable[tuple[Hashable, Hashable]]) -> float:
        """Score of a DAG over the data's columns (columns not in the graph count as parentless)."""
        graph = graph if isinstance(graph, nx.DiGraph) else nx.DiGraph(list(graph))
        for node in graph:
            self.index(node)
        if not nx.is_directed_acyclic_graph(graph):
            raise ModelSpecError(f"the graph has a cycle {nx.find_cycle(graph)}; only DAGs have a score.")
        return sum(self.local(n, graph.predecessors(n) if n in graph else ()) for n in self.nodes)

    def _compute(self, child: int, parents: tuple[int, ...]) -> float:
        cards, codes = self.data.cards, self.data.codes
        r = int(cards[child])
        q = 1
        config = np.zeros(self.n_rows, dtype=np.int64)
        for p in parents:
            config *= cards[p]
            config += codes[p]
            q *= int(cards[p])
        cell_index = config * r + codes[child]
        if q * r <= max(_DENSE_CELLS, 4 * self.n_rows):
            cells = np.bincount(cell_index, minlength=q * r).astype(np.float64)
            rows = cells.reshape(q, r).sum(1)
        else:
            _, cells = np.unique(cell_index, return_counts=True)
            _, rows = np.unique(config, return_counts=True)
            cells, rows = cells.astype(np.float64), rows.astype(np.float64)
        return float(self._from_counts(cells, rows, q, r))

    def _from_counts(self, cells: np.ndarray, rows: np.ndarray, q: int, r: int) -> float:
        if self.score in ("bic", "aic"):
            return xlogy(cells, cells).sum() - xlogy(rows, rows).sum() - self._penalty * q * (r - 1)
        if self.score == "k2":
            cell, row = 1.0, float(r)
        else:
            cell, row = self.equivalent_sample_size / (q * r), self.equivalent_sample_size / q
        cells, rows = cells[cells > 0], rows[rows > 0]
        return (
            (gammaln(cells + cell) - math.lgamma(cell)).sum() + (math.lgamma(row) - gammaln(rows + row)).sum()
        )


def _check_score(score: Any) -> str:
    name = str(score).lower()
    if name not in SCORES:
        raise ModelSpecError(f"score must be one of {SCORES}, got {score!r}.")
    return name


def _check_ess(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value):
        raise ModelSpecError(
            f"equivalent_sample_size must be a finite number > 0, got {value!r}; common choices are 1 or 10."
        )
    return float(value)
