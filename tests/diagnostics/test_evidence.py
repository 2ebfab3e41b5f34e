"""Marginal likelihood (log_evidence) on conjugate problems whose evidence is known in closed form.

Each Monte Carlo estimate must lie within ``Z_SCORE`` reported standard errors
of the truth (with a small floor, as the standard error is itself estimated)
and within the absolute tolerance the method promises.
"""

import math
import time
import warnings

import pyro
import pyro.distributions as dist
import pytest
import torch

import probmodels as pm
from probmodels import ConvergenceWarning, DataError, ModelSpecError, ShapeError
from probmodels.core.posterior import Posterior
from probmodels.diagnostics import EvidenceEstimate, log_evidence

Z_SCORE = 4.0
SE_FLOOR = 0.005


def fit(model, *args, chains=2, samples=500, warmup=300):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return pm.fit_mcmc(model, *args, num_chains=chains, num_warmup=warmup, num_samples=samples, seed=1, progress_bar=False)


def check(estimate: EvidenceEstimate, truth: float, tolerance: float) -> None:
    error = abs(estimate.log_evidence - truth)
    assert error < Z_SCORE * max(estimate.standard_error, SE_FLOOR), (estimate, truth)
    assert error < tolerance, (estimate, truth)


# --------------------------------------------------------------------------- Normal-Normal, n = 50
def normal_normal(y):
    mu = pyro.sample("mu", dist.Normal(1.0, 2.0))
    with pyro.plate("data", y.shape[0]):
        pyro.sample("y", dist.Normal(mu, 1.0), obs=y)


@pytest.fixture(scope="module")
def normal_case():
    g = torch.Generator().manual_seed(0)
    y = 0.7 + torch.randn(50, generator=g)
    covariance = torch.eye(50) + 4.0 * torch.ones(50, 50)
    truth = float(dist.MultivariateNormal(torch.full((50,), 1.0), covariance).log_prob(y))
    return fit(normal_normal, y), truth


def test_bridge_normal_normal(normal_case):
    posterior, truth = normal_case
    estimate = log_evidence(posterior)
    assert estimate.method == "bridge" and estimate.diagnostics["converged"] == 1.0
    check(estimate, truth, 0.05)
    assert estimate.diagnostics["relative_mse"] == pytest.approx(estimate.standard_error**2)


def test_laplace_exact_on_gaussian_posterior(normal_case):
    posterior, truth = normal_case
    estimate = log_evidence(posterior, method="laplace")
    assert math.isnan(estimate.standard_error)
    assert estimate.log_evidence == pytest.approx(truth, abs=1e-6)


def test_exact_takes_a_number_or_a_callable(normal_case):
    posterior, truth = normal_case
    assert log_evidence(posterior, "exact", exact=truth).log_evidence == truth
    closed_form = lambda y: dist.MultivariateNormal(torch.ones(50), torch.eye(50) + 4.0).log_prob(y)  # noqa: E731
    assert log_evidence(posterior, "exact", exact=closed_form).log_evidence == pytest.approx(truth)
    with pytest.raises(ModelSpecError, match="exact="):
        log_evidence(posterior, "exact")
    with pytest.raises(ModelSpecError, match="exact="):
        log_evidence(posterior, "bridge", exact=truth)
    with pytest.raises(DataError, match="exact="):
        log_evidence(posterior, "exact", exact=float("nan"))


# --------------------------------------------------------------------------- Beta-Bernoulli: a constrained parameter
def beta_bernoulli(y):
    p = pyro.sample("p", dist.Beta(2.0, 3.0))
    with pyro.plate("data", y.shape[0]):
        pyro.sample("y", dist.Bernoulli(p), obs=y)


def test_bridge_beta_bernoulli_includes_the_jacobian():
    y = torch.tensor([1.0] * 9 + [0.0] * 21)
    successes, failures = 9.0, 21.0
    truth = (
        math.lgamma(2 + successes) + math.lgamma(3 + failures) - math.lgamma(5 + successes + failures)
        - (math.lgamma(2) + math.lgamma(3) - math.lgamma(5))
    )
    estimate = log_evidence(fit(beta_bernoulli, y))
    check(estimate, truth, 0.05)


# --------------------------------------------------------------------------- linear regression, Normal-Inverse-Gamma prior
A0, B0, TAU = 3.0, 2.0, 1.5


def nig_regression(X, y):
    sigma2 = pyro.sample("sigma2", dist.InverseGamma(A0, B0))
    beta = pyro.sample("beta", dist.Normal(torch.zeros(X.shape[1]), TAU * sigma2.sqrt().unsqueeze(-1)).to_event(1))
    with pyro.plate("data", y.shape[0]):
        pyro.sample("y", dist.Normal(X @ beta, sigma2.sqrt()), obs=y)


def multivariate_t_log_pdf(y, df, scale):
    n = y.shape[0]
    chol = torch.linalg.cholesky(scale)
    maha = (torch.cholesky_solve(y.unsqueeze(-1), chol).squeeze(-1) * y).sum()
    log_det = 2 * torch.log(torch.diagonal(chol)).sum()
    return float(
        math.lgamma((df + n) / 2) - math.lgamma(df / 2) - n / 2 * math.log(df * math.pi) - log_det / 2
        - (df + n) / 2 * torch.log1p(maha / df)
    )


