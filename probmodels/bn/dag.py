"""The directed acyclic structure shared by the Bayesian network classes.

:class:`_BayesianNetworkStructure` holds a networkx ``DiGraph`` of named nodes
and one CPD per node, and keeps them consistent: no self-loops or cycles, no
edge into a node whose CPD does not list its source, unknown names answered
with the close matches. :class:`~probmodels.bn.DiscreteBayesianNetwork` and
:class:`~probmodels.bn.gaussian.LinearGaussianBayesianNetwork` inherit it and
add their own CPD type, validation and tensors.
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Hashable, Iterable, Mapping
from types import ModuleType
from typing import Any, TypeVar

import networkx as nx
import torch

from ..exceptions import ModelSpecError

__all__ = ["topological_order"]

_Network = TypeVar("_Network", bound="_BayesianNetworkStructure")


def topological_order(graph: nx.DiGraph) -> tuple[Hashable, ...]:
    """Topological order of ``graph`` that keeps the insertion order of the nodes where the edges allow."""
    position = {node: i for i, node in enumerate(graph)}
    return tuple(nx.lexicographical_topological_sort(graph, key=position.__getitem__))


class _BayesianNetworkStructure:
    """A DAG of named nodes with at most one CPD per node; the base of the network classes.

    Subclasses set the class attributes below, implement :meth:`tensors` and
    ``_add_cpd_spec`` (one entry of the constructor's ``cpds``), and store each
    validated CPD with ``_check_parents``, ``_check_graph_parents`` and
    ``_store_cpd``. A CPD is a named tuple whose first field is ``parents``;
    :meth:`to` moves its tensor fields.

    Parameters
    ----------
    edges : iterable of (parent, child) pairs
        Directed edges.
    cpds : mapping or None
        ``{node: spec}``, each ``spec`` handed to ``_add_cpd_spec`` after the edges.
    nodes : iterable
        Extra nodes (e.g. isolated ones).
    dtype : torch.dtype
        Floating dtype of the CPD tensors.
    device : str, torch.device or None
        Device of the CPD tensors (None: CPU).
    """

    _OPS: ModuleType
    """The module of tensor algorithms; its ``batch_shape`` reads :meth:`tensors`."""
    _CPD_ARGUMENTS: str
    """The arguments of ``add_cpd`` after ``node``, as named in error messages."""
    _LEARN_MODULE: str
    """The module that learns the CPDs, as named in error messages."""
    _UNLISTED_PARENTS_FIX: str
    """How to fix graph edges into a node that its CPD does not list, as told in error messages."""

    def __init__(
        self,
        edges: Iterable[tuple[Hashable, Hashable]],
        cpds: Mapping[Hashable, Any] | None,
        *,
        nodes: Iterable[Hashable],
        dtype: torch.dtype,
        device: str | torch.device | None,
    ) -> None:
        if not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating dtype such as torch.float64, got {dtype}.")
        self._dtype = dtype
        self._device = torch.device(device) if device is not None else torch.device("cpu")
        self._graph = nx.DiGraph()
        self._cpds: dict[Hashable, Any] = {}
        self._tensors: Any = None
        cpds = dict(cpds or {})
        self._graph.add_nodes_from(itertools.chain(nodes, cpds))
        for parent, child in edges:
            self.add_edge(parent, child)
        for node, spec in cpds.items():
            self._add_cpd_spec(node, spec)

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
        """Floating dtype of the CPD tensors (tables or parameters)."""
        return self._dtype

    @property
    def device(self) -> torch.device:
        """Device of the CPD tensors (tables or parameters)."""
        return self._device

    @property
    def batch_shape(self) -> torch.Size:
        """Leading batch shape shared by the CPD tensors (empty for a single network)."""
        return self._OPS.batch_shape(self.tensors())

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
        """Parents of ``node`` in the order of its CPD (CPT axes or weights; graph order before a CPD is set)."""
        node = self._check_node(node)
        return self._cpds[node].parents if node in self._cpds else tuple(self._graph.predecessors(node))

    def has_cpd(self, node: Hashable) -> bool:
        """Whether ``node`` has a CPD."""
        return self._check_node(node) in self._cpds

    def cpd(self, node: Hashable) -> Any:
        """The CPD of ``node``."""
        node = self._check_node(node)
        if node not in self._cpds:
            raise ModelSpecError(
                f"node {node!r} has no CPD yet; add one with add_cpd({node!r}, {self._CPD_ARGUMENTS})."
            )
        return self._cpds[node]

    def index(self, node: Hashable) -> int:
        """Position of ``node`` in :attr:`nodes` (its variable index in :meth:`tensors`)."""
        return self.nodes.index(self._check_node(node))

    def check_complete(self) -> None:
        """Raise :class:`ModelSpecError` unless every node has a CPD (the other checks run in ``add_cpd``)."""
        missing = self._missing()
        if missing:
            raise ModelSpecError(
                f"nodes {missing} have no CPD; add one per node with add_cpd(node, {self._CPD_ARGUMENTS}) "
                f"or learn them with {self._LEARN_MODULE}."
            )

    def tensors(self) -> Any:
        """The network as the tensors of :attr:`_OPS`, variables in the order of :attr:`nodes`."""
        raise NotImplementedError

    def to(self: _Network, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> _Network:
        """A copy with the CPD tensors (tables or parameters) on ``device`` and/or in ``dtype``."""
        device = torch.device(device) if device is not None else self._device
        dtype = dtype or self._dtype
        copy = type(self)(self.edges, nodes=self._graph.nodes, dtype=dtype, device=device)
        move = lambda field: field.to(device=device, dtype=dtype) if isinstance(field, torch.Tensor) else field  # noqa: E731
        copy._cpds = {node: type(cpd)(*map(move, cpd)) for node, cpd in self._cpds.items()}
        return copy

    def __repr__(self) -> str:
        complete = bool(self._graph) and not self._missing()
        batch = f", batch_shape={tuple(self.batch_shape)}" if complete and self.batch_shape else ""
        return (
            f"{type(self).__name__}({self._graph.number_of_nodes()} nodes, {self._graph.number_of_edges()} edges, "
            f"{str(self._dtype).replace('torch.', '')}, {self._device}{batch})"
        )

    # ------------------------------------------------------------------ helpers for add_cpd

    def _add_cpd_spec(self, node: Hashable, spec: Any) -> None:
        """Check the form of one entry ``cpds[node]`` of the constructor and add it."""
        raise NotImplementedError

    def _check_parents(self, node: Hashable, parents: tuple[Hashable, ...]) -> None:
        """Refuse parents that are not nodes, and duplicate parents."""
        for parent in parents:
            if parent not in self._graph:
                raise ModelSpecError(f"parent {parent!r} of {node!r} is not a node of the network{self._suggest(parent)}.")
        if len(set(parents)) != len(parents):
            raise ModelSpecError(f"the parents {parents} of {node!r} contain duplicates; list each parent once.")

    def _check_graph_parents(self, node: Hashable, parents: tuple[Hashable, ...]) -> None:
        """Refuse graph edges into ``node`` from outside ``parents``, and edges ``parent -> node`` closing a cycle."""
        extra = set(self._graph.predecessors(node)) - set(parents) if node in self._graph else set()
        if extra:
            raise ModelSpecError(
                f"the graph has edges into {node!r} from {sorted(map(repr, extra))} that its CPD does not list as "
                f"parents {parents}; {self._UNLISTED_PARENTS_FIX}"
            )
        for parent in parents:
            self._check_acyclic(parent, node)

    def _store_cpd(self, node: Hashable, cpd: Any) -> None:
        """Set (or replace) the validated ``cpd`` of ``node`` and add the edges from its parents."""
        self._cpds.pop(node, None)
        self._graph.add_node(node)
        self._graph.add_edges_from((parent, node) for parent in cpd.parents)
        self._cpds[node] = cpd
        self._tensors = None

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
