"""BayesianMLP end to end: exact conjugate oracle, predictive chunking, uncertainty
decomposition, classifiers, ensembles, diagnostics hand-off and bad input."""

import numpy as np
import pytest
import torch
from mcse import z_threshold
from scipy.stats import norm

from probmodels import DataError, ModelSpecError, NotFittedError, ShapeError
from probmodels.bnn import BayesianMLP, MLPModel, predictive, validation_split
from probmodels.diagnostics import complexity

SIGMA = 0.5


def _linear_data(device, dtype, n=30):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(n, 2, generator=g).to(device, dtype)
    y = x @ torch.tensor([1.0, -0.5], dtype=dtype, device=device) + 0.3 + SIGMA * torch.randn(n, generator=g).to(device, dtype)
    return x, y


def _conjugate(x, y, x_new):
    """Exact posterior predictive of Bayesian linear regression with N(0, 1) weights and known noise."""
    phi = torch.cat([x, torch.ones_like(x[:, :1])], 1)
    precision = torch.eye(3, dtype=x.dtype, device=x.device) + phi.T @ phi / SIGMA**2
    cov = torch.linalg.inv(precision)
    mean = cov @ phi.T @ y / SIGMA**2
    phi_new = torch.cat([x_new, torch.ones_like(x_new[:, :1])], 1)
    return phi_new @ mean, ((phi_new @ cov) * phi_new).sum(1)


def test_laplace_on_a_linear_network_matches_the_conjugate_predictive(device, dtype):
    """No hidden layer and fixed noise: the posterior is Gaussian, so the Laplace draws are exact and the
    predictive mean, epistemic variance and interval match the closed form within Monte Carlo error."""
    x, y = _linear_data(device, dtype)
    x_new = torch.linspace(-2, 2, 5, dtype=dtype, device=device)[:, None].repeat(1, 2)
    samples = 4000
    est = BayesianMLP((), noise=SIGMA, method="laplace", standardize_x=False, standardize_y=False, num_samples=samples,
                      lr=0.05, num_steps=1000, svi_options={"lr_decay": 1e-3, "tol": 0.0}).fit(x, y)
    out = est.predictive(x_new, level=0.9)
    mean, var = _conjugate(x, y, x_new)
    z_mean = (out.mean - mean) / (var / samples).sqrt()
    z_var = (out.epistemic - var) / (var * (2.0 / samples) ** 0.5)
    threshold = z_threshold(2 * len(mean))
    assert float(z_mean.abs().max()) < threshold
    assert float(z_var.abs().max()) < threshold
    torch.testing.assert_close(out.aleatoric, torch.full_like(mean, SIGMA**2))
    half = float(norm.ppf(0.95)) * (var + SIGMA**2).sqrt()
    torch.testing.assert_close(out.upper - out.lower, 2 * half, rtol=0.05, atol=0.0)


def test_chunked_predictive_equals_the_unchunked_one(device, dtype):
    model = MLPModel(3, (8,), task="regression")
    g = torch.Generator().manual_seed(0)
    params = {"w0": torch.randn(37, 3, 8, generator=g), "b0": torch.randn(37, 8, generator=g),
              "w1": torch.randn(37, 8, 1, generator=g), "b1": torch.randn(37, 1, generator=g),
              "noise": torch.rand(37, generator=g) + 0.1}
    params = {k: v.to(device, dtype) for k, v in params.items()}
    x = torch.randn(53, 3, generator=g).to(device, dtype)
    y = torch.randn(53, generator=g).to(device, dtype)
    whole = predictive(model, params, x, y)
    chunked = predictive(model, params, x, y, max_elements=64)
    for a, b in zip(whole, chunked):
        torch.testing.assert_close(a, b)
    outputs = model.forward(params, x)[..., 0]
    torch.testing.assert_close(whole.mean, outputs.mean(0))
    torch.testing.assert_close(whole.total, whole.epistemic + whole.aleatoric)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_classifier_probabilities_and_mutual_information(device, dtype, n_classes):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(60, 2, generator=g).to(device, dtype)
    labels = (x[:, 0] > 0).to(dtype) + (n_classes == 3) * (x[:, 1] > 1).to(dtype)
    est = BayesianMLP((6,), task="classification", method="svi", num_steps=200, num_samples=200,
                      svi_options={"tol": 0.0}).fit(x, labels)
    probs = est.predict_proba(x)
    assert probs.shape == (60, n_classes)
    torch.testing.assert_close(probs.sum(1), torch.ones(60, dtype=dtype, device=device))
    parts = est.uncertainty(x)
    assert bool((parts["epistemic"] >= 0).all()) and bool((parts["epistemic"] > 0).any())
    torch.testing.assert_close(parts["total"], parts["epistemic"] + parts["aleatoric"])
    assert bool((parts["total"] <= np.log(n_classes) + 1e-9).all())
    scores = est.score(x, labels)
    assert scores["accuracy"] > float(torch.bincount(labels.long()).max()) / 60
    assert 0.0 <= scores["ece"] <= 1.0
    assert est.log_likelihood().shape == (1, 200, 60)