@pytest.fixture(scope="module")
def regression_case():
    g = torch.Generator().manual_seed(3)
    n, d = 100, 5
    X = torch.randn(n, d, generator=g)
    y = X @ torch.tensor([1.0, -0.5, 0.0, 0.3, 2.0]) + 0.8 * torch.randn(n, generator=g)
    # y ~ Student-t_{2 a0}(0, (b0 / a0) (I + tau^2 X X^T)) once beta and sigma2 are integrated out
    truth = multivariate_t_log_pdf(y, 2 * A0, B0 / A0 * (torch.eye(n) + TAU**2 * X @ X.T))
    return fit(nig_regression, X, y, chains=4, samples=1000, warmup=400), truth


def test_bridge_nig_regression(regression_case):
    posterior, truth = regression_case
    assert posterior.num_chains * posterior.num_draws == 4000
    started = time.perf_counter()
    estimate = log_evidence(posterior)
    elapsed = time.perf_counter() - started
    print(f"bridge on 4000 draws: {elapsed:.2f} s, error {estimate.log_evidence - truth:+.4f}, se {estimate.standard_error:.4f}")
    check(estimate, truth, 0.05)


def test_importance_nig_regression(regression_case):
    posterior, truth = regression_case
    estimate = log_evidence(posterior, method="importance", seed=2)
    assert estimate.diagnostics["pareto_k"] < 0.7
    assert estimate.diagnostics["ess"] > 100
    check(estimate, truth, 0.1)


# --------------------------------------------------------------------------- a 10-d correlated Gaussian posterior
def correlated_gaussian(y, covariance):
    x = pyro.sample("x", dist.MultivariateNormal(torch.zeros(10), 4.0 * torch.eye(10)))
    pyro.sample("y", dist.MultivariateNormal(x, covariance), obs=y)


@pytest.fixture(scope="module")
def gaussian_case():
    g = torch.Generator().manual_seed(5)
    root = torch.randn(10, 10, generator=g) / 3
    covariance = 0.2 * torch.eye(10) + root @ root.T
    y = torch.randn(10, generator=g) * 2
    truth = float(dist.MultivariateNormal(torch.zeros(10), covariance + 4.0 * torch.eye(10)).log_prob(y))
    return fit(correlated_gaussian, y, covariance, chains=4, samples=500), truth


def test_bridge_correlated_gaussian(gaussian_case):
    posterior, truth = gaussian_case
    check(log_evidence(posterior), truth, 0.05)


def test_laplace_correlated_gaussian(gaussian_case):
    posterior, truth = gaussian_case
    assert log_evidence(posterior, method="laplace").log_evidence == pytest.approx(truth, abs=1e-6)


def test_importance_on_an_svi_fit(normal_case):
    posterior, truth = normal_case
    svi = pm.fit_svi(normal_normal, *posterior.model_args, guide="mvn", num_steps=1000, lr=0.05, tol=0, progress_bar=False)
    estimate = log_evidence(svi, method="importance")
    assert "guide's draws" in estimate.notes[0]
    check(estimate, truth, 0.1)


# --------------------------------------------------------------------------- honest failure and bad input
def test_bad_input_names_the_argument(normal_case):
    posterior, _ = normal_case
    with pytest.raises(ModelSpecError, match="method"):
        log_evidence(posterior, method="harmonic")
    with pytest.raises(ModelSpecError, match="max_relative_mse"):
        log_evidence(posterior, max_relative_mse=-1.0)
    with pytest.raises(TypeError, match="fit"):
        log_evidence(posterior.draws)
    loaded = Posterior(posterior.draws, method="nuts")
    with pytest.raises(ModelSpecError, match="fit has no model"):
        log_evidence(loaded)
    with pytest.raises(ModelSpecError, match="svi"):
        log_evidence(pm.fit_svi(posterior.model, *posterior.model_args, guide="mvn", num_steps=20, tol=0, progress_bar=False))
    short = Posterior(
        {k: v[:, :4] for k, v in posterior.draws.items()}, method="nuts", model=posterior.model,
        model_args=posterior.model_args, info=posterior.info,
    )
    with pytest.raises(ShapeError, match="fit has 2 chain"):
        log_evidence(short)


def test_poor_bridge_warns_naming_the_cause(normal_case):
    posterior, _ = normal_case
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        estimate = log_evidence(posterior, max_iter=1)
    assert estimate.diagnostics["converged"] == 0.0
    with pytest.warns(ConvergenceWarning, match="relative mean-squared error"):
        log_evidence(posterior, max_relative_mse=1e-12)


def test_importance_warns_on_heavy_weights(normal_case):
    posterior, _ = normal_case
    mean = posterior.draws["mu"].mean()
    narrow = Posterior(
        {"mu": mean + 0.2 * (posterior.draws["mu"] - mean)}, method="nuts", model=posterior.model,
        model_args=posterior.model_args, info=posterior.info,
    )
    with pytest.warns(ConvergenceWarning, match="Pareto k-hat"):
        estimate = log_evidence(narrow, method="importance")
    assert estimate.diagnostics["pareto_k"] > 0.7
