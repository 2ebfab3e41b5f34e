"""Pyro's own NUTS behind ``fit_mcmc(kernel="pyro")``: a cross-check of our sampler.

Chains run one after another in this process (Pyro would otherwise spawn a
process per chain), each seeded from the run's seed.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import pyro
import torch
from pyro.infer import MCMC, NUTS

from .protocol import ModelInfo

__all__ = ["run_pyro_nuts"]


def run_pyro_nuts(
    model: Callable[..., Any],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    info: ModelInfo,
    *,
    num_samples: int,
    num_warmup: int,
    num_chains: int,
    target_accept: float,
    max_tree_depth: int,
    dense_mass: bool,
    adapt_pooled: bool,
    seed: int,
    progress_bar: bool,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Run Pyro's NUTS chain by chain; returns draws ``(chain, draw, ...)`` and the stats Pyro exposes."""
    latent_names = [site.name for site in info.latents]
    per_chain: dict[str, list[torch.Tensor]] = {name: [] for name in latent_names}
    diverging = []
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    for chain in range(num_chains):
        with torch.random.fork_rng(devices=devices), pyro.get_param_store().scope():
            pyro.set_rng_seed(seed + chain)
            kernel = NUTS(model, target_accept_prob=target_accept, max_tree_depth=max_tree_depth, full_mass=dense_mass)
            mcmc = MCMC(kernel, num_samples=num_samples, warmup_steps=num_warmup, num_chains=1, disable_progbar=not progress_bar)
            mcmc.run(*args, **kwargs)
        samples = mcmc.get_samples()
        for name in latent_names:
            per_chain[name].append(samples[name])
        flags = torch.zeros(num_samples, dtype=torch.bool)
        indices = mcmc.diagnostics().get("divergences", {}).get("chain 0", [])
        flags[list(indices)] = True
        diverging.append(flags)
    draws = {name: torch.stack(values) for name, values in per_chain.items()}
    return draws, {"diverging": torch.stack(diverging)}
