"""Calibration metrics: hand-computed oracles, and calibrated vs miscalibrated predictions with
tolerances from the binomial standard error."""

import math

import matplotlib
import pytest
import torch

from probmodels.bnn import (
    expected_calibration_error, interval_coverage, mixture_quantiles, plot_reliability, regression_calibration_error, reliability_curve,
)

matplotlib.use("Agg")


def test_ece_on_a_hand_computed_example():
    probs = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.45, 0.55]])
    y = torch.tensor([0, 1, 1, 1])
    curve = reliability_curve(probs, y, n_bins=4)
    torch.testing.assert_close(curve.count, torch.tensor([0.0, 0.0, 2.0, 2.0]))
    torch.testing.assert_close(curve.confidence[2:], torch.tensor([0.625, 0.85]))
    expected = (2 * abs(1.0 - 0.625) + 2 * abs(0.5 - 0.85)) / 4
    assert expected_calibration_error(probs, y, n_bins=4) == pytest.approx(expected)


def test_ece_separates_calibrated_from_overconfident_predictions(dtype):
    """Labels drawn from the predicted probabilities: E[ECE] <= 0.5 sqrt(bins / n) (binomial error per bin)."""
    g = torch.Generator().manual_seed(0)
    n, bins = 20000, 10
    p = torch.rand(n, generator=g, dtype=dtype)
    y = (torch.rand(n, generator=g, dtype=dtype) < p).long()
    probs = torch.stack([1 - p, p], 1)
    bound = 4 * 0.5 * math.sqrt(bins / n)
    assert expected_calibration_error(probs, y, bins) < bound
    sharp = torch.sigmoid(4 * torch.logit(p))
    assert expected_calibration_error(torch.stack([1 - sharp, sharp], 1), y, bins) > 3 * bound


def test_regression_calibration_and_coverage_from_the_true_distribution(dtype):
    g = torch.Generator().manual_seed(1)
    n = 20000
    normal = torch.distributions.Normal(torch.zeros((), dtype=dtype), 1.0)
    y = torch.randn(n, generator=g, dtype=dtype)
    se = 0.5 / math.sqrt(n)
    assert regression_calibration_error(normal.cdf(y)) < 4 * se
    assert regression_calibration_error(normal.cdf(y / 2)) > 10 * se
    q = float(normal.icdf(torch.tensor(0.95, dtype=dtype)))
    coverage = interval_coverage(torch.full_like(y, -q), torch.full_like(y, q), y)
    assert abs(coverage - 0.9) < 4 * math.sqrt(0.09 / n)


def test_mixture_quantiles_match_the_normal_and_the_mixture_cdf(dtype):
    means = torch.tensor([[0.0, 1.0], [0.0, -1.0]], dtype=dtype)
    sds = torch.tensor([[1.0, 0.5], [1.0, 2.0]], dtype=dtype)
    lower, upper = mixture_quantiles(means, sds, (0.05, 0.95))
    normal = torch.distributions.Normal(torch.zeros((), dtype=dtype), 1.0)
    torch.testing.assert_close(upper[0], normal.icdf(torch.tensor(0.95, dtype=dtype)))
    cdf = normal.cdf((lower[1] - means[:, 1]) / sds[:, 1]).mean()
    torch.testing.assert_close(cdf, torch.tensor(0.05, dtype=dtype))


def test_reliability_plot_draws_bars_and_names_the_ece():
    probs = torch.tensor([[0.9, 0.1], [0.3, 0.7], [0.5, 0.5]])
    ax = plot_reliability(probs, torch.tensor([0, 1, 1]), n_bins=5, label="svi")
    assert "svi (ECE" in ax.get_legend().get_texts()[0].get_text()
    assert len(ax.patches) == 3
