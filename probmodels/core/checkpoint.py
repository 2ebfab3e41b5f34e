"""Checkpoints of a NUTS run: everything needed to continue it exactly, in one file.

A checkpoint holds the chains' positions, log densities and gradients, the
step sizes, the metric, the dual-averaging and metric-window statistics of
warmup, the draws and sample statistics kept so far, and the state of the
run's random generator (the sampler draws all its randomness from that one
generator; torch's, numpy's and Python's global generators are never used).
Resuming from it continues the run where it stopped: no draw is lost or
repeated, and on the CPU the resumed run is bitwise equal to an
uninterrupted one with the same seed.

The file is a numpy ``.npz`` archive of plain arrays and a JSON header, read
with ``allow_pickle=False``; it is written to a temporary file in the same
folder and renamed over the old one, so a crash while saving leaves the last
good checkpoint intact.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..exceptions import ResultFileError
from .adaptation import DualAveraging, MetricEstimator
from .nuts import ChainState

__all__ = [
    "SamplerCheckpoint", "CheckpointPlan", "write_checkpoint", "read_checkpoint", "data_fingerprint",
    "atomic_savez", "load_archive", "check_header", "check_settings",
]

SCHEMA = "probmodels NUTS checkpoint"
VERSION = 1
_STATE_ARRAYS = ("position", "log_density", "grad", "step_size", "inverse_mass", "draws", "generator_state")
_AVERAGING_ARRAYS = ("averaging_step_size", "averaging_mu", "averaging_log_step_bar", "averaging_h_bar")
_ESTIMATOR_ARRAYS = ("estimator_mean", "estimator_m2")


@dataclass
class SamplerCheckpoint:
    """The state of a NUTS run after ``iteration`` iterations.

    Attributes
    ----------
    iteration : int
        Iterations completed, warmup included.
    settings : dict
        What identifies the run (sizes, sampler settings, seed, sites, data
        fingerprint); a resume must match it exactly.
    compiled : str
        Graph backend of the leaf update (``"eager"`` when none), reused on resume.
    state : ChainState
        Positions, log densities and gradients, ``(chains, dim)``.
    step_size : Tensor
        Current step sizes, ``(chains,)``.
    inverse_mass : Tensor
        The metric, ``(chains, dim)`` or ``(chains, dim, dim)``.
    averaging : DualAveraging
        Step-size adaptation statistics.
    estimator : MetricEstimator
        The current metric window's running moments.
    draws : Tensor
        Draws kept so far, ``(chains, kept, dim)``.
    stats : dict of str to Tensor
        Sample statistics kept so far, each ``(chains, kept)``.
    generator_state : Tensor
        ``torch.Generator.get_state()`` of the run's generator.
    """

    iteration: int
    settings: dict[str, Any]
    compiled: str
    state: ChainState
    step_size: torch.Tensor
    inverse_mass: torch.Tensor
    averaging: DualAveraging
    estimator: MetricEstimator
    draws: torch.Tensor
    stats: dict[str, torch.Tensor]
    generator_state: torch.Tensor


def data_fingerprint(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str:
    """A SHA-256 digest of a model's data: the shape, dtype and bytes of every tensor,
    and the ``repr`` of plain values, so a checkpoint is never resumed on other data."""
    digest = hashlib.sha256()
    items = [(str(i), value) for i, value in enumerate(args)] + sorted((str(k), v) for k, v in kwargs.items())
    for key, value in items:
        digest.update(key.encode())
        if isinstance(value, torch.Tensor):
            array = value.detach().cpu().contiguous().numpy()
            digest.update(f"{array.dtype}{array.shape}".encode())
            digest.update(array.tobytes())
        elif value is None or isinstance(value, (bool, int, float, str)):
            digest.update(repr(value).encode())
        else:
            digest.update(type(value).__qualname__.encode())
    return digest.hexdigest()


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy()


def write_checkpoint(path: str | os.PathLike, checkpoint: SamplerCheckpoint) -> None:
    """Write ``checkpoint`` to ``path`` atomically (temporary file, fsync, rename).

    Parameters
    ----------
    path
        Destination file; its folder must exist.
    checkpoint
        The run's state.
    """
    path = Path(path)
    averaging, estimator = checkpoint.averaging, checkpoint.estimator
    header = dict(
        schema=SCHEMA, version=VERSION, iteration=checkpoint.iteration, settings=checkpoint.settings, compiled=checkpoint.compiled,
        averaging_count=averaging.count, estimator_n=estimator.n, stats=sorted(checkpoint.stats),
    )
    arrays = {
        "header": np.array(json.dumps(header)),
        "position": _numpy(checkpoint.state.position),
        "log_density": _numpy(checkpoint.state.log_density),
        "grad": _numpy(checkpoint.state.grad),
        "step_size": _numpy(checkpoint.step_size),
        "inverse_mass": _numpy(checkpoint.inverse_mass),
        "draws": _numpy(checkpoint.draws),
        "generator_state": _numpy(checkpoint.generator_state),
        "averaging_step_size": _numpy(averaging.step_size),
        "averaging_mu": _numpy(averaging.mu),
        "averaging_log_step_bar": _numpy(averaging.log_step_bar),
        "averaging_h_bar": _numpy(averaging.h_bar),
        "estimator_mean": _numpy(estimator.mean),
        "estimator_m2": _numpy(estimator.m2),
        **{f"stat_{name}": _numpy(value) for name, value in checkpoint.stats.items()},
    }
    atomic_savez(path, arrays)


def read_checkpoint(path: str | os.PathLike, settings: Mapping[str, Any], like: torch.Tensor) -> SamplerCheckpoint:
    """Read a checkpoint written by :func:`write_checkpoint` for the run described by ``settings``.

    Parameters
    ----------
    path
        The checkpoint file.
    settings
        The resuming run's identity; every entry must equal the checkpoint's.
    like
        Gives the dtype and device of the restored tensors.

    Returns
    -------
    SamplerCheckpoint

    Raises
    ------
    ResultFileError
        The file is truncated, not a probmodels checkpoint (e.g. a pickle),
        of another schema version, inconsistent, or from a different run.
    """
    path = Path(path)
    arrays = load_archive(path)
    header = check_header(path, arrays, SCHEMA, ("iteration", "settings", "compiled", "averaging_count", "estimator_n", "stats"))
    check_settings(path, header["settings"], settings)
    chains, dim = settings["num_chains"], settings["dim"]
    dense = settings["dense_mass"]
    kept = max(0, header["iteration"] - settings["num_warmup"])
    shapes = {
        "position": (chains, dim), "log_density": (chains,), "grad": (chains, dim), "step_size": (chains,),
        "inverse_mass": (chains, dim, dim) if dense else (chains, dim), "draws": (chains, kept, dim),
        "averaging_step_size": (chains,), "averaging_mu": (chains,), "averaging_log_step_bar": (chains,), "averaging_h_bar": (chains,),
        "estimator_mean": (chains, dim), "estimator_m2": (chains, dim, dim) if dense else (chains, dim),
        **{f"stat_{name}": (chains, kept) for name in header["stats"]},
    }
    for name, shape in shapes.items():
        if name not in arrays:
            raise ResultFileError(f"checkpoint {str(path)!r} has no array {name!r}; it is damaged. Delete it to start afresh.")
        if arrays[name].shape != shape:
            raise ResultFileError(
                f"checkpoint {str(path)!r}: array {name!r} has shape {arrays[name].shape}, expected {shape}; it is damaged. "
                "Delete it to start afresh."
            )

    def tensor(name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
        value = torch.from_numpy(arrays[name])
        return value.to(device=like.device, dtype=dtype or (like.dtype if value.is_floating_point() else value.dtype))

    averaging = DualAveraging(tensor("averaging_step_size"), target_accept=settings["target_accept"], pooled=settings["adapt_pooled"])
    averaging.mu, averaging.log_step_bar, averaging.h_bar = tensor("averaging_mu"), tensor("averaging_log_step_bar"), tensor("averaging_h_bar")
    averaging.count = int(header["averaging_count"])
    estimator = MetricEstimator(chains, dim, dense, settings["adapt_pooled"], like)
    estimator.n, estimator.mean, estimator.m2 = int(header["estimator_n"]), tensor("estimator_mean"), tensor("estimator_m2")
    return SamplerCheckpoint(
        iteration=int(header["iteration"]),
        settings=dict(header["settings"]),
        compiled=str(header["compiled"]),
        state=ChainState(tensor("position"), tensor("log_density"), tensor("grad")),
        step_size=tensor("step_size"),
        inverse_mass=tensor("inverse_mass"),
        averaging=averaging,
        estimator=estimator,
        draws=tensor("draws"),
        stats={name: tensor(f"stat_{name}", torch.from_numpy(arrays[f"stat_{name}"]).dtype) for name in header["stats"]},
        generator_state=torch.from_numpy(arrays["generator_state"]).to(torch.uint8),
    )


def atomic_savez(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` as an ``.npz`` archive at ``path`` through a temporary file, fsync and rename."""
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **arrays)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_archive(path: Path) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` checkpoint at ``path``, read without pickle."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as error:
        raise ResultFileError(
            f"checkpoint {str(path)!r} could not be read ({type(error).__name__}: {error}); it is truncated or not a "
            "probmodels checkpoint (pickles are refused). Delete it, or pass another checkpoint path, to start afresh."
        ) from error


def check_header(path: Path, arrays: Mapping[str, np.ndarray], schema: str, needed: Sequence[str]) -> dict[str, Any]:
    """The JSON header, checked for ``schema``, :data:`VERSION` and the ``needed`` fields."""
    try:
        header = json.loads(str(arrays["header"][()]))
    except (KeyError, ValueError, TypeError) as error:
        raise ResultFileError(
            f"checkpoint {str(path)!r} has no readable header ({type(error).__name__}); it is not a probmodels checkpoint. "
            "Delete it, or pass another checkpoint path, to start afresh."
        ) from error
    if not isinstance(header, dict) or header.get("schema") != schema:
        found = header.get("schema") if isinstance(header, dict) else None
        raise ResultFileError(
            f"checkpoint {str(path)!r} is not a {schema} file (found schema {found!r}). Delete it, or pass another "
            "checkpoint path, to start afresh."
        )
    if header.get("version") != VERSION:
        raise ResultFileError(
            f"checkpoint {str(path)!r} has schema version {header.get('version')!r}; this probmodels reads version {VERSION}. "
            "Finish the run with the probmodels that wrote it, or start afresh."
        )
    missing = [key for key in needed if key not in header]
    if missing:
        raise ResultFileError(f"checkpoint {str(path)!r} header lacks {missing}; it is damaged. Delete it to start afresh.")
    return header


def check_settings(path: Path, saved: Mapping[str, Any], wanted: Mapping[str, Any]) -> None:
    """Refuse to resume a run with other sizes, settings, seed, model sites or data."""
    differ = [key for key in sorted(set(saved) | set(wanted)) if saved.get(key) != wanted.get(key)]
    if differ:
        details = "; ".join(f"{key}: checkpoint {saved.get(key)!r}, this call {wanted.get(key)!r}" for key in differ[:4])
        raise ResultFileError(
            f"checkpoint {str(path)!r} belongs to a different run ({details}). Resume with the same model, data and "
            "settings, or pass a new checkpoint path."
        )


@dataclass(frozen=True)
class CheckpointPlan:
    """Where and how often a run saves itself, and the identity a resume must match.

    Attributes
    ----------
    path : Path
        The checkpoint file.
    every : int
        Save after every ``every`` iterations (and after the last one).
    settings : dict
        The run's identity (JSON-normalised), see :class:`SamplerCheckpoint`.
    """

    path: Path
    every: int
    settings: dict[str, Any]

    @classmethod
    def create(cls, path: str | os.PathLike, every: int, settings: Mapping[str, Any]) -> "CheckpointPlan":
        """Normalise ``settings`` through JSON (tuples become lists) so they compare equal to a saved header."""
        path = Path(path)
        if not path.parent.is_dir():
            raise ResultFileError(f"checkpoint folder {str(path.parent)!r} does not exist; create it or pass another path.")
        return cls(path, every, json.loads(json.dumps(dict(settings))))

    def resume(self, like: torch.Tensor) -> SamplerCheckpoint | None:
        """The saved state, or None when no checkpoint exists yet."""
        return read_checkpoint(self.path, self.settings, like) if self.path.exists() else None

    def due(self, iteration: int, total: int) -> bool:
        """Whether to save after (0-based) ``iteration`` of ``total``."""
        return (iteration + 1) % self.every == 0 or iteration + 1 == total
