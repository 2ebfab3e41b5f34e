"""The NUTS kernel and its warmup on analytic targets, through sample_log_density."""

import math

import numpy as np
import pytest
import torch

from mcse import assert_moments
from probmodels.core.adaptation import WarmupSchedule
from probmodels.core.mcmc import sample_log_density


def gaussian(mean, cov):
    precision = torch.linalg.inv(cov)

    def log_density(u):
        d = u - mean
        return -0.5 * ((d @ precision) * d).sum(-1)

    return log_density


def test_stan_warmup_windows():
    # Stan's windows for 1000 warmup iterations: 75 fast, then 25, 50, 100, 200, 500, then 50 fast.
    schedule = WarmupSchedule.stan(1000)
    assert schedule.window_start == 75
    assert schedule.window_ends == (99, 149, 249, 449, 949)
    short = WarmupSchedule.stan(100)  # buffers shrink: 15 / 75 / 10
    assert short.window_start == 15 and short.window_ends == (89,)
    assert WarmupSchedule.stan(10).window_ends == ()


def test_iid_normal(device):
    dim = 5
    target = gaussian(torch.zeros(dim, device=device), torch.eye(dim, device=device))
    init = torch.zeros(4, dim, device=device)
    draws, stats = sample_log_density(target, init, num_samples=1000, num_warmup=500, seed=1)
    assert draws.shape == (4, 1000, dim)
    assert not bool(stats["diverging"].any())
    assert_moments(draws.cpu().numpy(), np.zeros(dim), np.ones(dim), "iid normal")
    assert 0.6 < float(stats["acceptance_rate"].mean()) < 0.97


def test_scaled_normal_adapts_diagonal_metric(device):
    scales = torch.tensor([0.01, 0.1, 1.0, 10.0, 100.0], device=device)
    target = gaussian(torch.zeros(5, device=device), torch.diag(scales**2))
    draws, stats = sample_log_density(target, torch.zeros(4, 5, device=device), num_samples=1000, num_warmup=1000, seed=2)
    assert_moments(draws.cpu().numpy(), np.zeros(5), scales.cpu().numpy(), "scaled normal")
    # With a well-adapted metric the scaled target is as easy as an iid normal: short trees.
    assert float(stats["tree_depth"].float().mean()) < 3.5


def test_correlated_10d_gaussian_dense_metric(device):
    dim = 10
    generator = torch.Generator().manual_seed(0)
    rotation, _ = torch.linalg.qr(torch.randn(dim, dim, generator=generator))
    eigenvalues = torch.logspace(-2, 1, dim)  # condition number 1000
    cov = (rotation @ torch.diag(eigenvalues) @ rotation.T).to(device)
    mean = torch.arange(dim, dtype=cov.dtype, device=device)
    draws, stats = sample_log_density(
        gaussian(mean, cov), mean.expand(4, dim).clone(), num_samples=1000, num_warmup=1000, dense_mass=True, seed=3
    )
    assert not bool(stats["diverging"].any())
    assert_moments(draws.cpu().numpy(), mean.cpu().numpy(), cov.diagonal().sqrt().cpu().numpy(), "correlated 10-d")
    # A dense metric that matches the covariance whitens the target: short trees despite condition number.
    assert float(stats["tree_depth"].float().mean()) < 3.5


def test_funnel_like_target_reports_divergences(device):
    # Neal's funnel in its centred form: NUTS cannot follow the neck and must say so. About one
    # transition in 500 diverges here, so 8 chains x 500 draws expect several (none: p ~ e^-8).
    def funnel(u):
        v, x = u[:, 0], u[:, 1:]
        return -0.5 * v**2 / 9.0 - 0.5 * (x**2).sum(-1) * torch.exp(-v) - 0.5 * x.shape[1] * v

    draws, stats = sample_log_density(funnel, torch.zeros(8, 10, device=device), num_samples=500, num_warmup=300, seed=4)
    assert bool(stats["diverging"].any())
    assert torch.isfinite(draws).all()


def test_nan_and_exceptions_in_log_density_are_rejected_steps(device):
    # A target that is NaN on half the line and raises beyond |u| > 50: the sampler never crashes.
    def awkward(u):
        if bool((u.abs() > 50).any()):
            raise RuntimeError("outside the domain")
        lp = -0.5 * (u**2).sum(-1)
        return torch.where(u[:, 0] < -3, torch.full_like(lp, math.nan), lp)

    draws, stats = sample_log_density(awkward, torch.zeros(2, 2, device=device), num_samples=200, num_warmup=200, seed=5)
    assert torch.isfinite(draws).all()
    assert float(draws[..., 0].min()) >= -3


def test_same_seed_same_draws(device):
    target = gaussian(torch.zeros(3, device=device), torch.eye(3, device=device))
    a, _ = sample_log_density(target, torch.zeros(2, 3, device=device), num_samples=50, num_warmup=50, seed=7)
    b, _ = sample_log_density(target, torch.zeros(2, 3, device=device), num_samples=50, num_warmup=50, seed=7)
    c, _ = sample_log_density(target, torch.zeros(2, 3, device=device), num_samples=50, num_warmup=50, seed=8)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("bad", [torch.zeros(5), torch.zeros(2, 2, 2)])
def test_initial_position_must_be_a_matrix(bad):
    from probmodels import ModelSpecError

    with pytest.raises(ModelSpecError, match="initial_position"):
        sample_log_density(lambda u: -(u**2).sum(-1), bad)
