"""Stein sample-quality checks (stein_check) and the kernel Stein discrepancy (ksd).

Every threshold comes from a stated false-alarm rate: ``stein_check`` uses a
Bonferroni bound at ``false_alarm``, the KSD tests a bootstrap p-value against
``FALSE_ALARM``, and the calibration test bounds the number of false alarms
over many seeds by a binomial quantile.
"""

import math
import warnings

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from scipy import stats

import probmodels as pm
from probmodels import DataError, ModelSpecError, ShapeError
from probmodels.core.mcmc import sample_log_density
from probmodels.diagnostics import ksd, stein_check
from probmodels.diagnostics.ksd import _stein_sums
from posteriordb_models import CASE_NAMES, load_case, reference_latents, requires_reference

FALSE_ALARM = 1e-3


# --------------------------------------------------------------------------- a conjugate regression with exact draws
def regression(X, y, prior_scale):
    """beta ~ N(0, diag(prior_scale^2)), y ~ N(X beta, 1): a Gaussian posterior in closed form."""
    beta = pyro.sample("beta", dist.Normal(torch.zeros_like(prior_scale), prior_scale).to_event(1))
    with pyro.plate("data", y.shape[0]):
        pyro.sample("y", dist.Normal(X @ beta, 1.0), obs=y)


def regression_data(n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 2, generator=g)
    y = X @ torch.tensor([1.0, -0.5]) + torch.randn(n, generator=g)
    return X, y


def exact_regression_draws(X, y, prior_scale, shape, seed):
    precision = X.T @ X + torch.diag(prior_scale**-2)
    cov = torch.linalg.inv(precision)
    mean = cov @ X.T @ y
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(tuple(shape) + (2,), generator=g)
    return {"beta": mean + z @ torch.linalg.cholesky(cov).T}


def test_exact_draws_pass_in_both_layouts():
    X, y = regression_data()
    scale = torch.tensor([1.0, 1.0])
    draws = exact_regression_draws(X, y, scale, (4000,), seed=1)
    result = stein_check(regression, draws, X, y, scale, false_alarm=FALSE_ALARM)
    assert result.passed, str(result)
    assert result.num_tests == 2 + 4 + 1 and result.min_ess == 4000
    chained = stein_check(regression, {"beta": draws["beta"].reshape(4, 1000, 2)}, X, y, scale)
    assert chained.passed, str(chained)
    assert 2000 < chained.min_ess <= 4000  # ESS from ArviZ for chains, capped at the number of draws


def test_prior_scale_three_times_too_wide_is_flagged():
    X, y = regression_data()
    truth, wrong = torch.tensor([1.0, 1.0]), torch.tensor([1.0, 3.0])
    draws = exact_regression_draws(X, y, truth, (2000,), seed=2)
    result = stein_check(regression, draws, X, y, wrong, false_alarm=FALSE_ALARM)
    assert not result.passed, str(result)
    assert "beta[1]" in result.worst(1)[0][1]
    assert "beta[1]" in str(result) and "FAIL" in str(result)


def test_false_alarm_rate_matches_the_nominal_rate():
    """Exact i.i.d. draws over 200 seeds at a nominal family-wise rate of 0.1.

    Bonferroni over correlated tests is conservative, so the realised rate
    may be lower; the count must not exceed the binomial quantile at 1e-3.
    """
    X, y = regression_data()
    scale = torch.tensor([1.0, 1.0])
    nominal, seeds = 0.1, 200
    alarms = sum(
        not stein_check(regression, exact_regression_draws(X, y, scale, (500,), seed), X, y, scale, false_alarm=nominal).passed
        for seed in range(seeds)
    )
    bound = stats.binom.isf(FALSE_ALARM, seeds, nominal)
    print(f"measured false-alarm rate {alarms / seeds:.3f} ({alarms}/{seeds}) at nominal {nominal}")
    assert alarms <= bound, f"{alarms} false alarms in {seeds} seeds at nominal rate {nominal} (bound {bound:.0f})"
    assert alarms > 0, "no false alarm at all in 200 seeds at nominal 0.1: the test has lost its calibration"


# --------------------------------------------------------------------------- a Normal written for a HalfCauchy
def scale_model(y, prior):
    sigma = pyro.sample("sigma", prior)
    with pyro.plate("data", y.shape[0]):  # abs: the model is traced once at a random point, where a Normal sigma may be < 0
        pyro.sample("y", dist.Normal(0.0, sigma.abs()), obs=y)


