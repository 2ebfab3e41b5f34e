"""Probability-space HMM recursions with per-step rescaling (private to :mod:`probmodels.hmm`).

The ``"scaled"`` method of :mod:`probmodels.hmm.ops`. Emission likelihoods are
exponentiated after subtracting their maximum over the states at each step;
a step of a recursion is then a product with the transition matrix in
probability space (one BLAS matrix product for the forward and backward
passes, a max-times product for Viterbi) followed by a rescaling of the
vector to sum (or maximum) 1, and the logs of the scales add up to the
log-likelihood (or the log probability of the best path). In float64 this is
exact to rounding unless the probability of one step falls below the
smallest double (about 1e-308), which log space would survive.

Speculative blocking removes most Python steps when a batch has few rows:
the steps are cut into ``B`` blocks of ``S`` that run as one batch, every
block but the first from a guessed (uniform) start; a second pass reruns
every block from the end of its predecessor's first pass until the two runs
agree in every state to the relative tolerance ``AGREEMENT_TOL_EPS`` machine
epsilons (an HMM filter forgets its start exponentially fast; both
recursions are non-expansive in Hilbert's projective metric, so agreement at
one step bounds the difference at every later step), and keeps the first
pass from there on. A block that does not agree within its length makes its
rerun the reference of another round (from the rerun's ends); agreement in
a round makes every block exact, by induction from the first, whose start
is exact. That is ``S`` plus the steps to agreement instead of ``T`` Python
steps. After ``_MAX_ROUNDS`` rounds without agreement (a chain that never
forgets its start, e.g. left-to-right or reducible) the recursion is rerun
step by step, which is exact for any chain.

Tensors are time-major, as in :mod:`probmodels.hmm.scan`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from .scan import Problem, compose_maps, gather_last

AGREEMENT_TOL_EPS = 1e4
"""The agreement tolerance of speculative blocking, in units of the dtype's machine epsilon (2.2e-12 in float64)."""

# Blocks are sized so that a step of the blocked recursion has about this many
# rows (sequences x blocks): enough to hide the per-step Python overhead ...
_TARGET_ROWS = 2048
# ... and, for max-times, so that the (rows, K, K) products stay about this
# many elements (cache-sized: with 2048 rows, Viterbi at K = 64 ran 4 times slower).
_MAX_PRODUCT_ELEMENTS = 1 << 16
# Smallest block: shorter blocks would spend most of their steps agreeing.
_MIN_BLOCK_STEPS = 32
# A matrix product of per-row vectors with broadcast matrices is an einsum when each
# matrix serves more rows than this (matmul copies the matrices out to every row:
# 10x slower with 312 rows per matrix at K = 16; einsum was slower up to 50 rows).
_EINSUM_MIN_SHARING = 128
# Rounds of reruns before falling back to the step-by-step recursion.
_MAX_ROUNDS = 6
# The second pass tests for agreement every this many steps (each test syncs).
_CHECK_EVERY = 8


class Run(NamedTuple):
    """The output of one recursion over ``n`` steps."""

    vectors: torch.Tensor
    """``(n, ..., K)``: the normalised vectors."""
    scales: torch.Tensor
    """``(n, ...)``: the sum (or maximum) each vector was divided by; 0 once the vector is all zeros."""
    pointers: torch.Tensor | None
    """``(n, ..., K)``: for max-times, the argmax of each step (a map from a state to its predecessor)."""


class Smoothed(NamedTuple):
    """The output of :func:`smooth`, time-major."""

    log_likelihood: torch.Tensor
    marginals: torch.Tensor
    pairwise: torch.Tensor | None
    transition_counts: torch.Tensor | None


