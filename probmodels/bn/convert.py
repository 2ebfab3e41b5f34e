"""Conversion between :class:`~probmodels.bn.DiscreteBayesianNetwork` and pgmpy's discrete networks.

pgmpy stores a CPD as ``values`` shaped ``(card, prod(parent_cards))`` with the
last parent varying fastest; probmodels stores ``(*parent_cards, card)``. Both
keep the parents' order, so a round trip is exact. pgmpy is imported lazily
(it is an optional dependency).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ._pgmpy import check_every_cpd, import_pgmpy, pgmpy_skeleton
from .network import DiscreteBayesianNetwork

__all__ = ["from_pgmpy", "to_pgmpy"]


def from_pgmpy(
    model: Any, *, dtype: torch.dtype = torch.float64, device: str | torch.device | None = None
) -> DiscreteBayesianNetwork:
    """Build a :class:`DiscreteBayesianNetwork` from a pgmpy ``DiscreteBayesianNetwork``.

    Parameters
    ----------
    model : pgmpy.models.DiscreteBayesianNetwork
        A model with a ``TabularCPD`` for every node (``model.check_model()`` passes).
    dtype, device
        Of the tables.

    Returns
    -------
    DiscreteBayesianNetwork
        Same nodes, edges, parent orders, state names and probabilities.
    """
    pgmpy = import_pgmpy("discrete")
    if not isinstance(model, pgmpy.models.DiscreteBayesianNetwork):
        raise TypeError(f"model must be a pgmpy DiscreteBayesianNetwork, got {type(model).__name__}.")
    cpds = {}
    for cpd in model.get_cpds():
        node, parents = cpd.variable, tuple(cpd.variables[1:])
        cards = tuple(int(c) for c in cpd.cardinality)
        values = np.asarray(cpd.get_values(), dtype=np.float64)
        table = values.T.reshape(cards[1:] + cards[:1])
        cpds[node] = (parents, tuple(cpd.state_names[node]), table)
    check_every_cpd(model, cpds)
    return DiscreteBayesianNetwork(model.edges(), cpds, nodes=model.nodes(), dtype=dtype, device=device)


def to_pgmpy(network: DiscreteBayesianNetwork) -> Any:
    """Build a pgmpy ``DiscreteBayesianNetwork`` (with ``TabularCPD`` s) from ``network``.

    Parameters
    ----------
    network : DiscreteBayesianNetwork
        An unbatched network with a CPD for every node.

    Returns
    -------
    pgmpy.models.DiscreteBayesianNetwork
        Same structure, parent orders, state names and (float64) probabilities.
    """
    pgmpy = import_pgmpy("discrete")
    model = pgmpy_skeleton(network, pgmpy.models.DiscreteBayesianNetwork, ". Index a draw first.")
    for node in network.nodes:
        cpd = network.cpd(node)
        table = cpd.table.detach().cpu().to(torch.float64).numpy()
        card = len(cpd.states)
        values = table.reshape(-1, card).T
        model.add_cpds(
            pgmpy.factors.discrete.TabularCPD(
                node,
                card,
                values,
                evidence=list(cpd.parents) or None,
                evidence_card=[network.cardinality(p) for p in cpd.parents] or None,
                state_names={node: list(cpd.states), **{p: list(network.states(p)) for p in cpd.parents}},
            )
        )
    return model
