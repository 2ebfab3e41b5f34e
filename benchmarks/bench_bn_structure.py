"""Side-by-side structure learning benchmark: probmodels' hill climbing and PC against pgmpy's.

In one process, on the same data (``--rows`` forward samples of a bnlearn
network from ``pgmpy.utils.get_example_model``, drawn by
:meth:`probmodels.bn.Inference.sample` with a fixed seed), for every network
and score (BIC, BDeu with equivalent sample size 10, K2) the script learns a
DAG from the empty graph with

* ``probmodels``: :func:`probmodels.bn.structure.hill_climb` (categorical columns);
* ``pgmpy``: ``pgmpy.causal_discovery.HillClimbSearch`` with the matching
  ``pgmpy.structure_score`` instance (string columns, the true state names),
  ``return_type="dag"``, default tabu length 100 and epsilon 1e-4, as ours.

Every row records the wall time (scorer construction included, best of up to
``--repeat`` runs; a run over ``--long`` seconds ends the repeats), the ratio
pgmpy / probmodels, the structural Hamming distance to the true DAG (between
DAGs, a reversed edge counting 1 as in pgmpy's ``SHD``; and between CPDAGs,
as bnlearn's ``shd``), the number of edges, and the final score of the learned
DAG evaluated by one function for both engines
(:class:`probmodels.bn.scores.DecomposableScore`). pgmpy's K2 is not the K2
score (it adds ``lgamma(r)`` for every unseen parent configuration), so its
K2 search optimises a slightly different objective. pgmpy breaks ties between
equal moves in the iteration order of a Python set of node-name pairs, which
depends on ``PYTHONHASHSEED``; its DAG SHD between Markov-equivalent results
can change with it, its CPDAG SHD cannot.

A second table runs PC-stable (chi-square test with Yates' correction on
2x2 strata and adjusted degrees of freedom, as pgmpy's, significance level
0.01): :func:`probmodels.bn.pc.pc` against ``pgmpy.causal_discovery.PC(variant="stable")``,
with the SHD of the learned CPDAG to the true DAG's CPDAG.

Examples
--------
::

    PYTHONHASHSEED=0 OMP_NUM_THREADS=1 python benchmarks/bench_bn_structure.py
    python benchmarks/bench_bn_structure.py --networks asia --repeat 1     # quick
    python benchmarks/bench_bn_structure.py --render
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import shlex
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import networkx as nx
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from common import (  # noqa: E402
    RESULTS_DIR, RESULTS_MD, describe_machine, fmt, machine_info, parse_ints, reproduce_lines, write_json, write_results_section,
)

from probmodels.bn import Inference, from_pgmpy  # noqa: E402
from probmodels.bn.cpdag import dag_to_cpdag, structural_hamming_distance  # noqa: E402
from probmodels.bn.pc import pc  # noqa: E402
from probmodels.bn.scores import DecomposableScore  # noqa: E402
from probmodels.bn.structure import hill_climb  # noqa: E402

ENGINES = ("probmodels", "pgmpy")
SCORES = ("bic", "bdeu", "k2")
PACKAGES = ("torch", "numpy", "pandas", "networkx", "pgmpy")
ESS = 10.0


def load(name: str, rows: int, seed: int) -> tuple[nx.DiGraph, Any, dict]:
    """The true DAG, ``rows`` samples (categorical columns) and the state names of a bnlearn network."""
    from pgmpy.utils import get_example_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = from_pgmpy(get_example_model(name))
    data = Inference(net).sample(rows, generator=torch.Generator().manual_seed(seed))
    truth = nx.DiGraph(net.graph.edges)
    truth.add_nodes_from(net.nodes)
    return truth, data, {n: list(net.states(n)) for n in net.nodes}


def run_probmodels(data: Any, names: dict, score: str) -> nx.DiGraph:
    """``hill_climb(data, score)`` on the categorical frame."""
    return hill_climb(data, score, equivalent_sample_size=ESS)


def run_pgmpy(data: Any, names: dict, score: str) -> nx.DiGraph:
    """pgmpy's ``HillClimbSearch`` with the matching score on string columns."""
    from pgmpy.causal_discovery import HillClimbSearch
    from pgmpy.structure_score import BIC, K2, BDeu

    scorer = {"bic": lambda: BIC(data, state_names=names), "bdeu": lambda: BDeu(data, equivalent_sample_size=ESS, state_names=names),
              "k2": lambda: K2(data, state_names=names)}[score]()
    search = HillClimbSearch(scoring_method=scorer, return_type="dag", show_progress=False).fit(data)
    graph = nx.DiGraph(search.causal_graph_.edges)
    graph.add_nodes_from(data.columns)
    return graph


def run_probmodels_pc(data: Any) -> nx.DiGraph:
    """``pc(data, yates=True)`` on the categorical frame."""
    return pc(data, significance_level=0.01, yates=True)


