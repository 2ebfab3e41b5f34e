"""Stepping-stone sampling and the ELBO bound against evidence known in closed form or by quadrature.

The bimodal target is one where a single normal proposal fails: bridge
sampling from draws that found one mode misses the other's mass, which only
its cross-check against importance sampling from the prior can reveal;
stepping-stone sampling tempers from the prior, which covers both modes, and
needs no proposal.
"""

import math
import warnings

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from scipy import integrate, stats

import probmodels as pm
from probmodels import ConvergenceWarning, ModelSpecError
from probmodels.diagnostics import log_evidence
from probmodels.diagnostics.stepping_stone import temperature_ladder

from test_evidence import SE_FLOOR, Z_SCORE, check, normal_normal

SETTINGS = dict(num_temperatures=16, num_chains=16, num_samples=100, num_warmup=50)


def fit(model, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return pm.fit_mcmc(model, *args, num_chains=2, num_warmup=200, num_samples=200, seed=0, progress_bar=False, **kwargs)


@pytest.fixture(scope="module")
def normal_case():
    g = torch.Generator().manual_seed(0)
    y = 0.7 + torch.randn(50, generator=g)
    truth = float(dist.MultivariateNormal(torch.full((50,), 1.0), torch.eye(50) + 4.0 * torch.ones(50, 50)).log_prob(y))
    return fit(normal_normal, y), truth


def test_ladder_follows_xie_et_al():
    betas = temperature_ladder(4)
    assert betas[0] == 0.0 and betas[-1] == 1.0
    assert betas[1].item() == pytest.approx(0.25 ** (1 / 0.3))
    assert bool((betas.diff() > 0).all())


def test_stepping_stone_normal_normal(normal_case):
    posterior, truth = normal_case
    estimate = log_evidence(posterior, "stepping_stone", **SETTINGS)
    assert estimate.method == "stepping_stone" and estimate.diagnostics["num_temperatures"] == 16
    assert estimate.diagnostics["min_ess"] > 50 and "per-stone ESS" in estimate.notes[0]
    check(estimate, truth, 0.1)


# --------------------------------------------------------------------------- a bimodal posterior, 30 % / 70 % of the mass
WEIGHTS, OFFSETS, SCALES = (0.3, 0.7), (3.0, -3.0), (0.3, 0.6)


def bimodal(y):
    """theta ~ N(0, 3^2); p(y = 0 | theta) = 0.3 N(theta; -3, 0.3^2) + 0.7 N(theta; 3, 0.6^2)."""
    theta = pyro.sample("theta", dist.Normal(0.0, 3.0))
    with pyro.plate("data", y.shape[0]):
        components = dist.Normal(theta.unsqueeze(-1) + torch.tensor(OFFSETS), torch.tensor(SCALES))
        pyro.sample("y", dist.MixtureSameFamily(dist.Categorical(torch.tensor(WEIGHTS)), components), obs=y)


def bimodal_truth() -> float:
    def integrand(t):
        likelihood = sum(w * stats.norm.pdf(0.0, t + o, s) for w, o, s in zip(WEIGHTS, OFFSETS, SCALES))
        return stats.norm.pdf(t, 0.0, 3.0) * likelihood

    value, error = integrate.quad(integrand, -30.0, 30.0, points=[-3.0, 3.0], limit=200)
    assert error < 1e-6 * value
    return math.log(value)


@pytest.fixture(scope="module")
def bimodal_case():
    # every chain starts in the narrow mode (30 % of the mass), as NUTS chains that land there stay there
    return fit(bimodal, torch.zeros(1, dtype=torch.float64), init_values={"theta": -3.0}), bimodal_truth()


def test_bridge_flags_the_mode_its_draws_missed(bimodal_case):
    posterior, truth = bimodal_case
    assert bool((posterior["theta"] < 0).all())
    with pytest.warns(ConvergenceWarning, match="chains most likely missed posterior mass"):
        estimate = log_evidence(posterior, "bridge")
    # from its draws alone it estimates the evidence of the mode it saw, log(0.3) below the truth, with a tiny error;
    # the prior cross-check, which knows nothing of the draws, finds the rest and says so
    assert estimate.log_evidence - truth == pytest.approx(math.log(WEIGHTS[0]), abs=0.05)
    assert estimate.diagnostics["relative_mse"] < 1e-3 and estimate.standard_error < 0.05
    prior_error = abs(estimate.diagnostics["prior_log_evidence"] - truth)
    assert prior_error < Z_SCORE * estimate.diagnostics["prior_standard_error"] and estimate.diagnostics["prior_pareto_k"] < 0.7


def test_stepping_stone_finds_both_modes(bimodal_case):
    posterior, truth = bimodal_case
    estimate = log_evidence(posterior, "stepping_stone", seed=1, **SETTINGS)
    error = abs(estimate.log_evidence - truth)
    assert error < Z_SCORE * max(estimate.standard_error, SE_FLOOR) and error < 0.1, (estimate, truth)


# --------------------------------------------------------------------------- the ELBO, a lower bound
def test_elbo_is_a_labelled_lower_bound(normal_case):
    posterior, truth = normal_case
    svi = pm.fit_svi(normal_normal, *posterior.model_args, guide="normal", num_steps=1500, lr=0.05, tol=0, progress_bar=False)
    estimate = log_evidence(svi, "elbo")
    assert estimate.method == "elbo" and estimate.diagnostics["lower_bound"] == 1.0
    assert "LOWER BOUND" in estimate.notes[0]
    assert estimate.log_evidence < truth + Z_SCORE * estimate.standard_error
    # the mean-field normal is exact here, so the bound is tight up to optimisation noise
    assert truth - estimate.log_evidence < 0.5 and 0 < estimate.standard_error < 0.2
    expected = -np.asarray(svi.attrs["loss"][-100:]).mean()
    assert estimate.log_evidence == pytest.approx(expected)


def test_elbo_refuses_mcmc_and_map_fits(normal_case):
    posterior, _ = normal_case
    with pytest.raises(ModelSpecError, match="MCMC has no ELBO"):
        log_evidence(posterior, "elbo")
    delta = pm.fit_svi(normal_normal, *posterior.model_args, guide="delta", num_steps=20, tol=0, progress_bar=False)
    with pytest.raises(ModelSpecError, match="MAP objective"):
        log_evidence(delta, "elbo")


def test_stepping_stone_bad_input(normal_case):
    posterior, _ = normal_case
    with pytest.raises(ModelSpecError, match="num_temperatures must be at least 2"):
        log_evidence(posterior, "stepping_stone", num_temperatures=1)
    with pytest.raises(ModelSpecError, match="num_chains"):
        log_evidence(posterior, "stepping_stone", num_chains=0)
    with pytest.raises(ModelSpecError, match="num_samples"):
        log_evidence(posterior, "stepping_stone", num_samples=-3)
