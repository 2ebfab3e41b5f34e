"""Discrete Bayesian networks: a DAG of named variables with named states and CPTs.

:class:`DiscreteBayesianNetwork` holds the structure (a networkx ``DiGraph``)
and one conditional probability table per node, validated when it is added.
The exact algorithms live in :mod:`probmodels.bn.ops`; the network hands them
its :meth:`~DiscreteBayesianNetwork.tensors`. Queries go through
:class:`probmodels.bn.Inference`, learning through :mod:`probmodels.bn.learn`,
conversion from and to pgmpy through :mod:`probmodels.bn.convert`. The
structure logic it shares with the linear-Gaussian network (and
:func:`~probmodels.bn.dag.topological_order`, re-exported here) lives in
:mod:`probmodels.bn.dag`.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from ..exceptions import DataError, ModelSpecError, ShapeError
from . import ops
from .dag import _BayesianNetworkStructure, topological_order

__all__ = ["CPD", "DiscreteBayesianNetwork", "do", "SUM_TOLERANCE", "topological_order"]

SUM_TOLERANCE = 1e-6
"""Largest accepted deviation of a CPT row sum from one; accepted rows are rescaled to sum to one.

Rescaling makes every query see one proper distribution: exact inference drops
barren nodes, which is exact only when their rows sum to one (several bnlearn
networks, e.g. alarm and sachs, have rows that are off by 1e-7)."""

_SHOWN = 5


class CPD(NamedTuple):
    """Conditional probability table of one node."""

    parents: tuple[Hashable, ...]
    """Parents, in the order of the table's leading axes."""
    states: tuple[Hashable, ...]
    """Names of the node's states, in the order of the table's last axis."""
    table: torch.Tensor
    """``(*batch, *parent_cards, card)``; every row over the last axis sums to one."""


