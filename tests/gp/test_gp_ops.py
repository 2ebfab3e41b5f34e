"""Kernels and exact GP algebra against scikit-learn and GPyTorch as oracles."""

import math
import warnings

import gpytorch
import numpy as np
import pytest
import torch
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process import kernels as sk

from probmodels.exceptions import InferenceError
from probmodels.gp import (
    RBF,
    CholeskyJitterWarning,
    Linear,
    Matern,
    Periodic,
    RationalQuadratic,
    Scale,
    log_marginal_likelihood,
    make_kernel,
    masked_log_marginal_likelihood,
)
from probmodels.gp.ops import factorize, jittered_cholesky, predictive_moments

T = lambda v: torch.as_tensor(v, dtype=torch.float64)  # noqa: E731

# (probmodels kernel name, probmodels hyperparameters, equivalent scikit-learn kernel)
KERNEL_CASES = {
    "rbf": ("rbf", {"outputscale": 1.7, "lengthscale": [0.8]}, sk.ConstantKernel(1.7) * sk.RBF(0.8)),
    "matern12": ("matern12", {"outputscale": 0.6, "lengthscale": [1.3]}, sk.ConstantKernel(0.6) * sk.Matern(1.3, nu=0.5)),
    "matern32": ("matern32", {"outputscale": 1.1, "lengthscale": [0.7]}, sk.ConstantKernel(1.1) * sk.Matern(0.7, nu=1.5)),
    "matern52": ("matern52", {"outputscale": 2.0, "lengthscale": [1.9]}, sk.ConstantKernel(2.0) * sk.Matern(1.9, nu=2.5)),
    "rq": ("rq", {"outputscale": 0.9, "lengthscale": [1.2], "alpha": 0.4}, sk.ConstantKernel(0.9) * sk.RationalQuadratic(1.2, 0.4)),
    "periodic": (
        "periodic", {"outputscale": 1.3, "lengthscale": [0.9], "period": 2.5},
        sk.ConstantKernel(1.3) * sk.ExpSineSquared(0.9, 2.5),
    ),
    "linear": ("linear", {"outputscale": 0.5}, sk.ConstantKernel(0.5) * sk.DotProduct(0.0, sigma_0_bounds="fixed")),
    "sum": (
        "rbf + linear", {"k0.outputscale": 1.2, "k0.lengthscale": [0.6], "k1.outputscale": 0.3},
        sk.ConstantKernel(1.2) * sk.RBF(0.6) + sk.ConstantKernel(0.3) * sk.DotProduct(0.0, sigma_0_bounds="fixed"),
    ),
    "product": (
        "rbf * periodic", {"outputscale": 1.4, "f0.lengthscale": [2.1], "f1.lengthscale": [0.8], "f1.period": 1.7},
        sk.ConstantKernel(1.4) * (sk.RBF(2.1) * sk.ExpSineSquared(0.8, 1.7)),
    ),
}


def _params(kernel, d, values, batch=()):
    out = {}
    for h in kernel.hyperparameters(d):
        v = T(values[h.name])
        out[h.name] = v.reshape(-1).expand(math.prod(h.shape)).reshape(h.shape).expand(batch + h.shape) if v.numel() == 1 else v.expand(batch + h.shape)
    return out


@pytest.mark.parametrize("case", KERNEL_CASES)
@pytest.mark.parametrize("d", [1, 3])
def test_kernel_matrix_matches_sklearn(case, d):
    name, values, sk_kernel = KERNEL_CASES[case]
    rng = np.random.default_rng(1)
    X1, X2 = rng.normal(size=(30, d)), rng.normal(size=(20, d))
    kernel = make_kernel(name)
    params = _params(kernel, d, values)
    ours = kernel.matrix(params, T(X1), T(X2)).numpy()
    np.testing.assert_allclose(ours, sk_kernel(X1, X2), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(kernel.diag(params, T(X1)).numpy(), np.diag(sk_kernel(X1)), rtol=1e-12)


def test_ard_lengthscales_match_sklearn_and_gpytorch():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(25, 3))
    ls = np.array([0.5, 1.5, 3.0])
    params = {"outputscale": T(1.0), "lengthscale": T(ls)}
    for ours_kernel, sk_kernel, gp_kernel in (
        (RBF(ard=True), sk.RBF(ls), gpytorch.kernels.RBFKernel(ard_num_dims=3)),
        (Matern(2.5, ard=True), sk.Matern(ls, nu=2.5), gpytorch.kernels.MaternKernel(2.5, ard_num_dims=3)),
    ):
        ours = Scale(ours_kernel).matrix(params, T(X), T(X)).numpy()
        np.testing.assert_allclose(ours, sk_kernel(X), rtol=1e-11, atol=1e-13)
        gp_kernel = gp_kernel.double()
        gp_kernel.lengthscale = T(ls)
        with torch.no_grad():
            np.testing.assert_allclose(ours, gp_kernel(T(X)).to_dense().numpy(), rtol=1e-6, atol=1e-8)


def test_kernel_batches_over_leading_hyperparameter_dims():
    rng = np.random.default_rng(3)
    X = T(rng.normal(size=(15, 2)))
    kernel = make_kernel("matern32 + rq", ard=True)
    draws = {h.name: T(rng.uniform(0.5, 2.0, size=(4,) + h.shape)) for h in kernel.hyperparameters(2)}
    batched = kernel.matrix(draws, X, X)
    assert batched.shape == (4, 15, 15)
    for s in range(4):
        one = kernel.matrix({k: v[s] for k, v in draws.items()}, X, X)
        torch.testing.assert_close(batched[s], one, rtol=0, atol=1e-14)


