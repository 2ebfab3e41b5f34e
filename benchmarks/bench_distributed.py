"""Scale-out benchmark: a grid of fits on 1 vs 2 processes, and MCMC chains on 1 vs 2 torchrun ranks.

* ``grid``: 16 independent Bayesian HMM fits (SVI; ``K = 1..4`` states on two
  data sets, two seeds each) run by :func:`probmodels.distributed.fit_many`
  serially in this process (``max_workers=1``), on 2 local worker processes
  (``max_workers=2``, start-up of the spawned processes included) and on a
  ``dask.distributed.LocalCluster`` of 2 one-thread worker processes (the
  cluster is started and its workers have imported probmodels before the
  clock starts; the start-up is reported apart). Every run writes to a fresh
  results folder, and the three tables are checked to be equal.
* ``chains``: ``fit_mcmc(..., distributed=True)`` on a Bayesian linear
  regression under ``torchrun`` (gloo) with 1 and 2 ranks, for a fixed total
  number of chains: the sampling wall time on rank 0 (after a barrier; the
  launch is reported apart).

Every process runs torch with one thread; the 1-minute load average
(``uptime``) before and after each part is recorded, since other jobs on the
machine share its CPUs.

Examples
--------
::

    python benchmarks/bench_distributed.py                 # both parts, writes results/distributed.json and RESULTS.md
    python benchmarks/bench_distributed.py --quick         # tiny smoke run
    python benchmarks/bench_distributed.py --render        # re-render RESULTS.md from the JSON
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from common import RESULTS_DIR, RESULTS_MD, describe_machine, fmt, machine_info, parse_ints, reproduce_lines, write_json, write_results_section  # noqa: E402

PACKAGES = ("torch", "pyro-ppl", "dask", "distributed")


# ----------------------------------------------------------------------------- the grid's fit


def hmm_data(dataset: int, n: int) -> np.ndarray:
    """A 1-D sequence switching between levels 0 and 3 (data set 1 switches more often)."""
    rng = np.random.default_rng(100 + dataset)
    stay = 0.95 if dataset == 0 else 0.75
    states = [0]
    for _ in range(n - 1):
        states.append(states[-1] if rng.random() < stay else 1 - states[-1])
    return (3.0 * np.asarray(states) + rng.normal(0.0, 0.7, n)).reshape(-1, 1)


def fit_grid_config(config: dict[str, Any]):
    """One grid fit: a Bayesian Gaussian HMM by SVI."""
    from probmodels.exceptions import ConvergenceWarning
    from probmodels.hmm import GaussianHMM

    hmm = GaussianHMM(config["n_states"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        hmm.fit(hmm_data(config["dataset"], config["length"]), method="svi", num_steps=config["num_steps"], num_samples=100,
                progress_bar=False, seed=config["seed"], lr=0.05)
    return hmm.posterior_


def grid_configs(args: argparse.Namespace) -> list[dict[str, Any]]:
    return [dict(dataset=d, n_states=k, seed=s, length=args.length, num_steps=args.num_steps)
            for d in (0, 1) for k in args.states for s in range(args.seeds)]


def warm_up() -> None:
    """Import what a fit and its save need, so that no run pays the imports inside its timing
    (the spawned processes of ``max_workers=2`` do pay them: their start-up is part of that run)."""
    import probmodels.diagnostics.arviz  # noqa: F401
    import probmodels.hmm  # noqa: F401


def load_average() -> float:
    return os.getloadavg()[0]


def run_grid(args: argparse.Namespace) -> dict[str, Any]:
    """Wall time of the grid serially, on 2 local processes and on a 2-worker LocalCluster."""
    import pandas as pd
    from dask.distributed import Client, LocalCluster

    from probmodels.distributed import fit_many

    torch.set_num_threads(1)
    warm_up()
    configs = grid_configs(args)
    report: dict[str, Any] = {"fits": len(configs), "load_before": load_average()}
    tables = {}
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        tables["serial"] = fit_many(fit_grid_config, configs, results_dir=Path(folder) / "serial", max_workers=1, progress_bar=False)
        report["serial_seconds"] = time.perf_counter() - started
        started = time.perf_counter()
        tables["processes"] = fit_many(fit_grid_config, configs, results_dir=Path(folder) / "processes", max_workers=2, progress_bar=False)
        report["processes_seconds"] = time.perf_counter() - started
        started = time.perf_counter()
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
            client.wait_for_workers(2)
            client.run(warm_up)
            report["dask_startup_seconds"] = time.perf_counter() - started
            started = time.perf_counter()
            tables["dask"] = fit_many(fit_grid_config, configs, results_dir=Path(folder) / "dask", client=client, progress_bar=False)
            report["dask_seconds"] = time.perf_counter() - started
        summaries = [c for c in tables["serial"].columns if c.startswith(("mean[", "sd["))]
        for name in ("processes", "dask"):
            pd.testing.assert_frame_equal(tables["serial"][summaries], tables[name][summaries], check_exact=True)
    report["fit_seconds_sum"] = {name: float(table["fit_seconds"].sum()) for name, table in tables.items()}
    report["identical_results"] = True
    report["load_after"] = load_average()
    return report


# ----------------------------------------------------------------------------- chains under torchrun


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def chains_command(ranks: int, num_chains: int, args: argparse.Namespace, out: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={ranks}", "--master_addr=127.0.0.1",
            f"--master_port={free_port()}", str(Path(__file__).resolve()), "--chains-worker", "--num-chains", str(num_chains),
            "--num-warmup", str(args.num_warmup), "--num-samples", str(args.num_samples), "--worker-output", out]


def chains_worker(args: argparse.Namespace) -> None:
    """Body of one torchrun rank: sample, and on rank 0 write the wall time."""
    import pyro
    import pyro.distributions as dist
    import torch.distributed

    from probmodels import fit_mcmc

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.normal(size=100))
    y = 1.0 + 2.0 * x + torch.as_tensor(rng.normal(0.0, 0.5, 100))

    def regression(x, y):
        a = pyro.sample("a", dist.Normal(0.0, 5.0))
        b = pyro.sample("b", dist.Normal(0.0, 5.0))
        s = pyro.sample("s", dist.HalfNormal(2.0))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("y", dist.Normal(a + b * x, s), obs=y)

    settings = dict(num_chains=args.num_chains, num_warmup=args.num_warmup, num_samples=args.num_samples, compile="none",
                    progress_bar=False, seed=0, distributed=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit_mcmc(regression, x, y, **dict(settings, num_warmup=5, num_samples=5))  # joins the group, warms the caches
        torch.distributed.barrier()
        started = time.perf_counter()
        posterior = fit_mcmc(regression, x, y, **settings)
        seconds = time.perf_counter() - started
    if torch.distributed.get_rank() == 0:
        Path(args.worker_output).write_text(json.dumps(dict(seconds=seconds, chains=posterior.num_chains)))
    torch.distributed.destroy_process_group()


def run_chains(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    for num_chains in args.chains:
        for ranks in (1, 2):
            with tempfile.TemporaryDirectory() as folder:
                out = str(Path(folder) / "rank0.json")
                command = chains_command(ranks, num_chains, args, out)
                load_before = load_average()
                started = time.perf_counter()
                subprocess.run(command, env=env, check=True, capture_output=True)
                launch = time.perf_counter() - started
                result = json.loads(Path(out).read_text())
            shown = ["torchrun", f"--nproc_per_node={ranks}", "benchmarks/bench_distributed.py", "--chains-worker",
                     "--num-chains", str(num_chains), "--num-warmup", str(args.num_warmup), "--num-samples", str(args.num_samples),
                     "--worker-output", "rank0.json"]
            rows.append(dict(num_chains=num_chains, ranks=ranks, chains_per_rank=num_chains / ranks, sample_seconds=result["seconds"],
                             launch_seconds=launch, load_before=load_before, load_after=load_average(), command=shlex.join(shown)))
            print(f"chains {num_chains} ranks {ranks}: {result['seconds']:.2f} s", file=sys.stderr)
    return rows


# ----------------------------------------------------------------------------- report


def render(report: dict[str, Any]) -> str:
    grid, chains, settings = report["grid"], report["chains"], report["settings"]
    text = [
        "## Scale-out (`probmodels.distributed`)",
        "",
        f"Run {report['date']} on {describe_machine(report['machine'])}; torch one thread per process. "
        f"The machine's CPUs are shared with other jobs: 1-minute load average (`uptime`) "
        f"{fmt(grid['load_before'])} before the grid and {fmt(grid['load_after'])} after it.",
        "",
        f"### Grid of {grid['fits']} fits (`fit_many`)",
        "",
        f"Bayesian Gaussian HMMs by SVI ({settings['num_steps']} steps, {settings['length']} points, K = "
        f"{', '.join(map(str, settings['states']))}, two data sets, {settings['seeds']} seeds). The three runs' tables are "
        f"{'bitwise equal' if grid['identical_results'] else 'DIFFERENT'}.",
        "",
        "The last column, the sum of the fits' own wall times over the run's wall time, is the number of fits "
        "that were in flight on average; the speed-up falls short of it when the fits themselves run slower side by side "
        "(two workers share the 2 CPUs with the other jobs of the load average).",
        "",
        "| run | wall time (s) | speed-up vs serial | sum of fit times (s) | fits in flight |",
        "|---|---:|---:|---:|---:|",
        *[
            f"| {label} | {fmt(grid[name + '_seconds'])} | {fmt(grid['serial_seconds'] / grid[name + '_seconds'])} | "
            f"{fmt(grid['fit_seconds_sum'][name])} | {fmt(grid['fit_seconds_sum'][name] / grid[name + '_seconds'])} |"
            for name, label in (
                ("serial", "serial, this process (`max_workers=1`)"),
                ("processes", "2 local worker processes (`max_workers=2`, spawn and imports included)"),
                ("dask", f"Dask LocalCluster, 2 workers × 1 thread (warm; start-up {fmt(grid['dask_startup_seconds'])} s)"),
            )
        ],
        "",
        *reproduce_lines(report["command"] + " --only grid"),
        "### Chains per rank (`fit_mcmc(distributed=True)`, torchrun, gloo)",
        "",
        f"Linear regression (3 parameters, 100 points), {settings['num_warmup']} warmup + {settings['num_samples']} draws "
        "per chain, eager NUTS; sampling time on rank 0 after a barrier.",
        "",
        "| chains | ranks | chains per rank | sampling (s) | speed-up vs 1 rank | launch total (s) | load before/after |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    single = {row["num_chains"]: row["sample_seconds"] for row in chains if row["ranks"] == 1}
    for row in chains:
        text.append(
            f"| {row['num_chains']} | {row['ranks']} | {fmt(row['chains_per_rank'])} | {fmt(row['sample_seconds'])} | "
            f"{fmt(single[row['num_chains']] / row['sample_seconds'])} | {fmt(row['launch_seconds'])} | "
            f"{fmt(row['load_before'])}/{fmt(row['load_after'])} |"
        )
    text += ["", "Each row reproduces with (in a scratch folder):", ""]
    text += ["```"] + [row["command"] for row in chains] + ["```", ""]
    return "\n".join(text)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("grid", "chains"), help="run one part (the other is kept from --output)")
    parser.add_argument("--states", type=parse_ints, default=[1, 2, 3, 4])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--length", type=int, default=60)
    parser.add_argument("--num-steps", type=int, default=100)
    parser.add_argument("--chains", type=parse_ints, default=[8, 64], help="total chains, comma-separated")
    parser.add_argument("--num-chains", type=int, default=8, help="(--chains-worker) chains of this launch")
    parser.add_argument("--num-warmup", type=int, default=200)
    parser.add_argument("--num-samples", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="tiny sizes for a smoke run")
    parser.add_argument("--chains-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker-output", help=argparse.SUPPRESS)
    parser.add_argument("--output", default=str(RESULTS_DIR / "distributed.json"))
    parser.add_argument("--markdown", default=str(RESULTS_MD))
    parser.add_argument("--render", action="store_true", help="only re-render the markdown from --output")
    args = parser.parse_args(argv)
    if args.quick:
        args.states, args.seeds, args.num_steps, args.chains, args.num_warmup, args.num_samples = [1, 2], 1, 10, [4], 20, 20
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.chains_worker:
        chains_worker(args)
        return 0
    output = Path(args.output)
    if args.render:
        report = json.loads(output.read_text())
    else:
        report = json.loads(output.read_text()) if args.only and output.exists() else {}
        report.update(
            date=datetime.date.today().isoformat(), machine=machine_info(PACKAGES),
            command=shlex.join(["python", "benchmarks/bench_distributed.py", *[a for a in argv if a not in ("--only", "grid", "chains")]]),
            settings=dict(states=args.states, seeds=args.seeds, length=args.length, num_steps=args.num_steps,
                          num_warmup=args.num_warmup, num_samples=args.num_samples),
        )
        if args.only in (None, "grid"):
            report["grid"] = run_grid(args)
        if args.only in (None, "chains"):
            report["chains"] = run_chains(args)
        write_json(output, report)
    path = write_results_section("distributed", render(report), Path(args.markdown))
    print(f"wrote the distributed section of {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
