"""NUTS for network models through the core sampler, on a pure-tensor log density.

Tracing a Pyro program at every leapfrog step costs milliseconds, which a
network posterior (hundreds of leapfrog steps per draw) cannot afford. The
network models know their prior and likelihood as tensor functions
(``log_prior``, ``forward``), so :func:`network_log_density` writes the
unconstrained log density directly in plain tensor arithmetic
(:mod:`probmodels.bnn.logprob`; no distribution objects, whose argument
checks stop the tracer, so the core compiles each leapfrog step into one
graph), in the core's coordinates (the order and
bijections of :class:`~probmodels.core.protocol.ModelInfo`, log-Jacobians
included; a test checks it against the core's Pyro density), and
:func:`fit_network_nuts` samples it with
:func:`probmodels.core.mcmc.sample_log_density` (the batched-chain NUTS)
and returns an ordinary :class:`~probmodels.core.posterior.Posterior` with
the model attached.
"""

from __future__ import annotations

import time
import warnings
from typing import Any, Callable, Mapping

import torch

from .._validation import check_positive_int
from ..core import Posterior
from ..core.density import LogDensity
from ..core.mcmc import sample_log_density
from ..core.protocol import ModelInfo, inspect_model
from ..exceptions import ConvergenceWarning, ModelSpecError
from .logprob import GRAPH_ACTIVATIONS, observation_log_prob
from .model import MLPModel

__all__ = ["network_log_density", "fit_network_nuts"]


def network_log_density(
    model: Any, info: ModelInfo, x: torch.Tensor, y: torch.Tensor, compute_dtype: torch.dtype | None = None,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The unnormalised log posterior ``fn(u: (batch, dim)) -> (batch,)`` in unconstrained coordinates.

    Parameters
    ----------
    model
        A network model with ``log_prior``, ``forward``, ``noise_scale`` and ``task``.
    info
        The model's description from :func:`~probmodels.core.protocol.inspect_model` on ``(x, y)``.
    x, y
        Inputs and observed targets.
    compute_dtype
        Evaluate the network in this dtype (e.g. ``torch.float32``, about
        twice as fast on CPU) and return the result in the dtype of ``u``;
        None: the dtype of ``u``. The sampler stays exact for the density as
        computed, since its accept step uses the same values.
    """
    sizes = [site.size for site in info.latents]
    # an MLPModel's activation in the form that compiles fastest (BayesianModule runs its own module)
    activation = GRAPH_ACTIVATIONS.get(model.activation) if isinstance(model, MLPModel) else None
    if compute_dtype is not None:
        x, y = x.to(compute_dtype), y.to(compute_dtype)

    def log_density(u: torch.Tensor) -> torch.Tensor:
        if compute_dtype is not None and u.dtype != compute_dtype:
            return log_density(u.to(compute_dtype)).to(u.dtype)
        batch = u.shape[0]
        values, log_jacobian = {}, 0.0
        for site, part in zip(info.latents, u.split(sizes, dim=-1)):
            free = part.reshape((batch,) + tuple(site.unconstrained_shape))
            value = site.transform(free)
            jac = site.transform.log_abs_det_jacobian(free, value)
            log_jacobian = log_jacobian + jac.reshape(batch, -1).sum(-1)
            values[site.name] = value
        shaped = {k: v.unsqueeze(1) for k, v in values.items()}
        outputs = model.forward(shaped, x, activation) if activation is not None else model.forward(shaped, x)
        log_lik = observation_log_prob(model.task, outputs, model.noise_scale(shaped), y).sum(-1)
        return model.log_prior(values) + log_lik + log_jacobian

    return log_density


def fit_network_nuts(
    model: Any,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    num_samples: int = 500,
    num_warmup: int = 500,
    num_chains: int = 4,
    init_radius: float = 2.0,
    init_values: Mapping[str, torch.Tensor] | None = None,
    seed: int = 0,
    progress_bar: bool = False,
    compute_dtype: torch.dtype | None = None,
    **nuts_options: Any,
) -> Posterior:
    """Sample a network's posterior with the core's batched-chain NUTS.

    Parameters
    ----------
    model
        :class:`~probmodels.bnn.model.MLPModel` or :class:`~probmodels.bnn.convert.BayesianModule`.
    x, y
        Inputs and targets.
    num_samples, num_warmup, num_chains
        Draws kept per chain, warmup iterations, chains.
    init_radius
        Without ``init_values``, chains start uniformly in
        ``(-init_radius, init_radius)`` in unconstrained space (Stan's rule).
    init_values
        Constrained starting values ``site -> (num_chains, *shape)``, one
        start per chain (e.g. draws from a variational fit, as PyMC's ``init="advi"``).
    seed
        Seeds the starting points and the sampler.
    progress_bar
        Show the sampler's progress.
    compute_dtype
        Run the sampler and the network in this dtype (e.g. ``torch.float32``,
        about twice as fast on CPU; see :func:`network_log_density`); the
        draws are returned in the dtype of ``x``.
    **nuts_options
        ``target_accept``, ``max_tree_depth``, ``dense_mass``, ``adapt_pooled``,
        ``compile`` of :func:`~probmodels.core.mcmc.sample_log_density`
        (``compile="inductor"`` pays off on short runs of large networks).

    Returns
    -------
    Posterior
        Draws ``(num_chains, num_samples, ...)`` with sample stats; method ``"nuts"``.

    Warns
    -----
    ConvergenceWarning
        As :func:`probmodels.fit_mcmc` does (divergences, R-hat, ESS, tree depth).
    """
    num_chains = check_positive_int(num_chains, "num_chains")
    info = inspect_model(model, (x, y), {})
    generator = torch.Generator().manual_seed(seed)
    density = LogDensity(model, (x, y), {}, info, vectorize="plate")
    if init_values is None:
        start = ((torch.rand(num_chains, info.dim, generator=generator, dtype=x.dtype) * 2 - 1) * init_radius).to(x.device)
    else:
        start = density.unconstrain({k: v.to(x.device, x.dtype) for k, v in init_values.items()})
        if start.shape[0] != num_chains:
            raise ModelSpecError(f"init_values give {start.shape[0]} starting points; pass one per chain (num_chains={num_chains}).")
    started = time.perf_counter()
    # the whole sampler runs in compute_dtype: the core compiles a leaf update only when it reproduces the eager one
    # to the precision of its dtype, which a float32 network inside a float64 state would not
    positions, stats = sample_log_density(
        network_log_density(model, info, x, y, compute_dtype), start.to(compute_dtype or start.dtype), num_samples=num_samples, num_warmup=num_warmup, seed=seed,
        progress_bar=progress_bar, **nuts_options,
    )
    elapsed = time.perf_counter() - started
    flat = density.constrain(positions.to(x.dtype).reshape(-1, info.dim))
    draws = {k: v.reshape((num_chains, num_samples) + tuple(v.shape[1:])) for k, v in flat.items()}
    posterior = Posterior(
        draws, method="nuts", sample_stats=stats, dims=dict(info.site_dims), observed_data=dict(info.observed_values),
        attrs=dict(num_chains=num_chains, num_samples=num_samples, num_warmup=num_warmup, seed=seed, elapsed_seconds=elapsed,
                   vectorize="plate", compute_dtype=str(compute_dtype or x.dtype).replace("torch.", ""), **nuts_options),
        model=model, model_args=(x, y), info=info,
    )
    from ..diagnostics.convergence import check_convergence

    for message in check_convergence(posterior).messages:
        warnings.warn(message, ConvergenceWarning, stacklevel=2)
    return posterior
