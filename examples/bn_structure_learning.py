"""Bayesian network: learning the structure of the Asia network from data
=======================================================================

When the causal graph of a domain is unknown, it has to be learned from
records. Two families of methods do this: score-based search (greedy hill
climbing on a decomposable score such as BIC or the Bayesian BDeu score) and
constraint-based search (the PC algorithm, which removes edges by conditional
independence tests and orients what the tests can tell apart). This example
samples records from the Asia ("chest clinic") network, learns its graph with
both, and measures each result against the truth by the structural Hamming
distance (SHD), both between DAGs and between their Markov equivalence classes
(CPDAGs), since data alone cannot orient every edge. Asia is a hard case: the
rare ``asia -> tub`` dependence needs many records, and ``either`` is a
deterministic OR of ``tub`` and ``lung``, which defeats independence tests.

References:

    1. S. L. Lauritzen and D. J. Spiegelhalter (1988), "Local computations with
       probabilities on graphical structures and their application to expert
       systems", Journal of the Royal Statistical Society B 50(2), 157-224.
    2. D. Heckerman, D. Geiger and D. M. Chickering (1995), "Learning Bayesian
       networks: the combination of knowledge and statistical data",
       Machine Learning 20, 197-243.
    3. P. Spirtes, C. Glymour and R. Scheines (2000), Causation, Prediction,
       and Search, 2nd edition, MIT Press.
    4. D. Colombo and M. H. Maathuis (2014), "Order-independent constraint-based
       causal structure learning", Journal of Machine Learning Research 15, 3741-3782.
    5. I. Tsamardinos, L. E. Brown and C. F. Aliferis (2006), "The max-min
       hill-climbing Bayesian network structure learning algorithm",
       Machine Learning 65, 31-78 (the SHD).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Sequence

import networkx as nx
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from probmodels.bn import Inference, dag_to_cpdag, hill_climb, pc, structural_hamming_distance
from probmodels.datasets import asia

# Layered like the textbook drawing: causes on top, symptoms at the bottom.
LAYOUT = {
    "asia": (0, 3), "smoke": (2, 3), "tub": (0, 2), "lung": (1.4, 2), "bronc": (2.8, 2),
    "either": (0.7, 1), "xray": (0, 0), "dysp": (1.8, 0),
}


def main(args: argparse.Namespace) -> Path:
    truth = asia().graph
    records = Inference(asia()).sample(args.num_patients, generator=torch.Generator().manual_seed(args.seed))
    true_cpdag = dag_to_cpdag(truth)
    learners = {
        "hill climbing, BIC": lambda: hill_climb(records, "bic"),
        "hill climbing, BDeu": lambda: hill_climb(records, "bdeu", equivalent_sample_size=10.0),
        "PC (chi-square, alpha = 0.01)": lambda: pc(records, significance_level=0.01),
    }
    print(f"Asia network (8 nodes, {truth.number_of_edges()} edges), {args.num_patients} sampled records")
    print(f"{'method':32s}{'edges':>6s}{'SHD (DAG)':>11s}{'SHD (CPDAG)':>13s}{'seconds':>9s}")
    learned = {}
    for name, learn in learners.items():
        started = time.perf_counter()
        graph = learn()
        seconds = time.perf_counter() - started
        is_cpdag = "separating_sets" in graph.graph
        dag_shd = "-" if is_cpdag else str(structural_hamming_distance(truth, graph))
        cpdag_shd = structural_hamming_distance(true_cpdag, graph if is_cpdag else dag_to_cpdag(graph))
        n_edges = len({frozenset(edge) for edge in graph.edges})
        print(f"{name:32s}{n_edges:6d}{dag_shd:>11s}{cpdag_shd:13d}{seconds:9.2f}")
        learned[f"{name}\nSHD to the true CPDAG = {cpdag_shd}"] = graph
    return plot(truth, learned, args.output_dir / "bn_structure_learning.png")


def plot(truth: nx.DiGraph, learned: dict[str, nx.DiGraph], path: Path) -> Path:
    """True graph, then each learned one: correct edges black, reversed orange, extra red, missing dotted grey."""
    fig = Figure(figsize=(4 * (1 + len(learned)), 4.4), layout="constrained")
    axes = fig.subplots(1, 1 + len(learned))
    draw(axes[0], truth, {edge: "black" for edge in truth.edges})
    axes[0].set_title("true network")
    for ax, (title, graph) in zip(axes[1:], learned.items()):
        colours = {}
        for u, v in graph.edges:
            if truth.has_edge(u, v):
                colours[u, v] = "black"
            elif truth.has_edge(v, u):
                colours[u, v] = "black" if graph.has_edge(v, u) else "tab:orange"
            else:
                colours[u, v] = "tab:red"
        draw(ax, graph, colours)
        missing = [(u, v) for u, v in truth.edges if not (graph.has_edge(u, v) or graph.has_edge(v, u))]
        nx.draw_networkx_edges(truth, LAYOUT, edgelist=missing, ax=ax, style="dotted", edge_color="grey", arrows=False)
        ax.set_title(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def draw(ax: Axes, graph: nx.DiGraph, colours: dict[tuple[str, str], str]) -> None:
    """Directed edges as arrows; pairs of opposite arcs (CPDAG's undirected edges) as plain lines."""
    undirected = [(u, v) for u, v in graph.edges if graph.has_edge(v, u) and str(u) < str(v)]
    directed = [(u, v) for u, v in graph.edges if not graph.has_edge(v, u)]
    nx.draw_networkx_nodes(graph, LAYOUT, ax=ax, node_color="white", edgecolors="black", node_size=1100)
    nx.draw_networkx_labels(graph, LAYOUT, ax=ax, font_size=9)
    nx.draw_networkx_edges(
        graph, LAYOUT, edgelist=directed, ax=ax, arrowsize=15, node_size=1100, width=1.6,
        edge_color=[colours[edge] for edge in directed],
    )
    nx.draw_networkx_edges(
        graph, LAYOUT, edgelist=undirected, ax=ax, arrows=False, node_size=1100, width=1.6,
        edge_color=[colours[edge] for edge in undirected],
    )
    ax.set_axis_off()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-samples", type=int, default=0, help="unused: structure search draws no posterior samples")
    parser.add_argument("--num-warmup", type=int, default=0, help="unused: structure search draws no posterior samples")
    parser.add_argument("--num-chains", type=int, default=1, help="unused: structure search draws no posterior samples")
    parser.add_argument("--num-patients", type=int, default=20000, help="records sampled from the Asia network")
    parser.add_argument("--device", default="cpu", help="unused: the searches count on the CPU")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", type=Path, default=Path(__file__).parent / "output")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