def exact_halfcauchy_scale_draws(y, n, seed):
    """Exact posterior of sigma for y ~ N(0, sigma), sigma ~ HalfCauchy(1), by rejection:
    sigma^2 ~ InverseGamma((len(y) - 1) / 2, sum(y^2) / 2), accepted with probability 1 / (1 + sigma^2)."""
    g = torch.Generator().manual_seed(seed)
    kept = []
    while sum(len(k) for k in kept) < n:
        gamma = torch._standard_gamma(torch.full((4 * n,), (len(y) - 1) / 2.0), generator=g)
        sigma = torch.sqrt((y**2).sum() / 2.0 / gamma)
        kept.append(sigma[torch.rand(4 * n, generator=g) < 1.0 / (1.0 + sigma**2)])
    return torch.cat(kept)[:n]


def test_normal_written_for_a_halfcauchy_is_flagged():
    y = torch.tensor([0.3, -1.2, 2.0, 0.8, -0.4])
    sigma = exact_halfcauchy_scale_draws(y, 4000, seed=3)
    right = stein_check(scale_model, {"sigma": sigma}, y, dist.HalfCauchy(torch.tensor(1.0)))
    assert right.passed, str(right)
    wrong = stein_check(scale_model, {"sigma": sigma}, y, dist.Normal(torch.tensor(0.0), 1.0))
    assert not wrong.passed, str(wrong)


# --------------------------------------------------------------------------- a mean-field fit of a correlated Gaussian
_IDX = torch.arange(10.0)
_COV = 0.9 ** (_IDX[:, None] - _IDX[None]).abs()


def correlated_gaussian():
    pyro.sample("x", dist.MultivariateNormal(torch.zeros(10, dtype=_COV.dtype), covariance_matrix=_COV.to(torch.get_default_dtype())))


def test_mean_field_of_a_correlated_gaussian_is_flagged():
    """The exact mean-field optimum N(0, diag(1 / Lambda_jj)) satisfies E[s] = 0 and the
    diagonal of E[s u'] = -I; only the off-diagonal entries expose it."""
    cov = _COV.to(torch.get_default_dtype())
    sd = torch.linalg.inv(cov).diagonal().rsqrt()
    g = torch.Generator().manual_seed(4)
    exact = stein_check(correlated_gaussian, {"x": torch.randn(2000, 10, generator=g) @ torch.linalg.cholesky(cov).T})
    assert exact.passed, str(exact)
    mean_field = stein_check(correlated_gaussian, {"x": torch.randn(2000, 10, generator=g) * sd})
    assert not mean_field.passed, str(mean_field)
    assert np.abs(mean_field.mean_z).max() < mean_field.threshold
    assert np.abs(np.diagonal(mean_field.cov_z)).max() < mean_field.threshold
    assert mean_field.worst(1)[0][0].endswith("off-diagonal")


def test_svi_mean_field_posterior_is_flagged():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pm.ConvergenceWarning)
        posterior = pm.fit_svi(correlated_gaussian, guide="normal", num_steps=400, lr=0.05, num_samples=2000, progress_bar=False, device="cpu")
    result = stein_check(posterior)
    assert result.min_ess == 2000  # SVI draws are independent
    assert not result.passed, str(result)
    assert ksd(posterior, n_bootstrap=200).p_value < FALSE_ALARM * 10


# --------------------------------------------------------------------------- NUTS on a corrupted target
_L = torch.tensor([[1.0, 0.0], [0.8, 0.6]])


def _gaussian_log_density(u):
    precision = torch.linalg.inv(_L @ _L.T).to(u)
    return -0.5 * ((u @ precision) * u).sum(-1)


def test_nuts_on_a_corrupted_target_is_flagged():
    """NUTS run on a target object that returns 1.3 times the log density and its
    gradient samples p^1.3 (too narrow): flagged against p, passed against what it
    sampled (the chained path, ESS from ArviZ)."""

    def corrupted(u):
        return 1.3 * _gaussian_log_density(u)

    draws, _ = sample_log_density(corrupted, torch.zeros(16, 2), num_samples=250, num_warmup=150, seed=1)
    result = stein_check(draws, log_density=_gaussian_log_density)
    assert not result.passed, str(result)
    assert result.min_ess < draws.shape[0] * draws.shape[1]
    assert stein_check(draws, log_density=corrupted).passed
    assert ksd(draws, log_density=_gaussian_log_density, n_bootstrap=500).p_value <= 0.01


