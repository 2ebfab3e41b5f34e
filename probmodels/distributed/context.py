"""The process group of a ``torchrun`` launch: this process's rank, device and seed.

``torchrun`` (``python -m torch.distributed.run``) starts one process per
rank and tells each, through environment variables, its ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and where to meet (``MASTER_ADDR``,
``MASTER_PORT``). :func:`rank_context` reads them and joins the process
group (``nccl`` when CUDA is available, ``gloo`` otherwise) unless the
script already did; the group stays open for the script's later fits.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.distributed as dist

from .._validation import check_non_negative_int
from ..exceptions import ModelSpecError

__all__ = ["RankContext", "rank_context", "rank_seed", "move_to"]

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
LAUNCH_HELP = (
    "Launch the script with torchrun, one process per device, e.g.\n"
    "    torchrun --nproc_per_node=2 script.py             # 2 processes on this machine (CPU: gloo, GPUs: nccl)\n"
    "    python -m torch.distributed.run --nproc_per_node=2 script.py   # the same without the torchrun command\n"
    "or drop distributed=True to run in this one process."
)


@dataclass(frozen=True)
class RankContext:
    """This process's place in a ``torch.distributed`` run.

    Attributes
    ----------
    rank : int
        Global rank, 0 .. world_size - 1.
    world_size : int
        Number of processes.
    local_rank : int
        Rank on this machine (the GPU index with CUDA).
    device : torch.device
        ``cuda:local_rank`` with the ``nccl`` backend, else the CPU.
    backend : str
        ``"gloo"`` or ``"nccl"``.
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str


def rank_context() -> RankContext:
    """Join (or reuse) the process group of a ``torchrun`` launch.

    Raises
    ------
    ModelSpecError
        Not launched by torchrun (its environment variables are missing) and
        no process group was initialised by the script; the message says how to launch.
    """
    if not dist.is_available():
        raise ModelSpecError("distributed=True needs torch.distributed, which this build of torch lacks; run without it.")
    if not dist.is_initialized():
        missing = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
        if missing:
            raise ModelSpecError(
                f"distributed=True runs under torchrun, but the environment variables {missing} that it sets are "
                f"missing.\n{LAUNCH_HELP}"
            )
        local_rank = int(os.environ["LOCAL_RANK"])
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank)
            dist.init_process_group("nccl")
        else:
            dist.init_process_group("gloo")
    backend = str(dist.get_backend())
    local_rank = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    device = torch.device("cuda", local_rank) if backend == "nccl" else torch.device("cpu")
    return RankContext(dist.get_rank(), dist.get_world_size(), local_rank, device, backend)


def rank_seed(seed: int, rank: int) -> int:
    """The seed of ``rank`` in a run seeded ``seed``: the rank-th child of numpy's
    ``SeedSequence(seed)``, as a 32-bit number (independent streams for every rank)."""
    seed = check_non_negative_int(seed, "seed")
    return int(np.random.SeedSequence(seed, spawn_key=(rank,)).generate_state(1)[0])


def move_to(value: Any, device: torch.device) -> Any:
    """``value`` with every tensor (also inside lists, tuples and dicts) moved to ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, np.ndarray) and value.dtype != object:
        return torch.as_tensor(value).to(device)
    if isinstance(value, (list, tuple)):
        return type(value)(move_to(v, device) for v in value)
    if isinstance(value, Mapping):
        return {k: move_to(v, device) for k, v in value.items()}
    return value


def place_data(
    model_args: Sequence[Any], model_kwargs: Mapping[str, Any] | None, device: str | torch.device | None, context: RankContext
) -> tuple[tuple[Any, ...], dict[str, Any], torch.device]:
    """A model's data moved to this rank's device (``device`` must agree with it, if given)."""
    if device is not None and torch.device(device).type != context.device.type:
        raise ModelSpecError(
            f"device={str(device)!r} conflicts with this rank's device {context.device} (distributed runs compute on "
            "cuda:LOCAL_RANK with CUDA, else on the CPU); drop the device argument."
        )
    args = tuple(move_to(a, context.device) for a in model_args)
    kwargs = {k: move_to(v, context.device) for k, v in (model_kwargs or {}).items()}
    return args, kwargs, context.device
