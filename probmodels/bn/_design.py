"""A discrete network's structure, states and data codes, and its Dirichlet priors: shared by
:mod:`~probmodels.bn.learn` (maximum likelihood, EM, the conjugate posterior) and
:mod:`~probmodels.bn.model` (the CPT posterior through the inference core).

:func:`prepare_design` resolves the structure and the states of every node and
encodes the data as integer codes (``-1`` = missing); :func:`cpt_pseudo_counts`
builds the BDeu, K2 or user Dirichlet parameters of one CPT.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import networkx as nx
import numpy as np
import pandas as pd
import torch

from ..exceptions import DataError, ModelSpecError
from . import ops
from ._learning import learning_structure, refuse_missing
from .inference import column_states, encode_column
from .network import DiscreteBayesianNetwork

__all__ = [
    "PRIORS",
    "Structure",
    "check_prior",
    "Design",
    "prepare_design",
    "refuse_missing_cells",
    "family_counts",
    "normalise",
    "cpt_pseudo_counts",
]

PRIORS = ("bdeu", "k2", "dirichlet")
"""Accepted values of ``prior``."""

Structure = DiscreteBayesianNetwork | nx.DiGraph | Iterable[tuple[Hashable, Hashable]]


class Design(NamedTuple):
    """A structure with states, and the data as codes (``-1`` = missing)."""

    nodes: tuple[Hashable, ...]
    """Nodes in topological order (the order of the code columns)."""
    parents: dict[Hashable, tuple[Hashable, ...]]
    """Parents of every node, in the order of its CPT's axes."""
    states: dict[Hashable, tuple[Hashable, ...]]
    """State names of every node."""
    codes: torch.Tensor
    """``(n_rows, n_nodes)`` int32 state codes, column-major; ``-1`` marks a missing cell."""

    def cards(self) -> list[int]:
        """Number of states of every node."""
        return [len(self.states[n]) for n in self.nodes]

    def family(self, node: Hashable) -> tuple[list[int], int]:
        """Column indices of the parents of ``node``, and its own."""
        index = {n: i for i, n in enumerate(self.nodes)}
        return [index[p] for p in self.parents[node]], index[node]

    def table_shape(self, node: Hashable) -> tuple[int, ...]:
        """``(*parent_cards, card)``: the shape of the CPT of ``node``."""
        return tuple(len(self.states[p]) for p in self.parents[node]) + (len(self.states[node]),)

    def network(self, tables: Mapping[Hashable, torch.Tensor]) -> DiscreteBayesianNetwork:
        """The network with these CPTs, each ``(*batch, *parent_cards, card)``."""
        cpds = {n: (self.parents[n], self.states[n], tables[n]) for n in self.nodes}
        t = next(iter(tables.values()))
        return DiscreteBayesianNetwork(nodes=self.nodes, cpds=cpds, dtype=t.dtype, device=t.device)


def prepare_design(
    structure: Structure,
    data: pd.DataFrame,
    state_names: Mapping[Hashable, Sequence[Hashable]] | None,
    device: Any,
    *,
    allow_hidden: bool = False,
) -> Design:
    """Resolve the structure and the states of every node, and encode ``data``.

    States come from ``state_names``, else from the CPD of the structure
    network, else from the categories of a categorical column, else from the
    sorted distinct values. With ``allow_hidden`` a structure node without a
    column is hidden (its codes are all ``-1``); its states must then come from
    ``state_names`` or the structure network.

    Raises
    ------
    DataError
        A node without a column (unless ``allow_hidden``), a hidden node or an
        all-missing column without known states, unsortable mixed values, or a
        value that is not a declared state.
    """
    template, graph, nodes, parents = learning_structure(structure, data, DiscreteBayesianNetwork)
    absent = [n for n in nodes if n not in data.columns]
    if absent and not allow_hidden:
        raise DataError(f"data has no column for nodes {absent}; its columns are {list(data.columns)}.")
    states = {}
    for n in nodes:
        if state_names is not None and n in state_names:
            states[n] = tuple(state_names[n])
            if not states[n] or len(set(states[n])) != len(states[n]):
                raise ModelSpecError(f"state_names[{n!r}] = {states[n]} must be a non-empty list of distinct states.")
        elif template is not None and template.has_cpd(n):
            states[n] = template.states(n)
        elif n in absent:
            raise DataError(
                f"node {n!r} has no column in data, so it is hidden and its states are unknown; pass "
                f"state_names={{{n!r}: [...]}} (or a structure network with a CPD for {n!r}), or add the column."
            )
        else:
            states[n] = column_states(data[n], n)
        if not states[n]:
            raise DataError(f"column {n!r} has no observed value, so its states are unknown; pass state_names.")
    columns = [
        np.full(len(data), -1, dtype=np.int64) if n in absent else encode_column(data[n], states[n], n) for n in nodes
    ]
    codes = np.stack(columns, dtype=np.int32).reshape(len(nodes), len(data))
    # column-major int32 (N, V): every node's column is contiguous, which family counting needs to be fast
    return Design(nodes, parents, states, torch.as_tensor(codes, device=device).T)


