"""fit_many: many independent fits (grids, cross-validation folds, bootstrap, SBC) in parallel.

Locally the fits run in worker processes of this machine
(:class:`concurrent.futures.ProcessPoolExecutor`, ``spawn`` start method, so
no dask is needed on a laptop); given a ``dask.distributed.Client`` they run
on its cluster. Every finished fit is saved to the results folder the moment
it completes (see :mod:`~probmodels.distributed.results`), so a grid that is
killed and called again resumes: no finished fit is lost or fitted again.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Sequence

import pyro
import torch
from tqdm.auto import tqdm

from .._validation import check_positive_int
from ..core.posterior import Posterior
from ..exceptions import InferenceError, ModelSpecError
from .results import (
    SECONDS_ATTR, canonical_json, check_configs, config_key, config_seed, default_summary, read_result, result_path,
    summary_row, write_result,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["fit_many"]

DASK_INSTALL = 'fit_many(client=...) runs on a Dask cluster and needs dask; install it with: pip install "dask[distributed]"'


def fit_many(
    fn: Callable[[dict[str, Any]], Posterior],
    configs: Sequence[Mapping[str, Any]],
    *,
    results_dir: str | os.PathLike,
    client: Any = None,
    max_workers: int | None = None,
    threads_per_fit: int = 1,
    summary: Callable[[Posterior], Mapping[str, Any]] | None = None,
    progress_bar: bool = True,
) -> "pd.DataFrame":
    """Run ``fn(config)`` for every config in parallel, saving each fit as it finishes.

    Parameters
    ----------
    fn
        ``fn(config) -> Posterior``: one fit. Locally it must be importable by
        the worker processes (a function defined at module level, under
        ``if __name__ == "__main__":`` in a script); a Dask cluster also takes
        closures. It should load or simulate its data from the config.
    configs
        One JSON-serialisable dict per fit (str, int, float, bool, None,
        lists and dicts), all different; their keys become table columns.
    results_dir
        Folder of the results (created if missing): one netCDF file per
        config, named by a hash of the config. Configs whose file exists are
        not fitted again, so calling ``fit_many`` again after a crash, or with
        more configs, fits only what is missing.
    client
        A ``dask.distributed.Client``: the fits run on its cluster (Dask
        reruns the fits of a worker that dies; the writes are idempotent, so
        each config still has exactly one result). None: worker processes on
        this machine. Every worker must see ``results_dir`` at the same path
        (a shared file system on a multi-machine cluster).
    max_workers
        Local worker processes (default: the number of CPUs); 1 runs the fits
        one after another in this process, without a pool. Ignored with a client.
    threads_per_fit
        torch's intra-op threads in each fit (``torch.set_num_threads``); the
        default 1 makes ``max_workers`` fits share the CPUs without oversubscription.
    summary
        ``summary(posterior) -> {column: value}``, applied to each saved fit
        (loaded from its file, without its model); default
        :func:`~probmodels.distributed.results.default_summary`, the mean and
        standard deviation of every element of every site.
    progress_bar
        Show a progress bar over the fits.

    Returns
    -------
    pandas.DataFrame
        One row per config, in the order of ``configs``: the config's keys,
        ``key`` (the hash naming its file), ``path`` (load it with
        :func:`probmodels.load`), ``seed``, ``fit_seconds`` (wall time of the
        fit), ``fitted_now`` (False for fits found in the folder), and the
        summary columns.

    Raises
    ------
    TypeError
        ``fn`` is not callable or cannot be sent to worker processes, a config
        is not a JSON-serialisable dict, or ``fn`` returns something other than a Posterior.
    ModelSpecError
        Two configs are equal, or ``results_dir`` is a file.
    InferenceError
        A fit raised; its config is in the message and the fits finished so
        far stay saved (call again to go on).
    ImportError
        ``client`` is given and dask is not installed.

    Notes
    -----
    Each fit runs with the caller's torch default dtype (``torch.set_default_dtype``
    in the script reaches the workers) and starts from a fixed random state: ``pyro.set_rng_seed(seed)``
    (torch, numpy and Python's ``random``) with the config's ``"seed"`` entry
    when it is an int >= 0, otherwise a seed from the config's hash. So a
    fit's result does not depend on the worker, the order of the fits or
    their number, and a grid run on a cluster equals the same grid run serially.
    """
    import pandas as pd

    if not callable(fn):
        raise TypeError(f"fn must be a callable fn(config) -> Posterior, got {type(fn).__name__}.")
    configs = check_configs(configs)
    threads_per_fit = check_positive_int(threads_per_fit, "threads_per_fit")
    folder = _results_folder(results_dir)
    summary = default_summary if summary is None else summary
    pending = [c for c in configs if not result_path(folder, c).exists()]
    if pending:
        tasks = [(c, result_path(folder, c)) for c in pending]
        runtime = (threads_per_fit, str(torch.get_default_dtype()).removeprefix("torch."))
        if client is not None:
            finished = _run_dask(client, fn, tasks, runtime)
        elif max_workers == 1:
            finished = (_fit_one(fn, config, path, runtime) for config, path in tasks)
        else:
            workers = (os.cpu_count() or 1) if max_workers is None else check_positive_int(max_workers, "max_workers")
            finished = _run_processes(fn, tasks, min(workers, len(tasks)), runtime)
        for _ in tqdm(finished, total=len(tasks), disable=not progress_bar, desc="fits", dynamic_ncols=True):
            pass
    fitted_now = {config_key(c) for c in pending}
    rows = []
    for config in configs:
        path = result_path(folder, config)
        posterior = read_result(path, config)
        row = dict(config, key=config_key(config), path=str(path), seed=config_seed(config),
                   fit_seconds=float(posterior.attrs[SECONDS_ATTR]), fitted_now=config_key(config) in fitted_now)
        row.update(summary_row(posterior, summary, config))
        rows.append(row)
    return pd.DataFrame(rows)


def _results_folder(results_dir: str | os.PathLike) -> Path:
    if not isinstance(results_dir, (str, os.PathLike)):
        raise TypeError(f"results_dir must be a folder path, got {type(results_dir).__name__}.")
    folder = Path(results_dir)
    if folder.exists() and not folder.is_dir():
        raise ModelSpecError(f"results_dir={str(folder)!r} is a file; pass a folder (it is created when missing).")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _fit_one(fn: Callable[[dict[str, Any]], Posterior], config: dict[str, Any], path: Path, runtime: tuple[int, str]) -> Path:
    """Fit one config and save it; a config whose file exists is not fitted again (so a
    task that Dask reruns after losing its worker does not fit twice what was saved).

    ``runtime`` is ``(threads, default dtype name)``: torch's intra-op threads for
    the fit and the caller's default dtype, which a fresh worker process lacks."""
    if path.exists():
        return path
    seed = config_seed(config)
    threads, dtype = runtime
    previous_threads, previous_dtype = torch.get_num_threads(), torch.get_default_dtype()
    torch.set_num_threads(threads)
    torch.set_default_dtype(getattr(torch, dtype))
    try:
        pyro.set_rng_seed(seed)
        started = time.perf_counter()
        try:
            posterior = fn(dict(config))
        except Exception as error:
            raise InferenceError(
                f"the fit of config {canonical_json(config)} (key {config_key(config)}) raised {type(error).__name__}: {error}. "
                "The fits finished so far are saved; fix the cause and call fit_many again to fit the rest."
            ) from error
        return write_result(posterior, path, config, time.perf_counter() - started, seed)
    finally:
        torch.set_num_threads(previous_threads)
        torch.set_default_dtype(previous_dtype)


def _run_processes(fn: Callable, tasks: list[tuple[dict[str, Any], Path]], workers: int, runtime: tuple[int, str]) -> Iterator[Path]:
    try:
        ForkingPickler.dumps(fn)  # what the pool does to send fn; fails here with a clear message instead of in a worker
    except Exception as error:
        raise TypeError(
            f"fn cannot be sent to worker processes ({type(error).__name__}: {error}); define it at module level "
            "(in a script, protect the call with if __name__ == '__main__':), or pass max_workers=1 to fit in this process."
        ) from None
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(_fit_one, fn, config, path, runtime) for config, path in tasks]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


def _run_dask(client: Any, fn: Callable, tasks: list[tuple[dict[str, Any], Path]], runtime: tuple[int, str]) -> Iterable[Path]:
    try:
        from dask.distributed import as_completed as dask_as_completed
    except ImportError as error:
        raise ImportError(DASK_INSTALL) from error
    if not callable(getattr(client, "submit", None)):
        raise TypeError(f"client must be a dask.distributed.Client, got {type(client).__name__}.")
    futures = [
        client.submit(_fit_one, fn, config, path, runtime, key=f"probmodels-fit-{config_key(config)}", pure=False)
        for config, path in tasks
    ]
    return (future.result() for future in dask_as_completed(futures))
