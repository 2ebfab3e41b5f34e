"""Bayesian network: medical diagnosis with credible intervals on the Asia network
==============================================================================

A clinic that learns a diagnostic network from its own patient records does
not know the conditional probability tables exactly: a query such as
P(lung cancer | smoker, positive X-ray) inherits the uncertainty of the
tables, and that uncertainty is largest exactly where the evidence is rare.
This example samples patient records from the Asia ("chest clinic") network,
learns the tables as conjugate Dirichlet posteriors (BDeu prior), and answers
diagnostic queries on posterior draws of the tables: each answer comes with a
credible interval, which shrinks as the number of records grows and which can
be checked against the exact answer of the true network.

References:

    1. S. L. Lauritzen and D. J. Spiegelhalter (1988), "Local computations with
       probabilities on graphical structures and their application to expert
       systems", Journal of the Royal Statistical Society B 50(2), 157-224.
    2. D. Heckerman, D. Geiger and D. M. Chickering (1995), "Learning Bayesian
       networks: the combination of knowledge and statistical data",
       Machine Learning 20, 197-243.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from probmodels.bn import Inference, dirichlet_posterior
from probmodels.datasets import asia

SCENARIOS = {
    "no evidence": {},
    "smoker": {"smoke": "yes"},
    "smoker, X-ray +": {"smoke": "yes", "xray": "yes"},
    "smoker, X-ray +, dyspnoea": {"smoke": "yes", "xray": "yes", "dysp": "yes"},
    "non-smoker, Asia, X-ray +": {"smoke": "no", "asia": "yes", "xray": "yes"},
}
LEVEL = 0.9


def main(args: argparse.Namespace) -> Path:
    torch.manual_seed(args.seed)  # posterior draws of the tables use torch's global random state
    network = asia()
    exact = Inference(network.to(args.device))
    sizes = (args.num_patients, 10 * args.num_patients)
    generator = torch.Generator().manual_seed(args.seed)
    records = Inference(network).sample(max(sizes), generator=generator)

    truth = np.array([float(exact.query(["lung"], evidence)["lung"].probs[0]) for evidence in SCENARIOS.values()])
    answers = {}
    print(f"P(lung cancer = yes | evidence): exact, and learned from n records (mean [{LEVEL:.0%} interval])")
    print(f"{'evidence':28s}{'exact':>8s}" + "".join(f"{f'n = {n}':>26s}" for n in sizes))
    for n in sizes:
        posterior = dirichlet_posterior(network, records.iloc[:n], prior="bdeu", device=args.device)
        rows = [
            posterior.query_with_uncertainty(["lung"], evidence, n_draws=args.num_samples, level=LEVEL)["lung"]
            for evidence in SCENARIOS.values()
        ]
        answers[n] = np.array([[float(q.mean[0]), float(q.lower[0]), float(q.upper[0])] for q in rows])
    for i, label in enumerate(SCENARIOS):
        cells = "".join(f"{a[i, 0]:10.3f} [{a[i, 1]:.3f}, {a[i, 2]:.3f}]" for a in answers.values())
        print(f"{label:28s}{truth[i]:8.3f}{cells}")
    return plot(answers, truth, args.output_dir / "bn_medical_diagnosis.png")


def plot(answers: dict[int, np.ndarray], truth: np.ndarray, path: Path) -> Path:
    fig = Figure(figsize=(9, 4.5), layout="constrained")
    ax = fig.add_subplot()
    positions = np.arange(len(SCENARIOS))
    width = 0.8 / len(answers)
    for j, (n, a) in enumerate(answers.items()):
        x = positions + (j - (len(answers) - 1) / 2) * width
        error = np.stack([a[:, 0] - a[:, 1], a[:, 2] - a[:, 0]])
        ax.bar(x, a[:, 0], width, yerr=error, capsize=4, label=f"learned from {n} records ({LEVEL:.0%} interval)")
    ax.scatter(positions, truth, marker="D", color="black", zorder=3, label="exact (true network)")
    ax.set_xticks(positions, list(SCENARIOS), rotation=15)
    ax.set_ylabel("P(lung cancer = yes | evidence)")
    ax.set_title("Asia network: diagnostic queries with posterior uncertainty of the tables")
    ax.legend(loc="upper left")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-samples", type=int, default=2000, help="posterior draws of the tables per query")
    parser.add_argument("--num-warmup", type=int, default=0, help="unused: the Dirichlet posterior is sampled exactly")
    parser.add_argument("--num-chains", type=int, default=1, help="unused: the Dirichlet posterior is sampled exactly")
    parser.add_argument("--num-patients", type=int, default=1000, help="records of the smaller data set (the larger has 10x)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", type=Path, default=Path(__file__).parent / "output")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
