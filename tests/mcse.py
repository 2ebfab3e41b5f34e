"""Monte Carlo standard-error assertions for statistical tests.

Errors are scaled by the MCSE that ArviZ estimates from the draws' effective
sample size, and compared with a normal quantile at a family-wise false-alarm
rate (Bonferroni over the checked quantities), as in BlackJAX's
``MonteCarloStandardErrorTest``.
"""

import numpy as np
from scipy import stats

from probmodels.diagnostics.arviz import az  # ArviZ as the library configures it (no numba path)

FALSE_ALARM = 1e-3


def z_threshold(n_checks, false_alarm=FALSE_ALARM):
    """Two-sided normal quantile for ``n_checks`` simultaneous checks at the given family-wise rate."""
    return float(stats.norm.isf(false_alarm / (2 * n_checks)))


def _as_chains(draws):
    draws = np.asarray(draws, dtype=float)
    return draws.reshape(draws.shape[0], draws.shape[1], -1)


def mean_z_scores(draws, truth):
    """z-scores of the posterior means of ``draws`` (chain, draw, k) against ``truth`` (k,), by MCSE."""
    draws = _as_chains(draws)
    truth = np.broadcast_to(np.asarray(truth, dtype=float).ravel(), draws.shape[-1:])
    z = []
    for k in range(draws.shape[-1]):
        mcse = az.mcse(draws[..., k], method="mean")
        z.append((draws[..., k].mean() - truth[k]) / mcse)
    return np.asarray(z)


def sd_z_scores(draws, truth_sd):
    """z-scores of the posterior standard deviations against ``truth_sd``, by MCSE of the sd."""
    draws = _as_chains(draws)
    truth_sd = np.broadcast_to(np.asarray(truth_sd, dtype=float).ravel(), draws.shape[-1:])
    z = []
    for k in range(draws.shape[-1]):
        mcse = az.mcse(draws[..., k], method="sd")
        z.append((draws[..., k].std() - truth_sd[k]) / mcse)
    return np.asarray(z)


def assert_moments(draws, mean, sd, label=""):
    """Assert posterior means and sds match the truth within MCSE-scaled tolerances."""
    z_mean, z_sd = mean_z_scores(draws, mean), sd_z_scores(draws, sd)
    threshold = z_threshold(z_mean.size + z_sd.size)
    worst = max(np.abs(z_mean).max(), np.abs(z_sd).max())
    assert worst < threshold, (
        f"{label}: worst |z| {worst:.2f} >= {threshold:.2f}; mean z {np.round(z_mean, 2)}, sd z {np.round(z_sd, 2)}"
    )
