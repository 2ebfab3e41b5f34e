"""bayesian(module): priors on all or chosen layers of a torch module, through the core and the estimator."""

import pytest
import torch

from probmodels import ModelSpecError, fit_svi
from probmodels.bnn import BayesianNetwork, MLPModel, bayesian, predictive


def _net(dtype):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 1)).to(dtype)


def test_all_layers_reproduce_the_mlp_model_at_the_same_weights(device, dtype):
    """The converted module and MLPModel are the same network: equal outputs for a batch of weight draws."""
    net = _net(dtype).to(device)
    model = bayesian(net)
    assert model.random == ["0.weight", "0.bias", "2.weight", "2.bias"]
    g = torch.Generator().manual_seed(0)
    draws = {name: torch.randn((7, *net.state_dict()[name].shape), generator=g).to(device, dtype) for name in model.random}
    x = torch.randn(11, 3, generator=g).to(device, dtype)
    mlp = {"w0": draws["0.weight"].transpose(-1, -2), "b0": draws["0.bias"], "w1": draws["2.weight"].transpose(-1, -2), "b1": draws["2.bias"]}
    torch.testing.assert_close(model.forward(draws, x), MLPModel(3, (5,)).forward(mlp, x))


def test_last_layer_only_keeps_the_body_fixed(device, dtype):
    net = _net(dtype).to(device)
    model = bayesian(net, layers=["2"], prior_mean="init")
    assert model.random == ["2.weight", "2.bias"] and model.n_weights == 6
    x = torch.randn(40, 3, dtype=dtype, device=device)
    y = net(x)[:, 0].detach() + 0.1 * torch.randn(40, dtype=dtype, device=device)
    post = fit_svi(model, x, y, num_steps=150, num_samples=100, tol=0.0, progress_bar=False)
    assert set(post.sites) == {"2.weight", "2.bias", "noise"}
    assert post.log_likelihood()["y"].shape == (1, 100, 40)
    params = {site.name: post.flat(site.name) for site in post.info.latents}
    out = predictive(model, params, x, y)
    assert out.mean.shape == (40,) and bool(torch.isfinite(out.log_density).all())


def test_estimator_surface_for_a_module_classifier(device, dtype):
    net = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3)).to(dtype)
    x = torch.randn(30, 2, dtype=dtype, device=device)
    labels = (x[:, 0] > 0).to(dtype) + (x[:, 1] > 0.5).to(dtype)
    est = BayesianNetwork(net, task="classification", n_classes=3, num_steps=100, num_samples=20, svi_options={"tol": 0.0}).fit(x, labels)
    assert est.predict_proba(x).shape == (30, 3)
    with pytest.raises(ModelSpecError, match="outputs 3 value"):
        BayesianNetwork(net, num_steps=10).fit(x, labels)


def test_conversion_errors():
    net = _net(torch.float64)
    with pytest.raises(ModelSpecError, match="not submodules"):
        bayesian(net, layers=["head"])
    with pytest.raises(ModelSpecError, match="have no parameters"):
        bayesian(net, layers=["1"])
    with pytest.raises(TypeError, match="torch.nn.Module"):
        bayesian(lambda x: x)
    with pytest.raises(ModelSpecError, match="set by the module"):
        BayesianNetwork(net, hidden=(3,))
