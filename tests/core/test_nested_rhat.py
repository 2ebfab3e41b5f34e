"""Nested R-hat against the paper's formula written as plain loops, and its use by fit_mcmc."""

import math

import numpy as np
import pytest

import probmodels as pm
from probmodels.diagnostics.nested_rhat import nested_rhat, posterior_nested_rhat
from probmodels.diagnostics.convergence import check_convergence
from probmodels.datasets import eight_schools
from probmodels.demo import eight_schools_model


def _loops(draws, k):
    """Margossian et al. (2024), eqs. for B_nu and W_nu, one scalar coordinate, as loops."""
    chains, n = draws.shape
    m = chains // k
    chain_mean = [sum(draws[c]) / n for c in range(chains)]
    super_mean = [sum(chain_mean[j * m + i] for i in range(m)) / m for j in range(k)]
    grand = sum(super_mean) / k
    between = sum((s - grand) ** 2 for s in super_mean) / (k - 1)
    within = 0.0
    for j in range(k):
        b = sum((chain_mean[j * m + i] - super_mean[j]) ** 2 for i in range(m)) / (m - 1) if m > 1 else 0.0
        w = sum(sum((x - chain_mean[j * m + i]) ** 2 for x in draws[j * m + i]) / (n - 1) if n > 1 else 0.0 for i in range(m)) / m
        within += (b + w) / k
    return math.sqrt(1 + between / within)


@pytest.mark.parametrize("chains,draws,k", [(8, 5, 4), (12, 1, 3), (6, 7, 6), (32, 20, 8)])
def test_nested_rhat_equals_the_formula(chains, draws, k):
    rng = np.random.default_rng(chains * draws + k)
    x = rng.normal(size=(chains, draws, 2)) + rng.normal(size=(chains, 1, 2))
    got = nested_rhat(x, k)
    assert got.shape == (2,)
    for i in range(2):
        assert got[i] == pytest.approx(_loops(x[..., i], k), rel=1e-12)


def test_separated_superchains_are_flagged_and_mixed_ones_pass():
    rng = np.random.default_rng(0)
    mixed = rng.normal(size=(64, 50))
    assert nested_rhat(mixed, 8) < 1.01
    stuck = mixed + np.repeat(np.arange(8.0), 8)[:, None]
    assert nested_rhat(stuck, 8) > 2


@pytest.mark.parametrize("k", [1, 3])
def test_superchains_must_divide_the_chains(k):
    with pytest.raises(pm.ModelSpecError, match="num_superchains"):
        nested_rhat(np.zeros((8, 10)), k)


def test_fit_mcmc_records_superchains_and_reports_nested_rhat():
    data = eight_schools()
    with pytest.warns(pm.ConvergenceWarning):
        posterior = pm.fit_mcmc(
            eight_schools_model, data["sigma"], model_kwargs={"y": data["y"]}, num_chains=8, num_superchains=4,
            num_warmup=0, num_samples=1, adapt_pooled=True, progress_bar=False, compile="none",
        )
    assert posterior.attrs["num_superchains"] == 4
    values = posterior_nested_rhat(posterior)
    assert set(values) >= {"mu", "tau"}
    report = check_convergence(posterior)
    assert any("nested R-hat" in m or "effective sample size" in m for m in report.messages)
    with pytest.raises(pm.ModelSpecError, match="divide num_chains"):
        pm.fit_mcmc(eight_schools_model, data["sigma"], model_kwargs={"y": data["y"]}, num_chains=8, num_superchains=3)
