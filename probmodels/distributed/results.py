"""The results folder of :func:`~probmodels.distributed.fit_many`: one netCDF file per config.

A config is a JSON-serialisable dict; its file is named by a stable hash of
its canonical JSON (sorted keys, no whitespace), so the same config always
maps to the same file, whichever process or machine fits it. A file is
written to a temporary name in the folder, flushed to disk (``fsync``) and
renamed over its final name, so a file under its final name is always
complete: a crash leaves either nothing or the whole result, and a re-run
skips every config whose file exists.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from ..core.posterior import Posterior, load
from ..exceptions import ModelSpecError, ResultFileError

__all__ = ["config_key", "config_seed", "result_path", "write_result", "read_result", "default_summary", "check_configs"]

SUFFIX = ".nc"
CONFIG_ATTR = "fit_config_json"
KEY_ATTR = "fit_key"
SECONDS_ATTR = "fit_seconds"
SEED_ATTR = "fit_seed"


def canonical_json(config: Mapping[str, Any]) -> str:
    """The config as canonical JSON: sorted keys, no whitespace, NaN refused."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)


def config_key(config: Mapping[str, Any]) -> str:
    """A stable 16-hex-digit name of a config: the start of the SHA-256 of its canonical JSON.

    Key order does not matter (``{"a": 1, "b": 2}`` and ``{"b": 2, "a": 1}``
    share a key); ``1`` and ``1.0`` are different configs.
    """
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()[:16]


def config_seed(config: Mapping[str, Any]) -> int:
    """The seed of a config's fit: its ``"seed"`` entry when that is an int >= 0, else a
    32-bit number from its key (so every config has its own fixed seed)."""
    seed = config.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0:
        return seed
    return int(config_key(config)[:8], 16)


def check_configs(configs: Any) -> list[dict[str, Any]]:
    """A list of configs, each checked to be a dict that JSON can write, none repeated.

    Raises
    ------
    TypeError
        ``configs`` is not a sequence of dicts, or a config holds a value JSON cannot write.
    ModelSpecError
        A config holds NaN or infinity, or two configs are equal.
    """
    if isinstance(configs, (str, bytes, Mapping)) or not isinstance(configs, Sequence):
        raise TypeError(
            f"configs must be a list of dicts (one per fit), got {type(configs).__name__}; "
            "e.g. configs=[{'n_states': k} for k in range(1, 5)]."
        )
    checked, seen = [], {}
    for index, config in enumerate(configs):
        if not isinstance(config, Mapping):
            raise TypeError(f"configs[{index}] must be a dict, got {type(config).__name__}: {config!r}.")
        if not all(isinstance(name, str) for name in config):
            raise TypeError(f"configs[{index}] must have string keys (they become table columns), got {list(config)!r}.")
        try:
            key = config_key(config)
        except TypeError as error:
            raise TypeError(
                f"configs[{index}] cannot be written as JSON ({error}); configs name a fit and must hold only "
                "str, int, float, bool, None, lists and dicts. Pass data by name (e.g. {'dataset': 'a'}) and "
                "load it inside fn."
            ) from None
        except ValueError as error:
            raise ModelSpecError(f"configs[{index}] holds NaN or infinity ({error}); JSON cannot name it.") from None
        if key in seen:
            raise ModelSpecError(
                f"configs[{index}] repeats configs[{seen[key]}] ({canonical_json(config)}); each fit needs its own "
                "config. Add a field that tells them apart, e.g. 'replicate': i."
            )
        seen[key] = index
        checked.append(dict(config))
    return checked


def result_path(results_dir: Path, config: Mapping[str, Any]) -> Path:
    """Where the fit of ``config`` is saved."""
    return results_dir / f"{config_key(config)}{SUFFIX}"


def write_result(posterior: Posterior, path: Path, config: Mapping[str, Any], seconds: float, seed: int) -> Path:
    """Save a fit atomically: temporary file, ``fsync``, rename; the config, its seed and
    the fit's wall time go into the file's attributes."""
    if not isinstance(posterior, Posterior):
        raise TypeError(
            f"fn returned {type(posterior).__name__} for config {canonical_json(config)}; it must return a "
            "probmodels Posterior (e.g. the result of fit_mcmc or fit_svi, or hmm.posterior_)."
        )
    posterior.attrs.update({CONFIG_ATTR: canonical_json(config), KEY_ATTR: config_key(config), SECONDS_ATTR: seconds, SEED_ATTR: seed})
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        posterior.save(tmp)
        with open(tmp, "rb") as file:
            os.fsync(file.fileno())
        os.replace(tmp, path)
        _fsync_folder(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def read_result(path: Path, config: Mapping[str, Any]) -> Posterior:
    """Load a saved fit and check that it belongs to ``config``."""
    posterior = load(path)
    stored = posterior.attrs.get(CONFIG_ATTR)
    if stored != canonical_json(config):
        raise ResultFileError(
            f"result file {str(path)!r} holds the config {stored!r}, not {canonical_json(config)!r}; the results "
            "folder holds files from elsewhere. Use a fresh results_dir."
        )
    return posterior


def default_summary(posterior: Posterior) -> dict[str, float]:
    """Posterior mean and standard deviation of every element of every site:
    columns ``"mean[site]"``/``"sd[site]"`` for scalars, ``"mean[site[i,j]]"`` otherwise."""
    row: dict[str, float] = {}
    for name, value in posterior.draws.items():
        flat = value.detach().reshape(value.shape[0] * value.shape[1], -1).to(torch.float64)
        shape = tuple(value.shape[2:])
        means, sds = flat.mean(0), flat.std(0) if flat.shape[0] > 1 else torch.full_like(flat[0], math.nan)
        for flat_index in range(flat.shape[1]):
            label = name if not shape else f"{name}[{','.join(map(str, np.unravel_index(flat_index, shape)))}]"
            row[f"mean[{label}]"] = float(means[flat_index])
            row[f"sd[{label}]"] = float(sds[flat_index])
    return row


def summary_row(
    posterior: Posterior, summary: Callable[[Posterior], Mapping[str, Any]], config: Mapping[str, Any]
) -> dict[str, Any]:
    """The summary columns of one fit, checked to be a mapping."""
    row = summary(posterior)
    if not isinstance(row, Mapping):
        raise TypeError(
            f"summary must return a dict of column -> value, got {type(row).__name__} for config {canonical_json(config)}."
        )
    return dict(row)
