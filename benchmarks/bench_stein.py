"""Stein diagnostics benchmark: KSD of 4,000 draws in 50 dimensions, and stein_check on the references.

Two timings:

* ``ksd``: :func:`probmodels.diagnostics.ksd` of ``--ksd-draws`` exact draws
  of a standard normal in ``--ksd-dim`` dimensions (a plain log-density
  function), with ``--n-bootstrap`` bootstrap replicates; the goal is under
  5 s on a CPU. The same call on over-dispersed draws (scale 1.2) shows the
  test's power.
* ``stein_check``: :func:`probmodels.diagnostics.stein_check` of each
  posteriordb Pyro port (``tests/posteriordb_models.py``) against its 10,000
  reference draws, with the verdict, the largest ``|z|`` and its threshold.

Each time is the best of ``--repeat`` runs. The results go to
``benchmarks/results/stein.json`` and the ``stein`` section of
``benchmarks/RESULTS.md``.

Examples
--------
::

    python benchmarks/bench_stein.py              # writes results/stein.json and RESULTS.md
    python benchmarks/bench_stein.py --render     # re-render RESULTS.md from the JSON

References
----------
.. [1] J. Gorham and L. Mackey, "Measuring sample quality with kernels", ICML 2017.
.. [2] M. Magnusson et al., "posteriordb: a set of posteriors for Bayesian
   inference and probabilistic programming", 2022.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks"), str(REPO / "tests")]

from common import (  # noqa: E402
    RESULTS_DIR, RESULTS_MD, describe_machine, fmt, machine_info, reproduce_lines, write_json, write_results_section,
)

from probmodels.diagnostics import ksd, stein_check  # noqa: E402

PACKAGES = ("torch", "pyro-ppl", "arviz")


def best_time(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """The best wall time of ``repeat`` calls of ``fn``, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times), result


def bench_ksd(args: argparse.Namespace) -> dict[str, Any]:
    """Time the KSD test of exact and over-dispersed standard-normal draws."""
    generator = torch.Generator().manual_seed(0)
    draws = torch.randn(args.ksd_draws, args.ksd_dim, generator=generator, dtype=torch.float64)

    def log_density(u: torch.Tensor) -> torch.Tensor:
        return -0.5 * (u * u).sum(-1)

    rows = {}
    for label, sample in (("exact", draws), ("overdispersed x1.2", 1.2 * draws)):
        seconds, result = best_time(lambda: ksd(sample, log_density=log_density, n_bootstrap=args.n_bootstrap), args.repeat)
        rows[label] = {"seconds": seconds, "ksd": result.ksd, "p_value": result.p_value}
        print(f"ksd {label}: {seconds:.2f} s, KSD {result.ksd:.4f}, p {result.p_value:.4f}", flush=True)
    return {"draws": args.ksd_draws, "dim": args.ksd_dim, "n_bootstrap": args.n_bootstrap, "runs": rows}


def bench_references(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Time stein_check of every posteriordb port against its reference draws (empty when absent)."""
    from posteriordb_models import CASE_NAMES, load_case, reference_dir, reference_latents

    if reference_dir() is None:
        print("posteriordb references absent; skipping stein_check timings", flush=True)
        return []
    rows = []
    for name in CASE_NAMES:
        case, draws = load_case(name), reference_latents(name)
        seconds, result = best_time(lambda: stein_check(case.model, draws, *case.args, model_kwargs=case.kwargs), args.repeat)
        rows.append({
            "posterior": name, "seconds": seconds, "passed": result.passed, "max_abs_z": result.max_abs_z,
            "threshold": result.threshold, "num_tests": result.num_tests, "dim": len(result.coordinates),
            "num_draws": result.num_draws, "min_ess": result.min_ess,
        })
        print(f"stein_check {name}: {seconds:.2f} s, {'PASS' if result.passed else 'FAIL'}, max |z| {result.max_abs_z:.2f}", flush=True)
    return rows


def render(report: dict[str, Any]) -> str:
    """The markdown section: both tables and the command that reproduces them."""
    k = report["ksd"]
    text = [
        "## Stein diagnostics",
        "",
        f"{report['date']}, {describe_machine(report['machine'])}; {report['machine']['torch_threads']} torch threads, float64, CPU.",
        "",
        f"`ksd` of {k['draws']} draws of a standard normal in d = {k['dim']} ({k['n_bootstrap']} bootstrap replicates; goal: under 5 s):",
        "",
        "| draws | time (s) | KSD | p-value |",
        "|---|---:|---:|---:|",
    ]
    text += [f"| {label} | {fmt(row['seconds'])} | {fmt(row['ksd'])} | {fmt(row['p_value'])} |" for label, row in k["runs"].items()]
    if report["references"]:
        text += [
            "",
            "`stein_check` of each posteriordb Pyro port against its reference draws (family-wise false-alarm rate 1e-3):",
            "",
            "| posterior | dim | draws | tests | time (s) | max abs z | threshold | verdict |",
            "|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        text += [
            f"| {r['posterior']} | {r['dim']} | {r['num_draws']} | {r['num_tests']} | {fmt(r['seconds'])} | {fmt(r['max_abs_z'])} "
            f"| {fmt(r['threshold'])} | {'pass' if r['passed'] else 'FAIL'} |"
            for r in report["references"]
        ]
    text += ["", *reproduce_lines(report["command"])]
    return "\n".join(text)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ksd-draws", type=int, default=4000)
    parser.add_argument("--ksd-dim", type=int, default=50)
    parser.add_argument("--n-bootstrap", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--output", default=str(RESULTS_DIR / "stein.json"))
    parser.add_argument("--markdown", default=str(RESULTS_MD))
    parser.add_argument("--render", action="store_true", help="only re-render the markdown from --output")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run (or re-render) the benchmark and write the JSON and the markdown section."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    output = Path(args.output)
    if args.render:
        report = json.loads(output.read_text())
    else:
        torch.set_default_dtype(torch.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            report = {
                "command": shlex.join(["python", "benchmarks/bench_stein.py", *argv]),
                "date": datetime.date.today().isoformat(),
                "machine": machine_info(PACKAGES),
                "ksd": bench_ksd(args),
                "references": bench_references(args),
            }
        write_json(output, report)
    path = write_results_section("stein", render(report), Path(args.markdown))
    print(f"wrote {output} and the stein section of {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
