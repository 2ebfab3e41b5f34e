"""Baum-Welch (EM) for hidden Markov models on the exact algorithms of :mod:`~probmodels.hmm.ops`.

The E-step is :func:`~probmodels.hmm.ops.posterior_marginals` with
``transition_counts=True`` over a padded batch of sequences (through
:mod:`~probmodels.hmm.linear_emission`, so that Gaussian emissions with diagonal
covariances are computed inside the native kernels); the M-step updates the
initial and transition probabilities as hmmlearn does (the mode under
Dirichlet priors: ``max(prior - 1 + expected counts, 0)`` normalised) and the
emission parameters by the family's M-step (:mod:`~probmodels.hmm.emissions`).
Several random restarts run one after another and the one with the highest
log-likelihood is kept. The module also prepares the data for every HMM
algorithm: :func:`as_observations` checks ``X`` and :func:`pad_sequences`
splits it by ``lengths`` into a padded batch.

References: L. R. Rabiner (1989), A tutorial on hidden Markov models;
hmmlearn ``base.py`` (``_do_mstep``) and ``hmm.py``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, NamedTuple

import numpy as np
import torch
from torch.distributions import Transform

from ..exceptions import ConvergenceWarning, DataError, InferenceError, ShapeError
from . import linear_emission
from .linear_emission import LinearEmission

if TYPE_CHECKING:
    from .emissions import Emission

__all__ = [
    "SequenceData", "EMMonitor", "as_observations", "pad_sequences", "log_terms", "emission_terms", "em_step",
    "baum_welch", "fit_em",
    "kmeans_plus_plus", "dirichlet_log_prior", "dirichlet_map", "gaussian_m_step", "categorical_m_step",
    "poisson_m_step", "numerical_m_step", "Params", "ParamMap",
]

Params = dict[str, torch.Tensor]
"""Named parameters (``startprob``, ``transmat`` and the emission's), each ``(..., K, *shape)``."""
ParamMap = Mapping[str, torch.Tensor]


class SequenceData(NamedTuple):
    """A batch of sequences padded to one length."""

    x: torch.Tensor
    """``(N, T, D)`` observations; padded steps repeat the first observation (a valid value)."""
    lengths: torch.Tensor | None
    """``(N,)`` long lengths, or None when every sequence has length ``T``."""
    mask: torch.Tensor
    """``(N, T)`` bool, True at observed steps."""


def as_observations(X: Any) -> torch.Tensor:
    """``X`` as a finite float64 ``(n_samples, n_features)`` tensor, or an actionable error."""
    tensor = X.detach() if isinstance(X, torch.Tensor) else None
    if tensor is None:
        array = np.asarray(X)
        if not np.issubdtype(array.dtype, np.number):
            raise DataError(
                f"X must be a numeric array, got dtype {array.dtype}; convert it with np.asarray(X, dtype=float)."
            )
        tensor = torch.as_tensor(array)
    if tensor.dim() != 2 or 0 in tensor.shape:
        raise ShapeError(
            f"X must be a non-empty 2-D array (n_samples, n_features), got shape {tuple(tensor.shape)}; reshape "
            "one feature with X.reshape(-1, 1), and concatenate sequences along axis 0 with lengths."
        )
    tensor = tensor.to(torch.float64)
    if not bool(torch.isfinite(tensor).all()):
        bad = ~torch.isfinite(tensor)
        rows = bad.any(-1).nonzero()[:5, 0].tolist()
        raise DataError(
            f"X contains {int(bad.sum())} NaN or infinite value(s), first in rows {rows}; remove or impute them."
        )
    return tensor


def pad_sequences(X: torch.Tensor, lengths: Any) -> SequenceData:
    """Split the concatenated sequences of ``X`` ``(n, D)`` by ``lengths`` and pad them to ``(N, T, D)``.

    Raises
    ------
    DataError
        ``lengths`` is not a 1-D sequence of integers >= 1 summing to ``n``.
    """
    sizes = _check_lengths(lengths, X.shape[0])
    steps = int(sizes.max())
    if (sizes == steps).all():  # (numpy: a microsecond)
        mask = torch.ones(len(sizes), steps, dtype=torch.bool, device=X.device)
        return SequenceData(X.reshape(len(sizes), steps, X.shape[1]), None, mask)
    size_t = torch.as_tensor(sizes, device=X.device)
    mask = torch.arange(steps, device=X.device) < size_t.unsqueeze(-1)
    x = X[0].expand(len(sizes), steps, X.shape[1]).clone()
    x[mask] = X
    return SequenceData(x, size_t, mask)


def _check_lengths(lengths: Any, n: int) -> np.ndarray:
    if lengths is None:
        return np.array([n])
    sizes = np.asarray(lengths.cpu() if isinstance(lengths, torch.Tensor) else lengths)
    if sizes.ndim != 1 or sizes.size == 0 or not np.issubdtype(sizes.dtype, np.integer):
        raise DataError(f"lengths must be a non-empty 1-D sequence of integers, got {sizes!r}.")
    if (sizes < 1).any():
        raise DataError(f"every sequence length must be >= 1, got lengths {sizes.tolist()}.")
    if int(sizes.sum()) != n:
        raise DataError(
            f"lengths sum to {int(sizes.sum())} but X has {n} rows; lengths must list the length of each "
            "sequence in X, in order, and sum to len(X)."
        )
    return sizes.astype(np.int64)


@dataclass
class EMMonitor:
    """Convergence record of an EM fit (the counterpart of hmmlearn's ``monitor_``).

    Attributes
    ----------
    tol : float
        Convergence threshold on ``|Δ log-likelihood|`` between iterations.
    n_iter : int
        Maximum number of iterations per restart.
    history : list of float
        EM's objective at the start of each iteration of the kept restart: the
        total log-likelihood, plus the Dirichlet log prior terms when a
        concentration (``startprob_prior``, ...) differs from 1.
    converged : bool
        Whether the kept restart met the tolerance.
    iter : int
        Iterations run by the kept restart.
    restart : int
        Index of the kept restart.
    restart_log_likelihoods : list of float
        Final objective of every restart.
    """

    tol: float
    n_iter: int
    history: list[float] = field(default_factory=list)
    converged: bool = False
    iter: int = 0
    restart: int = 0
    restart_log_likelihoods: list[float] = field(default_factory=list)

    @property
    def log_likelihood(self) -> float:
        """The last recorded objective (``-inf`` before any iteration)."""
        return self.history[-1] if self.history else -math.inf


def log_terms(
    family: "Emission", params: ParamMap, x: torch.Tensor, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Log initial, transition and emission terms for :mod:`ops`; padded steps get emission 0.

    Parameters
    ----------
    family
        The emission family.
    params
        ``startprob`` ``(..., K)``, ``transmat`` ``(..., K, K)`` and the emission parameters.
    x
        ``(N, T, D)`` padded observations.
    mask
        ``(N, T)`` observed steps, or None when nothing is padded.

    Returns
    -------
    tuple of torch.Tensor
        ``log_init`` ``(..., K)``, ``log_trans`` ``(..., K, K)``, ``log_emit`` ``(..., N, T, K)``.
    """
    log_emit = family.log_emit(params, x)
    if mask is not None and not bool(mask.all()):
        log_emit = torch.where(mask.unsqueeze(-1), log_emit, 0.0)
    return params["startprob"].log(), params["transmat"].log(), log_emit


def emission_terms(
    family: "Emission", params: ParamMap, data: SequenceData
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | LinearEmission]:
    """:func:`log_terms`, with the emissions as a :class:`~probmodels.hmm.linear_emission.LinearEmission`
    where the family has one (for the functions of :mod:`~probmodels.hmm.linear_emission`)."""
    linear = family.linear_emission(params, data.x)
    if linear is None:
        return log_terms(family, params, data.x, data.mask)
    return params["startprob"].log(), params["transmat"].log(), linear


def em_step(
    family: "Emission",
    data: SequenceData,
    params: ParamMap,
    *,
    learn: str,
    startprob_prior: torch.Tensor | float = 1.0,
    transmat_prior: torch.Tensor | float = 1.0,
) -> tuple[Params, float]:
    """One Baum-Welch iteration.

    Parameters
    ----------
    family
        The emission family.
    data
        The padded sequences.
    params
        Current parameters (``startprob``, ``transmat`` and the emission's).
    learn
        Letters of the parameters to update (hmmlearn's ``params``: ``"s"``,
        ``"t"`` and the family's letters).
    startprob_prior, transmat_prior
        Dirichlet concentrations of the initial and transition rows (1: maximum likelihood).

    Returns
    -------
    tuple
        The updated parameters, and the objective at ``params``: the total
        log-likelihood plus the Dirichlet log prior terms (0 when every
        concentration is 1), which EM never decreases.

    Raises
    ------
    InferenceError
        When the data are impossible under ``params`` (log-likelihood ``-inf``).
    """
    post = linear_emission.posterior_marginals(*emission_terms(family, params, data), data.lengths, transition_counts=True)
    log_likelihood = float(post.log_likelihood.sum())
    if not math.isfinite(log_likelihood):
        bad = (~torch.isfinite(post.log_likelihood)).nonzero()[:5, 0].tolist()
        raise InferenceError(
            f"sequence(s) {bad} have probability 0 under the current parameters (log-likelihood "
            f"{log_likelihood}); check zeros in startprob_/transmat_ or the emission parameters."
        )
    gamma = post.marginals
    log_prior = dirichlet_log_prior(params["startprob"], _as(startprob_prior, gamma)) * ("s" in learn)
    log_prior = log_prior + dirichlet_log_prior(params["transmat"], _as(transmat_prior, gamma)) * ("t" in learn)
    new = dict(params)
    if "s" in learn:
        new["startprob"] = dirichlet_map(gamma[:, 0].sum(0), _as(startprob_prior, gamma), params["startprob"])
    if "t" in learn:
        new["transmat"] = dirichlet_map(post.transition_counts.sum(0), _as(transmat_prior, gamma), params["transmat"])
    new.update(family.m_step(data.x, gamma, params, learn))
    return new, log_likelihood + float(log_prior) + family.em_log_prior(params, learn)


def baum_welch(
    family: "Emission",
    data: SequenceData,
    params: ParamMap,
    *,
    learn: str,
    n_iter: int,
    tol: float,
    startprob_prior: torch.Tensor | float = 1.0,
    transmat_prior: torch.Tensor | float = 1.0,
) -> tuple[Params, EMMonitor]:
    """Iterate :func:`em_step` until its objective changes by less than ``tol``, at most ``n_iter`` times.

    EM never decreases the objective; should it fall by ``tol`` or more (a
    ``min_covar`` floor can cause this), the run stops there, keeps the
    previous (better) parameters and warns.

    Returns
    -------
    tuple
        The final parameters and the :class:`EMMonitor` of the run (without
        a warning for non-convergence: :func:`fit_em` gives that).
    """
    monitor = EMMonitor(tol=tol, n_iter=n_iter)
    previous: Params | None = None
    current = dict(params)
    for _ in range(n_iter):
        updated, log_likelihood = em_step(
            family, data, current, learn=learn, startprob_prior=startprob_prior, transmat_prior=transmat_prior
        )
        monitor.iter += 1
        if monitor.history:
            delta = log_likelihood - monitor.history[-1]
            if delta <= -tol:
                warnings.warn(
                    f"the EM objective (log-likelihood + Dirichlet log prior) decreased from {monitor.history[-1]:.10g} "
                    f"to {log_likelihood:.10g} at iteration {monitor.iter}; stopping and keeping the previous parameters.",
                    ConvergenceWarning,
                    stacklevel=3,
                )
                return previous, monitor
            monitor.converged = abs(delta) < tol
        monitor.history.append(log_likelihood)
        if monitor.converged:
            return updated, monitor
        previous, current = current, updated
    return current, monitor


def fit_em(
    family: "Emission",
    data: SequenceData,
    initial: Callable[[torch.Generator], Params],
    *,
    learn: str,
    n_restarts: int,
    n_iter: int,
    tol: float,
    seed: int,
    startprob_prior: torch.Tensor | float = 1.0,
    transmat_prior: torch.Tensor | float = 1.0,
) -> tuple[Params, EMMonitor]:
    """Baum-Welch from ``n_restarts`` random starts; keep the highest log-likelihood.

    Parameters
    ----------
    family, data, learn, n_iter, tol, startprob_prior, transmat_prior
        As in :func:`baum_welch`.
    initial
        Draws starting parameters from a generator.
    n_restarts
        Number of random starts.
    seed
        Seed of the generator of the starts.

    Warns
    -----
    ConvergenceWarning
        When the kept restart did not converge within ``n_iter`` iterations.
    """
    generator = torch.Generator(device=data.x.device).manual_seed(seed)
    best: tuple[Params, EMMonitor] | None = None
    finals = []
    for restart in range(n_restarts):
        params, monitor = baum_welch(
            family, data, initial(generator), learn=learn, n_iter=n_iter, tol=tol,
            startprob_prior=startprob_prior, transmat_prior=transmat_prior,
        )
        monitor.restart = restart
        finals.append(monitor.log_likelihood)
        if best is None or monitor.log_likelihood > best[1].log_likelihood:
            best = (params, monitor)
    params, monitor = best
    monitor.restart_log_likelihoods = finals
    if not monitor.converged:
        last = abs(monitor.history[-1] - monitor.history[-2]) if len(monitor.history) > 1 else math.inf
        warnings.warn(
            f"EM did not converge in n_iter={n_iter} iterations (the last change of the log-likelihood was "
            f"{last:.3g}, tol={tol}); raise n_iter or tol, or check monitor_.history.",
            ConvergenceWarning,
            stacklevel=3,
        )
    return params, monitor


def _as(value: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(value, dtype=like.dtype, device=like.device)


# ----------------------------------------------------------------------------- M-steps
# Each takes the padded data x (N, T, D) and state marginals gamma (N, T, K), zero
# at padded steps; states without posterior weight keep their old values.


def dirichlet_log_prior(probs: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """``sum (prior - 1) log probs`` (``0 log 0 = 0``): the unnormalised Dirichlet log density of the rows."""
    return torch.xlogy(prior - 1, probs).sum()


def dirichlet_map(counts: torch.Tensor, prior: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """hmmlearn's M-step of probability rows: ``max(prior - 1 + counts, 0)`` normalised; zeros stay zero.

    Rows without any mass keep their old values (hmmlearn would leave them all zero).
    """
    mass = torch.where(old == 0, 0.0, (prior - 1 + counts).clamp_min(0))
    total = mass.sum(-1, keepdim=True)
    return torch.where(total > 0, mass / total.clamp_min(torch.finfo(mass.dtype).tiny), old)


def gaussian_m_step(
    x: torch.Tensor, gamma: torch.Tensor, means: torch.Tensor, covars: torch.Tensor, *,
    learn_means: bool, learn_covars: bool, covariance_type: str, min_covar: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted means ``(K, D)`` and (diagonal ``(K, D)`` or full ``(K, D, D)``) covariances.

    The covariances are centred on the new means (the old ones when they are
    not learned) and get ``min_covar`` added to their diagonal.
    """
    flat_x, weights, nk, s1 = _weighted_sums(x, gamma)
    denom = nk.clamp_min(torch.finfo(nk.dtype).tiny)[:, None]
    if learn_means:
        means = _keep_empty(s1 / denom, means, nk)
    if not learn_covars:
        return means, covars
    if covariance_type == "diag":
        s2 = weights.T @ flat_x**2
        new = (s2 - 2 * means * s1 + means**2 * nk[:, None]) / denom + min_covar
    else:
        s2 = torch.einsum("nk,nd,ne->kde", weights, flat_x, flat_x)
        cross = s1[:, :, None] * means[:, None, :]
        outer = means[:, :, None] * means[:, None, :]
        eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
        new = (s2 - cross - cross.mT + nk[:, None, None] * outer) / denom[..., None] + min_covar * eye
    return means, _keep_empty(new, covars, nk)


def categorical_m_step(x: torch.Tensor, gamma: torch.Tensor, probs: torch.Tensor, prior: Any) -> torch.Tensor:
    """Symbol probabilities ``(K, M)``: expected counts through :func:`dirichlet_map`."""
    onehot = torch.nn.functional.one_hot(x.reshape(-1).long(), probs.shape[-1]).to(gamma.dtype)
    counts = gamma.reshape(-1, gamma.shape[-1]).T @ onehot
    return dirichlet_map(counts, _as(prior, gamma), probs)


def poisson_m_step(x: torch.Tensor, gamma: torch.Tensor, rates: torch.Tensor) -> torch.Tensor:
    """Weighted mean counts ``(K, D)``."""
    _, _, nk, s1 = _weighted_sums(x, gamma)
    return _keep_empty(s1 / nk.clamp_min(torch.finfo(nk.dtype).tiny)[:, None], rates, nk)


def numerical_m_step(
    log_emit: Callable[[Mapping[str, torch.Tensor]], torch.Tensor],
    gamma: torch.Tensor,
    params: ParamMap,
    transforms: Mapping[str, Transform],
    max_iter: int = 50,
) -> dict[str, torch.Tensor]:
    """Maximise ``sum gamma * log_emit(params)`` by L-BFGS in unconstrained space (generalised EM).

    Starts at ``params``; the result is kept only if it improves the
    objective, so EM stays monotone.
    """
    free = {name: t.inv(params[name]).detach().clone().requires_grad_() for name, t in transforms.items()}
    total = gamma.sum()

    def objective() -> torch.Tensor:
        values = {name: transforms[name](u) for name, u in free.items()}
        return -(gamma * torch.nan_to_num(log_emit(values), neginf=-1e300)).sum() / total

    optimiser = torch.optim.LBFGS(list(free.values()), max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = objective()
        loss.backward()
        return loss

    with torch.no_grad():
        before = objective()
    optimiser.step(closure)
    with torch.no_grad():
        if bool(objective() < before):
            return {name: transforms[name](u).detach() for name, u in free.items()}
    return {name: params[name] for name in transforms}


def kmeans_plus_plus(X: torch.Tensor, n_states: int, generator: torch.Generator) -> torch.Tensor:
    """``K`` rows of ``X`` ``(n, D)`` chosen by k-means++ seeding (squared-distance sampling): EM starting means."""
    centres = X[torch.randint(X.shape[0], (1,), generator=generator, device=X.device)]
    for _ in range(1, n_states):
        dist2 = torch.cdist(X, centres).min(-1).values ** 2
        weights = dist2 if bool(dist2.sum() > 0) else torch.ones_like(dist2)
        centres = torch.cat([centres, X[torch.multinomial(weights, 1, generator=generator)]])
    return centres


def _weighted_sums(x: torch.Tensor, gamma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Flat data ``(n, D)``, flat weights ``(n, K)``, state weights ``(K,)`` and weighted sums ``(K, D)``."""
    flat_x = x.reshape(-1, x.shape[-1])
    weights = gamma.reshape(-1, gamma.shape[-1])
    return flat_x, weights, weights.sum(0), weights.T @ flat_x


def _keep_empty(new: torch.Tensor, old: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    keep = (weight <= torch.finfo(weight.dtype).tiny).reshape((-1,) + (1,) * (new.dim() - 1))
    return torch.where(keep, old, new)
