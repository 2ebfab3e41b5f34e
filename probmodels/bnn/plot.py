"""Reliability diagram of a classifier's predictive probabilities."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from .metrics import expected_calibration_error, reliability_curve

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["plot_reliability"]


def plot_reliability(probs: Any, y: Any, n_bins: int = 10, ax: "Axes | None" = None, label: str | None = None) -> "Axes":
    """Accuracy against top-label confidence per bin, with the diagonal of perfect calibration.

    Parameters
    ----------
    probs
        Class probabilities ``(N, K)`` (e.g. ``BayesianMLP.predict_proba(X)``).
    y
        Integer labels ``(N,)``.
    n_bins
        Equal-width confidence bins.
    ax
        Axes to draw on (default: a new figure).
    label
        Legend label; the ECE is appended.

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    probs = torch.as_tensor(probs)
    y = torch.as_tensor(y, device=probs.device)
    curve = reliability_curve(probs, y, n_bins)
    ece = expected_calibration_error(probs, y, n_bins)
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    full = (curve.count > 0).cpu().numpy()
    centres = (0.5 * (curve.edges[1:] + curve.edges[:-1])).cpu().numpy()
    width = float(curve.edges[1] - curve.edges[0])
    text = f"ECE {ece:.3f}" if label is None else f"{label} (ECE {ece:.3f})"
    ax.bar(centres[full], curve.accuracy.cpu().numpy()[full], width=width, alpha=0.6, edgecolor="k", label=text)
    ax.plot(curve.confidence.cpu().numpy()[full], curve.accuracy.cpu().numpy()[full], "o", color="k", ms=3)
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=1)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top-label probability)", ylabel="accuracy")
    ax.legend(loc="upper left")
    return ax
