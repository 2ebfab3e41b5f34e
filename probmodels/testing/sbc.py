"""Simulation-based calibration (SBC): does an inference engine recover the prior?

Draw parameters from the prior, data given those parameters, and posterior
draws given the data; if the posterior draws are right, the rank of the true
value among ``L`` independent posterior draws is uniform on ``{0, ..., L}``
(Talts et al. 2018). Too narrow a posterior piles ranks at the ends (an ECDF
that leaves its band in an S), too wide a posterior piles them in the middle,
a biased one tilts them.

The test here is the graphical ECDF test of Säilynoja, Bürkner and Vehtari
(2022): the empirical CDF of the ranks is compared with simultaneous
confidence bands of level ``1 - alpha`` at every rank, so one check covers
all ranks at once without binning. Ranks are discrete, so the ECDF is
evaluated at the ``L`` points ``k / (L + 1)``, where its count is exactly
binomial under uniformity; the band's pointwise level is found by simulation.

References
----------
S. Talts, M. Betancourt, D. Simpson, A. Vehtari, A. Gelman (2018),
"Validating Bayesian inference algorithms with simulation-based calibration", arXiv:1804.06788.
T. Säilynoja, P.-C. Bürkner, A. Vehtari (2022), "Graphical test for discrete
uniformity and its applications in goodness-of-fit evaluation and multiple
sample comparison", Statistics and Computing 32.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple, Sequence

import numpy as np
import torch
from scipy import stats

from .._validation import check_positive_int, check_probability
from ..exceptions import ShapeError

__all__ = ["SBCResult", "rank_statistics", "ecdf_band", "sbc_from_draws", "simulation_based_calibration", "plot_sbc"]


class SBCResult(NamedTuple):
    """Ranks of the true parameters among posterior draws, and their ECDF test.

    Attributes
    ----------
    ranks : ndarray
        ``(num_simulations, num_parameters)`` integers in ``0 .. num_draws``.
    num_draws : int
        Posterior draws per simulation (``L``).
    names : tuple of str
        A name per parameter column (``"site[i]"`` for array sites).
    alpha : float
        Level of each parameter's simultaneous band.
    lower, upper : ndarray
        The band for the ECDF count at ranks ``1 .. L``, shape ``(L,)``.
    outside : ndarray
        Per parameter, how many of the ``L`` ECDF points leave the band.
    """

    ranks: np.ndarray
    num_draws: int
    names: tuple[str, ...]
    alpha: float
    lower: np.ndarray
    upper: np.ndarray
    outside: np.ndarray

    @property
    def calibrated(self) -> np.ndarray:
        """Per parameter, whether its ECDF stays inside the band."""
        return self.outside == 0

    @property
    def passed(self) -> bool:
        """Whether every parameter's ECDF stays inside its band."""
        return bool(self.calibrated.all())

    def to_pandas(self) -> Any:
        """One row per parameter: ECDF points outside the band, the largest
        ECDF deviation from uniform, and the mean rank relative to ``L / 2``."""
        import pandas as pd

        n, L = self.ranks.shape[0], self.num_draws
        counts = _ecdf_counts(self.ranks, L)
        expected = n * np.arange(1, L + 1) / (L + 1)
        return pd.DataFrame(
            {
                "outside_band": self.outside,
                "max_ecdf_deviation": np.abs(counts - expected[:, None]).max(0) / n,
                "mean_rank_shift": self.ranks.mean(0) / L - 0.5,
                "calibrated": self.calibrated,
            },
            index=list(self.names),
        )


def rank_statistics(truth: torch.Tensor | np.ndarray, draws: torch.Tensor | np.ndarray) -> np.ndarray:
    """Rank of each true value among its posterior draws.

    Parameters
    ----------
    truth
        ``(num_simulations, num_parameters)``.
    draws
        ``(num_simulations, num_draws, num_parameters)``.

    Returns
    -------
    ndarray
        ``(num_simulations, num_parameters)``: the number of draws below the
        true value (ties, as from a discrete parameter, broken at random with a fixed seed).

    Examples
    --------
    >>> import numpy as np
    >>> from probmodels.testing import rank_statistics
    >>> rank_statistics(np.array([[0.0]]), np.array([[[-1.0], [0.5], [-0.2]]])).tolist()
    [[2]]
    """
    truth, draws = np.asarray(_numpy(truth), dtype=float), np.asarray(_numpy(draws), dtype=float)
    if truth.ndim != 2 or draws.ndim != 3 or draws.shape[0] != truth.shape[0] or draws.shape[2] != truth.shape[1]:
        raise ShapeError(
            f"truth must be (simulations, parameters) and draws (simulations, draws, parameters) with matching sizes; got "
            f"truth {truth.shape} and draws {draws.shape}."
        )
    if not (np.isfinite(truth).all() and np.isfinite(draws).all()):
        raise ShapeError("truth and draws must be finite; a NaN or inf draw means the inference failed for that simulation.")
    below = (draws < truth[:, None, :]).sum(1)
    ties = (draws == truth[:, None, :]).sum(1)
    jitter = np.random.default_rng(0).integers(0, ties + 1)
    return below + jitter