class DiscreteBayesianNetwork(_BayesianNetworkStructure):
    """A Bayesian network over discrete variables with named states.

    Parameters
    ----------
    edges : iterable of (parent, child) pairs, optional
        Directed edges. Edges implied by the CPDs' parents are added too.
    cpds : mapping, optional
        ``{node: (parents, states, table)}``: ``parents`` a sequence of nodes,
        ``states`` a sequence of state names, ``table`` array-like shaped
        ``(*batch, *parent_cards, card)`` (last axis = the node's states,
        parents in the given order; optional leading batch dims, e.g. posterior
        draws, shared by all tables).
    nodes : iterable, optional
        Extra nodes (e.g. isolated ones).
    dtype : torch.dtype, default torch.float64
        Floating dtype of the tables.
    device : str or torch.device, optional
        Device of the tables (default CPU).

    Raises
    ------
    ModelSpecError
        For a cycle, a self-loop, an unknown parent, a CPT with a wrong shape,
        negative or NaN entries, or rows that do not sum to one within
        :data:`SUM_TOLERANCE`.

    Examples
    --------
    >>> net = DiscreteBayesianNetwork(cpds={
    ...     "rain": ((), ("no", "yes"), [0.8, 0.2]),
    ...     "wet": (("rain",), ("dry", "wet"), [[0.9, 0.1], [0.2, 0.8]]),
    ... })
    >>> net.nodes
    ('rain', 'wet')
    """

    _OPS = ops
    _CPD_ARGUMENTS = "parents, states, table"
    _LEARN_MODULE = "probmodels.bn.learn"
    _UNLISTED_PARENTS_FIX = (
        "add them to the CPD's parents (and table axes) or build the network without those edges."
    )
    _cpds: dict[Hashable, CPD]
    _tensors: ops.NetworkTensors | None

    def __init__(
        self,
        edges: Iterable[tuple[Hashable, Hashable]] = (),
        cpds: Mapping[Hashable, tuple[Sequence[Hashable], Sequence[Hashable], Any]] | None = None,
        *,
        nodes: Iterable[Hashable] = (),
        dtype: torch.dtype = torch.float64,
        device: str | torch.device | None = None,
    ) -> None:
        super().__init__(edges, cpds, nodes=nodes, dtype=dtype, device=device)

    # ------------------------------------------------------------------ states

    def states(self, node: Hashable) -> tuple[Hashable, ...]:
        """State names of ``node``."""
        return self.cpd(node).states

    def cardinality(self, node: Hashable) -> int:
        """Number of states of ``node``."""
        return len(self.states(node))

    # ------------------------------------------------------------------ CPDs

    def add_cpd(self, node: Hashable, parents: Sequence[Hashable], states: Sequence[Hashable], table: Any) -> None:
        """Set (or replace) the CPT of ``node``.

        Parameters
        ----------
        node : hashable
            The node; added to the graph if new.
        parents : sequence
            Its parents, existing nodes, in the order of the table's axes; the
            edges ``parent -> node`` are added. They must include every parent
            that the graph already has.
        states : sequence
            Distinct names of its states.
        table : array-like
            ``(*batch, *parent_cards, card)`` probabilities; rows must sum to
            one within :data:`SUM_TOLERANCE` and are stored rescaled to sum to one.

        Raises
        ------
        ModelSpecError
            Unknown parents, a cycle, duplicate states, a wrong shape, invalid
            probabilities.
        """
        parents, states = tuple(parents), tuple(states)
        self._check_parents(node, parents)
        if len(set(states)) != len(states) or not states:
            raise ModelSpecError(f"the states {states} of {node!r} must be a non-empty sequence of distinct names.")
        self._check_graph_parents(node, parents)
        self._store_cpd(node, CPD(parents, states, self._as_table(node, parents, states, table)))

    def tensors(self) -> ops.NetworkTensors:
        """The network as :class:`~probmodels.bn.ops.NetworkTensors`, variables in the order of :attr:`nodes`."""
        if self._tensors is None:
            self.check_complete()
            nodes = self.nodes
            index = {node: i for i, node in enumerate(nodes)}
            cpds = [self._cpds[node] for node in nodes]
            self._tensors = ops.NetworkTensors(
                tuple(len(c.states) for c in cpds),
                tuple(tuple(index[p] for p in c.parents) for c in cpds),
                tuple(c.table for c in cpds),
            )
        return self._tensors

    def state_code(self, node: Hashable, state: Hashable) -> int:
        """Index of ``state`` among the states of ``node``; raises :class:`DataError` for an unknown state."""
        states = self.states(node)
        if state not in states:
            raise DataError(f"{state!r} is not a state of {node!r}; its states are {states}.")
        return states.index(state)

    def do(self, interventions: Mapping[Hashable, Hashable]) -> DiscreteBayesianNetwork:
        """The mutilated network of ``do(node = state, ...)`` (graph surgery).

        Each intervened node loses its incoming edges and gets a point-mass CPT
        on the forced state; its children keep their CPTs. Queries on the result
        answer causal questions ``P(Y | do(X = x), evidence)``.

        Parameters
        ----------
        interventions : mapping
            ``{node: state_name}``.

        Returns
        -------
        DiscreteBayesianNetwork
            A new network; this one is unchanged.
        """
        self.check_complete()
        codes = {self._check_node(node): self.state_code(node, state) for node, state in interventions.items()}
        copy = self.to()
        for node, code in codes.items():
            copy._graph.remove_edges_from(list(copy._graph.in_edges(node)))
            point = torch.zeros(self.cardinality(node), dtype=self._dtype, device=self._device)
            point[code] = 1
            copy._cpds[node] = CPD((), self.states(node), point)
        return copy

    # ------------------------------------------------------------------ helpers

    def _add_cpd_spec(self, node: Hashable, spec: Any) -> None:
        if not isinstance(spec, (tuple, list)) or len(spec) != 3:
            raise TypeError(f"cpds[{node!r}] must be a tuple (parents, states, table), got {type(spec).__name__}.")
        self.add_cpd(node, *spec)

    def _as_table(self, node: Hashable, parents: tuple, states: tuple, table: Any) -> torch.Tensor:
        if isinstance(table, torch.Tensor):
            table = table.detach().to(device=self._device, dtype=self._dtype)
        else:
            array = np.asarray(table)
            if array.dtype == object or not np.issubdtype(array.dtype, np.number):
                raise TypeError(f"the table of {node!r} must be numeric array-like, got dtype {array.dtype}.")
            table = torch.as_tensor(array, dtype=self._dtype, device=self._device)
        known = [len(self._cpds[p].states) if p in self._cpds else None for p in parents]
        ndim = len(parents) + 1
        shown = tuple("?" if k is None else k for k in known) + (len(states),)
        received = tuple(table.shape[table.dim() - ndim :]) if table.dim() >= ndim else tuple(table.shape)
        if table.dim() < ndim or any(k is not None and k != r for k, r in zip(known + [len(states)], received)):
            hint = ""
            if parents and None not in known and tuple(table.shape) == (len(states), int(np.prod(known))):
                hint = (
                    " It looks like pgmpy's (card, parent configurations) layout: "
                    "pass table.T.reshape(*parent_cards, card)."
                )
            raise ModelSpecError(
                f"the CPT of {node!r} has shape {tuple(table.shape)} but parents {parents} and {len(states)} states "
                f"{states} need shape (*batch, *parent_cards, card) = (..., {', '.join(map(str, shown))}).{hint}"
            )
        batches = {tuple(c.table.shape[: c.table.dim() - len(c.parents) - 1]) for n, c in self._cpds.items() if n != node}
        try:
            torch.broadcast_shapes(table.shape[: table.dim() - ndim], *batches)
        except RuntimeError:
            raise ShapeError(
                f"the CPT of {node!r} has batch shape {tuple(table.shape[: table.dim() - ndim])}, which does not "
                f"broadcast with the batch shapes {sorted(batches)} of the other CPTs."
            ) from None
        for child, c in self._cpds.items():
            if node in c.parents and child != node:
                axis = c.table.dim() - len(c.parents) - 1 + c.parents.index(node)
                if c.table.shape[axis] != len(states):
                    raise ModelSpecError(
                        f"{node!r} gets {len(states)} states but the CPT of its child {child!r} has "
                        f"{c.table.shape[axis]} along the axis of {node!r}; make the cardinalities agree."
                    )
        self._check_values(node, parents, states, table)
        return table / table.sum(-1, keepdim=True)

    def _check_values(self, node: Hashable, parents: tuple, states: tuple, table: torch.Tensor) -> None:
        batch_dims = table.dim() - len(parents) - 1
        if bool(torch.isnan(table).any()) or bool((table < 0).any()) or bool(torch.isinf(table).any()):
            bad = torch.isnan(table) | (table < 0) | torch.isinf(table)
            where = [self._describe(parents, states, batch_dims, tuple(i)) for i in bad.nonzero()[:_SHOWN].tolist()]
            values = table[bad][:_SHOWN].tolist()
            raise ModelSpecError(
                f"the CPT of {node!r} has {int(bad.sum())} negative, infinite or NaN entries, e.g. "
                + "; ".join(f"{w} = {v}" for w, v in zip(where, values))
                + ". Probabilities must be finite and >= 0."
            )
        sums = table.sum(-1)
        off = (sums - 1).abs() > SUM_TOLERANCE
        if bool(off.any()):
            rows = off.nonzero()[:_SHOWN].tolist()
            listed = "; ".join(
                f"{self._describe(parents, (), batch_dims, tuple(i)) or 'the only row'} sums to {sums[tuple(i)].item():.10g}"
                for i in rows
            )
            raise ModelSpecError(
                f"the CPT of {node!r}: rows over its states {states} must sum to 1 (tolerance {SUM_TOLERANCE:g}); "
                f"{int(off.sum())} parent configuration(s) do not: {listed}. "
                "Normalise with table / table.sum(-1, keepdims=True)."
            )

    def _describe(self, parents: tuple, states: tuple, batch_dims: int, index: tuple[int, ...]) -> str:
        parts = [f"batch index {list(index[:batch_dims])}"] if batch_dims else []
        for parent, code in zip(parents, index[batch_dims:]):
            known = parent in self._cpds
            parts.append(f"{parent}={self._cpds[parent].states[code]!r}" if known else f"{parent}=#{code}")
        if states:
            parts.append(f"state {states[index[-1]]!r}")
        return ", ".join(parts)


def do(network: DiscreteBayesianNetwork, interventions: Mapping[Hashable, Hashable]) -> DiscreteBayesianNetwork:
    """Graph surgery ``do(node = state, ...)``; see :meth:`DiscreteBayesianNetwork.do`."""
    return network.do(interventions)
