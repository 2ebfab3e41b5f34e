"""Side-by-side discrete Bayesian network benchmark: probmodels against pgmpy.

In one process, on the bnlearn networks that pgmpy ships, with one torch and
BLAS thread for both libraries unless ``--threads`` says otherwise, the
script measures

* single-query latency: ``--queries`` random queries ``P(X | 3 observed
  nodes)`` per network (evidence states from a forward sample, so every
  evidence set is possible), answered by :meth:`probmodels.bn.Inference.query`
  and by pgmpy's ``VariableElimination.query`` (its default ``"greedy"``
  elimination order); the cold pass includes probmodels' contraction
  planning and the first contraction of each query pattern, the warm passes repeat the same queries (answered from the per-pattern cache of joints);
* batched throughput on ``--batch-network``: one
  :meth:`~probmodels.bn.Inference.query_batch` call over ``n`` evidence rows
  (5 evidence columns, 20 % of the cells missing) against pgmpy answering the
  first ``--pgmpy-rows`` rows one by one;
* parameter learning from ``--rows`` forward-sampled rows:
  :func:`probmodels.bn.learn.maximum_likelihood` against ``DiscreteMLE`` and
  the BDeu posterior mean (:func:`~probmodels.bn.learn.dirichlet_posterior`,
  equivalent sample size 5) against ``DiscreteBayesianEstimator``; pgmpy gets
  the data as strings, probmodels as the categorical columns that
  :meth:`~probmodels.bn.Inference.sample` returns;
* the largest network answered exactly: the ``--large`` networks, read from
  pgmpy's bundled ``.bif.gz`` files by :func:`probmodels.bn.bif.read_bif`,
  each asked ``P(X | up to 20 observed leaves)``; a query whose greedy
  contraction path needs an intermediate over ``--max-entries`` entries is
  skipped, and pgmpy runs the same query on networks of at most
  ``--pgmpy-max-nodes`` nodes.

Every probmodels answer is checked against pgmpy's (largest absolute
difference of the probabilities, tolerance 1e-6 because probmodels rescales
the CPT rows of alarm that miss 1 by 1e-7; learning 1e-10) before anything
is timed.

Examples
--------
::

    python benchmarks/bench_bn.py            # writes results/bn_pgmpy.json and the bn section of RESULTS.md
    python benchmarks/bench_bn.py --quick    # tiny smoke run
    python benchmarks/bench_bn.py --render   # re-render RESULTS.md from the JSON
"""

from __future__ import annotations

import argparse
import datetime
import gc
import gzip
import json
import os
import shlex
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import networkx as nx
import numpy as np
import opt_einsum
import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from common import (  # noqa: E402
    RESULTS_DIR, RESULTS_MD, describe_machine, fmt, machine_info, parse_ints, reproduce_lines, write_json, write_results_section,
)

from probmodels.bn import DiscreteBayesianNetwork, Inference, from_pgmpy, learn, to_pgmpy  # noqa: E402
from probmodels.bn.bif import read_bif  # noqa: E402

PACKAGES = ("torch", "numpy", "pandas", "pgmpy", "opt_einsum")
TOLERANCE = 1e-6  # alarm's CPT rows miss 1 by up to 1e-7; probmodels rescales them, pgmpy does not
LEARN_TOLERANCE = 1e-10
TARGETS = {"latency": 10.0, "throughput": 1e5, "learning": 10.0}


# ----------------------------------------------------------------------------- helpers


