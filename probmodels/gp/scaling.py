"""Standardisation of GP inputs and targets, done inside ``fit`` and undone in predictions."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["Standardizer"]


@dataclass(frozen=True)
class Standardizer:
    """Affine maps ``x -> (x - x_mean) / x_scale`` and ``y -> (y - y_mean) / y_scale``.

    Scales are population standard deviations (as scikit-learn's
    ``normalize_y``); a constant column keeps scale 1. A disabled map is the
    identity.
    """

    x_mean: torch.Tensor
    x_scale: torch.Tensor
    y_mean: float
    y_scale: float

    @classmethod
    def fit(cls, X: torch.Tensor, y: torch.Tensor | None, *, inputs: bool, targets: bool) -> "Standardizer":
        """Statistics of ``X`` (when ``inputs``) and ``y`` (when ``targets``)."""
        if inputs:
            x_mean, x_scale = X.mean(0), X.std(0, unbiased=False)
            x_scale = torch.where(x_scale > 0, x_scale, torch.ones_like(x_scale))
        else:
            x_mean, x_scale = torch.zeros_like(X[0]), torch.ones_like(X[0])
        y_mean, y_scale = 0.0, 1.0
        if targets and y is not None:
            y_mean, y_scale = float(y.mean()), float(y.std(unbiased=False))
            y_scale = y_scale if y_scale > 0 else 1.0
        return cls(x_mean, x_scale, y_mean, y_scale)

    def inputs(self, X: torch.Tensor) -> torch.Tensor:
        """Standardised inputs."""
        return (X - self.x_mean) / self.x_scale

    def targets(self, y: torch.Tensor) -> torch.Tensor:
        """Standardised targets."""
        return (y - self.y_mean) / self.y_scale

    def mean(self, mean: torch.Tensor) -> torch.Tensor:
        """A predictive mean back in the units of ``y``."""
        return mean * self.y_scale + self.y_mean

    def variance(self, var: torch.Tensor) -> torch.Tensor:
        """A predictive variance (or covariance) back in the units of ``y``."""
        return var * self.y_scale**2

    def log_jacobian(self, n: int) -> float:
        """``log |d y_std / d y|`` for ``n`` targets: added to a standardised log density to get one in the units of ``y``."""
        return -n * math.log(self.y_scale)
