"""Gibbs sampling of a discrete Bayesian network given evidence, vectorised over many chains.

Every sweep resamples each unobserved variable, in topological order, from its
full conditional given its Markov blanket: its own CPT row times the CPT
entries of its children, ``P(x_v | pa_v) * prod_c P(x_c | pa_c)``. The chains
(and the network's batch dims) are tensor dims, so one sweep is one pass over
the variables for all chains at once, on the tables' device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch

from .._validation import check_non_negative_int, check_positive_int
from . import ops

__all__ = ["GibbsSamples", "gibbs_sample"]


class GibbsSamples(NamedTuple):
    """Output of :func:`gibbs_sample`."""

    codes: torch.Tensor
    """``(num_draws, num_chains, ..., V)`` long state codes of every variable, after the burn-in."""
    log_evidence: torch.Tensor
    """``(...)``: likelihood-weighting estimate of ``log P(evidence)`` from the chains' initial draws
    (``-inf`` where no initial draw fits the evidence, which is always so for impossible evidence;
    the codes are meaningless there)."""


def gibbs_sample(
    net: ops.NetworkTensors,
    num_chains: int,
    num_draws: int,
    evidence_vars: Sequence[int] = (),
    evidence: torch.Tensor | None = None,
    *,
    burn_in: int = 100,
    generator: torch.Generator | None = None,
) -> GibbsSamples:
    """Draws from ``P(variables | evidence)`` by ``num_chains`` parallel Gibbs chains.

    The chains start from likelihood-weighted ancestral draws (:func:`~probmodels.bn.ops.sample`),
    resampled in proportion to their weights so that every start has positive probability; each
    chain then runs ``burn_in`` discarded sweeps and keeps the state after each of the next
    ``num_draws`` sweeps. Draws within a chain are correlated; with CPTs holding exact zeros the
    chain may not reach every state of positive probability (it is then not ergodic).

    Parameters
    ----------
    net : NetworkTensors
        The network.
    num_chains : int
        Number of independent chains per batch element.
    num_draws : int
        Sweeps kept per chain after the burn-in.
    evidence_vars : sequence of int
        The observed variables, ``n_evidence`` distinct indices.
    evidence : torch.Tensor, optional
        ``(..., n_evidence)`` integer state codes (``-1``: not observed in that row).
    burn_in : int, default 100
        Sweeps discarded at the start of each chain (0 allowed).
    generator : torch.Generator, optional
        Source of randomness (on the tables' device); the global RNG if None.

    Returns
    -------
    GibbsSamples
        ``codes`` ``(num_draws, num_chains, ..., V)`` and ``log_evidence`` ``(...)``.
    """
    num_chains = check_positive_int(num_chains, "num_chains")
    num_draws = check_positive_int(num_draws, "num_draws")
    burn_in = check_non_negative_int(burn_in, "burn_in")
    start = ops.sample(net, num_chains, evidence_vars, evidence, generator)
    log_evidence = torch.logsumexp(start.log_weights, 0) - math.log(num_chains)
    codes = _resample(start.codes, start.log_weights, generator)
    batch = codes.shape[:-1]
    observed: dict[int, torch.Tensor] = {}
    if evidence is not None:
        evidence = torch.as_tensor(evidence, device=codes.device).long()
        observed = {int(v): evidence[..., j].expand(batch) for j, v in enumerate(evidence_vars)}
    log_tables = [
        table.log().reshape(table.shape[: table.dim() - len(p) - 1] + (-1,)) for table, p in zip(net.tables, net.parents)
    ]
    free = [v for v in range(len(net.cards)) if v not in observed or bool((observed[v] < 0).any())]
    blankets = {v: _blanket(net, v, codes.device) for v in free}
    draws = []
    for sweep in range(burn_in + num_draws):
        for v in free:
            logits = sum(
                log_tables[f.table].expand(batch + log_tables[f.table].shape[-1:]).gather(-1, _family_index(codes, f))
                for f in blankets[v]
            )
            peak = logits.amax(-1, keepdim=True)
            weights = (logits - torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))).exp()
            u = torch.rand(batch + (1,), generator=generator, dtype=weights.dtype, device=weights.device)
            drawn = (weights.cumsum(-1) < u * weights.sum(-1, keepdim=True)).sum(-1).clamp(max=net.cards[v] - 1)
            codes[..., v] = torch.where(observed[v] >= 0, observed[v], drawn) if v in observed else drawn
        if sweep >= burn_in:
            draws.append(codes.clone())
    return GibbsSamples(torch.stack(draws), log_evidence)


def _resample(codes: torch.Tensor, log_weights: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Each chain's start drawn among ``codes`` ``(C, ..., V)`` in proportion to the weights (uniformly if all are 0)."""
    chains = codes.shape[0]
    rows = log_weights.movedim(0, -1).reshape(-1, chains)
    weights = (rows - rows.amax(-1, keepdim=True).nan_to_num(neginf=0.0)).exp()
    weights = torch.where(weights.sum(-1, keepdim=True) > 0, weights, torch.ones_like(weights))
    picked = torch.multinomial(weights, chains, replacement=True, generator=generator)
    picked = picked.reshape(log_weights.shape[1:] + (chains,)).movedim(-1, 0)
    return codes.gather(0, picked.unsqueeze(-1).expand(codes.shape)).clone()


class _Family(NamedTuple):
    """A CPT that holds ``v`` (its own or a child's), indexed for every state of ``v``."""

    table: int
    """The variable whose (flattened) CPT this is."""
    others: tuple[tuple[int, int], ...]
    """``(member, stride)`` of the family's other members in the flattened CPT."""
    offsets: torch.Tensor
    """``(card_v,)`` flat offsets of the states of ``v``."""


def _blanket(net: ops.NetworkTensors, v: int, device: torch.device) -> list[_Family]:
    """The families holding ``v``: its own and its children's (the Markov blanket of ``v``)."""
    families = []
    for f in range(len(net.cards)):
        members = net.parents[f] + (f,)
        if v in members:
            strides = [math.prod(net.cards[m] for m in members[i + 1 :]) for i in range(len(members))]
            others = tuple((m, s) for m, s in zip(members, strides) if m != v)
            offsets = strides[members.index(v)] * torch.arange(net.cards[v], device=device)
            families.append(_Family(f, others, offsets))
    return families


def _family_index(codes: torch.Tensor, family: _Family) -> torch.Tensor:
    """Flat CPT indices ``(..., card_v)`` of a family for every state of ``v``, the other members as in ``codes``."""
    base = torch.zeros(codes.shape[:-1], dtype=torch.long, device=codes.device)
    for m, s in family.others:
        base = base + codes[..., m] * s
    return base.unsqueeze(-1) + family.offsets
