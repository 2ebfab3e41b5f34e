"""The demo behind ``probmodels demo``: the inference core, then a tour of the families.

Eight schools (a standard hierarchical-model benchmark) in its non-centred
form: each school's effect is ``mu + tau * theta_trans``. The demo fits it
with the batched NUTS sampler and with full-rank SVI, prints the posterior
summary with convergence diagnostics, PSIS-LOO, and the two methods side by
side. Then, on embedded data (:mod:`probmodels.demo_tour`): exact queries
with credible intervals on the Asia network, an HMM fitted by EM with its
number of states chosen by BIC, and a GP regression.
"""

from __future__ import annotations

import argparse
import time
from typing import Sequence

import pyro
import pyro.distributions as dist
import torch

from .core import fit_mcmc, fit_svi
from .datasets import eight_schools

__all__ = ["eight_schools_model", "main"]


def eight_schools_model(sigma: torch.Tensor, y: torch.Tensor | None = None) -> None:
    """Non-centred eight schools: ``y_j ~ N(mu + tau * theta_trans_j, sigma_j)``.

    Parameters
    ----------
    sigma
        Standard errors of the schools' estimates, shape ``(J,)``.
    y
        Observed effects, shape ``(J,)``; ``None`` samples them.
    """
    mu = pyro.sample("mu", dist.Normal(sigma.new_tensor(0.0), 5.0))
    tau = pyro.sample("tau", dist.HalfCauchy(sigma.new_tensor(5.0)))
    with pyro.plate("school", sigma.shape[-1]):
        theta_trans = pyro.sample("theta_trans", dist.Normal(sigma.new_tensor(0.0), 1.0))
        theta = pyro.deterministic("theta", mu + tau * theta_trans)
        pyro.sample("y", dist.Normal(theta, sigma), obs=y)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="probmodels demo", description=__doc__.splitlines()[0])
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--num-warmup", type=int, default=1000)
    parser.add_argument("--num-chains", type=int, default=4)
    parser.add_argument("--svi-steps", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--save", default=None, help="write the NUTS posterior to this netCDF file")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--skip-tour", action="store_true", help="only the eight-schools part")
    args = parser.parse_args(argv)

    from .diagnostics import check_convergence, loo

    data = {k: v.to(args.device) for k, v in eight_schools().items()}
    print("probmodels demo: eight schools (non-centred), J = 8\n")
    started = time.perf_counter()
    nuts = fit_mcmc(
        eight_schools_model, data["sigma"], model_kwargs={"y": data["y"]}, num_samples=args.num_samples,
        num_warmup=args.num_warmup, num_chains=args.num_chains, seed=args.seed, progress_bar=not args.no_progress,
    )
    nuts_seconds = time.perf_counter() - started
    print(f"NUTS: {args.num_chains} chains x ({args.num_warmup} warmup + {args.num_samples} draws) in {nuts_seconds:.1f} s")
    print(nuts.summary(var_names=["mu", "tau", "theta"]).to_string())
    report = check_convergence(nuts)
    print(
        f"\ndivergences: {report.num_divergent}   max R-hat: {report.max_rhat:.3f}   "
        f"min ESS bulk/tail: {report.min_ess_bulk:.0f}/{report.min_ess_tail:.0f}"
    )
    print(loo(nuts.to_arviz()))
    started = time.perf_counter()
    svi = fit_svi(
        eight_schools_model, data["sigma"], model_kwargs={"y": data["y"]}, guide="mvn", num_steps=args.svi_steps,
        lr=0.02, lr_decay=0.02, tol=0, num_particles=4, num_samples=4000, seed=args.seed, progress_bar=not args.no_progress,
    )
    svi_seconds = time.perf_counter() - started
    print(f"\nSVI (full-rank Gaussian guide, {svi.attrs['num_steps']} steps) in {svi_seconds:.1f} s, next to NUTS:")
    print(f"{'':10s}{'NUTS mean':>12s}{'NUTS sd':>10s}{'SVI mean':>12s}{'SVI sd':>10s}")
    for name in ("mu", "tau"):
        a, b = nuts.flat(name), svi.flat(name)
        print(f"{name:10s}{float(a.mean()):12.3f}{float(a.std()):10.3f}{float(b.mean()):12.3f}{float(b.std()):10.3f}")
    if args.save:
        path = nuts.save(args.save)
        print(f"\nsaved the NUTS posterior to {path}; inspect it with: probmodels diagnose {path}")
    if not args.skip_tour:
        from .demo_tour import tour

        tour(seed=args.seed, device=args.device)
    return 0
