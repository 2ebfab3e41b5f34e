"""Checkpoints of an SVI run: the guide's parameters, the optimiser's state, the
loss trace, the mini-batch cursor and the random streams, in one ``.npz`` file.

Resuming continues the optimisation where it stopped; on the CPU the resumed
run is bitwise equal to an uninterrupted one with the same seed. The file is
written atomically and read without pickle, as the NUTS checkpoints of
:mod:`probmodels.core.checkpoint`; nested optimiser states are stored as a
JSON tree whose tensors live in the archive's arrays.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from ..exceptions import ResultFileError
from .checkpoint import CheckpointPlan, atomic_savez, check_header, check_settings, load_archive

__all__ = ["SVICheckpoint", "SVICheckpointPlan", "write_svi_checkpoint", "read_svi_checkpoint"]

SCHEMA = "probmodels SVI checkpoint"


@dataclass
class SVICheckpoint:
    """The state of an SVI run after ``len(losses)`` steps.

    Attributes
    ----------
    losses : list of float
        The loss of every step so far.
    finished : bool
        Whether the run ended (converged or out of steps).
    converged : bool
        Whether it ended by the convergence rule.
    quiet_windows : int
        Consecutive loss windows without improvement so far.
    vectorize : bool
        Whether the ELBO vectorises its particles (it falls back on the first step).
    cursor : int
        Position in the current mini-batch permutation.
    order : Tensor or None
        The current mini-batch permutation (None without mini-batches).
    params : dict of str to Tensor
        Unconstrained values of the guide's parameters.
    optimizer : dict
        The Pyro optimiser's ``get_state()``.
    rng_state, cuda_rng_state, generator_state : Tensor or None
        torch's CPU and CUDA random states inside the run, and the state of
        the run's mini-batch generator.
    """

    losses: list[float]
    finished: bool
    converged: bool
    quiet_windows: int
    vectorize: bool
    cursor: int
    order: torch.Tensor | None
    params: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    rng_state: torch.Tensor
    cuda_rng_state: torch.Tensor | None
    generator_state: torch.Tensor


@dataclass(frozen=True)
class SVICheckpointPlan(CheckpointPlan):
    """Where and how often an SVI run saves itself (see :class:`~probmodels.core.checkpoint.CheckpointPlan`); the end
    of the run is saved by the loop itself, with ``finished=True``."""

    def resume(self, like: torch.Tensor) -> SVICheckpoint | None:  # type: ignore[override]
        """The saved state, or None when no checkpoint exists yet."""
        return read_svi_checkpoint(self.path, self.settings, like) if self.path.exists() else None


def write_svi_checkpoint(plan: SVICheckpointPlan, checkpoint: SVICheckpoint) -> None:
    """Write ``checkpoint`` to ``plan.path`` atomically."""
    arrays: dict[str, np.ndarray] = {}

    def store(value: torch.Tensor) -> dict[str, str]:
        key = f"t{len(arrays)}"
        arrays[key] = value.detach().cpu().numpy()
        return {"tensor": key}

    header = dict(
        schema=SCHEMA, version=1, settings=plan.settings, finished=checkpoint.finished, converged=checkpoint.converged,
        quiet_windows=checkpoint.quiet_windows, vectorize=checkpoint.vectorize, cursor=checkpoint.cursor,
        order=None if checkpoint.order is None else store(checkpoint.order),
        params={name: store(value) for name, value in checkpoint.params.items()},
        optimizer=_encode(checkpoint.optimizer, store),
        rng_state=store(checkpoint.rng_state), generator_state=store(checkpoint.generator_state),
        cuda_rng_state=None if checkpoint.cuda_rng_state is None else store(checkpoint.cuda_rng_state),
    )
    arrays["losses"] = np.asarray(checkpoint.losses, dtype=np.float64)
    arrays["header"] = np.array(json.dumps(header))
    atomic_savez(plan.path, arrays)


def read_svi_checkpoint(path: str | os.PathLike, settings: Mapping[str, Any], like: torch.Tensor) -> SVICheckpoint:
    """Read an SVI checkpoint for the run described by ``settings``; tensors go to ``like``'s device.

    Raises
    ------
    ResultFileError
        The file is truncated, a pickle, of another schema or version, or from a different run.
    """
    path = Path(path)
    arrays = load_archive(path)
    needed = ("settings", "finished", "converged", "quiet_windows", "vectorize", "cursor", "order", "params", "optimizer",
              "rng_state", "generator_state", "cuda_rng_state")
    header = check_header(path, arrays, SCHEMA, needed)
    check_settings(path, header["settings"], settings)

    def load(ref: Any, device: torch.device | None = like.device) -> torch.Tensor:
        if not (isinstance(ref, dict) and ref.get("tensor") in arrays):
            raise ResultFileError(f"checkpoint {str(path)!r} refers to a missing array {ref!r}; it is damaged. Delete it to start afresh.")
        tensor = torch.from_numpy(arrays[ref["tensor"]].copy())
        return tensor if device is None else tensor.to(device)

    if "losses" not in arrays:
        raise ResultFileError(f"checkpoint {str(path)!r} has no loss trace; it is damaged. Delete it to start afresh.")
    return SVICheckpoint(
        losses=[float(x) for x in arrays["losses"]],
        finished=bool(header["finished"]), converged=bool(header["converged"]), quiet_windows=int(header["quiet_windows"]),
        vectorize=bool(header["vectorize"]), cursor=int(header["cursor"]),
        order=None if header["order"] is None else load(header["order"]),
        params={name: load(ref) for name, ref in header["params"].items()},
        optimizer=_decode(header["optimizer"], load),
        rng_state=load(header["rng_state"], None), generator_state=load(header["generator_state"], None),
        cuda_rng_state=None if header["cuda_rng_state"] is None else load(header["cuda_rng_state"], None),
    )


def _encode(value: Any, store: Any) -> Any:
    """A JSON tree of an optimiser state: tensors to array references, tuples and non-string keys tagged."""
    if isinstance(value, torch.Tensor):
        return store(value)
    if isinstance(value, dict):
        return {"dict": [[_encode(k, store), _encode(v, store)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        return {"tuple" if isinstance(value, tuple) else "list": [_encode(v, store) for v in value]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot checkpoint an optimiser state holding {type(value).__name__}.")


def _decode(tree: Any, load: Any) -> Any:
    """Inverse of :func:`_encode`."""
    if isinstance(tree, dict):
        if "tensor" in tree:
            return load(tree)
        if "dict" in tree:
            return {_decode(k, load): _decode(v, load) for k, v in tree["dict"]}
        if "tuple" in tree:
            return tuple(_decode(v, load) for v in tree["tuple"])
        return [_decode(v, load) for v in tree["list"]]
    return tree
