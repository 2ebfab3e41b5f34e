"""Run under torchrun: fit_mcmc(distributed=True) on the regression model.

Usage: python -m torch.distributed.run --nproc_per_node=2 torchrun_chains.py OUT NUM_CHAINS POOLED
Rank 0 saves the gathered posterior to OUT/posterior.nc; every rank writes OUT/rank<r>.json.
"""

import json
import sys
from pathlib import Path

import torch

torch.set_num_threads(1)
torch.set_default_dtype(torch.float64)

import torch.distributed  # noqa: E402

from probmodels import fit_mcmc  # noqa: E402
from torchrun_models import CHAIN_SETTINGS, regression, regression_data  # noqa: E402


def main(out: Path, num_chains: int, pooled: bool) -> None:
    x, y = regression_data()
    posterior = fit_mcmc(regression, x, y, num_chains=num_chains, seed=11, adapt_pooled=pooled, distributed=True, **CHAIN_SETTINGS)
    rank = torch.distributed.get_rank()
    if rank == 0:
        posterior.save(out / "posterior.nc")
    shard = dict(rank=rank, chains=posterior.num_chains, shard=bool(posterior.attrs.get("distributed_shard", False)),
                 first_chain=posterior.attrs.get("first_chain"), rank_seed=posterior.attrs.get("rank_seed"))
    (out / f"rank{rank}.json").write_text(json.dumps(shard))
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "pooled")
