"""MCMC chains split across the processes of a ``torchrun`` launch (``fit_mcmc(..., distributed=True)``).

Rank ``r`` of ``W`` samples a contiguous block of the ``num_chains`` chains
(the first ``num_chains % W`` ranks take one more) with the batched NUTS
engine on its own device, seeded by :func:`~probmodels.distributed.context.rank_seed`
``(seed, r)``. So rank ``r``'s chains are exactly those of the single-process
call ``fit_mcmc(..., num_chains=<its share>, seed=rank_seed(seed, r))``
(bitwise on the CPU unless warmup is pooled), and the run is reproducible for
a given ``seed`` and number of ranks.

With ``adapt_pooled=True`` warmup pools across ranks: the acceptance
statistics of dual averaging and the metric's window moments are summed over
every chain of every rank (``all_reduce``), and the step-size heuristic takes
the median over all chains (``all_gather``); every chain then shares one step
size and one metric, as in a single process.

At the end the draws, deterministic sites and sample statistics of every
rank are gathered to rank 0 (``gather``, padded to the largest share), in
rank order, so chain ``c`` of the result is chain ``c`` of the split above.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch
import torch.distributed as dist

from .._validation import check_non_negative_int
from ..core.adaptation import ChainPool
from ..core.posterior import Posterior
from ..exceptions import ModelSpecError
from .context import RankContext, place_data, rank_context, rank_seed

__all__ = ["ChainShard", "RankPool", "chain_shares"]


def chain_shares(num_chains: int, world_size: int) -> list[int]:
    """Chains per rank: ``num_chains`` split as evenly as possible, the larger shares first."""
    base, extra = divmod(num_chains, world_size)
    return [base + (rank < extra) for rank in range(world_size)]


class RankPool(ChainPool):
    """Pooled adaptation statistics over the chains of every rank.

    Parameters
    ----------
    shares
        Chains per rank (:func:`chain_shares`).
    """

    def __init__(self, shares: Sequence[int]) -> None:
        self.shares = list(shares)

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        total = values.sum(0)
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        return self.sum(values) / sum(self.shares)

    def median(self, values: torch.Tensor) -> torch.Tensor:
        return torch.cat(_all_gather_padded(values, self.shares)).median()

    def num_chains(self, local_chains: int) -> int:
        return sum(self.shares)


def _all_gather_padded(values: torch.Tensor, shares: Sequence[int]) -> list[torch.Tensor]:
    """Every rank's ``values`` ``(share, ...)``, padded to the largest share for the collective and trimmed after."""
    padded = _pad(values, max(shares))
    pieces = [torch.empty_like(padded) for _ in shares]
    dist.all_gather(pieces, padded)
    return [piece[:share] for piece, share in zip(pieces, shares)]


def _pad(values: torch.Tensor, size: int) -> torch.Tensor:
    if values.shape[0] == size:
        return values.contiguous()
    filler = values.new_zeros((size - values.shape[0],) + tuple(values.shape[1:]))
    return torch.cat([values, filler])


