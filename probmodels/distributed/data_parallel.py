"""Data-parallel SVI across the processes of a ``torchrun`` launch (``fit_svi(..., distributed=True)``).

Every rank holds the whole data set and the same guide. Each step, all ranks
draw the same global mini-batch of ``batch_size`` indices (their mini-batch
generators share the user's seed) and each takes its own slice of it
(``tensor_split``: rank ``r`` of ``W`` gets about ``batch_size / W``
indices). Each rank computes the ELBO and its gradients on its slice with the
likelihood scaled by ``W * N / batch_size``; the gradients and the loss are
then averaged over the ranks (``all_reduce``), as DistributedDataParallel
does, before the same optimiser step on every rank. The averaged gradient is
``prior/entropy terms + (N / batch_size) * sum over the global batch``: the
single-process mini-batch gradient, so the fit equals the single-process fit
in expectation. Without ``batch_size`` the global batch is all ``N`` points
and each step's averaged gradient is the full-data one.

The guide's parameters are created on every rank and then copied from rank
0 (``broadcast``), so all ranks start, and stay, equal. The ELBO's Monte
Carlo draws use a different stream on every rank
(:func:`~probmodels.distributed.context.rank_seed`), so ``W`` ranks average
``W`` independent gradient estimates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import pyro
import pyro.poutine as poutine
import torch
import torch.distributed as dist
from pyro.infer import SVI
from pyro.infer.util import zero_grads

from .._validation import check_non_negative_int
from ..exceptions import ModelSpecError
from .context import RankContext, place_data, rank_context, rank_seed

__all__ = ["DataParallel", "AveragedSVI"]


class AveragedSVI(SVI):
    """Pyro's SVI whose step averages the loss and the gradients over the ranks
    before the optimiser step (Pyro's ``SVI.step`` does backward and step together)."""

    def step(self, *args: Any, **kwargs: Any) -> float:
        """One step on this rank's slice; returns the loss averaged over the ranks."""
        with poutine.trace(param_only=True) as capture:
            loss = self.loss_and_grads(self.model, self.guide, *args, **kwargs)
        named = sorted((name, site["value"].unconstrained()) for name, site in capture.trace.nodes.items())
        params = [param for _, param in named]
        loss = average_over_ranks(params, float(loss))
        self.optim(set(params))
        zero_grads(set(params))
        return loss


def average_over_ranks(params: Sequence[torch.Tensor], loss: float) -> float:
    """Replace each parameter's gradient by its mean over the ranks, in one ``all_reduce``;
    returns the mean loss. ``params`` must come in the same order on every rank."""
    if not params:
        raise ModelSpecError("the guide has no parameters to train; data-parallel SVI needs a guide with parameters.")
    like = params[0]
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1).to(like.dtype) for g in grads] + [like.new_tensor([loss])])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= dist.get_world_size()
    offset = 0
    for param in params:
        size = param.numel()
        param.grad = flat[offset : offset + size].reshape(param.shape).to(param.dtype)
        offset += size
    return float(flat[-1])


@dataclass(frozen=True)
class DataParallel:
    """This rank's part of a data-parallel SVI run.

    Attributes
    ----------
    context : RankContext
        Rank, world size and device.
    seed : int
        The run's seed (shared by all ranks for the mini-batch order).
    """

    context: RankContext
    seed: int

    @classmethod
    def from_environment(cls, seed: int, *, checkpoint: Any) -> "DataParallel":
        """Join the torchrun process group.

        Raises
        ------
        ModelSpecError
            Not launched by torchrun, or a checkpoint was asked for.
        """
        if checkpoint is not None:
            raise ModelSpecError("distributed=True does not checkpoint; drop checkpoint=, or run without distributed=True.")
        return cls(rank_context(), check_non_negative_int(seed, "seed"))

    @property
    def rank(self) -> int:
        """This process's rank."""
        return self.context.rank

    def place(
        self, model_args: Sequence[Any], model_kwargs: Mapping[str, Any] | None, device: Any
    ) -> tuple[tuple[Any, ...], dict[str, Any], torch.device]:
        """The model's data on this rank's device."""
        return place_data(model_args, model_kwargs, device, self.context)

    def likelihood_scale(self, data_size: int, batch_size: int) -> float:
        """Scale of this rank's log-likelihood: ``W * N / batch_size`` (averaging over ``W`` ranks makes it ``N / batch_size``)."""
        return self.context.world_size * data_size / batch_size

    def shard(self, index: torch.Tensor) -> torch.Tensor:
        """This rank's slice of a global mini-batch of indices."""
        return index.tensor_split(self.context.world_size)[self.rank]

    def svi(self, model: Callable[..., Any], guide: Callable[..., Any], optimizer: Any, loss: Any) -> AveragedSVI:
        """An SVI whose steps average gradients over the ranks."""
        return AveragedSVI(model, guide, optimizer, loss)

    def start(self, guide: Callable[..., Any], args: Iterable[Any], kwargs: Mapping[str, Any]) -> None:
        """Create the guide's parameters, copy rank 0's to every rank, and give each rank its own ELBO stream."""
        with torch.no_grad(), poutine.block():
            guide(*args, **kwargs)
        for _, param in sorted(pyro.get_param_store().named_parameters()):
            dist.broadcast(param.data, src=0)
        torch.manual_seed(rank_seed(self.seed, self.rank))

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any rank (so that every rank stops at the same step)."""
        value = torch.tensor([float(flag)], device=self.context.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item() > 0)
