"""fit_svi(distributed=True) under torchrun with 2 gloo ranks: data-parallel SVI with
averaged gradients matches the single-process fit (exactly for a MAP guide, within
Monte Carlo and optimiser noise for a Gaussian guide)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from probmodels import fit_svi, load
from torchrun_models import NOISE_SD, SVI_SETTINGS, normal_mean, normal_mean_data, normal_mean_posterior


def _ranks(folder) -> list[dict]:
    return [json.loads((folder / f"rank{r}.json").read_text()) for r in range(2)]


def test_map_guide_follows_the_single_process_trajectory(tmp_path, torchrun):
    """AutoDelta has no Monte Carlo noise in its ELBO, and both runs draw the same mini-batches
    (one shared seed); each rank's half of a batch, with its likelihood scaled by 2 N / batch and
    the gradients averaged, gives algebraically the single-process gradient. So every Adam
    step is the same up to rounding, and so is the MAP."""
    torchrun("torchrun_svi.py", str(tmp_path), "delta")
    distributed = load(tmp_path / "posterior.nc")
    alone = fit_svi(normal_mean, normal_mean_data(), **dict(SVI_SETTINGS, guide="delta"))
    np.testing.assert_allclose(distributed["mu"].numpy(), alone["mu"].detach().numpy(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(distributed.attrs["loss"], alone.attrs["loss"], rtol=1e-9)
    first, second = _ranks(tmp_path)
    assert first["loss"] == second["loss"] and first["mean"] == second["mean"]


def _svi_noise(lr: float, curvature: float, gradient_sd: float) -> float:
    """Stationary sd of a parameter under Adam near its optimum: Adam divides the gradient by its
    RMS (about ``gradient_sd`` at the optimum), so it is SGD with step ``lr / gradient_sd`` on a
    quadratic of ``curvature``, an Ornstein-Uhlenbeck process of variance
    ``step * gradient_sd**2 / (2 * curvature) = lr * gradient_sd / (2 * curvature)``. The learning
    rate decays slower than the relaxation time ``gradient_sd / (lr * curvature)`` (165 steps at the
    end here, against the 380 steps over which the decay loses a factor e), so the final value is
    close to stationary at the final learning rate."""
    return math.sqrt(lr * gradient_sd / (2.0 * curvature))


def test_gaussian_guide_matches_single_process_within_its_noise(tmp_path, torchrun):
    torchrun("torchrun_svi.py", str(tmp_path), "normal")
    distributed = load(tmp_path / "posterior.nc")
    y = normal_mean_data()
    alone = fit_svi(normal_mean, y, **SVI_SETTINGS)
    first, second = _ranks(tmp_path)
    assert first["loss"] == second["loss"], "the ranks' averaged losses differ: they did not step together"
    n, batch, draws = y.shape[0], SVI_SETTINGS["batch_size"], SVI_SETTINGS["num_samples"]
    post_mean, post_sd = normal_mean_posterior(y)
    final_lr = SVI_SETTINGS["lr"] * SVI_SETTINGS["lr_decay"]
    curvature = post_sd**-2
    # Gradient noise of the guide's loc at the optimum: the mini-batch sum (N / B) * sum_i (y_i - mu) / sigma^2
    # has sd N / sqrt(B) / sigma; the reparametrised draw mu = loc + s * eps adds curvature * s * eps.
    loc_noise = _svi_noise(final_lr, curvature, math.hypot(n / math.sqrt(batch) / NOISE_SD, curvature * post_sd))
    # Of log s: d/dlog s of (curvature (loc + s eps - m)^2 / 2 - log s) is about eps^2 - 1 (sd sqrt 2) plus the
    # mini-batch term s * eps * N / sqrt(B) / sigma; the curvature in log s is 2 at s = post_sd.
    log_scale_noise = _svi_noise(final_lr, 2.0, math.hypot(math.sqrt(2.0), post_sd * n / math.sqrt(batch) / NOISE_SD))
    # Two independent fits: the difference has twice each variance; the draws add sd / sqrt(S) to the
    # mean and 1 / sqrt(2 S) (relative) to the sd. z = 4.
    mean_tolerance = 4.0 * math.sqrt(2.0 * (loc_noise**2 + post_sd**2 / draws))
    sd_tolerance = 4.0 * math.sqrt(2.0 * (log_scale_noise**2 + 1.0 / (2.0 * draws)))
    mean_d, mean_a = float(distributed["mu"].mean()), float(alone["mu"].mean())
    sd_d, sd_a = float(distributed["mu"].std()), float(alone["mu"].std())
    assert abs(mean_d - mean_a) < mean_tolerance, (mean_d, mean_a, mean_tolerance)
    assert abs(math.log(sd_d / sd_a)) < sd_tolerance, (sd_d, sd_a, sd_tolerance)
    # Both also sit on the exact posterior, within one fit's share of those tolerances.
    assert abs(mean_d - post_mean) < mean_tolerance / math.sqrt(2.0)
    assert abs(math.log(sd_d / post_sd)) < sd_tolerance / math.sqrt(2.0)


def test_distributed_svi_refuses_checkpoints_and_missing_torchrun(monkeypatch, tmp_path):
    from probmodels.exceptions import ModelSpecError

    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ModelSpecError, match="torchrun --nproc_per_node"):
        fit_svi(normal_mean, normal_mean_data(), distributed=True, num_steps=5, progress_bar=False)
    with pytest.raises(ModelSpecError, match="does not checkpoint"):
        fit_svi(normal_mean, normal_mean_data(), distributed=True, num_steps=5, checkpoint=tmp_path / "c.npz")
