"""Evidence benchmark: every log-evidence estimator against the truth, and bridge sampling at d = 50.

Each problem has a log evidence known in closed form or by quadrature:

* ``normal_normal``: ``mu ~ N(1, 2^2)``, ``y_i ~ N(mu, 1)``, n = 50;
* ``nig_regression``: linear regression with a Normal-Inverse-Gamma prior,
  n = 100, d = 5 (the evidence is a multivariate Student t);
* ``correlated_gaussian``: a 10-d Gaussian prior and likelihood with a
  correlated covariance;
* ``gp_latent``: a GP's 12 latent function values (fixed RBF hyperparameters)
  under Gaussian noise; the truth is the GP marginal likelihood;
* ``hmm_means``: a two-state HMM with fixed transitions and noise whose
  emission means have Normal priors, T = 10; the truth sums the closed-form
  evidence of every state path;
* ``bimodal``: ``theta ~ N(0, 3^2)`` with a likelihood that is a mixture of
  two well-separated bumps holding 30 % and 70 % of the posterior mass
  (the truth by quadrature); the NUTS fit's chains are all started in the
  smaller mode, as chains that land there stay there.

For each, ``fit_mcmc`` draws the posterior once (its time is recorded), then
``log_evidence`` runs with ``bridge``, ``importance``, ``laplace`` and
``stepping_stone``; a row records the estimate, the truth, the error, the
reported standard error and the seconds. A last timing runs bridge sampling
from ``--bridge-draws`` exact posterior draws of a ``--bridge-dim``-dimensional
Gaussian model (goal: under 10 s on a CPU). Results go to
``benchmarks/results/evidence.json`` and the ``evidence`` section of
``benchmarks/RESULTS.md``.

Examples
--------
::

    OMP_NUM_THREADS=1 python benchmarks/bench_evidence.py   # writes results/evidence.json and RESULTS.md
    python benchmarks/bench_evidence.py --quick              # tiny smoke run
    python benchmarks/bench_evidence.py --render             # re-render RESULTS.md from the JSON

References
----------
.. [1] Q. F. Gronau et al., "A tutorial on bridge sampling", J. Math. Psychol. 81, 80-97, 2017.
.. [2] W. Xie, P. O. Lewis, Y. Fan, L. Kuo and M.-H. Chen, "Improving marginal
   likelihood estimation for Bayesian phylogenetic model selection",
   Systematic Biology 60(2), 150-160, 2011.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import shlex
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import pyro
import pyro.distributions as dist
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks"), str(REPO / "tests" / "diagnostics")]

from common import (  # noqa: E402
    RESULTS_DIR, RESULTS_MD, describe_machine, fmt, machine_info, reproduce_lines, write_json, write_results_section,
)
from test_evidence import A0, B0, TAU, correlated_gaussian, multivariate_t_log_pdf, nig_regression, normal_normal  # noqa: E402
from test_evidence_families import LatentGP, hmm_data, hmm_evidence_by_enumeration, hmm_means  # noqa: E402
from test_stepping_stone import bimodal, bimodal_truth  # noqa: E402

import probmodels as pm  # noqa: E402
from probmodels.core.posterior import Posterior  # noqa: E402
from probmodels.core.setup import prepare_fit  # noqa: E402
from probmodels.diagnostics import log_evidence  # noqa: E402

PACKAGES = ("torch", "pyro-ppl", "arviz")
PROBLEMS = ("normal_normal", "nig_regression", "correlated_gaussian", "gp_latent", "hmm_means", "bimodal")
ESTIMATORS = ("bridge", "importance", "laplace", "stepping_stone")


def problem(name: str) -> tuple[Callable[..., Any], tuple[Any, ...], float, dict[str, Any]]:
    """The model, its data, the true log evidence and extra fit_mcmc arguments of a named problem."""
    g = torch.Generator().manual_seed(0)
    if name == "normal_normal":
        y = 0.7 + torch.randn(50, generator=g)
        truth = dist.MultivariateNormal(torch.full((50,), 1.0), torch.eye(50) + 4.0 * torch.ones(50, 50)).log_prob(y)
        return normal_normal, (y,), float(truth), {}
    if name == "nig_regression":
        X = torch.randn(100, 5, generator=g)
        y = X @ torch.tensor([1.0, -0.5, 0.0, 0.3, 2.0]) + 0.8 * torch.randn(100, generator=g)
        truth = multivariate_t_log_pdf(y, 2 * A0, B0 / A0 * (torch.eye(100) + TAU**2 * X @ X.T))
        return nig_regression, (X, y), truth, {}
    if name == "correlated_gaussian":
        root = torch.randn(10, 10, generator=g) / 3
        covariance = 0.2 * torch.eye(10) + root @ root.T
        y = 2 * torch.randn(10, generator=g)
        truth = dist.MultivariateNormal(torch.zeros(10), covariance + 4.0 * torch.eye(10)).log_prob(y)
        return correlated_gaussian, (y, covariance), float(truth), {}
    if name == "gp_latent":
        X = torch.linspace(0.0, 3.0, 12, dtype=torch.float64).unsqueeze(-1)
        y = torch.sin(2.0 * X[:, 0]) + 0.3 * torch.randn(12, generator=g, dtype=torch.float64)
        model = LatentGP(X, outputscale=1.0, lengthscale=0.6, noise=0.3)
        return model, (y,), model.exact_log_evidence(y), {"dense_mass": True}
    if name == "hmm_means":
        y = hmm_data()
        return hmm_means, (y,), hmm_evidence_by_enumeration(y), {}
    if name == "bimodal":
        return bimodal, (torch.zeros(1),), bimodal_truth(), {"init_values": {"theta": -3.0}}
    raise ValueError(f"unknown problem {name!r}; choose from {PROBLEMS}")


def bench_problem(name: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Fit one problem by NUTS and run every estimator on the fit."""
    model, data, truth, extra = problem(name)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = pm.fit_mcmc(model, *data, num_chains=4, num_warmup=args.num_warmup, num_samples=args.num_samples, seed=1,
                          progress_bar=False, **extra)
    fit_seconds = time.perf_counter() - started
    settings = {"stepping_stone": dict(num_temperatures=args.num_temperatures, num_chains=args.ss_chains,
                                       num_samples=args.ss_samples, num_warmup=args.ss_warmup)}
    rows = []
    for method in ESTIMATORS:
        started = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            estimate = log_evidence(fit, method, **settings.get(method, {}))
        seconds = time.perf_counter() - started
        se = None if math.isnan(estimate.standard_error) else estimate.standard_error
        rows.append({
            "problem": name, "method": method, "estimate": estimate.log_evidence, "truth": truth,
            "error": estimate.log_evidence - truth, "se": se, "seconds": seconds, "fit_seconds": fit_seconds,
            "warned": bool(caught), "diagnostics": estimate.diagnostics,
        })
        print(f"{name} {method}: {estimate.log_evidence:.4f} (truth {truth:.4f}, se {fmt(se)}), {seconds:.2f} s", flush=True)
    return rows


