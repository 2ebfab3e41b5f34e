"""A cross-check for evidence estimates built from posterior draws: importance sampling from the prior.

Bridge sampling (and any estimator whose proposal is fitted to the posterior
draws) cannot see posterior mass in a region that no chain visited: a mode
the chains missed simply drops out of the estimate, which then looks precise.
The prior knows nothing of the draws, so ``p(y) = E_prior[p(y | theta)]``,
estimated from prior draws, includes every mode the prior reaches. It is
often too noisy to use as the estimate (its Pareto k-hat says when), but
where it is reliable and exceeds a draw-based estimate by more than their
joint error, the chains missed mass.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pyro.poutine as poutine
import torch

from ..core.density import batch_plate, without_validation
from ..core.posterior import Posterior
from ..core.protocol import is_likelihood_term
from ..core.setup import prepare_fit
from .arviz import psislw

__all__ = ["PriorEstimate", "prior_importance"]


class PriorEstimate(NamedTuple):
    """Log evidence by importance sampling from the prior.

    Attributes
    ----------
    log_evidence : float
        ``log mean_s p(y | theta_s)`` over prior draws ``theta_s``.
    standard_error : float
        Delta-method standard error of ``log_evidence``.
    pareto_k : float
        PSIS k-hat of the likelihood weights; above 0.7 the estimate is unreliable.
    num_draws : int
        Prior draws used.
    """

    log_evidence: float
    standard_error: float
    pareto_k: float
    num_draws: int


def prior_importance(fit: Posterior, num_draws: int = 4000, seed: int = 0) -> PriorEstimate | None:
    """Importance-sampling estimate of the log evidence with the prior as the proposal.

    Parameters
    ----------
    fit
        A posterior with its model and data attached.
    num_draws
        Prior draws.
    seed
        Seed of the prior draws (torch's global stream is left as it was).

    Returns
    -------
    PriorEstimate or None
        None when the model cannot run with a batch of draws in a plate left
        of its own plates (then drawing thousands of prior samples one trace at
        a time would cost more than the check is worth).
    """
    setup = prepare_fit(fit.model, fit.model_args, fit.model_kwargs, seed=seed, observed=fit.info.observed)
    info = setup.info
    devices = [torch.cuda.current_device()] if setup.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad(), without_validation():
        torch.manual_seed(seed)
        try:
            with batch_plate(num_draws, info.max_plate_nesting):
                trace = poutine.trace(fit.model).get_trace(*setup.args, **setup.kwargs)
            log_lik = _likelihood_terms(trace, num_draws, info.max_plate_nesting).double()
        except Exception:
            return None
    log_lik = torch.where(torch.isnan(log_lik), torch.full_like(log_lik, -math.inf), log_lik)
    estimate = float(torch.logsumexp(log_lik, 0)) - math.log(num_draws)
    weights = torch.exp(log_lik - log_lik.max())
    se = float(weights.std() / (math.sqrt(num_draws) * weights.mean())) if bool(weights.sum() > 0) else math.inf
    _, k_hat = psislw(np.nan_to_num(log_lik.cpu().numpy(), neginf=-1e300))
    return PriorEstimate(estimate, se, k_hat, num_draws)


def _likelihood_terms(trace: poutine.Trace, num_draws: int, max_plate_nesting: int) -> torch.Tensor:
    """``log p(y | theta_s)`` per prior draw: every observed site and every ``pyro.factor`` of the batched trace, summed.

    Deterministic sites are left out; the batch of draws sits at dim ``-(max_plate_nesting + 1)``.
    """
    trace.compute_log_prob()
    terms = []
    for node in trace.nodes.values():
        if node["type"] != "sample" or not is_likelihood_term(node):
            continue
        terms.append(node["log_prob"].movedim(-(max_plate_nesting + 1), 0).reshape(num_draws, -1).sum(-1))
    return torch.stack(terms).sum(0)

