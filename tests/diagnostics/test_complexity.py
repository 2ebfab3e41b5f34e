"""Model complexity: p_loo, p_waic, DIC's p_D and p_V, free parameters, AIC and BIC."""

import math
import warnings

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

import probmodels as pm
from probmodels import ConvergenceWarning, DataError, ModelSpecError, ShapeError
from probmodels.diagnostics import Complexity, complexity, information_criteria
from probmodels.diagnostics.arviz import loo, waic

N, D = 100, 3


def regression(x, y):
    beta = pyro.sample("beta", dist.Normal(0.0, 10.0).expand([x.shape[1]]).to_event(1))
    sigma = pyro.sample("sigma", dist.HalfNormal(10.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", dist.Normal(x @ beta, sigma), obs=y)


@pytest.fixture(scope="module")
def regression_fit():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, D, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.8 * torch.randn(N, generator=g)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return pm.fit_mcmc(regression, x, y, num_chains=2, num_warmup=500, num_samples=500, seed=1, progress_bar=False)


@pytest.fixture(scope="module")
def result(regression_fit):
    return complexity(regression_fit)


def test_p_loo_of_a_regression_is_its_number_of_parameters(result):
    # d coefficients and a noise scale, weak priors, n >> d: every measure is close to d + 1
    assert isinstance(result, Complexity)
    assert result.n_parameters == D + 1 and result.n_observations == N
    assert abs(result.p_loo - (D + 1)) < 0.5, result
    assert abs(result.p_waic - (D + 1)) < 0.5, result
    assert abs(result.p_dic - (D + 1)) < 1.0, result
    assert abs(result.p_v - (D + 1)) < 2.5, result  # a variance of the log-likelihood: the noisiest of the four
    assert result.num_high_k == 0 and result.pareto_k_max < 0.7 and result.pareto_k.shape == (N,)


def test_loo_and_waic_equal_arviz_on_the_same_inference_data(regression_fit, result):
    idata = regression_fit.to_arviz()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        reference_loo = loo(idata, pointwise=True)
        reference_waic = waic(idata, pointwise=True)
    assert result.elpd_loo == pytest.approx(float(reference_loo["elpd_loo"]), rel=1e-9)
    assert result.p_loo == pytest.approx(float(reference_loo["p_loo"]), rel=1e-9)
    assert result.se_loo == pytest.approx(float(reference_loo["se"]), rel=1e-9)
    assert result.pareto_k == pytest.approx(np.asarray(reference_loo["pareto_k"]), abs=1e-9)
    assert result.elpd_waic == pytest.approx(float(reference_waic["elpd_waic"]), rel=1e-9)
    assert result.p_waic == pytest.approx(float(reference_waic["p_waic"]), rel=1e-9)


def test_a_loaded_fit_reports_what_it_can(regression_fit, result, tmp_path):
    loaded = pm.load(regression_fit.save(tmp_path / "fit.nc"))
    again = complexity(loaded)
    assert again.p_loo == pytest.approx(result.p_loo) and again.p_v == pytest.approx(result.p_v)
    assert math.isnan(again.p_dic) and again.n_parameters is None
    assert "n/a (no model attached)" in str(again)


def test_high_pareto_k_warns():
    # one gross outlier under a light-tailed likelihood dominates its own posterior
    def location(y):
        mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
        with pyro.plate("data", y.shape[0]):
            pyro.sample("y", dist.Normal(mu, 0.1), obs=y)

    y = torch.cat([torch.zeros(9), torch.tensor([30.0])])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = pm.fit_mcmc(location, y, num_chains=2, num_warmup=200, num_samples=200, seed=0, progress_bar=False)
    with pytest.warns(ConvergenceWarning, match="Pareto k-hat above 0.7"):
        result = complexity(fit)
    assert result.num_high_k >= 1 and result.pareto_k_max > 0.7


def test_complexity_needs_a_posterior_with_a_likelihood():
    with pytest.raises(TypeError, match="Posterior"):
        complexity({"beta": np.zeros((2, 10))})
    no_likelihood = pm.Posterior({"mu": torch.zeros(2, 10)}, method="nuts")
    with pytest.raises(ShapeError, match="no pointwise log-likelihood"):
        complexity(no_likelihood)


def test_information_criteria():
    ic = information_criteria(-100.0, 4, 100)
    assert ic.aic == pytest.approx(208.0)
    assert ic.bic == pytest.approx(200.0 + 4 * math.log(100))
    assert information_criteria(torch.tensor(-100.0), 4, 100) == ic
    with pytest.raises(DataError, match="finite"):
        information_criteria(math.nan, 4, 100)
    for bad in ((-1.0, -1, 100), (-1.0, 2, 0), (-1.0, 2.5, 10)):
        with pytest.raises(ModelSpecError, match="integer"):
            information_criteria(*bad)