def bench_bridge_dim(args: argparse.Namespace) -> dict[str, Any]:
    """Bridge sampling from exact posterior draws of x ~ N(0, 4 I), y ~ N(x, I) in ``--bridge-dim`` dimensions."""
    d, n = args.bridge_dim, args.bridge_draws

    def gaussian(y: torch.Tensor) -> None:
        x = pyro.sample("x", dist.Normal(torch.zeros(d), 2.0).to_event(1))
        pyro.sample("y", dist.Normal(x, 1.0).to_event(1), obs=y)

    g = torch.Generator().manual_seed(0)
    y = 2.0 * torch.randn(d, generator=g)
    truth = float(dist.Normal(torch.zeros(d), math.sqrt(5.0)).log_prob(y).sum())
    draws = 0.8 * y + math.sqrt(0.8) * torch.randn(4, n // 4, d, generator=g)  # posterior N(4y/5, 4/5 I)
    info = prepare_fit(gaussian, (y,), None, seed=0).info
    fit = Posterior({"x": draws}, method="exact draws", model=gaussian, model_args=(y,), info=info)
    started = time.perf_counter()
    estimate = log_evidence(fit, "bridge")
    seconds = time.perf_counter() - started
    print(f"bridge d={d}, {n} draws: {seconds:.2f} s, error {estimate.log_evidence - truth:.4f}", flush=True)
    return {"dim": d, "draws": n, "seconds": seconds, "estimate": estimate.log_evidence, "truth": truth,
            "error": estimate.log_evidence - truth, "se": estimate.standard_error}


def render(report: dict[str, Any]) -> str:
    """The markdown section: the estimator table, the d = 50 timing and the command that reproduces them."""
    s = report["settings"]
    text = [
        "## Log evidence",
        "",
        f"{report['date']}, {describe_machine(report['machine'])}; {report['machine']['torch_threads']} torch threads, float32 data (float64 for gp_latent and hmm_means), CPU.",
        "",
        f"NUTS fit: 4 chains x {s['num_samples']} draws ({s['num_warmup']} warmup); stepping stone: {s['num_temperatures']} "
        f"stones, {s['ss_chains']} chains x {s['ss_samples']} draws ({s['ss_warmup']} warmup) per temperature. "
        "The bimodal fit's chains all sit in the 30 % mode. A * marks a ConvergenceWarning from the estimator.",
        "",
        "| problem | method | estimate | truth | error | se | time (s) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    text += [
        f"| {r['problem']} | {r['method']}{' *' if r['warned'] else ''} | {r['estimate']:.3f} | {r['truth']:.3f} "
        f"| {r['error']:+.3f} | {fmt(r['se'], 2)} | {fmt(r['seconds'])} |"
        for r in report["rows"]
    ]
    b = report["bridge_dim"]
    text += [
        "",
        f"Bridge sampling from {b['draws']} exact posterior draws in d = {b['dim']} (goal: under 10 s): "
        f"{fmt(b['seconds'])} s, error {fmt(b['error'], 2)} (se {fmt(b['se'], 2)}).",
        "", *reproduce_lines(report["command"]),
    ]
    return "\n".join(text)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse the command line; ``--quick`` shrinks every setting for a smoke run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--num-warmup", type=int, default=500)
    parser.add_argument("--num-temperatures", type=int, default=16)
    parser.add_argument("--ss-chains", type=int, default=16)
    parser.add_argument("--ss-samples", type=int, default=100)
    parser.add_argument("--ss-warmup", type=int, default=50)
    parser.add_argument("--bridge-dim", type=int, default=50)
    parser.add_argument("--bridge-draws", type=int, default=4000)
    parser.add_argument("--quick", action="store_true", help="tiny settings for a smoke run")
    parser.add_argument("--output", default=str(RESULTS_DIR / "evidence.json"))
    parser.add_argument("--markdown", default=str(RESULTS_MD))
    parser.add_argument("--render", action="store_true", help="only re-render the markdown from --output")
    args = parser.parse_args(argv)
    if args.quick:
        args.num_samples, args.num_warmup, args.num_temperatures = 100, 100, 3
        args.ss_chains, args.ss_samples, args.ss_warmup = 4, 20, 20
        args.bridge_dim, args.bridge_draws = 5, 400
    return args


def main(argv: list[str] | None = None) -> int:
    """Run (or re-render) the benchmark and write the JSON and the markdown section."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    output = Path(args.output)
    if args.render:
        report = json.loads(output.read_text())
    else:
        names = [name for name in args.problems.split(",") if name]
        unknown = sorted(set(names) - set(PROBLEMS))
        if unknown:
            raise SystemExit(f"unknown problem(s) {unknown}; choose from {PROBLEMS}")
        report = {
            "command": shlex.join(["python", "benchmarks/bench_evidence.py", *argv]),
            "date": datetime.date.today().isoformat(),
            "machine": machine_info(PACKAGES),
            "settings": {k: getattr(args, k) for k in ("num_samples", "num_warmup", "num_temperatures", "ss_chains",
                                                        "ss_samples", "ss_warmup")},
            "rows": [row for name in names for row in bench_problem(name, args)],
            "bridge_dim": bench_bridge_dim(args),
        }
        write_json(output, report)
    path = write_results_section("evidence", render(report), Path(args.markdown))
    print(f"wrote {output} and the evidence section of {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
