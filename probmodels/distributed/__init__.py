"""Scale-out on existing engines: many fits on processes or a Dask cluster, chains and
SVI across processes or GPUs with ``torch.distributed`` (launched by ``torchrun``).

* :func:`fit_many`: independent fits in parallel, each saved as it finishes,
  resumable (:mod:`~probmodels.distributed.grid`).
* ``fit_mcmc(..., distributed=True)``: each rank samples its share of the
  chains; the draws are gathered on rank 0 (:mod:`~probmodels.distributed.chains`).
* ``fit_svi(..., distributed=True)``: data-parallel SVI with averaged
  gradients (:mod:`~probmodels.distributed.data_parallel`).

Dask is imported only when ``fit_many`` is given a Dask client.
"""

from .context import rank_seed
from .grid import fit_many
from .results import config_key, config_seed, default_summary

__all__ = ["fit_many", "config_key", "config_seed", "default_summary", "rank_seed"]
