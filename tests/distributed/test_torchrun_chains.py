"""fit_mcmc(distributed=True) under torchrun with 2 gloo ranks: the gathered posterior
equals, chain by chain and bitwise, the single-process runs of each rank's share and seed."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from probmodels import fit_mcmc, load
from probmodels.distributed.chains import chain_shares
from probmodels.distributed.context import rank_seed
from probmodels.exceptions import ModelSpecError
from torchrun_models import CHAIN_SETTINGS, regression, regression_data


@pytest.mark.filterwarnings("ignore::probmodels.exceptions.ConvergenceWarning")
def test_chains_split_over_two_ranks_equal_single_process_runs(tmp_path, torchrun):
    """5 chains: rank 0 samples chains 0-2, rank 1 chains 3-4 (uneven shares exercise the padded gather)."""
    torchrun("torchrun_chains.py", str(tmp_path), "5", "per-chain")
    gathered = load(tmp_path / "posterior.nc")
    assert gathered.num_chains == 5 and gathered.num_draws == CHAIN_SETTINGS["num_samples"]
    seeds = [rank_seed(11, r) for r in range(2)]
    assert list(gathered.attrs["rank_seeds"]) == seeds and gathered.attrs["seed"] == 11 and gathered.attrs["world_size"] == 2
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[1] == dict(rank=1, chains=2, shard=True, first_chain=3, rank_seed=seeds[1])
    x, y = regression_data()
    first = 0
    for share, seed in zip(chain_shares(5, 2), seeds):
        alone = fit_mcmc(regression, x, y, num_chains=share, seed=seed, **CHAIN_SETTINGS)
        for name in ("intercept", "slope", "noise", "at_one"):
            np.testing.assert_array_equal(gathered[name][first : first + share].numpy(), alone[name].numpy())
        for name, value in alone.sample_stats.items():
            np.testing.assert_array_equal(gathered.sample_stats[name][first : first + share].numpy(), value.numpy())
        first += share


@pytest.mark.filterwarnings("ignore::probmodels.exceptions.ConvergenceWarning")
def test_pooled_warmup_shares_one_step_size_across_ranks(tmp_path, torchrun):
    torchrun("torchrun_chains.py", str(tmp_path), "4", "pooled")
    gathered = load(tmp_path / "posterior.nc")
    steps = gathered.sample_stats["step_size"]
    assert steps.shape == (4, CHAIN_SETTINGS["num_samples"])
    assert torch.equal(steps, steps[:1].expand_as(steps)), "the step size differs between the ranks' chains"
    assert bool(gathered.attrs["adapt_pooled"])


def test_distributed_without_torchrun_says_how_to_launch(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    x, y = regression_data()
    with pytest.raises(ModelSpecError, match="torchrun --nproc_per_node"):
        fit_mcmc(regression, x, y, num_chains=2, distributed=True, **CHAIN_SETTINGS)
    with pytest.raises(ModelSpecError, match="kernel='nuts'"):
        fit_mcmc(regression, x, y, num_chains=2, distributed=True, kernel="pyro", **CHAIN_SETTINGS)


def test_rank_seeds_are_distinct_and_fixed():
    seeds = [rank_seed(0, r) for r in range(64)]
    assert len(set(seeds)) == 64 and seeds == [rank_seed(0, r) for r in range(64)]
    assert rank_seed(1, 0) != rank_seed(0, 0)
    assert chain_shares(5, 2) == [3, 2] and chain_shares(4, 4) == [1, 1, 1, 1]