@pytest.mark.slow
def test_nuts_with_a_gradient_only_error_is_still_exact():
    """A gradient scaled by 1.3 with the right value leaves NUTS exact: its acceptance
    uses the value, and any position-dependent force gives a reversible,
    volume-preserving leapfrog. Only efficiency suffers, so the check must pass."""

    def corrupted(u):
        value = _gaussian_log_density(u)
        return value.detach() + 1.3 * (value - value.detach())

    draws, _ = sample_log_density(corrupted, torch.zeros(16, 2), num_samples=250, num_warmup=150, seed=1)
    result = stein_check(draws, log_density=_gaussian_log_density)
    assert result.passed, str(result)


# --------------------------------------------------------------------------- posteriordb references
_SLOW_REFERENCES = ("low_dim_gauss_mix-low_dim_gauss_mix",)


@requires_reference
@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in _SLOW_REFERENCES else n for n in CASE_NAMES]
)
def test_reference_draws_pass(name):
    case = load_case(name)
    result = stein_check(case.model, reference_latents(name), *case.args, model_kwargs=case.kwargs, false_alarm=FALSE_ALARM)
    assert result.passed, f"{name}:\n{result}"


def eight_schools_with_normal_tau(y, sigma):
    mu = pyro.sample("mu", dist.Normal(y.new_tensor(0.0), 5.0))
    tau = pyro.sample("tau", dist.Normal(y.new_tensor(0.0), 5.0))  # the Stan model has HalfCauchy(0, 5)
    with pyro.plate("schools", y.shape[-1], dim=-1):
        theta_trans = pyro.sample("theta_trans", dist.Normal(y.new_tensor(0.0), 1.0))
        pyro.sample("y", dist.Normal(theta_trans * tau + mu, sigma), obs=y)


@requires_reference
def test_reference_draws_flag_a_normal_written_for_the_halfcauchy():
    case = load_case("eight_schools-eight_schools_noncentered")
    draws = reference_latents(case.name)
    result = stein_check(eight_schools_with_normal_tau, draws, model_kwargs=case.kwargs)
    assert not result.passed, str(result)
    assert "tau" in result.worst(1)[0][1], str(result)


# --------------------------------------------------------------------------- KSD
def _standard_normal(u):
    return -0.5 * (u * u).sum(-1)


def test_ksd_accepts_exact_draws_and_rejects_shifted_or_overdispersed_ones():
    g = torch.Generator().manual_seed(5)
    u = torch.randn(500, 3, generator=g)
    exact = ksd(u, log_density=_standard_normal, n_bootstrap=500)
    assert exact.p_value > FALSE_ALARM and exact.flip_probability == 0.5
    assert ksd(u + 0.4, log_density=_standard_normal, n_bootstrap=500).p_value <= 2 / 501
    assert ksd(u * 1.5, log_density=_standard_normal, n_bootstrap=500).p_value <= 2 / 501
    assert ksd(u + 0.4, log_density=_standard_normal).ksd > 2 * exact.ksd


def test_ksd_of_chains_uses_an_autocorrelated_sign_process():
    g = torch.Generator().manual_seed(6)
    ar = torch.zeros(4, 400, 2)
    noise = torch.randn(4, 400, 2, generator=g)
    ar[:, 0] = noise[:, 0]
    for t in range(1, 400):  # AR(1) chains with N(0, 1) margins
        ar[:, t] = 0.7 * ar[:, t - 1] + math.sqrt(1 - 0.49) * noise[:, t]
    result = ksd(ar, log_density=_standard_normal, n_bootstrap=500)
    assert result.flip_probability < 0.4
    assert result.p_value > FALSE_ALARM


