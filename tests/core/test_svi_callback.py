"""fit_svi's per-step callback: called once per step with the step and its loss, and able to stop the run."""

from __future__ import annotations

import warnings

import numpy as np
import pyro
import pyro.distributions as dist
import torch

from probmodels import fit_svi

Y = torch.tensor([0.3, -0.2, 1.1, 0.7, 0.4], dtype=torch.float64)


def model(y):
    mu = pyro.sample("mu", dist.Normal(y.new_tensor(0.0), 1.0))
    with pyro.plate("data", y.shape[0]):
        pyro.sample("y", dist.Normal(mu, 1.0), obs=y)


def test_callback_sees_every_step_and_its_loss():
    seen: list[tuple[int, float]] = []
    fit = fit_svi(model, Y, num_steps=40, num_samples=10, tol=0, progress_bar=False, callback=lambda step, loss: seen.append((step, loss)))
    assert [step for step, _ in seen] == list(range(40))
    assert np.array_equal(np.array([loss for _, loss in seen]), fit.attrs["loss"])


def test_callback_returning_true_stops_the_run_as_converged():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = fit_svi(model, Y, num_steps=500, num_samples=10, progress_bar=False, callback=lambda step, loss: step == 9)
    assert fit.attrs["num_steps"] == 10
    assert fit.attrs["converged"]
