"""Partially directed graphs of Markov equivalence classes, and the structural Hamming distance.

A PDAG is a ``networkx.DiGraph`` in which an undirected edge ``a - b`` is the
pair of arcs ``a -> b`` and ``b -> a`` (the convention of pgmpy's ``PDAG``).
A CPDAG (completed PDAG, essential graph) represents the Markov equivalence
class of a DAG: its directed edges are those of every DAG in the class.

- :func:`apply_meek_rules`: orient undirected edges by Meek's rules R1-R4;
- :func:`dag_to_cpdag`: the CPDAG of a DAG (v-structures, then Meek's rules);
- :func:`pdag_to_dag`: a consistent DAG extension of a PDAG (Dor & Tarsi, 1992);
- :func:`structural_hamming_distance`: the SHD between DAGs or PDAGs.

References
----------
Meek, C. (1995). Causal inference and causal explanation with background knowledge. UAI.
Dor, D., Tarsi, M. (1992). A simple algorithm to construct a consistent extension of a
partially oriented graph. Technical report R-185, UCLA.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Sequence

import networkx as nx
import numpy as np

from ..exceptions import ModelSpecError

__all__ = ["apply_meek_rules", "dag_to_cpdag", "pdag_to_dag", "structural_hamming_distance"]


def apply_meek_rules(pdag: nx.DiGraph) -> nx.DiGraph:
    """Orient the undirected edges of a PDAG that Meek's rules R1-R4 compel, until none changes.

    R1: ``c -> a - b``, ``c``, ``b`` non-adjacent => ``a -> b``. R2: ``a -> c -> b``,
    ``a - b`` => ``a -> b``. R3: ``a - c -> b``, ``a - d -> b``, ``c``, ``d``
    non-adjacent => ``a -> b``. R4: ``a - d -> c -> b``, ``a`` adjacent to ``c``,
    ``b``, ``d`` non-adjacent => ``a -> b``.

    Parameters
    ----------
    pdag : networkx.DiGraph
        Undirected edges as pairs of opposite arcs.

    Returns
    -------
    networkx.DiGraph
        A new PDAG with the same nodes and skeleton.
    """
    nodes = list(pdag.nodes)
    arcs = _arcs(pdag, nodes)
    return _to_graph(_meek(arcs), nodes)


def dag_to_cpdag(dag: nx.DiGraph) -> nx.DiGraph:
    """The CPDAG of a DAG: edges of v-structures directed, Meek's rules applied, the rest undirected.

    Parameters
    ----------
    dag : networkx.DiGraph
        A directed acyclic graph.

    Returns
    -------
    networkx.DiGraph
        The CPDAG, undirected edges as pairs of opposite arcs.
    """
    if not nx.is_directed_acyclic_graph(dag):
        raise ModelSpecError(f"dag_to_cpdag needs a DAG; the graph has the cycle {nx.find_cycle(dag)}.")
    nodes = list(dag.nodes)
    a = _arcs(dag, nodes)
    adjacent = a | a.T
    arcs = adjacent.copy()
    for child in range(len(nodes)):
        parents = np.flatnonzero(a[:, child])
        compelled = [p for p in parents if (~adjacent[p, parents] & (parents != p)).any()]
        arcs[child, compelled] = False
    return _to_graph(_meek(arcs), nodes)


def pdag_to_dag(pdag: nx.DiGraph) -> nx.DiGraph:
    """A DAG with the skeleton and v-structures of a PDAG that keeps its directed edges (Dor & Tarsi).

    When the PDAG has no such extension (possible for PC's output on finite
    samples), the remaining undirected edges are oriented along a topological
    order of the directed part and a ``UserWarning`` says so.

    Parameters
    ----------
    pdag : networkx.DiGraph
        Undirected edges as pairs of opposite arcs.

    Returns
    -------
    networkx.DiGraph
    """
    nodes = list(pdag.nodes)
    arcs = _arcs(pdag, nodes)
    directed = arcs & ~arcs.T
    undirected = arcs & arcs.T
    if not nx.is_directed_acyclic_graph(_to_graph(directed, nodes)):
        raise ModelSpecError("the directed edges of the PDAG form a cycle; it has no DAG extension.")
    result = directed.copy()
    alive = np.ones(len(nodes), dtype=bool)
    d, u = directed.copy(), undirected.copy()
    while alive.any():
        for x in np.flatnonzero(alive):
            if d[x].any():
                continue
            neighbours = np.flatnonzero(u[x])
            adjacent = np.flatnonzero((d[:, x] | u[x]))
            link = d | d.T | u
            if all(link[y, adjacent[adjacent != y]].all() for y in neighbours):
                result[neighbours, x] = True
                d[:, x] = d[x, :] = u[:, x] = u[x, :] = False
                alive[x] = False
                break
        else:
            warnings.warn(
                "the PDAG has no consistent DAG extension; its remaining undirected edges are oriented along a "
                "topological order of its directed edges, which may add v-structures.",
                UserWarning,
                stacklevel=2,
            )
            order = {n: i for i, n in enumerate(nx.topological_sort(_to_graph(result, nodes)))}
            for i, j in zip(*np.nonzero(np.triu(u))):
                first, second = (i, j) if order[nodes[i]] < order[nodes[j]] else (j, i)
                result[first, second] = True
            break
    return _to_graph(result, nodes)


def structural_hamming_distance(
    true: nx.DiGraph, estimated: nx.DiGraph, *, reversal_cost: int = 1, equivalence_class: bool = False
) -> int:
    """Structural Hamming distance between two DAGs or PDAGs over the same nodes.

    Every pair of nodes is in one of four states: not adjacent, ``i -> j``,
    ``j -> i`` or ``i - j`` (undirected). A pair adjacent in one graph only
    counts 1 (a missing or an extra edge); a pair adjacent in both with
    different states (a reversed edge, or directed against undirected) counts
    ``reversal_cost``. With DAGs and ``reversal_cost=1`` this is pgmpy's
    ``SHD()``, with ``reversal_cost=2`` its ``SHD(edge_reverse_penalty=2)``; with
    ``equivalence_class=True`` it is bnlearn's ``shd`` (which compares CPDAGs).

    Parameters
    ----------
    true, estimated : networkx.DiGraph
        The graphs (undirected edges as pairs of opposite arcs). Nodes missing in
        one of them count as isolated there.
    reversal_cost : {1, 2}, default 1
        Cost of a pair adjacent in both graphs with different orientations.
    equivalence_class : bool, default False
        Compare the CPDAGs of two DAGs (orientations the data cannot tell apart
        do not count).

    Returns
    -------
    int
    """
    if reversal_cost not in (1, 2):
        raise ModelSpecError(f"reversal_cost must be 1 or 2, got {reversal_cost!r}.")
    if equivalence_class:
        true, estimated = dag_to_cpdag(true), dag_to_cpdag(estimated)
    nodes = list(dict.fromkeys([*true.nodes, *estimated.nodes]))
    a, b = _arcs(true, nodes), _arcs(estimated, nodes)
    upper = np.triu(np.ones_like(a), 1)
    adjacent_a, adjacent_b = (a | a.T) & upper, (b | b.T) & upper
    differs = ((a != b) | (a.T != b.T)) & upper
    one_sided = adjacent_a != adjacent_b
    return int(one_sided.sum() + reversal_cost * (differs & adjacent_a & adjacent_b).sum())


def _arcs(graph: nx.DiGraph, nodes: Sequence[Hashable]) -> np.ndarray:
    index = {n: i for i, n in enumerate(nodes)}
    arcs = np.zeros((len(nodes), len(nodes)), dtype=bool)
    for u, v in graph.edges:
        arcs[index[u], index[v]] = True
    return arcs


def _to_graph(arcs: np.ndarray, nodes: Sequence[Hashable]) -> nx.DiGraph:
    graph = nx.DiGraph()
    graph.add_nodes_from(nodes)
    graph.add_edges_from((nodes[i], nodes[j]) for i, j in zip(*np.nonzero(arcs)))
    return graph


def _meek(arcs: np.ndarray) -> np.ndarray:
    """Meek's rules on an arc matrix (undirected = both arcs) until a fixed point."""
    arcs = arcs.copy()
    adjacent = arcs | arcs.T
    changed = True
    while changed:
        changed = False
        directed = arcs & ~arcs.T
        for a, b in zip(*np.nonzero(arcs & arcs.T)):
            if not (arcs[a, b] and arcs[b, a]):
                continue
            into_a = directed[:, a]
            r1 = (into_a & ~adjacent[:, b]).any()
            r2 = (directed[a] & directed[:, b]).any()
            undirected_a = arcs[a] & arcs[:, a]
            c = np.flatnonzero(undirected_a & directed[:, b])
            r3 = len(c) > 1 and (~adjacent[np.ix_(c, c)] & ~np.eye(len(c), dtype=bool)).any()
            d = np.flatnonzero(undirected_a & ~adjacent[:, b])
            r4 = len(d) > 0 and (directed[d][:, adjacent[a] & directed[:, b]]).any()
            if r1 or r2 or r3 or r4:
                arcs[b, a] = False
                directed[a, b] = True
                changed = True
    return arcs
