"""Time-major kernels of the exact HMM algorithms (private to :mod:`probmodels.hmm`).

Semiring building blocks (safe log-sum-exp, log-space and max-plus matrix
products), scans over a time axis (a vector recursion run as a parallel or
blocked scan, compositions of index maps), inverse-CDF categorical draws, and
the forward, backward and Viterbi recursions on a :class:`Problem`.
:mod:`probmodels.hmm.ops` validates the user's tensors, builds the
``Problem`` and shapes the results.

Every tensor here is **time-major**: the time axis is dim 0 and the dims to
its right broadcast. Exact zeros stay exact: ``-inf`` log-weights propagate as
``-inf`` and never turn into NaN, in values or in gradients.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch

Elems = tuple[torch.Tensor, ...]
Combine = Callable[[Elems, Elems], Elems]


# Largest number of elements of the (..., K, K, K) intermediate of one
# semiring matrix product before it is computed in chunks along dim 0.
_MAX_PRODUCT_ELEMENTS = 1 << 24


# Below this many elements torch.logsumexp (one call) beats the fused version
# (fewer Python-level ops); above it the fused version does fewer passes.
_FUSED_MIN_ELEMENTS = 1 << 14


def _logsumexp_fused(x: torch.Tensor, dim: int, inplace: bool = False) -> torch.Tensor:
    if x.numel() < _FUSED_MIN_ELEMENTS:
        return torch.logsumexp(x, dim)
    top = x.amax(dim, keepdim=True)
    top = torch.where(torch.isfinite(top), top, 0.0)
    shifted = x.sub_(top) if inplace else x - top
    return shifted.exp_().sum(dim).log_().add_(top.squeeze(dim))


class _SafeLogSumExp(torch.autograd.Function):
    """Log-sum-exp whose gradient is 0, not NaN, when every term is ``-inf``."""

    @staticmethod
    def forward(ctx, x, dim):
        out = _logsumexp_fused(x, dim)
        ctx.save_for_backward(x, out)
        ctx.dim = dim
        return out

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        out, grad = out.unsqueeze(ctx.dim), grad.unsqueeze(ctx.dim)
        weights = torch.where(torch.isneginf(out), 0.0, torch.exp(x - out))
        return grad * weights, None


def logsumexp(x: torch.Tensor, dim: int, inplace: bool = False) -> torch.Tensor:
    """``log(sum(exp(x), dim))``: ``-inf`` (value) and 0 (gradient) when all terms are ``-inf``.

    ``inplace=True`` lets it overwrite ``x`` when no gradient is needed (for temporaries).
    """
    if torch.is_grad_enabled() and x.requires_grad:
        return _SafeLogSumExp.apply(x, dim)
    return _logsumexp_fused(x, dim, inplace)


def normalise(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(v - lse, lse)`` with ``lse = logsumexp(v, -1)``; rows of ``-inf`` stay ``-inf``."""
    lse = logsumexp(v, -1)
    return v - torch.where(torch.isfinite(lse), lse, 0.0).unsqueeze(-1), lse


