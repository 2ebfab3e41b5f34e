"""Log densities of the network priors and likelihoods as plain tensor arithmetic.

The NUTS path (:mod:`probmodels.bnn.nuts`) evaluates the log posterior at
every leapfrog step; the core compiles that step into one graph, which only
works when the density is traceable. ``torch.distributions`` objects check
their arguments with data-dependent branches that stop the tracer, so the
densities the sampler needs are written out here (tests check each against
``pyro.distributions``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["normal_log_prob", "half_normal_log_prob", "observation_log_prob", "tanh_by_sigmoid", "GRAPH_ACTIVATIONS"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def normal_log_prob(value: torch.Tensor, loc: torch.Tensor | float, scale: float) -> torch.Tensor:
    """Elementwise ``log N(value | loc, scale)``."""
    z = (value - loc) / scale
    return -0.5 * z * z - (math.log(scale) + _HALF_LOG_2PI)


def half_normal_log_prob(value: torch.Tensor, scale: float) -> torch.Tensor:
    """Elementwise ``log HalfNormal(value | scale)`` for ``value >= 0``."""
    return normal_log_prob(value, 0.0, scale) + math.log(2.0)


def tanh_by_sigmoid(h: torch.Tensor) -> torch.Tensor:
    """``tanh(h)`` written as ``2 sigmoid(2h) - 1``: equal to rounding, cheaper inside a compiled graph.

    On CPU, TorchInductor compiles this form (and its gradient) into code
    that makes a NUTS leaf of a 50-unit tanh network about 30 % cheaper than
    with its vectorised ``tanh`` (measured side by side). ``sigmoid`` and its
    gradient stay finite for every input.
    """
    return 2.0 * torch.sigmoid(2.0 * h) - 1.0


# activations the NUTS density uses in place of the model's own (same values, faster compiled code)
GRAPH_ACTIVATIONS = {"tanh": tanh_by_sigmoid}


def observation_log_prob(task: str, outputs: torch.Tensor, noise: torch.Tensor | float | None, y: torch.Tensor) -> torch.Tensor:
    """Pointwise log-likelihood ``(..., N)`` of targets ``y (N,)`` given network outputs ``(..., N, out)``.

    Parameters
    ----------
    task
        ``"regression"`` (Gaussian with standard deviation ``noise``, one
        number or ``(...,)``), ``"binary"`` (Bernoulli on the logit
        ``outputs[..., 0]``) or ``"multiclass"`` (categorical on the logits).
    outputs, noise, y
        Network outputs, noise standard deviation (regression) and targets.
    """
    if task == "regression":
        scale = noise.unsqueeze(-1) if isinstance(noise, torch.Tensor) and noise.dim() else noise
        z = (y - outputs[..., 0]) / scale
        log_scale = scale.log() if isinstance(scale, torch.Tensor) else math.log(scale)
        return -0.5 * z * z - log_scale - _HALF_LOG_2PI
    if task == "binary":
        logits = outputs[..., 0]
        return y * logits - F.softplus(logits)
    index = y.long().expand(outputs.shape[:-1]).unsqueeze(-1)
    return outputs.gather(-1, index)[..., 0] - outputs.logsumexp(-1)
