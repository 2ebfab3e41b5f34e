"""Score-based structure learning of discrete Bayesian networks: hill climbing with a tabu list.

:func:`hill_climb` searches DAGs by single-edge moves (add, remove,
reverse), always taking the best legal move. It keeps one matrix of score
deltas ``delta[x, y]`` (the change of ``y``'s local score when ``x`` joins or
leaves its parents): an addition or removal of ``x -> y`` changes the score by
``delta[x, y]``, a reversal by ``delta[x, y] + delta[y, x]``, and after a move
only the columns of the nodes whose parents changed are recomputed, from
local scores cached by (node, parent set) (:class:`~probmodels.bn.scores.DecomposableScore`).
Acyclicity comes from a reachability matrix: ``x -> y`` may be added when
``y`` does not reach ``x``, and reversed when ``x`` reaches ``y`` only through
the edge itself.

:func:`fit_parameters` fits the CPTs of a learned graph with
:mod:`probmodels.bn.learn`.
"""

from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from .._validation import check_non_negative_int, check_positive_int
from ..exceptions import ConvergenceWarning, DataError, ModelSpecError
from . import learn
from .network import DiscreteBayesianNetwork
from .scores import DecomposableScore

__all__ = ["hill_climb", "fit_parameters"]

Edges = Iterable[tuple[Hashable, Hashable]]


def hill_climb(
    data: pd.DataFrame | DecomposableScore,
    score: str = "bic",
    *,
    equivalent_sample_size: float = 10.0,
    state_names: Mapping[Hashable, Sequence[Hashable]] | None = None,
    start_dag: nx.DiGraph | Edges | None = None,
    required_edges: Edges = (),
    forbidden_edges: Edges = (),
    max_indegree: int | None = None,
    tabu_length: int = 100,
    patience: int = 0,
    max_iter: int = 1_000_000,
    epsilon: float = 1e-4,
) -> nx.DiGraph:
    """Learn a DAG by greedy hill climbing over add/remove/reverse moves with a tabu list.

    Each iteration applies the legal move with the largest score gain; ties go
    to the first of addition, removal, reversal, then to the first edge in
    the data's column order. The inverse of every applied move enters the
    tabu list (``tabu_length`` most recent moves) and may not be applied.

    Parameters
    ----------
    data : pandas.DataFrame or DecomposableScore
        Complete discrete data, one column per variable (every column is a node);
        or a :class:`DecomposableScore` to reuse its cache (``score``,
        ``equivalent_sample_size`` and ``state_names`` are then ignored).
    score : {"bic", "aic", "bdeu", "k2"}, default "bic"
        The decomposable score to maximise.
    equivalent_sample_size : float, default 10.0
        For ``"bdeu"``.
    state_names : mapping, optional
        ``{column: states}`` (otherwise categories, or sorted distinct values).
    start_dag : networkx.DiGraph or iterable of edges, optional
        Where the search starts (default: no edges); required edges are added to it.
    required_edges, forbidden_edges : iterable of (parent, child)
        Edges that the result must contain / must not contain. Required edges are
        never removed or reversed; forbidden edges are never added.
    max_indegree : int, optional
        Largest number of parents of any node.
    tabu_length : int, default 100
        Length of the tabu list.
    patience : int, default 0
        Number of consecutive moves without a gain of ``epsilon`` over the best
        score so far that the search may take (best non-tabu moves, possibly
        lowering the score) before it stops and returns the best DAG seen.
        ``0`` is plain hill climbing (as pgmpy's ``HillClimbSearch``);
        bnlearn's ``tabu`` uses ``patience = tabu_length = 10``.
    max_iter : int, default 1_000_000
        Largest number of moves; a :class:`ConvergenceWarning` says when it is reached.
    epsilon : float, default 1e-4
        Smallest score gain that counts as an improvement.

    Returns
    -------
    networkx.DiGraph
        The learned DAG over the data's columns (in column order), with
        ``graph.graph["score"]`` (its score), ``["score_name"]`` and
        ``["n_iter"]`` (moves applied).

    Raises
    ------
    ModelSpecError
        For inconsistent constraints (an edge both required and forbidden,
        required edges or a start DAG with a cycle, more required parents than
        ``max_indegree``, a start DAG holding a forbidden edge) or bad settings.
    DataError
        For missing cells or an edge naming a node that is not a column.

    Examples
    --------
    Recover the Asia network's structure from records sampled from it:

    >>> import torch
    >>> from probmodels.bn import Inference, hill_climb, structural_hamming_distance
    >>> from probmodels.datasets import asia
    >>> network = asia()
    >>> data = Inference(network).sample(2000, generator=torch.Generator().manual_seed(0))
    >>> learned = hill_climb(data, score="bic")
    >>> sorted(learned.edges())[:3]
    [('bronc', 'dysp'), ('either', 'dysp'), ('either', 'xray')]
    >>> structural_hamming_distance(network.graph, learned)
    1
    """
    scorer = data if isinstance(data, DecomposableScore) else DecomposableScore(
        data, score, equivalent_sample_size=equivalent_sample_size, state_names=state_names
    )
    tabu_length = check_non_negative_int(tabu_length, "tabu_length")
    patience = check_non_negative_int(patience, "patience")
    max_iter = check_positive_int(max_iter, "max_iter")
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not epsilon >= 0:
        raise ModelSpecError(f"epsilon must be a number >= 0, got {epsilon!r}; the default is 1e-4.")
    v = len(scorer.nodes)
    max_indegree = v if max_indegree is None else check_non_negative_int(max_indegree, "max_indegree")
    required = _edge_mask(required_edges, scorer, "required_edges")
    forbidden = _edge_mask(forbidden_edges, scorer, "forbidden_edges")
    adjacency = _start(start_dag, scorer, required, forbidden, max_indegree)
    search = _Search(scorer, adjacency, required, forbidden, max_indegree)

    tabu: deque[tuple[int, int, int]] = deque(maxlen=tabu_length)
    best_score, best_adjacency = search.score(), adjacency.copy()
    current, stale, n_iter = best_score, 0, 0
    converged = True
    for n_iter in range(1, max_iter + 1):
        move = search.best_move(tabu)
        if move is None:
            n_iter -= 1
            break
        kind, x, y, gain = move
        if gain < epsilon and patience == 0:
            n_iter -= 1
            break
        search.apply(kind, x, y)
        tabu.append((_INVERSE[kind], x, y) if kind != _REVERSE else (_REVERSE, y, x))
        current += gain
        if current >= best_score + epsilon:
            best_score, best_adjacency, stale = current, search.adjacency.copy(), 0
        else:
            stale += 1
            if stale > patience:
                break
    else:
        converged = False
    if not converged:
        warnings.warn(
            f"hill_climb stopped after max_iter={max_iter} moves, before reaching a local optimum; raise max_iter.",
            ConvergenceWarning,
            stacklevel=2,
        )
    graph = nx.DiGraph(score_name=scorer.score, n_iter=n_iter)
    graph.add_nodes_from(scorer.nodes)
    graph.add_edges_from((scorer.nodes[i], scorer.nodes[j]) for i, j in zip(*np.nonzero(best_adjacency)))
    graph.graph["score"] = scorer.total(graph)
    return graph