def forward_filter(prob: Problem) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(log_likelihood, alpha)``: filtered probabilities ``(T, ..., K)``, unmasked."""
    log_likelihood, first, run, _, _ = _forward(prob)
    return log_likelihood, torch.cat([first.unsqueeze(0), run.vectors])


def log_likelihood(prob: Problem) -> torch.Tensor:
    """Return the log-likelihood ``(...)`` alone."""
    return _forward(prob, keep=False)[0]


def forward_backward(prob: Problem) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(log_likelihood, alpha, backward weights, transition probs)``: what :func:`posterior_factors` needs.

    ``alpha`` and the weights of :func:`_backward_weights` are ``(T, ..., K)``. The
    forward and the backward recursions are independent: they run as one
    recursion over a new batch dim of 2 (the backward one in reversed time),
    which halves the Python steps.
    """
    emit, shift = _emission_probs(prob)
    trans = _transition_probs(prob)
    first, scale = _normalise(prob.init.exp() * emit[0], "sum")
    last, _ = _normalise(emit[-1], "sum")
    log_likelihood = scale.log() + shift.sum(0)
    if prob.num_steps == 1:
        return log_likelihood, first.unsqueeze(0), last.unsqueeze(0), trans
    if trans.dim() == 2:
        mats = torch.block_diag(trans, trans.T)
    else:
        mats = torch.stack([trans, (trans if trans.shape[0] == 1 else trans.flip(0)).transpose(-1, -2)], -3)
    tmask = None if prob.mask is None else torch.stack([prob.mask[1:], prob.mask[1:].flip(0)], -1)
    start = torch.stack([first, last], -2)
    run = recurse(start, mats, torch.stack([emit[1:], emit[:-1].flip(0)], -2), tmask, "sum")
    alpha = torch.cat([first.unsqueeze(0), run.vectors[..., 0, :]])
    weights = torch.cat([run.vectors[..., 1, :].flip(0), last.unsqueeze(0)])
    return log_likelihood + run.scales[..., 0].log().sum(0), alpha, weights, trans


def _forward(prob: Problem, keep: bool = True) -> tuple[torch.Tensor, torch.Tensor, Run, torch.Tensor, torch.Tensor]:
    """The forward pass: ``(log_likelihood, alpha_0, the run of the steps 1 .. T-1, emission probs, transition probs)``;
    ``keep=False``: the run's vectors are not all stored (see :func:`recurse`)."""
    emit, shift = _emission_probs(prob)
    trans = _transition_probs(prob)
    first, scale = _normalise(prob.init.exp() * emit[0], "sum")
    run = recurse(first, trans, emit[1:], None if prob.mask is None else prob.mask[1:], "sum", keep)
    return scale.log() + run.scales.log().sum(0) + shift.sum(0), first, run, emit, trans


def backward_filter(prob: Problem) -> torch.Tensor:
    """Return normalised ``beta`` probabilities ``(T, ..., K)`` (sum 1 per step, ``1 / K`` at the end), unmasked."""
    emit, _ = _emission_probs(prob)
    trans = _transition_probs(prob)
    weights = _backward_weights(prob, emit, trans)
    beta, _ = _normalise(_beta_from_weights(weights, trans, None if prob.mask is None else prob.mask[1:]), "sum")
    return beta


def smooth(prob: Problem, pairwise: bool, counts: bool) -> Smoothed:
    """Posterior marginals ``(T, ..., K)``, optional pairwise ``(T-1, ..., K, K)`` and counts ``(..., K, K)``.

    Unmasked; impossible sequences get zeros.
    """
    log_likelihood, alpha, weights, trans = forward_backward(prob)
    marginals, left, right = posterior_factors(prob, log_likelihood, alpha, weights, trans)
    pair = total = None
    if pairwise or counts:
        if pairwise or (trans.dim() > 2 and trans.shape[0] > 1):
            pair = left.unsqueeze(-1) * trans * right.unsqueeze(-2)
            total = pair.sum(0) if counts else None
        else:
            total = torch.einsum("t...i,t...j->...ij", left, right) * (trans if trans.dim() == 2 else trans[0])
    return Smoothed(log_likelihood, marginals, pair if pairwise else None, total)