def refuse_missing_cells(design: Design, data: pd.DataFrame, remedy: str) -> None:
    """Raise :class:`DataError` naming the missing cells of ``design``, if it has any."""
    refuse_missing(design.nodes, (design.codes < 0).cpu().numpy(), data, remedy)


def family_counts(design: Design, node: Hashable, rows: torch.Tensor | None = None) -> torch.Tensor:
    """``(*parent_cards, card)`` counts of the family of ``node`` (callers drop or refuse missing cells)."""
    parents, child = design.family(node)
    codes = design.codes if rows is None else design.codes[rows]
    return ops._family_counts(codes, design.cards(), parents + [child])


def normalise(counts: torch.Tensor) -> torch.Tensor:
    """Rows of ``counts`` divided by their sums (uniform rows where the sum is zero)."""
    totals = counts.sum(-1, keepdim=True)
    uniform = torch.full_like(counts, 1.0 / counts.shape[-1])
    return torch.where(totals > 0, counts / torch.where(totals > 0, totals, torch.ones_like(totals)), uniform)


def cpt_pseudo_counts(node: Hashable, like: torch.Tensor, prior: str, ess: float, pseudo: Any) -> torch.Tensor:
    """Dirichlet parameters of the CPT of ``node``, shaped and typed like ``like`` ``(*parent_cards, card)``.

    ``"k2"``: 1 per cell; ``"bdeu"``: ``ess / (q r)`` per cell; ``"dirichlet"``:
    ``pseudo`` (one positive number or ``{node: array}``).
    """
    if prior == "k2":
        return torch.ones_like(like)
    if prior == "bdeu":
        if not float(ess) > 0:
            raise ModelSpecError(f"equivalent_sample_size must be > 0, got {ess!r}; a common choice is 1 or 10.")
        return torch.full_like(like, float(ess) / like.numel())
    if pseudo is None:
        raise ModelSpecError(
            "prior='dirichlet' needs pseudo_counts: a positive number or {node: array (*parent_cards, card)}."
        )
    value = pseudo[node] if isinstance(pseudo, Mapping) else pseudo
    alpha = torch.as_tensor(np.asarray(value, dtype=np.float64), dtype=like.dtype, device=like.device)
    if alpha.dim() and tuple(alpha.shape) != tuple(like.shape):
        raise ModelSpecError(
            f"pseudo_counts[{node!r}] has shape {tuple(alpha.shape)}; expected (*parent_cards, card) = {tuple(like.shape)}."
        )
    if not bool((alpha > 0).all()):
        raise ModelSpecError(f"pseudo_counts for {node!r} must all be > 0 (Dirichlet parameters).")
    return alpha.expand_as(like).clone()


def check_prior(prior: str) -> str:
    """``prior`` lower-cased, or :class:`ModelSpecError` when it is not one of :data:`PRIORS`."""
    prior = str(prior).lower()
    if prior not in PRIORS:
        raise ModelSpecError(f"prior must be one of {PRIORS}, got {prior!r}.")
    return prior
