"""Deep ensembles: independent MAP fits from different random starts, as one Posterior.

Each member is :func:`probmodels.fit_svi` with the ``"delta"`` guide (a MAP
estimate under the model's priors) from its own seed; the members become the
chains of one :class:`~probmodels.core.posterior.Posterior` with one draw
each, so predictions, log-likelihoods and ArviZ conversion treat an ensemble
like any other fit (an equal-weight mixture over members).

Unregularised enough to interpolate, MAP fits overfit (a collapsing noise
scale gives test log-likelihoods in the hundreds of nats per point), so
:func:`early_stopping_steps` picks the number of optimisation steps on a
held-out split, as deep-ensemble practice does.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from .._validation import check_positive_int
from ..core import Posterior, fit_svi
from ..exceptions import ModelSpecError
from .predict import predictive

__all__ = ["fit_ensemble", "early_stopping_steps"]


def fit_ensemble(model: Callable[..., Any], *model_args: Any, n_members: int = 5, seed: int = 0, **svi_options: Any) -> Posterior:
    """Fit ``n_members`` MAP estimates from different random initialisations.

    Parameters
    ----------
    model, *model_args
        A Pyro program and its data, as for :func:`probmodels.fit_svi`.
    n_members
        Ensemble size (1 gives plain MAP).
    seed
        Member ``k`` runs with seed ``seed + k``.
    **svi_options
        Further :func:`probmodels.fit_svi` arguments (``num_steps``, ``lr``,
        ``batch_size``, ``tol``, ...); ``guide`` is always ``"delta"``.

    Returns
    -------
    Posterior
        Draws shaped ``(n_members, 1, ...)``, method ``"ensemble"`` (``"map"`` for one member).
    """
    n_members = check_positive_int(n_members, "n_members")
    members = [fit_svi(model, *model_args, guide="delta", seed=seed + k, **svi_options) for k in range(n_members)]
    first = members[0]
    draws = {name: torch.cat([m.draws[name] for m in members]) for name in first.draws}
    method = "map" if n_members == 1 else "ensemble"
    attrs = dict(
        num_chains=n_members,
        num_samples=1,
        seed=seed,
        converged=all(bool(m.attrs["converged"]) for m in members),
        num_steps=np.asarray([m.attrs["num_steps"] for m in members]),
        final_loss=np.asarray([float(m.attrs["loss"][-1]) for m in members]),
        elapsed_seconds=sum(float(m.attrs["elapsed_seconds"]) for m in members),
    )
    return Posterior(
        draws, method=method, dims=first.dims, observed_data=first.observed_data, attrs=attrs,
        model=first.model, model_args=first.model_args, model_kwargs=first.model_kwargs, info=first.info,
    )


def early_stopping_steps(
    model: Any,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    num_steps: int,
    validation_fraction: float = 0.1,
    n_candidates: int = 5,
    seed: int = 0,
    **svi_options: Any,
) -> tuple[int, dict[int, float]]:
    """Choose a MAP fit's number of steps by the log predictive density on a held-out split.

    Candidates are ``num_steps / 2**k`` for ``k = n_candidates - 1, ..., 0``;
    each is a MAP fit (``tol=0``, seed ``seed``) on the other rows.

    Parameters
    ----------
    model
        A network model (``forward``, ``noise_scale``, ``task``, ``widths``) that is also a Pyro program ``model(x, obs)``.
    x, y
        Inputs and targets (standardised as for the fit).
    num_steps
        The largest candidate.
    validation_fraction
        Share of the rows held out (at least one row on each side).
    n_candidates
        Number of candidate step counts.
    seed
        Seeds the split and the fits.
    **svi_options
        Further :func:`probmodels.fit_svi` arguments.

    Returns
    -------
    tuple
        The best step count and ``steps -> mean held-out log density``.
    """
    n = x.shape[0]
    n_val = int(round(validation_fraction * n))
    if not 0 < n_val < n:
        raise ModelSpecError(f"validation_fraction={validation_fraction} leaves {n_val} of {n} rows for validation; it needs at least one row on each side.")
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=generator).to(x.device)
    val, train = order[:n_val], order[n_val:]
    options = {**svi_options, "tol": 0.0}
    scores: dict[int, float] = {}
    for k in reversed(range(check_positive_int(n_candidates, "n_candidates"))):
        steps = max(1, num_steps // 2**k)
        fit = fit_svi(model, x[train], y[train], guide="delta", num_steps=steps, seed=seed, **options)
        params = {site.name: fit.flat(site.name) for site in fit.info.latents}
        scores[steps] = float(predictive(model, params, x[val], y[val]).log_density.mean())
    return max(scores, key=scores.get), scores
