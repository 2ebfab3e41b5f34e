"""Checkpoint and resume of fit_mcmc: a run killed with SIGKILL at a random
iteration and resumed loses and repeats no draw and is bitwise equal to an
uninterrupted run on the CPU; damaged or foreign checkpoint files are refused."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from probmodels import ResultFileError, fit_mcmc

MODEL_SOURCE = textwrap.dedent(
    """
    import pyro
    import pyro.distributions as dist
    import torch

    y = torch.linspace(-1.0, 3.0, 20, dtype=torch.float64)

    def model(y):
        mu = pyro.sample("mu", dist.Normal(torch.tensor(0.0, dtype=y.dtype), 10.0))
        sigma = pyro.sample("sigma", dist.HalfNormal(torch.tensor(5.0, dtype=y.dtype)))
        with pyro.plate("data", y.shape[0]):
            pyro.sample("obs", dist.Normal(mu, sigma), obs=y)

    SETTINGS = dict(num_warmup=150, num_samples=150, num_chains=3, seed=11, progress_bar=False, compile="none")
    """
)

CHILD_SOURCE = textwrap.dedent(
    """
    import sys, warnings
    import torch
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    sys.path.insert(0, sys.argv[2])
    import ckmodel
    from probmodels import fit_mcmc
    warnings.simplefilter("ignore")
    fit_mcmc(ckmodel.model, ckmodel.y, checkpoint=sys.argv[1], checkpoint_every=1, **ckmodel.SETTINGS)
    """
)


def _load_model(folder: Path):
    (folder / "ckmodel.py").write_text(MODEL_SOURCE)
    spec = importlib.util.spec_from_file_location("ckmodel", folder / "ckmodel.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _iteration(path: Path) -> int:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return int(json.loads(str(archive["header"][()]))["iteration"])
    except (OSError, ValueError, KeyError):
        return -1


def test_killed_run_resumes_bitwise_equal(tmp_path):
    ck = _load_model(tmp_path)
    total = ck.SETTINGS["num_warmup"] + ck.SETTINGS["num_samples"]
    kill_at = int(np.random.default_rng(20261206).integers(40, total - 60))
    path = tmp_path / "run.ckpt"
    child = subprocess.Popen([sys.executable, "-c", CHILD_SOURCE, str(path), str(tmp_path)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    try:
        while _iteration(path) < kill_at:
            if child.poll() is not None:
                pytest.fail(f"the sampling process ended (rc {child.returncode}) before iteration {kill_at}: {child.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("the sampling process did not reach the kill point in 300 s")
            time.sleep(0.005)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    stopped = _iteration(path)
    assert kill_at <= stopped < total, f"the run was not interrupted (checkpoint at {stopped} of {total})"

    resumed = fit_mcmc(ck.model, ck.y, checkpoint=path, checkpoint_every=1, **ck.SETTINGS)
    uninterrupted = fit_mcmc(ck.model, ck.y, **ck.SETTINGS)
    assert _iteration(path) == total
    for name in uninterrupted.sites:
        assert torch.equal(resumed[name], uninterrupted[name]), name
    for name, value in uninterrupted.sample_stats.items():
        assert torch.equal(resumed.sample_stats[name], value), name


def _finished_checkpoint(tmp_path: Path):
    ck = _load_model(tmp_path)
    settings = dict(ck.SETTINGS, num_warmup=30, num_samples=20)
    path = tmp_path / "short.ckpt"
    fit_mcmc(ck.model, ck.y, checkpoint=path, **settings)
    return ck, settings, path


def test_finished_checkpoint_returns_the_same_posterior(tmp_path):
    ck, settings, path = _finished_checkpoint(tmp_path)
    first = fit_mcmc(ck.model, ck.y, **settings)
    again = fit_mcmc(ck.model, ck.y, checkpoint=path, **settings)
    assert all(torch.equal(first[name], again[name]) for name in first.sites)


@pytest.mark.parametrize(
    "damage, message",
    [
        ("truncate", "truncated or not a probmodels checkpoint"),
        ("pickle", "pickles are refused"),
        ("foreign npz", "no readable header"),
        ("other schema", "not a probmodels NUTS checkpoint file"),
        ("other version", "schema version 99"),
    ],
)
def test_damaged_or_foreign_checkpoint_is_refused(tmp_path, damage, message):
    ck, settings, path = _finished_checkpoint(tmp_path)
    if damage == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif damage == "pickle":
        import pickle

        path.write_bytes(pickle.dumps({"position": [1.0, 2.0]}))
    elif damage == "foreign npz":
        with open(path, "wb") as file:
            np.savez(file, position=np.zeros(3))
    else:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        header = json.loads(str(arrays["header"][()]))
        header.update({"schema": "someone.else"} if damage == "other schema" else {"version": 99})
        arrays["header"] = np.array(json.dumps(header))
        with open(path, "wb") as file:
            np.savez(file, **arrays)
    with pytest.raises(ResultFileError, match=message):
        fit_mcmc(ck.model, ck.y, checkpoint=path, **settings)


def test_checkpoint_of_another_run_is_refused(tmp_path):
    ck, settings, path = _finished_checkpoint(tmp_path)
    with pytest.raises(ResultFileError, match=r"different run \(num_chains: checkpoint 3, this call 4"):
        fit_mcmc(ck.model, ck.y, checkpoint=path, **dict(settings, num_chains=4))
    with pytest.raises(ResultFileError, match=r"different run \(data: checkpoint"):
        fit_mcmc(ck.model, ck.y + 1.0, checkpoint=path, **settings)


def test_checkpoint_arguments_are_checked(tmp_path):
    ck = _load_model(tmp_path)
    with pytest.raises(ResultFileError, match="checkpoint folder .* does not exist"):
        fit_mcmc(ck.model, ck.y, checkpoint=tmp_path / "absent" / "run.ckpt", **ck.SETTINGS)
    with pytest.raises(ValueError, match="checkpoint_every"):
        fit_mcmc(ck.model, ck.y, checkpoint=tmp_path / "run.ckpt", checkpoint_every=0, **ck.SETTINGS)