def quiet(fn: Callable[[], Any]) -> Any:
    """Call ``fn`` with pgmpy's FutureWarnings and logging noise silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn()


def bundled(name: str) -> Path:
    """pgmpy's bundled copy of the bnlearn network ``name`` (``.bif.gz``)."""
    import pgmpy

    return Path(pgmpy.__file__).parent / "utils" / "example_models" / f"{name}.bif.gz"


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds taken by ``fn()`` and its result."""
    gc.collect()
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def best_of(fn: Callable[[], Any], repeat: int) -> float:
    """The fastest of ``repeat`` runs of ``fn``, in seconds."""
    return min(timed(fn)[0] for _ in range(max(repeat, 1)))


def pgmpy_marginal(ve: Any, net: DiscreteBayesianNetwork, variable: str, evidence: dict) -> np.ndarray:
    """pgmpy's ``P(variable | evidence)`` with the states in probmodels' order."""
    factor = quiet(lambda: ve.query([variable], evidence=evidence, show_progress=False))
    names = factor.state_names[variable]
    return np.asarray(factor.values)[[names.index(s) for s in net.states(variable)]]


def check(difference: float, tolerance: float, what: str) -> float:
    """Return ``difference``; raise when the two libraries disagree by more than ``tolerance``."""
    if not difference <= tolerance:
        raise RuntimeError(f"{what}: probmodels and pgmpy disagree by {difference:.3g} (tolerance {tolerance:g})")
    return difference


def random_queries(net: DiscreteBayesianNetwork, count: int, n_evidence: int, seed: int) -> list[tuple[str, dict]]:
    """``count`` pairs ``(variable, {node: state})`` with evidence states from forward samples."""
    rng = np.random.default_rng(seed)
    rows = Inference(net).sample(count, generator=torch.Generator().manual_seed(seed))
    nodes = list(net.nodes)
    queries = []
    for i in range(count):
        chosen = rng.choice(len(nodes), n_evidence + 1, replace=False)
        variable, observed = nodes[chosen[0]], [nodes[j] for j in chosen[1:]]
        queries.append((variable, {v: rows[v].iloc[i] for v in observed}))
    return queries


# ----------------------------------------------------------------------------- sections


def run_latency(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Single-query latency per network: cold and warm mean milliseconds per query for both libraries."""
    from pgmpy.inference import VariableElimination
    from pgmpy.utils import get_example_model

    rows = []
    for name in args.networks:
        print(f"latency: {name} ...", file=sys.stderr, flush=True)
        model = quiet(lambda: get_example_model(name))
        net = from_pgmpy(model)
        infer, ve = Inference(net), VariableElimination(model)
        queries = random_queries(net, args.queries, 3, args.seed)
        ours = lambda v, e: infer.query([v], e)[v].probs.numpy()  # noqa: E731
        theirs = lambda v, e: pgmpy_marginal(ve, net, v, e)  # noqa: E731
        passes: dict[str, list[float]] = {"probmodels": [], "pgmpy": []}
        answers: dict[str, list[np.ndarray]] = {}
        for engine, answer in (("probmodels", ours), ("pgmpy", theirs)):
            for _ in range(max(args.repeat, 2)):
                seconds, out = timed(lambda: [answer(v, e) for v, e in queries])
                passes[engine].append(seconds / len(queries))
            answers[engine] = out
        difference = max(float(np.abs(a - b).max()) for a, b in zip(answers["probmodels"], answers["pgmpy"]))
        check(difference, TOLERANCE, f"latency on {name}")
        row = dict(network=name, nodes=len(net.nodes), queries=len(queries), max_abs_difference=difference)
        for engine, times in passes.items():
            row[f"{engine}_cold_ms"], row[f"{engine}_warm_ms"] = 1e3 * times[0], 1e3 * min(times[1:])
        row["speedup_warm"] = row["pgmpy_warm_ms"] / row["probmodels_warm_ms"]
        row["speedup_cold"] = row["pgmpy_cold_ms"] / row["probmodels_cold_ms"]
        rows.append(row)
    return rows


