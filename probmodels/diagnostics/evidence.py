"""Marginal likelihood (model evidence) of a fitted model, with a standard error.

:func:`log_evidence` estimates ``log p(y) = log ∫ p(y | θ) p(θ) dθ`` from a
:class:`~probmodels.core.posterior.Posterior` by one of

``"bridge"``
    iterative bridge sampling between the posterior draws and a multivariate
    normal fitted to them (the default; see :mod:`probmodels.diagnostics.bridge`),
    cross-checked by importance sampling from the prior, which warns when the
    chains missed a mode (:mod:`probmodels.diagnostics.prior_check`);
``"importance"``
    importance sampling from that multivariate normal, with the PSIS Pareto
    k-hat as its reliability diagnostic;
``"laplace"``
    the Laplace approximation at the posterior mode (no standard error);
``"stepping_stone"``
    stepping-stone sampling along the power posteriors, by NUTS (no proposal,
    so also for multimodal posteriors; :mod:`~probmodels.diagnostics.stepping_stone`);
``"elbo"``
    the ELBO of an SVI fit: a lower bound, not an estimate;
``"exact"``
    the closed form: the model's own ``exact_log_evidence`` (a discrete
    Bayesian network's parameters under Dirichlet priors with complete data,
    or any model that declares it; see
    :class:`~probmodels.core.protocol.ProbabilisticModel`), or a value the
    caller supplies.

Every estimate works in unconstrained space, with the log-Jacobians of the
constraining transforms included, through the core's
:class:`~probmodels.core.density.LogDensity`; the evidence does not depend on
the parametrisation, so no correction is needed. The harmonic-mean estimator
is deliberately absent: its variance is infinite for most models.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from .._validation import check_positive_int
from ..core.density import LogDensity, without_validation
from ..core.posterior import Posterior
from ..core.setup import prepare_fit
from ..exceptions import ConvergenceWarning, DataError, InferenceError, ModelSpecError, ShapeError
from .arviz import psislw
from .bridge import MIN_DRAWS_PER_CHAIN, bridge_sampling, fit_normal
from .prior_check import PriorEstimate, prior_importance
from .stein import effective_sizes
from .stepping_stone import stepping_stone, tempered_model

__all__ = ["EvidenceEstimate", "log_evidence", "METHODS"]

METHODS = ("bridge", "importance", "laplace", "stepping_stone", "elbo", "exact")
PARETO_K_WARN = 0.7
PRIOR_CHECK_Z = 4.0
PRIOR_CHECK_MIN_GAP = 0.1
"""Bridge sampling warns when importance sampling from the prior (reliable by its k-hat) exceeds it
by more than ``PRIOR_CHECK_Z`` joint standard errors and ``PRIOR_CHECK_MIN_GAP`` nats."""
ELBO_WINDOW = 100


@dataclass(frozen=True)
class EvidenceEstimate:
    """An estimate of the log marginal likelihood.

    Attributes
    ----------
    log_evidence : float
        Estimate of ``log p(y)`` in nats.
    standard_error : float
        Monte Carlo standard error of ``log_evidence`` (0 for ``"exact"``,
        NaN for ``"laplace"``, whose error is a bias, not noise).
    method : str
        One of :data:`METHODS`.
    diagnostics : dict of str to float
        Method-specific reliability figures. ``"bridge"``: ``relative_mse``
        (Frühwirth-Schnatter's estimate of ``E[(Z_hat - Z)^2] / Z^2``),
        ``iterations``, ``converged`` (1 or 0), ``ess`` (of the posterior
        draws in the iteration), ``num_proposal``. ``"importance"``:
        ``pareto_k``, ``ess`` (importance-sampling ESS), ``num_proposal``.
        ``"laplace"``: ``log_density_at_mode``, ``max_abs_gradient``,
        ``log_det_neg_hessian``, ``iterations``. ``"stepping_stone"``:
        ``num_temperatures``, ``min_ess`` (over the stones), ``worst_stone``
        (its index ``k``), ``worst_relative_variance`` (its
        ``Var(r_k_hat) / r_k^2``), ``divergences``. ``"elbo"``:
        ``lower_bound`` (1: the value is a lower bound of ``log p(y)``),
        ``num_steps_averaged``, ``ess``.
    notes : tuple of str
        What was done, and warnings worth keeping with the number.
    """

    log_evidence: float
    standard_error: float
    method: str
    diagnostics: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def __str__(self) -> str:
        se = "n/a" if math.isnan(self.standard_error) else f"{self.standard_error:.3g}"
        details = ", ".join(f"{k}={v:.4g}" for k, v in self.diagnostics.items())
        return f"log evidence ({self.method}): {self.log_evidence:.4f} (se {se}; {details})"


def log_evidence(
    fit: Posterior,
    method: str = "bridge",
    *,
    exact: float | Callable[..., float] | None = None,
    num_proposal: int | None = None,
    tol: float = 1e-10,
    max_iter: int = 1000,
    max_relative_mse: float = 0.01,
    num_temperatures: int = 24,
    num_chains: int = 16,
    num_samples: int = 100,
    num_warmup: int = 100,
    seed: int = 0,
    batch_size: int = 4096,
) -> EvidenceEstimate:
    """Estimate the log marginal likelihood of a fitted model.

    Parameters
    ----------
    fit
        A :class:`~probmodels.core.posterior.Posterior` with its model
        attached (from :func:`~probmodels.fit_mcmc`; ``"importance"``,
        ``"laplace"`` and ``"stepping_stone"`` also take one from
        :func:`~probmodels.fit_svi`, ``"elbo"`` only one from it).
    method
        ``"bridge"`` (default), ``"importance"``, ``"laplace"``,
        ``"stepping_stone"``, ``"elbo"`` or ``"exact"``.
    exact
        For ``method="exact"`` only: the log evidence as a number, or a
        callable ``exact(*model_args, **model_kwargs) -> float`` that computes
        it from the fit's data (e.g. a conjugate model's closed form).
        Without it, the fit's model must declare
        ``exact_log_evidence(*model_args, **model_kwargs)``.
    num_proposal
        Draws from the normal proposal. Default: as many as the posterior
        draws used (half of them for ``"bridge"``, all for ``"importance"``).
    tol, max_iter
        Bridge sampling: stop when the relative change of the evidence is
        below ``tol``, or after ``max_iter`` iterations (then warn);
        ``max_iter`` also bounds the L-BFGS iterations of ``"laplace"``.
    max_relative_mse
        Bridge and stepping-stone sampling: warn when the estimated relative
        mean-squared error exceeds this (0.01 is a standard error of about
        0.1 nats).
    num_temperatures
        Stepping-stone sampling: the number of stones ``K`` (at least 2).
    num_chains, num_samples, num_warmup
        Stepping-stone sampling: NUTS chains, kept draws per chain and warmup
        iterations at each temperature; ``num_chains * num_samples`` prior
        draws at ``β = 0``.
    seed
        Seed of the proposal, prior and NUTS draws (torch's global generator is untouched).
    batch_size
        Points per evaluation of the log density.

    Returns
    -------
    EvidenceEstimate
        The estimate, its standard error, and diagnostics.

    Raises
    ------
    TypeError
        ``fit`` is not a Posterior.
    ModelSpecError
        An unknown ``method``, a ``fit`` without a model, an SVI ``fit`` for
        ``"bridge"``, an MCMC ``fit`` (or a MAP guide) for ``"elbo"``,
        ``num_temperatures < 2``, ``exact`` given with another method, or
        ``"exact"`` without ``exact=`` for a model that declares no
        ``exact_log_evidence``.
    ShapeError
        Too few draws in ``fit`` for the method.
    DataError
        The log density is not finite at some draw of ``fit``.
    InferenceError
        The draws' covariance or the Hessian at the mode is not positive definite.

    Warns
    -----
    ConvergenceWarning
        Bridge sampling did not converge or its relative MSE is above
        ``max_relative_mse``; the importance weights have Pareto k-hat above
        0.7; the Laplace mode search did not reach a zero gradient; the
        stepping-stone standard error squared is above ``max_relative_mse``.

    Notes
    -----
    Bridge sampling follows the ``"normal"`` method of the bridgesampling R
    package [3]_: the first half of each chain fits the normal proposal; the
    second half and as many proposal draws enter Meng and Wong's fixed-point
    iteration [1]_, with the ESS of the posterior draws in place of their
    number in the optimal bridge function [3]_. The relative mean-squared error
    is Frühwirth-Schnatter's [2]_, with the autocorrelation of the posterior
    term from ArviZ's ESS; since ``sd(log Z_hat) ≈ sd(Z_hat) / Z``, its square
    root is the standard error of the log evidence.

    Importance sampling uses the normal fitted to all the draws as proposal
    (the guide of an SVI fit is not stored with its Posterior); the standard
    error is the delta-method one, ``sd(w) / (sqrt(S) mean(w))``, which is
    meaningful only when the Pareto k-hat [4]_ is below about 0.7.

    The Laplace approximation [5]_ ``log p(u*) + d/2 log 2π - 1/2 log det(-H)``
    is exact when the posterior is Gaussian in unconstrained space and biased
    otherwise; it has no Monte Carlo error, so its standard error is NaN.

    Stepping-stone sampling [6]_: ladder ``β_k = (k / K)^(1/0.3)``, prior
    draws at ``β_0 = 0``, NUTS at the other temperatures started from the
    previous one's draws resampled by their weights; the standard error is the
    root of the stones' delta-method relative variances (with ESS).

    ``"elbo"`` is ``-mean(loss)`` over the last 100 steps of ``fit.attrs["loss"]``
    (the guide is not stored), its standard error from their ESS. It is below
    ``log p(y)`` by ``KL(guide || posterior)`` [7]_, which it cannot estimate.

    References
    ----------
    .. [1] X.-L. Meng and W. H. Wong, "Simulating ratios of normalizing
       constants via a simple identity: a theoretical exploration",
       Statistica Sinica 6, 831-860, 1996.
    .. [2] S. Frühwirth-Schnatter, "Estimating marginal likelihoods for mixture
       and Markov switching models using bridge sampling techniques",
       Econometrics Journal 7, 143-167, 2004.
    .. [3] Q. F. Gronau, A. Sarafoglou, D. Matzke, A. Ly, U. Boehm, M. Marsman,
       D. S. Leslie, J. J. Forster, E.-J. Wagenmakers and H. Steingroever,
       "A tutorial on bridge sampling", J. Math. Psychol. 81, 80-97, 2017;
       and the bridgesampling R package (Gronau, Singmann, Wagenmakers,
       J. Stat. Softw. 92(10), 2020).
    .. [4] A. Vehtari, D. Simpson, A. Gelman, Y. Yao and J. Gabry, "Pareto
       smoothed importance sampling", JMLR 25(72), 2024.
    .. [5] R. E. Kass and A. E. Raftery, "Bayes factors", JASA 90, 773-795, 1995.
    .. [6] W. Xie, P. O. Lewis, Y. Fan, L. Kuo and M.-H. Chen, "Improving
       marginal likelihood estimation for Bayesian phylogenetic model
       selection", Systematic Biology 60(2), 150-160, 2011.
    .. [7] D. M. Blei, A. Kucukelbir and J. D. McAuliffe, "Variational
       inference: a review for statisticians", JASA 112, 859-877, 2017.
    """
    if not isinstance(fit, Posterior):
        raise TypeError(f"fit must be a probmodels Posterior (from fit_mcmc or fit_svi), got {type(fit).__name__}.")
    if method not in METHODS:
        raise ModelSpecError(f"method must be one of {METHODS}, got {method!r}.")
    if method == "exact":
        return _exact(fit, exact)
    if exact is not None:
        raise ModelSpecError(f"exact= is used only with method='exact', got method={method!r}; drop exact= or set method='exact'.")
    if method == "elbo":
        return _elbo(fit)
    if fit.model is None or fit.info is None:
        raise ModelSpecError(
            "fit has no model attached (it was loaded from a file); refit, or build the Posterior with model=, "
            "model_args= and info= so the log density can be evaluated."
        )
    batch_size = check_positive_int(batch_size, "batch_size")
    max_iter = check_positive_int(max_iter, "max_iter")
    for name, value in (("tol", tol), ("max_relative_mse", max_relative_mse)):
        if not isinstance(value, numbers.Real) or isinstance(value, bool) or not 0.0 < float(value) < math.inf:
            raise ModelSpecError(f"{name} must be a positive number, got {value!r}.")
    if num_proposal is not None:
        num_proposal = check_positive_int(num_proposal, "num_proposal")
    if method == "bridge" and fit.method.startswith("svi"):
        raise ModelSpecError(
            f"fit was made by {fit.method!r}; bridge sampling needs draws from the posterior itself, not from a "
            "variational approximation. Use method='importance' with an SVI fit, or fit with fit_mcmc."
        )
    if method == "stepping_stone":
        settings = dict(num_temperatures=num_temperatures, num_chains=num_chains, num_samples=num_samples, num_warmup=num_warmup)
        return _stepping_stone(fit, max_relative_mse, seed, settings)
    target, u = _unconstrained_draws(fit)
    generator = torch.Generator(device=u.device).manual_seed(seed)

    def log_density(points: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), without_validation():
            return torch.cat([target(chunk) for chunk in points.split(batch_size)])

    if method == "bridge":
        result = bridge_sampling(
            u, log_density, num_proposal=num_proposal, tol=tol, max_iter=max_iter, generator=generator
        )
        notes = [
            f"normal proposal fitted to the first half of each chain ({result.num_fit} draws) in unconstrained "
            f"space; {result.num_iter} posterior and {result.num_proposal} proposal draws in the iteration."
        ]
        if not result.converged:
            notes.append(_warn(
                f"bridge sampling did not converge in {max_iter} iterations (last relative change {result.last_change:.2g} "
                f"> tol={tol:g}); raise max_iter, or draw more samples."
            ))
        if result.relative_mse > max_relative_mse:
            notes.append(_warn(
                f"bridge sampling's relative mean-squared error {result.relative_mse:.3g} exceeds "
                f"max_relative_mse={max_relative_mse:g} (se of the log evidence {math.sqrt(result.relative_mse):.3g} nats); "
                "draw more samples, or check that the posterior is well approximated by a normal in unconstrained space."
            ))
        check = prior_importance(fit, seed=seed)
        notes.append(_prior_check_note(result.log_evidence, math.sqrt(result.relative_mse), check))
        return EvidenceEstimate(
            result.log_evidence, math.sqrt(result.relative_mse), "bridge",
            {"relative_mse": result.relative_mse, "iterations": float(result.iterations), "converged": float(result.converged),
             "ess": result.ess, "num_proposal": float(result.num_proposal),
             **({} if check is None else {"prior_log_evidence": check.log_evidence, "prior_standard_error": check.standard_error,
                                          "prior_pareto_k": check.pareto_k})},
            tuple(notes),
        )
    flat = u.reshape(-1, u.shape[-1])
    if method == "importance":
        return _importance(fit, flat, log_density, num_proposal or flat.shape[0], generator)
    return _laplace(flat, log_density, target, max_iter)


# --------------------------------------------------------------------------- helpers
def _prior_check_note(log_z: float, se: float, check: PriorEstimate | None) -> str:
    """Compare a draw-based estimate with importance sampling from the prior; warn when the prior finds mass the draws missed."""
    if check is None:
        return "prior cross-check skipped: the model does not run with a batch of prior draws in one plate."
    if check.pareto_k > PARETO_K_WARN:
        return (
            f"prior cross-check inconclusive: importance sampling from the prior has Pareto k-hat {check.pareto_k:.2f} "
            f"> {PARETO_K_WARN} (the posterior is too far from the prior for it), so a missed mode could not be ruled out."
        )
    gap = check.log_evidence - log_z
    joint = math.sqrt(se**2 + check.standard_error**2)
    if gap > max(PRIOR_CHECK_Z * joint, PRIOR_CHECK_MIN_GAP):
        return _warn(
            f"importance sampling from the prior gives a log evidence of {check.log_evidence:.3f} +- "
            f"{check.standard_error:.3f} (k-hat {check.pareto_k:.2f}), {gap:.2f} nats above this estimate: the chains "
            "most likely missed posterior mass (a mode no chain visited). Rerun with more, dispersed chains, or use "
            "method='stepping_stone', which tempers from the prior.",
            stacklevel=4,
        )
    return (
        f"prior cross-check agrees: importance sampling from the prior gives {check.log_evidence:.3f} +- "
        f"{check.standard_error:.3f} (k-hat {check.pareto_k:.2f})."
    )


def _warn(message: str, stacklevel: int = 3) -> str:
    """Raise ``message`` as a ConvergenceWarning at the caller of :func:`log_evidence`, and return it for the notes."""
    warnings.warn(message, ConvergenceWarning, stacklevel=stacklevel)
    return message


def _exact(fit: Posterior, exact: float | Callable[..., float] | None) -> EvidenceEstimate:
    """The closed-form log evidence: the caller's ``exact=``, else the model's ``exact_log_evidence``."""
    source = "closed-form log evidence given by the caller."
    if exact is None:
        exact = getattr(fit.model, "exact_log_evidence", None)
        if not callable(exact):
            model = "no model (the fit was loaded from a file)" if fit.model is None else f"model {_model_name(fit.model)}"
            raise ModelSpecError(
                f"method='exact' needs a closed form, and {model} declares none (no exact_log_evidence method). "
                "Pass exact=: the log evidence as a number, or a callable exact(*model_args, **model_kwargs); or use "
                "method='bridge'. A model's log-likelihood at fixed parameters is not the evidence."
            )
        source = f"closed-form log evidence from {_model_name(fit.model)}.exact_log_evidence."
    value = exact(*fit.model_args, **fit.model_kwargs) if callable(exact) else exact
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    value = np.asarray(value)
    if value.size != 1 or not np.issubdtype(value.dtype, np.number) or not np.isfinite(value).all():
        raise DataError(f"the exact log evidence must be one finite number, got {value!r} (check exact= or the model's exact_log_evidence).")
    return EvidenceEstimate(float(value.reshape(())), 0.0, "exact", {}, (source,))


def _model_name(model: Callable[..., object]) -> str:
    """A model's name for messages: its function or class name."""
    return getattr(model, "__qualname__", type(model).__qualname__)


def _unconstrained_draws(fit: Posterior) -> tuple[LogDensity, torch.Tensor]:
    """The model's log density (the one fit_mcmc builds) and the draws in unconstrained space, ``(chain, draw, dim)``."""
    setup = prepare_fit(fit.model, fit.model_args, fit.model_kwargs, seed=0, observed=fit.info.observed)
    missing = [site.name for site in setup.info.latents if site.name not in fit.draws]
    if missing:
        raise ModelSpecError(f"fit has no draws of the latent site(s) {missing}; its sites are {list(fit.sites)}.")
    values = {site.name: fit.flat(site.name).to(dtype=setup.dtype, device=setup.device) for site in setup.info.latents}
    loop = LogDensity(fit.model, setup.args, setup.kwargs, setup.info, vectorize="loop")
    u = loop.unconstrain(values)
    if not bool(torch.isfinite(u).all()):
        raise DataError("fit holds draws on the boundary of a site's support (infinite in unconstrained space); drop them.")
    with without_validation():
        target = LogDensity(fit.model, setup.args, setup.kwargs, setup.info, probe=u[: min(8, u.shape[0])])
    return target, u.reshape(fit.num_chains, fit.num_draws, -1)


def _importance(
    fit: Posterior, flat: torch.Tensor, log_density: Callable[[torch.Tensor], torch.Tensor], size: int,
    generator: torch.Generator,
) -> EvidenceEstimate:
    """Importance sampling from the normal fitted to all the draws."""
    if flat.shape[0] < max(MIN_DRAWS_PER_CHAIN, 2 * flat.shape[1]):
        raise ShapeError(
            f"fit has {flat.shape[0]} draws of a {flat.shape[1]}-dimensional posterior; importance sampling needs at "
            f"least {max(MIN_DRAWS_PER_CHAIN, 2 * flat.shape[1])} to fit its proposal. Draw more samples."
        )
    proposal = fit_normal(flat)
    x = proposal.sample(size, generator)
    log_w = (log_density(x) - proposal.log_prob(x)).double()
    log_w = torch.where(torch.isnan(log_w), torch.full_like(log_w, -math.inf), log_w)
    if not bool(torch.isfinite(log_w).any()):
        raise InferenceError("the log density is not finite at any proposal draw; importance sampling cannot proceed.")
    log_w_np = log_w.cpu().numpy()
    estimate = float(torch.logsumexp(log_w, 0) - math.log(size))
    w = np.exp(log_w_np - log_w_np.max())
    se = float(w.std(ddof=1) / (math.sqrt(size) * w.mean()))
    ess = float(w.sum() ** 2 / (w**2).sum())
    _, k_hat = psislw(log_w_np)
    source = "the guide's draws" if fit.method.startswith("svi") else "the posterior draws"
    notes = [
        f"normal proposal fitted to {flat.shape[0]} of {source} in unconstrained space; {size} proposal draws; "
        f"importance ESS {ess:.0f}."
    ]
    if k_hat > PARETO_K_WARN:
        notes.append(_warn(
            f"importance sampling's Pareto k-hat is {k_hat:.2f} > {PARETO_K_WARN}: the weights have (near) infinite "
            "variance, so the estimate and its standard error are unreliable; use method='bridge'.",
            stacklevel=4,
        ))
    return EvidenceEstimate(estimate, se, "importance", {"pareto_k": k_hat, "ess": ess, "num_proposal": float(size)}, tuple(notes))


def _laplace(
    flat: torch.Tensor, log_density: Callable[[torch.Tensor], torch.Tensor], target: LogDensity, max_iter: int
) -> EvidenceEstimate:
    """Laplace approximation at the mode found by L-BFGS from the best draw."""
    best = int(torch.argmax(log_density(flat)))
    point = flat[best].detach().clone().requires_grad_(True)

    def one(z: torch.Tensor) -> torch.Tensor:
        return target(z.unsqueeze(0))[0]

    optimizer = torch.optim.LBFGS(
        [point], lr=1.0, max_iter=max_iter, tolerance_grad=1e-10, tolerance_change=1e-14, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = -one(point)
        loss.backward()
        return loss

    with without_validation():
        optimizer.step(closure)
        mode = point.detach()
        with torch.enable_grad():
            z = mode.clone().requires_grad_(True)
            value = one(z)
            (grad,) = torch.autograd.grad(value, z)
            hessian = torch.autograd.functional.hessian(one, mode)
    value = value.detach()
    iterations = int(optimizer.state[point].get("n_iter", 0))
    chol, info = torch.linalg.cholesky_ex(-hessian)
    if int(info) != 0 or not bool(torch.isfinite(value)):
        raise InferenceError(
            "the Hessian of the log density at the mode found is not negative definite (or the density is not finite "
            "there); the Laplace approximation does not apply. Use method='bridge'."
        )
    dim = mode.shape[0]
    log_det = float(2 * torch.log(torch.diagonal(chol)).sum())
    estimate = float(value) + 0.5 * dim * math.log(2 * math.pi) - 0.5 * log_det
    max_grad = float(grad.abs().max())
    notes = [
        "Laplace approximation at the posterior mode in unconstrained space: exact for a Gaussian posterior there, "
        "biased otherwise; it has no Monte Carlo error, so the standard error is NaN."
    ]
    if max_grad > 1e-4:
        notes.append(_warn(
            f"the Laplace mode search stopped with max |gradient| {max_grad:.2g} > 1e-4 after {iterations} iterations; "
            "raise max_iter.",
            stacklevel=4,
        ))
    return EvidenceEstimate(
        estimate, math.nan, "laplace",
        {"log_density_at_mode": float(value), "max_abs_gradient": max_grad, "log_det_neg_hessian": log_det,
         "iterations": float(iterations)},
        tuple(notes),
    )


def _stepping_stone(fit: Posterior, max_relative_mse: float, seed: int, settings: dict[str, int]) -> EvidenceEstimate:
    """Stepping-stone sampling with the model's prior and likelihood in unconstrained space."""
    setup = prepare_fit(fit.model, fit.model_args, fit.model_kwargs, seed=seed, observed=fit.info.observed)
    num_draws = check_positive_int(settings["num_chains"], "num_chains") * check_positive_int(settings["num_samples"], "num_samples")
    path = tempered_model(fit.model, setup, num_draws, seed)
    result = stepping_stone(path.tempered, path.log_likelihood, path.prior_draws, seed=seed, **settings)
    worst = int(np.argmax(result.relative_variances))
    notes = [
        "stepping-stone sampling, beta_k = (k/K)^(1/0.3); " + ", ".join(f"{k}={v}" for k, v in settings.items())
        + "; per-stone ESS: " + ", ".join(f"{e:.0f}" for e in result.ess) + "."
    ]
    if result.standard_error**2 > max_relative_mse:
        notes.append(_warn(
            f"stepping-stone sampling's standard error {result.standard_error:.3g} nats exceeds sqrt(max_relative_mse="
            f"{max_relative_mse:g}); stone {worst} (beta {result.betas[worst]:.3g} to {result.betas[worst + 1]:.3g}) "
            "varies most. Raise num_temperatures or num_samples.", stacklevel=4,
        ))
    diagnostics = {"num_temperatures": float(len(result.ess)), "min_ess": float(result.ess.min()), "worst_stone": float(worst),
                   "worst_relative_variance": float(result.relative_variances[worst]), "divergences": float(result.divergences)}
    return EvidenceEstimate(result.log_evidence, result.standard_error, "stepping_stone", diagnostics, tuple(notes))


def _elbo(fit: Posterior) -> EvidenceEstimate:
    """The ELBO of an SVI fit from the last steps of its loss trace, labelled as a lower bound."""
    if not fit.method.startswith("svi"):
        raise ModelSpecError(
            f"method='elbo' needs a fit from fit_svi, got one made by {fit.method!r}: MCMC has no ELBO. "
            "Use method='stepping_stone' or 'bridge' with an MCMC fit."
        )
    if fit.method in ("svi:delta", "svi:laplace"):
        raise ModelSpecError(
            f"fit was made by {fit.method!r}, whose loss is the MAP objective (a point-mass guide), not an ELBO; "
            "fit with guide='normal' or 'mvn', or use method='laplace'."
        )
    loss = np.asarray(fit.attrs.get("loss", ()), dtype=float).reshape(-1)
    if loss.size == 0 or not np.isfinite(loss).all():
        raise ModelSpecError("fit.attrs['loss'] holds no finite SVI loss trace; the ELBO cannot be recovered from this fit.")
    tail = -loss[-ELBO_WINDOW:]
    ess = float(effective_sizes(torch.as_tensor(tail).reshape(1, -1, 1), tail.size < 4)[0])
    se = float(tail.std(ddof=1) / math.sqrt(ess)) if tail.size > 1 else math.nan
    notes = [
        f"LOWER BOUND, not an estimate: the ELBO averaged over the last {tail.size} of {loss.size} SVI steps; "
        "log p(y) exceeds it by the KL divergence from the guide to the posterior."
    ]
    if fit.attrs.get("batch_size") is not None:
        notes.append(f"the loss was estimated on mini-batches of {fit.attrs['batch_size']}, hence a larger standard error.")
    return EvidenceEstimate(
        float(tail.mean()), se, "elbo", {"lower_bound": 1.0, "num_steps_averaged": float(tail.size), "ess": ess}, tuple(notes)
    )
