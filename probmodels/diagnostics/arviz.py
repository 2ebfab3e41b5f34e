"""The one place probmodels imports ArviZ: conversion to InferenceData and the
ArviZ statistics the library reports.

The groups are built here from our own arrays (``az.from_pyro`` is not used:
it reads private MCMC attributes and silently drops the log-likelihood group
when computing it fails).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
import torch

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az

# ArviZ 0.23 computes MCSE of the sd through numba when numba is installed, and that
# path raises TypeError under NumPy >= 2 ("only 0-dimensional arrays can be converted
# to Python scalars"); its NumPy path gives the same numbers, so keep to it.
if az.Numba.numba_flag:
    az.Numba.disable_numba()

if TYPE_CHECKING:
    import pandas as pd

    from ..core.posterior import Posterior

__all__ = [
    "to_arviz", "from_netcdf", "pointwise_data", "summary", "loo", "waic", "compare", "rhat", "ess", "bfmi", "psislw",
    "InferenceData",
]

InferenceData = az.InferenceData


def _numpy(values: Mapping[str, Any] | None) -> dict[str, np.ndarray] | None:
    if not values:
        return None
    return {k: v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v) for k, v in values.items()}


def _netcdf_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes netCDF can store: strings, numbers and numeric arrays."""
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        if isinstance(value, (list, tuple)):
            value = np.asarray(value)
        out[key] = value
    return out


def to_arviz(
    posterior: "Posterior",
    *,
    log_likelihood: bool = True,
    posterior_predictive: Mapping[str, Any] | None = None,
) -> az.InferenceData:
    """Convert a :class:`~probmodels.core.posterior.Posterior` to ArviZ InferenceData.

    Parameters
    ----------
    posterior
        A fitted posterior.
    log_likelihood
        Include the pointwise ``log_likelihood`` group (needed by ``az.loo``
        and ``az.waic``) when the posterior can provide it.
    posterior_predictive
        Optional ``name -> (chain, draw, *shape)`` samples for the
        ``posterior_predictive`` group (see :meth:`Posterior.predict`).

    Returns
    -------
    arviz.InferenceData
        Groups ``posterior``, ``sample_stats`` (with ``energy`` for
        ``az.bfmi``), ``log_likelihood``, ``posterior_predictive`` and
        ``observed_data`` where available, with dims named after the model's plates.
    """
    ll = posterior.log_likelihood() if log_likelihood and posterior.has_log_likelihood else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        idata = az.from_dict(
            posterior=_numpy(posterior.draws),
            sample_stats=_numpy(posterior.sample_stats),
            log_likelihood=_numpy(ll),
            posterior_predictive=_numpy(posterior_predictive),
            observed_data=_numpy(posterior.observed_data),
            dims={k: list(v) for k, v in posterior.dims.items()},
        )
    idata.posterior.attrs.update(_netcdf_attrs(posterior.attrs))
    return idata


def from_netcdf(path: str) -> az.InferenceData:
    """Read InferenceData written by :meth:`Posterior.save`."""
    return az.from_netcdf(path, engine="h5netcdf")


def pointwise_data(log_likelihood: np.ndarray, posterior: Mapping[str, Any]) -> az.InferenceData:
    """InferenceData with a pointwise log-likelihood ``(chain, draw, n)`` as variable ``"obs"`` and the posterior draws.

    ArviZ's ``loo``, ``waic`` and ``compare`` read the relative efficiency of
    the draws from the ``posterior`` group, so it must hold the fit's draws
    for the results to equal those on the fit's full InferenceData.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return az.from_dict(posterior=_numpy(posterior), log_likelihood={"obs": np.asarray(log_likelihood, dtype=float)})


def summary(idata: az.InferenceData, var_names: list[str] | None = None, hdi_prob: float = 0.94) -> "pd.DataFrame":
    """ArviZ's summary table: mean, sd, HDI, MCSE, bulk/tail ESS and rank-normalised R-hat."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return az.summary(idata, var_names=var_names, hdi_prob=hdi_prob)


def loo(idata: az.InferenceData, pointwise: bool = False) -> Any:
    """PSIS-LOO (elpd_loo, p_loo, Pareto k) of InferenceData with a log_likelihood group."""
    return az.loo(idata, pointwise=pointwise)


def waic(idata: az.InferenceData, pointwise: bool = False) -> Any:
    """WAIC (elpd_waic, p_waic) of InferenceData with a log_likelihood group."""
    return az.waic(idata, pointwise=pointwise)


def compare(idatas: Mapping[str, az.InferenceData], method: str = "stacking") -> "pd.DataFrame":
    """ArviZ's PSIS-LOO comparison table (rank, elpd_loo, p_loo, elpd_diff, weight, se, dse, warning, scale)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # callers report Pareto k themselves
        return az.compare(dict(idatas), ic="loo", method=method)


def rhat(idata: az.InferenceData) -> Any:
    """Rank-normalised split R-hat of every posterior variable."""
    return az.rhat(idata)


def ess(idata: az.InferenceData, method: str = "bulk") -> Any:
    """Effective sample size (``"bulk"`` or ``"tail"``) of every posterior variable."""
    return az.ess(idata, method=method)


def bfmi(idata: az.InferenceData) -> np.ndarray:
    """Bayesian fraction of missing information, per chain."""
    return az.bfmi(idata)


def psislw(log_weights: np.ndarray) -> tuple[np.ndarray, float]:
    """Pareto-smoothed importance sampling of one vector of log weights.

    Returns the smoothed, normalised log weights and the Pareto shape estimate
    k-hat (Vehtari et al., "Pareto smoothed importance sampling", JMLR 2024).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # callers report k-hat themselves
        smoothed, k_hat = az.psislw(np.asarray(log_weights, dtype=float))
    return np.asarray(smoothed), float(k_hat)