def test_ksd_blocks_equal_the_dense_stein_kernel():
    g = torch.Generator().manual_seed(7)
    u = torch.randn(50, 3, generator=g)
    s = -1.2 * u + 0.1
    signs = torch.randn(50, 4, generator=g)
    r = u[:, None] - u[None]
    r2 = (r * r).sum(-1)
    for beta, c in ((-0.5, 1.3), (-0.3, 0.7)):
        q = c**2 + r2
        dense = (
            (s @ s.T) * q**beta
            + 2 * beta * q ** (beta - 1) * ((s[None] * r).sum(-1) - (s[:, None] * r).sum(-1))
            - 4 * beta * (beta - 1) * q ** (beta - 2) * r2
            - 2 * beta * 3 * q ** (beta - 1)
        )
        for block in (7, 50):
            total, boot = _stein_sums(u, s, signs, beta, c, block)
            torch.testing.assert_close(total, dense.sum())
            torch.testing.assert_close(boot, torch.einsum("ib,ij,jb->b", signs, dense, signs))
    draws = torch.randn(300, 2, generator=g)
    one_block = ksd(draws, log_density=_standard_normal, batch_size=300, n_bootstrap=200)
    blocks = ksd(draws, log_density=_standard_normal, batch_size=64, n_bootstrap=200)
    eps = torch.finfo(draws.dtype).eps
    assert blocks.ksd == pytest.approx(one_block.ksd, rel=100 * eps)
    assert blocks.p_value == pytest.approx(one_block.p_value, abs=2 / 201 if eps > 1e-10 else 0)


def test_ksd_of_a_model_matches_its_unconstrained_log_density():
    X, y = regression_data()
    scale = torch.tensor([1.0, 1.0])
    draws = exact_regression_draws(X, y, scale, (400,), seed=8)
    result = ksd(regression, draws, X, y, scale, n_bootstrap=200)
    assert result.dim == 2 and result.num_draws == 400 and result.p_value > FALSE_ALARM


# --------------------------------------------------------------------------- bad input
def halfnormal_model(y):
    mu = pyro.sample("mu", dist.Normal(y.new_tensor(0.0), 1.0))
    sigma = pyro.sample("sigma", dist.HalfNormal(y.new_tensor(1.0)))
    with pyro.plate("data", y.shape[0]):
        pyro.sample("y", dist.Normal(mu, sigma), obs=y)


_Y = torch.tensor([0.1, 0.5, -0.3])
_GOOD = {"mu": torch.zeros(20), "sigma": torch.ones(20)}


@pytest.mark.parametrize(
    "draws, error, words",
    [
        ({"mu": torch.zeros(20)}, ModelSpecError, ["'sigma'", "latent sites"]),
        ({"mu": torch.zeros(20, 3, 2), "sigma": torch.ones(20)}, ShapeError, ["'mu'", "(n) or (chain, draw)"]),
        ({"mu": torch.zeros(20), "sigma": torch.ones(10)}, ShapeError, ["'sigma'", "same"]),
        ({"mu": torch.zeros(20), "sigma": torch.tensor([math.nan] + [1.0] * 19)}, DataError, ["'sigma'", "NaN", "drop"]),
        ({"mu": torch.zeros(20), "sigma": -torch.ones(20)}, DataError, ["'sigma'", "support", "not its logarithm"]),
        ({"mu": torch.zeros(20), "sigma": torch.zeros(20)}, DataError, ["'sigma'", "boundary"]),
    ],
)
def test_bad_draws_raise_naming_the_site(draws, error, words):
    for check in (stein_check, ksd):
        with pytest.raises(error) as info:
            check(halfnormal_model, draws, _Y)
        for word in words:
            assert word in str(info.value), str(info.value)


def test_bad_arguments_raise():
    with pytest.raises(ModelSpecError, match="false_alarm"):
        stein_check(halfnormal_model, _GOOD, _Y, false_alarm=1.5)
    with pytest.raises(ModelSpecError, match="kernel"):
        ksd(halfnormal_model, _GOOD, _Y, kernel="rbf")
    with pytest.raises(ModelSpecError, match="beta"):
        ksd(halfnormal_model, _GOOD, _Y, beta=0.5)
    with pytest.raises(TypeError, match="dict site"):
        stein_check(halfnormal_model, [1.0, 2.0], _Y)
    with pytest.raises(ModelSpecError, match="log_density"):
        stein_check(torch.zeros(10, 2), {"x": 1}, log_density=_standard_normal)
    with pytest.raises(DataError, match="log density"):
        stein_check(torch.zeros(10, 2), log_density=lambda u: torch.full(u.shape[:1], -math.inf) + u.sum(-1))
    loaded = pm.Posterior({"mu": torch.zeros(1, 5)}, method="nuts")
    with pytest.raises(ModelSpecError, match="no model attached"):
        stein_check(loaded)
