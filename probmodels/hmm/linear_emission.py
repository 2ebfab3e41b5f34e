"""Emission log-likelihoods linear in per-step features, and the HMM algorithms on them.

Some emission families have log-likelihoods ``log p(x_t | z_t = k)`` that are
a linear function of a few features of ``x_t``: a Gaussian with diagonal
covariances is ``[x**2, x] @ [-1 / (2 var), mean / var] + const``. With ``F``
features instead of ``K`` states per step, :class:`LinearEmission` holds
``(N, T, F)`` instead of the ``(N, T, K)`` emission array, and the native
CPU kernels (:mod:`probmodels.hmm.native`) compute each step's ``K`` values as
they go: no ``(N, T, K)`` array is written, read back and checked.
:func:`log_likelihood`, :func:`posterior_marginals` and :func:`viterbi`
take either a :class:`LinearEmission` or a ``log_emit`` tensor; where the
native path does not apply they build ``log_emit`` and call the functions of
:mod:`probmodels.hmm.ops` of the same names, with the same results.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from . import ops
from .native import inference as native

__all__ = ["LinearEmission", "log_likelihood", "posterior_marginals", "viterbi"]


class LinearEmission(NamedTuple):
    """Emission log-likelihoods ``log_emit = features @ weights + bias``, ``(N, T, K)``."""

    features: torch.Tensor
    """``(N, T, F)`` per-step features."""
    weights: torch.Tensor
    """``(F, K)``."""
    bias: torch.Tensor
    """``(K,)``."""

    def log_emit(self) -> torch.Tensor:
        """The ``(N, T, K)`` emission log-likelihoods."""
        flat = self.features.reshape(-1, self.features.shape[-1])
        return torch.addmm(self.bias, flat, self.weights).reshape(self.features.shape[:-1] + (-1,))


def log_likelihood(
    log_init: torch.Tensor, log_trans: torch.Tensor, emit: torch.Tensor | LinearEmission, lengths: torch.Tensor | None = None
) -> torch.Tensor:
    """:func:`probmodels.hmm.ops.log_likelihood` of ``(N, T, K)`` emissions, given as a tensor or a :class:`LinearEmission`."""
    flat = _flat(log_init, log_trans, emit, lengths)
    if flat is None:
        return ops.log_likelihood(log_init, log_trans, _log_emit(emit), lengths)
    return ops.native_log_likelihood(flat)


def posterior_marginals(
    log_init: torch.Tensor,
    log_trans: torch.Tensor,
    emit: torch.Tensor | LinearEmission,
    lengths: torch.Tensor | None = None,
    *,
    transition_counts: bool = False,
) -> ops.PosteriorMarginals:
    """:func:`probmodels.hmm.ops.posterior_marginals` (without ``pairwise``) of emissions given as in :func:`log_likelihood`."""
    flat = _flat(log_init, log_trans, emit, lengths)
    if flat is None:
        return ops.posterior_marginals(log_init, log_trans, _log_emit(emit), lengths, transition_counts=transition_counts)
    return ops.native_posterior_marginals(flat, transition_counts)


def viterbi(
    log_init: torch.Tensor, log_trans: torch.Tensor, emit: torch.Tensor | LinearEmission, lengths: torch.Tensor | None = None
) -> ops.ViterbiResult:
    """:func:`probmodels.hmm.ops.viterbi` of emissions given as in :func:`log_likelihood`."""
    flat = _flat(log_init, log_trans, emit, lengths)
    if flat is None:
        return ops.viterbi(log_init, log_trans, _log_emit(emit), lengths)
    return ops.native_viterbi(flat)


def _log_emit(emit: torch.Tensor | LinearEmission) -> torch.Tensor:
    return emit.log_emit() if isinstance(emit, LinearEmission) else emit


def _flat(log_init, log_trans, emit, lengths) -> native.Flat | None:
    """The native kernels' problem for linear emissions of one parameter set, or None where they do not apply."""
    if not isinstance(emit, LinearEmission):
        return None
    tensors = (log_init, log_trans, *emit)
    states = emit.weights.shape[-1]
    applies = (
        emit.features.dim() == 3
        and log_init.shape == (states,)
        and log_trans.shape == (states, states)
        and emit.weights.dim() == 2
        and emit.bias.shape == (states,)
        and all(t.dtype == torch.float64 and t.device.type == "cpu" for t in tensors)
        and not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))
        and native.enabled()
    )
    if not applies:
        return None
    if lengths is not None:
        lengths = lengths.to(torch.int64).contiguous()
    return native.Flat(
        log_init.reshape(1, states).contiguous(), log_trans.contiguous(), None, lengths, emit.features.shape[:1],
        emit.features.contiguous(), emit.weights.contiguous(), emit.bias.contiguous(),
    )
