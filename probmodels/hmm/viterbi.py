"""Viterbi decoding in probability space for one transition matrix shared by every step and sequence.

The ``"scaled"`` Viterbi of :mod:`probmodels.hmm.ops` when ``log_trans`` is a
single ``(K, K)`` matrix (private to :mod:`probmodels.hmm`; other cases run
:func:`probmodels.hmm.scaled.viterbi`). Two passes, neither of which stores a
backpointer table:

- **Forward**: the max-times recursion ``delta_t[j] = max_i delta_{t-1}[i] A[i, j] E_t[j]``,
  rescaled to maximum 1 at every step, with the maxima only (no argmax). The
  vectors are laid out state-major, ``(K, columns)``: the ``(K, K, columns)``
  product then reduces over a middle dim with the columns contiguous, which
  vectorises for any ``K`` (the argmax of a ``(rows, K, K)`` product over its
  last dim ran 4 to 10 times slower per element on a CPU). Long sequences run
  as speculative blocks, as in :mod:`probmodels.hmm.scaled`.
- **Backtrack**: the predecessor of state ``j`` at step ``t`` is
  ``argmax_i delta_t[i] A[i, j]`` (the same products, so the same ties to the
  lower index), computed along the path only: ``K`` products per step instead
  of ``K^2``. The blocks of the forward pass are followed back as one batch,
  every block but the last from a guessed end state (its best state); each
  block is then followed again from the state that its successor's pass
  reached at the block boundary, until the new path meets the previous one
  (two paths that meet coincide from there on, since they follow the same
  maps). By induction from the last block, whose end is exact, the path is
  then the exact backtrack. A round without meeting in every block makes its
  path the reference of the next; each round makes at least one more block
  exact, so it ends for any chain.

Tensors are time-major, as in :mod:`probmodels.hmm.scan`.
"""

from __future__ import annotations

import math

import torch

from .scaled import AGREEMENT_TOL_EPS, _emission_probs, _normalise, _num_blocks
from .scan import Problem

# Columns (sequences x blocks) of a step: its (K, K, columns) product is about this many
# elements, within [_MIN_COLUMNS, _MAX_COLUMNS] (about 0.1 ms a step on a CPU; a product
# that outgrows the cache ran 2 times slower per element).
_PRODUCT_ELEMENTS = 1 << 18
_MIN_COLUMNS = 16
_MAX_COLUMNS = 4096
# From this many states on, a step first takes the maximum over the _CANDIDATES largest entries
# of each vector only, and checks it against a bound on the others (see _MaxTimes).
_PRUNE_MIN_STATES = 32
_CANDIDATES = 8
# Speculative rounds of the forward pass before it runs as one block.
_MAX_ROUNDS = 6
# The second passes test for agreement every this many steps (each test syncs).
_CHECK_EVERY = 8


def shared_transitions(prob: Problem) -> bool:
    """Whether one ``(K, K)`` matrix serves every step and sequence (what :func:`viterbi` needs)."""
    return prob.trans.shape[0] == 1 and math.prod(prob.trans.shape[1:-2]) == 1


