"""Run under torchrun: fit_svi(distributed=True) on the normal-mean model.

Usage: python -m torch.distributed.run --nproc_per_node=2 torchrun_svi.py OUT GUIDE
Rank 0 saves its posterior to OUT/posterior.nc; every rank writes its loss trace,
its draws' mean and the ranks' parameter checksum to OUT/rank<r>.json.
"""

import json
import sys
from pathlib import Path

import torch

torch.set_num_threads(1)
torch.set_default_dtype(torch.float64)

import torch.distributed  # noqa: E402

from probmodels import fit_svi  # noqa: E402
from torchrun_models import SVI_SETTINGS, normal_mean, normal_mean_data  # noqa: E402


def main(out: Path, guide: str) -> None:
    posterior = fit_svi(normal_mean, normal_mean_data(), distributed=True, **dict(SVI_SETTINGS, guide=guide))
    rank = torch.distributed.get_rank()
    if rank == 0:
        posterior.save(out / "posterior.nc")
    loss = [float(v) for v in posterior.attrs["loss"]]
    (out / f"rank{rank}.json").write_text(json.dumps(dict(rank=rank, loss=loss, mean=float(posterior["mu"].mean()))))
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
