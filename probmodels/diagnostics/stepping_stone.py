"""Stepping-stone sampling of the log evidence along a power-posterior path.

The estimator of Xie, Lewis, Fan, Kuo and Chen (2011): with the tempered
posteriors ``p_β(θ) ∝ p(θ) p(y | θ)^β`` on a ladder ``0 = β_0 < β_1 < ... <
β_K = 1``, the evidence is the telescoping product

``Z = Π_k Z_{β_{k+1}} / Z_{β_k},   Z_{β_{k+1}} / Z_{β_k} = E_{p_{β_k}}[ p(y | θ)^(β_{k+1} - β_k) ]``,

each ratio (a "stone") estimated by the mean of ``p(y | θ)^(Δβ)`` over draws
at ``β_k``, in log space with log-sum-exp. The ladder is
``β_k = (k / K)^(1/α)`` with ``α = 0.3``, which puts most stones near the
prior, where the tempered posteriors change fastest.

Draws at ``β_0 = 0`` come from the prior itself; every other temperature is
sampled by the core's batched NUTS (:func:`~probmodels.core.mcmc.sample_log_density`),
its chains started from draws of the temperature before, resampled in
proportion to their stepping-stone weights. The chains thus start spread over
the whole prior, and the number of chains in each mode of a multimodal
posterior follows that mode's mass while tempering makes the modes separate,
where a single normal proposal (bridge or importance sampling) covers one
mode, or neither well.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pyro.poutine as poutine
import torch
from pyro.poutine.messenger import Messenger

from .._validation import check_non_negative_int, check_positive_int
from ..core.density import LogDensity, batch_plate, without_validation
from ..core.mcmc import sample_log_density
from ..core.predictive import unbatch
from ..core.protocol import is_likelihood_term
from ..core.setup import FitSetup
from ..exceptions import DataError, ModelSpecError
from .stein import effective_sizes

__all__ = ["SteppingStoneResult", "TemperedModel", "stepping_stone", "tempered_model", "temperature_ladder", "ALPHA"]

ALPHA = 0.3


@dataclass(frozen=True)
class TemperedModel:
    """A model's power posteriors, from :func:`tempered_model`.

    Attributes
    ----------
    tempered : callable
        ``tempered(β)`` is the batched log density ``u -> log p(u) + β log p(y | u)``.
    log_likelihood : callable
        ``u (n, dim) -> (n,)``, ``log p(y | u)``.
    prior_draws : torch.Tensor
        Independent prior draws in unconstrained space, ``(n, dim)``.
    """

    tempered: Callable[[float], Callable[[torch.Tensor], torch.Tensor]]
    log_likelihood: Callable[[torch.Tensor], torch.Tensor]
    prior_draws: torch.Tensor


@dataclass(frozen=True)
class SteppingStoneResult:
    """Output of :func:`stepping_stone`.

    Attributes
    ----------
    log_evidence : float
        ``Σ_k log r_k``, the sum of the stones' log ratios.
    standard_error : float
        Delta-method standard error of ``log_evidence``: the square root of
        the sum of the stones' relative variances.
    betas : numpy.ndarray
        The ladder ``β_0 = 0, ..., β_K = 1``, ``(K + 1,)``.
    log_ratios : numpy.ndarray
        ``log r_k``, ``(K,)``.
    relative_variances : numpy.ndarray
        Estimated ``Var(r_k_hat) / r_k^2`` per stone, ``(K,)``.
    ess : numpy.ndarray
        Effective sample size of each stone's weights ``p(y | θ)^(Δβ)``, ``(K,)``.
    divergences : int
        Divergent NUTS transitions over all temperatures.
    """

    log_evidence: float
    standard_error: float
    betas: np.ndarray
    log_ratios: np.ndarray
    relative_variances: np.ndarray
    ess: np.ndarray
    divergences: int


def temperature_ladder(num_temperatures: int, alpha: float = ALPHA) -> torch.Tensor:
    """``β_k = (k / K)^(1/α)`` for ``k = 0..K`` in float64, ``(K + 1,)`` (Xie et al. 2011)."""
    return (torch.arange(num_temperatures + 1, dtype=torch.float64) / num_temperatures) ** (1.0 / alpha)


def stepping_stone(
    tempered: Callable[[float], Callable[[torch.Tensor], torch.Tensor]],
    log_likelihood: Callable[[torch.Tensor], torch.Tensor],
    prior_draws: torch.Tensor,
    *,
    num_temperatures: int = 24,
    num_chains: int = 16,
    num_samples: int = 100,
    num_warmup: int = 100,
    seed: int = 0,
) -> SteppingStoneResult:
    """Stepping-stone estimate of ``log ∫ p(y | u) p(u) du`` in unconstrained space.

    Parameters
    ----------
    tempered
        ``tempered(β)`` gives the log density ``u (n, dim) -> (n,)`` of the
        power posterior, ``log p(u) + β log p(y | u)`` with the log-Jacobians
        in the prior term; differentiable by autograd.
    log_likelihood
        ``u (n, dim) -> (n,)``: the log-likelihood ``log p(y | u)``.
    prior_draws
        Independent draws from the prior in unconstrained space,
        ``(num_chains * num_samples, dim)``.
    num_temperatures
        ``K``, the number of stones (at least 2).
    num_chains, num_samples, num_warmup
        NUTS chains (one batch), kept draws per chain and warmup iterations at
        each temperature ``β_1 .. β_{K-1}``.
    seed
        Seed of the resampling and of the sampler (temperature ``k`` uses ``seed + k``).

    Returns
    -------
    SteppingStoneResult

    Raises
    ------
    ModelSpecError
        ``num_temperatures < 2``, a count that is not a positive integer
        (``num_warmup`` may be 0), or ``prior_draws`` without
        ``num_chains * num_samples`` rows.
    DataError
        The log-likelihood is NaN or ``+inf`` at some draw.

    References
    ----------
    .. [1] W. Xie, P. O. Lewis, Y. Fan, L. Kuo and M.-H. Chen, "Improving
       marginal likelihood estimation for Bayesian phylogenetic model
       selection", Systematic Biology 60(2), 150-160, 2011.
    """
    num_temperatures = check_positive_int(num_temperatures, "num_temperatures")
    if num_temperatures < 2:
        raise ModelSpecError(f"num_temperatures must be at least 2, got {num_temperatures}.")
    num_chains = check_positive_int(num_chains, "num_chains")
    num_samples = check_positive_int(num_samples, "num_samples")
    num_warmup = check_non_negative_int(num_warmup, "num_warmup")
    total = num_chains * num_samples
    if prior_draws.dim() != 2 or prior_draws.shape[0] != total:
        raise ModelSpecError(
            f"prior_draws must have shape ({total}, dim) for {num_chains} chains of {num_samples} draws, "
            f"got {tuple(prior_draws.shape)}."
        )
    betas = temperature_ladder(num_temperatures)
    generator = torch.Generator(device=prior_draws.device).manual_seed(seed)
    draws = prior_draws.reshape(num_chains, num_samples, -1)
    independent = True
    log_ratios, variances, sizes = [], [], []
    divergences = 0
    for k in range(num_temperatures):
        step = float(betas[k + 1] - betas[k])
        loglik = _checked(log_likelihood, draws.reshape(total, -1)).reshape(num_chains, num_samples)
        log_ratio, variance, ess = _stone(step * loglik, independent)
        log_ratios.append(log_ratio)
        variances.append(variance)
        sizes.append(ess)
        if k + 1 == num_temperatures:
            break
        start = _resample(draws.reshape(total, -1), (step * loglik).reshape(-1), num_chains, generator)
        with without_validation():
            draws, stats = sample_log_density(
                tempered(float(betas[k + 1])), start, num_samples=num_samples, num_warmup=num_warmup, seed=seed + k + 1
            )
        divergences += int(stats["diverging"].sum())
        independent = False
    log_ratios_np = np.asarray(log_ratios)
    variances_np = np.asarray(variances)
    return SteppingStoneResult(
        float(log_ratios_np.sum()), float(math.sqrt(variances_np.sum())), betas.numpy(), log_ratios_np,
        variances_np, np.asarray(sizes), divergences,
    )


def tempered_model(model: Callable[..., Any], setup: FitSetup, num_draws: int, seed: int) -> TemperedModel:
    """The power posteriors of a Pyro model, its log-likelihood and prior draws, all in unconstrained space.

    Parameters
    ----------
    model
        A Pyro program.
    setup
        Its data and sites, from :func:`~probmodels.core.setup.prepare_fit`.
    num_draws
        Independent draws to take from the prior.
    seed
        Seed of the prior draws (torch's global generator is left as it was).

    Returns
    -------
    TemperedModel
    """
    args, kwargs, info = setup.args, setup.kwargs, setup.info
    devices = [setup.device] if setup.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad(), without_validation():
        torch.manual_seed(seed)
        try:
            with batch_plate(num_draws, info.max_plate_nesting):
                trace = poutine.trace(model).get_trace(*args, **kwargs)
            values = {s.name: unbatch(trace.nodes[s.name]["value"], num_draws, s.shape) for s in info.latents}
        except Exception:
            rows = [poutine.trace(model).get_trace(*args, **kwargs) for _ in range(num_draws)]
            values = {s.name: torch.stack([r.nodes[s.name]["value"].reshape(s.shape) for r in rows]) for s in info.latents}
        draws = LogDensity(model, args, kwargs, info, vectorize="loop").unconstrain(values)
        probe = draws[: min(8, num_draws)]
        joint = LogDensity(model, args, kwargs, info, probe=probe)
        prior = LogDensity(_Temper(0.0)(model), args, kwargs, info, vectorize=joint.mode)

    def log_likelihood(u: torch.Tensor) -> torch.Tensor:
        with without_validation():
            return joint(u) - prior(u)

    def tempered(beta: float) -> Callable[[torch.Tensor], torch.Tensor]:
        return LogDensity(_Temper(beta)(model), args, kwargs, info, vectorize=joint.mode)

    return TemperedModel(tempered, log_likelihood, draws)


class _Temper(Messenger):
    """Raise the likelihood to the power ``beta`` (``beta = 0`` masks it out).

    The likelihood is every observed site and every ``pyro.factor``: all the
    model's terms but the latent sites' priors (and deterministic sites).
    """

    def __init__(self, beta: float) -> None:
        super().__init__()
        self.beta = beta

    def _pyro_sample(self, msg: dict) -> None:
        if is_likelihood_term(msg):
            if self.beta == 0.0:
                msg["mask"] = torch.tensor(False)
            else:
                msg["scale"] = self.beta * msg["scale"]


def _checked(log_likelihood: Callable[[torch.Tensor], torch.Tensor], u: torch.Tensor) -> torch.Tensor:
    """The log-likelihood at draws, in float64, refusing NaN and ``+inf``."""
    with torch.no_grad():
        values = log_likelihood(u).double()
    if bool(torch.isnan(values).any() | (values == math.inf).any()):
        raise DataError("the log-likelihood is NaN or +inf at some draw of a tempered posterior; check the model.")
    return values


def _stone(weights: torch.Tensor, independent: bool) -> tuple[float, float, float]:
    """Log of the mean of ``exp(weights)`` ``(chains, draws)``, its relative variance by the delta method, and the ESS."""
    top = weights.max()
    scaled = torch.exp(weights - top)
    mean = scaled.mean()
    ess = float(effective_sizes(scaled.reshape(*scaled.shape, 1), independent)[0])
    variance = float(scaled.var() / (ess * mean**2)) if scaled.numel() > 1 else 0.0
    return float(top + torch.log(mean)), variance, ess


def _resample(points: torch.Tensor, log_weights: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """``size`` rows of ``points`` by systematic resampling with probabilities ∝ ``exp(log_weights)``."""
    probabilities = torch.softmax(log_weights, 0)
    cumulative = torch.cumsum(probabilities, 0)
    offset = torch.rand((), generator=generator, dtype=cumulative.dtype, device=cumulative.device)
    positions = (torch.arange(size, dtype=cumulative.dtype, device=cumulative.device) + offset) / size
    index = torch.searchsorted(cumulative, positions).clamp(max=points.shape[0] - 1)
    return points[index].clone()