def run_throughput(args: argparse.Namespace) -> dict[str, Any]:
    """Batched queries per second on ``--batch-network`` for each batch size, and pgmpy's one-by-one rate."""
    from pgmpy.inference import VariableElimination
    from pgmpy.utils import get_example_model

    print(f"throughput: {args.batch_network} ...", file=sys.stderr, flush=True)
    model = quiet(lambda: get_example_model(args.batch_network))
    net = from_pgmpy(model)
    infer = Inference(net)
    rng = np.random.default_rng(args.seed)
    nodes = list(net.nodes)
    chosen = rng.choice(len(nodes), 6, replace=False)
    variable, columns = nodes[chosen[0]], [nodes[j] for j in chosen[1:]]
    n_max = max(args.batch_sizes + [args.pgmpy_rows])
    frame = infer.sample(n_max, generator=torch.Generator().manual_seed(args.seed))[columns]
    for column in columns:
        frame[column] = frame[column].where(rng.random(n_max) >= 0.2)
    batches = []
    for n in args.batch_sizes:
        part = frame.iloc[:n]
        infer.query_batch([variable], part)  # plans the contraction
        seconds = best_of(lambda: infer.query_batch([variable], part), args.repeat)
        batches.append(dict(rows=n, seconds=seconds, queries_per_second=n / seconds))
    head = frame.iloc[: args.pgmpy_rows]
    evidence = [{k: v for k, v in row.items() if not pd.isna(v)} for row in head.to_dict("records")]
    ve = VariableElimination(model)
    seconds, theirs = timed(lambda: [pgmpy_marginal(ve, net, variable, e) for e in evidence])
    ours = infer.query_batch([variable], head)[variable].probs.numpy()
    difference = check(float(np.abs(ours - np.stack(theirs)).max()), TOLERANCE, "batched queries")
    return dict(network=args.batch_network, variable=variable, evidence_columns=columns, missing_fraction=0.2,
                batches=batches, pgmpy_rows=len(evidence), pgmpy_queries_per_second=len(evidence) / seconds,
                max_abs_difference=difference)


def pgmpy_tables(cpds: list, net: DiscreteBayesianNetwork) -> dict[str, np.ndarray]:
    """pgmpy TabularCPDs as ``{node: (*parent_cards, card)}`` in the parent order and state order of ``net``."""
    tables = {}
    for cpd in cpds:
        node, parents = cpd.variable, list(cpd.variables[1:])
        cards = tuple(int(c) for c in cpd.cardinality)
        table = np.asarray(cpd.get_values()).T.reshape(cards[1:] + cards[:1])
        for axis, v in enumerate(parents + [node]):
            table = np.take(table, [cpd.state_names[v].index(s) for s in net.states(v)], axis=axis)
        tables[node] = np.transpose(table, [parents.index(p) for p in net.parents(node)] + [len(parents)])
    return tables


