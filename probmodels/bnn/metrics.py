"""Calibration and accuracy metrics of predictive distributions (pure tensor functions).

Classifiers: accuracy, top-label expected calibration error (ECE) and the
reliability curve it is built from. Regression: RMSE, coverage of
predictive intervals, and the calibration error of the predictive CDF
(Kuleshov et al., 2018): how far the fraction of targets below each
predicted quantile is from its nominal level, computed from PIT values.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = [
    "ReliabilityCurve",
    "reliability_curve",
    "expected_calibration_error",
    "regression_calibration_error",
    "interval_coverage",
    "rmse",
    "accuracy",
]


class ReliabilityCurve(NamedTuple):
    """Binned top-label confidence against accuracy.

    Attributes
    ----------
    confidence : Tensor
        Mean top-label probability per bin (NaN for empty bins).
    accuracy : Tensor
        Fraction of correct top labels per bin (NaN for empty bins).
    count : Tensor
        Points per bin.
    edges : Tensor
        Bin edges ``(n_bins + 1,)`` on [0, 1].
    """

    confidence: torch.Tensor
    accuracy: torch.Tensor
    count: torch.Tensor
    edges: torch.Tensor


def reliability_curve(probs: torch.Tensor, y: torch.Tensor, n_bins: int = 10) -> ReliabilityCurve:
    """Bin predictions by their top-label probability.

    Parameters
    ----------
    probs
        Class probabilities ``(N, K)``.
    y
        Integer labels ``(N,)``.
    n_bins
        Equal-width bins on [0, 1].
    """
    confidence, label = probs.max(-1)
    correct = (label == y.long()).to(probs.dtype)
    edges = torch.linspace(0.0, 1.0, n_bins + 1, dtype=probs.dtype, device=probs.device)
    index = torch.bucketize(confidence, edges[1:-1], right=True)
    count = torch.zeros(n_bins, dtype=probs.dtype, device=probs.device).index_add_(0, index, torch.ones_like(confidence))
    conf_sum = torch.zeros_like(count).index_add_(0, index, confidence)
    acc_sum = torch.zeros_like(count).index_add_(0, index, correct)
    return ReliabilityCurve(conf_sum / count, acc_sum / count, count, edges)


def expected_calibration_error(probs: torch.Tensor, y: torch.Tensor, n_bins: int = 10) -> float:
    """Top-label ECE: the count-weighted mean of ``|accuracy - confidence|`` over bins."""
    curve = reliability_curve(probs, y, n_bins)
    full = curve.count > 0
    gap = (curve.accuracy[full] - curve.confidence[full]).abs()
    return float((gap * curve.count[full]).sum() / curve.count.sum())


def regression_calibration_error(pit: torch.Tensor, n_levels: int = 19) -> float:
    """Mean ``|fraction of PIT values <= p - p|`` over ``p = 1/(n_levels+1), ..., n_levels/(n_levels+1)``."""
    levels = torch.arange(1, n_levels + 1, dtype=pit.dtype, device=pit.device) / (n_levels + 1)
    observed = (pit[None, :] <= levels[:, None]).to(pit.dtype).mean(-1)
    return float((observed - levels).abs().mean())


def interval_coverage(lower: torch.Tensor, upper: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of targets inside their predictive interval."""
    return float(((y >= lower) & (y <= upper)).to(lower.dtype).mean())


def rmse(mean: torch.Tensor, y: torch.Tensor) -> float:
    """Root mean squared error of the predictive mean."""
    return float(((mean - y) ** 2).mean().sqrt())


def accuracy(probs: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of points whose most probable class is the label."""
    return float((probs.argmax(-1) == y.long()).to(probs.dtype).mean())
