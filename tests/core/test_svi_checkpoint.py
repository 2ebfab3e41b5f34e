"""Checkpoint and resume of fit_svi: a run interrupted (Ctrl-C) mid-way and
called again continues from its last checkpoint and ends bitwise where an
uninterrupted run ends, with mini-batches, Adam and ClippedAdam states."""

from __future__ import annotations

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

from probmodels import ResultFileError, fit_svi

X = torch.linspace(-2.0, 2.0, 40, dtype=torch.float64)
Y = 1.5 * X - 0.5 + 0.3 * torch.sin(7 * X)


class Interrupt:
    """A model wrapper that raises KeyboardInterrupt on its ``at``-th call (counting from 1)."""

    def __init__(self, at: int | None) -> None:
        self.at, self.calls = at, 0

    def __call__(self, x, y):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        slope = pyro.sample("slope", dist.Normal(x.new_tensor(0.0), 2.0))
        intercept = pyro.sample("intercept", dist.Normal(x.new_tensor(0.0), 2.0))
        sigma = pyro.sample("sigma", dist.HalfNormal(x.new_tensor(1.0)))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("y", dist.Normal(slope * x + intercept, sigma), obs=y)


SETTINGS = dict(num_steps=300, num_samples=50, seed=4, progress_bar=False, tol=0)


@pytest.mark.parametrize(
    "options",
    [dict(guide="normal"), dict(guide="mvn", batch_size=16), dict(guide="lowrank", lr_decay=0.1, rank=2, num_particles=3)],
    ids=["normal", "mvn-minibatch", "lowrank-clipped-adam"],
)
def test_interrupted_run_resumes_bitwise_equal(tmp_path, options):
    path = tmp_path / "svi.ckpt"
    uninterrupted = fit_svi(Interrupt(None), X, Y, **SETTINGS, **options)
    with pytest.raises(KeyboardInterrupt):
        fit_svi(Interrupt(2 * 137 + 5), X, Y, checkpoint=path, checkpoint_every=50, **SETTINGS, **options)
    assert path.exists()
    resumed = fit_svi(Interrupt(None), X, Y, checkpoint=path, checkpoint_every=50, **SETTINGS, **options)
    assert np.array_equal(resumed.attrs["loss"], uninterrupted.attrs["loss"])
    for name in uninterrupted.sites:
        assert torch.equal(resumed[name], uninterrupted[name]), name
    again = fit_svi(Interrupt(None), X, Y, checkpoint=path, **SETTINGS, **options)
    assert all(torch.equal(again[name], uninterrupted[name]) for name in uninterrupted.sites)


def test_checkpoint_of_another_svi_run_is_refused(tmp_path):
    path = tmp_path / "svi.ckpt"
    fit_svi(Interrupt(None), X, Y, checkpoint=path, **dict(SETTINGS, num_steps=20))
    with pytest.raises(ResultFileError, match=r"different run \(lr: checkpoint 0.01, this call 0.02"):
        fit_svi(Interrupt(None), X, Y, checkpoint=path, lr=0.02, **dict(SETTINGS, num_steps=20))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ResultFileError, match="truncated or not a probmodels checkpoint"):
        fit_svi(Interrupt(None), X, Y, checkpoint=path, **dict(SETTINGS, num_steps=20))
