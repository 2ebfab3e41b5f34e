"""The family tour of ``probmodels demo``: a Bayesian network, an HMM and a GP on embedded data.

Each part is short and prints what a user would look at first: the Asia
network answers a diagnostic query exactly and, after learning its tables
from simulated patients, with a credible interval; a Gaussian HMM is fitted
by EM to simulated regime data, its number of states chosen by BIC and its
decoded states compared with the truth; a GP regression learns its
hyperparameters by type-II maximum likelihood and reports the coverage of
its 95 % predictive band on new points. The simulations use fixed seeds.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import torch

from .datasets import asia

__all__ = ["tour", "bayesian_network", "hidden_markov_model", "gaussian_process"]

_EVIDENCE = {"smoke": "yes", "xray": "yes", "dysp": "yes"}


def bayesian_network(seed: int = 0, device: str = "cpu") -> None:
    """Exact and learned queries on the Asia network."""
    from .bn import Inference, dirichlet_posterior

    started = time.perf_counter()
    network = asia().to(device)
    exact = Inference(network).query(["lung", "tub", "bronc"], _EVIDENCE)
    data = Inference(network).sample(5000, generator=torch.Generator().manual_seed(seed))
    learned = dirichlet_posterior(network, data, prior="bdeu", equivalent_sample_size=10.0)
    uncertain = learned.query_with_uncertainty(["lung", "tub", "bronc"], _EVIDENCE, n_draws=2000, level=0.9)
    print("\nBayesian network: Asia (Lauritzen & Spiegelhalter 1988), P(disease = yes | smoker, positive X-ray, dyspnoea)")
    print(f"{'':8s}{'exact':>10s}{'learned from 5000 patients (BDeu): mean [90% interval]':>58s}")
    for name in ("lung", "tub", "bronc"):
        yes = exact[name].states[0].index("yes")
        q = uncertain[name]
        print(f"{name:8s}{float(exact[name].probs[yes]):10.3f}{float(q.mean[yes]):26.3f} [{float(q.lower[yes]):.3f}, {float(q.upper[yes]):.3f}]")
    print(f"log evidence of the data (BDeu, exact): {float(learned.log_marginal_likelihood()):.1f}   ({time.perf_counter() - started:.1f} s)")


def _simulate_regimes(rng: np.random.Generator, lengths: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Three persistent regimes with means -2, 0, 3 and unit noise."""
    transmat = np.array([[0.95, 0.04, 0.01], [0.03, 0.94, 0.03], [0.02, 0.04, 0.94]])
    means = np.array([-2.0, 0.0, 3.0])
    states = []
    for length in lengths:
        path = [rng.integers(3)]
        for _ in range(length - 1):
            path.append(rng.choice(3, p=transmat[path[-1]]))
        states.extend(path)
    states = np.asarray(states)
    return (means[states] + rng.normal(size=states.size))[:, None], states


def hidden_markov_model(seed: int = 0, device: str = "cpu") -> None:
    """EM fit of a Gaussian HMM with the number of states chosen by BIC."""
    from .hmm import GaussianHMM, select_n_states

    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    lengths = (400, 300, 300)
    X, truth = _simulate_regimes(rng, lengths)
    table = select_n_states(X, lengths, k_range=range(1, 5), methods=("bic",), em_kwargs={"seed": seed, "n_restarts": 2})
    best = int(table["bic"].idxmin())
    model = GaussianHMM(best).fit(X, lengths, seed=seed, n_restarts=2)
    decoded = model.predict(X, lengths)
    print(f"\nHidden Markov model: {len(lengths)} simulated sequences ({sum(lengths)} steps) from 3 regimes with means -2, 0, 3")
    print("BIC by number of states: " + "   ".join(f"K={k}: {v:.1f}" for k, v in table["bic"].items()) + f"   -> K = {best}")
    print(f"fitted means: {np.round(np.sort(model.means_.ravel()), 2).tolist()}   EM converged: {model.monitor_.converged}")
    if best == 3:
        order = np.argsort(model.means_.ravel())
        relabel = np.empty(3, dtype=int)
        relabel[order] = np.arange(3)
        print(f"decoded states (Viterbi) agree with the truth at {100 * np.mean(relabel[decoded] == truth):.1f} % of steps")
    print(f"({time.perf_counter() - started:.1f} s)")


def gaussian_process(seed: int = 0, device: str = "cpu") -> None:
    """Type-II maximum-likelihood GP regression with a predictive band."""
    from .gp import GPRegression

    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    X = rng.uniform(-3, 3, size=(60, 1))
    y = np.sin(2 * X[:, 0]) + 0.5 * X[:, 0] + 0.2 * rng.normal(size=60)
    X_new = rng.uniform(-3, 3, size=(500, 1))
    y_new = np.sin(2 * X_new[:, 0]) + 0.5 * X_new[:, 0] + 0.2 * rng.normal(size=500)
    gp = GPRegression("rbf").fit(torch.as_tensor(X, device=device), torch.as_tensor(y, device=device))
    lower, upper = gp.predict_interval(torch.as_tensor(X_new, device=device), prob=0.95, observation=True)
    mean = gp.predict(torch.as_tensor(X_new, device=device))
    covered = ((torch.as_tensor(y_new, device=device) >= lower) & (torch.as_tensor(y_new, device=device) <= upper)).double().mean()
    rmse = float(((mean.cpu().numpy() - y_new) ** 2).mean() ** 0.5)
    print("\nGaussian process: y = sin(2x) + x/2 + N(0, 0.2^2), 60 training points, RBF kernel, type-II ML")
    print(f"log marginal likelihood: {gp.log_marginal_likelihood():.2f}   test RMSE on 500 new points: {rmse:.3f} (noise sd 0.2)")
    print(f"95% predictive band covers {100 * float(covered):.1f} % of the new observations   ({time.perf_counter() - started:.1f} s)")


def tour(seed: int = 0, device: str = "cpu") -> None:
    """Run the three family demos one after another."""
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        bayesian_network(seed, device)
        hidden_markov_model(seed, device)
        gaussian_process(seed, device)