def fit_parameters(
    graph: nx.DiGraph | Edges,
    data: pd.DataFrame,
    *,
    prior: str | None = None,
    equivalent_sample_size: float = 10.0,
    state_names: Mapping[Hashable, Sequence[Hashable]] | None = None,
) -> DiscreteBayesianNetwork:
    """Fit the CPTs of a learned DAG: maximum likelihood, or the posterior mean under a Dirichlet prior.

    Parameters
    ----------
    graph : networkx.DiGraph or iterable of edges
        The structure (e.g. from :func:`hill_climb`).
    data : pandas.DataFrame
        The data (complete).
    prior : {None, "bdeu", "k2"}, default None
        ``None``: :func:`~probmodels.bn.learn.maximum_likelihood`; otherwise the
        mean of :func:`~probmodels.bn.learn.dirichlet_posterior` with this prior.
    equivalent_sample_size : float, default 10.0
        For ``"bdeu"``.
    state_names : mapping, optional
        ``{node: states}``.

    Returns
    -------
    DiscreteBayesianNetwork
    """
    if prior is None:
        return learn.maximum_likelihood(graph, data, state_names=state_names)
    posterior = learn.dirichlet_posterior(
        graph, data, prior=prior, equivalent_sample_size=equivalent_sample_size, state_names=state_names
    )
    return posterior.mean()


# ----------------------------------------------------------------------------- search state

_ADD, _REMOVE, _REVERSE = 0, 1, 2
_INVERSE = {_ADD: _REMOVE, _REMOVE: _ADD}