def run_pgmpy_pc(data: Any) -> nx.DiGraph:
    """pgmpy's ``PC(variant="stable", ci_test="chi_square")`` on string columns."""
    from pgmpy.causal_discovery import PC

    search = PC(variant="stable", ci_test="chi_square", significance_level=0.01, return_type="pdag", show_progress=False).fit(data)
    graph = nx.DiGraph(search.causal_graph_.edges)
    graph.add_nodes_from(data.columns)
    return graph


RUNNERS: dict[str, Callable[[Any, dict, str], nx.DiGraph]] = {"probmodels": run_probmodels, "pgmpy": run_pgmpy}
PC_RUNNERS: dict[str, Callable[[Any], nx.DiGraph]] = {"probmodels": run_probmodels_pc, "pgmpy": run_pgmpy_pc}


def timed(run: Callable[[], nx.DiGraph], args: argparse.Namespace) -> tuple[nx.DiGraph, list[float]]:
    """Run up to ``args.repeat`` times (fewer when a run exceeds ``args.long``); the last graph and all times."""
    times = []
    for _ in range(args.repeat):
        gc.collect()
        started = time.perf_counter()
        graph = run()
        times.append(time.perf_counter() - started)
        if times[-1] > args.long:
            break
    return graph, times


def run_benchmark(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Run every network, score and engine; return the report (also written to ``args.output``)."""
    torch.set_num_threads(args.threads)
    rows: list[dict[str, Any]] = []
    pc_rows: list[dict[str, Any]] = []
    for network in args.networks:
        truth, data, names = load(network, args.rows, args.seed)
        frames = {"probmodels": data, "pgmpy": data.astype(str)}
        for score in args.scores:
            common = DecomposableScore(data, score, equivalent_sample_size=ESS)
            for engine in args.engines:
                print(f"{network} {score}: {engine} ...", file=sys.stderr, flush=True)
                graph, times = timed(lambda: RUNNERS[engine](frames[engine], names, score), args)
                rows.append(dict(
                    network=network, score=score, engine=engine, times=times, seconds=min(times),
                    shd=structural_hamming_distance(truth, graph), shd_cpdag=structural_hamming_distance(truth, graph, equivalence_class=True),
                    edges=graph.number_of_edges(), true_edges=truth.number_of_edges(), final_score=common.total(graph),
                    true_score=common.total(truth), edge_list=sorted(map(list, graph.edges)),
                ))
            write_report(args, command, rows, pc_rows)
        if args.pc:
            target = dag_to_cpdag(truth)
            for engine in args.engines:
                print(f"{network} pc: {engine} ...", file=sys.stderr, flush=True)
                graph, times = timed(lambda: PC_RUNNERS[engine](frames[engine]), args)
                pc_rows.append(dict(
                    network=network, engine=engine, times=times, seconds=min(times), shd_cpdag=structural_hamming_distance(target, graph),
                    edges=len({frozenset(e) for e in graph.edges}), edge_list=sorted(map(list, graph.edges)),
                ))
            write_report(args, command, rows, pc_rows)
    return write_report(args, command, rows, pc_rows)


def write_report(args: argparse.Namespace, command: str, rows: list[dict[str, Any]], pc_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Write the rows so far, with the settings, the machine and the command line, to ``args.output``."""
    report = {
        "command": command,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(PACKAGES),
        "settings": dict(rows=args.rows, seed=args.seed, repeat=args.repeat, long=args.long, threads=args.threads,
                         equivalent_sample_size=ESS, pythonhashseed=os.environ.get("PYTHONHASHSEED")),
        "rows": rows,
        "pc_rows": pc_rows,
    }
    write_json(Path(args.output), report)
    return report


def render(report: dict[str, Any]) -> str:
    """The ``bn_structure`` section of the results page."""
    settings = report["settings"]
    base = {(r["network"], r["score"]): r for r in report["rows"] if r["engine"] == "probmodels"}
    lines = ["| network | score | engine | wall s | ÷ probmodels | SHD (DAG) | SHD (CPDAG) | edges (true) | final score | − probmodels |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    targets = []
    for row in report["rows"]:
        ref = base.get((row["network"], row["score"]))
        ratio = row["seconds"] / ref["seconds"] if ref else None
        diff = row["final_score"] - ref["final_score"] if ref and row["engine"] != "probmodels" else None
        lines.append(
            f"| {row['network']} | {row['score']} | {row['engine']} | {fmt(row['seconds'])} | {fmt(ratio)} | {row['shd']} | "
            f"{row['shd_cpdag']} | {row['edges']} ({row['true_edges']}) | {row['final_score']:.2f} | "
            f"{'–' if diff is None else f'{diff:+.2f}'} |"
        )
        if row["engine"] == "pgmpy" and ref:
            targets.append((row, ratio, ref))
    speed = [f"{r['network']}/{r['score']} {ratio:.1f}x" for r, ratio, _ in targets]
    shd = [f"{r['network']}/{r['score']}: {ref['shd_cpdag']} vs {r['shd_cpdag']}" for r, _, ref in targets]
    alarm = [ratio for r, ratio, _ in targets if r["network"] == "alarm"]
    text = [
        "## Bayesian network structure learning (`bench_bn_structure.py`)",
        "",
        f"Hill climbing from the empty DAG (add/remove/reverse moves, tabu list of 100, epsilon 1e-4) on "
        f"{settings['rows']:,} forward samples (seed {settings['seed']}) of bnlearn networks; BDeu with equivalent "
        f"sample size {settings['equivalent_sample_size']:g}. probmodels: `probmodels.bn.structure.hill_climb`; pgmpy: "
        "`pgmpy.causal_discovery.HillClimbSearch` with the matching `pgmpy.structure_score`. Wall time includes building "
        f"the scorer; best of up to {settings['repeat']} run(s) (one when a run took over {settings['long']:g} s); "
        f"{settings['threads']} torch thread(s); PYTHONHASHSEED={settings['pythonhashseed']}. ÷ probmodels above 1: "
        "probmodels is faster. SHD: structural Hamming distance to the true DAG (a reversed edge counts 1, as pgmpy's "
        "`SHD`); CPDAG: between the equivalence classes (bnlearn's `shd`). Final score: the learned DAG's score by "
        "one function for both (`DecomposableScore`; pgmpy's K2 search optimises pgmpy's K2, which adds lgamma(r) per "
        f"unseen parent configuration). Run {report['created']} on {describe_machine(report['machine'])}.",
        "",
        *lines,
        "",
        f"Speed-up over pgmpy: {'; '.join(speed)}. Target on alarm, at least 5x: "
        f"{'not run' if not alarm else 'met' if min(alarm) >= 5 else 'NOT met'}. CPDAG SHD probmodels vs pgmpy: {'; '.join(shd)}.",
        "",
    ]
    if report.get("pc_rows"):
        pc_base = {r["network"]: r for r in report["pc_rows"] if r["engine"] == "probmodels"}
        text += [
            "PC-stable, chi-square with Yates' correction on 2x2 strata and adjusted degrees of freedom (as pgmpy's), "
            "significance level 0.01; SHD between the learned and the true CPDAG:",
            "",
            "| network | engine | wall s | ÷ probmodels | SHD (CPDAG) | adjacencies |",
            "|---|---|---|---|---|---|",
            *[f"| {r['network']} | {r['engine']} | {fmt(r['seconds'])} | {fmt(r['seconds'] / pc_base[r['network']]['seconds'])} | "
              f"{r['shd_cpdag']} | {r['edges']} |" for r in report["pc_rows"]],
            "",
        ]
    text += reproduce_lines(report["command"])
    return "\n".join(text)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--networks", type=lambda s: [x for x in s.split(",") if x], default=["asia", "alarm"])
    parser.add_argument("--scores", type=lambda s: [x for x in s.split(",") if x], default=list(SCORES))
    parser.add_argument("--engines", type=lambda s: [x for x in s.split(",") if x], default=list(ENGINES))
    parser.add_argument("--rows", type=lambda s: parse_ints(s)[0], default=10_000, help="number of samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell; the best is reported")
    parser.add_argument("--long", type=float, default=5.0, help="a run longer than this (s) ends the repeats")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--no-pc", dest="pc", action="store_false", help="skip the PC table")
    parser.add_argument("--output", default=str(RESULTS_DIR / "bn_structure_asia_alarm.json"))
    parser.add_argument("--markdown", default=str(RESULTS_MD), help="results page whose 'bn_structure' section is rewritten")
    parser.add_argument("--render", action="store_true", help="only re-render the markdown from --output")
    args = parser.parse_args(argv)
    for name, values, allowed in (("score", args.scores, SCORES), ("engine", args.engines, ENGINES)):
        if sorted(set(values) - set(allowed)):
            parser.error(f"unknown {name} {sorted(set(values) - set(allowed))}; choose from {allowed}")
    if "probmodels" not in args.engines:
        parser.error("the engines must include probmodels (the reference of the ratios)")
    args.engines = [e for e in ENGINES if e in args.engines]
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (unless ``--render``) and rewrite the ``bn_structure`` section of the results page."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.render:
        report = json.loads(Path(args.output).read_text())
    else:
        script = Path(__file__).resolve().relative_to(REPO)
        prefix = " ".join(f"{k}={os.environ[k]}" for k in ("PYTHONHASHSEED", "OMP_NUM_THREADS") if os.environ.get(k))
        report = run_benchmark(args, (prefix + " " if prefix else "") + shlex.join(["python", str(script), *argv]))
    path = write_results_section("bn_structure", render(report), Path(args.markdown))
    print(f"wrote the bn_structure section of {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
