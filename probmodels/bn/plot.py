"""Drawing a Bayesian network's DAG with matplotlib (through networkx, without graphviz)."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import networkx as nx

from ..exceptions import ModelSpecError
from .dag import _BayesianNetworkStructure

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["draw_network", "layered_layout"]

NODE_COLOR = "#d9e6f2"
"""Face colour of ordinary nodes."""
HIGHLIGHT_COLOR = "#f4a261"
"""Face colour of highlighted nodes (e.g. the evidence)."""


def layered_layout(graph: nx.DiGraph) -> dict[Hashable, tuple[float, float]]:
    """Top-down positions of a DAG: one row per topological generation.

    Row ``i`` (at ``y = -i``) holds the nodes whose longest path from a root
    has ``i`` edges; within a row, nodes are ordered by the mean ``x`` of their
    parents (ties keep the graph's node order), which avoids most crossings,
    and spaced one unit apart around ``x = 0``.

    Parameters
    ----------
    graph : networkx.DiGraph
        An acyclic graph.

    Returns
    -------
    dict
        ``{node: (x, y)}``.

    Raises
    ------
    ModelSpecError
        When the graph has a cycle.
    """
    if not nx.is_directed_acyclic_graph(graph):
        raise ModelSpecError(f"the graph has a cycle {nx.find_cycle(graph)}; a layered layout needs a DAG.")
    rank = {node: i for i, node in enumerate(graph.nodes)}
    positions: dict[Hashable, tuple[float, float]] = {}

    def key(node: Hashable) -> tuple[float, int]:
        parents = [positions[p][0] for p in graph.predecessors(node)]
        return (sum(parents) / len(parents) if parents else 0.0, rank[node])

    for depth, generation in enumerate(nx.topological_generations(graph)):
        row = sorted(generation, key=key)
        for j, node in enumerate(row):
            positions[node] = (j - (len(row) - 1) / 2, -float(depth))
    return positions


def draw_network(
    network: Any,
    ax: Axes | None = None,
    *,
    highlight: Iterable[Hashable] | None = None,
    layout: str | Mapping[Hashable, tuple[float, float]] = "layered",
) -> Axes:
    """Draw the DAG of a Bayesian network: labelled nodes and arrows from parents to children.

    Parameters
    ----------
    network : DiscreteBayesianNetwork, LinearGaussianBayesianNetwork, networkx.DiGraph or iterable of (parent, child)
        The structure to draw.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on (default: a new figure).
    highlight : iterable of node names, optional
        Nodes drawn in :data:`HIGHLIGHT_COLOR` instead of :data:`NODE_COLOR` (e.g. the evidence).
    layout : {"layered"} or mapping, default "layered"
        ``"layered"``: :func:`layered_layout` (roots on top); or ``{node: (x, y)}`` for every node.

    Returns
    -------
    matplotlib.axes.Axes
        With one text label per node and one arrow patch per edge; axis lines off.

    Raises
    ------
    ModelSpecError
        For an unknown layout, highlighted nodes or positions missing from the
        graph, or a cycle (layered layout).
    """
    import matplotlib.pyplot as plt

    if isinstance(network, _BayesianNetworkStructure):
        graph = network.graph
    elif isinstance(network, nx.DiGraph):
        graph = network
    else:
        graph = nx.DiGraph(list(network))
    highlighted = set(highlight or ())
    unknown = [node for node in highlighted if node not in graph]
    if unknown:
        raise ModelSpecError(f"highlight names {unknown}, which are not nodes of the graph {list(graph.nodes)}.")
    if isinstance(layout, str):
        if layout != "layered":
            raise ModelSpecError(f"layout must be 'layered' or a mapping {{node: (x, y)}}, got {layout!r}.")
        positions = layered_layout(graph)
    else:
        positions = dict(layout)
        missing = [node for node in graph if node not in positions]
        if missing:
            raise ModelSpecError(f"layout has no position for the nodes {missing}.")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    colors = [HIGHLIGHT_COLOR if node in highlighted else NODE_COLOR for node in graph.nodes]
    nx.draw_networkx_nodes(graph, positions, ax=ax, node_color=colors, node_size=1600, edgecolors="k", linewidths=1.0)
    nx.draw_networkx_edges(
        graph, positions, ax=ax, arrows=True, arrowstyle="-|>", arrowsize=14, node_size=1600, edge_color="0.3"
    )
    nx.draw_networkx_labels(graph, positions, ax=ax, font_size=9)
    ax.margins(0.15)
    ax.set_axis_off()
    return ax
