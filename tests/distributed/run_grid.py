"""Run the marked test grid with fit_many on 2 local worker processes (killed by a test).

Usage: python run_grid.py RESULTS_DIR MARKERS_DIR SLEEP
"""

import sys

import torch

torch.set_num_threads(1)
torch.set_default_dtype(torch.float64)

from grid_tasks import fit_hmm_marked, marked_grid  # noqa: E402

from probmodels.distributed import fit_many  # noqa: E402

if __name__ == "__main__":
    results, markers, sleep = sys.argv[1], sys.argv[2], float(sys.argv[3])
    fit_many(fit_hmm_marked, marked_grid(markers, sleep), results_dir=results, max_workers=2, progress_bar=False)
