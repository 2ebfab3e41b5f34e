"""A picture of a fitted GP regression: the data, the predictive mean, and credible bands for the function and for new observations."""

from __future__ import annotations

from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..exceptions import ModelSpecError, NotFittedError, ShapeError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_predictive"]

GRID_POINTS = 200


def plot_predictive(
    model: Any,
    X: Any,
    y: Any,
    grid: Any = None,
    *,
    feature: int = 0,
    prob: float = 0.95,
    ax: "Axes | None" = None,
    title: str | None = None,
) -> "Figure":
    """Plot data with a GP's predictive mean and its credible bands.

    Two bands of probability ``prob`` are drawn: the latent function's (dark)
    and a new observation's (light, function plus noise). After a NUTS fit of
    :class:`~probmodels.gp.GPRegression` the bands are the exact quantiles of
    the mixture over hyperparameter draws; otherwise they are Gaussian.
    Inducing points of a :class:`~probmodels.gp.SparseGPRegression` are
    marked along the bottom.

    Parameters
    ----------
    model : GPRegression or SparseGPRegression
        A fitted GP regression.
    X : array-like of shape (n, d)
        Inputs of the data to draw (usually the training inputs).
    y : array-like of shape (n,)
        Their targets.
    grid : array-like of shape (m, d), optional
        Where to draw the prediction. Default (one feature only): 200 points
        spanning ``X`` and 5 % beyond each end. With several features it is
        required, and varies along column ``feature``.
    feature : int, default 0
        Column of ``X`` and ``grid`` on the horizontal axis.
    prob : float, default 0.95
        Probability of both bands.
    ax : matplotlib Axes, optional
        Where to draw; default a new figure.
    title : str, optional
        Axes title.

    Returns
    -------
    matplotlib.figure.Figure
        The figure holding the axes.

    Raises
    ------
    ModelSpecError
        ``prob`` outside (0, 1), ``feature`` not a column, or no ``grid`` for several features.
    ShapeError
        ``X`` and ``y`` of different lengths, or a ``grid`` with another number of features.
    NotFittedError
        The model is not fitted.

    Examples
    --------
    >>> import torch
    >>> from probmodels.gp import GPRegression, plot_predictive
    >>> X = torch.linspace(0, 1, 12, dtype=torch.float64).unsqueeze(-1)
    >>> y = torch.sin(6 * X[:, 0])
    >>> figure = plot_predictive(GPRegression().fit(X, y), X, y)
    >>> [text.get_text() for text in figure.axes[0].get_legend().get_texts()][:2]
    ['95% band, new observation', '95% band, function']
    """
    from matplotlib.figure import Figure

    if not (isinstance(prob, (int, float)) and 0.0 < prob < 1.0):
        raise ModelSpecError(f"prob must lie in (0, 1), got {prob!r}; e.g. prob=0.95.")
    if not hasattr(model, "n_features_in_"):
        raise NotFittedError(f"this {type(model).__name__} is not fitted yet; call fit(X, y) before plot_predictive.")
    inputs = np.asarray(torch.as_tensor(X).detach().cpu(), dtype=float).reshape(len(X), -1)
    targets = np.asarray(torch.as_tensor(y).detach().cpu(), dtype=float).reshape(-1)
    if inputs.shape[0] != targets.shape[0]:
        raise ShapeError(f"X has {inputs.shape[0]} rows but y has {targets.shape[0]} values; pass matching data.")
    d = inputs.shape[1]
    if not (isinstance(feature, (int, np.integer)) and -d <= feature < d):
        raise ModelSpecError(f"feature must be a column index of X (which has {d} column(s)), got {feature!r}.")
    if grid is None:
        if d != 1:
            raise ModelSpecError(f"X has {d} features: pass grid= (m, {d}) test inputs that vary along column {feature}.")
        low, high = inputs[:, 0].min(), inputs[:, 0].max()
        pad = 0.05 * (high - low) or 0.5
        grid = np.linspace(low - pad, high + pad, GRID_POINTS)[:, None]
    points = np.asarray(torch.as_tensor(grid).detach().cpu(), dtype=float).reshape(len(grid), -1)
    if points.shape[1] != d:
        raise ShapeError(f"grid has {points.shape[1]} feature(s) but X has {d}; pass grid shaped (m, {d}).")
    test = torch.as_tensor(points, dtype=model.X_train_.dtype, device=model.X_train_.device)
    mean = model.predict(test)
    function_band = _band(model, test, prob, observation=False)
    observation_band = _band(model, test, prob, observation=True)

    if ax is None:
        figure = Figure(figsize=(8, 4.5), layout="constrained")
        ax = figure.subplots()
    else:
        figure = ax.figure
    order = np.argsort(points[:, feature])
    along = points[order, feature]
    percent = f"{100 * prob:g}%"
    ax.fill_between(along, *(b[order] for b in observation_band), color="tab:blue", alpha=0.15, label=f"{percent} band, new observation")
    ax.fill_between(along, *(b[order] for b in function_band), color="tab:blue", alpha=0.35, label=f"{percent} band, function")
    ax.plot(along, _numpy(mean)[order], color="tab:blue", label="predictive mean")
    ax.scatter(inputs[:, feature], targets, s=12, color="black", zorder=3, label="data")
    if hasattr(model, "inducing_points_"):
        inducing = _numpy(model.inducing_points_)[:, feature]
        ax.plot(inducing, np.full_like(inducing, np.nanmin(observation_band[0])), "|", color="tab:red", markersize=10, label="inducing points")
    ax.set_xlabel(f"x[{feature}]" if d > 1 else "x")
    ax.set_ylabel("y")
    ax.legend(loc="best", fontsize="small")
    if title:
        ax.set_title(title)
    return figure


def _band(model: Any, test: torch.Tensor, prob: float, observation: bool) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper band: the model's own quantiles when it has them, else mean -+ z sd."""
    if hasattr(model, "predict_interval"):
        lower, upper = model.predict_interval(test, prob=prob, observation=observation)
        return _numpy(lower), _numpy(upper)
    mean, sd = model.predict(test, return_std=True, observation=observation)
    z = NormalDist().inv_cdf(0.5 + prob / 2)
    return _numpy(mean - z * sd), _numpy(mean + z * sd)


def _numpy(values: torch.Tensor) -> np.ndarray:
    return values.detach().cpu().numpy().astype(float)
