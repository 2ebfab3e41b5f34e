"""The differentiable ``"scaled"`` log-likelihood (private to :mod:`probmodels.hmm`).

:func:`log_likelihood` computes ``log p(x)`` by the probability-space
forward pass of :mod:`probmodels.hmm.scaled` (no autograd graph) and its
gradient by the identities of the forward-backward algorithm, not by
differentiating the recursion:

- ``d log p(x) / d log_init[k] = p(z_0 = k | x)``,
- ``d log p(x) / d log_emit[t, k] = p(z_t = k | x)``,
- ``d log p(x) / d log_trans[i, j] = sum_t p(z_t = i, z_{t+1} = j | x)``
  (per step for time-varying transitions),

each times the incoming gradient. The forward pass runs the scaled forward
and backward recursions as one (:func:`probmodels.hmm.scaled.forward_backward`,
speculatively blocked for long sequences) and keeps their ``(T, ..., K)``
outputs; the backward pass is then a few vectorised operations and, for a
transition matrix shared by the steps, one matrix product for the expected
counts: no Python loop and no ``(T, K, K)`` tensor. The partial derivatives
are with respect to the log weights as free coordinates (no normalisation is
implied), as for autograd.

Padded steps get gradient 0. Exact zeros (``-inf``) get gradient 0. An
impossible sequence (``log p(x) = -inf``) gets gradient 0 in every argument:
``log p(x)`` is flat at ``-inf`` under any finite change of the arguments that
keeps the zeros, so 0 is its derivative there. The same holds where a
step's probability underflows a double (``< 1e-308``), which makes the value
``-inf`` as in :mod:`probmodels.hmm.scaled`. Double backward is not supported.
"""

from __future__ import annotations

import math

import torch
from torch.autograd.function import once_differentiable

from . import scaled
from .scan import Problem


def log_likelihood(prob: Problem) -> torch.Tensor:
    """``log p(x)`` ``(...)``, differentiable with respect to ``prob.init``, ``prob.trans`` and ``prob.emit``.

    Lower precisions than float64 are computed in float64 (the gradient is cast
    back by autograd): the cost is small, and it spares float32 the underflow of
    probabilities below ``1e-38`` that log space would survive.
    """
    dtype = prob.emit.dtype
    if dtype != torch.float64:
        wide = [x.to(torch.float64) for x in (prob.init, prob.trans, prob.emit)]
        return _ScaledLogLikelihood.apply(*wide, prob).to(dtype)
    return _ScaledLogLikelihood.apply(prob.init, prob.trans, prob.emit, prob)


class _ScaledLogLikelihood(torch.autograd.Function):
    """``(init (..., K), trans (1 or T-1, ..., K, K), emit (T, ..., K), problem) -> log p(x) (...)``."""

    @staticmethod
    def forward(ctx, init, trans, emit, prob):
        prob = prob._replace(init=init, trans=trans, emit=emit)
        log_lik, alpha, weights, trans_probs = scaled.forward_backward(prob)
        ctx.prob = prob._replace(init=None, trans=None, emit=None)
        ctx.trans_shape = trans.shape
        ctx.save_for_backward(log_lik, alpha, weights, trans_probs)
        return log_lik

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        log_lik, alpha, weights, trans_probs = ctx.saved_tensors
        prob = ctx.prob
        marginals, left, right = scaled.posterior_factors(prob, log_lik, alpha, weights, trans_probs)
        marginals = marginals * grad.unsqueeze(-1)
        if prob.mask is not None:
            marginals = marginals * prob.mask.unsqueeze(-1)
        init_grad = marginals[0] if ctx.needs_input_grad[0] else None
        trans_grad = None
        if ctx.needs_input_grad[1]:
            trans_grad = _transition_grad(left * grad.unsqueeze(-1), right, trans_probs, ctx.trans_shape)
        return init_grad, trans_grad, marginals if ctx.needs_input_grad[2] else None, None


def _transition_grad(left: torch.Tensor, right: torch.Tensor, trans: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Expected transition counts ``sum_t left[t, ..., i] * trans[i, j] * right[t, ..., j]``, summed to ``shape``.

    ``shape`` is that of the time-major log transitions ``(1 or T-1, ..., K, K)``,
    whose batch dims may be 1 where they broadcast; ``trans`` holds their probabilities.
    """
    k = left.shape[-1]
    if shape[0] == 1 and math.prod(shape[1:-2]) == 1:  # one matrix for every step and sequence: one product
        counts = left.reshape(-1, k).T @ right.reshape(-1, k)
    elif shape[0] == 1:
        counts = torch.einsum("t...i,t...j->...ij", left, right).sum_to_size(shape[1:])
    else:
        counts = (left.unsqueeze(-1) * right.unsqueeze(-2)).sum_to_size(shape)
    return counts.reshape(shape) * trans
