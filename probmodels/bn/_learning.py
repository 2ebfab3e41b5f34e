"""First steps of parameter learning shared by :mod:`~probmodels.bn.learn` and :mod:`~probmodels.bn.gaussian_learn`.

:func:`learning_structure` turns the ``structure`` argument (a network, a
networkx ``DiGraph`` or a list of edges) into a DAG with its node order and
parent orders; :func:`refuse_missing` raises the error for missing cells
(rows are never dropped silently).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any, NamedTuple

import networkx as nx
import numpy as np
import pandas as pd

from ..exceptions import DataError, ModelSpecError
from .dag import _BayesianNetworkStructure, topological_order

__all__ = ["LearningStructure", "learning_structure", "refuse_missing"]


class LearningStructure(NamedTuple):
    """The DAG to learn the CPDs of."""

    template: Any
    """The network passed as ``structure`` (its CPDs fix parent orders), or None."""
    graph: nx.DiGraph
    """The DAG."""
    nodes: tuple[Hashable, ...]
    """Its nodes in topological order (ties keep insertion order)."""
    parents: dict[Hashable, tuple[Hashable, ...]]
    """Parents of every node: a template CPD's order, else sorted by name."""


def learning_structure(
    structure: Any, data: pd.DataFrame, network_type: type[_BayesianNetworkStructure]
) -> LearningStructure:
    """Check ``data`` is a DataFrame and resolve ``structure`` into a non-empty DAG.

    Parameters
    ----------
    structure : network_type, networkx.DiGraph or iterable of (parent, child) pairs
        The structure argument of a learning function.
    data : pandas.DataFrame
        The data argument (only its type is checked here).
    network_type : type
        The network class whose instances serve as templates.

    Returns
    -------
    LearningStructure

    Raises
    ------
    TypeError
        When ``data`` is not a DataFrame.
    ModelSpecError
        For a cycle or a structure without nodes.
    """
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame with one column per node, got {type(data).__name__}.")
    template = structure if isinstance(structure, network_type) else None
    if template is not None:
        graph = template.graph
    elif isinstance(structure, nx.DiGraph):
        graph = structure
    else:
        graph = nx.DiGraph(list(structure))
    if not nx.is_directed_acyclic_graph(graph):
        raise ModelSpecError(f"the structure has a cycle {nx.find_cycle(graph)}; a Bayesian network must be acyclic.")
    nodes = topological_order(graph)
    if not nodes:
        raise ModelSpecError("the structure has no nodes; pass a network, a DiGraph or a list of edges.")
    has_cpd = lambda n: template is not None and template.has_cpd(n)  # noqa: E731
    parents = {n: template.parents(n) if has_cpd(n) else tuple(sorted(graph.predecessors(n), key=str)) for n in nodes}
    return LearningStructure(template, graph, nodes, parents)


def refuse_missing(nodes: Iterable[Hashable], missing: np.ndarray, data: pd.DataFrame, remedy: str) -> None:
    """Raise :class:`DataError` naming the missing cells, if ``missing`` (``(rows, len(nodes))`` bool) has any.

    ``remedy`` (e.g. ``"impute them"``) is followed by "or drop the rows explicitly".
    """
    if missing.any():
        per_column = {n: int(c) for n, c in zip(nodes, missing.sum(0).tolist()) if c}
        rows = data.index[missing.any(1)][:5].tolist()
        raise DataError(
            f"data has missing values {per_column} (first rows {rows}); probmodels never drops rows silently: "
            f"{remedy}, or drop the rows explicitly with data.dropna()."
        )
