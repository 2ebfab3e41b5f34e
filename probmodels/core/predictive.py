"""Run a model over many posterior draws at once: deterministic sites, pointwise
log-likelihoods and posterior predictive samples.

Draws are fed to the model in a batch plate left of the model's plates (the
way Pyro's ``Predictive(parallel=True)`` does), in chunks to bound memory;
a model that cannot run that way is run one draw at a time.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import pyro.poutine as poutine
import torch

from .density import batch_plate, plate_shape, without_validation
from .protocol import ModelInfo

__all__ = ["run_over_draws", "log_likelihood", "deterministic_values", "posterior_predictive", "unbatch"]


class _ResampleObserved(poutine.messenger.Messenger):
    """Sample observed sites from their distributions instead of scoring the data.

    Unlike ``poutine.uncondition`` it leaves ``pyro.deterministic`` and
    ``pyro.factor`` sites alone (resampling a deterministic ``Delta`` inside a
    batch plate would broadcast its value against itself).
    """

    def _pyro_sample(self, msg: dict) -> None:
        if msg["is_observed"] and not msg["infer"].get("_deterministic") and not msg["infer"].get("is_auxiliary"):
            msg["is_observed"] = False
            msg["value"] = None


def unbatch(value: torch.Tensor, batch: int, shape: Sequence[int]) -> torch.Tensor:
    """Bring a batched site value to ``(batch, *shape)``, or raise when it does not fit."""
    shape = tuple(shape)
    if value.dim() > 0 and value.shape[0] == batch and value.numel() == batch * math.prod(shape):
        return value.reshape((batch,) + shape)
    if value.numel() == math.prod(shape):  # the site does not depend on the draws
        return value.reshape(shape).expand((batch,) + shape)
    raise ValueError(f"value of shape {tuple(value.shape)} does not fit ({batch}, *{shape})")


def _shaped_for_plate(info: ModelInfo, values: Mapping[str, torch.Tensor], batch: int) -> dict[str, torch.Tensor]:
    shaped = {}
    for site in info.latents:
        if site.name not in values:
            continue
        event = site.shape[len(site.batch_shape) :]
        shaped[site.name] = values[site.name].reshape(plate_shape(site.batch_shape, event, batch, info.max_plate_nesting))
    return shaped


def _collect(trace: Any, names: Sequence[str], what: str, batch: int, shapes: Mapping[str, Sequence[int]]) -> dict[str, torch.Tensor]:
    out = {}
    for name in names:
        site = trace.nodes[name]
        value = site["fn"].log_prob(site["value"]) if what == "log_prob" else site["value"]
        out[name] = unbatch(value, batch, shapes[name])
    return out


def run_over_draws(
    model: Callable[..., Any],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    info: ModelInfo,
    draws: Mapping[str, torch.Tensor],
    names: Sequence[str],
    *,
    what: str = "value",
    predictive: bool = False,
    vectorize: bool = True,
    chunk_size: int = 1024,
) -> dict[str, torch.Tensor]:
    """Run ``model`` at each draw and collect site values or pointwise log-probabilities.

    Parameters
    ----------
    model, args, kwargs
        The model and the arguments to run it with.
    info
        The model's description (latent sites, plate nesting).
    draws
        Latent values, each shaped ``(n, *site.shape)``.
    names
        Sites to collect.
    what
        ``"value"`` for site values, ``"log_prob"`` for pointwise log-probabilities.
    predictive
        Sample observed sites from their distributions instead of conditioning on the data.
    vectorize
        Try the batch plate first (falls back to one draw at a time).
    chunk_size
        Draws per model call.

    Returns
    -------
    dict
        ``name -> (n, *shape)`` tensors (batch shape only for log-probabilities).
    """
    n = next(iter(draws.values())).shape[0] if draws else 1
    shapes = info.site_batch_shapes if what == "log_prob" else info.site_shapes
    runner = _ResampleObserved()(model) if predictive else model
    results: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    with torch.no_grad(), without_validation():
        for start in range(0, n, chunk_size):
            chunk = {k: v[start : start + chunk_size] for k, v in draws.items()}
            size = min(chunk_size, n - start)
            part = None
            if vectorize:
                try:
                    with batch_plate(size, info.max_plate_nesting):
                        trace = poutine.trace(poutine.condition(runner, _shaped_for_plate(info, chunk, size))).get_trace(*args, **kwargs)
                    part = _collect(trace, names, what, size, shapes)
                except Exception:
                    vectorize = False
            if part is None:
                rows = []
                for i in range(size):
                    values = {k: v[i] for k, v in chunk.items()}
                    trace = poutine.trace(poutine.condition(runner, values)).get_trace(*args, **kwargs)
                    rows.append(_collect(trace, names, what, 1, shapes))
                part = {name: torch.cat([row[name] for row in rows]) for name in names}
            for name in names:
                results[name].append(part[name])
    return {name: torch.cat(parts) for name, parts in results.items()}


def log_likelihood(model: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any], info: ModelInfo, draws: Mapping[str, torch.Tensor], *, vectorize: bool = True) -> dict[str, torch.Tensor]:
    """Pointwise log-likelihood of every observed site at every draw: ``name -> (n, *batch_shape)``."""
    return run_over_draws(model, args, kwargs, info, draws, info.observed, what="log_prob", vectorize=vectorize)


def deterministic_values(model: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any], info: ModelInfo, draws: Mapping[str, torch.Tensor], *, vectorize: bool = True) -> dict[str, torch.Tensor]:
    """Values of the ``pyro.deterministic`` sites at every draw."""
    if not info.deterministic:
        return {}
    return run_over_draws(model, args, kwargs, info, draws, info.deterministic, vectorize=vectorize)


def posterior_predictive(model: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any], info: ModelInfo, draws: Mapping[str, torch.Tensor], names: Sequence[str], *, vectorize: bool = True) -> dict[str, torch.Tensor]:
    """Samples of the sites ``names`` with latents fixed at each draw and observations resampled."""
    return run_over_draws(model, args, kwargs, info, draws, names, predictive=True, vectorize=vectorize)
