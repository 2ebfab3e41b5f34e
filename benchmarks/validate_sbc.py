"""Simulation-based calibration of probmodels' inference engines, one model per family.

Each case draws ``S`` parameter sets from the prior and a data set from each,
infers every posterior, and tests the ranks of the true values among ``L``
thinned posterior draws with :func:`probmodels.testing.sbc_from_draws`
(simultaneous ECDF bands, family-wise level 0.05 per case).

The ``S`` posteriors of a NUTS case run as the ``S`` chains of ONE batched
:func:`probmodels.core.mcmc.sample_log_density` call: chain ``s`` evaluates the
posterior of data set ``s`` and adapts its own step size and metric, so the
batch is ``S`` independent NUTS runs. The SVI cases fit one model with a plate
over the ``S`` data sets, whose mean-field guide factorises over them.

Cases (``expect`` says whether the case must pass):

- ``hierarchical normal`` (NUTS, non-centred, 8 groups): mu, tau, theta.
- ``hmm 2-state`` (NUTS; likelihood by ``probmodels.hmm.ops.log_likelihood``): ordered emission means,
  stay probabilities.
- ``gp hyperparameters`` (NUTS; likelihood by ``probmodels.gp.ops.log_marginal_likelihood``): amplitude,
  lengthscale, noise (above a known floor).
- ``bnn 1-3-1`` (NUTS, tanh network): the regression function at three inputs
  (invariant to the weight-space symmetries).
- ``bn dirichlet`` (closed-form Dirichlet posterior of ``probmodels.bn.learn``): the CPTs of A -> B.
- ``svi normal mean`` (``fit_svi``, mean-field guide on a conjugate model where it is exact).
- negative controls: ``hierarchical normal, log-Jacobian dropped`` (NUTS on a
  density missing the Jacobian of tau's log transform) and ``svi, too-narrow
  guide`` (a guide whose scale is half the posterior sd) must FAIL.

Run ``python benchmarks/validate_sbc.py`` (about 10 minutes on 2 cores) or
``--quick`` (a smoke run); it writes ``benchmarks/results/sbc.json`` and the
``sbc`` section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np
import pandas as pd
import pyro
import pyro.distributions as dist
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS_DIR, RESULTS_MD, describe_machine, fmt, machine_info, reproduce_lines, write_json, write_results_section  # noqa: E402

from probmodels import fit_svi  # noqa: E402
from probmodels.bn import learn  # noqa: E402
from probmodels.core.mcmc import sample_log_density  # noqa: E402
from probmodels.gp import ops as gp_ops  # noqa: E402
from probmodels.hmm import ops as hmm_ops  # noqa: E402
from probmodels.testing import sbc_from_draws  # noqa: E402

Draws = dict[str, torch.Tensor]
THIN = 5
"""Keep every THIN-th NUTS draw, so the L draws per simulation are nearly independent."""


class Case(NamedTuple):
    """One SBC case: ``run(S, L, seed, warmup) -> (truth, draws)`` and whether it must pass
    (``warmup``: NUTS warmup iterations, ignored by the other engines)."""

    name: str
    engine: str
    run: Callable[[int, int, int, int], tuple[Draws, Draws]]
    expect: bool


def normal_logpdf(x: torch.Tensor, loc: Any, scale: Any) -> torch.Tensor:
    return -0.5 * ((x - loc) / scale) ** 2 - torch.log(torch.as_tensor(scale, dtype=x.dtype)) - 0.5 * math.log(2 * math.pi)


def nuts_draws(log_density: Callable[[torch.Tensor], torch.Tensor], S: int, dim: int, L: int, seed: int, thin: int, warmup: int) -> torch.Tensor:
    """``L`` draws per chain, thinned by ``thin``, from ``S`` independent NUTS chains: ``(S, L, dim)``."""
    start = 0.5 * (2 * torch.rand(S, dim, generator=torch.Generator().manual_seed(seed)) - 1)
    draws, _ = sample_log_density(log_density, start, num_samples=L * thin, num_warmup=warmup, seed=seed, target_accept=0.9)
    return draws[:, thin - 1 :: thin]


# ----------------------------------------------------------------------------- hierarchical normal
SIGMA = torch.tensor([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0]) / 5


def hierarchical_normal(jacobian: bool) -> Callable[[int, int, int, int], tuple[Draws, Draws]]:
    def run(S: int, L: int, seed: int, warmup: int) -> tuple[Draws, Draws]:
        g = torch.Generator().manual_seed(seed)
        mu = 5 * torch.randn(S, generator=g)
        tau = (5 * torch.randn(S, generator=g)).abs()
        theta = mu[:, None] + tau[:, None] * torch.randn(S, 8, generator=g)
        y = theta + SIGMA * torch.randn(S, 8, generator=g)

        def log_density(u: torch.Tensor) -> torch.Tensor:
            m, log_tau, z = u[:, 0], u[:, 1], u[:, 2:]
            t = log_tau.exp()
            lp = normal_logpdf(m, 0.0, 5.0) + normal_logpdf(t, 0.0, 5.0) + normal_logpdf(z, 0.0, 1.0).sum(-1)
            lp = lp + normal_logpdf(y, m[:, None] + t[:, None] * z, SIGMA).sum(-1)
            return lp + log_tau if jacobian else lp

        u = nuts_draws(log_density, S, 10, L, seed, thin=THIN, warmup=warmup)
        tau_draws = u[..., 1].exp()
        truth = {"mu": mu, "tau": tau, "theta": theta}
        return truth, {"mu": u[..., 0], "tau": tau_draws, "theta": u[..., 0:1] + tau_draws[..., None] * u[..., 2:]}

    return run


# ----------------------------------------------------------------------------- HMM
def hmm_two_state(S: int, L: int, seed: int, warmup: int, T: int = 60) -> tuple[Draws, Draws]:
    """Emission means with N(-1, 0.5^2) and N(1, 0.5^2) priors restricted to mu[0] < mu[1] (an ordering
    constraint, as Stan's ``ordered``): without it the label-swapped copy of the posterior is a separate
    local mode where a single chain can stay, which SBC flags as miscalibration."""
    g = torch.Generator().manual_seed(seed)
    prior_loc = torch.tensor([-1.0, 1.0])
    mu = prior_loc + 0.5 * torch.randn(S, 2, generator=g)
    while bool((swapped := mu[:, 0] >= mu[:, 1]).any()):
        mu[swapped] = prior_loc + 0.5 * torch.randn(int(swapped.sum()), 2, generator=g)
    stay = torch.from_numpy(np.random.default_rng(seed).beta(4.0, 2.0, size=(S, 2)))
    states = torch.zeros(S, T, dtype=torch.long)
    states[:, 0] = (torch.rand(S, generator=g) < 0.5).long()
    for t in range(1, T):
        keep = torch.rand(S, generator=g) < stay.gather(1, states[:, t - 1 : t]).squeeze(1)
        states[:, t] = torch.where(keep, states[:, t - 1], 1 - states[:, t - 1])
    y = mu.gather(1, states) + torch.randn(S, T, generator=g)
    log_init = torch.full((2,), -math.log(2.0))

    def means(u: torch.Tensor) -> torch.Tensor:
        return torch.stack([u[..., 0], u[..., 0] + u[..., 1].exp()], -1)

    def log_density(u: torch.Tensor) -> torch.Tensor:
        m, logit_stay = means(u), u[:, 2:]
        p = torch.sigmoid(logit_stay)
        log_p, log_q = torch.nn.functional.logsigmoid(logit_stay), torch.nn.functional.logsigmoid(-logit_stay)
        log_trans = torch.stack([torch.stack([log_p[:, 0], log_q[:, 0]], -1), torch.stack([log_q[:, 1], log_p[:, 1]], -1)], -2)
        log_emit = normal_logpdf(y[:, :, None], m[:, None, :], 1.0)
        ll = hmm_ops.log_likelihood(log_init.expand(u.shape[0], 2), log_trans, log_emit, validate=False)
        prior = normal_logpdf(m, prior_loc, 0.5).sum(-1) + torch.distributions.Beta(4.0, 2.0).log_prob(p.clamp(1e-12, 1 - 1e-12)).sum(-1)
        return ll + prior + u[:, 1] + (log_p + log_q).sum(-1)

    u = nuts_draws(log_density, S, 4, L, seed, thin=THIN, warmup=warmup)
    return {"mu": mu, "stay": stay}, {"mu": means(u), "stay": torch.sigmoid(u[..., 2:])}


# ----------------------------------------------------------------------------- GP
NOISE_FLOOR = 0.1
"""A known noise sd added to the sampled one, in the simulation and the model alike, so the
covariance stays well conditioned at every proposal."""


def gp_hyperparameters(S: int, L: int, seed: int, warmup: int, n: int = 20) -> tuple[Draws, Draws]:
    g = torch.Generator().manual_seed(seed)
    x = torch.linspace(0.0, 5.0, n)
    amplitude = torch.randn(S, generator=g).abs()
    lengthscale = torch.exp(0.3 * torch.randn(S, generator=g))
    noise = (0.3 * torch.randn(S, generator=g)).abs()
    squared = (x[:, None] - x[None, :]) ** 2
    eye = torch.eye(n)

    def covariance(a: torch.Tensor, ell: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return a[:, None, None] ** 2 * torch.exp(-0.5 * squared / ell[:, None, None] ** 2) + (s[:, None, None] ** 2 + NOISE_FLOOR**2) * eye

    y = torch.distributions.MultivariateNormal(torch.zeros(n), covariance(amplitude, lengthscale, noise)).sample()

    def log_density(u: torch.Tensor) -> torch.Tensor:
        a, ell, s = u.exp().unbind(-1)
        lml, _ = gp_ops.log_marginal_likelihood(covariance(a, ell, s), y)
        prior = normal_logpdf(a, 0.0, 1.0) + normal_logpdf(u[:, 1], 0.0, 0.3) + normal_logpdf(s, 0.0, 0.3)
        return lml + prior + u[:, 0] + u[:, 2]

    u = nuts_draws(log_density, S, 3, L, seed, thin=THIN, warmup=warmup)
    return {"amplitude": amplitude, "lengthscale": lengthscale, "noise": noise}, {
        "amplitude": u[..., 0].exp(), "lengthscale": u[..., 1].exp(), "noise": u[..., 2].exp(),
    }


# ----------------------------------------------------------------------------- BNN
def bnn_small(S: int, L: int, seed: int, warmup: int, hidden: int = 3, n: int = 20, noise: float = 0.5) -> tuple[Draws, Draws]:
    g = torch.Generator().manual_seed(seed)
    x = torch.linspace(-2.0, 2.0, n)
    x_test = torch.tensor([-1.5, 0.0, 1.5])
    dim = 3 * hidden + 1

    def function(w: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        w1, b1, w2, b2 = w[..., :hidden], w[..., hidden : 2 * hidden], w[..., 2 * hidden : 3 * hidden], w[..., -1]
        return (torch.tanh(w1[..., None, :] * inputs[:, None] + b1[..., None, :]) * w2[..., None, :]).sum(-1) + b2[..., None]

    weights = torch.randn(S, dim, generator=g)
    y = function(weights, x) + noise * torch.randn(S, n, generator=g)

    def log_density(u: torch.Tensor) -> torch.Tensor:
        return normal_logpdf(u, 0.0, 1.0).sum(-1) + normal_logpdf(y, function(u, x), noise).sum(-1)

    u = nuts_draws(log_density, S, dim, L, seed, thin=THIN, warmup=warmup)
    return {"f": function(weights, x_test)}, {"f": function(u, x_test)}


# ----------------------------------------------------------------------------- BN
def bn_dirichlet(S: int, L: int, seed: int, warmup: int, n: int = 30) -> tuple[Draws, Draws]:
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    truths, draws = [], []
    for _ in range(S):
        p_a = rng.dirichlet(np.ones(3))
        p_b = rng.dirichlet(np.ones(2), size=3)
        a = rng.choice(3, size=n, p=p_a)
        b = (rng.random(n) < p_b[a, 1]).astype(int)
        frame = pd.DataFrame({"A": a, "B": b})
        posterior = learn.dirichlet_posterior([("A", "B")], frame, prior="k2", state_names={"A": [0, 1, 2], "B": [0, 1]})
        sampled = posterior.sample_cpts(L)
        truths.append({"P(A)": torch.tensor(p_a), "P(B=1|A)": torch.tensor(p_b[:, 1])})
        draws.append({"P(A)": sampled.cpd("A").table, "P(B=1|A)": sampled.cpd("B").table[..., 1]})
    return {k: torch.stack([t[k] for t in truths]) for k in truths[0]}, {k: torch.stack([d[k] for d in draws]) for k in draws[0]}


# ----------------------------------------------------------------------------- SVI
def svi_normal_mean(scale_factor: float | None) -> Callable[[int, int, int, int], tuple[Draws, Draws]]:
    """mu ~ N(0, 1), y_i ~ N(mu, 1), i < 10, for S data sets in one plate; the posterior is Gaussian,
    so the mean-field guide is exact. ``scale_factor`` fixes the guide's scale at that multiple of the
    posterior sd (a deliberately biased guide); None learns it."""
    n = 10

    def model(y: torch.Tensor) -> None:
        with pyro.plate("sims", y.shape[0], dim=-2):
            mu = pyro.sample("mu", dist.Normal(y.new_zeros(1), 1.0))
            with pyro.plate("obs", y.shape[1], dim=-1):
                pyro.sample("y", dist.Normal(mu, 1.0), obs=y)

    def narrow_guide(y: torch.Tensor) -> None:
        loc = pyro.param("loc", y.new_zeros(y.shape[0], 1))
        with pyro.plate("sims", y.shape[0], dim=-2):
            pyro.sample("mu", dist.Normal(loc, scale_factor / math.sqrt(n + 1)))

    def run(S: int, L: int, seed: int, warmup: int) -> tuple[Draws, Draws]:
        g = torch.Generator().manual_seed(seed)
        mu = torch.randn(S, 1, generator=g)
        y = mu + torch.randn(S, n, generator=g)
        guide = "normal" if scale_factor is None else narrow_guide
        fit = fit_svi(model, y, guide=guide, num_steps=3000, lr=0.05, lr_decay=0.01, tol=0, num_samples=L, seed=seed, progress_bar=False)
        return {"mu": mu[:, 0]}, {"mu": fit["mu"][0, :, :, 0].T}

    return run


CASES = [
    Case("hierarchical normal", "NUTS", hierarchical_normal(jacobian=True), True),
    Case("hmm 2-state", "NUTS", hmm_two_state, True),
    Case("gp hyperparameters", "NUTS", gp_hyperparameters, True),
    Case("bnn 1-3-1 (function values)", "NUTS", bnn_small, True),
    Case("bn dirichlet A->B", "conjugate", bn_dirichlet, True),
    Case("svi normal mean", "SVI mean-field", svi_normal_mean(None), True),
    Case("hierarchical normal, log-Jacobian dropped", "NUTS (negative control)", hierarchical_normal(jacobian=False), False),
    Case("svi normal mean, guide sd halved", "SVI (negative control)", svi_normal_mean(0.5), False),
]


def run_case(case: Case, S: int, L: int, seed: int, warmup: int) -> dict[str, Any]:
    """Run one case and summarise its SBC test."""
    started = time.perf_counter()
    with torch.random.fork_rng():
        truth, draws = case.run(S, L, seed, warmup)
    result = sbc_from_draws(truth, draws, alpha=0.05, seed=seed)
    table = result.to_pandas()
    worst = table["max_ecdf_deviation"].idxmax()
    return dict(
        case=case.name, engine=case.engine, expect=case.expect, passed=result.passed, as_expected=result.passed == case.expect,
        simulations=S, draws=L, parameters=len(result.names), failing=[n for n, ok in zip(result.names, result.calibrated) if not ok],
        worst=worst, worst_deviation=float(table.loc[worst, "max_ecdf_deviation"]), seconds=time.perf_counter() - started,
    )


def render(report: dict[str, Any]) -> str:
    lines = [
        "## Simulation-based calibration",
        "",
        f"`benchmarks/validate_sbc.py`: per case, {report['rows'][0]['simulations']} prior draws, "
        f"{report['rows'][0]['draws']} thinned posterior draws each, ECDF test with simultaneous bands at family-wise "
        "level 0.05 (each of P parameters at 0.05 / P). Negative controls must fail. " + describe_machine(report["machine"]) + ".",
        "",
        "| case | engine | params | must pass | passed | as expected | failing parameters | largest ECDF deviation | seconds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        failing = ", ".join(r["failing"][:4]) + (" ..." if len(r["failing"]) > 4 else "") or "-"
        cells = [
            r["case"], r["engine"], str(r["parameters"]), "yes" if r["expect"] else "no", "yes" if r["passed"] else "NO",
            "yes" if r["as_expected"] else "**NO**", failing, f"{fmt(r['worst_deviation'], 3)} ({r['worst']})", fmt(r["seconds"], 3),
        ]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    lines += ["", *reproduce_lines(report["command"])]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulations", type=int, default=100)
    parser.add_argument("--draws", type=int, default=49)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cases", default="all", help="comma-separated case indices (0-based) or 'all'")
    parser.add_argument("--warmup", type=int, default=500, help="NUTS warmup iterations per chain")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (the batches are small)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 8 simulations, 9 draws, 100 warmup iterations")
    parser.add_argument("--render", action="store_true", help="only re-render the markdown from --output")
    parser.add_argument("--output", default=str(RESULTS_DIR / "sbc.json"))
    parser.add_argument("--markdown", default=str(RESULTS_MD))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        write_results_section("sbc", render(json.loads(Path(args.output).read_text())), Path(args.markdown))
        return 0
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(args.threads)
    S, L, warmup = (8, 9, 100) if args.quick else (args.simulations, args.draws, args.warmup)
    chosen = CASES if args.cases == "all" else [CASES[int(i)] for i in args.cases.split(",")]
    rows = []
    for case in chosen:
        rows.append(run_case(case, S, L, args.seed, warmup))
        print(f"{case.name}: passed={rows[-1]['passed']} (expected {case.expect}) in {rows[-1]['seconds']:.1f} s", flush=True)
    command = "python benchmarks/validate_sbc.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report = dict(command=command.strip(), machine=machine_info(["torch", "pyro-ppl"]), rows=rows)
    write_json(Path(args.output), report)
    write_results_section("sbc", render(report), Path(args.markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
