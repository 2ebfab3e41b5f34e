"""SparseGPRegression (SVGP): exact identities against the exact GP, recovery, unbiased mini-batch gradients, bad input."""

import math
import warnings

import numpy as np
import pytest
import torch

from probmodels.exceptions import DataError, InferenceError, ModelSpecError, ShapeError
from probmodels.gp import CholeskyJitterWarning, GPRegression, InducingPosterior, SparseGPRegression, make_kernel
from probmodels.gp.ops import log_marginal_likelihood
from probmodels.gp.sparse import svgp_elbo

VALUES = {"outputscale": 0.9, "lengthscale": 0.5, "noise": 0.05}
FIXED = tuple(VALUES)


def _grid_data(n=20, seed=0):
    """Well-separated inputs (K(X, X) has condition number ~10^2), so no jitter is ever needed."""
    X = np.linspace(-3, 3, n)[:, None]
    y = np.sin(X[:, 0]) + 0.1 * np.random.default_rng(seed).normal(size=n)
    return X, y


def _exact_fit(X, y, **kwargs):
    """SVGP with Z = X, fixed hyperparameters and one full-batch natural step of size 1: the optimal q."""
    options = dict(hyperparameters=VALUES, fixed=FIXED, num_inducing=len(y), batch_size=len(y), natural_step=1.0,
                   max_epochs=3, jitter=0.0, standardize_x=False, standardize_y=False)
    options.update(kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CholeskyJitterWarning)
        return SparseGPRegression(**options).fit(X, y)


def test_titsias_bound_with_z_equal_x_is_the_exact_log_marginal_likelihood():
    # Titsias (2009): the collapsed bound is log N(y | 0, Q + s2 I) - tr(K - Q) / (2 s2); with Z = X, Q = K and the
    # trace vanishes, and the uncollapsed ELBO at the optimal q equals the collapsed bound. All are float64 identities,
    # so the only error is rounding, amplified by cond(K + s2 I) ~ 1e2: 1e-8 relative is a wide margin.
    X, y = _grid_data()
    svgp = _exact_fit(X, y)
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    kernel = make_kernel("rbf")
    values = {"outputscale": torch.tensor(VALUES["outputscale"]), "lengthscale": torch.tensor([VALUES["lengthscale"]])}
    cov = kernel.matrix(values, Xt, Xt) + VALUES["noise"] * torch.eye(len(y), dtype=torch.float64)
    exact, _ = log_marginal_likelihood(cov, yt)
    assert svgp.collapsed_elbo() == pytest.approx(float(exact), rel=1e-8, abs=1e-8)
    assert svgp.elbo_ == pytest.approx(float(exact), rel=1e-8, abs=1e-8)


def test_elbo_at_the_optimal_q_equals_the_collapsed_bound_below_the_evidence_for_fewer_inducing_points():
    X, y = _grid_data(40)
    svgp = _exact_fit(X, y, num_inducing=8, learn_inducing=False, inducing_init="random")
    exact = GPRegression(hyperparameters=VALUES, fixed=FIXED, standardize_x=False, standardize_y=False).fit(X, y)
    assert svgp.elbo_ == pytest.approx(svgp.collapsed_elbo(), rel=1e-8)
    assert svgp.elbo_ < exact.log_marginal_likelihood()


def test_predictions_with_z_equal_x_match_exact_gp_regression():
    # With Z = X and the optimal q, q(f) is the exact posterior: mean and covariance agree up to rounding.
    X, y = _grid_data()
    svgp = _exact_fit(X, y)
    exact = GPRegression(hyperparameters=VALUES, fixed=FIXED, standardize_x=False, standardize_y=False).fit(X, y)
    Xs = np.linspace(-4, 4, 17)
    for observation in (False, True):
        mean, std = svgp.predict(Xs, return_std=True, observation=observation)
        ref_mean, ref_std = exact.predict(Xs, return_std=True, observation=observation)
        torch.testing.assert_close(mean, ref_mean, rtol=0, atol=1e-10)
        torch.testing.assert_close(std, ref_std, rtol=0, atol=1e-8)
    _, cov = svgp.predict(Xs, return_cov=True)
    torch.testing.assert_close(cov, exact.predict(Xs, return_cov=True)[1], rtol=0, atol=1e-10)


def test_adam_on_q_approaches_the_exact_posterior_within_its_kl_gap():
    # Without natural gradients Adam learns q. For a Gaussian likelihood ELBO(q) = collapsed bound - KL(q || q*), and
    # KL(q || q*) >= (m - m*)^T S*^{-1} (m - m*) / 2, so by Cauchy-Schwarz the predictive mean is off by at most
    # sd*(x) sqrt(2 KL) at every x: a bound the fit must meet whatever its convergence.
    X, y = _grid_data()
    svgp = SparseGPRegression(hyperparameters=VALUES, fixed=FIXED, num_inducing=len(y), batch_size=len(y),
                              natural_gradient=False, lr=0.1, max_epochs=400, tol=1e-9, standardize_x=False,
                              standardize_y=False).fit(X, y)
    exact = GPRegression(hyperparameters=VALUES, fixed=FIXED, standardize_x=False, standardize_y=False).fit(X, y)
    Xs = np.linspace(-3, 3, 13)
    mean, std = svgp.predict(Xs, return_std=True)
    ref_mean, ref_std = exact.predict(Xs, return_std=True)
    kl = svgp.collapsed_elbo() - svgp.elbo_
    assert 0 <= kl < 1e-4
    assert bool(((mean - ref_mean).abs() <= ref_std * math.sqrt(2 * kl) + 1e-12).all())
    assert float((std - ref_std).abs().max()) < 1e-3


