"""Posterior: ArviZ groups, log-likelihood, predictive, save/load, and the vectorisation modes."""

import warnings

import numpy as np
import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch

import probmodels as pm
from probmodels.core.density import LogDensity
from probmodels.core.protocol import inspect_model
from probmodels.datasets import eight_schools
from probmodels.demo import eight_schools_model

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az


@pytest.fixture(scope="module")
def schools_fit():
    data = eight_schools()
    posterior = pm.fit_mcmc(
        eight_schools_model, data["sigma"], model_kwargs={"y": data["y"]}, num_chains=2, num_warmup=200,
        num_samples=200, seed=5, progress_bar=False,
    )
    return posterior, data


def test_draws_and_stats_are_chain_by_draw(schools_fit):
    posterior, _ = schools_fit
    assert posterior["mu"].shape == (2, 200)
    assert posterior["theta_trans"].shape == (2, 200, 8)
    assert posterior["theta"].shape == (2, 200, 8)  # deterministic site recorded
    for name in ("diverging", "energy", "tree_depth", "n_steps", "acceptance_rate", "step_size", "lp"):
        assert posterior.sample_stats[name].shape == (2, 200), name
    torch.testing.assert_close(posterior["theta"], posterior["mu"][..., None] + posterior["tau"][..., None] * posterior["theta_trans"])


def test_log_likelihood_is_pointwise_and_exact(schools_fit):
    posterior, data = schools_fit
    ll = posterior.log_likelihood()["y"]
    assert ll.shape == (2, 200, 8)
    expected = dist.Normal(posterior["theta"], data["sigma"]).log_prob(data["y"])
    torch.testing.assert_close(ll, expected)


def test_arviz_groups_and_statistics(schools_fit):
    posterior, _ = schools_fit
    idata = posterior.to_arviz(posterior_predictive=True)
    assert {"posterior", "sample_stats", "log_likelihood", "observed_data", "posterior_predictive"} <= set(idata.groups())
    assert idata.posterior["theta"].dims == ("chain", "draw", "school")
    assert idata.log_likelihood["y"].dims == ("chain", "draw", "school")
    assert idata.posterior_predictive["y"].shape == (2, 200, 8)
    loo, waic = az.loo(idata), az.waic(idata)
    assert np.isfinite(loo.elpd_loo) and 0 < loo.p_loo < 8
    assert np.isfinite(waic.elpd_waic)
    assert az.bfmi(idata).shape == (2,)
    summary = posterior.summary(var_names=["mu", "tau"])
    assert list(summary.index) == ["mu", "tau"] and "r_hat" in summary.columns


def test_replicated_data_for_predictive_checks(schools_fit):
    posterior, _ = schools_fit
    replicated = posterior.predict(seed=1)
    assert replicated["y"].shape == (2, 200, 8)
    # Replicated y spreads around theta with the known standard errors.
    residual = (replicated["y"] - posterior["theta"]) / eight_schools()["sigma"]
    assert abs(float(residual.std()) - 1.0) < 0.05
    assert torch.equal(posterior.predict(seed=1)["y"], replicated["y"])


def line(x, y=None):
    slope = pyro.sample("slope", dist.Normal(x.new_tensor(0.0), 10.0))
    sigma = pyro.sample("sigma", dist.HalfNormal(x.new_tensor(1.0)))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", dist.Normal(slope * x, sigma), obs=y)


def test_predict_on_new_inputs():
    x = torch.linspace(-1, 1, 30, dtype=torch.float64)
    y = 3 * x + 0.1 * torch.randn(30, dtype=torch.float64)
    posterior = pm.fit_mcmc(line, x, y, num_chains=2, num_warmup=200, num_samples=200, progress_bar=False)
    new_x = torch.tensor([0.0, 10.0], dtype=torch.float64)
    out = posterior.predict(new_x, seed=2)
    assert out["y"].shape == (2, 200, 2)
    mean = out["y"].mean(dim=(0, 1))
    assert abs(float(mean[1]) - 30.0) < 1.0 and abs(float(mean[0])) < 0.1
    assert torch.equal(out["y"], posterior.predict(new_x, seed=2)["y"])


def test_save_and_load_bit_identical(schools_fit, tmp_path):
    posterior, _ = schools_fit
    path = posterior.save(tmp_path / "fit.nc")
    loaded = pm.load(path)
    assert loaded.method == posterior.method
    for name, value in posterior.draws.items():
        assert np.array_equal(loaded[name].numpy(), value.numpy()), name
    for name, value in posterior.sample_stats.items():
        assert np.array_equal(loaded.sample_stats[name].numpy(), value.numpy()), name
    assert np.array_equal(loaded.log_likelihood()["y"].numpy(), posterior.log_likelihood()["y"].numpy())
    assert loaded.dims["theta"] == ("school",)
    assert loaded.attrs["num_warmup"] == 200
    assert loaded.attrs["seed"] == 5
    # And a second save of the loaded result is identical again.
    again = pm.load(loaded.save(tmp_path / "again.nc"))
    assert np.array_equal(again["theta"].numpy(), posterior["theta"].numpy())


def test_corrupt_result_files_are_refused(schools_fit, tmp_path):
    posterior, _ = schools_fit
    good = posterior.save(tmp_path / "fit.nc").read_bytes()
    truncated = tmp_path / "truncated.nc"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(pm.ResultFileError, match="truncated"):
        pm.load(truncated)
    pickled = tmp_path / "pickled.nc"
    import pickle

    pickled.write_bytes(pickle.dumps({"mu": [1, 2, 3]}))
    with pytest.raises(pm.ResultFileError, match="could not be read"):
        pm.load(pickled)
    other = tmp_path / "other.nc"
    az.from_dict(posterior={"x": np.zeros((1, 5))}).to_netcdf(other, engine="h5netcdf")
    with pytest.raises(pm.ResultFileError, match="not a probmodels posterior"):
        pm.load(other)
    with pytest.raises(pm.ResultFileError, match="does not exist"):
        pm.load(tmp_path / "missing.nc")


