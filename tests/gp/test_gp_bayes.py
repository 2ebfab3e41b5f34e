"""Full posterior of GP hyperparameters by NUTS through the inference core."""

import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pyro.distributions as dist
import pytest
import torch
from torch.distributions.transforms import PowerTransform

import probmodels as pm
from probmodels.gp import GPMarginal, GPMarginalModel, GPRegression, make_kernel
from probmodels.gp.hyper import HyperSpace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from posteriordb_models import load_case, load_reference_draws, requires_reference  # noqa: E402
from test_reference_posteriors import _compare  # noqa: E402

T = lambda v: torch.as_tensor(v, dtype=torch.float64)  # noqa: E731
CASE = "gp_pois_regr-gp_regr"


def _stan_priors():
    """The Stan model's priors on our hyperparameters: rho = lengthscale, alpha = sqrt(outputscale),
    and Stan adds sigma itself (not its square) to the diagonal, so sigma is our noise variance."""
    return {
        "lengthscale": dist.Gamma(T(25.0), T(4.0)),
        "outputscale": dist.TransformedDistribution(dist.HalfNormal(T(2.0)), [PowerTransform(T(2.0))]),
        "noise": dist.HalfNormal(T(1.0)),
    }


@requires_reference
def test_nuts_reproduces_the_stan_reference_posterior_of_gp_regr():
    case = load_case(CASE)
    gp = GPRegression("rbf", method="nuts", priors=_stan_priors(), standardize_x=False, standardize_y=False, seed=1)
    gp.fit(case.kwargs["x"], case.kwargs["y"])
    draws = gp.posterior_
    as_stan = {"rho": draws["lengthscale"][..., 0], "alpha": draws["outputscale"].sqrt(), "sigma": draws["noise"]}

    class Draws(dict):
        pass

    problems = _compare(Draws(as_stan), load_reference_draws(CASE))
    assert not problems, "\n".join(problems)
    assert int(draws.sample_stats["diverging"].sum()) == 0


@requires_reference
def test_gp_marginal_model_log_density_equals_the_stan_port():
    case = load_case(CASE)
    x, y = case.kwargs["x"], case.kwargs["y"]
    space = HyperSpace(make_kernel("rbf"), 1, {}, (), x)
    model = GPMarginalModel(space, _stan_priors())
    rng = np.random.default_rng(0)
    rho, alpha, sigma = (T(rng.uniform(0.5, 3.0, size=5)) for _ in range(3))
    ours = model.log_marginal_likelihood({"lengthscale": rho[:, None], "outputscale": alpha**2, "noise": sigma}, x.unsqueeze(-1), y)
    for i in range(5):
        cov = alpha[i] ** 2 * torch.exp(-0.5 * (x[:, None] - x[None, :]) ** 2 / rho[i] ** 2) + sigma[i] * torch.eye(len(x))
        reference = torch.distributions.MultivariateNormal(torch.zeros(len(x)), covariance_matrix=cov).log_prob(y)
        assert float(ours[i]) == pytest.approx(float(reference), rel=1e-13)


def test_gp_marginal_log_prob_is_minus_inf_for_an_indefinite_covariance():
    cov = torch.stack([T([[2.0, 0.3], [0.3, 1.0]]), T([[1.0, 2.0], [2.0, 1.0]])])
    log_prob = GPMarginal(cov).log_prob(T([0.5, -0.2]))
    reference = torch.distributions.MultivariateNormal(torch.zeros(2), covariance_matrix=cov[0]).log_prob(T([0.5, -0.2]))
    assert float(log_prob[0]) == pytest.approx(float(reference), rel=1e-14)
    assert bool(torch.isneginf(log_prob[1]))


def test_nuts_on_a_singular_noise_free_gp_runs_to_the_end():
    # Repeated inputs with the noise fixed at 0: most proposals give a singular covariance. The
    # sampler must see those as rejected (divergent) proposals and finish; no chain may die.
    X = T([[0.0], [0.0], [0.0], [1.0], [1.0], [2.0]])
    y = T([0.5, 0.5, 0.5, -0.1, -0.1, 0.2])
    space = HyperSpace(make_kernel("rbf"), 1, {"noise": 0.0}, ("noise",), X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        posterior = pm.fit_mcmc(GPMarginalModel(space), X, y, num_samples=50, num_warmup=50, num_chains=4, seed=0, progress_bar=False)
    assert posterior["lengthscale"].shape == (4, 50, 1)
    assert bool(torch.isfinite(posterior["lengthscale"]).all()) and bool(torch.isfinite(posterior["outputscale"]).all())


def test_nuts_predictions_average_over_hyperparameter_draws():
    rng = np.random.default_rng(2)
    X = rng.uniform(-3, 3, size=(25, 1))
    y = np.sin(X[:, 0]) + 0.2 * rng.normal(size=25)
    gp = GPRegression("rbf", method="nuts", num_samples=300, num_warmup=300, num_chains=2, seed=3, max_predictive_draws=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pm.ConvergenceWarning)
        gp.fit(X, y)
    Xs = np.linspace(-4, 4, 6)
    mean, std = gp.predict(Xs, return_std=True)
    means, variances = [], []
    for s in range(50):
        one = GPRegression("rbf", hyperparameters={k: v[s] for k, v in gp.draws_.items()}, fixed=("outputscale", "lengthscale", "noise"))
        one.fit(X, y)
        m, sd = one.predict(Xs, return_std=True)
        means.append(m)
        variances.append(sd**2)
    means, variances = torch.stack(means), torch.stack(variances)
    torch.testing.assert_close(mean, means.mean(0), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(std**2, variances.mean(0) + means.var(0, unbiased=False), rtol=1e-10, atol=1e-10)
    lower, upper = gp.predict_interval(Xs, prob=0.8)
    normal = torch.distributions.Normal(means, variances.sqrt())
    torch.testing.assert_close(normal.cdf(lower).mean(0), torch.full((6,), 0.1), rtol=0, atol=1e-8)
    torch.testing.assert_close(normal.cdf(upper).mean(0), torch.full((6,), 0.9), rtol=0, atol=1e-8)
    assert math.isfinite(gp.log_marginal_likelihood())