def test_minibatch_elbo_gradients_average_to_the_full_batch_gradient():
    # The estimate (n / b) sum_batch E_q log p - KL is linear in the per-point terms, so over a partition into equal
    # batches the estimates, and their gradients, average to the full-data ELBO exactly (up to rounding).
    rng = np.random.default_rng(3)
    n, m, b = 48, 6, 12
    X = torch.as_tensor(rng.uniform(-2, 2, (n, 2)))
    y = torch.as_tensor(rng.normal(size=n))
    kernel = make_kernel("rbf", ard=True)
    logs = {"outputscale": torch.tensor(0.1), "lengthscale": torch.tensor([0.2, -0.3]), "noise": torch.tensor(-1.5)}
    logs = {k: v.to(torch.float64).requires_grad_() for k, v in logs.items()}
    Z = torch.as_tensor(rng.uniform(-2, 2, (m, 2))).requires_grad_()
    mean = torch.as_tensor(rng.normal(size=m)).requires_grad_()
    raw = torch.as_tensor(np.tril(0.3 * rng.normal(size=(m, m)), -1) + np.eye(m)).requires_grad_()
    leaves = [*logs.values(), Z, mean, raw]

    def gradient(index):
        q = InducingPosterior(mean, torch.tril(raw))
        elbo = svgp_elbo(kernel, {k: v.exp() for k, v in logs.items()}, Z, q, X[index], y[index], num_data=n)
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(elbo, leaves)])

    full = gradient(torch.arange(n))
    batches = torch.randperm(n, generator=torch.Generator().manual_seed(0)).reshape(n // b, b)
    average = torch.stack([gradient(index) for index in batches]).mean(0)
    torch.testing.assert_close(average, full, rtol=1e-10, atol=1e-10)


def test_minibatch_training_recovers_a_smooth_function():
    # n = 1000 points with noise sd 0.2 and m = 20 inducing points on [-3, 3]: the posterior mean's error at an input
    # is about the noise sd over sqrt(points per lengthscale) ~ 0.2 / sqrt(100) = 0.02; 0.06 (three times) is the bound.
    # The noise variance estimate has relative sd ~ sqrt(2 / n) = 0.045; 0.2 is four of those.
    rng = np.random.default_rng(1)
    n, noise_sd = 1000, 0.2
    X = rng.uniform(-3, 3, (n, 1))
    f = lambda x: np.sin(2 * x) + 0.3 * x
    y = f(X[:, 0]) + noise_sd * rng.normal(size=n)
    svgp = SparseGPRegression(num_inducing=20, batch_size=250, lr=0.1, natural_step=0.5, tol=1e-3, seed=0).fit(X, y)
    assert svgp.converged_
    Xs = np.linspace(-2.9, 2.9, 100)
    rmse = float(np.sqrt(np.mean((svgp.predict(Xs).numpy() - f(Xs)) ** 2)))
    assert rmse < 3 * noise_sd / math.sqrt(100)
    noise = float(svgp.hyperparameters_["noise"]) * svgp.scaler_.y_scale**2
    assert noise == pytest.approx(noise_sd**2, rel=0.2)
    assert svgp.inducing_points_.shape == (20, 1)
    assert svgp.elbo_ == pytest.approx(svgp.collapsed_elbo(), rel=1e-9)


def test_nan_during_training_raises_an_inference_error_naming_the_step():
    # Adam's first step moves every log-hyperparameter by about lr = 1e6: the kernel over- or underflows at step 2.
    X, y = _grid_data()
    svgp = SparseGPRegression(lr=1e6, batch_size=5)
    with pytest.raises(InferenceError, match=r"failed at step 2 \(epoch 1\).*Lower lr"):
        svgp.fit(X, y)


@pytest.mark.parametrize(
    "X, y, error, match",
    [
        ([[0.0], [np.nan], [1.0]], [0.0, 1.0, 2.0], DataError, "'X' contains 1 non-finite"),
        ([[0.0], [1.0], [2.0]], [0.0, np.inf, 2.0], DataError, "'y' contains 1 non-finite"),
        ([[0.0], [1.0], [2.0]], [0.0, 1.0], ShapeError, "X has 3 rows but y has 2"),
    ],
)
def test_bad_data_raises_with_the_argument_named(X, y, error, match):
    with pytest.raises(error, match=match):
        SparseGPRegression().fit(X, y)


@pytest.mark.parametrize("name", ["num_inducing", "batch_size", "max_epochs"])
def test_counts_below_one_are_refused(name):
    with pytest.raises(ModelSpecError, match=f"{name} must be >= 1.*e.g. {name}="):
        SparseGPRegression(**{name: 0})


@pytest.mark.parametrize("kwargs, match", [({"natural_step": 0.0}, "natural_step"), ({"jitter": -1.0}, "jitter"),
                                           ({"inducing_init": "grid"}, "inducing_init")])
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(ModelSpecError, match=match):
        SparseGPRegression(**kwargs)


def test_wrong_feature_count_at_predict_and_in_inducing_points():
    X, y = _grid_data()
    svgp = _exact_fit(X, y)
    with pytest.raises(ShapeError, match="X has 2 feature"):
        svgp.predict(np.zeros((3, 2)))
    with pytest.raises(ShapeError, match="inducing_points has 2 feature"):
        SparseGPRegression(inducing_points=np.zeros((4, 2))).fit(X, y)


def test_use_before_fit_says_to_call_fit():
    with pytest.raises(ValueError, match=r"call fit\(X, y\) first"):
        SparseGPRegression().predict(np.zeros((2, 1)))