def ecdf_band(num_simulations: int, num_draws: int, alpha: float = 0.05, *, num_trials: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Simultaneous band for the ECDF counts of uniform ranks on ``{0, ..., L}``.

    Parameters
    ----------
    num_simulations
        Number of ranks ``N``.
    num_draws
        ``L``; ranks take ``L + 1`` values.
    alpha
        The probability that uniform ranks leave the band somewhere.
    num_trials
        Uniform rank samples simulated to calibrate the pointwise level.
    seed
        Seed of that simulation.

    Returns
    -------
    lower, upper : ndarray
        Integer bounds, shape ``(L,)``, on ``#{rank < k}`` for ``k = 1 .. L``.
    """
    n, L = check_positive_int(num_simulations, "num_simulations"), check_positive_int(num_draws, "num_draws")
    alpha = check_probability(alpha, "alpha")
    z = np.arange(1, L + 1) / (L + 1)
    rng = np.random.default_rng(seed)
    counts = _ecdf_counts(rng.integers(0, L + 1, size=(num_trials, n)).T, L)
    tail = np.minimum(stats.binom.cdf(counts, n, z[:, None]), stats.binom.sf(counts - 1, n, z[:, None]))
    gamma = np.quantile(2 * tail.min(0), alpha)
    return stats.binom.ppf(gamma / 2, n, z), stats.binom.isf(gamma / 2, n, z)


def sbc_from_draws(
    truth: Mapping[str, torch.Tensor] | torch.Tensor | np.ndarray,
    draws: Mapping[str, torch.Tensor] | torch.Tensor | np.ndarray,
    *,
    alpha: float = 0.05,
    seed: int = 0,
) -> SBCResult:
    """SBC ranks and ECDF test from true values and posterior draws already in hand.

    Parameters
    ----------
    truth
        ``{site: (num_simulations, *shape)}`` or an array ``(num_simulations, num_parameters)``.
    draws
        ``{site: (num_simulations, num_draws, *shape)}`` or ``(num_simulations, num_draws, num_parameters)``;
        the draws should be (nearly) independent: thin MCMC output to about its effective sample size.
    alpha
        Family-wise level: each of the ``P`` parameters is tested at ``alpha / P``.
    seed
        Seed of the band's simulation and of tie breaking.

    Returns
    -------
    SBCResult

    Examples
    --------
    Exact posterior draws pass; draws three times too narrow fail:

    >>> import numpy as np
    >>> from probmodels.testing import sbc_from_draws
    >>> rng = np.random.default_rng(0)
    >>> truth = rng.normal(size=(100, 1))
    >>> draws = rng.normal(size=(100, 49, 1))    # the posterior is the prior here: no data
    >>> sbc_from_draws(truth, draws).passed
    True
    >>> sbc_from_draws(truth, draws / 3).passed
    False
    """
    names, truth_matrix, draw_tensor = _flatten(truth, draws)
    ranks = rank_statistics(truth_matrix, draw_tensor)
    n, L = ranks.shape[0], draw_tensor.shape[1]
    level = check_probability(alpha, "alpha") / ranks.shape[1]
    lower, upper = ecdf_band(n, L, level, seed=seed)
    counts = _ecdf_counts(ranks, L)
    outside = ((counts < lower[:, None]) | (counts > upper[:, None])).sum(0)
    return SBCResult(ranks, L, names, level, lower, upper, outside)


def simulation_based_calibration(
    simulate: Callable[[np.random.Generator], tuple[Mapping[str, torch.Tensor], Any]],
    infer: Callable[[Any, int], Mapping[str, torch.Tensor]],
    *,
    num_simulations: int = 200,
    alpha: float = 0.05,
    seed: int = 0,
) -> SBCResult:
    """Run SBC one simulation at a time.

    Parameters
    ----------
    simulate
        ``simulate(rng) -> (truth, data)``: parameters ``{site: value}`` drawn
        from the prior and data drawn given them.
    infer
        ``infer(data, seed) -> {site: (num_draws, *shape)}``: (nearly)
        independent posterior draws, the same number every call.
    num_simulations
        Number of prior draws.
    alpha, seed
        As in :func:`sbc_from_draws`; simulation ``i`` gets ``infer(data, seed + i)``.

    Returns
    -------
    SBCResult
    """
    num_simulations = check_positive_int(num_simulations, "num_simulations")
    rng = np.random.default_rng(seed)
    truths, draws = [], []
    for i in range(num_simulations):
        truth, data = simulate(rng)
        truths.append({k: torch.as_tensor(v) for k, v in truth.items()})
        draws.append({k: torch.as_tensor(v) for k, v in infer(data, seed + i).items()})
    stacked_truth = {k: torch.stack([t[k] for t in truths]) for k in truths[0]}
    stacked_draws = {k: torch.stack([d[k] for d in draws]) for k in truths[0]}
    return sbc_from_draws(stacked_truth, stacked_draws, alpha=alpha, seed=seed)


def plot_sbc(result: SBCResult, *, ax: Any = None, names: Sequence[str] | None = None) -> Any:
    """ECDF-difference plot: each parameter's ECDF minus the uniform CDF, with the band.

    Parameters
    ----------
    result
        From :func:`sbc_from_draws` or :func:`simulation_based_calibration`.
    ax
        Matplotlib axes (default: a new figure).
    names
        Parameters to draw (default: all, at most 12).

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    n, L = result.ranks.shape[0], result.num_draws
    z = np.arange(1, L + 1) / (L + 1)
    ax.fill_between(z, result.lower / n - z, result.upper / n - z, color="0.85", step="mid", label=f"{1 - result.alpha:.3g} band")
    counts = _ecdf_counts(result.ranks, L)
    chosen = list(names) if names is not None else list(result.names[:12])
    for name in chosen:
        column = result.names.index(name)
        ax.step(z, counts[:, column] / n - z, where="mid", label=name, lw=1)
    ax.axhline(0, color="k", lw=0.5)
    ax.set(xlabel="fractional rank", ylabel="ECDF - uniform CDF", title="Simulation-based calibration")
    ax.legend(fontsize="small", ncol=2)
    return ax


def _ecdf_counts(ranks: np.ndarray, L: int) -> np.ndarray:
    """``#{rank < k}`` for ``k = 1 .. L``, per column: shape ``(L, columns)``."""
    histogram = np.stack([np.bincount(column, minlength=L + 1) for column in np.asarray(ranks, dtype=np.int64).T], axis=1)
    return np.cumsum(histogram, axis=0)[:-1]


def _numpy(value: Any) -> Any:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value


def _flatten(truth: Any, draws: Any) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Site dicts to matrices with a name per column."""
    if not isinstance(truth, Mapping):
        matrix = np.asarray(_numpy(truth), dtype=float)
        names = tuple(f"theta[{i}]" for i in range(matrix.shape[-1])) if matrix.ndim == 2 else ()
        return names, matrix, np.asarray(_numpy(draws), dtype=float)
    if not isinstance(draws, Mapping) or set(draws) != set(truth):
        raise ShapeError(f"truth and draws must name the same sites; got {sorted(truth)} and {sorted(draws) if isinstance(draws, Mapping) else type(draws).__name__}.")
    names, columns, draw_columns = [], [], []
    for site in truth:
        value, sampled = np.asarray(_numpy(truth[site]), dtype=float), np.asarray(_numpy(draws[site]), dtype=float)
        if sampled.ndim < 2 or sampled.shape[0] != value.shape[0] or sampled.shape[2:] != value.shape[1:]:
            raise ShapeError(
                f"draws[{site!r}] has shape {sampled.shape}; with truth of shape {value.shape} it must be "
                f"(simulations, draws, *{value.shape[1:]})."
            )
        size = int(np.prod(value.shape[1:], dtype=int))
        columns.append(value.reshape(value.shape[0], size))
        draw_columns.append(sampled.reshape(sampled.shape[0], sampled.shape[1], size))
        names.extend([site] if value.ndim == 1 else [f"{site}[{i}]" for i in range(size)])
    return tuple(names), np.concatenate(columns, axis=1), np.concatenate(draw_columns, axis=2)
