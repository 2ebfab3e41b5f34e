"""A Gaussian process against a Bayesian neural network on the same data: LOO and log evidence
=========================================================================================

Two flexible regression models can fit the same curve equally well and still
differ in how well they predict new points and in how much prior mass they
spent to get there. This example fits an RBF Gaussian process (hyperparameters
by NUTS, the latent function integrated out exactly) and a small Bayesian
neural network (weights by NUTS) to the same noisy observations, and compares
them two ways. PSIS-LOO (``probmodels.diagnostics.compare``) estimates the
expected log predictive density of a new point from each model's pointwise
log-likelihood; for the GP the pointwise terms are those of the latent
function, drawn from its exact Gaussian conditional at every hyperparameter
draw. The log marginal likelihood (``probmodels.diagnostics.log_evidence``,
bridge sampling) scores each prior as a whole and gives the log Bayes factor.
The two answers need not agree: the evidence also charges a model for prior
mass on functions the data rule out.

References:

    1. A. Vehtari, A. Gelman and J. Gabry (2017), "Practical Bayesian model
       evaluation using leave-one-out cross-validation and WAIC", Statistics
       and Computing 27, 1413-1432.
    2. X.-L. Meng and W. H. Wong (1996), "Simulating ratios of normalizing
       constants via a simple identity", Statistica Sinica 6, 831-860.
    3. Q. F. Gronau et al. (2017), "A tutorial on bridge sampling", Journal of
       Mathematical Psychology 81, 80-97.
    4. C. E. Rasmussen and C. K. I. Williams (2006), Gaussian Processes for
       Machine Learning, MIT Press, chapter 2.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from probmodels.bnn import BayesianMLP
from probmodels.core import Posterior
from probmodels.diagnostics import compare, log_evidence
from probmodels.gp import GPRegression

NOISE_SD = 0.25


def truth(x: np.ndarray) -> np.ndarray:
    return np.sin(2.0 * x) * np.exp(-0.1 * x**2)


def simulate(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.sort(rng.uniform(-3.0, 3.0, n))
    return x, truth(x) + NOISE_SD * rng.normal(size=n)


def gp_pointwise_posterior(gp: GPRegression, seed: int) -> Posterior:
    """The GP's hyperparameter draws with one draw of the latent function each, and its pointwise log-likelihood.

    Given hyperparameters, ``f | y`` is Gaussian with mean ``K (K + s I)^-1 y``
    and covariance ``K - K (K + s I)^-1 K`` (``s``: noise variance), and
    ``y_i | f_i ~ N(f_i, s)`` factorises over points, as PSIS-LOO needs.
    """
    draws = gp.draws_
    x, y = gp.X_train_, gp.y_train_
    noise = draws["noise"]
    kernel = gp.model_.covariance({**draws, "noise": torch.zeros_like(noise)}, x)
    total = kernel + noise[:, None, None] * torch.eye(x.shape[0], dtype=x.dtype, device=x.device)
    gain = torch.linalg.solve(total, kernel).transpose(-1, -2)  # K (K + sI)^-1 (both symmetric)
    mean = gain @ y
    cov = kernel - gain @ kernel
    cov = 0.5 * (cov + cov.transpose(-1, -2)) + 1e-9 * torch.eye(x.shape[0], dtype=x.dtype, device=x.device)
    normal = torch.randn(mean.shape, generator=torch.Generator().manual_seed(seed), dtype=x.dtype).to(x.device)
    f = mean + (torch.linalg.cholesky(cov) @ normal[..., None])[..., 0]
    log_lik = torch.distributions.Normal(f, noise.sqrt()[:, None]).log_prob(y)
    return Posterior(
        {**{k: v[None] for k, v in draws.items()}, "f": f[None]}, method="nuts", observed_data={"y": y},
        log_likelihood_values={"y": log_lik[None]},
    )


def main(args: argparse.Namespace) -> Path:
    rng = np.random.default_rng(args.seed)
    x, y = simulate(rng, args.num_points)
    y = (y - y.mean()) / y.std()  # both models see the same standardised targets, so LOO and evidence are comparable
    x_t, y_t = torch.as_tensor(x[:, None], device=args.device), torch.as_tensor(y, device=args.device)
    sampler = dict(num_samples=args.num_samples, num_warmup=args.num_warmup, num_chains=args.num_chains, seed=args.seed)
    started = time.perf_counter()
    gp = GPRegression("rbf", method="nuts", standardize_y=False, max_predictive_draws=args.num_samples * args.num_chains, **sampler)
    gp.fit(x_t, y_t)
    gp_seconds = time.perf_counter() - started
    started = time.perf_counter()
    bnn = BayesianMLP((args.hidden,), method="nuts", nuts_init="svi", num_steps=args.num_steps, standardize_y=False, **sampler)
    bnn.fit(x_t, y_t)
    bnn_seconds = time.perf_counter() - started
    table = compare({"GP (RBF)": gp_pointwise_posterior(gp, args.seed), f"BNN ({args.hidden} tanh units)": bnn.posterior_},
                    evidence=None, stein=False)
    evidence = {"GP (RBF)": log_evidence(gp.posterior_, "bridge", seed=args.seed),
                f"BNN ({args.hidden} tanh units)": log_evidence(bnn.posterior_, "bridge", seed=args.seed)}
    print(f"y = sin(2x) exp(-x^2/10) + N(0, {NOISE_SD}^2), {args.num_points} points, targets standardised; both fits by NUTS "
          f"({args.num_chains} chains x {args.num_samples} draws; GP {gp_seconds:.1f} s, BNN {bnn_seconds:.1f} s)")
    print(f"{'model':22s}{'elpd_loo':>10s}{'se':>7s}{'p_loo':>8s}{'max k':>7s}{'log evidence':>14s}{'se':>7s}{'max R-hat':>11s}")
    for name, row in table.iterrows():
        ev = evidence[name]
        print(f"{name:22s}{row['elpd_loo']:10.2f}{row['se']:7.2f}{row['p_loo']:8.2f}{row['max_pareto_k']:7.2f}"
              f"{ev.log_evidence:14.2f}{ev.standard_error:7.2f}{row['max_rhat']:11.3f}")
    names = list(evidence)
    log_bf = evidence[names[0]].log_evidence - evidence[names[1]].log_evidence
    print(f"log Bayes factor GP : BNN = {log_bf:.2f}; elpd_loo difference (best - other) = {table['d_elpd_loo'].iloc[1]:.2f} "
          f"± {table['d_se'].iloc[1]:.2f}")
    for name, row in table.iterrows():
        notes = "; ".join(filter(None, [row["warnings"], *evidence[name].notes]))
        if notes:
            print(f"  {name}: {notes}")
    grid = np.linspace(-3.3, 3.3, 200)
    g = torch.as_tensor(grid[:, None], device=args.device)
    bands = {"GP (RBF)": (gp.predict(g), *gp.predict_interval(g, prob=0.9, observation=True)),
             f"BNN ({args.hidden} tanh units)": (bnn.predict(g), *bnn.predict_interval(g, level=0.9))}
    bands = {k: tuple(b.cpu().numpy() for b in v) for k, v in bands.items()}
    return plot(x, y, grid, bands, table, evidence, args.output_dir / "compare_gp_bnn.png")


def plot(x, y, grid, bands, table, evidence, path: Path) -> Path:
    fig = Figure(figsize=(14, 4.5), layout="constrained")
    ax_fit, ax_loo, ax_ev = fig.subplots(1, 3, width_ratios=[2, 1, 1])
    for (name, (mean, lower, upper)), color in zip(bands.items(), ("tab:blue", "tab:green")):
        ax_fit.fill_between(grid, lower, upper, color=color, alpha=0.2, label=f"{name}: 90% predictive band")
        ax_fit.plot(grid, mean, color=color)
    ax_fit.scatter(x, y, color="tab:red", s=14, zorder=3, label="data")
    ax_fit.set(xlabel="x", ylabel="y (standardised)", title="posterior predictive")
    ax_fit.legend(loc="lower left", fontsize=8)
    names = list(evidence)
    positions = np.arange(len(names))
    ax_loo.errorbar(positions, [table.loc[n, "elpd_loo"] for n in names], yerr=[table.loc[n, "se"] for n in names], fmt="o", capsize=4)
    ax_loo.set(title="PSIS-LOO elpd (± se)", xticks=positions, xlim=(-0.5, len(names) - 0.5))
    ax_loo.set_xticklabels(names, fontsize=8)
    ax_ev.errorbar(positions, [evidence[n].log_evidence for n in names], yerr=[evidence[n].standard_error for n in names], fmt="s", capsize=4)
    ax_ev.set(title="log evidence, bridge sampling (± se)", xticks=positions, xlim=(-0.5, len(names) - 0.5))
    ax_ev.set_xticklabels(names, fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-samples", type=int, default=500)
    parser.add_argument("--num-warmup", type=int, default=500)
    parser.add_argument("--num-chains", type=int, default=4)
    parser.add_argument("--num-points", type=int, default=50)
    parser.add_argument("--hidden", type=int, default=10, help="hidden tanh units of the BNN")
    parser.add_argument("--num-steps", type=int, default=2000, help="SVI steps of the BNN's NUTS warm start")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", type=Path, default=Path(__file__).parent / "output")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