@pytest.mark.parametrize("n, d", [(50, 1), (400, 5), (2000, 3), (5000, 5)])
def test_log_marginal_likelihood_matches_sklearn_to_1e12(n, d):
    rng = np.random.default_rng(n + d)
    X = rng.normal(size=(n, d))
    y = np.sin(X.sum(1)) + 0.1 * rng.normal(size=n)
    sk_kernel = sk.ConstantKernel(1.3) * sk.RBF(1.1) + sk.WhiteKernel(0.05)
    reference = GaussianProcessRegressor(sk_kernel, optimizer=None, alpha=0.0).fit(X, y).log_marginal_likelihood_value_
    kernel = make_kernel("rbf")
    K = kernel.matrix({"outputscale": T(1.3), "lengthscale": T([1.1])}, T(X), T(X)) + 0.05 * torch.eye(n)
    lml, _ = log_marginal_likelihood(K, T(y))
    assert abs(float(lml) / reference - 1) < 1e-12


def test_lml_gradient_matches_autograd_through_cholesky():
    rng = np.random.default_rng(4)
    A = T(rng.normal(size=(30, 30)))
    cov = (A @ A.T / 30 + torch.eye(30)).requires_grad_(True)
    y = T(rng.normal(size=30)).requires_grad_(True)
    lml, _ = log_marginal_likelihood(cov, y)
    g_cov, g_y = torch.autograd.grad(lml, (cov, y))
    reference = torch.distributions.MultivariateNormal(torch.zeros(30), covariance_matrix=cov).log_prob(y)
    r_cov, r_y = torch.autograd.grad(reference, (cov, y))
    torch.testing.assert_close(lml, reference, rtol=1e-13, atol=0)
    # Gradients with respect to a symmetric matrix are defined up to their antisymmetric part:
    # compare directional derivatives along symmetric directions.
    for _ in range(3):
        S = T(rng.normal(size=(30, 30)))
        S = S + S.T
        torch.testing.assert_close((g_cov * S).sum(), (r_cov * S).sum(), rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(g_y, r_y, rtol=1e-10, atol=1e-12)


def test_predictive_moments_match_sklearn():
    rng = np.random.default_rng(5)
    X, Xs = rng.normal(size=(60, 2)), rng.normal(size=(25, 2))
    y = np.cos(X[:, 0]) + 0.1 * rng.normal(size=60)
    sk_kernel = sk.ConstantKernel(0.8) * sk.Matern(0.9, nu=1.5)
    model = GaussianProcessRegressor(sk_kernel, optimizer=None, alpha=0.02).fit(X, y)
    mean_ref, cov_ref = model.predict(Xs, return_cov=True)
    kernel, params = make_kernel("matern32"), {"outputscale": T(0.8), "lengthscale": T([0.9])}
    factor = factorize(kernel.matrix(params, T(X), T(X)) + 0.02 * torch.eye(60), T(y))
    cross = kernel.matrix(params, T(X), T(Xs))
    mean, cov = predictive_moments(factor, cross, kernel.matrix(params, T(Xs), T(Xs)), full_cov=True)
    _, var = predictive_moments(factor, cross, kernel.diag(params, T(Xs)))
    np.testing.assert_allclose(mean.numpy(), mean_ref, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(cov.numpy(), cov_ref, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(var.numpy(), np.diag(cov_ref), rtol=1e-8, atol=1e-10)


def test_jitter_escalation_warns_each_retry_then_raises():
    X = T([[0.0], [0.0], [1.0]])
    K = make_kernel("rbf").matrix({"outputscale": T(1.0), "lengthscale": T([1.0])}, X, X)
    with pytest.warns(CholeskyJitterWarning, match="duplicate inputs"):
        chol, jitter = jittered_cholesky(K)
    assert jitter > 0
    torch.testing.assert_close(chol @ chol.T, K + jitter * torch.eye(3), rtol=0, atol=1e-12)
    indefinite = T([[1.0, 2.0], [2.0, 1.0]])
    with warnings.catch_warnings(record=True) as caught, pytest.raises(InferenceError, match="not positive definite"):
        warnings.simplefilter("always")
        jittered_cholesky(indefinite)
    assert sum(issubclass(w.category, CholeskyJitterWarning) for w in caught) == 7
    with pytest.raises(InferenceError, match="NaN or inf"):
        jittered_cholesky(T([[math.nan]]))


def test_masked_lml_is_minus_inf_for_failed_members_and_exact_for_the_rest():
    good = T([[2.0, 0.5], [0.5, 1.0]])
    bad = T([[1.0, 2.0], [2.0, 1.0]])
    y = T([0.3, -0.7])
    cov = torch.stack([good, bad, good]).requires_grad_(True)
    lml = masked_log_marginal_likelihood(cov, y)
    reference = torch.distributions.MultivariateNormal(torch.zeros(2), covariance_matrix=good).log_prob(y)
    assert math.isinf(float(lml[1].detach())) and float(lml[1].detach()) < 0
    torch.testing.assert_close(lml[[0, 2]], reference.expand(2), rtol=1e-14, atol=0)
    (grad,) = torch.autograd.grad(lml[[0, 2]].sum(), cov)
    assert torch.isfinite(grad).all() and float(grad[1].abs().max()) == 0.0


def test_linear_periodic_rq_kernel_objects_compose():
    kernel = Scale(Linear()) + Scale(Periodic()) * RationalQuadratic()
    names = [h.name for h in kernel.hyperparameters(2)]
    assert names == ["k0.outputscale", "k1.f0.outputscale", "k1.f0.lengthscale", "k1.f0.period", "k1.f1.lengthscale", "k1.f1.alpha"]
