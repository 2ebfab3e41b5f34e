"""A picture of a fitted HMM on data: the observations over their Viterbi states, and the posterior state probabilities."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..exceptions import ModelSpecError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .model import HMM

__all__ = ["plot_states"]


def plot_states(
    model: "HMM",
    X: Any,
    lengths: Any = None,
    ax: Sequence["Axes"] | None = None,
    *,
    feature: int = 0,
    cmap: str = "tab10",
    alpha: float = 0.3,
    title: str | None = None,
) -> "Figure":
    """Plot a sequence with its decoded states, above a panel of posterior state-probability bands.

    Top panel: feature ``feature`` of ``X`` as a line over a background
    coloured by the Viterbi state of each step (one bar collection per state,
    labelled ``"state k"``). Bottom panel: ``p(z_t = k | X)`` stacked over the
    states (one band per state, in the same colours). With several sequences
    they are drawn one after another, separated by dashed vertical lines.

    Parameters
    ----------
    model : HMM
        A fitted model (EM or Bayesian; after a Bayesian fit the
        probabilities are averaged over posterior draws, as in
        :meth:`~probmodels.hmm.HMM.predict_proba`).
    X : array-like of shape (n_samples, n_features)
        Observations, sequences concatenated.
    lengths : array-like of int, optional
        Length of each sequence in ``X``; None: one sequence.
    ax : sequence of two matplotlib Axes, optional
        Where to draw (top, bottom); default a new figure with two panels sharing the time axis.
    feature : int, default 0
        Column of ``X`` to draw.
    cmap : str, default "tab10"
        Matplotlib colormap of the states (a qualitative one is cycled; a
        continuous one is sampled evenly).
    alpha : float, default 0.3
        Opacity of the state background.
    title : str, optional
        Title of the top panel.

    Returns
    -------
    matplotlib.figure.Figure
        The figure holding the two panels (``figure.axes``).

    Raises
    ------
    ModelSpecError
        ``feature`` is not a column of ``X``, ``ax`` is not two Axes, or the model is not fitted.
    """
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    values = np.asarray(X, dtype=float)
    if values.ndim != 2:
        values = values.reshape(len(values), -1)
    if not (isinstance(feature, (int, np.integer)) and -values.shape[1] <= feature < values.shape[1]):
        raise ModelSpecError(f"feature must be a column index of X (which has {values.shape[1]} column(s)), got {feature!r}.")
    if ax is None:
        figure = Figure(figsize=(10, 5), layout="constrained")
        top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (2, 1)})
    else:
        if len(ax) != 2:
            raise ModelSpecError(f"ax must be two matplotlib Axes (top, bottom), got {len(ax)}.")
        top, bottom = ax
        figure = top.figure
    states = model.predict(X, lengths)
    probs = model.predict_proba(X, lengths)
    k = probs.shape[1]
    colormap = matplotlib.colormaps[cmap]
    colors = [colormap(i % colormap.N) for i in range(k)] if colormap.N < 256 else list(colormap(np.linspace(0, 1, k)))
    steps = np.arange(len(states))

    low, high = values[:, feature].min(), values[:, feature].max()
    pad = 0.05 * (high - low) or 0.5
    change = np.flatnonzero(np.diff(states)) + 1
    starts = np.concatenate([[0], change])
    widths = np.diff(np.concatenate([starts, [len(states)]]))
    for state in range(k):
        runs = states[starts] == state
        if runs.any():
            top.broken_barh(list(zip(starts[runs] - 0.5, widths[runs])), (low - pad, high - low + 2 * pad),
                            facecolors=colors[state], alpha=alpha, label=f"state {state}")
    top.plot(steps, values[:, feature], color="black", linewidth=0.8, label="observed")
    top.set_ylim(low - pad, high + pad)
    top.set_ylabel(f"x[{feature}]")
    handles = [Patch(facecolor=colors[s], alpha=alpha, label=f"state {s}") for s in range(k)]
    top.legend(handles=handles, loc="upper right", ncols=min(k, 8), fontsize="small")
    if title is not None:
        top.set_title(title)

    bottom.stackplot(steps, probs.T, colors=colors, labels=[f"state {s}" for s in range(k)])
    bottom.set_ylim(0, 1)
    bottom.set_xlim(-0.5, len(states) - 0.5)
    bottom.set_ylabel("p(state | X)")
    bottom.set_xlabel("time step")

    if lengths is not None:
        for boundary in np.cumsum(np.asarray(lengths))[:-1]:
            for axes in (top, bottom):
                axes.axvline(boundary - 0.5, color="grey", linestyle="--", linewidth=1)
    return figure
