"""Side-by-side HMM benchmark: probmodels against hmmlearn and pomegranate.

In one process, on the same data and the same parameters (a Gaussian HMM on
one feature: sticky transitions, state means ``0, 1, ..., K-1``, standard
deviation 0.6, data drawn from the model), the script times four operations

* ``score``: the forward log-likelihood;
* ``decode``: the Viterbi path;
* ``proba``: forward-backward posterior state marginals;
* ``em``: one Baum-Welch iteration (E-step and M-step) from those parameters;

for every number of states ``K``, total length and layout (one long sequence,
or ``--batch-sequences`` sequences of equal length), with

* ``probmodels``: :class:`probmodels.hmm.GaussianHMM` (``score``, ``predict``,
  ``predict_proba``, ``fit(n_iter=1)``);
* ``hmmlearn``: ``hmmlearn.hmm.GaussianHMM`` with ``implementation="log"``
  and ``"scaling"`` (``score``, ``decode``, ``predict_proba``, ``fit(n_iter=1)``);
  the faster of the two is the peer;
* ``pomegranate``: ``pomegranate.hmm.DenseHMM`` (1.x, torch, float64) with
  ``Normal`` distributions and end probabilities 1 (``log_probability``,
  ``viterbi``, ``predict_proba``, ``fit(max_iter=1)``).

Each cell is the best wall time of ``--repeat`` runs (a run over ``--long``
seconds ends the repeats). A cell whose time, extrapolated linearly from the
next smaller total length, would exceed ``--max-run-seconds`` is skipped, as
is a pomegranate forward-backward that would allocate its
``(sequences, length, K, K)`` tensor beyond ``--max-gb``; the JSON and the
table say so. Every engine's result is checked against probmodels in the same
run: the log-likelihood (``score``; ``em``: means after the iteration), the
joint log probability of the decoded path, and the posterior marginals.

Examples
--------
::

    python benchmarks/bench_hmm.py                 # full grid, writes results/hmm.json and RESULTS.md
    python benchmarks/bench_hmm.py --quick         # tiny smoke run
    python benchmarks/bench_hmm.py --render        # re-render RESULTS.md from the JSON
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import shlex
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from common import (  # noqa: E402
    RESULTS_DIR, RESULTS_MD, describe_machine, fmt, machine_info, parse_ints, reproduce_lines, write_json, write_results_section,
)

from probmodels.exceptions import ConvergenceWarning  # noqa: E402
from probmodels.hmm import GaussianHMM  # noqa: E402

OPS = ("score", "decode", "proba", "em")
ENGINES = ("probmodels", "hmmlearn", "pomegranate")
PACKAGES = ("torch", "numpy", "hmmlearn", "pomegranate")
TOLERANCE = 1e-6
STD = 0.6
STAY = 0.8


# ----------------------------------------------------------------------------- data


def make_case(n_states: int, total: int, n_sequences: int, seed: int) -> dict[str, Any]:
    """Parameters and data of one configuration: ``X`` ``(total, 1)`` drawn from the model, ``lengths``."""
    rng = np.random.default_rng(seed)
    k = n_states
    transmat = STAY * np.eye(k) + (1 - STAY) * rng.dirichlet(np.ones(k), size=k)
    startprob = np.full(k, 1 / k)
    means = np.arange(k, dtype=float)[:, None]
    covars = np.full((k, 1), STD**2)
    length = total // n_sequences
    cdf = np.cumsum(transmat, axis=1)
    uniforms = rng.random((length, n_sequences))
    states = np.empty((n_sequences, length), dtype=np.int64)
    states[:, 0] = rng.choice(k, size=n_sequences, p=startprob)
    for t in range(1, length):  # inverse-CDF draws, all sequences at once
        row = cdf[states[:, t - 1]]
        states[:, t] = np.minimum((row < uniforms[t, :, None] * row[:, -1:]).sum(1), k - 1)
    states = states.reshape(-1)
    X = means[states] + STD * rng.standard_normal((states.size, 1))
    return dict(startprob=startprob, transmat=transmat, means=means, covars=covars, X=X,
                lengths=[length] * n_sequences, n_sequences=n_sequences, length=length)


def path_log_prob(case: dict[str, Any], path: np.ndarray) -> float:
    """Joint log probability ``log p(z, X)`` of a concatenated state path (the common yardstick of ``decode``)."""
    path = np.asarray(path).reshape(case["n_sequences"], case["length"])
    X = case["X"][:, 0].reshape(path.shape)
    mu, var = case["means"][:, 0][path], case["covars"][:, 0][path]
    emit = -0.5 * (np.log(2 * np.pi * var) + (X - mu) ** 2 / var)
    trans = np.log(case["transmat"])[path[:, :-1], path[:, 1:]]
    return float(np.log(case["startprob"])[path[:, 0]].sum() + trans.sum() + emit.sum())


# ----------------------------------------------------------------------------- engines
# Each builder returns {op: callable}; a callable returns the value checked against probmodels.


def probmodels_ops(case: dict[str, Any]) -> dict[str, Callable[[], Any]]:
    """The operations on :class:`probmodels.hmm.GaussianHMM`."""
    X, lengths, k = case["X"], case["lengths"], len(case["startprob"])

    def model(**kwargs):
        hmm = GaussianHMM(k, "diag", **kwargs)
        hmm.startprob_, hmm.transmat_ = case["startprob"], case["transmat"]
        hmm.means_, hmm.covars_ = case["means"], case["covars"]
        return hmm

    fitted = model()

    def em():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            hmm = model(init_params="").fit(X, lengths, n_iter=1, n_restarts=1)
        return hmm.means_[:, 0]

    return {
        "score": lambda: fitted.score(X, lengths),
        "decode": lambda: path_log_prob(case, fitted.predict(X, lengths)),
        "proba": lambda: fitted.predict_proba(X, lengths),
        "em": em,
    }


def hmmlearn_ops(case: dict[str, Any], implementation: str) -> dict[str, Callable[[], Any]]:
    """The operations on ``hmmlearn.hmm.GaussianHMM`` with the given ``implementation``."""
    from hmmlearn.hmm import GaussianHMM as PeerHMM

    X, lengths, k = case["X"], case["lengths"], len(case["startprob"])

    def model(**kwargs):
        hmm = PeerHMM(k, "diag", implementation=implementation, init_params="", **kwargs)
        hmm.startprob_, hmm.transmat_ = case["startprob"], case["transmat"]
        hmm.means_, hmm.covars_ = case["means"], case["covars"]
        return hmm

    fitted = model()
    return {
        "score": lambda: fitted.score(X, lengths),
        "decode": lambda: path_log_prob(case, fitted.decode(X, lengths)[1]),
        "proba": lambda: fitted.predict_proba(X, lengths),
        "em": lambda: model(n_iter=1, tol=0.0).fit(X, lengths).means_[:, 0],
    }


def pomegranate_ops(case: dict[str, Any]) -> dict[str, Callable[[], Any]]:
    """The operations on ``pomegranate.hmm.DenseHMM`` in float64 (end probabilities 1, so no end term)."""
    from pomegranate.distributions import Normal
    from pomegranate.hmm import DenseHMM

    k = len(case["startprob"])
    X = torch.as_tensor(case["X"]).reshape(case["n_sequences"], case["length"], 1)

    def model(**kwargs):
        # copies: pomegranate's fit updates its parameters in place, which must not touch the shared case
        dists = [
            Normal(means=torch.tensor(case["means"][i]), covs=torch.tensor(case["covars"][i]), covariance_type="diag")
            for i in range(k)
        ]
        return DenseHMM(
            dists, edges=torch.tensor(case["transmat"]), starts=torch.tensor(case["startprob"]),
            ends=torch.ones(k, dtype=torch.float64), **kwargs,
        ).double()

    fitted = model()

    def em():
        hmm = model(max_iter=1).fit(X)
        return np.array([float(d.means[0]) for d in hmm.distributions])

    return {
        "score": lambda: float(fitted.log_probability(X).sum()),
        "decode": lambda: path_log_prob(case, fitted.viterbi(X).numpy().reshape(-1)),
        "proba": lambda: fitted.predict_proba(X).numpy().reshape(-1, k),
        "em": em,
    }


VARIANTS = {
    "probmodels": (("probmodels", probmodels_ops),),
    "hmmlearn": (("hmmlearn-log", lambda case: hmmlearn_ops(case, "log")),
                 ("hmmlearn-scaling", lambda case: hmmlearn_ops(case, "scaling"))),
    "pomegranate": (("pomegranate", pomegranate_ops),),
}


def deviation(op: str, value: Any, reference: Any) -> float:
    """Disagreement with probmodels: relative for ``score``/``decode``/``em``, absolute for ``proba``."""
    if op == "proba":
        return float(np.max(np.abs(np.asarray(value) - np.asarray(reference))))
    value, reference = np.asarray(value, dtype=float), np.asarray(reference, dtype=float)
    return float(np.max(np.abs(value - reference) / np.maximum(np.abs(reference), 1.0)))


def time_it(fn: Callable[[], Any], repeat: int, long: float) -> tuple[list[float], Any]:
    """Wall times of up to ``repeat`` calls (stopping after one longer than ``long`` s) and the last result."""
    times, result = [], None
    for _ in range(repeat):
        result = None
        gc.collect()
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
        if times[-1] > long:
            break
    return times, result


# ----------------------------------------------------------------------------- running


def run_benchmark(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Run the grid and return the report (also written to ``args.output``)."""
    torch.set_num_threads(args.threads)
    engines = [e for e in args.engines if e in VARIANTS]
    unavailable = {}
    if "pomegranate" in engines:
        try:
            import pomegranate.hmm  # noqa: F401
        except ImportError as error:
            unavailable["pomegranate"] = f"not importable: {error}"
            engines.remove("pomegranate")
    rows: list[dict[str, Any]] = []
    previous: dict[tuple, tuple[int, float]] = {}  # (variant, K, layout, op) -> (total, best time)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(args.threads):
        for k in args.states:
            for layout, n_seq in (("1 sequence", 1), (f"{args.batch_sequences} sequences", args.batch_sequences)):
                for total in args.totals:
                    case = make_case(k, total, n_seq, args.seed)
                    results: dict[str, dict[str, Any]] = {}
                    for engine in ["probmodels"] + [e for e in engines if e != "probmodels"]:
                        for variant, build in VARIANTS[engine]:
                            table = build(case)
                            for op in args.ops:
                                row = dict(n_states=k, total=total, layout=layout, n_sequences=n_seq, op=op,
                                           engine=engine, variant=variant, times=[], best_s=None, skipped=None, deviation=None)
                                reason = skip_reason(args, variant, case, k, layout, op, total, previous)
                                if reason:
                                    row["skipped"] = reason
                                else:
                                    print(f"K={k} {layout} total={total} {op}: {variant} ...", file=sys.stderr, flush=True)
                                    row["times"], value = time_it(table[op], args.repeat, args.long)
                                    row["best_s"] = min(row["times"])
                                    previous[(variant, k, layout, op)] = (total, row["best_s"])
                                    if engine == "probmodels":
                                        results[op] = value
                                    elif op in results:
                                        row["deviation"] = deviation(op, value, results[op])
                                    del value
                                rows.append(row)
                            del table
                    del case
                    gc.collect()
                    write_report(args, command, unavailable, rows)  # after every configuration: a crash keeps the rest
    return write_report(args, command, unavailable, rows)


