"""Deep ensembles: independent MAP fits from different random starts, as one Posterior.

Each member is :func:`probmodels.fit_svi` with the ``"delta"`` guide (a MAP
estimate under the model's priors) from its own seed; the members become the
chains of one :class:`~probmodels.core.posterior.Posterior` with one draw
each, so predictions, log-likelihoods and ArviZ conversion treat an ensemble
like any other fit (an equal-weight mixture over members).

Unregularised enough to interpolate, MAP fits overfit (a collapsing noise
scale gives test log-likelihoods in the hundreds of nats per point), so with
``validation_fraction`` each member holds out its own random share of the
rows, scores the held-out log predictive density every ``eval_every``
optimisation steps, keeps the parameters of its best score, and stops once
``patience`` steps pass without a better one (deep-ensemble practice).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from pyro.infer.autoguide import AutoDelta

from .._validation import check_positive_int
from ..core import Posterior, fit_svi
from ..core.protocol import inspect_model
from ..exceptions import InferenceError, ModelSpecError
from .predict import predictive

__all__ = ["fit_ensemble", "validation_split"]


def validation_split(n: int, validation_fraction: float, seed: int, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ``(train, validation)`` row indices holding out ``round(validation_fraction * n)`` rows.

    Raises
    ------
    ModelSpecError
        When either side would be empty.
    """
    n_val = int(round(validation_fraction * n))
    if not 0 < n_val < n:
        raise ModelSpecError(
            f"validation_fraction={validation_fraction} leaves {n_val} of {n} rows for validation; it needs at least one row on each side."
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).to(device)
    return order[n_val:], order[:n_val]


def fit_ensemble(
    model: Any,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    n_members: int = 5,
    seed: int = 0,
    num_steps: int = 5000,
    validation_fraction: float | None = None,
    eval_every: int = 5,
    patience: int = 200,
    **svi_options: Any,
) -> Posterior:
    """Fit ``n_members`` MAP estimates from different random initialisations.

    Parameters
    ----------
    model
        A network model (``forward``, ``noise_scale``, ``task``) that is also a Pyro program ``model(x, obs)``.
    x, y
        Inputs and targets.
    n_members
        Ensemble size (1 gives plain MAP).
    seed
        Member ``k`` runs (and draws its validation rows) with seed ``seed + k``.
    num_steps
        Most optimisation steps per member.
    validation_fraction
        None: every member fits all rows for ``num_steps`` (or until
        :func:`probmodels.fit_svi`'s ``tol`` rule stops it). A fraction:
        early stopping on that share of held-out rows, see the module notes.
    eval_every
        Steps between two held-out evaluations.
    patience
        Steps without a better held-out score before a member stops.
    **svi_options
        Further :func:`probmodels.fit_svi` arguments (``lr``, ``batch_size``,
        ``tol``, ...); the guide is always a MAP (``AutoDelta``) guide.

    Returns
    -------
    Posterior
        Draws shaped ``(n_members, 1, ...)``, method ``"ensemble"`` (``"map"``
        for one member), with the whole ``(x, y)`` as data. ``attrs``:
        ``num_steps`` (per member: the steps of the kept state) and, with
        early stopping, ``validation_scores`` (per member: ``steps -> mean
        held-out log density``).
    """
    n_members = check_positive_int(n_members, "n_members")
    num_steps = check_positive_int(num_steps, "num_steps")
    eval_every, patience = check_positive_int(eval_every, "eval_every"), check_positive_int(patience, "patience")
    members, steps, scores, seconds = [], [], [], 0.0
    for k in range(n_members):
        if validation_fraction is None:
            fit = fit_svi(model, x, y, guide="delta", seed=seed + k, num_steps=num_steps, **svi_options)
            members.append({site.name: fit.draws[site.name] for site in fit.info.latents})
            steps.append(int(fit.attrs["num_steps"]))
        else:
            train, val = validation_split(x.shape[0], validation_fraction, seed + k, x.device)
            fit, best, step, trace = _fit_early_stopped(model, x, y, train, val, seed=seed + k, num_steps=num_steps,
                                                        eval_every=eval_every, patience=patience, **svi_options)
            members.append({name: value[None, None] for name, value in best.items()})
            steps.append(step)
            scores.append(trace)
        seconds += float(fit.attrs["elapsed_seconds"])
    draws = {name: torch.cat([m[name] for m in members]) for name in members[0]}
    attrs = dict(num_chains=n_members, num_samples=1, seed=seed, num_steps=np.asarray(steps), elapsed_seconds=seconds,
                 early_stopping=validation_fraction is not None)
    if scores:
        attrs["validation_scores"] = scores
    info = inspect_model(model, (x, y), {})
    return Posterior(
        draws, method="map" if n_members == 1 else "ensemble", dims=dict(info.site_dims), observed_data=dict(info.observed_values),
        attrs=attrs, model=model, model_args=(x, y), info=info,
    )


def _fit_early_stopped(
    model: Any, x: torch.Tensor, y: torch.Tensor, train: torch.Tensor, val: torch.Tensor, *, seed: int, num_steps: int,
    eval_every: int, patience: int, **svi_options: Any,
) -> tuple[Posterior, dict[str, torch.Tensor], int, dict[int, float]]:
    """One MAP fit on ``train`` rows that keeps its state of best held-out log density on ``val`` rows."""
    x_train, y_train, x_val, y_val = x[train], y[train], x[val], y[val]
    guide = AutoDelta(model)
    best: dict[str, Any] = {"score": -math.inf, "step": 0, "values": None}
    trace: dict[int, float] = {}

    def monitor(step: int, loss: float) -> bool:
        done = step + 1
        if done % eval_every and done != num_steps:
            return False
        values = guide.median(x_train, y_train)
        params = {name: value.unsqueeze(0) for name, value in values.items()}
        score = float(predictive(model, params, x_val, y_val).log_density.mean())
        trace[done] = score
        if score > best["score"]:
            best.update(score=score, step=done, values={name: value.detach().clone() for name, value in values.items()})
        return done - best["step"] >= patience

    options = {**svi_options, "tol": 0.0}
    fit = fit_svi(model, x_train, y_train, guide=guide, num_steps=num_steps, num_samples=1, seed=seed, callback=monitor, **options)
    if best["values"] is None:
        raise InferenceError(f"early stopping found no finite held-out log density in {num_steps} steps; lower lr or check the data.")
    return fit, best["values"], best["step"], trace
