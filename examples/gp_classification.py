"""Gaussian process classification: class probabilities on a two-moons toy problem
=================================================================================

A classifier should know where it does not know: far from the training data a
GP classifier's latent function reverts to its prior, so its class
probabilities fall back towards 1/2 instead of staying confidently at 0 or 1
as a linear or tree model would. This example fits a variational GP
classifier (Bernoulli likelihood, logistic link, kernel hyperparameters by
maximising the ELBO) to two interleaved half-moons, prints its held-out
accuracy and log loss, and draws the probability contours and the latent
function's predictive standard deviation over the plane.

References:

    1. C. E. Rasmussen and C. K. I. Williams (2006), Gaussian Processes for
       Machine Learning, MIT Press, chapter 3.
    2. J. Hensman, A. G. de G. Matthews and Z. Ghahramani (2015), "Scalable
       variational Gaussian process classification", AISTATS, PMLR 38, 351-360.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from probmodels.gp import GPClassification


def two_moons(rng: np.random.Generator, n: int, noise: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points on two interleaved half-circles with Gaussian noise, and their 0/1 labels."""
    labels = rng.integers(2, size=n)
    angle = rng.uniform(0.0, np.pi, n)
    x = np.where(labels == 0, np.cos(angle), 1.0 - np.cos(angle))
    y = np.where(labels == 0, np.sin(angle), 0.5 - np.sin(angle))
    return np.stack([x, y], axis=1) + noise * rng.normal(size=(n, 2)), labels


def main(args: argparse.Namespace) -> Path:
    rng = np.random.default_rng(args.seed)
    X, labels = two_moons(rng, args.num_points)
    X_test, labels_test = two_moons(rng, 2000)
    started = time.perf_counter()
    gp = GPClassification("rbf", ard=True, num_inducing=args.num_inducing, seed=args.seed)
    gp.fit(torch.as_tensor(X, device=args.device), labels)
    seconds = time.perf_counter() - started

    proba = gp.predict_proba(torch.as_tensor(X_test, device=args.device))[:, 1].cpu().numpy()
    log_loss = -np.mean(np.log(np.where(labels_test == 1, proba, 1.0 - proba)))
    accuracy = gp.score(torch.as_tensor(X_test, device=args.device), labels_test)
    lengthscales = gp.hyperparameters_["lengthscale"].reshape(-1).tolist()
    print(f"two moons: {args.num_points} training points, {min(args.num_points, args.num_inducing)} inducing points, "
          f"RBF kernel with one lengthscale per input, logistic link")
    print(f"ELBO {gp.elbo_:.2f}   lengthscales {np.round(lengthscales, 3).tolist()} (standardised units)   "
          f"outputscale {float(gp.hyperparameters_['outputscale']):.3f}   fitted in {seconds:.1f} s")
    print(f"held-out (2000 points): accuracy {accuracy:.1%}   log loss {log_loss:.3f}")

    grid = np.linspace(-2.5, 3.5, 120), np.linspace(-2.0, 2.5, 100)
    plane = np.stack([g.ravel() for g in np.meshgrid(*grid)], axis=1)
    plane_tensor = torch.as_tensor(plane, device=args.device)
    shape = (grid[1].size, grid[0].size)
    p = gp.predict_proba(plane_tensor)[:, 1].cpu().numpy().reshape(shape)
    latent_sd = gp.predict_latent(plane_tensor)[1].cpu().numpy().reshape(shape)
    return plot(X, labels, grid, p, latent_sd, args.output_dir / "gp_classification.png")


def plot(
    X: np.ndarray, labels: np.ndarray, grid: tuple[np.ndarray, np.ndarray], p: np.ndarray, latent_sd: np.ndarray, path: Path
) -> Path:
    fig = Figure(figsize=(12, 4.8), layout="constrained")
    left, right = fig.subplots(1, 2, sharey=True)
    filled = left.contourf(*grid, p, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.8)
    left.contour(*grid, p, levels=[0.5], colors="black", linewidths=1.5)
    fig.colorbar(filled, ax=left, label="P(class 1 | x)")
    left.set_title("predictive probability (black: P = 0.5)")
    spread = right.contourf(*grid, latent_sd, levels=12, cmap="viridis")
    fig.colorbar(spread, ax=right, label="sd of the latent f(x)")
    right.set_title("posterior uncertainty of the latent function")
    for ax in (left, right):
        ax.scatter(*X[labels == 0].T, s=10, color="tab:blue", edgecolors="white", linewidths=0.4, label="class 0")
        ax.scatter(*X[labels == 1].T, s=10, color="tab:red", edgecolors="white", linewidths=0.4, label="class 1")
        ax.set_xlabel("x1")
    left.set_ylabel("x2")
    left.legend(loc="lower left")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-samples", type=int, default=0, help="unused: the classifier is fitted by variational inference")
    parser.add_argument("--num-warmup", type=int, default=0, help="unused: the classifier is fitted by variational inference")
    parser.add_argument("--num-chains", type=int, default=1, help="unused: the classifier is fitted by variational inference")
    parser.add_argument("--num-points", type=int, default=150, help="training points")
    parser.add_argument(
        "--num-inducing", type=int, default=150, help="at least --num-points: every point is one (the full variational GP)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", type=Path, default=Path(__file__).parent / "output")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
