"""The native kernels on torch tensors: when they apply, and calls on a flattened batch.

:mod:`probmodels.hmm.ops` runs them (its ``method="auto"``) for problems on
the CPU in float64 without gradients, with one transition matrix for every
sequence and step, unless the environment variable ``PROBMODELS_HMM_NATIVE``
is ``0`` or the kernels could not be built; :mod:`probmodels.hmm.linear_emission`
runs them on emissions computed step by step from features. The kernels read
the tensors' memory in place (no copies for contiguous inputs) and write into
fresh tensors. Sequences the probability-space kernels flag (an impossible
sequence, or a step whose probability underflows a double) come back in
``failed``, for the caller to recompute in log space.
"""

from __future__ import annotations

import math
import os
from typing import NamedTuple

import torch

from ..scan import Problem
from . import build

__all__ = ["Flat", "enabled", "applicable", "flatten", "log_likelihood", "smooth", "viterbi"]


class Flat(NamedTuple):
    """An HMM problem with shared transitions, batch-major with one flat batch dim ``B``.

    The emission log-likelihoods are ``log_emit``, or (when it is None)
    ``features @ weights + bias``, which the kernels compute step by step.
    """

    log_init: torch.Tensor
    """``(B, K)``, or ``(1, K)`` when every sequence shares it."""
    log_trans: torch.Tensor
    """``(K, K)``."""
    log_emit: torch.Tensor | None
    """``(B, T, K)``, or None for linear emissions."""
    lengths: torch.Tensor | None
    """``(B,)`` int64, or None when every sequence has ``T`` steps."""
    batch_shape: torch.Size
    """The problem's batch shape, to restore."""
    features: torch.Tensor | None = None
    """``(B, T, F)`` for linear emissions."""
    weights: torch.Tensor | None = None
    """``(F, K)`` for linear emissions."""
    bias: torch.Tensor | None = None
    """``(K,)`` for linear emissions."""

    @property
    def sizes(self) -> tuple[int, int, int]:
        """``(B, T, K)``."""
        if self.log_emit is not None:
            return tuple(self.log_emit.shape)
        return self.features.shape[0], self.features.shape[1], self.weights.shape[1]

    def subset(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(log_init, log_trans, log_emit, lengths)`` of the sequences at ``index``, for the log-space functions."""
        init = self.log_init if self.log_init.shape[0] == 1 else self.log_init[index]
        lengths = None if self.lengths is None else self.lengths[index]
        if self.log_emit is not None:
            emit = self.log_emit[index]
        else:
            emit = torch.matmul(self.features[index], self.weights) + self.bias
        return init.expand(len(index), -1), self.log_trans, emit, lengths


def enabled() -> bool:
    """Whether the native kernels are switched on (``PROBMODELS_HMM_NATIVE`` is not ``0``) and built."""
    return os.environ.get("PROBMODELS_HMM_NATIVE", "1") != "0" and build.load() is not None


def applicable(prob: Problem) -> bool:
    """Whether the native kernels can run ``prob`` (which needs no gradient) and are switched on and built."""
    return (
        prob.init is not None
        and prob.emit.dtype == torch.float64
        and prob.emit.device.type == "cpu"
        and prob.trans.shape[0] == 1
        and prob.trans.numel() == prob.num_states**2
        and enabled()
    )


def flatten(prob: Problem, lengths: torch.Tensor | None) -> Flat:
    """The batch-major, contiguous arguments of the kernels (``lengths`` as given to :func:`~probmodels.hmm.ops.prepare`)."""
    steps, states = prob.num_steps, prob.num_states
    size = math.prod(prob.batch_shape)
    emit = prob.emit.movedim(0, -2).reshape(size, steps, states).contiguous()
    init = prob.init
    shared_init = all(stride == 0 for stride in init.stride()[:-1])
    init = (init.reshape(-1, states)[:1] if shared_init else init.reshape(size, states)).contiguous()
    if lengths is not None:
        lengths = torch.as_tensor(lengths).to(torch.int64).expand(prob.batch_shape).reshape(size).contiguous()
    return Flat(init, prob.trans.reshape(states, states).contiguous(), emit, lengths, prob.batch_shape)


def log_likelihood(flat: Flat) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(log_likelihood (B,), failed)``: ``failed`` indexes the flagged sequences (None: none)."""
    size = flat.sizes[0]
    out = flat.log_trans.new_empty(size)
    failed = torch.empty(size, dtype=torch.uint8)
    count = build.load().hmm_log_likelihood(*_arguments(flat), out.data_ptr(), failed.data_ptr())
    return out, _failed(count, failed)


def smooth(flat: Flat, transition_counts: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """``(log_likelihood (B,), marginals (B, T, K), counts (B, K, K) or None, failed)``.

    Marginals are 0 at padded steps and for impossible or flagged sequences,
    as are the expected transition counts.
    """
    size, steps, states = flat.sizes
    loglik = flat.log_trans.new_empty(size)
    marginals = flat.log_trans.new_empty(size, steps, states)
    counts = flat.log_trans.new_empty(size, states, states) if transition_counts else None
    failed = torch.empty(size, dtype=torch.uint8)
    count = build.load().hmm_smooth(
        *_arguments(flat), loglik.data_ptr(), marginals.data_ptr(), None if counts is None else counts.data_ptr(),
        failed.data_ptr(),
    )
    return loglik, marginals, counts, _failed(count, failed)


def viterbi(flat: Flat) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log_prob (B,), path (B, T) int64)``: the best path, zeros at padded steps and for impossible sequences."""
    size, steps, _ = flat.sizes
    log_prob = flat.log_trans.new_empty(size)
    path = torch.empty(size, steps, dtype=torch.int64)
    _check(build.load().hmm_viterbi(*_arguments(flat), log_prob.data_ptr(), path.data_ptr()))
    return log_prob, path


def _arguments(flat: Flat) -> tuple:
    size, steps, states = flat.sizes
    init_stride = 0 if flat.log_init.shape[0] == 1 else states
    if flat.log_emit is not None:
        emission = (flat.log_emit.data_ptr(), None, 0, None, None)
    else:
        emission = (None, flat.features.data_ptr(), flat.features.shape[-1], flat.weights.data_ptr(), flat.bias.data_ptr())
    lengths = None if flat.lengths is None else flat.lengths.data_ptr()
    return (size, steps, states, flat.log_init.data_ptr(), init_stride, flat.log_trans.data_ptr(), *emission, lengths)


def _failed(count: int, failed: torch.Tensor) -> torch.Tensor | None:
    _check(count)
    return failed.nonzero().squeeze(-1) if count else None


def _check(status: int) -> None:
    if status < 0:
        raise MemoryError("the native HMM kernels could not allocate their work buffers.")