@dataclass(frozen=True)
class ChainShard:
    """This rank's share of a distributed MCMC run.

    Attributes
    ----------
    context : RankContext
        Rank, world size and device.
    shares : list of int
        Chains per rank.
    user_seed : int
        The run's seed; rank ``r`` samples from ``rank_seed(user_seed, r)``.
    pool : RankPool
        Pooled adaptation over all ranks.
    """

    context: RankContext
    shares: list[int]
    user_seed: int
    pool: RankPool = field(repr=False)

    @classmethod
    def from_environment(
        cls, num_chains: int, seed: int, *, kernel: str, checkpoint: Any, num_superchains: int | None
    ) -> "ChainShard":
        """Join the torchrun process group and take this rank's share of ``num_chains``.

        Raises
        ------
        ModelSpecError
            Not launched by torchrun, fewer chains than ranks, or an option
            that the distributed run does not support.
        """
        if kernel != "nuts":
            raise ModelSpecError(f"distributed=True needs kernel='nuts' (the batched sampler), got kernel={kernel!r}.")
        if checkpoint is not None:
            raise ModelSpecError(
                "distributed=True does not checkpoint; drop checkpoint=, or run without distributed=True to checkpoint."
            )
        if num_superchains is not None:
            raise ModelSpecError("num_superchains cannot be combined with distributed=True; drop one of them.")
        seed = check_non_negative_int(seed, "seed")
        context = rank_context()
        if num_chains < context.world_size:
            raise ModelSpecError(
                f"num_chains={num_chains} is smaller than the {context.world_size} ranks of this torchrun launch; "
                f"every rank needs a chain: raise num_chains to at least {context.world_size} or launch fewer processes."
            )
        shares = chain_shares(num_chains, context.world_size)
        return cls(context, shares, seed, RankPool(shares))

    @property
    def rank(self) -> int:
        """This process's rank."""
        return self.context.rank

    @property
    def num_chains(self) -> int:
        """Chains sampled by this rank."""
        return self.shares[self.rank]

    @property
    def first_chain(self) -> int:
        """Index of this rank's first chain in the gathered result."""
        return sum(self.shares[: self.rank])

    @property
    def seed(self) -> int:
        """This rank's seed."""
        return rank_seed(self.user_seed, self.rank)

    def place(
        self, model_args: Sequence[Any], model_kwargs: Mapping[str, Any] | None, device: str | torch.device | None
    ) -> tuple[tuple[Any, ...], dict[str, Any], torch.device]:
        """The model's data on this rank's device."""
        return place_data(model_args, model_kwargs, device, self.context)

    def gather(self, posterior: Posterior) -> Posterior:
        """All ranks' chains in one Posterior on rank 0; every other rank gets its own
        chains back, marked ``attrs["distributed_shard"] = True``."""
        rank_seeds = [rank_seed(self.user_seed, r) for r in range(self.context.world_size)]
        common = dict(world_size=self.context.world_size, rank_seeds=rank_seeds, backend=self.context.backend)
        draws = _gather_all(posterior.draws, self.shares, self.rank)
        stats = _gather_all(posterior.sample_stats, self.shares, self.rank)
        if self.rank != 0:
            posterior.attrs.update(common, distributed_shard=True, rank=self.rank, first_chain=self.first_chain,
                                   rank_seed=self.seed)
            return posterior
        attrs = dict(posterior.attrs, **common, num_chains=sum(self.shares), seed=self.user_seed)
        attrs.pop("method", None)
        return Posterior(
            draws, method=posterior.method, sample_stats=stats, dims=posterior.dims, observed_data=posterior.observed_data,
            attrs=attrs, model=posterior.model, model_args=posterior.model_args, model_kwargs=posterior.model_kwargs,
            info=posterior.info,
        )


def _gather_all(values: Mapping[str, torch.Tensor], shares: Sequence[int], rank: int) -> dict[str, torch.Tensor]:
    """Each tensor ``(share, draw, ...)`` of every rank, concatenated along chains on rank 0 (empty elsewhere).

    Booleans travel as uint8 (not every backend reduces bools); the names are
    sorted so that every rank sends the same tensor in the same collective.
    """
    gathered = {}
    for name in sorted(values):
        value = values[name]
        wire = value.to(torch.uint8) if value.dtype == torch.bool else value
        padded = _pad(wire, max(shares))
        pieces = [torch.empty_like(padded) for _ in shares] if rank == 0 else None
        dist.gather(padded, pieces, dst=0)
        if rank == 0:
            joined = torch.cat([piece[:share] for piece, share in zip(pieces, shares)])
            gathered[name] = joined.to(torch.bool) if value.dtype == torch.bool else joined
    return {name: gathered[name] for name in values if name in gathered}