def posterior_factors(
    prob: Problem, log_likelihood: torch.Tensor, alpha: torch.Tensor, weights: torch.Tensor, trans: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Smoothing from the output of :func:`forward_backward`.

    Returns ``(marginals, left, right)``: unmasked posterior marginals ``(T, ..., K)``
    (zeros for impossible sequences) and the factors ``(T-1, ..., K)`` of the
    pairwise marginals ``p(z_t = i, z_{t+1} = j | x) = left[t, ..., i] * trans[i, j] * right[t, ..., j]``
    (``left`` is zero where the step ``t -> t+1`` is padded).
    """
    tmask = None if prob.mask is None else prob.mask[1:]
    beta = _beta_from_weights(weights, trans, tmask)
    joint = alpha * beta
    norm = joint.sum(-1, keepdim=True)
    possible = torch.isfinite(log_likelihood).unsqueeze(-1)
    inv_norm = torch.where(norm > 0, 1 / norm, 0.0) * possible
    left = alpha[:-1] * inv_norm[:-1]
    if tmask is not None:
        left = left * tmask.unsqueeze(-1)
    return joint.mul_(inv_norm), left, weights[1:]


def viterbi(prob: Problem) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(log_prob, path (T, ...))`` by max-times products; padded steps of the path are 0."""
    emit, shift = _emission_probs(prob)
    trans = _transition_probs(prob)
    first, scale = _normalise(prob.init.exp() * emit[0], "max")
    tmask = None if prob.mask is None else prob.mask[1:]
    run = recurse(first, trans, emit[1:], tmask, "max")
    log_prob = scale.log() + run.scales.log().sum(0) + shift.sum(0)
    last = (run.vectors[-1] if prob.num_steps > 1 else first).argmax(-1)
    path = backtrack(run.pointers, last)
    return log_prob, path if prob.mask is None else path * prob.mask


# ----------------------------------------------------------------------------- the recursion


def recurse(
    start: torch.Tensor, mats: torch.Tensor, emit: torch.Tensor, tmask: torch.Tensor | None, semiring: str, keep: bool = True
) -> Run:
    """``u_i = (v_{i-1} (x) M_i) * E_i``, ``v_i = u_i / scale_i`` for ``i < n``, from ``v_{-1} = start``.

    ``(x)`` is a matrix product (``"sum"``: scale = sum) or a max-times
    product (``"max"``: scale = max, with argmax pointers). ``start``
    ``(..., K)``; ``mats`` ``(K, K)`` shared by every step and row, or
    ``(1 or n, ..., K, K)``, or for ``"sum"`` a block-diagonal ``(G K, G K)``
    shared by every step whose block ``g`` serves the rows ``[..., g, :]`` of a
    ``start`` ``(..., G, K)`` (one matrix product for ``G`` recursions);
    ``emit`` ``(n, ..., K)`` non-negative; ``tmask`` ``(n, ...)`` bool or
    None: where False the step has no transition
    (``u_i = v_{i-1} * E_i``). Blocked speculatively when the batch has few
    rows and ``n`` is long; step by step otherwise, or when the blocks never agree.
    ``keep=False``: only the scales are wanted; the vectors are stored at the
    steps that the blocked recursion compares (every ``_CHECK_EVERY``-th and
    the last of a block) and are undefined elsewhere, which saves two passes over ``(n, ..., K)``.
    """
    if emit.dim() == 2:  # no batch dims: give it one, so that every step is a matrix product
        mats = mats if mats.dim() == 2 else mats.unsqueeze(1)
        run = recurse(start.unsqueeze(0), mats, emit.unsqueeze(1), None if tmask is None else tmask.unsqueeze(1), semiring, keep)
        return Run(*(None if x is None else x.squeeze(1) for x in run))
    n = emit.shape[0]
    num_blocks = _num_blocks(n, math.prod(emit.shape[1:-1]), _target_rows(emit.shape[-1], semiring))
    if num_blocks >= 2:
        run = _speculative(start, mats, emit, tmask, semiring, num_blocks, keep)
        if run is not None:
            return run
    out = _buffers(emit.shape, 1, emit, semiring)
    _sequential(start, mats, emit, tmask, semiring, Run(*(None if x is None else x[0] for x in out)), keep)
    return Run(*(None if x is None else x[0] for x in out))


def _target_rows(num_states: int, semiring: str) -> int:
    return _TARGET_ROWS if semiring == "sum" else max(1, min(_TARGET_ROWS, _MAX_PRODUCT_ELEMENTS // num_states**2))


def _num_blocks(n: int, rows: int, target_rows: int = _TARGET_ROWS) -> int:
    """Blocks for ``n`` steps of ``rows`` rows: about ``target_rows / rows``; a divisor of ``n`` within a
    factor 2 of that when there is one (the blocks are then views, without a padded copy)."""
    most = n // _MIN_BLOCK_STEPS
    target = min(-(-target_rows // rows), most)
    if target < 2:
        return 1
    divisors = [b for b in range(max(2, target // 2), min(2 * target, most) + 1) if n % b == 0]
    return min(divisors, key=lambda b: abs(math.log(b / target)), default=target)


def _buffers(shape: torch.Size, num_blocks: int, like: torch.Tensor, semiring: str) -> Run:
    """Outputs of ``num_blocks`` blocks covering ``shape[0]`` steps, stored block-major, indexed ``[block][step]``;
    dtype and device of ``like``."""
    size = -(-shape[0] // num_blocks)
    full = (num_blocks, size) + shape[1:]
    pointers = like.new_empty(full, dtype=_index_dtype(shape[-1])) if semiring == "max" else None
    return Run(like.new_empty(full), like.new_empty(full[:-1]), pointers)


def _sequential(start, mats, emit, tmask, semiring, out: Run, keep: bool) -> None:
    """Run every step into ``out`` (time-major views), with one write per output at the end."""
    mats = mats.transpose(-1, -2).contiguous() if semiring == "max" else mats
    scratch = _scratch(start, mats, semiring)
    v = start
    steps = []
    for i in range(emit.shape[0]):
        v, scale, arg = _step(v, _mat(mats, i), emit[i], None if tmask is None else tmask[i], semiring, scratch)
        steps.append((v if keep or _checked(i, emit.shape[0]) else None, scale, arg))
    _store(out, steps, keep)


def _checked(i: int, size: int) -> bool:
    """Whether the blocked recursion compares step ``i`` of a block of ``size`` steps."""
    return (i + 1) % _CHECK_EVERY == 0 or i == size - 1


def _store(out: Run, steps: list[tuple], keep: bool) -> None:
    """Write ``steps`` (``(vector or None, scale, pointers)`` each) into the first steps of ``out``."""
    if not steps:
        return
    vectors, *rest = zip(*steps)
    if keep:
        out.vectors[: len(steps)] = torch.stack(vectors)
    else:
        for i, v in enumerate(vectors):
            if v is not None:
                out.vectors[i] = v
    for field, values in zip(out[1:], rest):
        if field is not None:
            field[: len(steps)] = torch.stack(values)


def _mat(mats: torch.Tensor, i: int) -> torch.Tensor:
    """The matrix of step ``i`` from ``(K, K)`` or ``(1 or n, ..., K, K)``."""
    return mats if mats.dim() == 2 else mats[i if mats.shape[0] > 1 else 0]


def _scratch(v: torch.Tensor, mats: torch.Tensor, semiring: str) -> torch.Tensor | None:
    """A buffer for the ``(..., K, K)`` products of max-times, reused by every step (no allocation per step)."""
    if semiring == "sum":
        return None
    k = v.shape[-1]
    return v.new_empty(torch.broadcast_shapes(v.shape[:-1] + (1, k), mats.shape[1:] if mats.dim() > 2 else (k, k)))


def _step(v, mat, emit, tmask, semiring, scratch):
    """One step: ``(vector, scale, pointers or None)``. For ``"max"``, ``mat`` is transposed."""
    arg = None
    if semiring == "sum" and mat.dim() == 2:
        u = v @ mat if mat.shape[0] == v.shape[-1] else (v.flatten(-2) @ mat).view(v.shape)
    elif semiring == "sum" and mat.numel() * _EINSUM_MIN_SHARING < v.numel() * v.shape[-1]:
        u = torch.einsum("...i,...ij->...j", v, mat)  # folds the rows that share a matrix into one product
    elif semiring == "sum":
        u = (v.unsqueeze(-2) @ mat).squeeze(-2)
    else:
        u, arg = torch.mul(v.unsqueeze(-2), mat, out=scratch).max(-1)
        if tmask is not None:
            arg = torch.where(tmask.unsqueeze(-1), arg, torch.arange(v.shape[-1], device=v.device))
    if tmask is not None:
        u = torch.where(tmask.unsqueeze(-1), u, v)
    u.mul_(emit)
    scale = u.sum(-1) if semiring == "sum" else u.amax(-1)
    return u.div_(scale.clamp_min(torch.finfo(u.dtype).tiny).unsqueeze(-1)), scale, arg


def _speculative(start, mats, emit, tmask, semiring, num_blocks, keep) -> Run | None:
    """Blocked recursion (see the module docstring); None when some block never agrees."""
    n, k = emit.shape[0], emit.shape[-1]
    size = -(-n // num_blocks)
    if mats.dim() > 2 and mats.shape[0] > 1:
        mats = _to_blocks(mats, num_blocks, size)
    emit = _to_blocks(emit, num_blocks, size)
    tmask = None if tmask is None else _to_blocks(tmask, num_blocks, size)
    guess = start.new_full((num_blocks,) + start.shape, 1.0 / k if semiring == "sum" else 1.0)
    guess[0] = start
    out = _buffers((n,) + emit.shape[2:], num_blocks, emit, semiring)
    first = Run(*(None if x is None else x.transpose(0, 1) for x in out))  # time-major views
    _sequential(guess, mats, emit, tmask, semiring, first, keep)
    tol = AGREEMENT_TOL_EPS * torch.finfo(emit.dtype).eps
    tmats = mats.transpose(-1, -2).contiguous() if semiring == "max" else mats
    scratch = _scratch(guess, tmats, semiring)
    for _ in range(_MAX_ROUNDS):
        v = torch.cat([start.unsqueeze(0), first.vectors[-1, :-1]])
        second: list[tuple] = []
        for i in range(size):
            v, scale, arg = _step(v, _mat(tmats, i), emit[i], None if tmask is None else tmask[i], semiring, scratch)
            second.append((v if keep or _checked(i, size) else None, scale, arg))
            if _checked(i, size):
                agreed = bool((torch.abs(v - first.vectors[i]) <= tol * v).all())
                if agreed or i == size - 1:  # keep this round up to here; a full round becomes the reference
                    _store(first, second, keep)
                if agreed:
                    return Run(*(None if x is None else x.flatten(0, 1)[:n] for x in out))
    return None


def _to_blocks(x: torch.Tensor, num_blocks: int, size: int) -> torch.Tensor:
    """``(n, ...)`` -> ``(size, num_blocks, ...)``, step ``b * size + s`` at ``[s, b]``; the tail repeats the last step."""
    pad = num_blocks * size - x.shape[0]
    if pad:
        x = torch.cat([x, x[-1:].expand((pad,) + x.shape[1:])])
    return x.reshape((num_blocks, size) + x.shape[1:]).transpose(0, 1)


def _index_dtype(num_states: int) -> torch.dtype:
    return torch.uint8 if num_states <= 256 else torch.int32


# ----------------------------------------------------------------------------- pieces


def _emission_probs(prob: Problem) -> tuple[torch.Tensor, torch.Tensor]:
    """Emission likelihoods divided by their maximum over the states ``(T, ..., K)``, and the log maxima ``(T, ...)``.

    Padded steps get likelihood 1 and shift 0.
    """
    log_emit = prob.emit if prob.mask is None else torch.where(prob.mask.unsqueeze(-1), prob.emit, 0.0)
    top = log_emit.amax(-1, keepdim=True)
    top = torch.where(torch.isfinite(top), top, 0.0)
    return (log_emit - top).exp_(), top.squeeze(-1)


def _transition_probs(prob: Problem) -> torch.Tensor:
    """``(K, K)`` when one matrix serves every step and sequence, else ``(1 or T-1, ..., K, K)``."""
    trans = prob.trans.exp()
    if trans.shape[0] == 1 and math.prod(trans.shape[:-2]) == 1:
        return trans.reshape(trans.shape[-2:])
    return trans


def _normalise(u: torch.Tensor, semiring: str) -> tuple[torch.Tensor, torch.Tensor]:
    scale = u.sum(-1) if semiring == "sum" else u.amax(-1)
    return u / torch.where(scale > 0, scale, 1.0).unsqueeze(-1), scale


def _backward_weights(prob: Problem, emit: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
    """``w_t = E_t * (w_{t+1} @ A_t^T)`` from ``w_{T-1} = E_{T-1}``, normalised: ``(T, ..., K)``."""
    last, _ = _normalise(emit[-1], "sum")
    if prob.num_steps == 1:
        return last.unsqueeze(0)
    mats = trans.transpose(-1, -2) if trans.dim() == 2 or trans.shape[0] == 1 else trans.flip(0).transpose(-1, -2)
    tmask = None if prob.mask is None else prob.mask[1:].flip(0)
    run = recurse(last, mats, emit[:-1].flip(0), tmask, "sum")
    return torch.cat([run.vectors.flip(0), last.unsqueeze(0)])


def _beta_from_weights(weights: torch.Tensor, trans: torch.Tensor, tmask: torch.Tensor | None) -> torch.Tensor:
    """Unnormalised ``beta_t = w_{t+1} @ A_t^T`` (``w_{t+1}`` where the step has no transition), ones at the end."""
    nxt = weights[1:]
    beta = nxt @ trans.transpose(-1, -2) if trans.dim() == 2 else (nxt.unsqueeze(-2) @ trans.transpose(-1, -2)).squeeze(-2)
    if tmask is not None:
        beta = torch.where(tmask.unsqueeze(-1), beta, nxt)
    return torch.cat([beta, torch.ones_like(weights[:1])])


def backtrack(pointers: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """Follow ``pointers`` ``(n, ..., K)`` (step ``i`` maps ``z_{i+1}`` to ``z_i``) back from ``last`` ``(...)``: ``(n + 1, ...)``.

    With many steps and few rows: compose each block's maps (one batched pass),
    carry the state across block ends (a parallel scan), then follow every block from its end at once.
    """
    n = pointers.shape[0]
    num_blocks = _num_blocks(n, max(1, last.numel()), _target_rows(pointers.shape[-1], "max"))
    if num_blocks < 2:
        return _follow(pointers, last)
    size = -(-n // num_blocks)
    pad = num_blocks * size - n
    if pad:
        identity = torch.arange(pointers.shape[-1], dtype=pointers.dtype, device=pointers.device)
        identity = identity.expand((pad,) + pointers.shape[1:])
        pointers = torch.cat([pointers, identity])
    blocks = pointers.reshape((num_blocks, size) + pointers.shape[1:]).transpose(0, 1)
    total = torch.arange(pointers.shape[-1], device=pointers.device).expand(blocks.shape[1:]).contiguous()
    for i in range(size - 1, -1, -1):
        total = torch.gather(blocks[i], -1, total).long()
    suffix = compose_maps(total[1:], reverse=True)  # z at the end of the last block -> z at the end of block b
    ends = torch.cat([gather_last(suffix, last), last.unsqueeze(0)])  # the state at the end of each block
    inner = _follow(blocks, ends)  # (size + 1, num_blocks, ...)
    path = inner[:-1].transpose(0, 1).reshape((-1,) + inner.shape[2:])[:n]
    return torch.cat([path, last.unsqueeze(0)])


def _follow(pointers: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    states = [last]
    for i in range(pointers.shape[0] - 1, -1, -1):
        states.append(_take(pointers[i], states[-1]))
    return torch.stack(states[::-1])


def _take(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[..., index]`` for a ``(..., K)`` table and a ``(...)`` long index."""
    return torch.gather(table, -1, index.unsqueeze(-1)).squeeze(-1).long()
