"""Bad input to fit_mcmc / fit_svi: a probmodels exception at the call, naming what is wrong."""

import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

import probmodels as pm
from probmodels import DataError, InferenceError, ModelSpecError, ShapeError


def regression(x, y):
    slope = pyro.sample("slope", dist.Normal(x.new_tensor(0.0), 1.0))
    sigma = pyro.sample("sigma", dist.HalfNormal(x.new_tensor(1.0)))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", dist.Normal(slope * x, sigma), obs=y)


@pytest.fixture
def data(device, dtype):
    x = torch.linspace(-1, 1, 20, dtype=dtype, device=device)
    return x, 2 * x + 0.1 * torch.randn(20, dtype=dtype, device=device)


FITS = {
    "mcmc": lambda *args, **kw: pm.fit_mcmc(*args, num_warmup=20, num_samples=20, num_chains=2, progress_bar=False, **kw),
    "svi": lambda *args, **kw: pm.fit_svi(*args, num_steps=20, num_samples=10, progress_bar=False, **kw),
}


@pytest.mark.parametrize("fit", FITS)
@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_non_finite_data_names_the_argument(fit, value, data):
    x, y = data
    y = y.clone()
    y[3] = value
    with pytest.raises(DataError, match=r"positional argument 1.*index \[\[3\]\].*impute"):
        FITS[fit](regression, x, y)


@pytest.mark.parametrize("fit", FITS)
def test_non_finite_keyword_data_names_the_keyword(fit, data):
    x, y = data
    x = x.clone()
    x[0] = math.nan
    with pytest.raises(DataError, match="'x'"):
        FITS[fit](regression, model_kwargs={"x": x, "y": y})


@pytest.mark.parametrize("fit", FITS)
def test_observed_shape_that_would_broadcast_is_refused(fit, data):
    x, y = data
    with pytest.raises(ShapeError, match=r"observed site 'y'.*\(20, 1\).*\(20,\)"):
        FITS[fit](regression, x, y.unsqueeze(-1))


def test_object_arrays_are_refused(data):
    x, _ = data
    with pytest.raises(DataError, match="dtype object"):
        pm.fit_mcmc(regression, x, np.array([1.0, None] * 10, dtype=object), progress_bar=False)


@pytest.mark.parametrize("argument", ["num_samples", "num_chains"])
@pytest.mark.parametrize("value", [0, -3])
def test_non_positive_counts(argument, value, data):
    with pytest.raises(ModelSpecError, match=f"{argument} must be >= 1, got {value}"):
        pm.fit_mcmc(regression, *data, **{argument: value})


@pytest.mark.parametrize("argument", ["num_samples", "num_chains", "num_warmup"])
def test_count_of_wrong_type(argument, data):
    with pytest.raises(TypeError, match=argument):
        pm.fit_mcmc(regression, *data, **{argument: 10.5})


def test_svi_counts(data):
    with pytest.raises(ModelSpecError, match="num_steps must be >= 1"):
        pm.fit_svi(regression, *data, num_steps=0)
    with pytest.raises(ModelSpecError, match="lr must be a positive number"):
        pm.fit_svi(regression, *data, lr=-1.0)
    with pytest.raises(ModelSpecError, match="guide must be one of"):
        pm.fit_svi(regression, *data, guide="nonsense")


def test_target_accept_out_of_range(data):
    with pytest.raises(ModelSpecError, match="target_accept must lie in"):
        pm.fit_mcmc(regression, *data, target_accept=1.5)


def test_initial_log_density_minus_infinity_names_the_site(device, dtype):
    # Counts that a Poisson rate can never produce (negative) give -inf at every initial point.
    def model(counts):
        rate = pyro.sample("rate", dist.Gamma(counts.new_tensor(2.0), 1.0))
        with pyro.plate("data", counts.shape[0]):
            pyro.sample("counts", dist.Poisson(rate, validate_args=False), obs=counts)

    counts = torch.tensor([1.0, -2.0, 3.0], dtype=dtype, device=device)
    with pytest.raises(InferenceError, match=r"non-finite sites: 'counts'"):
        pm.fit_mcmc(model, counts, num_warmup=10, num_samples=10, progress_bar=False)


def test_model_that_raises_is_reported_with_the_last_site(data):
    def broken(x, y):
        pyro.sample("slope", dist.Normal(x.new_tensor(0.0), 1.0))
        raise RuntimeError("bug in the model")

    with pytest.raises(ModelSpecError, match=r"after site 'slope'.*bug in the model"):
        pm.fit_mcmc(broken, *data, progress_bar=False)


def test_discrete_latent_site_is_refused(data):
    def discrete(x, y):
        pyro.sample("k", dist.Categorical(logits=x.new_zeros(3)))

    with pytest.raises(ModelSpecError, match="latent site 'k' is discrete"):
        pm.fit_mcmc(discrete, *data, progress_bar=False)


def test_mixed_float_dtypes_are_refused(device):
    x = torch.linspace(0, 1, 5, dtype=torch.float32, device=device)
    y = torch.linspace(0, 1, 5, dtype=torch.float64, device=device)
    with pytest.raises(DataError, match="mixes floating dtypes"):
        pm.fit_mcmc(regression, x, y, progress_bar=False)


def test_non_finite_svi_loss_stops_with_the_step_index(data):
    x, y = data
    huge = 1e150 if y.dtype == torch.float64 else 1e30  # large, yet finite in the data's dtype
    with pytest.raises(InferenceError, match=r"step \d+"):
        pm.fit_svi(regression, x, y * huge, lr=1e3, num_steps=200, progress_bar=False)


def test_unknown_observed_site(data):
    with pytest.raises(ModelSpecError, match=r"\['z'\] were declared.*\['y'\]"):
        pm.fit_mcmc(regression, *data, observed=("z",), progress_bar=False)
