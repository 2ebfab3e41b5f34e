"""fit_many under faults: a Dask worker killed mid-grid, and the whole grid process killed
and run again. Each fit ends up exactly once in the results; no finished fit is lost or redone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from distributed_launch import HERE, script_env
from grid_tasks import fit_hmm_marked, invocations, marked_grid
from probmodels import load
from probmodels.distributed import config_key, fit_many


def _wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def _running(results: Path, markers: Path, configs: list[dict]) -> list[tuple[dict, int]]:
    """(config, worker pid) of every fit that has started and not yet saved its result."""
    found = []
    for config in configs:
        if not (results / f"{config_key(config)}.nc").exists():
            for marker in markers.glob(f"{config['dataset']}-{config['n_states']}-*"):
                found.append((config, int(marker.name.split("-")[2])))
    return found


def test_grid_completes_when_a_dask_worker_is_killed_mid_fit(tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    results, markers = tmp_path / "results", tmp_path / "markers"
    markers.mkdir()
    configs = marked_grid(str(markers), sleep=1.5)
    killed: list[tuple[dict, int]] = []

    def kill_a_busy_worker(worker_pids: set[int]) -> None:
        """After the first fit is saved, SIGKILL a worker process while it is inside a fit."""
        _wait_until(lambda: results.exists() and any(results.glob("*.nc")), 300, "the first saved fit")
        _wait_until(lambda: any(pid in worker_pids for _, pid in _running(results, markers, configs)), 60, "a running fit")
        config, pid = next((c, p) for c, p in _running(results, markers, configs) if p in worker_pids)
        os.kill(pid, signal.SIGKILL)
        killed.append((config, pid))

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        client.wait_for_workers(2)
        worker_pids = set(client.run(os.getpid).values())
        killer = threading.Thread(target=kill_a_busy_worker, args=(worker_pids,), daemon=True)
        killer.start()
        table = fit_many(fit_hmm_marked, configs, results_dir=results, client=client, progress_bar=False)
        killer.join(timeout=60)
    assert killed, "no worker was killed"
    victim, _ = killed[0]
    assert invocations(markers, victim) >= 2, "the killed fit was not rerun"
    assert len(table) == len(configs) and table["key"].is_unique
    assert sorted(p.name for p in results.glob("*.nc")) == sorted(f"{config_key(c)}.nc" for c in configs)
    for path in table["path"]:
        assert load(path).num_draws == 50


def test_killed_grid_process_resumes_without_losing_or_redoing_a_fit(tmp_path):
    results, markers = tmp_path / "results", tmp_path / "markers"
    markers.mkdir()
    configs = marked_grid(str(markers), sleep=0.5)
    grid = subprocess.Popen([sys.executable, str(HERE / "run_grid.py"), str(results), str(markers), "0.5"], env=script_env(),
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_until(lambda: len(list(results.glob("*.nc"))) >= 3 or grid.poll() is not None, 400, "three saved fits")
    finally:
        os.killpg(grid.pid, signal.SIGKILL)  # the grid process and its worker processes (its own session)
        grid.wait()
    assert grid.returncode == -signal.SIGKILL, grid.stderr.read().decode()[-3000:]
    finished = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in results.glob("*.nc")}
    assert 3 <= len(finished) < len(configs), "the kill did not land in the middle of the grid"
    started_before = {config_key(c): invocations(markers, c) for c in configs}

    torch.set_num_threads(1)
    table = fit_many(fit_hmm_marked, configs, results_dir=results, max_workers=1, progress_bar=False)

    assert len(table) == len(configs) and table["key"].is_unique
    assert sorted(p.name for p in results.glob("*.nc")) == sorted(f"{config_key(c)}.nc" for c in configs)
    for config, fitted_now in zip(configs, table["fitted_now"]):
        key = config_key(config)
        was_finished = f"{key}.nc" in finished
        assert fitted_now == (not was_finished)
        if was_finished:  # not lost, not redone: the same file, and fn never started again
            path = results / f"{key}.nc"
            assert (path.stat().st_ino, path.stat().st_mtime_ns) == finished[path.name]
            assert invocations(markers, config) == started_before[key] == 1
        else:
            assert invocations(markers, config) == started_before[key] + 1
