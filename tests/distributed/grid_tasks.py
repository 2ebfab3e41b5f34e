"""Fit functions of the fit_many tests, importable by worker processes (spawned processes
and Dask workers find this folder on the sys.path they inherit)."""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from probmodels.core.posterior import Posterior
from probmodels.exceptions import ConvergenceWarning
from probmodels.hmm import GaussianHMM

DATASET_SEEDS = {"calm": 1, "jumpy": 2}


def dataset(name: str, n: int = 40) -> np.ndarray:
    """A short 1-D sequence that switches between levels 0 and 3 (``"jumpy"``: more often)."""
    rng = np.random.default_rng(DATASET_SEEDS[name])
    stay = 0.95 if name == "calm" else 0.7
    states = [0]
    for _ in range(n - 1):
        states.append(states[-1] if rng.random() < stay else 1 - states[-1])
    return (3.0 * np.asarray(states) + rng.normal(0.0, 0.7, n)).reshape(-1, 1)


def fit_hmm(config: dict[str, Any]) -> Posterior:
    """A tiny Bayesian HMM fit by SVI: ``config = {"dataset", "n_states", "seed"}``."""
    hmm = GaussianHMM(config["n_states"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # 30 steps: a fit to compare, not to converge
        hmm.fit(dataset(config["dataset"]), method="svi", num_steps=config.get("num_steps", 30), num_samples=50,
                progress_bar=False, seed=config["seed"], lr=0.05)
    return hmm.posterior_


def fit_hmm_marked(config: dict[str, Any]) -> Posterior:
    """:func:`fit_hmm` that first leaves a marker file per invocation in ``config["markers"]``
    and sleeps ``config["sleep"]`` seconds (so that a fit can be killed while it runs)."""
    folder = Path(config["markers"])
    marker = folder / f"{config['dataset']}-{config['n_states']}-{os.getpid()}-{time.time_ns()}"
    marker.touch()
    time.sleep(config.get("sleep", 0.0))
    return fit_hmm(config)


def fit_hmm_or_probe(config: dict[str, Any]) -> Posterior:
    """:func:`torch_threads` for configs with ``"probe"``, else :func:`fit_hmm`."""
    return torch_threads(config) if config.get("probe") else fit_hmm(config)


def torch_threads(config: dict[str, Any]) -> Posterior:
    """A posterior whose draws are torch's intra-op thread count, whether its default dtype is
    float64 (1.0) and one random number (the seeding)."""
    return Posterior({"threads": torch.full((1, 1), float(torch.get_num_threads())),
                      "float64": torch.full((1, 1), float(torch.get_default_dtype() == torch.float64)),
                      "u": torch.rand(1, 1, dtype=torch.float64)}, method="probe")


def marked_grid(markers: str, sleep: float) -> list[dict[str, Any]]:
    """The 8-fit test grid (HMM K = 1..4 on both data sets) for :func:`fit_hmm_marked`."""
    return [{"dataset": name, "n_states": k, "seed": 10 * k + i, "markers": markers, "sleep": sleep}
            for i, name in enumerate(DATASET_SEEDS) for k in (1, 2, 3, 4)]


def invocations(markers: Path, config: dict[str, Any]) -> int:
    """How many times :func:`fit_hmm_marked` started on ``config``."""
    return len(list(Path(markers).glob(f"{config['dataset']}-{config['n_states']}-*")))
