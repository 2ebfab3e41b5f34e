"""fit_many: the same grid serially, on local worker processes and on a Dask LocalCluster
gives bitwise the same fits; seeding, threads and bad input."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest
import torch

import grid_tasks
from probmodels import load
from probmodels.distributed import config_key, config_seed, fit_many
from probmodels.exceptions import InferenceError, ModelSpecError, ResultFileError

GRID = [{"dataset": name, "n_states": k, "seed": 10 * k + i} for i, name in enumerate(("calm", "jumpy")) for k in (1, 2, 3, 4)]


def _draws(path: str) -> dict[str, np.ndarray]:
    return {name: value.numpy() for name, value in load(path).draws.items()}


def _assert_same_fits(first: pd.DataFrame, second: pd.DataFrame) -> None:
    assert list(first["key"]) == list(second["key"])
    summaries = [c for c in first.columns if c.startswith(("mean[", "sd["))]
    assert summaries
    pd.testing.assert_frame_equal(first[summaries], second[summaries], check_exact=True)
    for a, b in zip(first["path"], second["path"]):
        draws_a, draws_b = _draws(a), _draws(b)
        assert draws_a.keys() == draws_b.keys()
        for name in draws_a:
            np.testing.assert_array_equal(draws_a[name], draws_b[name])


def test_grid_on_dask_equals_serial(tmp_path):
    """8 HMM fits (K = 1..4 on two data sets): serial in this process and on a LocalCluster
    of 2 one-thread worker processes, bitwise equal."""
    distributed = pytest.importorskip("dask.distributed")
    serial = fit_many(grid_tasks.fit_hmm, GRID, results_dir=tmp_path / "serial", max_workers=1, progress_bar=False)
    assert len(serial) == 8 and serial["fitted_now"].all()
    assert list(serial["n_states"]) == [c["n_states"] for c in GRID] and list(serial["dataset"]) == [c["dataset"] for c in GRID]
    assert (serial["fit_seconds"] > 0).all()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        on_dask = fit_many(grid_tasks.fit_hmm, GRID, results_dir=tmp_path / "dask", client=client, progress_bar=False)
    _assert_same_fits(serial, on_dask)
    assert sorted(p.name for p in (tmp_path / "dask").iterdir()) == sorted(f"{config_key(c)}.nc" for c in GRID)


def test_rerun_loads_saved_fits_and_fits_only_new_configs(tmp_path):
    first = fit_many(grid_tasks.fit_hmm, GRID[:2], results_dir=tmp_path, max_workers=1, progress_bar=False)
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    again = fit_many(grid_tasks.fit_hmm, GRID[:3], results_dir=tmp_path, max_workers=1, progress_bar=False)
    assert list(again["fitted_now"]) == [False, False, True]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    columns = [c for c in first.columns if c != "fitted_now"]
    pd.testing.assert_frame_equal(first[columns], again.iloc[:2][columns], check_exact=True)


def test_local_processes_equal_serial_seed_each_fit_and_run_one_thread(tmp_path):
    """Two spawned worker processes: the HMM fits equal the serial ones bitwise; each probe fit
    sees torch on one thread, this process's default dtype and a torch RNG seeded from its config
    (its "seed", else its hash)."""
    fits = GRID[::3]
    probes = [{"probe": True, "seed": 5}, {"probe": True, "name": "no seed"}]
    serial = fit_many(grid_tasks.fit_hmm, fits, results_dir=tmp_path / "serial", max_workers=1, progress_bar=False)
    local = fit_many(grid_tasks.fit_hmm_or_probe, fits + probes, results_dir=tmp_path / "local", max_workers=2, progress_bar=False)
    _assert_same_fits(serial, local.iloc[: len(fits)].reset_index(drop=True))
    table = local.iloc[len(fits) :]
    assert list(table["mean[threads]"]) == [1.0, 1.0]
    assert list(table["mean[float64]"]) == [1.0, 1.0]  # this process's default dtype (conftest), not the workers' float32
    assert list(table["seed"]) == [5, int(config_key(probes[1])[:8], 16)] == [config_seed(c) for c in probes]
    for seed, value in zip(table["seed"], table["mean[u]"]):
        torch.manual_seed(seed)
        assert value == float(torch.rand(1, dtype=torch.float64))
    saved = load(table["path"].iloc[0])
    assert json.loads(saved.attrs["fit_config_json"]) == probes[0] and saved.attrs["fit_key"] == table["key"].iloc[0]


def test_summary_callable_sets_the_columns(tmp_path):
    table = fit_many(grid_tasks.torch_threads, [{"seed": 1}], results_dir=tmp_path, max_workers=1, progress_bar=False,
                     summary=lambda posterior: {"u_draw": float(posterior["u"].reshape(()))})
    assert "u_draw" in table.columns and "mean[u]" not in table.columns


def _not_a_posterior(config):
    return {"mean": 1.0}


def _failing(config):
    raise RuntimeError("singular matrix")


@pytest.mark.parametrize(
    ("configs", "error", "match"),
    [
        ([{"x": np.arange(3)}], TypeError, r"configs\[0\] cannot be written as JSON"),
        ([{"k": 1}, {"k": 1}], ModelSpecError, r"configs\[1\] repeats configs\[0\]"),
        ([{"k": float("nan")}], ModelSpecError, "NaN"),
        ({"k": 1}, TypeError, "list of dicts"),
        ([3], TypeError, r"configs\[0\] must be a dict"),
    ],
)
def test_bad_configs_are_refused(tmp_path, configs, error, match):
    with pytest.raises(error, match=match):
        fit_many(grid_tasks.fit_hmm, configs, results_dir=tmp_path, max_workers=1)


def test_bad_calls_are_refused(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ModelSpecError, match="is a file"):
        fit_many(grid_tasks.fit_hmm, GRID, results_dir=tmp_path / "file")
    with pytest.raises(TypeError, match="callable"):
        fit_many("fit_hmm", GRID, results_dir=tmp_path / "a")
    with pytest.raises(TypeError, match="must return a probmodels Posterior"):
        fit_many(_not_a_posterior, [{"k": 1}], results_dir=tmp_path / "b", max_workers=1)
    with pytest.raises(InferenceError, match=r'config \{"k":1\}.*singular matrix'):
        fit_many(_failing, [{"k": 1}], results_dir=tmp_path / "c", max_workers=1)
    with pytest.raises(TypeError, match="cannot be sent to worker processes"):
        fit_many(lambda config: None, [{"k": 1}], results_dir=tmp_path / "d", max_workers=2)
    with pytest.raises(TypeError, match="dask.distributed.Client"):
        fit_many(grid_tasks.fit_hmm, [{"k": 1}], results_dir=tmp_path / "e", client="tcp://127.0.0.1:8786")


def test_a_client_without_dask_installed_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    with pytest.raises(ImportError, match=r'pip install "dask\[distributed\]"'):
        fit_many(grid_tasks.fit_hmm, [{"k": 1}], results_dir=tmp_path, client=object())


def test_foreign_file_under_a_config_name_is_reported(tmp_path):
    fit_many(grid_tasks.torch_threads, [{"seed": 1}], results_dir=tmp_path, max_workers=1, progress_bar=False)
    other = tmp_path / f"{config_key({'seed': 2})}.nc"
    (tmp_path / f"{config_key({'seed': 1})}.nc").rename(other)
    with pytest.raises(ResultFileError, match="holds the config"):
        fit_many(grid_tasks.torch_threads, [{"seed": 2}], results_dir=tmp_path, max_workers=1, progress_bar=False)


def test_library_imports_without_dask():
    import subprocess

    code = ("import sys; sys.modules['dask'] = None; sys.modules['distributed'] = None; "
            "import probmodels.distributed, probmodels; print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
