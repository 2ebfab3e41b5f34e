"""Discrete Bayesian networks: a DAG of named variables with named states and CPTs.

:class:`DiscreteBayesianNetwork` holds the structure (a networkx ``DiGraph``)
and one conditional probability table per node, validated when it is added.
The exact algorithms live in :mod:`probmodels.bn.ops`; the network hands them
its :meth:`~DiscreteBayesianNetwork.tensors`. Queries go through
:class:`probmodels.bn.Inference`, learning through :mod:`probmodels.bn.learn`,
conversion from and to pgmpy through :mod:`probmodels.bn.convert`.
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import networkx as nx
import numpy as np
import torch

from ..exceptions import DataError, ModelSpecError, ShapeError
from . import ops

__all__ = ["CPD", "DiscreteBayesianNetwork", "do", "SUM_TOLERANCE"]

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


class DiscreteBayesianNetwork:
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

    def __init__(
        self,
        edges: Iterable[tuple[Hashable, Hashable]] = (),
        cpds: Mapping[Hashable, tuple[Sequence[Hashable], Sequence[Hashable], Any]] | None = None,
        *,
        nodes: Iterable[Hashable] = (),
        dtype: torch.dtype = torch.float64,
        device: str | torch.device | None = None,
    ) -> None:
        if not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating dtype such as torch.float64, got {dtype}.")
        self._dtype = dtype
        self._device = torch.device(device) if device is not None else torch.device("cpu")
        self._graph = nx.DiGraph()
        self._cpds: dict[Hashable, CPD] = {}
        self._tensors: ops.NetworkTensors | None = None
        cpds = dict(cpds or {})
        self._graph.add_nodes_from(itertools.chain(nodes, cpds))
        for parent, child in edges:
            self.add_edge(parent, child)
        for node, spec in cpds.items():
            if not isinstance(spec, (tuple, list)) or len(spec) != 3:
                raise TypeError(f"cpds[{node!r}] must be a tuple (parents, states, table), got {type(spec).__name__}.")
            self.add_cpd(node, *spec)

    # ------------------------------------------------------------------ structure

    @property
    def graph(self) -> nx.DiGraph:
        """A copy of the DAG."""
        return self._graph.copy()

    @property
    def nodes(self) -> tuple[Hashable, ...]:
        """Nodes in the topological order used by :meth:`tensors` (ties keep insertion order)."""
        return topological_order(self._graph)

    @property
    def edges(self) -> tuple[tuple[Hashable, Hashable], ...]:
        """Directed edges ``(parent, child)``."""
        return tuple(self._graph.edges)

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the tables."""
        return self._dtype

    @property
    def device(self) -> torch.device:
        """Device of the tables."""
        return self._device

    @property
    def batch_shape(self) -> torch.Size:
        """Leading batch shape shared by the tables (empty for a single network)."""
        return ops.batch_shape(self.tensors())

    def add_edge(self, parent: Hashable, child: Hashable) -> None:
        """Add the edge ``parent -> child``, refusing self-loops, cycles and edges into nodes that have a CPD."""
        if parent == child:
            raise ModelSpecError(f"self-loop {parent!r} -> {child!r}: a Bayesian network is acyclic; remove this edge.")
        if self._graph.has_edge(parent, child):
            return
        if child in self._cpds:
            raise ModelSpecError(
                f"node {child!r} already has a CPD with parents {self._cpds[child].parents}; adding the edge "
                f"{parent!r} -> {child!r} would invalidate it. Add edges first, then CPDs (add_cpd replaces a CPD)."
            )
        self._check_acyclic(parent, child)
        self._graph.add_edge(parent, child)
        self._tensors = None

    def parents(self, node: Hashable) -> tuple[Hashable, ...]:
        """Parents of ``node`` in the order of its CPT axes (graph order before a CPD is set)."""
        node = self._check_node(node)
        return self._cpds[node].parents if node in self._cpds else tuple(self._graph.predecessors(node))

    def states(self, node: Hashable) -> tuple[Hashable, ...]:
        """State names of ``node``."""
        return self.cpd(node).states

    def cardinality(self, node: Hashable) -> int:
        """Number of states of ``node``."""
        return len(self.states(node))

    def has_cpd(self, node: Hashable) -> bool:
        """Whether ``node`` has a CPD."""
        return self._check_node(node) in self._cpds

    def cpd(self, node: Hashable) -> CPD:
        """The CPD of ``node``."""
        node = self._check_node(node)
        if node not in self._cpds:
            raise ModelSpecError(f"node {node!r} has no CPD yet; add one with add_cpd({node!r}, parents, states, table).")
        return self._cpds[node]

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
        for parent in parents:
            if parent not in self._graph:
                raise ModelSpecError(f"parent {parent!r} of {node!r} is not a node of the network{self._suggest(parent)}.")
        if len(set(parents)) != len(parents):
            raise ModelSpecError(f"the parents {parents} of {node!r} contain duplicates; list each parent once.")
        if len(set(states)) != len(states) or not states:
            raise ModelSpecError(f"the states {states} of {node!r} must be a non-empty sequence of distinct names.")
        extra = set(self._graph.predecessors(node)) - set(parents) if node in self._graph else set()
        if extra:
            raise ModelSpecError(
                f"the graph has edges into {node!r} from {sorted(map(repr, extra))} that its CPD does not list as "
                f"parents {parents}; add them to the CPD's parents (and table axes) or build the network without "
                "those edges."
            )
        for parent in parents:
            self._check_acyclic(parent, node)
        table = self._as_table(node, parents, states, table)
        self._cpds.pop(node, None)
        self._graph.add_node(node)
        self._graph.add_edges_from((parent, node) for parent in parents)
        self._cpds[node] = CPD(parents, states, table)
        self._tensors = None

    def check_complete(self) -> None:
        """Raise :class:`ModelSpecError` unless every node has a CPD (the other checks run in :meth:`add_cpd`)."""
        missing = [node for node in self._graph if node not in self._cpds]
        if missing:
            raise ModelSpecError(
                f"nodes {missing} have no CPD; add one per node with add_cpd(node, parents, states, table) "
                "or learn them with probmodels.bn.learn."
            )

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

    def index(self, node: Hashable) -> int:
        """Position of ``node`` in :attr:`nodes` (its variable index in :meth:`tensors`)."""
        return self.nodes.index(self._check_node(node))

    def state_code(self, node: Hashable, state: Hashable) -> int:
        """Index of ``state`` among the states of ``node``; raises :class:`DataError` for an unknown state."""
        states = self.states(node)
        if state not in states:
            raise DataError(f"{state!r} is not a state of {node!r}; its states are {states}.")
        return states.index(state)

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> DiscreteBayesianNetwork:
        """A copy with the tables on ``device`` and/or in ``dtype``."""
        device = torch.device(device) if device is not None else self._device
        dtype = dtype or self._dtype
        copy = DiscreteBayesianNetwork(self.edges, nodes=self._graph.nodes, dtype=dtype, device=device)
        copy._cpds = {node: c._replace(table=c.table.to(device=device, dtype=dtype)) for node, c in self._cpds.items()}
        return copy

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

    def __repr__(self) -> str:
        batch = f", batch_shape={tuple(self.batch_shape)}" if not self._missing() and self.batch_shape else ""
        return (
            f"DiscreteBayesianNetwork({self._graph.number_of_nodes()} nodes, {self._graph.number_of_edges()} edges, "
            f"{str(self._dtype).replace('torch.', '')}, {self._device}{batch})"
        )

    # ------------------------------------------------------------------ helpers

    def _missing(self) -> list[Hashable]:
        return [node for node in self._graph if node not in self._cpds]

    def _check_acyclic(self, parent: Hashable, child: Hashable) -> None:
        if parent in self._graph and child in self._graph and nx.has_path(self._graph, child, parent):
            cycle = nx.shortest_path(self._graph, child, parent) + [child]
            raise ModelSpecError(
                f"edge {parent!r} -> {child!r} would create the cycle {' -> '.join(map(repr, cycle))}; "
                "a Bayesian network must be acyclic: remove one of these edges."
            )

    def _check_node(self, node: Hashable) -> Hashable:
        if node not in self._graph:
            raise ModelSpecError(f"unknown node {node!r}{self._suggest(node)}.")
        return node

    def _suggest(self, node: Hashable) -> str:
        names = [str(n) for n in self._graph]
        close = difflib.get_close_matches(str(node), names, n=3)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        shown = names[:20] + (["..."] if len(names) > 20 else [])
        return f" (nodes: {', '.join(shown)}){hint}"

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
        batches = [c.table.shape[: c.table.dim() - len(c.parents) - 1] for n, c in self._cpds.items() if n != node]
        try:
            torch.broadcast_shapes(table.shape[: table.dim() - ndim], *batches)
        except RuntimeError:
            raise ShapeError(
                f"the CPT of {node!r} has batch shape {tuple(table.shape[: table.dim() - ndim])}, which does not "
                f"broadcast with the batch shapes {sorted(set(map(tuple, batches)))} of the other CPTs."
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


def topological_order(graph: nx.DiGraph) -> tuple[Hashable, ...]:
    """Topological order of ``graph`` that keeps the insertion order of the nodes where the edges allow."""
    position = {node: i for i, node in enumerate(graph)}
    return tuple(nx.lexicographical_topological_sort(graph, key=position.__getitem__))


def do(network: DiscreteBayesianNetwork, interventions: Mapping[Hashable, Hashable]) -> DiscreteBayesianNetwork:
    """Graph surgery ``do(node = state, ...)``; see :meth:`DiscreteBayesianNetwork.do`."""
    return network.do(interventions)
