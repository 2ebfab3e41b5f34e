"""Chunked posterior predictive of a Bayesian network and its uncertainty decomposition.

The network is evaluated draw by draw in blocks: test points are split into
chunks small enough that one ``(draws, points)`` output matrix fits in
``max_elements`` numbers, and within a chunk the draws are split again so
that the hidden activations fit too. Only per-point summaries are kept, so
10^4 draws on 10^5 points run in bounded memory on CPU or GPU.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, NamedTuple

import torch

__all__ = ["Predictive", "predictive", "mixture_quantiles"]

MAX_ELEMENTS = 2**22


class Predictive(NamedTuple):
    """Per-point summaries of the posterior predictive (None where they do not apply).

    Attributes
    ----------
    mean : Tensor
        Regression: predictive mean ``(N,)``. Classification: mean class
        probabilities ``(N, K)``.
    epistemic : Tensor
        Regression: variance of the network mean over draws. Classification:
        mutual information between the label and the weights (nats).
    aleatoric : Tensor
        Regression: mean noise variance. Classification: expected entropy of
        the label given the weights (nats).
    total : Tensor
        Regression: total predictive variance. Classification: entropy of the
        mean probabilities (= epistemic + aleatoric).
    lower, upper : Tensor or None
        Regression: bounds of the central predictive interval.
    log_density : Tensor or None
        Log predictive density of the given targets ``(N,)``.
    pit : Tensor or None
        Regression: predictive CDF at the given targets (probability integral transform).
    """

    mean: torch.Tensor
    epistemic: torch.Tensor
    aleatoric: torch.Tensor
    total: torch.Tensor
    lower: torch.Tensor | None = None
    upper: torch.Tensor | None = None
    log_density: torch.Tensor | None = None
    pit: torch.Tensor | None = None


def mixture_quantiles(means: torch.Tensor, sds: torch.Tensor, probs: tuple[float, ...], iterations: int = 60) -> list[torch.Tensor]:
    """Quantiles of equal-weight Gaussian mixtures over dim 0, by bisection on the mixture CDF.

    Parameters
    ----------
    means, sds
        Component means and standard deviations ``(S, N)`` (``sds`` broadcastable).
    probs
        Probabilities in (0, 1).
    iterations
        Bisection steps (the bracket shrinks by 2**-iterations).
    """
    normal = torch.distributions.Normal(torch.zeros((), dtype=means.dtype, device=means.device), 1.0)
    sds = torch.broadcast_to(sds, means.shape).clamp_min(torch.finfo(means.dtype).tiny)
    out = []
    for p in probs:
        lo = (means - 10 * sds).min(0).values
        hi = (means + 10 * sds).max(0).values
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            below = normal.cdf((mid - means) / sds).mean(0) < p
            lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
        out.append(0.5 * (lo + hi))
    return out


def _outputs(model: Any, params: Mapping[str, torch.Tensor], x: torch.Tensor, num_draws: int, draw_chunk: int) -> torch.Tensor:
    """Network outputs ``(S, m, out)`` for one chunk of points, in blocks of draws."""
    parts = []
    for start in range(0, num_draws, draw_chunk):
        block = {k: v[start : start + draw_chunk] for k, v in params.items()}
        size = min(draw_chunk, num_draws - start)
        out = model.forward(block, x)
        parts.append(torch.broadcast_to(out, (size,) + tuple(out.shape[-2:])))
    return torch.cat(parts)


def _noise(model: Any, params: Mapping[str, torch.Tensor], num_draws: int, like: torch.Tensor) -> torch.Tensor:
    noise = model.noise_scale(params)
    return torch.broadcast_to(torch.as_tensor(noise, dtype=like.dtype, device=like.device), (num_draws,))


def _class_log_probs(task: str, outputs: torch.Tensor) -> torch.Tensor:
    if task == "binary":
        logits = outputs[..., 0]
        return torch.stack([torch.nn.functional.logsigmoid(-logits), torch.nn.functional.logsigmoid(logits)], -1)
    return torch.log_softmax(outputs, -1)


def _entropy(log_p: torch.Tensor) -> torch.Tensor:
    return -(log_p.exp() * log_p).sum(-1)


def predictive(
    model: Any,
    params: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    level: float = 0.9,
    max_elements: int = MAX_ELEMENTS,
) -> Predictive:
    """Posterior predictive summaries of ``model`` at inputs ``x``, averaged over weight draws.

    Parameters
    ----------
    model
        A network model with ``forward(params, x)``, ``noise_scale(params)``,
        ``task`` and ``widths`` (e.g. :class:`~probmodels.bnn.model.MLPModel`).
    params
        Latent draws ``site -> (S, *shape)``.
    x
        Inputs ``(N, n_features)``.
    y
        Targets ``(N,)``; when given, the log predictive density (and, for
        regression, the PIT values) are returned.
    level
        Central probability of the regression interval.
    max_elements
        Numbers held at once per intermediate array (sets the chunk sizes).

    Returns
    -------
    Predictive
    """
    num_draws = next(iter(params.values())).shape[0]
    width = max(model.widths)
    point_chunk = max(1, max_elements // num_draws)
    draw_chunk = max(1, max_elements // (min(point_chunk, x.shape[0]) * width))
    rows: dict[str, list[torch.Tensor]] = {}
    log_s = math.log(num_draws)
    with torch.no_grad():
        noise = _noise(model, params, num_draws, x) if model.task == "regression" else None
        for start in range(0, x.shape[0], point_chunk):
            xc = x[start : start + point_chunk]
            yc = None if y is None else y[start : start + point_chunk]
            outputs = _outputs(model, params, xc, num_draws, draw_chunk)
            if model.task == "regression":
                part = _regression_chunk(outputs[..., 0], noise[:, None], yc, level, log_s)
            else:
                part = _classification_chunk(_class_log_probs(model.task, outputs), yc, log_s)
            for key, value in part.items():
                rows.setdefault(key, []).append(value)
    return Predictive(**{k: torch.cat(v) for k, v in rows.items()})


def _regression_chunk(means: torch.Tensor, sds: torch.Tensor, y: torch.Tensor | None, level: float, log_s: float) -> dict[str, torch.Tensor]:
    mean = means.mean(0)
    epistemic = means.var(0, unbiased=False)
    aleatoric = (sds**2).mean(0).expand_as(mean)
    tail = 0.5 * (1.0 - level)
    lower, upper = mixture_quantiles(means, sds, (tail, 1.0 - tail))
    out = dict(mean=mean, epistemic=epistemic, aleatoric=aleatoric, total=epistemic + aleatoric, lower=lower, upper=upper)
    if y is not None:
        normal = torch.distributions.Normal(means, torch.broadcast_to(sds, means.shape))
        out["log_density"] = torch.logsumexp(normal.log_prob(y), 0) - log_s
        out["pit"] = normal.cdf(y).mean(0)
    return out


def _classification_chunk(log_p: torch.Tensor, y: torch.Tensor | None, log_s: float) -> dict[str, torch.Tensor]:
    log_mean = torch.logsumexp(log_p, 0) - log_s
    total = _entropy(log_mean)
    aleatoric = _entropy(log_p).mean(0)
    out = dict(mean=log_mean.exp(), epistemic=(total - aleatoric).clamp_min(0.0), aleatoric=aleatoric, total=total)
    if y is not None:
        out["log_density"] = log_mean.gather(-1, y.long()[:, None])[:, 0]
    return out
