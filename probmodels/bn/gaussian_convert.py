"""Conversion between :class:`~probmodels.bn.gaussian.LinearGaussianBayesianNetwork` and pgmpy's.

pgmpy's ``LinearGaussianCPD`` holds ``beta = [intercept, *weights]`` (weights
in the order of ``evidence``) and the standard deviation ``std``; probmodels
holds the variance ``std ** 2``. Parent orders are kept, so a round trip is
exact. pgmpy is imported lazily (it is an optional dependency).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ._pgmpy import check_every_cpd, import_pgmpy, pgmpy_skeleton
from .gaussian import LinearGaussianBayesianNetwork

__all__ = ["gaussian_from_pgmpy", "gaussian_to_pgmpy"]


def gaussian_from_pgmpy(
    model: Any, *, dtype: torch.dtype = torch.float64, device: str | torch.device | None = None
) -> LinearGaussianBayesianNetwork:
    """Build a :class:`LinearGaussianBayesianNetwork` from a pgmpy ``LinearGaussianBayesianNetwork``.

    pgmpy's ``LinearGaussianCPD`` holds ``beta = [intercept, *weights]`` and the
    standard deviation ``std``; the variance here is ``std ** 2``.

    Parameters
    ----------
    model : pgmpy.models.LinearGaussianBayesianNetwork
        A model with a ``LinearGaussianCPD`` for every node.
    dtype, device
        Of the parameters.
    """
    pgmpy = import_pgmpy("continuous")
    if not isinstance(model, pgmpy.models.LinearGaussianBayesianNetwork):
        raise TypeError(f"model must be a pgmpy LinearGaussianBayesianNetwork, got {type(model).__name__}.")
    cpds = {}
    for cpd in model.get_cpds():
        beta = np.asarray(cpd.beta, dtype=np.float64).reshape(-1)
        cpds[cpd.variable] = (tuple(cpd.evidence), beta[0], beta[1:], float(cpd.std) ** 2)
    check_every_cpd(model, cpds)
    return LinearGaussianBayesianNetwork(model.edges(), cpds, nodes=model.nodes(), dtype=dtype, device=device)


def gaussian_to_pgmpy(network: LinearGaussianBayesianNetwork) -> Any:
    """Build a pgmpy ``LinearGaussianBayesianNetwork`` (float64) with the same structure and parameters.

    Raises
    ------
    ShapeError
        For a batched network (pgmpy holds one network).
    """
    pgmpy = import_pgmpy("continuous")
    remedy = "; convert an unbatched network (e.g. posterior.mean())."
    model = pgmpy_skeleton(network, pgmpy.models.LinearGaussianBayesianNetwork, remedy)
    for node in network.nodes:
        cpd = network.cpd(node)
        beta = [float(cpd.intercept)] + cpd.weights.detach().cpu().to(torch.float64).tolist()
        model.add_cpds(
            pgmpy.factors.continuous.LinearGaussianCPD(
                node, beta, math.sqrt(float(cpd.variance)), evidence=list(cpd.parents)
            )
        )
    return model