def test_map_has_no_epistemic_uncertainty_and_an_ensemble_has_some(device, dtype):
    x, y = _linear_data(device, dtype)
    common = dict(num_steps=100, early_stopping=False, svi_options={"tol": 0.0})
    single = BayesianMLP((4,), method="map", **common).fit(x, y)
    assert single.posterior_.num_chains == 1 and single.posterior_.num_draws == 1
    assert float(single.uncertainty(x)["epistemic"].abs().max()) == 0.0
    ensemble = BayesianMLP((4,), method="ensemble", n_members=3, **common).fit(x, y)
    assert ensemble.posterior_.num_chains == 3
    assert float(ensemble.uncertainty(x)["epistemic"].min()) > 0.0


def test_early_stopping_keeps_the_state_of_the_best_held_out_score(device, dtype):
    """Each member scores its held-out rows every eval_every steps and keeps its best state: recomputing
    the held-out log density of the kept weights gives the best score of the trace, at the kept step."""
    x, y = _linear_data(device, dtype, n=60)
    est = BayesianMLP((8,), method="ensemble", n_members=2, num_steps=300, lr=0.05, eval_every=10, patience=60,
                      standardize_x=False, standardize_y=False).fit(x, y)
    post = est.posterior_
    assert post.num_chains == 2 and post.attrs["early_stopping"]
    for member, trace in enumerate(est.early_stopping_scores_):
        assert all(step % 10 == 0 for step in trace)
        best_step = max(trace, key=trace.get)
        assert post.attrs["num_steps"][member] == best_step
        # stopped once patience steps passed without improvement (or at num_steps)
        assert max(trace) == min(best_step + 60, 300)
        _, val = validation_split(60, 0.1, member, x.device)
        params = {site.name: post[site.name][member] for site in post.info.latents}
        again = float(predictive(est.model_, params, x[val], y[val]).log_density.mean())
        assert again == pytest.approx(trace[best_step], rel=1e-9)
    assert est.log_likelihood().shape == (2, 1, 60)


@pytest.mark.filterwarnings("ignore:.*Pareto k-hat")
def test_pointwise_log_likelihood_reaches_the_diagnostics_layer(device, dtype):
    x, y = _linear_data(device, dtype)
    est = BayesianMLP((4,), method="svi", num_steps=150, num_samples=300, svi_options={"tol": 0.0}).fit(x, y)
    assert est.log_likelihood().shape == (1, 300, 30)
    assert est.posterior_.predict()["y"].shape == (1, 300, 30)
    assert "log_likelihood" in est.to_arviz().groups()
    c = complexity(est.posterior_)
    assert 0.0 < c.p_loo < est.model_.n_weights + 1


def test_hierarchical_prior_fits_and_exposes_layer_scales(device, dtype):
    x, y = _linear_data(device, dtype)
    est = BayesianMLP((4,), prior="hierarchical", method="svi", num_steps=100, num_samples=50, svi_options={"tol": 0.0}).fit(x, y)
    assert {"tau0", "tau1", "w0_raw", "b1_raw"} <= set(est.posterior_.sites)
    assert bool((est.posterior_["tau0"] > 0).all())
    assert est.predict(x).shape == (30,)


# ----------------------------------------------------------------- bad input
def test_mismatched_rows_say_both_counts():
    x = np.zeros((40, 2))
    with pytest.raises(ShapeError, match="y has 30 rows but X has 40; pass one target per row of X"):
        BayesianMLP().fit(x, np.zeros(30))


@pytest.mark.parametrize("where", ["X", "y"])
def test_nan_is_refused_with_its_location(where):
    x, y = np.random.default_rng(0).normal(size=(20, 2)), np.zeros(20)
    if where == "X":
        x[3, 1] = np.nan
    else:
        y[3] = np.nan
    with pytest.raises(DataError, match=f"{where} contains 1 NaN"):
        BayesianMLP().fit(x, y)


def test_labels_out_of_range_for_n_classes():
    x = np.zeros((5, 2))
    with pytest.raises(DataError, match=r"labels range over \[0, 3\] but must lie in \[0, 2\] for n_classes=3"):
        BayesianMLP(task="classification", n_classes=3).fit(x, [0, 1, 2, 3, 1])
    with pytest.raises(DataError, match="must be integers"):
        BayesianMLP(task="classification").fit(x, [0, 1, 0.5, 1, 0])
    with pytest.raises(DataError, match="must lie in 0 or more"):
        BayesianMLP(task="classification").fit(x, [0, 1, -1, 1, 0])


def test_specification_and_usage_errors(device, dtype):
    with pytest.raises(ModelSpecError, match="method must be one of"):
        BayesianMLP(method="hmc")
    with pytest.raises(ModelSpecError, match="one per layer"):
        MLPModel(3, (5,), prior_scale=[1.0, 1.0, 1.0])
    with pytest.raises(ModelSpecError, match="activation"):
        MLPModel(3, (5,), activation="softsign")
    with pytest.raises(NotFittedError, match="call fit"):
        BayesianMLP().predict(np.zeros((2, 2)))
    x, y = _linear_data(device, dtype)
    est = BayesianMLP((3,), num_steps=50, num_samples=10, svi_options={"tol": 0.0}).fit(x, y)
    with pytest.raises(ShapeError, match="X has 3 features but the network was fitted with 2"):
        est.predict(torch.zeros(4, 3, dtype=dtype, device=device))
    with pytest.raises(ModelSpecError, match="predict_proba is for classifiers"):
        est.predict_proba(x)
