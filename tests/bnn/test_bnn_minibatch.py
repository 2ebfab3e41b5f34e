"""Mini-batch SVI on a Bayesian MLP: the likelihood scaling that fit_svi applies
(N / batch size on the observed site only) makes the ELBO gradient unbiased."""

import pyro
import torch
from pyro.infer import Trace_ELBO
from pyro.infer.autoguide import AutoDelta, AutoNormal
from scipy.stats import norm

from probmodels.bnn import MLPModel
from probmodels.core.svi import _ScaleLikelihood

N, BATCH = 40, 10


def _data(device, dtype):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(N, 3, generator=g).to(device, dtype)
    y = (x[:, 0] - 0.5 * x[:, 1] ** 2 + 0.3 * torch.randn(N, generator=g).to(device, dtype))
    return x, y


def _gradient(model, guide, x, y, scale):
    """One ELBO-gradient draw w.r.t. the guide parameters, the likelihood scaled like fit_svi does."""
    scaled = _ScaleLikelihood(model.observed, scale)(model)
    loss = Trace_ELBO().differentiable_loss(scaled, guide, x, y)
    params = [p for _, p in sorted(pyro.get_param_store().named_parameters())]
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)])


def test_partition_of_mini_batches_averages_to_the_full_gradient_exactly(device, dtype):
    x, y = _data(device, dtype)
    model = MLPModel(3, (4,))
    guide = AutoDelta(model)
    with pyro.get_param_store().scope():
        guide(x, y)
        full = _gradient(model, guide, x, y, 1.0)
        order = torch.randperm(N, generator=torch.Generator().manual_seed(0)).to(device)
        parts = [_gradient(model, guide, x[i], y[i], N / BATCH) for i in order.split(BATCH)]
        unscaled = torch.stack([_gradient(model, guide, x[i], y[i], 1.0) for i in order.split(BATCH)]).mean(0)
    tol = 1e-8 if dtype == torch.float64 else 1e-3
    torch.testing.assert_close(torch.stack(parts).mean(0), full, rtol=tol, atol=tol)
    assert not torch.allclose(unscaled, full, rtol=0.01, atol=0.01)


def test_mini_batch_elbo_gradient_is_unbiased_within_monte_carlo_error(device, dtype):
    """Mean over random mini-batches (fresh guide noise each) against the mean over full-batch draws,
    coordinate by coordinate: |z| below a Bonferroni bound at family-wise level 1 %."""
    x, y = _data(device, dtype)
    model = MLPModel(3, (4,))
    guide = AutoNormal(model, init_scale=0.3)
    draws = 200
    g = torch.Generator().manual_seed(2)
    with pyro.get_param_store().scope():
        guide(x, y)
        full = torch.stack([_gradient(model, guide, x, y, 1.0) for _ in range(draws)])
        batches = [torch.randperm(N, generator=g)[:BATCH].to(device) for _ in range(draws)]
        mini = torch.stack([_gradient(model, guide, x[i], y[i], N / BATCH) for i in batches])
        unscaled = torch.stack([_gradient(model, guide, x[i], y[i], 1.0) for i in batches])
    se = ((full.var(0) + mini.var(0)) / draws).sqrt()
    z = (mini.mean(0) - full.mean(0)) / se
    bound = norm.ppf(1 - 0.01 / (2 * z.numel()))
    assert float(z.abs().max()) < bound, f"max |z| = {float(z.abs().max()):.2f} over {z.numel()} coordinates"
    z_unscaled = (unscaled.mean(0) - full.mean(0)) / ((full.var(0) + unscaled.var(0)) / draws).sqrt()
    assert float(z_unscaled.abs().max()) > bound


def test_fit_svi_with_batch_size_runs_on_the_network(device, dtype):
    from probmodels.bnn import BayesianMLP

    x, y = _data(device, dtype)
    est = BayesianMLP((4,), method="svi", batch_size=BATCH, num_steps=200, num_samples=50, svi_options={"tol": 0.0}).fit(x, y)
    assert est.posterior_.attrs["batch_size"] == BATCH
    assert est.posterior_.log_likelihood()["y"].shape == (1, 50, N)


def test_scale_applies_to_the_likelihood_only(device, dtype):
    x, y = _data(device, dtype)
    model = MLPModel(3, (4,))
    trace = pyro.poutine.trace(_ScaleLikelihood(model.observed, N / BATCH)(model)).get_trace(x, y)
    assert trace.nodes["y"]["scale"] == N / BATCH
    assert all(trace.nodes[name]["scale"] == 1.0 for name in ("w0", "b0", "w1", "b1", "noise"))
