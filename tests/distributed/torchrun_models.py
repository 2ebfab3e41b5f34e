"""Models and data shared by the torchrun scripts and the tests that check them."""

from __future__ import annotations

import numpy as np
import pyro
import pyro.distributions as dist
import torch

CHAIN_SETTINGS = dict(num_warmup=60, num_samples=40, compile="none", progress_bar=False)


def regression_data(n: int = 30) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)``: a straight line with noise, float64."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=n)
    return torch.as_tensor(x), torch.as_tensor(1.0 + 2.0 * x + rng.normal(0.0, 0.5, n))


def regression(x: torch.Tensor, y: torch.Tensor | None = None) -> None:
    """Bayesian linear regression with a deterministic site."""
    intercept = pyro.sample("intercept", dist.Normal(0.0, 5.0))
    slope = pyro.sample("slope", dist.Normal(0.0, 5.0))
    noise = pyro.sample("noise", dist.HalfNormal(2.0))
    pyro.deterministic("at_one", intercept + slope)
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", dist.Normal(intercept + slope * x, noise), obs=y)


PRIOR_SD = 10.0
NOISE_SD = 1.0


def normal_mean_data(n: int = 400) -> torch.Tensor:
    """Draws of ``Normal(1.5, 1)``, float64."""
    return torch.as_tensor(np.random.default_rng(7).normal(1.5, NOISE_SD, n))


def normal_mean(y: torch.Tensor) -> None:
    """``mu ~ Normal(0, 10)``, ``y_i ~ Normal(mu, 1)``: the posterior of ``mu`` is Normal, known exactly."""
    mu = pyro.sample("mu", dist.Normal(0.0, PRIOR_SD))
    with pyro.plate("data", y.shape[0]):
        pyro.sample("y", dist.Normal(mu, NOISE_SD), obs=y)


def normal_mean_posterior(y: torch.Tensor) -> tuple[float, float]:
    """Exact posterior mean and standard deviation of ``mu``."""
    precision = 1.0 / PRIOR_SD**2 + y.shape[0] / NOISE_SD**2
    return float(y.sum() / NOISE_SD**2 / precision), float(precision**-0.5)


SVI_SETTINGS = dict(guide="normal", num_steps=1500, lr=0.05, lr_decay=0.02, batch_size=40, num_samples=4000, tol=0.0,
                    progress_bar=False, seed=3)
