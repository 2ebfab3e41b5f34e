"""Effective model complexity of a fit: p_loo, p_waic, DIC's p_D and p_V, free parameters, AIC and BIC.

Each effective number of parameters measures how much the fit to the data
exceeds what the posterior predictive would give to new data; for a regular
model with weak priors and many observations they all approach the number
of free parameters. They disagree when the posterior is far from normal, the
priors are informative, or single observations dominate (then the Pareto
k-hat of PSIS-LOO says so).
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch

from ..core.posterior import Posterior
from ..core.predictive import log_likelihood as compute_log_likelihood
from ..exceptions import ConvergenceWarning, DataError, ModelSpecError, ShapeError
from .arviz import loo, pointwise_data, waic
from .evidence import PARETO_K_WARN

__all__ = ["Complexity", "InformationCriteria", "complexity", "information_criteria", "pointwise_log_likelihood"]


@dataclass(frozen=True)
class Complexity:
    """Effective number of parameters of a fit, by several definitions.

    Attributes
    ----------
    elpd_loo, se_loo : float
        PSIS-LOO expected log pointwise predictive density and its standard error.
    p_loo : float
        Effective number of parameters from PSIS-LOO: ``lppd - elpd_loo``.
    pareto_k_max : float
        Largest Pareto k-hat of the leave-one-out importance weights.
    num_high_k : int
        Observations with k-hat above 0.7 (their LOO estimate is unreliable).
    elpd_waic, se_waic, p_waic : float
        WAIC's elpd, its standard error, and ``p_waic``: the sum over
        observations of the posterior variance of the log-likelihood.
    p_dic : float
        DIC's ``p_D = 2 (log p(y | theta_bar) - mean_s log p(y | theta_s))``
        with ``theta_bar`` the posterior mean in unconstrained space mapped
        back (NaN when no model is attached to evaluate the likelihood there).
    p_v : float
        DIC's variance form ``p_V = 2 var_s(log p(y | theta_s))``.
    n_parameters : int or None
        Free parameters: the unconstrained dimension of the latent sites
        (None when no model is attached).
    n_observations : int
        Pointwise log-likelihood terms.
    pareto_k : numpy.ndarray
        Pareto k-hat of each observation, ``(n_observations,)``.
    """

    elpd_loo: float
    se_loo: float
    p_loo: float
    pareto_k_max: float
    num_high_k: int
    elpd_waic: float
    se_waic: float
    p_waic: float
    p_dic: float
    p_v: float
    n_parameters: int | None
    n_observations: int
    pareto_k: np.ndarray = field(repr=False)

    def __str__(self) -> str:
        params = "n/a (no model attached)" if self.n_parameters is None else str(self.n_parameters)
        p_dic = "n/a (no model attached)" if math.isnan(self.p_dic) else f"{self.p_dic:.2f}"
        return (
            f"elpd_loo {self.elpd_loo:.2f} (se {self.se_loo:.2f})   p_loo {self.p_loo:.2f}   "
            f"Pareto k > {PARETO_K_WARN}: {self.num_high_k} of {self.n_observations} (max {self.pareto_k_max:.2f})\n"
            f"elpd_waic {self.elpd_waic:.2f} (se {self.se_waic:.2f})   p_waic {self.p_waic:.2f}\n"
            f"DIC p_D (at the posterior mean) {p_dic}   p_V (2 var log-lik) {self.p_v:.2f}\n"
            f"free parameters {params}   observations {self.n_observations}"
        )


class InformationCriteria(NamedTuple):
    """AIC and BIC of a maximum-likelihood fit (smaller is better).

    Attributes
    ----------
    aic : float
        ``-2 log L + 2 k``.
    bic : float
        ``-2 log L + k log n``.
    """

    aic: float
    bic: float


def information_criteria(max_log_likelihood: float, n_parameters: int, n_observations: int) -> InformationCriteria:
    """AIC and BIC from a maximised log-likelihood.

    Parameters
    ----------
    max_log_likelihood
        ``log L`` at the maximum-likelihood estimate.
    n_parameters
        Free parameters ``k`` (e.g. :attr:`Complexity.n_parameters`).
    n_observations
        Observations ``n`` (independent units of the likelihood).

    Returns
    -------
    InformationCriteria

    Raises
    ------
    DataError
        A non-finite log-likelihood.
    ModelSpecError
        ``n_parameters`` not an integer >= 0 or ``n_observations`` not an integer >= 1.

    References
    ----------
    .. [1] H. Akaike, "A new look at the statistical model identification",
       IEEE Trans. Automatic Control 19(6), 716-723, 1974.
    .. [2] G. Schwarz, "Estimating the dimension of a model", Annals of
       Statistics 6(2), 461-464, 1978.

    Examples
    --------
    >>> from probmodels.diagnostics import information_criteria
    >>> ic = information_criteria(max_log_likelihood=-120.0, n_parameters=3, n_observations=100)
    >>> round(ic.aic, 2), round(ic.bic, 2)
    (246.0, 253.82)
    """
    try:
        log_l = float(max_log_likelihood)
    except (TypeError, ValueError):
        log_l = math.nan
    if not math.isfinite(log_l):
        raise DataError(f"max_log_likelihood must be one finite number, got {max_log_likelihood!r}.")
    for name, value, least in (("n_parameters", n_parameters, 0), ("n_observations", n_observations, 1)):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < least:
            raise ModelSpecError(f"{name} must be an integer >= {least}, got {value!r}.")
    deviance = -2.0 * log_l
    return InformationCriteria(deviance + 2.0 * n_parameters, deviance + n_parameters * math.log(n_observations))


def pointwise_log_likelihood(fit: Posterior) -> np.ndarray:
    """Pointwise log-likelihood of every observed site, flattened and concatenated: ``(chain, draw, n)``."""
    if not isinstance(fit, Posterior):
        raise TypeError(f"fit must be a probmodels Posterior (from fit_mcmc or fit_svi), got {type(fit).__name__}.")
    if not fit.has_log_likelihood:
        raise ShapeError(
            "fit has no pointwise log-likelihood: its model declares no observed site and none was stored. "
            "Declare the likelihood sites with observed=(...) when fitting."
        )
    chains, draws = fit.num_chains, fit.num_draws
    parts = [v.detach().cpu().double().reshape(chains, draws, -1) for v in fit.log_likelihood().values()]
    return torch.cat(parts, dim=-1).numpy()


def complexity(fit: Posterior) -> Complexity:
    """Effective number of parameters of a fit by PSIS-LOO, WAIC and DIC, and its free parameters.

    Parameters
    ----------
    fit
        A posterior with a pointwise log-likelihood (its model attached, or
        loaded from a file that stored it). Several observed sites are
        concatenated into one set of observations.

    Returns
    -------
    Complexity
        ``p_loo``, ``p_waic`` (the same as ArviZ's ``loo`` and ``waic``),
        DIC's ``p_D`` and ``p_V``, and the free parameters.

    Raises
    ------
    TypeError
        ``fit`` is not a Posterior.
    ShapeError
        ``fit`` has no pointwise log-likelihood.

    Warns
    -----
    ConvergenceWarning
        Some Pareto k-hat exceeds 0.7: those observations' leave-one-out
        estimates (and so ``p_loo``) are unreliable.

    Notes
    -----
    ``p_D`` is evaluated at the posterior mean of the unconstrained
    coordinates mapped back to the constrained space, so that it is defined
    for every support (a mean of simplices or of correlation matrices is
    mapped to a valid one) [3]_; ``p_V`` is the alternative of Gelman et al.
    [4]_, which needs no point estimate but assumes a roughly normal
    posterior of the log-likelihood.

    References
    ----------
    .. [1] A. Vehtari, A. Gelman and J. Gabry, "Practical Bayesian model
       evaluation using leave-one-out cross-validation and WAIC", Statistics
       and Computing 27, 1413-1432, 2017.
    .. [2] S. Watanabe, "Asymptotic equivalence of Bayes cross validation and
       widely applicable information criterion in singular learning theory",
       JMLR 11, 3571-3594, 2010.
    .. [3] D. J. Spiegelhalter, N. G. Best, B. P. Carlin and A. van der Linde,
       "Bayesian measures of model complexity and fit", JRSS B 64(4),
       583-639, 2002.
    .. [4] A. Gelman, J. B. Carlin, H. S. Stern, D. B. Dunson, A. Vehtari and
       D. B. Rubin, "Bayesian Data Analysis", 3rd ed., section 7.2, 2013.

    Examples
    --------
    One free parameter, twenty observations, and a small effective number of parameters:

    >>> import pyro, pyro.distributions as dist, torch
    >>> import probmodels as pm
    >>> def model(y=None):
    ...     mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
    ...     with pyro.plate("data", 20):
    ...         pyro.sample("y", dist.Normal(mu, 1.0), obs=y)
    >>> y = torch.linspace(1.0, 3.0, 20, dtype=torch.float64)
    >>> fit = pm.fit_mcmc(model, model_kwargs={"y": y}, num_chains=2, num_warmup=100,
    ...                   num_samples=100, compile="none", progress_bar=False)
    >>> from probmodels.diagnostics import complexity
    >>> result = complexity(fit)
    >>> result.n_parameters, result.n_observations, 0.0 < result.p_loo < 2.0
    (1, 20, True)
    """
    pointwise = pointwise_log_likelihood(fit)
    idata = pointwise_data(pointwise, fit.draws)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        loo_result = loo(idata, pointwise=True)
        waic_result = waic(idata, pointwise=True)  # ArviZ 0.23 labels the elpd "waic" without pointwise
    k = np.asarray(loo_result["pareto_k"], dtype=float)
    num_high = int((k > PARETO_K_WARN).sum())
    if num_high:
        warnings.warn(
            f"{num_high} of {k.size} observations have Pareto k-hat above {PARETO_K_WARN} (max {k.max():.2f}); their "
            "leave-one-out estimates and p_loo are unreliable. Check those observations, or use exact cross-validation.",
            ConvergenceWarning,
            stacklevel=2,
        )
    total = pointwise.sum(-1).ravel()
    n_parameters = fit.info.dim if fit.info is not None else None
    return Complexity(
        elpd_loo=float(loo_result["elpd_loo"]),
        se_loo=float(loo_result["se"]),
        p_loo=float(loo_result["p_loo"]),
        pareto_k_max=float(k.max()),
        num_high_k=num_high,
        elpd_waic=float(waic_result["elpd_waic"]),
        se_waic=float(waic_result["se"]),
        p_waic=float(waic_result["p_waic"]),
        p_dic=2.0 * (_log_likelihood_at_mean(fit) - float(total.mean())),
        p_v=2.0 * float(total.var(ddof=1)),
        n_parameters=n_parameters,
        n_observations=int(pointwise.shape[-1]),
        pareto_k=k,
    )


def _log_likelihood_at_mean(fit: Posterior) -> float:
    """Total log-likelihood at the posterior mean in unconstrained space mapped back; NaN without a model."""
    if fit.model is None or fit.info is None:
        return math.nan
    point = {}
    for site in fit.info.latents:
        unconstrained = site.transform.inv(fit.flat(site.name)).mean(0, keepdim=True)
        point[site.name] = site.transform(unconstrained)
    values = compute_log_likelihood(
        fit.model, fit.model_args, fit.model_kwargs, fit.info, point, vectorize=fit.attrs.get("vectorize") != "loop"
    )
    return float(sum(v.double().sum() for v in values.values()))
