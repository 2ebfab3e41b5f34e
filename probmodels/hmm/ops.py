"""Exact inference in hidden Markov models: pure tensor functions in log space.

Forward filtering, backward filtering, smoothing (state and pairwise
marginals), Viterbi decoding, forward-filtering backward-sampling of state
paths from the posterior, and ancestral sampling from the prior. No Pyro: the
HMM model layer (and anyone else) feeds these log-space tensors and gets
tensors or small NamedTuples back, on the device of the inputs and
differentiable with respect to them (gradients stay finite with exact zeros)
by every method but ``"scaled"``, which works in probability space; its
:func:`log_likelihood` alone is differentiable, by the forward-backward
identities (:mod:`probmodels.hmm.gradient`) instead of autograd through the recursion.

Conventions (``K`` states, ``T`` steps, ``...`` batch dims that broadcast
between the arguments, e.g. sequences and/or posterior draws):

- ``log_init`` ``(..., K)``: ``log p(z_0 = k)``.
- ``log_trans`` ``(..., K, K)``: ``log_trans[..., i, j] = log p(z_{t+1} = j | z_t = i)``;
  with ``time_varying=True`` it is ``(..., T-1, K, K)`` and step ``t`` uses
  ``log_trans[..., t, :, :]`` for the transition ``t -> t+1``.
- ``log_emit`` ``(..., T, K)``: ``log p(x_t | z_t = k)``, computed by the caller
  from any emission distribution.
- ``lengths`` ``(...)`` integers in ``[1, T]``, optional: for a padded batch of
  sequences of different lengths. Steps ``t >= length`` contribute nothing; every
  per-step output is 0 there (0 in log-space outputs too, and state 0 in paths).

Entries may be ``-inf`` (exact zeros); they stay exact. An impossible sequence
(probability 0) gets ``log_likelihood = -inf``, smoothed marginals of zeros,
a Viterbi ``log_prob`` of ``-inf`` with a path of zeros, and sampled paths of
zeros; no output is ever NaN.

Algorithms (``method``):

- ``"sequential"``: a loop over ``t`` of vector-matrix log-sum-exp products,
  ``O(T K^2)`` work, ``T`` Python steps.
- ``"parallel"``: an associative scan over the per-step matrices
  ``M_t[i, j] = log_trans[i, j] + log_emit[t, j]`` in the log (or max-plus)
  semiring: an up-sweep of pairwise products (``T`` ``K x K`` products in
  ``log2 T`` levels) and a down-sweep of vector-matrix products, ``O(log T)``
  depth, ``O(T K^3)`` work, ``O(T K^2)`` memory (products are chunked to
  bound their ``K^3`` intermediate). Viterbi backtracking and posterior
  sampling compose their per-step index maps by a scan as well.
- ``"blocked"``: ``sqrt(T)`` blocks of ``sqrt(T)`` steps; block products by
  the up-sweep, a parallel scan across blocks, then a loop over the steps of
  a block that runs all blocks as one batch: ``O(sqrt(T))`` Python steps.
  Index maps are composed as in ``"parallel"``.
- ``"scaled"``: the loop in probability space, one matrix product and a
  rescaling per step (:mod:`probmodels.hmm.scaled`): ``O(T K^2)`` work, and
  for long sequences in small batches speculative blocks that cut the Python
  steps to about ``sqrt`` of the total. Differentiable in :func:`log_likelihood`
  only, where the gradient is the posterior marginals and expected transition
  counts of one fused forward and backward recursion (computed in float64);
  exact to rounding in float64 unless one step's probability underflows a
  double (``< 1e-308``: then ``-inf`` with gradient 0). Its Viterbi, with one
  transition matrix for every step and sequence, stores no backpointers: a
  max-only forward pass and a backtrack along the path (:mod:`probmodels.hmm.viterbi`).
- ``"auto"`` (default): for :func:`log_likelihood`, :func:`posterior_marginals`
  (without ``pairwise``) and :func:`viterbi` on CPU float64 inputs without a
  gradient and with one transition matrix for every sequence and step, native C
  kernels (:mod:`probmodels.hmm.native`, compiled with the system C compiler on
  first use): the ``"scaled"`` recursions step by step, one sequence after
  another, and a log-space max-plus Viterbi; a sequence whose scaled recursion
  sums to 0 at a step (impossible, or a step's probability below the smallest
  double) is recomputed in log space, so the results are those of the log-space
  methods to rounding. ``PROBMODELS_HMM_NATIVE=0`` (or no C compiler) turns them
  off. Otherwise ``"scaled"`` for float64 inputs when no gradient is
  needed (on a CPU, 40-100 times faster than the log-space methods for
  ``K = 4`` and ``16`` and ``10^5`` steps), and for :func:`log_likelihood`
  of any dtype when a gradient is needed (on a CPU, value and gradient 2-100
  times faster than autograd through the faster log-space method, from
  ``T = 60``, ``K = 2`` to ``T = 10^4``, ``K = 16``);
  otherwise ``"parallel"`` when ``T >= 64`` and ``K <= 16``, ``"sequential"``
  else (the parallel scan was 2-7 times faster than the loop for ``K <= 16``
  from ``T = 64`` on, and 2-3 times slower at ``K = 32``, where its ``K^3``
  work dominates). ``"blocked"`` is never chosen automatically: it measured a
  little slower than ``"parallel"`` on a CPU. All methods give the same
  results to rounding.

References: L. R. Rabiner (1989), A tutorial on hidden Markov models; S. Särkkä
and Á. F. García-Fernández (2021), Temporal parallelization of Bayesian
smoothers (the parallel scan); dynamax ``hidden_markov_model/inference.py``.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import torch

from ..exceptions import ModelSpecError, ShapeError
from . import gradient as _gradient
from . import scaled as _scaled
from . import scan as _scan
from . import viterbi as _viterbi
from .native import inference as _native
from .problem import HMMShape, check_hmm_params, check_normalised, check_tensor, prepare

__all__ = [
    "METHODS",
    "HMMShape",
    "ForwardResult",
    "PosteriorMarginals",
    "ViterbiResult",
    "forward",
    "log_likelihood",
    "backward",
    "posterior_marginals",
    "viterbi",
    "sample_states",
    "sample",
    "check_hmm_params",
    "check_normalised",
]

METHODS = ("auto", "sequential", "parallel", "blocked", "scaled")
"""Accepted values of ``method``."""

_PARALLEL_MIN_STEPS = 64
_PARALLEL_MAX_STATES = 16


class ForwardResult(NamedTuple):
    """Output of :func:`forward`."""

    log_likelihood: torch.Tensor
    """``(...)``: ``log p(x_{0:T-1})``; for a padded sequence, of its first ``length`` steps."""
    log_alpha: torch.Tensor
    """``(..., T, K)``: **normalised** filtered log probabilities ``log p(z_t = k | x_{0:t})``;
    ``log_alpha.exp()`` is the filtering distribution. ``-inf`` in every state
    from the step where the observations so far become impossible; 0 at padded steps."""


class PosteriorMarginals(NamedTuple):
    """Output of :func:`posterior_marginals` (smoothing)."""

    log_likelihood: torch.Tensor
    """``(...)``: ``log p(x_{0:T-1})``."""
    marginals: torch.Tensor
    """``(..., T, K)``: ``p(z_t = k | x_{0:T-1})``; zeros at padded steps and for impossible sequences."""
    pairwise: torch.Tensor | None
    """``(..., T-1, K, K)``: ``p(z_t = i, z_{t+1} = j | x_{0:T-1})``, or None unless
    ``pairwise=True``; zeros for pairs that reach a padded step and for impossible sequences."""
    transition_counts: torch.Tensor | None = None
    """``(..., K, K)``: ``pairwise`` summed over the steps (the expected transition counts of an EM
    step), or None unless ``transition_counts=True``."""


class ViterbiResult(NamedTuple):
    """Output of :func:`viterbi`."""

    path: torch.Tensor
    """``(..., T)`` long: the most probable state path (``argmax_z p(z | x)``); 0 at padded steps."""
    log_prob: torch.Tensor
    """``(...)``: its joint log probability ``log p(z, x)``; ``-inf`` for an impossible sequence."""


def forward(
    log_init: torch.Tensor,
    log_trans: torch.Tensor,
    log_emit: torch.Tensor,
    lengths: torch.Tensor | None = None,
    *,
    time_varying: bool = False,
    method: str = "auto",
    validate: bool = True,
) -> ForwardResult:
    """Forward filtering: the log-likelihood and the filtered state probabilities.

    Parameters
    ----------
    log_init : torch.Tensor
        ``(..., K)`` initial state log probabilities.
    log_trans : torch.Tensor
        ``(..., K, K)`` transition log probabilities, row ``i`` = from state ``i``;
        ``(..., T-1, K, K)`` with ``time_varying=True``.
    log_emit : torch.Tensor
        ``(..., T, K)`` emission log-likelihoods ``log p(x_t | z_t = k)``.
    lengths : torch.Tensor, optional
        ``(...)`` integer lengths in ``[1, T]`` of padded sequences.
    time_varying : bool, default False
        Whether ``log_trans`` has a time axis of ``T - 1`` transitions.
    method : {"auto", "sequential", "parallel", "blocked", "scaled"}, default "auto"
        Algorithm; see the module docstring for the ``"auto"`` rule.
    validate : bool, default True
        Check the values for NaN and ``+inf`` (one device sync per argument);
        shapes are always checked.

    Returns
    -------
    ForwardResult
        ``log_likelihood`` ``(...)`` and normalised ``log_alpha`` ``(..., T, K)``.

    Examples
    --------
    Two states with means 0 and 3, four observations:

    >>> import torch
    >>> from probmodels.hmm import forward
    >>> log_init = torch.tensor([0.5, 0.5], dtype=torch.float64).log()
    >>> log_trans = torch.tensor([[0.9, 0.1], [0.1, 0.9]], dtype=torch.float64).log()
    >>> x = torch.tensor([-0.2, 0.1, 2.8, 3.1], dtype=torch.float64)
    >>> means = torch.tensor([0.0, 3.0], dtype=torch.float64)
    >>> log_emit = torch.distributions.Normal(means, 1.0).log_prob(x[:, None])
    >>> result = forward(log_init, log_trans, log_emit)
    >>> round(float(result.log_likelihood), 3)
    -6.894
    >>> result.log_alpha.exp()[-1].round(decimals=3).tolist()  # P(state at the last step | data)
    [0.002, 0.998]
    """
    prob = prepare(log_init, log_trans, log_emit, lengths, time_varying, validate)
    method = _resolve_method(method, prob)
    log_likelihood, log_alpha = _forward_filter(prob, method)
    return ForwardResult(log_likelihood, _batch_major(_mask_steps(log_alpha, prob.mask)))


def log_likelihood(
    log_init: torch.Tensor,
    log_trans: torch.Tensor,
    log_emit: torch.Tensor,
    lengths: torch.Tensor | None = None,
    *,
    time_varying: bool = False,
    method: str = "auto",
    validate: bool = True,
) -> torch.Tensor:
    """The log-likelihood ``log p(x_{0:T-1})`` alone, ``(...)``: :func:`forward` without the filtered probabilities.

    Parameters are those of :func:`forward`. Without a gradient the ``"scaled"``
    method then never builds the ``(..., T, K)`` output, which saves memory
    passes. With one (``"auto"`` chooses it then), the forward pass also runs
    the backward recursion and keeps ``O(T K)`` per sequence for the gradient:
    the posterior marginals for ``log_init`` and ``log_emit``, the expected
    transition counts for ``log_trans``; 0 at padded steps, at exact zeros
    and for impossible sequences. Double backward is not supported.
    """
    prob = prepare(log_init, log_trans, log_emit, lengths, time_varying, validate)
    method = _resolve_method(method, prob, differentiable_scaled=True, native=True)
    if method == "native":
        return native_log_likelihood(_native.flatten(prob, lengths))
    if method != "scaled":
        return _scan.forward_filter(prob, method)[0]
    return _gradient.log_likelihood(prob) if _needs_grad(prob) else _scaled.log_likelihood(prob)


def backward(
    log_trans: torch.Tensor,
    log_emit: torch.Tensor,
    lengths: torch.Tensor | None = None,
    *,
    time_varying: bool = False,
    method: str = "auto",
    validate: bool = True,
) -> torch.Tensor:
    """Backward filtering: log-likelihoods of the future observations given each state.

    Parameters are those of :func:`forward` (the initial distribution is not needed).

    Returns
    -------
    torch.Tensor
        ``(..., T, K)`` ``log_beta[..., t, k] = log p(x_{t+1:T-1} | z_t = k) - c_t``,
        where the constant ``c_t`` makes ``logsumexp_k log_beta[..., t, k] = 0``
        (values stay O(1) over long sequences; only differences over ``k`` carry
        information). Hence ``log_beta[..., T-1, :] = -log K``; smoothed
        marginals are ``softmax(log_alpha + log_beta)``. ``-inf`` in every state
        where the future is impossible; 0 at padded steps.
    """
    prob = prepare(None, log_trans, log_emit, lengths, time_varying, validate)
    method = _resolve_method(method, prob)
    log_beta = _scaled.backward_filter(prob).log() if method == "scaled" else _scan.backward_filter(prob, method)
    return _batch_major(_mask_steps(log_beta, prob.mask))


def posterior_marginals(
    log_init: torch.Tensor,
    log_trans: torch.Tensor,
    log_emit: torch.Tensor,
    lengths: torch.Tensor | None = None,
    *,
    pairwise: bool = False,
    transition_counts: bool = False,
    time_varying: bool = False,
    method: str = "auto",
    validate: bool = True,
) -> PosteriorMarginals:
    """Smoothing: posterior state marginals and (optionally) pairwise marginals.

    Parameters are those of :func:`forward`, plus

    pairwise : bool, default False
        Also return ``p(z_t = i, z_{t+1} = j | x)`` for every step, shaped
        ``(..., T-1, K, K)``.
    transition_counts : bool, default False
        Also return their sum over the steps, ``(..., K, K)``: the expected
        transition counts of an EM step. The ``"scaled"`` method computes it
        with one matrix product, without the ``(..., T-1, K, K)`` pairwise tensor.

    Returns
    -------
    PosteriorMarginals
        ``log_likelihood``, ``marginals`` ``(..., T, K)``, ``pairwise`` and ``transition_counts`` (or None).
    """
    prob = prepare(log_init, log_trans, log_emit, lengths, time_varying, validate)
    method = _resolve_method(method, prob, native=not pairwise)
    if method == "native":
        return native_posterior_marginals(_native.flatten(prob, lengths), transition_counts)
    if method == "scaled":
        smoothed = _scaled.smooth(prob, pairwise, transition_counts)
        pair = smoothed.pairwise
        if pair is not None:
            pair = pair.movedim(0, -3)
        marginals = _batch_major(_mask_steps(smoothed.marginals, prob.mask))
        return PosteriorMarginals(smoothed.log_likelihood, marginals, pair, smoothed.transition_counts)
    pairwise, keep_pairwise = pairwise or transition_counts, pairwise
    trans_mats = _scan.transfer_matrices(prob) if (pairwise or method != "sequential") else None
    log_likelihood, log_alpha = _scan.forward_filter(prob, method, trans_mats)
    log_beta = _scan.backward_filter(prob, method, trans_mats)
    possible = torch.isfinite(log_likelihood)
    marginals = _scan.safe_softmax(log_alpha + log_beta) * possible.unsqueeze(-1)
    marginals = _mask_steps(marginals, prob.mask)
    pair = None
    if pairwise:
        joint = log_alpha[:-1].unsqueeze(-1) + trans_mats + log_beta[1:].unsqueeze(-2)
        pair = _scan.safe_softmax(joint, dims=2) * possible[..., None, None]
        if prob.mask is not None:
            pair = pair * prob.mask[1:, ..., None, None]
        pair = pair.movedim(0, -3)
    counts = pair.sum(-3) if transition_counts else None
    return PosteriorMarginals(log_likelihood, _batch_major(marginals), pair if keep_pairwise else None, counts)


def viterbi(
    log_init: torch.Tensor,
    log_trans: torch.Tensor,
    log_emit: torch.Tensor,
    lengths: torch.Tensor | None = None,
    *,
    time_varying: bool = False,
    method: str = "auto",
    validate: bool = True,
) -> ViterbiResult:
    """Viterbi decoding: the most probable state path and its joint log probability.

    Parameters are those of :func:`forward`. The sequential method is the
    classic max-product recursion with backpointers; the parallel and blocked
    methods scan in the max-plus semiring and compose the backpointer maps by
    a second scan, so no step is a Python loop over ``T``; the scaled method
    runs max-times products in probability space (see the module docstring).

    Returns
    -------
    ViterbiResult
        ``path`` ``(..., T)`` long and ``log_prob`` ``(...)``. Ties are broken
        towards the lower state index.

    Examples
    --------
    >>> import torch
    >>> from probmodels.hmm import viterbi
    >>> log_init = torch.tensor([0.5, 0.5], dtype=torch.float64).log()
    >>> log_trans = torch.tensor([[0.9, 0.1], [0.1, 0.9]], dtype=torch.float64).log()
    >>> x = torch.tensor([-0.2, 0.1, 2.8, 3.1], dtype=torch.float64)
    >>> log_emit = torch.distributions.Normal(torch.tensor([0.0, 3.0], dtype=torch.float64), 1.0).log_prob(x[:, None])
    >>> viterbi(log_init, log_trans, log_emit).path.tolist()
    [0, 0, 1, 1]
    """
    prob = prepare(log_init, log_trans, log_emit, lengths, time_varying, validate)
    method = _resolve_method(method, prob, native=True)
    if method == "native":
        return native_viterbi(_native.flatten(prob, lengths))
    if method == "scaled":
        log_prob, path = (_viterbi.viterbi if _viterbi.shared_transitions(prob) else _scaled.viterbi)(prob)
        return ViterbiResult((path * torch.isfinite(log_prob)).movedim(0, -1), log_prob)
    if method == "sequential":
        log_prob, last_delta, backpointers = _scan.viterbi_sequential(prob)
    else:
        log_prob, last_delta, backpointers = _scan.viterbi_scan(prob, method)
    path = _scan.backtrack(backpointers, last_delta.argmax(-1), prob, method)
    path = path * torch.isfinite(log_prob)
    return ViterbiResult(path.movedim(0, -1), log_prob)


def sample_states(
    log_init: torch.Tensor,
    log_trans: torch.Tensor,
    log_emit: torch.Tensor,
    lengths: torch.Tensor | None = None,
    *,
    num_samples: int | None = None,
    generator: torch.Generator | None = None,
    time_varying: bool = False,
    method: str = "auto",
    validate: bool = True,
) -> torch.Tensor:
    """Forward-filtering backward-sampling: exact draws of state paths from ``p(z | x)``.

    All uniforms are drawn up front: for every step ``t`` and every value ``j``
    of ``z_{t+1}`` a draw of ``z_t ~ p(z_t | z_{t+1} = j, x_{0:t})``; a path is
    then the composition of these maps (a loop, or a scan for the parallel and
    blocked methods; all methods give identical paths from the same generator
    state). Memory is ``O(num_samples * T * K^2)`` booleans per batch element.

    Parameters
    ----------
    log_init, log_trans, log_emit, lengths, time_varying, method, validate
        As in :func:`forward`.
    num_samples : int, optional
        Number of paths; None draws one path without a sample dim.
    generator : torch.Generator, optional
        Source of randomness (on the inputs' device); the global RNG if None.

    Returns
    -------
    torch.Tensor
        ``(num_samples, ..., T)`` (or ``(..., T)``) long state paths; zeros at
        padded steps and for impossible sequences.
    """
    prob = prepare(log_init, log_trans, log_emit, lengths, time_varying, validate)
    method = _resolve_method(method, prob)
    count = _check_num_samples(num_samples)
    log_likelihood, log_alpha = _forward_filter(prob, method)
    log_alpha = log_alpha.unsqueeze(1)  # (T, S=1, ..., K): room for the sample dim
    shape = (count,) + prob.batch_shape
    last = _scan.categorical_from_uniform(log_alpha[-1], _uniform(shape, prob, generator))
    # cond[t, ..., j, i] = log p(z_t = i | z_{t+1} = j, x_{0:t}), unnormalised.
    cond = (log_alpha[:-1].unsqueeze(-1) + prob.trans.unsqueeze(1)).transpose(-1, -2)
    maps = _scan.categorical_from_uniform(cond, _uniform((prob.num_steps - 1,) + shape + (prob.num_states,), prob, generator))
    path = _scan.backtrack(maps, last, prob, method)  # (T, S, ...)
    path = path * torch.isfinite(log_likelihood)
    path = path.movedim(0, -1)
    return path if num_samples is not None else path.squeeze(0)


def sample(
    log_init: torch.Tensor,
    log_trans: torch.Tensor,
    num_steps: int,
    *,
    num_samples: int | None = None,
    generator: torch.Generator | None = None,
    time_varying: bool = False,
    validate: bool = True,
) -> torch.Tensor:
    """Ancestral sampling of state paths from the prior Markov chain.

    Parameters
    ----------
    log_init : torch.Tensor
        ``(..., K)`` initial state log probabilities.
    log_trans : torch.Tensor
        ``(..., K, K)``, or ``(..., num_steps - 1, K, K)`` with ``time_varying=True``.
    num_steps : int
        Path length ``T >= 1``.
    num_samples : int, optional
        Number of paths; None draws one path without a sample dim.
    generator : torch.Generator, optional
        Source of randomness; the global RNG if None.
    time_varying, validate
        As in :func:`forward`.

    Returns
    -------
    torch.Tensor
        ``(num_samples, ..., T)`` (or ``(..., T)``) long state paths.
    """
    if isinstance(num_steps, bool) or not isinstance(num_steps, numbers.Integral):
        raise TypeError(f"num_steps must be an integer >= 1, got {num_steps!r}.")
    if num_steps < 1:
        raise ShapeError(f"num_steps must be >= 1, got {num_steps}.")
    check_tensor(log_init, "log_init")
    dummy = log_init.new_zeros(()).expand(int(num_steps), log_init.shape[-1] if log_init.dim() else 0)
    prob = prepare(log_init, log_trans, dummy, None, time_varying, validate, check_emit=False)
    count = _check_num_samples(num_samples)
    shape = (count,) + prob.batch_shape
    first = _scan.categorical_from_uniform(prob.init, _uniform(shape, prob, generator))
    # maps[t, s, ..., i] = z_{t+1} drawn from row i of the transition matrix.
    u = _uniform((prob.num_steps - 1,) + shape + (prob.num_states,), prob, generator)
    maps = _scan.categorical_from_uniform(prob.trans.unsqueeze(1), u)
    composed = _scan.compose_maps(maps, parallel=prob.num_steps >= _PARALLEL_MIN_STEPS)
    rest = _scan.gather_last(composed, first)
    path = torch.cat([first.unsqueeze(0), rest]).movedim(0, -1)
    return path if num_samples is not None else path.squeeze(0)


# ----------------------------------------------------------------------------- internals


def _needs_grad(prob: _scan.Problem) -> bool:
    tensors = [t for t in (prob.init, prob.trans, prob.emit) if t is not None]
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _resolve_method(method: str, prob: _scan.Problem, differentiable_scaled: bool = False, native: bool = False) -> str:
    """The algorithm for ``method``; ``differentiable_scaled``: the caller has a gradient for ``"scaled"``;
    ``native``: the caller has a native kernel (``"native"``, an internal method of ``"auto"``)."""
    if method not in METHODS:
        raise ModelSpecError(f"method must be one of {METHODS}, got {method!r}.")
    needs_grad = _needs_grad(prob)
    if method == "scaled" and needs_grad and not differentiable_scaled:
        raise ModelSpecError(
            "method='scaled' propagates gradients only through log_likelihood; use 'sequential', 'parallel' "
            "or 'blocked' (or 'auto') here, or call under torch.no_grad()."
        )
    if method != "auto":
        return method
    if native and not needs_grad and _native.applicable(prob):
        return "native"
    if (prob.emit.dtype == torch.float64 and not needs_grad) or (needs_grad and differentiable_scaled):
        return "scaled"
    return _log_space_method(prob.num_steps, prob.num_states)


def _log_space_method(num_steps: int, num_states: int) -> str:
    """``"parallel"`` for long sequences with few states, else ``"sequential"``."""
    if num_steps >= _PARALLEL_MIN_STEPS and num_states <= _PARALLEL_MAX_STATES:
        return "parallel"
    return "sequential"


# ----------------------------------------------------------------------------- the native path
# For this module's "auto" and for probmodels.hmm.linear_emission: the kernels on a flattened
# problem, with the sequences they flag recomputed in log space, reshaped to the batch shape.


def native_log_likelihood(flat: _native.Flat) -> torch.Tensor:
    """:func:`log_likelihood` by the native kernels."""
    value, failed = _native.log_likelihood(flat)
    if failed is not None:
        method = _log_space_method(*flat.sizes[1:])
        value[failed] = log_likelihood(*flat.subset(failed), method=method, validate=False)
    return value.reshape(flat.batch_shape)


def native_posterior_marginals(flat: _native.Flat, transition_counts: bool) -> PosteriorMarginals:
    """:func:`posterior_marginals` (without ``pairwise``) by the native kernels."""
    loglik, marginals, counts, failed = _native.smooth(flat, transition_counts)
    if failed is not None:
        method = _log_space_method(*flat.sizes[1:])
        redo = posterior_marginals(*flat.subset(failed), transition_counts=transition_counts, method=method, validate=False)
        loglik[failed], marginals[failed] = redo.log_likelihood, redo.marginals
        if counts is not None:
            counts[failed] = redo.transition_counts
    _, steps, states = flat.sizes
    shape = flat.batch_shape
    counts = None if counts is None else counts.reshape(shape + (states, states))
    return PosteriorMarginals(loglik.reshape(shape), marginals.reshape(shape + (steps, states)), None, counts)


def native_viterbi(flat: _native.Flat) -> ViterbiResult:
    """:func:`viterbi` by the native kernels."""
    log_prob, path = _native.viterbi(flat)
    return ViterbiResult(path.reshape(flat.batch_shape + (flat.sizes[1],)), log_prob.reshape(flat.batch_shape))


def _forward_filter(prob: _scan.Problem, method: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log_likelihood, log_alpha)``, time-major and unmasked, by any method."""
    if method == "scaled":
        log_likelihood, alpha = _scaled.forward_filter(prob)
        return log_likelihood, alpha.log()
    return _scan.forward_filter(prob, method)


def _check_num_samples(num_samples: int | None) -> int:
    if num_samples is None:
        return 1
    if isinstance(num_samples, bool) or not isinstance(num_samples, numbers.Integral):
        raise TypeError(f"num_samples must be an integer >= 1 or None, got {num_samples!r}.")
    if num_samples < 1:
        raise ModelSpecError(f"num_samples must be >= 1, got {num_samples}.")
    return int(num_samples)


def _uniform(shape, prob: _scan.Problem, generator: torch.Generator | None) -> torch.Tensor:
    ref = prob.emit if prob.init is None else prob.init
    return torch.rand(shape, generator=generator, dtype=ref.dtype, device=ref.device)


def _batch_major(x: torch.Tensor) -> torch.Tensor:
    """(T, ..., K) -> (..., T, K)."""
    return x.movedim(0, -2)


def _mask_steps(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Zero the padded steps of a time-major (T, ..., K) tensor."""
    return x if mask is None else torch.where(mask.unsqueeze(-1), x, 0.0)
