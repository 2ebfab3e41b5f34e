"""GPRegression against scikit-learn's GaussianProcessRegressor as the oracle."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process import kernels as sk

from probmodels.exceptions import ConvergenceWarning
from probmodels.gp import CholeskyJitterWarning, GPRegression

FIXED = ("outputscale", "lengthscale", "noise")


def _data(n, d, seed=0, scale=1.0, offset=0.0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-3, 3, size=(n, d))
    y = np.sin(X[:, 0]) + 0.5 * np.cos(2 * X[:, -1]) + 0.1 * rng.normal(size=n)
    return X, scale * y + offset


def _sk_rbf(outputscale=1.0, lengthscale=1.0, noise=0.1):
    return sk.ConstantKernel(outputscale) * sk.RBF(lengthscale) + sk.WhiteKernel(noise)


@pytest.mark.parametrize("normalize", [False, True])
def test_predictions_and_lml_match_sklearn_at_fixed_hyperparameters(normalize):
    X, y = _data(80, 2, scale=30.0, offset=100.0)
    Xs = np.random.default_rng(9).uniform(-3, 3, size=(30, 2))
    values = {"outputscale": 0.9, "lengthscale": 1.3, "noise": 0.05}
    ref = GaussianProcessRegressor(_sk_rbf(0.9, 1.3, 0.05), optimizer=None, alpha=0.0, normalize_y=normalize).fit(X, y)
    gp = GPRegression("rbf", hyperparameters=values, fixed=FIXED, standardize_x=False, standardize_y=normalize).fit(X, y)
    mean, std = gp.predict(Xs, return_std=True, observation=True)
    ref_mean, ref_std = ref.predict(Xs, return_std=True)
    np.testing.assert_allclose(mean.numpy(), ref_mean, rtol=1e-8)
    np.testing.assert_allclose(std.numpy(), ref_std, rtol=1e-8)
    _, cov = gp.predict(Xs, return_cov=True, observation=True)
    np.testing.assert_allclose(cov.numpy(), ref.predict(Xs, return_cov=True)[1], rtol=1e-8, atol=1e-10)
    # sklearn's normalize_y reports the evidence of the standardised targets; ours is in the units of y.
    jacobian = -len(y) * np.log(np.std(y)) if normalize else 0.0
    assert abs(gp.log_marginal_likelihood() / (ref.log_marginal_likelihood_value_ + jacobian) - 1) < 1e-12


def test_latent_variance_is_observation_variance_minus_noise():
    X, y = _data(40, 1)
    gp = GPRegression("matern52", hyperparameters={"noise": 0.2}, fixed=("noise",)).fit(X, y)
    Xs = np.linspace(-3, 3, 7)
    _, latent = gp.predict(Xs, return_std=True)
    _, observed = gp.predict(Xs, return_std=True, observation=True)
    torch.testing.assert_close(observed**2 - latent**2, torch.full((7,), 0.2 * gp.scaler_.y_scale**2), rtol=1e-10, atol=0)


@pytest.mark.parametrize("d, ard", [(1, False), (3, True)])
def test_type2_ml_reaches_sklearn_optimum_from_the_same_start(d, ard):
    X, y = _data(150, d, seed=d)
    ls0 = np.ones(d) if ard else 1.0
    ref = GaussianProcessRegressor(_sk_rbf(1.0, ls0, 0.1), alpha=0.0).fit(X, y)
    gp = GPRegression("rbf", ard=ard, standardize_x=False, standardize_y=False).fit(X, y)
    assert gp.converged_
    ours, theirs = gp.log_marginal_likelihood() / len(y), ref.log_marginal_likelihood_value_ / len(y)
    assert ours >= theirs - 1e-5, (ours, theirs, ref.kernel_, gp.hyperparameters_)


def test_restarts_reach_at_least_sklearns_best_of_five():
    # A periodic signal: the period's likelihood has many local optima.
    rng = np.random.default_rng(3)
    X = rng.uniform(0, 10, size=(60, 1))
    y = np.sin(2 * np.pi * X[:, 0] / 1.3) + 0.2 * rng.normal(size=60)
    kernel = sk.ConstantKernel(1.0) * sk.ExpSineSquared(1.0, 1.0) + sk.WhiteKernel(0.1)
    ref = GaussianProcessRegressor(kernel, alpha=0.0, n_restarts_optimizer=4, random_state=0).fit(X, y)
    gp = GPRegression("periodic", standardize_x=False, standardize_y=False, n_restarts=9, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (ConvergenceWarning, CholeskyJitterWarning))
        gp.fit(X, y)
    assert gp.log_marginal_likelihood() / 60 >= ref.log_marginal_likelihood_value_ / 60 - 1e-5


def test_input_standardisation_is_undone_in_predictions():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(70, 2)) * np.array([100.0, 0.01]) + np.array([5e3, -2.0])
    y = np.sin(X[:, 0] / 100) + np.cos(X[:, 1] / 0.01) + 0.05 * rng.normal(size=70)
    ls = np.array([0.7, 1.4])
    gp = GPRegression("rbf", ard=True, hyperparameters={"outputscale": 1.1, "lengthscale": ls, "noise": 0.03}, fixed=FIXED).fit(X, y)
    sd_x, sd_y = X.std(0), y.std()
    # The same model in original units: lengthscales times the feature sds, variances times var(y).
    kernel = sk.ConstantKernel(1.1 * sd_y**2) * sk.RBF(ls * sd_x) + sk.WhiteKernel(0.03 * sd_y**2)
    ref = GaussianProcessRegressor(kernel, optimizer=None, alpha=0.0).fit(X, y - y.mean())
    Xs = X[:15] + rng.normal(size=(15, 2)) * np.array([10.0, 0.001])
    mean, std = gp.predict(Xs, return_std=True, observation=True)
    ref_mean, ref_std = ref.predict(Xs, return_std=True)
    np.testing.assert_allclose(mean.numpy(), ref_mean + y.mean(), rtol=1e-8)
    np.testing.assert_allclose(std.numpy(), ref_std, rtol=1e-8)


def test_unscaled_targets_fit_as_well_as_sklearn_normalize_y():
    X, y = _data(200, 1, seed=5, scale=5e4, offset=2e5)
    Xtest, ytest = _data(200, 1, seed=6, scale=5e4, offset=2e5)
    ref = GaussianProcessRegressor(_sk_rbf(), alpha=0.0, normalize_y=True).fit(X, y)
    gp = GPRegression("rbf").fit(X, y)
    rmse = lambda pred: float(np.sqrt(np.mean((np.asarray(pred) - ytest) ** 2)) / np.std(ytest))  # noqa: E731
    assert rmse(gp.predict(Xtest)) <= rmse(ref.predict(Xtest)) + 1e-3
    assert gp.score(Xtest, ytest) == pytest.approx(1 - rmse(gp.predict(Xtest)) ** 2, rel=1e-10)


def test_sample_y_moments_match_predictive_by_monte_carlo_error():
    X, y = _data(30, 1)
    gp = GPRegression("rbf").fit(X, y)
    Xs = np.linspace(-3, 3, 4)
    draws = gp.sample_y(Xs, 20000, seed=1, observation=True)
    mean, cov = gp.predict(Xs, return_cov=True, observation=True)
    sd = cov.diagonal().sqrt()
    z_mean = (draws.mean(0) - mean) / (sd / np.sqrt(20000))
    assert float(z_mean.abs().max()) < 4.0
    # sd of a sample variance of normal draws: var * sqrt(2 / (n - 1)).
    z_var = (draws.var(0) - sd**2) / (sd**2 * np.sqrt(2 / 19999))
    assert float(z_var.abs().max()) < 4.0
    assert gp.sample_y(Xs, 3, seed=7).equal(gp.sample_y(Xs, 3, seed=7))


def test_credible_band_is_mean_plus_minus_normal_quantile():
    X, y = _data(30, 1)
    gp = GPRegression("matern32").fit(X, y)
    Xs = np.linspace(-4, 4, 9)
    lower, upper = gp.predict_interval(Xs, prob=0.9)
    mean, std = gp.predict(Xs, return_std=True)
    torch.testing.assert_close(lower, mean - 1.6448536269514722 * std, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(upper, mean + 1.6448536269514722 * std, rtol=1e-9, atol=1e-9)


def test_duplicate_inputs_with_zero_noise_interpolate_with_a_jitter_warning():
    X = np.array([0.0, 0.0, 1.0, 2.0, 2.0, 3.0])
    y = np.array([1.0, 1.0, 0.5, -0.2, -0.2, 0.3])
    gp = GPRegression("rbf", hyperparameters={"noise": 0.0}, fixed=("noise",))
    with pytest.warns(CholeskyJitterWarning):
        gp.fit(X, y)
    np.testing.assert_allclose(gp.predict(X).numpy(), y, atol=1e-5)


def test_map_with_a_strong_prior_pulls_the_lengthscale():
    import pyro.distributions as dist

    X, y = _data(40, 1)
    prior = dist.LogNormal(torch.tensor(np.log(5.0)), torch.tensor(0.01))
    ml = GPRegression("rbf").fit(X, y)
    mapped = GPRegression("rbf", method="map", priors={"lengthscale": prior}).fit(X, y)
    assert abs(float(mapped.hyperparameters_["lengthscale"]) - 5.0) < 0.2 < abs(float(ml.hyperparameters_["lengthscale"]) - 5.0)
    assert mapped.log_marginal_likelihood() < ml.log_marginal_likelihood()


def test_adam_reaches_the_lbfgs_optimum():
    X, y = _data(60, 1)
    lbfgs = GPRegression("rbf").fit(X, y)
    adam = GPRegression("rbf", optimizer="adam", max_iter=3000, lr=0.05, tol=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        adam.fit(X, y)
    assert adam.log_marginal_likelihood() >= lbfgs.log_marginal_likelihood() - 1e-3


def test_lml_gradient_is_zero_at_the_optimum_and_matches_finite_differences():
    X, y = _data(50, 2)
    gp = GPRegression("rbf", ard=True).fit(X, y)
    value, grad = gp.log_marginal_likelihood(eval_gradient=True)
    assert value == pytest.approx(gp.log_marginal_likelihood(), rel=1e-14)
    assert max(float(g.abs().max()) for g in grad.values()) < 1e-4
    base = {k: v.clone() for k, v in gp.hyperparameters_.items()}
    point = dict(base, noise=base["noise"] * 2)
    _, grad = gp.log_marginal_likelihood(point, eval_gradient=True)
    h = 1e-6
    plus = gp.log_marginal_likelihood(dict(point, noise=point["noise"] * np.exp(h)))
    minus = gp.log_marginal_likelihood(dict(point, noise=point["noise"] * np.exp(-h)))
    assert float(grad["noise"]) == pytest.approx((plus - minus) / (2 * h), rel=1e-6)


def test_follows_float32_data_and_keeps_float64_otherwise():
    X, y = _data(30, 1)
    assert GPRegression().fit(X, y).predict(X[:3]).dtype == torch.float64
    fitted = GPRegression(hyperparameters={"lengthscale": 0.3}).fit(torch.tensor(X, dtype=torch.float32), torch.tensor(y, dtype=torch.float32))
    assert fitted.predict(X[:3]).dtype == torch.float32


def test_subset_warm_start_reaches_the_same_optimum_with_fewer_full_evaluations(monkeypatch):
    """Above 2 x warm_start_size points every start is first optimised on a subset; the full-data optimum is unchanged."""
    X, y = _data(900, 2, seed=4)
    full_sizes, subset_sizes = [], []
    original = GPRegression._objective

    def counted(self, vector, X=None, y=None):
        full_sizes.append(X is None)
        if X is not None:
            subset_sizes.append(X.shape[0])
        return original(self, vector, X, y)

    monkeypatch.setattr(GPRegression, "_objective", counted)
    direct = GPRegression("rbf", ard=True, warm_start_size=None).fit(X, y)
    direct_full = sum(full_sizes)
    full_sizes.clear()
    subset_sizes.clear()
    warm = GPRegression("rbf", ard=True, warm_start_size=200).fit(X, y)
    assert not all(full_sizes) and sum(full_sizes) < direct_full
    assert sorted(set(subset_sizes)) == [200, 400]  # nested subsets, doubling while within half the data
    assert direct.converged_ and warm.converged_
    assert warm.log_marginal_likelihood() / 900 == pytest.approx(direct.log_marginal_likelihood() / 900, abs=1e-8)
    full_sizes.clear()
    GPRegression("rbf", warm_start_size=500).fit(X, y)
    assert all(full_sizes)  # 900 <= 2 x 500: no warm start


def test_the_training_factor_reused_from_the_optimiser_equals_a_fresh_factorisation(monkeypatch):
    import probmodels.gp.regression as regression

    refactorised = []
    original = regression.factorize
    monkeypatch.setattr(regression, "factorize", lambda *a, **k: refactorised.append(1) or original(*a, **k))
    X, y = _data(120, 2, seed=6)
    gp = GPRegression("matern32", ard=True).fit(X, y)
    assert not refactorised  # the optimum was the last point evaluated, so its factor was kept
    cov = gp.model_.covariance(gp.draws_, gp.X_train_)
    fresh = torch.linalg.cholesky(cov)
    torch.testing.assert_close(gp.factor.chol, fresh, rtol=0, atol=1e-12)
    torch.testing.assert_close(gp.factor.alpha, torch.cholesky_solve(gp.y_train_[None, :, None], fresh)[..., 0], rtol=1e-10, atol=1e-12)
    assert gp.factor.chol.shape == (1, 120, 120) and not hasattr(gp, "_last_full_factor")
