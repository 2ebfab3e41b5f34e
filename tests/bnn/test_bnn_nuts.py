"""NUTS for networks: the tensor log density equals the core's Pyro density, and the sampler
recovers the conjugate posterior of a network without hidden layers."""

import pytest
import torch
from mcse import assert_moments

from probmodels import ModelSpecError
from probmodels.bnn import BayesianMLP, MLPModel, bayesian
from probmodels.bnn.nuts import network_log_density
from probmodels.core.density import LogDensity
from probmodels.core.protocol import inspect_model


@pytest.mark.parametrize("make", [
    lambda: MLPModel(3, (4,)),
    lambda: MLPModel(3, (4,), prior="hierarchical", prior_scale=[0.5, 2.0]),
    lambda: MLPModel(3, (4,), 3, task="multiclass", activation="relu"),
    lambda: bayesian(torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)).double(), ["2"], prior_mean="init"),
], ids=["gaussian", "hierarchical", "multiclass", "module-last-layer"])
def test_tensor_log_density_equals_the_core_pyro_density(device, dtype, make):
    model = make()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 3, generator=g).to(device, dtype)
    y = torch.randint(0, 3, (20,), generator=g).to(device, dtype) if model.task == "multiclass" else torch.randn(20, generator=g).to(device, dtype)
    info = inspect_model(model, (x, y), {})
    u = torch.randn(5, info.dim, generator=g).to(device, dtype)
    reference = LogDensity(model, (x, y), {}, info, vectorize="plate").value_and_grad(u)[0]
    torch.testing.assert_close(network_log_density(model, info, x, y)(u), reference)


@pytest.mark.slow
def test_nuts_recovers_the_conjugate_posterior_of_a_linear_network(device, dtype):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(30, 2, generator=g).to(device, dtype)
    sigma = 0.5
    y = x @ torch.tensor([1.0, -0.5], dtype=dtype, device=device) + 0.3 + sigma * torch.randn(30, generator=g).to(device, dtype)
    est = BayesianMLP((), noise=sigma, method="nuts", standardize_x=False, standardize_y=False, num_samples=500, num_warmup=300,
                      num_chains=4).fit(x, y)
    phi = torch.cat([x, torch.ones_like(x[:, :1])], 1)
    cov = torch.linalg.inv(torch.eye(3, dtype=dtype, device=device) + phi.T @ phi / sigma**2)
    mean = cov @ phi.T @ y / sigma**2
    post = est.posterior_
    draws = torch.cat([post["w0"][..., 0], post["b0"]], -1).cpu().numpy()
    assert_moments(draws, mean.cpu().numpy(), cov.diagonal().sqrt().cpu().numpy(), label="linear network NUTS")


@pytest.mark.filterwarnings("ignore::probmodels.ConvergenceWarning")
def test_nuts_from_svi_draws_runs_one_chain_per_draw(device, dtype):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(25, 2, generator=g).to(device, dtype)
    y = torch.tanh(x[:, 0]) + 0.1 * torch.randn(25, generator=g).to(device, dtype)
    est = BayesianMLP((3,), method="nuts", nuts_init="svi", num_steps=100, num_samples=5, num_warmup=5, num_chains=3,
                      svi_options={"tol": 0.0}).fit(x, y)
    post = est.posterior_
    assert post.num_chains == 3 and post.sample_stats["diverging"].shape == (3, 5)
    assert len({float(v) for v in post["noise"][:, 0]}) == 3
    assert est.log_likelihood().shape == (3, 5, 25)
    with pytest.raises(ModelSpecError, match="nuts_init"):
        BayesianMLP(nuts_init="advi")


def test_float32_network_evaluation_returns_the_density_in_the_sampler_dtype(device):
    """float32 has a relative rounding error of 6e-8 per operation; summed over 80 terms of size ~10, the
    log density (~ -500) agrees with the float64 one to well within 1e-4 relative."""
    model = MLPModel(3, (8,))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 3, generator=g, dtype=torch.float64).to(device)
    y = torch.randn(40, generator=g, dtype=torch.float64).to(device)
    info = inspect_model(model, (x, y), {})
    u = torch.randn(4, info.dim, generator=g, dtype=torch.float64).to(device)
    exact = network_log_density(model, info, x, y)(u)
    fast = network_log_density(model, info, x, y, compute_dtype=torch.float32)(u)
    assert fast.dtype == torch.float64
    torch.testing.assert_close(fast, exact, rtol=1e-4, atol=0.0)
