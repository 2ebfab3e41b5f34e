"""Bayesian neural network regression: are the predictive intervals of SVI and NUTS calibrated?
============================================================================================

A network's point prediction says nothing about where it should not be
trusted. A Bayesian network puts a distribution over its weights and
averages its predictions over it, so its predictive interval widens where
the data say little, here in a gap between two clusters of observations. How
much it widens depends on how well the weight posterior is approximated:
mean-field SVI is fast, but its factorised Gaussian is known to misstate the
spread in function space, and on small data sets its KL term can prune the
hidden units until the network underfits, while NUTS samples the exact
posterior (slowly). This example fits the same small network both ways, draws the
90 % predictive bands with their epistemic part (the spread of the network
function over the weights) and checks calibration on new data: the test log
predictive density, the coverage of the 90 % interval, and a reliability plot
of the observed against the nominal coverage of central intervals at every
level, read from the probability integral transform (PIT) of each test point.

References:

    1. R. M. Neal (1996), Bayesian Learning for Neural Networks, Springer.
    2. C. Blundell, J. Cornebise, K. Kavukcuoglu and D. Wierstra (2015),
       "Weight uncertainty in neural networks", ICML.
    3. V. Kuleshov, N. Fenner and S. Ermon (2018), "Accurate uncertainties
       for deep learning using calibrated regression", ICML.
    4. M. D. Hoffman and A. Gelman (2014), "The No-U-Turn sampler: adaptively
       setting path lengths in Hamiltonian Monte Carlo", Journal of Machine
       Learning Research 15, 1593-1623.
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

NOISE_SD = 0.2
LEVELS = np.linspace(0.05, 0.95, 19)


def truth(x: np.ndarray) -> np.ndarray:
    return np.sin(2.5 * x) + 0.3 * x


def simulate(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` noisy observations on [-2, 2] with no data in (-0.4, 0.6)."""
    x = np.concatenate([rng.uniform(-2.0, -0.4, n - n // 2), rng.uniform(0.6, 2.0, n // 2)])
    return x, truth(x) + NOISE_SD * rng.normal(size=n)


def main(args: argparse.Namespace) -> Path:
    rng = np.random.default_rng(args.seed)
    x, y = simulate(rng, args.num_points)
    x_test = rng.uniform(-2.0, 2.0, 1000)
    y_test = truth(x_test) + NOISE_SD * rng.normal(size=x_test.size)

    def tensor(values: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(values[:, None], device=args.device)

    # SVI: a decaying learning rate to the full step count (no early stop on a noisy loss); NUTS starts from its draws
    common = dict(hidden=(args.hidden,), activation="tanh", prior_scale=1.0, seed=args.seed, num_steps=args.num_steps, lr=0.02,
                  svi_options={"lr_decay": 0.1, "tol": 0.0})
    fits = {
        "mean-field SVI": BayesianMLP(method="svi", num_samples=1000, **common),
        "NUTS": BayesianMLP(method="nuts", num_samples=args.num_samples, num_warmup=args.num_warmup, num_chains=args.num_chains,
                            nuts_init="svi", **common),
    }
    print(f"y = sin(2.5x) + 0.3x + N(0, {NOISE_SD}^2): {args.num_points} training points with a gap in (-0.4, 0.6); "
          f"one hidden layer of {args.hidden} tanh units, N(0, 1) weight priors, learned noise")
    print(f"{'fit':16s}{'test log-lik':>13s}{'RMSE':>8s}{'90% coverage':>14s}{'PIT calib. err':>16s}"
          f"{'gap: epistemic sd':>19s}{'seconds':>9s}")
    grid = np.linspace(-2.2, 2.2, 300)
    in_gap = (grid > -0.4) & (grid < 0.6)
    bands, curves = {}, {}
    for name, est in fits.items():
        started = time.perf_counter()
        est.fit(tensor(x), torch.as_tensor(y, device=args.device))
        seconds = time.perf_counter() - started
        score = est.score(tensor(x_test), torch.as_tensor(y_test, device=args.device), level=0.9)
        pit = est.predictive(tensor(x_test), torch.as_tensor(y_test, device=args.device)).pit.cpu().numpy()
        curves[name] = np.array([np.mean(np.abs(pit - 0.5) <= level / 2) for level in LEVELS])
        out = est.predictive(tensor(grid), level=0.9)
        epistemic_sd = out.epistemic.sqrt().cpu().numpy()
        bands[name] = (out.mean.cpu().numpy(), out.lower.cpu().numpy(), out.upper.cpu().numpy(), epistemic_sd)
        print(f"{name:16s}{score['log_likelihood']:13.3f}{score['rmse']:8.3f}{score['coverage']:14.1%}{score['ece']:16.3f}"
              f"{epistemic_sd[in_gap].mean():19.3f}{seconds:9.1f}")
    noise = fits["NUTS"].posterior_["noise"].mean() * fits["NUTS"].y_scaling_.scale
    print(f"(test points: {x_test.size} on [-2, 2]; the PIT calibration error is the mean gap between nominal and observed "
          f"coverage over central intervals at levels 5 %, ..., 95 %; NUTS posterior mean noise sd {float(noise):.3f}, true {NOISE_SD})")
    return plot(x, y, grid, bands, curves, args.output_dir / "bnn_regression_calibration.png")


def plot(x: np.ndarray, y: np.ndarray, grid: np.ndarray, bands: dict[str, tuple[np.ndarray, ...]],
         curves: dict[str, np.ndarray], path: Path) -> Path:
    fig = Figure(figsize=(15, 4.5), layout="constrained")
    axes = fig.subplots(1, len(bands) + 1)
    for ax, (name, (mean, lower, upper, epistemic_sd)) in zip(axes, bands.items()):
        ax.fill_between(grid, lower, upper, color="tab:blue", alpha=0.2, label="90% predictive band")
        ax.fill_between(grid, mean - 2 * epistemic_sd, mean + 2 * epistemic_sd, color="tab:orange", alpha=0.35,
                        label="mean ± 2 epistemic sd")
        ax.plot(grid, mean, color="tab:blue", label="predictive mean")
        ax.plot(grid, truth(grid), color="black", linestyle="--", label="true function")
        ax.scatter(x, y, color="tab:red", s=14, zorder=3, label="training data")
        ax.set_title(f"BNN by {name}")
        ax.set_xlabel("x")
    axes[0].set_ylabel("y")
    axes[0].legend(loc="lower right", fontsize=8)
    ax = axes[-1]
    for name, coverage in curves.items():
        ax.plot(LEVELS, coverage, "o-", ms=3, label=name)
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=1, label="perfect calibration")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="nominal coverage of the central interval", ylabel="observed coverage on test data",
           title="reliability (from PIT values)")
    ax.legend(loc="upper left")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-samples", type=int, default=200)
    parser.add_argument("--num-warmup", type=int, default=200)
    parser.add_argument("--num-chains", type=int, default=4)
    parser.add_argument("--num-points", type=int, default=60, help="training points")
    parser.add_argument("--num-steps", type=int, default=3000, help="SVI steps (also the warm start of NUTS)")
    parser.add_argument("--hidden", type=int, default=10, help="hidden units")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", type=Path, default=Path(__file__).parent / "output")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
