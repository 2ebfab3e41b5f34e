"""The core on a CUDA device: computation follows the data. Skipped without a GPU."""

import pytest

import probmodels as pm
from probmodels.datasets import eight_schools
from probmodels.demo import eight_schools_model

pytestmark = pytest.mark.gpu


def test_mcmc_and_svi_follow_cuda_data():
    data = {k: v.cuda() for k, v in eight_schools().items()}
    posterior = pm.fit_mcmc(eight_schools_model, data["sigma"], model_kwargs={"y": data["y"]}, num_chains=4, num_warmup=200, num_samples=200, progress_bar=False)
    assert posterior["mu"].device.type == "cuda"
    assert posterior.log_likelihood()["y"].device.type == "cuda"
    assert posterior.to_arviz().posterior["theta"].shape == (4, 200, 8)
    approx = pm.fit_svi(eight_schools_model, data["sigma"], model_kwargs={"y": data["y"]}, num_steps=200, num_samples=100, progress_bar=False)
    assert approx["tau"].device.type == "cuda"


def test_cpu_data_with_cuda_device_is_refused():
    data = eight_schools()
    with pytest.raises(pm.DataError, match="lives on cpu"):
        pm.fit_mcmc(eight_schools_model, data["sigma"], model_kwargs={"y": data["y"]}, device="cuda", progress_bar=False)