class _Search:
    """Adjacency, reachability and score-delta matrices of the current DAG."""

    def __init__(
        self, scorer: DecomposableScore, adjacency: np.ndarray, required: np.ndarray, forbidden: np.ndarray, max_indegree: int
    ) -> None:
        self.scorer = scorer
        self.adjacency = adjacency
        self.required, self.forbidden, self.max_indegree = required, forbidden, max_indegree
        v = adjacency.shape[0]
        self.delta = np.zeros((v, v))
        self.local = np.zeros(v)
        for y in range(v):
            self._refresh(y)
        self.reach = _reachability(adjacency)

    def score(self) -> float:
        return float(self.local.sum())

    def _refresh(self, y: int) -> None:
        parents = np.flatnonzero(self.adjacency[:, y]).tolist()
        local = self.scorer.local_by_index
        base = self.local[y] = local(y, parents)
        column = self.delta[:, y]
        for x in range(len(column)):
            if x == y:
                continue
            changed = [p for p in parents if p != x] if self.adjacency[x, y] else parents + [x]
            column[x] = local(y, changed) - base

    def best_move(self, tabu: Iterable[tuple[int, int, int]]) -> tuple[int, int, int, float] | None:
        a, reach = self.adjacency, self.reach
        indegree = a.sum(0)
        blocked = np.zeros((3,) + a.shape, dtype=bool)
        for kind, x, y in tabu:
            blocked[kind, x, y] = True
        blocked[_REVERSE] |= blocked[_REVERSE].T
        free = ~(a | a.T)
        np.fill_diagonal(free, False)
        add = free & ~reach.T & ~self.forbidden & (indegree < self.max_indegree)[None, :] & ~blocked[_ADD]
        remove = a & ~self.required & ~blocked[_REMOVE]
        longer_path = (reach.astype(np.int32) @ a.astype(np.int32)) > 0
        reverse = (
            a & ~longer_path & ~self.required & ~self.forbidden.T
            & (indegree < self.max_indegree)[:, None] & ~blocked[_REVERSE]
        )
        best = None
        moves = ((_ADD, add, self.delta), (_REMOVE, remove, self.delta), (_REVERSE, reverse, self.delta + self.delta.T))
        for kind, legal, gains in moves:
            if not legal.any():
                continue
            masked = np.where(legal, gains, -np.inf)
            flat = int(np.argmax(masked))
            gain = float(masked.flat[flat])
            if best is None or gain > best[3]:
                best = (kind, *divmod(flat, a.shape[0]), gain)
        return best

    def apply(self, kind: int, x: int, y: int) -> None:
        a = self.adjacency
        if kind == _ADD:
            a[x, y] = True
            sources = self.reach[:, x].copy()
            sources[x] = True
            targets = self.reach[y].copy()
            targets[y] = True
            self.reach[np.ix_(sources, targets)] = True
            self._refresh(y)
            return
        a[x, y] = False
        if kind == _REVERSE:
            a[y, x] = True
            self._refresh(x)
        self._refresh(y)
        self.reach = _reachability(a)


def _reachability(adjacency: np.ndarray) -> np.ndarray:
    """``reach[i, j]``: a directed path of length >= 1 leads from ``i`` to ``j``."""
    reach = np.zeros_like(adjacency)
    order = list(nx.topological_sort(nx.from_numpy_array(adjacency.astype(np.int8), create_using=nx.DiGraph)))
    for i in reversed(order):
        children = np.flatnonzero(adjacency[i])
        if len(children):
            reach[i] = adjacency[i] | reach[children].any(0)
    return reach


# ----------------------------------------------------------------------------- constraints


def _edge_mask(edges: Any, scorer: DecomposableScore, name: str) -> np.ndarray:
    v = len(scorer.nodes)
    mask = np.zeros((v, v), dtype=bool)
    if isinstance(edges, nx.DiGraph):
        edges = edges.edges()
    for edge in edges:
        if not isinstance(edge, (tuple, list)) or len(edge) != 2:
            raise ModelSpecError(f"{name} must hold (parent, child) pairs, got {edge!r}.")
        parent, child = edge
        for node in edge:
            if node not in scorer._index:
                raise DataError(
                    f"{name} has the edge {tuple(edge)!r}, but {node!r} is not a column of the data {list(scorer.nodes)}."
                )
        if parent == child:
            raise ModelSpecError(f"{name} has the self-loop {tuple(edge)!r}; a DAG has none.")
        mask[scorer.index(parent), scorer.index(child)] = True
    return mask


def _start(
    start_dag: Any, scorer: DecomposableScore, required: np.ndarray, forbidden: np.ndarray, max_indegree: int
) -> np.ndarray:
    nodes = scorer.nodes
    both = required & forbidden
    if both.any():
        edges = [(nodes[i], nodes[j]) for i, j in zip(*np.nonzero(both))]
        raise ModelSpecError(f"edges {edges} are both required and forbidden; drop them from one of the two lists.")
    _check_acyclic(required, nodes, "required_edges have a cycle", "drop one of its edges from required_edges")
    adjacency = required.copy()
    if start_dag is not None:
        start = _edge_mask(start_dag, scorer, "start_dag")
        clash = start & forbidden
        if clash.any():
            edges = [(nodes[i], nodes[j]) for i, j in zip(*np.nonzero(clash))]
            raise ModelSpecError(f"start_dag has the forbidden edges {edges}; remove them from start_dag.")
        _check_acyclic(start, nodes, "start_dag has a cycle", "pass a DAG")
        adjacency |= start
        what = "start_dag with the required edges has a cycle"
        _check_acyclic(adjacency, nodes, what, "reverse or remove the start_dag edge in it")
    over = np.flatnonzero(adjacency.sum(0) > max_indegree)
    if len(over):
        counts = {nodes[i]: int(adjacency[:, i].sum()) for i in over}
        raise ModelSpecError(
            f"nodes {counts} start with more parents than max_indegree={max_indegree} (from required_edges and start_dag); "
            "raise max_indegree or drop edges."
        )
    return adjacency


def _check_acyclic(mask: np.ndarray, nodes: tuple[Hashable, ...], what: str, fix: str) -> None:
    graph = nx.DiGraph([(nodes[i], nodes[j]) for i, j in zip(*np.nonzero(mask))])
    if not nx.is_directed_acyclic_graph(graph):
        raise ModelSpecError(f"{what}: {nx.find_cycle(graph)}; {fix}.")