def shift_max(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(v - max, max)`` over the last dim; rows of ``-inf`` stay ``-inf``."""
    top = v.amax(-1)
    return v - torch.where(torch.isfinite(top), top, 0.0).unsqueeze(-1), top


def safe_softmax(x: torch.Tensor, dims: int = 1) -> torch.Tensor:
    """Softmax over the last ``dims`` dims; a block of only ``-inf`` gives zeros, never NaN."""
    flat = x.flatten(-dims) if dims > 1 else x
    top = flat.detach().amax(-1, keepdim=True)
    weights = torch.exp(flat - torch.where(torch.isfinite(top), top, 0.0))
    total = weights.sum(-1, keepdim=True)
    probs = weights / torch.where(total > 0, total, 1.0)
    return probs.unflatten(-1, x.shape[-dims:]) if dims > 1 else probs


def log_identity(num_states: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The identity of both semirings: 0 on the diagonal, ``-inf`` elsewhere."""
    eye = torch.full((num_states, num_states), -math.inf, dtype=dtype, device=device)
    return eye.fill_diagonal_(0.0)


def _reduce(x: torch.Tensor, dim: int, semiring: str, inplace: bool = False) -> torch.Tensor:
    return logsumexp(x, dim, inplace) if semiring == "log" else x.amax(dim)


def _product(a: torch.Tensor, b: torch.Tensor, semiring: str) -> torch.Tensor:
    # x[..., i, j, k] = a[..., i, k] + b[..., k, j]: the reduced k is innermost and contiguous,
    # which is several times faster on CPU than reducing a middle dim.
    return _reduce(a.unsqueeze(-2) + b.transpose(-1, -2).unsqueeze(-3), -1, semiring, inplace=True)


def semiring_matmul(a: torch.Tensor, b: torch.Tensor, semiring: str) -> torch.Tensor:
    """``reduce_k(a[..., i, k] + b[..., k, j])`` (log-sum-exp or max), chunked along dim 0.

    The intermediate holds ``K**3`` elements per matrix; it is exact (no
    exponentiation of values shifted by separate row and column maxima, which
    can underflow to a false zero) at the price of ``K`` times the work of a
    BLAS product, the right trade for the small ``K`` of HMMs.
    """
    shape = torch.broadcast_shapes(a.shape, b.shape)
    k = shape[-1]
    per_row = math.prod(shape[1:-2]) * k**3 if len(shape) > 2 else k**3
    if len(shape) == 2 or shape[0] * per_row <= _MAX_PRODUCT_ELEMENTS:
        return _product(a, b, semiring)
    a, b = a.expand(shape), b.expand(shape)
    step = max(1, _MAX_PRODUCT_ELEMENTS // per_row)
    return torch.cat([_product(a[i : i + step], b[i : i + step], semiring) for i in range(0, shape[0], step)])


def matrix_combine(semiring: str) -> Combine:
    """Product of scaled matrices ``(mat, log_scale)``: the value is ``mat + log_scale``.

    Each product is shifted so that its largest entry is 0 and the shift is
    carried in ``log_scale``; long prefix products then keep O(1) entries,
    which keeps filtered probabilities accurate in float32.
    """

    def combine(x: Elems, y: Elems) -> Elems:
        mat = semiring_matmul(x[0], y[0], semiring)
        top = mat.detach().amax((-2, -1))
        top = torch.where(torch.isfinite(top), top, 0.0)
        return mat - top[..., None, None], x[1] + y[1] + top

    return combine


def vector_scan(
    first: torch.Tensor,
    first_scale: torch.Tensor,
    mats: torch.Tensor,
    semiring: str,
    method: str,
    reverse: bool = False,
    block_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """All vectors of the recursion ``v_{t+1} = v_t (x) M_t``, without a loop over ``t``.

    ``first`` ``(..., K)`` is ``v_0`` with log-scale ``first_scale`` ``(...)``;
    ``mats`` ``(N, ..., K, K)``. Returns ``(vectors, scales)`` shaped
    ``(N + 1, ..., K)`` and ``(N + 1, ...)``: each vector is normalised
    (log-sum-exp 0 for the log semiring, max 0 for max-plus) and its log-scale
    carries the rest, so ``scales[-1]`` is the log-likelihood (or max log
    probability). With ``reverse`` it runs ``v_t = M_t (x) v_{t+1}`` from the
    end, ``first`` being ``v_N``.

    ``"parallel"``: an up-sweep of pairwise matrix products (``N`` products in
    all, ``log2 N`` levels) and a down-sweep of vector-matrix products;
    ``"blocked"``: matrix products reduce each block of ``block_size``
    (default ``sqrt(N)``) steps, a parallel scan carries vectors across the
    blocks, then a loop over the steps of a block runs all blocks as a batch.
    """
    if reverse:
        vectors, scales = vector_scan(first, first_scale, mats.flip(0).transpose(-1, -2), semiring, method, False, block_size)
        return vectors.flip(0), scales.flip(0)
    mat_scales = mats.new_zeros(mats.shape[:-2])
    if method == "blocked":
        rest = _vector_scan_blocked(first, first_scale, mats, mat_scales, semiring, block_size)
    else:
        rest = _vector_scan_parallel(first, first_scale, mats, mat_scales, semiring)
    return torch.cat([first.unsqueeze(0), rest[0]]), torch.cat([first_scale.unsqueeze(0), rest[1]])


def _vecmat(v, v_scale, mat, mat_scale, semiring):
    w = _reduce(v.unsqueeze(-2) + mat.transpose(-1, -2), -1, semiring, inplace=True)
    w, top = normalise(w) if semiring == "log" else shift_max(w)
    return w, v_scale + mat_scale + top


def _vector_scan_parallel(first, first_scale, mats, mat_scales, semiring):
    n = mats.shape[0]
    if n <= 1:
        w, c = _vecmat(first, first_scale, mats, mat_scales, semiring)
        return w, c
    pairs = matrix_combine(semiring)((mats[0:-1:2], mat_scales[0:-1:2]), (mats[1::2], mat_scales[1::2]))
    odd_v, odd_s = _vector_scan_parallel(first, first_scale, *pairs, semiring)  # after steps 0 .. 2i+1
    num_even = (n + 1) // 2
    prev_v = torch.cat([first.unsqueeze(0), odd_v[: num_even - 1]])
    prev_s = torch.cat([first_scale.unsqueeze(0), odd_s[: num_even - 1]])
    even_v, even_s = _vecmat(prev_v, prev_s, mats[0::2], mat_scales[0::2], semiring)  # after steps 0 .. 2i
    return _interleave(even_v, odd_v), _interleave(even_s, odd_s)


def _vector_scan_blocked(first, first_scale, mats, mat_scales, semiring, block_size):
    n = mats.shape[0]
    size = block_size or max(1, math.isqrt(n))
    blocks = -(-n // size)
    pad = blocks * size - n
    if pad:
        eye = log_identity(mats.shape[-1], mats.dtype, mats.device)
        mats = torch.cat([mats, eye.expand((pad,) + mats.shape[1:])])
        mat_scales = torch.cat([mat_scales, mat_scales.new_zeros((pad,) + mat_scales.shape[1:])])
    local = tuple(e.reshape((blocks, size) + e.shape[1:]).transpose(0, 1) for e in (mats, mat_scales))
    totals = _reduce_tree(matrix_combine(semiring), local)  # (blocks, ...)
    ends_v, ends_s = _vector_scan_parallel(first, first_scale, *totals, semiring)
    v = torch.cat([first.unsqueeze(0), ends_v[:-1]])
    s = torch.cat([first_scale.unsqueeze(0), ends_s[:-1]])
    out_v, out_s = [], []
    for step in range(size):
        v, s = _vecmat(v, s, local[0][step], local[1][step], semiring)
        out_v.append(v)
        out_s.append(s)
    out_v, out_s = torch.stack(out_v, 1), torch.stack(out_s, 1)  # (blocks, size, ...)
    return out_v.flatten(0, 1)[:n], out_s.flatten(0, 1)[:n]


def _reduce_tree(combine: Combine, elems: Elems) -> Elems:
    """The product of all elements along dim 0, by pairwise halving (``log2 N`` levels)."""
    while elems[0].shape[0] > 1:
        n = elems[0].shape[0]
        paired = combine(tuple(e[0 : n - 1 : 2] for e in elems), tuple(e[1::2] for e in elems))
        if n % 2:
            paired = tuple(torch.cat([p, e[-1:]]) for p, e in zip(paired, elems))
        elems = paired
    return tuple(e[0] for e in elems)


def compose_maps(maps: torch.Tensor, reverse: bool = False, parallel: bool = True) -> torch.Tensor:
    """All running compositions of index maps ``(N, ..., K)`` (long) along dim 0.

    Forward: ``maps[t]`` sends ``z_t`` to ``z_{t+1}``; returns
    ``maps[t] o ... o maps[0]`` (``z_0 -> z_{t+1}``). Reverse: ``maps[t]``
    sends ``z_{t+1}`` to ``z_t`` (backpointers); returns
    ``maps[t] o ... o maps[N-1]`` (``z_N -> z_t``). ``parallel`` composes by
    an odd-even scan (``O(log N)`` depth) instead of a loop; results are identical.
    """
    if maps.shape[0] == 0:
        return maps
    if reverse:
        return compose_maps(maps.flip(0), False, parallel).flip(0)
    scan = _scan_parallel if parallel else _scan_sequential
    return scan(_apply_then, maps)


def _apply_then(first: torch.Tensor, then: torch.Tensor) -> torch.Tensor:
    first, then = torch.broadcast_tensors(first, then)
    return torch.gather(then, -1, first)


def _scan_sequential(combine, elems: torch.Tensor) -> torch.Tensor:
    acc = elems[0]
    out = [acc]
    for t in range(1, elems.shape[0]):
        acc = combine(acc, elems[t])
        out.append(acc)
    return torch.stack(out)


def _scan_parallel(combine, elems: torch.Tensor) -> torch.Tensor:
    n = elems.shape[0]
    if n < 2:
        return elems
    odd = _scan_parallel(combine, combine(elems[0:-1:2], elems[1::2]))  # odd[i] = elems[0 .. 2i+1]
    even = combine(odd if n % 2 else odd[:-1], elems[2::2])  # even[i] = elems[0 .. 2i+2]
    return _interleave(torch.cat([elems[:1], even]), odd)


def _interleave(even: torch.Tensor, odd: torch.Tensor) -> torch.Tensor:
    """Positions 0, 2, 4, ... from ``even`` and 1, 3, ... from ``odd`` (``len(even) - len(odd)`` is 0 or 1)."""
    m = odd.shape[0]
    return torch.cat([torch.stack([even[:m], odd], 1).flatten(0, 1), even[m:]])


def categorical_from_uniform(logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Draw an index along the last dim of ``logits`` by inversion of the uniforms ``u``.

    ``u`` has the shape of ``logits`` without its last dim (after
    broadcasting). A zero-probability index is never returned; a row of only
    ``-inf`` returns the last index (callers mask those).
    """
    top = logits.amax(-1, keepdim=True)
    weights = torch.exp(logits - torch.where(torch.isfinite(top), top, 0.0))
    cdf = weights.cumsum(-1)
    draw = (cdf <= (u.unsqueeze(-1) * cdf[..., -1:])).sum(-1)
    k = logits.shape[-1]
    last_positive = (k - 1) - (weights > 0).flip(-1).to(torch.uint8).argmax(-1)
    return torch.minimum(draw, last_positive)


# ----------------------------------------------------------------------------- HMM recursions (time-major)


class Problem(NamedTuple):
    """Time-major, batch-aligned view of the inputs."""

    init: torch.Tensor | None  # (*batch, K)
    trans: torch.Tensor  # (1 or T-1, *batch', K, K); batch' broadcasts to batch
    emit: torch.Tensor  # (T, *batch, K)
    mask: torch.Tensor | None  # (T, *batch) bool: t < length
    batch_shape: torch.Size
    num_steps: int
    num_states: int


def gather_last(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[..., index]`` for a (N, ..., K) table and a (...) index, broadcasting over N."""
    index = index.unsqueeze(-1).expand(table.shape[:-1] + (1,))
    return torch.gather(table, -1, index).squeeze(-1)


def _step_trans(prob: Problem, t: int) -> torch.Tensor:
    """Transition log-matrix for ``t -> t+1``."""
    return prob.trans[t if prob.trans.shape[0] > 1 else 0]


def transfer_matrices(prob: Problem) -> torch.Tensor:
    """(T-1, ..., K, K) ``M_t[i, j] = log_trans[i, j] + log_emit[t+1, j]``; identity at padded steps."""
    mats = prob.trans + prob.emit[1:].unsqueeze(-2)
    if prob.mask is not None:
        eye = log_identity(prob.num_states, mats.dtype, mats.device)
        mats = torch.where(prob.mask[1:, ..., None, None], mats, eye)
    return mats


def forward_filter(prob: Problem, method: str, mats: torch.Tensor | None = None):
    """Return ``(log_likelihood, log_alpha)``, time-major and unmasked (padded steps repeat the last alpha)."""
    first, log_likelihood = normalise(prob.init + prob.emit[0])
    if prob.num_steps == 1:
        return log_likelihood, first.unsqueeze(0)
    if method == "sequential":
        alphas = [first]
        alpha = first
        for t in range(1, prob.num_steps):
            v = logsumexp(alpha.unsqueeze(-1) + _step_trans(prob, t - 1), -2) + prob.emit[t]
            new, c = normalise(v)
            if prob.mask is not None:
                step = prob.mask[t]
                new = torch.where(step.unsqueeze(-1), new, alpha)
                c = torch.where(step, c, 0.0)
            alpha, log_likelihood = new, log_likelihood + c
            alphas.append(alpha)
        return log_likelihood, torch.stack(alphas)
    mats = transfer_matrices(prob) if mats is None else mats
    alphas, scales = vector_scan(first, log_likelihood, mats, "log", method)
    return scales[-1], alphas


def backward_filter(prob: Problem, method: str, mats: torch.Tensor | None = None) -> torch.Tensor:
    """Return normalised ``log_beta``, time-major and unmasked."""
    k = prob.num_states
    last = prob.emit.new_full(prob.batch_shape + (k,), -math.log(k))
    if prob.num_steps == 1:
        return last.unsqueeze(0)
    if method == "sequential":
        betas = [last]
        beta = last
        for t in range(prob.num_steps - 2, -1, -1):
            v = logsumexp(_step_trans(prob, t) + (prob.emit[t + 1] + beta).unsqueeze(-2), -1)
            new, _ = normalise(v)
            if prob.mask is not None:
                new = torch.where(prob.mask[t + 1].unsqueeze(-1), new, beta)
            beta = new
            betas.append(beta)
        return torch.stack(betas[::-1])
    mats = transfer_matrices(prob) if mats is None else mats
    betas, _ = vector_scan(last, torch.zeros_like(last[..., 0]), mats, "log", method, reverse=True)
    return betas


def viterbi_sequential(prob: Problem):
    """Max-product recursion; returns ``(log_prob, last delta, backpointers (T-1, ..., K))``."""
    delta, log_prob = shift_max(prob.init + prob.emit[0])
    pointers = []
    for t in range(1, prob.num_steps):
        scores = delta.unsqueeze(-1) + _step_trans(prob, t - 1)
        # amax + argmax: Tensor.max(dim) measured up to 1000x slower on small CPU tensors under load
        best, arg = scores.amax(-2), scores.argmax(-2)
        new, top = shift_max(best + prob.emit[t])
        if prob.mask is not None:
            step = prob.mask[t]
            new = torch.where(step.unsqueeze(-1), new, delta)
            top = torch.where(step, top, 0.0)
        delta, log_prob = new, log_prob + top
        pointers.append(arg)
    empty = delta.new_zeros((0,) + delta.shape, dtype=torch.long)
    return log_prob, delta, torch.stack(pointers) if pointers else empty


def viterbi_scan(prob: Problem, method: str):
    """Max-plus scan; returns ``(log_prob, last delta, backpointers (T-1, ..., K))``."""
    first, log_prob = shift_max(prob.init + prob.emit[0])
    if prob.num_steps == 1:
        return log_prob, first, first.new_zeros((0,) + first.shape, dtype=torch.long)
    mats = transfer_matrices(prob)
    deltas, scales = vector_scan(first, log_prob, mats, "max", method)
    log_prob = scales[-1]
    pointers = (deltas[:-1].unsqueeze(-1) + mats).argmax(-2)
    return log_prob, deltas[-1], pointers


def backtrack(pointers: torch.Tensor, last: torch.Tensor, prob: Problem, method: str) -> torch.Tensor:
    """Follow maps ``z_{t+1} -> z_t`` (``(T-1, ..., K)``) back from ``last`` (``(...)``); returns (T, ...).

    At padded steps the maps are replaced by the identity, so ``last`` (the
    state at ``length - 1``) is carried to its place; padded steps are zeroed.
    """
    if prob.mask is not None:
        mask = prob.mask[1:]
        mask = mask.view(mask.shape[:1] + (1,) * (pointers.dim() - 1 - mask.dim()) + mask.shape[1:])
        states = torch.arange(prob.num_states, device=pointers.device)
        pointers = torch.where(mask.unsqueeze(-1), pointers, states)
    suffix = compose_maps(pointers, reverse=True, parallel=method != "sequential")
    path = torch.cat([gather_last(suffix, last), last.unsqueeze(0).expand((1,) + suffix.shape[1:-1])])
    if prob.mask is not None:
        full = prob.mask.view(prob.mask.shape[:1] + (1,) * (path.dim() - prob.mask.dim()) + prob.mask.shape[1:])
        path = path * full
    return path
