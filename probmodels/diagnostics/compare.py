"""One table across fits: PSIS-LOO, stacking weights, log evidence and Bayes factors, with warnings.

:func:`compare` ranks fits of the same observations, from any family and
either inference method, by their expected log predictive density (ArviZ's
``compare``), and, where the fit allows it, by their marginal likelihood
(:func:`~probmodels.diagnostics.evidence.log_evidence`). The two answer
different questions: elpd_loo scores predictions of new data, the evidence
scores the prior as well and is the basis of Bayes factors.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..core.posterior import Posterior
from ..exceptions import ConvergenceWarning, DataError, ModelSpecError, ProbModelsError, ShapeError
from .arviz import compare as arviz_compare
from .arviz import InferenceData, ess, loo, pointwise_data, rhat, to_arviz
from .complexity import pointwise_log_likelihood
from .evidence import METHODS, PARETO_K_WARN, log_evidence
from .ksd import KSD_ALPHA, thinned_ksd

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["compare", "plot_compare", "COLUMNS"]

COLUMNS = (
    "elpd_loo", "se", "d_elpd_loo", "d_se", "p_loo", "max_pareto_k", "weight",
    "log_evidence", "log_evidence_se", "log_bayes_factor", "log_bayes_factor_se",
    "max_rhat", "min_ess_bulk", "ksd_p_value", "warnings", "notes",
)
RHAT_WARN = 1.01
RELATIVE_MSE_WARN = 0.01
ESTIMATORS = tuple(m for m in METHODS if m not in ("elbo", "exact"))
"""The ``log_evidence`` methods compare accepts: estimates, not bounds, for any fit."""


def compare(
    fits: Mapping[str, Posterior],
    evidence: str | None = "bridge",
    *,
    method: str = "stacking",
    evidence_kwargs: Mapping[str, Any] | None = None,
    stein: bool = True,
    max_ksd_draws: int = 1000,
) -> pd.DataFrame:
    """Compare fits of the same observations in one table.

    Parameters
    ----------
    fits
        ``name -> Posterior``, at least two, each with a pointwise
        log-likelihood of the same observations.
    evidence
        Method of :func:`~probmodels.diagnostics.evidence.log_evidence` for
        the log-evidence columns (``"bridge"``, ``"importance"``,
        ``"laplace"`` or ``"stepping_stone"``), or None to skip them. A fit that cannot provide it
        (no model attached, SVI with ``"bridge"``) gets NaN and a note.
    method
        How ArviZ weighs the fits: ``"stacking"`` (default),
        ``"BB-pseudo-BMA"`` or ``"pseudo-BMA"``.
    evidence_kwargs
        Further arguments of ``log_evidence`` (e.g. ``seed``).
    stein
        Add the kernel Stein discrepancy's bootstrap p-value of each fit
        (:func:`~probmodels.diagnostics.ksd.thinned_ksd` on at most
        ``max_ksd_draws`` draws; NaN with a note without a model). Unlike
        R-hat and ESS it tests the draws against the model's posterior.
    max_ksd_draws
        Cap on the draws the KSD uses (its cost is quadratic in them).

    Returns
    -------
    pandas.DataFrame
        One row per fit, indexed by name, best elpd_loo first, with the
        columns of :data:`COLUMNS`: ``elpd_loo`` and its ``se``;
        ``d_elpd_loo`` (how far below the best, >= 0) and its ``d_se``; ``p_loo``;
        ``max_pareto_k``; ``weight`` (ArviZ's ``method`` weights);
        ``log_evidence`` and ``log_evidence_se``; ``log_bayes_factor``
        against the fit of largest evidence and ``log_bayes_factor_se``
        (the square root of the sum of both squared standard errors; NaN
        with ``"laplace"``, which has none); ``max_rhat`` and
        ``min_ess_bulk`` over the latent sites (NaN for one chain);
        ``ksd_p_value``; ``warnings`` (Pareto k-hat above 0.7, divergences,
        R-hat above 1.01, bridge relative MSE above 0.01, KSD p-value below
        0.01) and ``notes``, each ``"; "``-joined.

    Raises
    ------
    TypeError
        ``fits`` is not a mapping of Posteriors.
    ModelSpecError
        Fewer than two fits, or an unknown ``evidence`` method.
    ShapeError
        A fit has no pointwise log-likelihood, or the fits' pointwise
        log-likelihoods have different numbers of observations.
    DataError
        The fits store different observed values.

    References
    ----------
    .. [1] A. Vehtari, A. Gelman and J. Gabry, "Practical Bayesian model
       evaluation using leave-one-out cross-validation and WAIC", Statistics
       and Computing 27, 1413-1432, 2017.
    .. [2] Y. Yao, A. Vehtari, D. Simpson and A. Gelman, "Using stacking to
       average Bayesian predictive distributions", Bayesian Analysis 13(3),
       917-1007, 2018.
    .. [3] R. E. Kass and A. E. Raftery, "Bayes factors", JASA 90, 773-795, 1995.
    """
    if not isinstance(fits, Mapping) or not all(isinstance(f, Posterior) for f in fits.values()):
        raise TypeError("fits must be a mapping name -> probmodels Posterior, e.g. compare({'linear': fit1, 'quadratic': fit2}).")
    if len(fits) < 2:
        raise ModelSpecError(f"compare needs at least two fits, got {len(fits)}.")
    if evidence is not None and evidence not in ESTIMATORS:
        hint = " (the ELBO is a lower bound, not an estimate; Bayes factors need estimates)" if evidence == "elbo" else ""
        raise ModelSpecError(f"evidence must be one of {ESTIMATORS} or None, got {evidence!r}{hint}.")
    names = [str(name) for name in fits]
    pointwise = {name: pointwise_log_likelihood(fit) for name, fit in zip(names, fits.values())}
    _check_same_observations(names, list(fits.values()), pointwise)
    idatas = {name: pointwise_data(pointwise[name], fit.draws) for name, fit in zip(names, fits.values())}
    table = arviz_compare(idatas, method=method)
    rows = {}
    for name, fit in zip(names, fits.values()):
        k_max = _max_pareto_k(idatas[name])
        worst_rhat, least_ess = _mixing(fit)
        problems = _fit_warnings(fit, k_max, worst_rhat)
        notes: list[str] = []
        estimate = (math.nan, math.nan)
        if evidence is not None:
            estimate = _evidence(fit, evidence, dict(evidence_kwargs or {}), problems, notes)
        ksd_p = _ksd_p_value(fit, max_ksd_draws, problems, notes) if stein else math.nan
        row = table.loc[name]
        rows[name] = {
            "elpd_loo": float(row["elpd_loo"]), "se": float(row["se"]), "d_elpd_loo": float(row["elpd_diff"]),
            "d_se": float(row["dse"]), "p_loo": float(row["p_loo"]), "max_pareto_k": k_max, "weight": float(row["weight"]),
            "log_evidence": estimate[0], "log_evidence_se": estimate[1],
            "max_rhat": worst_rhat, "min_ess_bulk": least_ess, "ksd_p_value": ksd_p,
            "warnings": "; ".join(problems), "notes": "; ".join(notes if evidence is not None else ["evidence not requested"]),
        }
    out = pd.DataFrame.from_dict(rows, orient="index")
    out["log_bayes_factor"] = out["log_bayes_factor_se"] = math.nan
    finite = out["log_evidence"].dropna()
    if not finite.empty:
        best = finite.idxmax()
        out["log_bayes_factor"] = out["log_evidence"] - out.at[best, "log_evidence"]
        out["log_bayes_factor_se"] = np.sqrt(out["log_evidence_se"] ** 2 + out.at[best, "log_evidence_se"] ** 2)
        out.at[best, "log_bayes_factor_se"] = 0.0
    return out.loc[list(table.index), list(COLUMNS)]


def _max_pareto_k(idata: InferenceData) -> float:
    """Largest PSIS-LOO Pareto k-hat of InferenceData with a log-likelihood group."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return float(np.max(loo(idata, pointwise=True)["pareto_k"]))


def _check_same_observations(names: Sequence[str], fits: Sequence[Posterior], pointwise: Mapping[str, np.ndarray]) -> None:
    sizes = {name: values.shape[-1] for name, values in pointwise.items()}
    if len(set(sizes.values())) > 1:
        raise ShapeError(
            f"the fits' pointwise log-likelihoods cover different numbers of observations ({sizes}); compare needs fits "
            "of the same observations."
        )
    observed = {}
    for name, fit in zip(names, fits):
        if fit.observed_data:
            observed[name] = np.concatenate([v.detach().cpu().double().reshape(-1).numpy() for v in fit.observed_data.values()])
    reference = next(iter(observed), None)
    for name, values in observed.items():
        if values.shape == observed[reference].shape and not np.allclose(values, observed[reference]):
            raise DataError(
                f"fits {reference!r} and {name!r} were fitted to different observed values; compare needs fits of the "
                "same observations."
            )


def _mixing(fit: Posterior) -> tuple[float, float]:
    """Largest R-hat and smallest bulk ESS over the latent sites (NaN where undefined)."""
    if fit.num_chains < 2 or fit.num_draws < 4:
        return math.nan, math.nan
    latents = [site.name for site in fit.info.latents] if fit.info is not None else None
    idata = to_arviz(fit, log_likelihood=False)
    stats = []
    for statistic, pick in ((rhat(idata), np.nanmax), (ess(idata, "bulk"), np.nanmin)):
        values = [np.asarray(stat.values, dtype=float) for name, stat in statistic.data_vars.items() if latents is None or name in latents]
        finite = [float(pick(v)) for v in values if np.isfinite(v).any()]
        stats.append(float(pick(finite)) if finite else math.nan)
    return stats[0], stats[1]


def _fit_warnings(fit: Posterior, k_max: float, worst_rhat: float) -> list[str]:
    problems = []
    if k_max > PARETO_K_WARN:
        problems.append(f"Pareto k-hat {k_max:.2f} > {PARETO_K_WARN}")
    divergent = int(fit.sample_stats["diverging"].sum()) if "diverging" in fit.sample_stats else 0
    if divergent:
        problems.append(f"{divergent} divergences")
    if worst_rhat > RHAT_WARN:
        problems.append(f"R-hat {worst_rhat:.3f} > {RHAT_WARN}")
    return problems


def _ksd_p_value(fit: Posterior, max_draws: int, problems: list[str], notes: list[str]) -> float:
    """The KSD bootstrap p-value of a fit, or NaN with a note when it has no model."""
    if fit.model is None or fit.info is None:
        notes.append("no KSD: no model attached")
        return math.nan
    try:
        p_value = thinned_ksd(fit, max_draws).p_value
    except ProbModelsError as error:
        notes.append(f"no KSD: {error}")
        return math.nan
    if p_value < KSD_ALPHA:
        problems.append(f"KSD p-value {p_value:.3f} < {KSD_ALPHA}")
    return p_value


def _evidence(fit: Posterior, method: str, kwargs: dict[str, Any], problems: list[str], notes: list[str]) -> tuple[float, float]:
    """Log evidence and its se, or NaNs with a note when the fit cannot provide it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # kept in the estimate's notes
            estimate = log_evidence(fit, method, **kwargs)
    except ProbModelsError as error:
        notes.append(f"no log evidence: {error}")
        return math.nan, math.nan
    relative_mse = estimate.diagnostics.get("relative_mse", 0.0)
    if relative_mse > RELATIVE_MSE_WARN:
        problems.append(f"bridge relative MSE {relative_mse:.3g} > {RELATIVE_MSE_WARN}")
    if estimate.diagnostics.get("converged", 1.0) == 0.0:
        problems.append("bridge sampling did not converge")
    if estimate.diagnostics.get("pareto_k", 0.0) > PARETO_K_WARN:
        problems.append(f"importance-sampling Pareto k-hat {estimate.diagnostics['pareto_k']:.2f} > {PARETO_K_WARN}")
    notes.append(f"log evidence by {estimate.method}")
    return estimate.log_evidence, estimate.standard_error


def plot_compare(table: pd.DataFrame, ax: Sequence["Axes"] | None = None) -> Sequence["Axes"]:
    """Plot elpd_loo and log evidence with ±1 standard-error bars, side by side.

    Parameters
    ----------
    table
        A table from :func:`compare`.
    ax
        Two matplotlib axes (elpd_loo, log evidence); new ones by default.

    Returns
    -------
    sequence of matplotlib.axes.Axes
        The two axes.
    """
    missing = [c for c in ("elpd_loo", "se", "log_evidence", "log_evidence_se") if c not in table.columns]
    if missing:
        raise ModelSpecError(f"table lacks the column(s) {missing}; pass a table returned by compare().")
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(1, 2, figsize=(9, 0.6 * len(table) + 1.5), sharey=True, layout="constrained")
    if len(ax) != 2:
        raise ModelSpecError(f"ax must be two axes (elpd_loo, log evidence), got {len(ax)}.")
    positions = np.arange(len(table))[::-1]
    panels = (("elpd_loo", "se", "elpd_loo (PSIS-LOO)"), ("log_evidence", "log_evidence_se", "log evidence"))
    for axis, (value, error, title) in zip(ax, panels):
        values = table[value].to_numpy(dtype=float)
        errors = np.nan_to_num(table[error].to_numpy(dtype=float))
        axis.errorbar(values, positions, xerr=errors, fmt="o", capsize=3)
        axis.set_title(title)
        axis.set_xlabel("nats")
        if not np.isfinite(values).any():
            axis.text(0.5, 0.5, "not available", transform=axis.transAxes, ha="center", va="center")
    ax[0].set_yticks(positions)
    ax[0].set_yticklabels([str(name) for name in table.index])
    return ax