def matmul_regression(X, y):
    """Written with X @ beta: fine for one point, but not vectorisable in a batch plate."""
    beta = pyro.sample("beta", dist.Normal(X.new_zeros(3), 1.0).to_event(1))
    with pyro.plate("data", X.shape[0]):
        pyro.sample("y", dist.Normal(X @ beta, 1.0), obs=y)


@pytest.mark.parametrize("model_name", ["schools", "matmul"])
def test_vectorisation_modes_agree_with_one_point_evaluation(model_name):
    if model_name == "schools":
        data = eight_schools()
        model, args, kwargs = eight_schools_model, (data["sigma"],), {"y": data["y"]}
    else:
        X = torch.randn(10, 3, dtype=torch.float64)
        model, args, kwargs = matmul_regression, (X, X.sum(-1)), {}
    info = inspect_model(model, args, kwargs)
    u = torch.randn(5, info.dim, dtype=torch.float64)
    loop = LogDensity(model, args, kwargs, info, vectorize="loop")(u)
    auto = LogDensity(model, args, kwargs, info, probe=u)
    torch.testing.assert_close(auto(u), loop)
    if model_name == "schools":
        assert auto.mode == "plate"
    else:
        assert auto.mode in ("vmap", "loop")
    lp, grad = auto.value_and_grad(u)
    assert grad.shape == u.shape and torch.isfinite(grad).all()


def test_non_vectorisable_model_still_fits():
    X = torch.randn(30, 3, dtype=torch.float64)
    y = X @ torch.tensor([1.0, -1.0, 0.5], dtype=torch.float64) + torch.randn(30, dtype=torch.float64)
    posterior = pm.fit_mcmc(matmul_regression, X, y, num_chains=2, num_warmup=100, num_samples=100, progress_bar=False)
    assert posterior.attrs["vectorize"] in ("vmap", "loop")
    assert posterior.log_likelihood()["y"].shape == (2, 100, 30)


@pytest.mark.parametrize("guide", ["normal", "mvn", "lowrank", "delta", "laplace"])
def test_every_guide_gives_chain_by_draw_draws(guide):
    data = eight_schools()
    posterior = pm.fit_svi(
        eight_schools_model, data["sigma"], model_kwargs={"y": data["y"]}, guide=guide, num_steps=200,
        num_samples=50, seed=0, progress_bar=False,
    )
    draws = 1 if guide == "delta" else 50
    assert posterior["theta_trans"].shape == (1, draws, 8)
    assert posterior["theta"].shape == (1, draws, 8)
    assert posterior.method == f"svi:{guide}"
    assert len(posterior.attrs["loss"]) == posterior.attrs["num_steps"] <= 200
    assert posterior.log_likelihood()["y"].shape == (1, draws, 8)


def test_svi_leaves_global_state_alone():
    data = eight_schools()
    pyro.param("users_own", torch.tensor(1.0))
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = pm.fit_svi(eight_schools_model, data["sigma"], model_kwargs={"y": data["y"]}, num_steps=50, num_samples=20, seed=9, progress_bar=False)
    assert torch.equal(torch.rand(1), expected_next)
    assert list(pyro.get_param_store().keys()) == ["users_own"]
    b = pm.fit_svi(eight_schools_model, data["sigma"], model_kwargs={"y": data["y"]}, num_steps=50, num_samples=20, seed=9, progress_bar=False)
    assert torch.equal(a["mu"], b["mu"])


def test_minibatch_likelihood_scaling_is_unbiased():
    # Over a partition of the data into batches, the scaled mini-batch log joints average to the full one.
    from probmodels.core.svi import _ScaleLikelihood

    y = torch.randn(12, dtype=torch.float64)

    def model(y):
        mu = pyro.sample("mu", dist.Normal(y.new_tensor(0.0), 1.0))
        with pyro.plate("data", y.shape[0]):
            pyro.sample("y", dist.Normal(mu, 1.0), obs=y)

    def log_joint(fn, data):
        return poutine.trace(poutine.condition(fn, {"mu": torch.tensor(0.3, dtype=torch.float64)})).get_trace(data).log_prob_sum()

    full = log_joint(model, y)
    batches = [log_joint(_ScaleLikelihood(["y"], 12 / 4)(model), y[i : i + 4]) for i in range(0, 12, 4)]
    torch.testing.assert_close(torch.stack(batches).mean(), full)


def test_minibatch_svi_recovers_the_posterior():
    rng = np.random.default_rng(1)
    y = torch.tensor(rng.normal(3.0, 1.0, 400), dtype=torch.float64)

    def model(y):
        mu = pyro.sample("mu", dist.Normal(y.new_tensor(0.0), 10.0))
        with pyro.plate("data", y.shape[0]):
            pyro.sample("y", dist.Normal(mu, 1.0), obs=y)

    posterior = pm.fit_svi(model, y, guide="normal", batch_size=40, num_steps=3000, lr=0.02, lr_decay=0.01, tol=0, num_samples=2000, progress_bar=False)
    exact_sd = (1 / 100 + 400) ** -0.5
    exact_mean = float(y.sum()) / (400 + 1 / 100)
    # Mini-batch noise leaves the guide within a fraction of a posterior sd of the exact answer.
    assert abs(float(posterior["mu"].mean()) - exact_mean) < 0.5 * exact_sd
    assert 0.7 < float(posterior["mu"].std()) / exact_sd < 1.3
    assert posterior.attrs["batch_size"] == 40
