"""fit_mcmc and fit_svi against analytic posteriors of conjugate models.

MCMC must match the exact posterior within MCSE-scaled tolerances. A
full-rank Gaussian guide lives in unconstrained space, so for the Beta and
Gamma posteriors its best possible answer is the KL-optimal Gaussian in
logit / log space, computed here by Gauss-Hermite quadrature; SVI must match
that within Monte Carlo error, and the exact posterior to within the
approximation's own (small, computed) bias.
"""

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from scipy import optimize, special, stats

import probmodels as pm
from mcse import assert_moments

N_CHAINS, N_WARMUP, N_SAMPLES = 4, 500, 1000


def normal_normal(y):
    mu = pyro.sample("mu", dist.Normal(y.new_tensor(1.0), 2.0))
    with pyro.plate("data", y.shape[-1]):
        pyro.sample("y", dist.Normal(mu, 1.5), obs=y)


def beta_bernoulli(y):
    p = pyro.sample("p", dist.Beta(y.new_tensor(2.0), 3.0))
    with pyro.plate("data", y.shape[-1]):
        pyro.sample("y", dist.Bernoulli(p), obs=y)


def gamma_poisson(y):
    lam = pyro.sample("lam", dist.Gamma(y.new_tensor(3.0), 0.5))
    with pyro.plate("data", y.shape[-1]):
        pyro.sample("y", dist.Poisson(lam), obs=y)


def _cases(device, dtype):
    rng = np.random.default_rng(0)
    y_normal = torch.tensor(rng.normal(2.0, 1.5, size=50), dtype=dtype, device=device)
    precision = 1 / 2.0**2 + 50 / 1.5**2
    normal_post = stats.norm((1.0 / 2.0**2 + float(y_normal.sum()) / 1.5**2) / precision, precision**-0.5)
    y_bern = torch.tensor(rng.binomial(1, 0.3, size=200), dtype=dtype, device=device)
    k = float(y_bern.sum())
    beta_post = stats.beta(2.0 + k, 3.0 + 200 - k)
    y_pois = torch.tensor(rng.poisson(4.0, size=40), dtype=dtype, device=device)
    gamma_post = stats.gamma(3.0 + float(y_pois.sum()), scale=1 / (0.5 + 40))
    return {
        "normal-normal": (normal_normal, y_normal, "mu", normal_post, lambda u: u, lambda u: 0.0 * u),
        "beta-bernoulli": (beta_bernoulli, y_bern, "p", beta_post, special.expit, lambda u: -np.logaddexp(0, u) - np.logaddexp(0, -u)),
        "gamma-poisson": (gamma_poisson, y_pois, "lam", gamma_post, np.exp, lambda u: u),
    }


CASES = ("normal-normal", "beta-bernoulli", "gamma-poisson")


@pytest.mark.parametrize("case", CASES)
def test_mcmc_matches_analytic_posterior(case, device, dtype):
    model, y, site, exact, _, _ = _cases(device, dtype)[case]
    posterior = pm.fit_mcmc(model, y, num_chains=N_CHAINS, num_warmup=N_WARMUP, num_samples=N_SAMPLES, seed=11, progress_bar=False)
    draws = posterior[site].cpu().numpy()
    assert draws.shape == (N_CHAINS, N_SAMPLES)
    assert_moments(draws, [exact.mean()], [exact.std()], f"{case} NUTS")
    assert int(posterior.sample_stats["diverging"].sum()) == 0


def _best_gaussian(exact, to_constrained, log_jacobian):
    """Reverse-KL-optimal Gaussian q(u) for the exact posterior pushed to unconstrained space.

    Returns the mean and sd of the constrained parameter under q.
    """
    nodes, weights = np.polynomial.hermite.hermgauss(80)
    weights = weights / np.sqrt(np.pi)

    def log_p(u):
        return exact.logpdf(to_constrained(u)) + log_jacobian(u)

    def negative_elbo(params):
        m, log_s = params
        u = m + np.exp(log_s) * np.sqrt(2) * nodes
        return -(weights * log_p(u)).sum() - log_s

    start_u = np.log(exact.mean()) if to_constrained is np.exp else special.logit(exact.mean()) if to_constrained is special.expit else exact.mean()
    result = optimize.minimize(negative_elbo, [start_u, np.log(0.1)], method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 4000})
    m, s = result.x[0], np.exp(result.x[1])
    values = to_constrained(m + s * np.sqrt(2) * nodes)
    mean = (weights * values).sum()
    return mean, np.sqrt((weights * (values - mean) ** 2).sum())


@pytest.mark.parametrize("case", CASES)
def test_full_rank_svi_matches_best_gaussian(case, device, dtype):
    if dtype != torch.float64:
        pytest.skip("the tolerance is Monte Carlo error of 4000 draws; a float32 optimum adds rounding bias of the same size")
    model, y, site, exact, to_constrained, log_jacobian = _cases(device, dtype)[case]
    posterior = pm.fit_svi(
        model, y, guide="mvn", num_steps=3000, lr=0.05, lr_decay=0.01, num_particles=8, tol=0, num_samples=4000, seed=3, progress_bar=False
    )
    draws = posterior[site].cpu().numpy()
    assert draws.shape == (1, 4000)
    best_mean, best_sd = _best_gaussian(exact, to_constrained, log_jacobian)
    assert_moments(draws, [best_mean], [best_sd], f"{case} SVI vs the KL-optimal Gaussian")
    # The approximation's own bias is small for these data: within 2 % of a posterior sd.
    assert abs(best_mean - exact.mean()) < 0.02 * exact.std()