def viterbi(prob: Problem) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(log_prob (...), path (T, ...))``; padded steps of the path are 0."""
    k, n = prob.num_states, prob.num_steps - 1
    rows = math.prod(prob.batch_shape)
    emit, shift = _emission_probs(prob)
    emit = emit.expand((n + 1,) + prob.batch_shape + (k,))
    trans = prob.trans.exp().reshape(k, k)
    first, scale = _normalise((prob.init.exp() * emit[0]).expand(prob.batch_shape + (k,)), "max")
    log_prob = scale.log() + shift.sum(0)
    if n == 0:
        return log_prob, first.argmax(-1).unsqueeze(0)
    start = first.reshape(rows, k).T  # (K, rows)
    per_column = k * min(k, _CANDIDATES) if k >= _PRUNE_MIN_STATES else k**2
    num_blocks = _num_blocks(n, rows, max(_MIN_COLUMNS, min(_MAX_COLUMNS, _PRODUCT_ELEMENTS // per_column)))
    step_mask = None if prob.mask is None else prob.mask[1:].reshape(n, rows, 1)
    run = _forward_blocks(start, trans, emit[1:].reshape(n, rows, k), step_mask, num_blocks) if num_blocks > 1 else None
    if run is None:
        num_blocks = 1
        run = _forward_blocks(start, trans, emit[1:].reshape(n, rows, k), step_mask, 1)
    vectors, scales, mask = run
    log_prob = log_prob + scales.log().reshape(-1, num_blocks, rows).sum((0, 1)).reshape(prob.batch_shape)
    full = torch.full((rows,), n + 1, device=start.device)
    lengths = full if prob.mask is None else prob.mask.reshape(n + 1, rows).sum(0)
    last = _last_deltas(start, vectors, lengths).argmax(0)
    path = _backtrack(start, vectors, trans, mask, last, lengths)  # (size, columns): the state at the start of each step
    size = vectors.shape[0]
    path = path.reshape(size, num_blocks, rows).transpose(0, 1).reshape(num_blocks * size, rows)[:n]
    path = torch.cat([path, last.unsqueeze(0)]).reshape((n + 1,) + prob.batch_shape)
    return log_prob, path if prob.mask is None else path * prob.mask


def _last_deltas(start, vectors, lengths) -> torch.Tensor:
    """``(K, rows)``: each row's normalised delta at its last step, ``length - 1``. (Not the last vector: the
    steps past a row's end may keep the speculative pass of their block, see :func:`_agree`.)"""
    rows = start.shape[1]
    step = lengths - 2  # the forward step that reached length - 1; -1: none
    size = vectors.shape[0]
    column = (step.clamp_min(0) // size) * rows + torch.arange(rows, device=step.device)
    found = vectors[step.clamp_min(0) % size, :, column].T  # (K, rows)
    return torch.where(step >= 0, found, start)


def _columns(x: torch.Tensor, num_blocks: int, fill: float | bool) -> torch.Tensor:
    """``(n, rows, C)`` -> ``(size, C, num_blocks * rows)``: step ``b * size + s`` of row ``r`` at ``[s, :, b * rows + r]``;
    the steps past ``n`` are ``fill``."""
    n, rows, c = x.shape
    size = -(-n // num_blocks)
    pad = num_blocks * size - n
    if pad:
        x = torch.cat([x, x.new_full((pad, rows, c), fill)])
    return x.reshape(num_blocks, size, rows, c).permute(1, 3, 0, 2).reshape(size, c, num_blocks * rows)


def _forward_blocks(start, trans, emit, step_mask, num_blocks):
    """The forward pass in ``num_blocks`` blocks: ``(vectors (size, K, columns), scales (size, columns), mask)``,
    or None when some block never agrees. ``mask`` ``(size, 1, columns)`` (or None) is False at steps without a
    transition (padded sequences, and the steps past the end)."""
    k, rows = start.shape
    n = emit.shape[0]
    e = _columns(emit, num_blocks, 1.0)
    size, cols = e.shape[0], e.shape[2]
    mask = None
    if step_mask is not None or num_blocks * size > n:
        full = step_mask if step_mask is not None else torch.ones((n, rows, 1), dtype=torch.bool, device=e.device)
        mask = _columns(full, num_blocks, False)
    product = _MaxTimes(trans, cols)
    vectors, scales = e.new_empty(e.shape), e.new_empty((size, cols))
    work = (product, e.new_empty((k, cols)), e.new_empty(cols))
    v = e.new_ones((k, cols))
    v[:, :rows] = start
    for i in range(size):
        v = _step(v, e[i], None if mask is None else mask[i], work, vectors[i], scales[i])
    if num_blocks == 1:
        return vectors, scales, mask
    tol = AGREEMENT_TOL_EPS * torch.finfo(e.dtype).eps
    new_v, new_s = e.new_empty((k, cols)), e.new_empty(cols)
    for _ in range(_MAX_ROUNDS):
        v = torch.cat([start, vectors[-1, :, :-rows]], 1)
        for i in range(size):
            _step(v, e[i], None if mask is None else mask[i], work, new_v, new_s)
            checked = (i + 1) % _CHECK_EVERY == 0 or i == size - 1
            agreed = checked and _agree(new_v, vectors[i], tol, None if mask is None else mask[i])
            vectors[i].copy_(new_v)
            scales[i].copy_(new_s)
            v = vectors[i]
            if agreed:
                return vectors, scales, mask
    return None


def _agree(new, old, tol, mask) -> bool:
    """Whether every column agrees to ``tol``; a column without a transition (a padded step) always agrees: its
    vector only carries the row's last one, which :func:`viterbi` reads at the row's own last step."""
    close = torch.abs(new - old) <= tol * new
    return bool((close if mask is None else close | ~mask).all())


class _MaxTimes:
    """``u[j, c] = max_i A[i, j] v[i, c]`` for ``v`` ``(K, columns)``, into a buffer reused by every step.

    With ``K >= _PRUNE_MIN_STATES`` it takes the maximum over the ``_CANDIDATES`` largest ``v[i, c]`` of each
    column first (``K / _CANDIDATES`` times less work and memory traffic) and keeps it when it is at least
    ``v_(m) * max_i A[i, j]`` for every ``j``, ``v_(m)`` the smallest candidate: a bound on every other
    term, so the maximum, a product of the same two numbers, is the same to the bit. Otherwise the step
    takes all the terms.
    """

    def __init__(self, trans: torch.Tensor, cols: int):
        k = trans.shape[0]
        self.trans = trans
        self.at = trans.T.contiguous()  # (K_j, K_i)
        self.candidates = _CANDIDATES if k >= _PRUNE_MIN_STATES else 0
        self.column_max = trans.amax(0).unsqueeze(-1)  # (K_j, 1)
        self.full = None if self.candidates else trans.new_empty((k, k, cols))
        self.out = trans.new_empty((k, cols))

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        if self.candidates:
            top, index = torch.topk(v, self.candidates, 0)  # (m, columns), largest first
            rows = self.trans.index_select(0, index.flatten()).view(index.shape + (-1,))  # (m, columns, K_j)
            self.out.copy_(rows.mul_(top.unsqueeze(-1)).amax(0).T)  # a gather of rows: advanced indexing ran 5x slower
            if bool((self.out >= self.column_max * top[-1]).all()):
                return self.out
        if self.full is None:
            self.full = v.new_empty((v.shape[0],) + self.out.shape)
        return torch.amax(torch.mul(self.at.unsqueeze(-1), v.unsqueeze(0), out=self.full), 1, out=self.out)


def _step(v, e, mask, work, out_v, out_s):
    """One max-times step from ``v`` ``(K, columns)`` into ``out_v`` (rescaled) and ``out_s`` (the maxima)."""
    product, masked, clamped = work
    u = product(v)
    if mask is not None:
        u = torch.where(mask, u, v, out=masked)
    u.mul_(e)
    torch.amax(u, 0, out=out_s)
    torch.clamp_min(out_s, torch.finfo(u.dtype).tiny, out=clamped)
    return torch.div(u, clamped, out=out_v)


def _backtrack(start, vectors, trans, mask, last, lengths):
    """``(size, columns)`` long: the state of every column at the start of each step (see the module docstring)."""
    rows = start.shape[1]
    size, cols = vectors.shape[0], vectors.shape[2]
    num_blocks = cols // rows
    before = torch.cat([start, vectors[-1, :, :-rows]], 1)  # delta at the start of step 0 of each block
    path = torch.empty((size, cols), dtype=torch.long, device=vectors.device)
    # the guessed end of a block: its best state; the row's last state where the block ends past the row's end
    block_ends = torch.arange(1, num_blocks + 1, device=lengths.device).repeat_interleave(rows) * size
    ends = torch.where(block_ends >= lengths.repeat(num_blocks) - 1, last.repeat(num_blocks), vectors[-1].argmax(0))
    _follow(before, vectors, trans, mask, ends, path, check=False)
    while True:
        new_ends = torch.cat([path[0, rows:], last])
        if torch.equal(new_ends, ends):
            return path
        ends = new_ends
        if _follow(before, vectors, trans, mask, ends, path, check=True):
            return path


def _follow(before, vectors, trans, mask, ends, path, check: bool) -> bool:
    """Follow every block back from ``ends`` into ``path``; with ``check``, stop (True) where it meets ``path``."""
    z = ends
    size = path.shape[0]
    for i in range(size - 1, -1, -1):
        delta = vectors[i - 1] if i else before
        prev = torch.max(delta * trans.index_select(1, z), 0).indices  # argmax(0) ran 2-5 times slower for K <= 16
        if mask is not None:
            prev = torch.where(mask[i, 0], prev, z)
        if check and ((size - i) % _CHECK_EVERY == 0 or i == 0) and torch.equal(prev, path[i]):
            return True
        path[i] = prev
        z = prev
    return False