def write_report(args: argparse.Namespace, command: str, unavailable: dict[str, str], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Write the rows so far, with the settings, the machine and the command line, to ``args.output``."""
    report = {
        "command": command,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(PACKAGES),
        "settings": dict(states=args.states, totals=args.totals, batch_sequences=args.batch_sequences, ops=args.ops,
                         repeat=args.repeat, long=args.long, max_run_seconds=args.max_run_seconds, max_gb=args.max_gb,
                         threads=args.threads, seed=args.seed, tolerance=TOLERANCE, std=STD, stay=STAY),
        "unavailable": unavailable,
        "rows": rows,
    }
    output = Path(args.output)
    write_json(output, report)
    return report


def skip_reason(args, variant, case, k, layout, op, total, previous) -> str | None:
    """Why a cell is not run (None: run it)."""
    if variant == "pomegranate" and op in ("proba", "em"):
        gib = case["n_sequences"] * (case["length"] - 1) * k * k * 8 / 2**30
        if gib > args.max_gb:
            return f"its forward-backward would allocate a {gib:.1f} GiB (sequences, length, K, K) tensor (limit {args.max_gb} GiB)"
    if (variant, k, layout, op) in previous:
        smaller, seconds = previous[(variant, k, layout, op)]
        predicted = seconds * total / smaller
        if predicted > args.max_run_seconds:
            return f"predicted {predicted:.0f} s from {seconds:.1f} s at total {smaller} (limit {args.max_run_seconds} s)"
    return None


# ----------------------------------------------------------------------------- rendering


def summarise(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One summary per (K, layout, total, op): each engine's best time, the peers' ratios and deviations."""
    cells: dict[tuple, dict[str, Any]] = {}
    for row in report["rows"]:
        key = (row["n_states"], row["layout"], row["total"], row["op"])
        cell = cells.setdefault(key, dict(n_states=key[0], layout=key[1], total=key[2], op=key[3], n_sequences=row["n_sequences"]))
        engine = cell.setdefault(row["engine"], dict(best_s=None, variant=None, deviation=None, skipped=[]))
        if row["best_s"] is None:
            engine["skipped"].append(f"{row['variant']}: {row['skipped']}")
            continue
        if engine["best_s"] is None or row["best_s"] < engine["best_s"]:
            engine.update(best_s=row["best_s"], variant=row["variant"], deviation=row["deviation"])
    out = []
    for cell in cells.values():
        base = cell.get("probmodels", {}).get("best_s")
        for engine in ENGINES[1:]:
            if engine in cell:
                peer = cell[engine]["best_s"]
                cell[engine]["ratio"] = peer / base if (peer is not None and base) else None
        out.append(cell)
    return out


def render(report: dict[str, Any]) -> str:
    """The markdown section of a report: the table, the targets and the command that reproduces it."""
    settings = report["settings"]
    cells = summarise(report)
    header = ["K", "layout", "total", "op", "probmodels s", "hmmlearn s", "hmmlearn ÷ probmodels",
              "pomegranate s", "pomegranate ÷ probmodels", "max deviation"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    notes = []
    for cell in cells:
        row = [str(cell["n_states"]), cell["layout"], f"{cell['total']:.0e}".replace("e+0", "e"), cell["op"],
               fmt(cell.get("probmodels", {}).get("best_s"))]
        deviations = []
        for engine in ENGINES[1:]:
            info = cell.get(engine)
            if info is None:
                row += ["–", "–"]
                continue
            label = "" if info["variant"] in (None, engine) else f" ({info['variant'].split('-', 1)[1]})"
            row += [fmt(info["best_s"]) + label, fmt(info.get("ratio"))]
            if info["deviation"] is not None:
                deviations.append(info["deviation"])
            for skipped in info["skipped"]:
                notes.append(f"K={cell['n_states']}, {cell['layout']}, total {cell['total']}, {cell['op']}: {skipped}")
        row.append(f"{max(deviations):.1e}" if deviations else "–")
        lines.append("| " + " | ".join(row) + " |")
    hl = [c for c in cells if c.get("hmmlearn", {}).get("ratio") is not None]
    slower = [c for c in hl if c["hmmlearn"]["ratio"] < 1]
    batch = [c for c in hl if c["n_sequences"] > 1 and c["n_states"] >= 16]
    below3 = [c for c in batch if c["hmmlearn"]["ratio"] < 3]
    devs = [info["deviation"] for c in cells for e in ENGINES[1:] if (info := c.get(e)) and info["deviation"] is not None]
    machine = report["machine"]
    text = [
        "## Hidden Markov models (`bench_hmm.py`)",
        "",
        f"Gaussian HMM, one feature, means 0..K-1, sd {settings['std']}, transitions {settings['stay']} on the diagonal "
        f"plus {1 - settings['stay']:.1f} × Dirichlet(1); data drawn from the model (seed {settings['seed']}). "
        f"Best wall time of up to {settings['repeat']} runs (one run when it took over {settings['long']} s); "
        f"{settings['threads']} thread(s) for torch and BLAS in every engine. hmmlearn: the faster of "
        "`implementation=\"log\"` and `\"scaling\"` (named). Ratios above 1: probmodels is faster. "
        "Max deviation from probmodels over the peers: relative for score (log-likelihood), decode (joint log "
        "probability of the path) and em (means after one iteration), absolute for proba; "
        f"tolerance {settings['tolerance']:g}. "
        f"Run {report['created']} on {describe_machine(machine)}.",
        "",
        *lines,
        "",
        f"Targets: rows slower than hmmlearn: {len(slower)} of {len(hl)}"
        + (" (" + "; ".join(f"K={c['n_states']} {c['layout']} {c['total']:.0e} {c['op']}: {c['hmmlearn']['ratio']:.2f}" for c in slower) + ")" if slower else "")
        + f". Rows with {settings['batch_sequences']} sequences and K >= 16 below 3× hmmlearn: {len(below3)} of {len(batch)}"
        + (" (" + "; ".join(f"K={c['n_states']} {c['total']:.0e} {c['op']}: {c['hmmlearn']['ratio']:.2f}" for c in below3) + ")" if below3 else "")
        + f". Deviations above {settings['tolerance']:g}: {sum(d > settings['tolerance'] for d in devs)} of {len(devs)}.",
    ]
    for engine, why in report.get("unavailable", {}).items():
        text += ["", f"{engine}: {why}."]
    if notes:
        text += ["", "Skipped cells:", ""] + [f"- {note}" for note in notes]
    text += ["", *reproduce_lines(report["command"])]
    return "\n".join(text)


# ----------------------------------------------------------------------------- command line


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse the command line (``--quick`` replaces the grid by a tiny one)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--states", type=parse_ints, default=[4, 16, 64], help="numbers of states K, comma-separated")
    parser.add_argument("--totals", type=parse_ints, default=[10**4, 10**5, 10**6], help="total lengths, comma-separated")
    parser.add_argument("--batch-sequences", type=int, default=100, help="sequences of the batched layout")
    parser.add_argument("--ops", type=lambda s: [o for o in s.split(",") if o], default=list(OPS))
    parser.add_argument("--engines", type=lambda s: [e for e in s.split(",") if e], default=list(ENGINES))
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell; the best is reported")
    parser.add_argument("--long", type=float, default=10.0, help="a run longer than this (s) ends the repeats")
    parser.add_argument("--max-run-seconds", type=float, default=60.0, help="skip a cell predicted to take longer")
    parser.add_argument("--max-gb", type=float, default=3.0, help="skip a pomegranate forward-backward above this size")
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS threads for every engine")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny grid (K 3, totals 200 and 400, 4 sequences, 1 repeat)")
    parser.add_argument("--output", default=str(RESULTS_DIR / "hmm.json"), help="JSON file to write (or read with --render)")
    parser.add_argument("--markdown", default=str(RESULTS_MD), help="results page whose 'hmm' section is rewritten")
    parser.add_argument("--render", action="store_true", help="only re-render the markdown from --output")
    args = parser.parse_args(argv)
    if args.quick:
        args.states, args.totals, args.batch_sequences, args.repeat = [3], [200, 400], 4, 1
    bad = sorted(set(args.ops) - set(OPS)) + sorted(set(args.engines) - set(ENGINES))
    if bad:
        parser.error(f"unknown op or engine {bad}; ops: {OPS}, engines: {ENGINES}")
    if "probmodels" not in args.engines:
        parser.error("the engines must include probmodels (the reference of every check)")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (unless ``--render``) and rewrite the ``hmm`` section of the results page."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.render:
        report = json.loads(Path(args.output).read_text())
    else:
        script = Path(__file__).resolve().relative_to(REPO)
        report = run_benchmark(args, shlex.join(["python", str(script), *argv]))
    path = write_results_section("hmm", render(report), Path(args.markdown))
    print(f"wrote the hmm section of {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