def run_learning(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Maximum likelihood and the BDeu posterior mean from ``--rows`` rows: seconds for both libraries."""
    from pgmpy.models import DiscreteBayesianNetwork as PgmpyNetwork
    from pgmpy.parameter_estimator import DiscreteBayesianEstimator, DiscreteMLE
    from pgmpy.utils import get_example_model

    print(f"learning: {args.learn_network}, {args.rows} rows ...", file=sys.stderr, flush=True)
    truth = from_pgmpy(quiet(lambda: get_example_model(args.learn_network)))
    data = Inference(truth).sample(args.rows, generator=torch.Generator().manual_seed(args.seed))
    strings = data.astype(str)
    dag = PgmpyNetwork()
    dag.add_nodes_from(truth.nodes)
    dag.add_edges_from(truth.edges)
    names = {n: list(truth.states(n)) for n in truth.nodes}
    cases = {
        "maximum likelihood": (
            lambda: learn.maximum_likelihood(truth, data),
            lambda: quiet(lambda: DiscreteMLE(state_names=names).fit(dag, strings)),
        ),
        "BDeu posterior mean (ess 5)": (
            lambda: learn.dirichlet_posterior(truth, data, prior="bdeu", equivalent_sample_size=5).mean(),
            lambda: quiet(lambda: DiscreteBayesianEstimator(state_names=names, prior_type="BDeu",
                                                            equivalent_sample_size=5).fit(dag, strings)),
        ),
    }
    rows = []
    for what, (ours, theirs) in cases.items():
        fitted, estimator = ours(), theirs()
        reference = pgmpy_tables(estimator.parameters_, truth)
        difference = max(float(np.abs(fitted.cpd(n).table.numpy() - reference[n]).max()) for n in truth.nodes)
        check(difference, LEARN_TOLERANCE, what)
        row = dict(what=what, network=args.learn_network, rows=args.rows, max_abs_difference=difference,
                   probmodels_seconds=best_of(ours, args.repeat), pgmpy_seconds=best_of(theirs, args.repeat))
        row["speedup"] = row["pgmpy_seconds"] / row["probmodels_seconds"]
        rows.append(row)
    return rows


def largest_intermediate(net: DiscreteBayesianNetwork, variable: str, evidence: dict) -> float:
    """Entries of the largest intermediate on opt_einsum's greedy path over the query's ancestral CPTs."""
    graph = net.graph
    relevant = {variable, *evidence}
    for node in list(relevant):
        relevant |= nx.ancestors(graph, node)
    symbol = {node: opt_einsum.get_symbol(i) for i, node in enumerate(net.nodes)}
    scopes = [(*net.parents(v), v) for v in relevant]
    equation = ",".join("".join(symbol[x] for x in scope) for scope in scopes) + "->" + symbol[variable]
    shapes = [tuple(net.cardinality(x) for x in scope) for scope in scopes]
    return float(opt_einsum.contract_path(equation, *shapes, shapes=True, optimize="greedy")[1].largest_intermediate)


def run_largest(args: argparse.Namespace) -> list[dict[str, Any]]:
    """One hard query per ``--large`` network: P(X | up to 20 observed leaves), probmodels and (small enough) pgmpy."""
    from pgmpy.inference import VariableElimination

    rows = []
    for name in args.large:
        print(f"largest: {name} ...", file=sys.stderr, flush=True)
        read_seconds, net = timed(lambda: read_bif(gzip.decompress(bundled(name).read_bytes())))
        graph = net.graph
        rng = np.random.default_rng(args.seed)
        leaves = [n for n in net.nodes if graph.out_degree(n) == 0]
        observed = [leaves[i] for i in rng.choice(len(leaves), min(20, len(leaves) - 1), replace=False)]
        sample = Inference(net).sample(1, generator=torch.Generator().manual_seed(args.seed)).iloc[0]
        evidence = {v: sample[v] for v in observed}
        ancestors = sorted(set().union(*(nx.ancestors(graph, v) for v in observed)) - set(observed), key=net.index)
        pool = ancestors or [n for n in net.nodes if n not in evidence]
        variable = pool[int(rng.integers(len(pool)))]
        relevant = set().union(*(nx.ancestors(graph, v) for v in [variable, *observed])) | {variable, *observed}
        row = dict(network=name, nodes=len(net.nodes), edges=len(net.edges), relevant_nodes=len(relevant),
                   evidence=len(evidence), read_seconds=read_seconds, largest_intermediate=None,
                   probmodels_cold_seconds=None, probmodels_seconds=None, pgmpy_seconds=None, max_abs_difference=None,
                   skipped=None)
        rows.append(row)
        row["largest_intermediate"] = size = largest_intermediate(net, variable, evidence)
        if size > args.max_entries:
            row["skipped"] = f"greedy path needs a {size:.3g}-entry intermediate (limit {args.max_entries:g})"
            continue
        try:
            infer = Inference(net)
            row["probmodels_cold_seconds"], result = timed(lambda: infer.query([variable], evidence)[variable])
            row["probmodels_seconds"] = best_of(lambda: infer.query([variable], evidence), args.repeat)
        except (RuntimeError, MemoryError) as error:  # an einsum step over 52 labels, or memory
            row["skipped"] = f"probmodels failed: {type(error).__name__}: {str(error)[:120]}"
            continue
        if len(net.nodes) <= args.pgmpy_max_nodes:
            ve = VariableElimination(quiet(lambda: to_pgmpy(net)))
            row["pgmpy_seconds"], theirs = timed(lambda: pgmpy_marginal(ve, net, variable, evidence))
            row["max_abs_difference"] = check(float(np.abs(result.probs.numpy() - theirs).max()), TOLERANCE, name)
    return rows


# ----------------------------------------------------------------------------- report


def run_benchmark(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Run every section with ``args.threads`` threads; return (and write) the report."""
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    with threadpool_limits(args.threads):
        report = {
            "command": command,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine_info(PACKAGES),
            "settings": {k: v for k, v in vars(args).items() if k not in ("render", "output", "markdown", "quick")},
            "targets": TARGETS,
        }
        report["latency"] = run_latency(args)
        report["throughput"] = run_throughput(args)
        report["learning"] = run_learning(args)
        report["largest"] = run_largest(args)
    write_json(Path(args.output), report)
    return report


def render(report: dict[str, Any]) -> str:
    """The ``bn`` section of the results page."""
    s, targets = report["settings"], report["targets"]
    lines = [
        "## Discrete Bayesian networks (`bench_bn.py`)",
        "",
        f"probmodels against pgmpy (`VariableElimination`, `DiscreteMLE`, `DiscreteBayesianEstimator`) in one process, "
        f"{s['threads']} torch/BLAS thread(s); every answer checked against pgmpy's before timing (largest absolute "
        f"difference shown). Run {report['created']} on {describe_machine(report['machine'])}.",
        "",
        f"### Single-query latency ({s['queries']} random queries P(X | 3 observed nodes) per network)",
        "",
        "Cold: the first pass (probmodels plans and contracts each new query pattern); warm: the best later pass over the "
        "same 50 queries, which probmodels answers from its per-pattern cache of the joint P(query, evidence variables) "
        "(so warm measures repeated query patterns; cold is the cost of a pattern seen for the first time). "
        "Speed-up = pgmpy ms ÷ probmodels ms.",
        "",
        "| network | nodes | probmodels cold ms | probmodels warm ms | pgmpy cold ms | pgmpy warm ms | speed-up warm | "
        "speed-up cold | max diff |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["latency"]:
        lines.append(f"| {r['network']} | {r['nodes']} | {fmt(r['probmodels_cold_ms'])} | {fmt(r['probmodels_warm_ms'])} | "
                     f"{fmt(r['pgmpy_cold_ms'])} | {fmt(r['pgmpy_warm_ms'])} | {fmt(r['speedup_warm'])} | "
                     f"{fmt(r['speedup_cold'])} | {r['max_abs_difference']:.1e} |")
    t = report["throughput"]
    lines += [
        "",
        f"### Batched throughput ({t['network']}, P({t['variable']} | evidence on {', '.join(t['evidence_columns'])}), "
        f"{t['missing_fraction']:.0%} of the evidence cells missing)",
        "",
        "| rows in one `query_batch` | seconds | queries / s |",
        "|---|---|---|",
        *[f"| {b['rows']} | {fmt(b['seconds'])} | {fmt(b['queries_per_second'])} |" for b in t["batches"]],
        f"| pgmpy, {t['pgmpy_rows']} rows one by one | – | {fmt(t['pgmpy_queries_per_second'])} |",
        "",
        f"### Parameter learning ({report['learning'][0]['network']}, {report['learning'][0]['rows']} rows)",
        "",
        "| estimate | probmodels s | pgmpy s | speed-up | max diff |",
        "|---|---|---|---|---|",
        *[f"| {r['what']} | {fmt(r['probmodels_seconds'])} | {fmt(r['pgmpy_seconds'])} | {fmt(r['speedup'])} | "
          f"{r['max_abs_difference']:.1e} |" for r in report["learning"]],
        "",
        f"### Largest network answered exactly (P(X | up to 20 observed leaves); skipped over {s['max_entries']:g} "
        f"entries in one intermediate; pgmpy up to {s['pgmpy_max_nodes']} nodes)",
        "",
        "| network | nodes | relevant nodes | largest intermediate | read_bif s | probmodels cold s | probmodels warm s | "
        "pgmpy s | max diff | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["largest"]:
        diff = "–" if r["max_abs_difference"] is None else f"{r['max_abs_difference']:.1e}"
        lines.append(f"| {r['network']} | {r['nodes']} | {r['relevant_nodes']} | {fmt(r['largest_intermediate'])} | "
                     f"{fmt(r['read_seconds'])} | {fmt(r['probmodels_cold_seconds'])} | {fmt(r['probmodels_seconds'])} | "
                     f"{fmt(r['pgmpy_seconds'])} | {diff} | {r['skipped'] or ''} |")
    answered = [r for r in report["largest"] if r["probmodels_seconds"] is not None]
    largest = max(answered, key=lambda r: r["nodes"], default=None)
    largest_text = f"{largest['network']} ({largest['nodes']} nodes)" if largest else "none"
    fast = [r for r in report["latency"] if r["speedup_warm"] >= targets["latency"]]
    best = max((b["queries_per_second"] for b in t["batches"]), default=0.0)
    ml = report["learning"][0]
    lines += [
        "",
        f"Targets: single-query speed-up >= {targets['latency']:g} met on {len(fast)} of {len(report['latency'])} "
        f"networks; batched >= {targets['throughput']:.0e} queries/s {'met' if best >= targets['throughput'] else 'missed'} "
        f"(best {fmt(best)}); learning speed-up >= {targets['learning']:g} "
        f"{'met' if ml['speedup'] >= targets['learning'] else 'missed'} ({fmt(ml['speedup'])}); largest network answered "
        f"exactly: {largest_text}.",
        "",
        *reproduce_lines(report["command"]),
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- command line


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse the command line (``--quick`` shrinks every section to a smoke run)."""
    names = lambda text: [n for n in text.split(",") if n]  # noqa: E731
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--networks", type=names, default=["alarm", "child", "insurance"], help="latency networks")
    parser.add_argument("--queries", type=int, default=50, help="random single queries per network")
    parser.add_argument("--batch-network", default="alarm")
    parser.add_argument("--batch-sizes", type=parse_ints, default=[1000, 10_000, 100_000], help="rows per query_batch")
    parser.add_argument("--pgmpy-rows", type=int, default=200, help="rows that pgmpy answers one by one")
    parser.add_argument("--learn-network", default="alarm")
    parser.add_argument("--rows", type=lambda t: int(float(t)), default=100_000, help="training rows for learning")
    parser.add_argument("--large", type=names, default=["hepar2", "win95pts", "pathfinder", "andes", "pigs", "link", "munin"],
                        help="networks for the largest-network probe, in increasing size")
    parser.add_argument("--max-entries", type=float, default=5e7, help="skip a query needing a larger intermediate")
    parser.add_argument("--pgmpy-max-nodes", type=int, default=250, help="largest network that pgmpy is asked")
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing; the best is reported")
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke run: asia only, 5 queries, 100-row batch, 2,000 rows")
    parser.add_argument("--output", default=str(RESULTS_DIR / "bn_pgmpy.json"), help="JSON file to write (or read with --render)")
    parser.add_argument("--markdown", default=str(RESULTS_MD), help="results page whose 'bn' section is rewritten")
    parser.add_argument("--render", action="store_true", help="only re-render the markdown from --output")
    args = parser.parse_args(argv)
    if args.quick:
        args.networks, args.queries, args.batch_network, args.batch_sizes, args.pgmpy_rows = ["asia"], 5, "asia", [100], 10
        args.learn_network, args.rows, args.large, args.repeat = "asia", 2000, ["asia"], 2
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (unless ``--render``) and rewrite the ``bn`` section of the results page."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.render:
        report = json.loads(Path(args.output).read_text())
    else:
        script = Path(__file__).resolve().relative_to(REPO)
        env = os.environ.get("OMP_NUM_THREADS")
        prefix = f"OMP_NUM_THREADS={env} " if env else ""
        report = run_benchmark(args, prefix + shlex.join(["python", str(script), *argv]))
    path = write_results_section("bn", render(report), Path(args.markdown))
    print(f"wrote the bn section of {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
