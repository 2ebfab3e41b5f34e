"""Linear-Gaussian Bayesian networks: a DAG of named continuous variables.

Each node is ``X = intercept + sum_j weight_j * parent_j + N(0, variance)``.
:class:`LinearGaussianBayesianNetwork` holds the structure (a networkx
``DiGraph``) and one validated :class:`GaussianCPD` per node; its
:meth:`~LinearGaussianBayesianNetwork.tensors` feed the pure algorithms of
:mod:`probmodels.bn.gaussian_ops`. Queries go through
:class:`probmodels.bn.gaussian_inference.GaussianInference`, learning through
:mod:`probmodels.bn.gaussian_learn`, conversion from and to pgmpy through
:mod:`probmodels.bn.gaussian_convert`. The structure logic it shares with the
discrete network lives in :mod:`probmodels.bn.dag`.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from ..exceptions import ModelSpecError, ShapeError
from . import gaussian_ops as ops
from .dag import _BayesianNetworkStructure

__all__ = ["GaussianCPD", "LinearGaussianBayesianNetwork", "finite_number"]


class GaussianCPD(NamedTuple):
    """Linear-Gaussian conditional distribution of one node."""

    parents: tuple[Hashable, ...]
    """Parents, in the order of ``weights``' last axis."""
    intercept: torch.Tensor
    """``(*batch)``."""
    weights: torch.Tensor
    """``(*batch, n_parents)``."""
    variance: torch.Tensor
    """``(*batch)`` noise variance ``sigma^2`` (0 only for a node fixed by ``do``)."""


class LinearGaussianBayesianNetwork(_BayesianNetworkStructure):
    """A Bayesian network of linear-Gaussian conditional distributions.

    Parameters
    ----------
    edges : iterable of (parent, child) pairs, optional
        Directed edges. Edges implied by the CPDs' parents are added too.
    cpds : mapping, optional
        ``{node: (parents, intercept, weights, variance)}``: ``parents`` a
        sequence of nodes, ``weights`` one per parent in that order, ``variance``
        the noise variance ``sigma^2 > 0``. Each parameter may carry leading batch
        dims (e.g. posterior draws) shared by all CPDs: ``intercept`` and
        ``variance`` ``(*batch)``, ``weights`` ``(*batch, n_parents)``.
    nodes : iterable, optional
        Extra nodes (e.g. isolated ones).
    dtype : torch.dtype, default torch.float64
        Floating dtype of the parameters.
    device : str or torch.device, optional
        Device of the parameters (default CPU).

    Raises
    ------
    ModelSpecError
        For a cycle, a self-loop, an unknown parent, a wrong number of weights,
        non-finite parameters or a variance that is not > 0.

    Examples
    --------
    >>> net = LinearGaussianBayesianNetwork(cpds={
    ...     "x": ((), 1.0, (), 4.0),
    ...     "y": (("x",), -5.0, (0.5,), 4.0),
    ... })
    >>> net.joint().mean
    tensor([ 1.0000, -4.5000], dtype=torch.float64)
    """

    _OPS = ops
    _CPD_ARGUMENTS = "parents, intercept, weights, variance"
    _LEARN_MODULE = "probmodels.bn.gaussian_learn"
    _UNLISTED_PARENTS_FIX = "add them to the CPD's parents (with weights) or build the network without them."
    _cpds: dict[Hashable, GaussianCPD]
    _tensors: ops.GaussianNetworkTensors | None

    def __init__(
        self,
        edges: Iterable[tuple[Hashable, Hashable]] = (),
        cpds: Mapping[Hashable, tuple[Sequence[Hashable], Any, Any, Any]] | None = None,
        *,
        nodes: Iterable[Hashable] = (),
        dtype: torch.dtype = torch.float64,
        device: str | torch.device | None = None,
    ) -> None:
        super().__init__(edges, cpds, nodes=nodes, dtype=dtype, device=device)

    # ------------------------------------------------------------------ CPDs

    def add_cpd(self, node: Hashable, parents: Sequence[Hashable], intercept: Any, weights: Any, variance: Any) -> None:
        """Set (or replace) the linear-Gaussian CPD of ``node``.

        Parameters
        ----------
        node : hashable
            The node; added to the graph if new.
        parents : sequence
            Its parents, existing nodes; the edges ``parent -> node`` are added.
            They must include every parent that the graph already has.
        intercept : float or array-like
            ``(*batch)``.
        weights : array-like
            ``(*batch, len(parents))``: one weight per parent, in the parents' order.
        variance : float or array-like
            ``(*batch)`` noise variance ``sigma^2``, finite and > 0.

        Raises
        ------
        ModelSpecError
            Unknown or duplicate parents, a cycle, a wrong number of weights,
            non-finite values, a variance that is not > 0.
        ShapeError
            Batch dims that do not broadcast with those of the other CPDs.
        """
        parents = tuple(parents)
        self._check_parents(node, parents)
        self._check_graph_parents(node, parents)
        self._store_cpd(node, self._as_cpd(node, parents, intercept, weights, variance))

    def tensors(self) -> ops.GaussianNetworkTensors:
        """The network as :class:`~probmodels.bn.gaussian_ops.GaussianNetworkTensors`, in the order of :attr:`nodes`."""
        if self._tensors is None:
            self.check_complete()
            nodes = self.nodes
            index = {node: i for i, node in enumerate(nodes)}
            cpds = [self._cpds[node] for node in nodes]
            batch = torch.broadcast_shapes(*(c.variance.shape for c in cpds))
            n = len(nodes)
            intercept = torch.stack([c.intercept.expand(batch) for c in cpds], -1)
            variance = torch.stack([c.variance.expand(batch) for c in cpds], -1)
            weights = torch.zeros(batch + (n, n), dtype=self._dtype, device=self._device)
            for i, c in enumerate(cpds):
                for k, parent in enumerate(c.parents):
                    weights[..., i, index[parent]] = c.weights[..., k]
            self._tensors = ops.GaussianNetworkTensors(intercept, weights, variance)
        return self._tensors

    def joint(self) -> ops.JointGaussian:
        """The joint normal distribution (mean, covariance, Cholesky factor) over :attr:`nodes`."""
        return ops.joint_gaussian(self.tensors())

    def do(self, interventions: Mapping[Hashable, float]) -> LinearGaussianBayesianNetwork:
        """The mutilated network of ``do(node = value, ...)`` (graph surgery).

        Each intervened node loses its incoming edges and becomes the constant
        ``value`` (variance 0); its children keep their CPDs.

        Parameters
        ----------
        interventions : mapping
            ``{node: value}``.

        Returns
        -------
        LinearGaussianBayesianNetwork
            A new network; this one is unchanged.
        """
        self.check_complete()
        values = {self._check_node(n): finite_number(v, f"do({n!r} = ...)") for n, v in interventions.items()}
        copy = self.to()
        batch = self.batch_shape
        for node, value in values.items():
            copy._graph.remove_edges_from(list(copy._graph.in_edges(node)))
            constant = torch.full(batch, value, dtype=self._dtype, device=self._device)
            empty = torch.zeros(batch + (0,), dtype=self._dtype, device=self._device)
            copy._cpds[node] = GaussianCPD((), constant, empty, torch.zeros_like(constant))
        return copy

    # ------------------------------------------------------------------ helpers

    def _add_cpd_spec(self, node: Hashable, spec: Any) -> None:
        if not isinstance(spec, (tuple, list)) or len(spec) != 4:
            raise TypeError(f"cpds[{node!r}] must be a tuple (parents, intercept, weights, variance), got {spec!r}.")
        self.add_cpd(node, *spec)

    def _tensor(self, node: Hashable, name: str, value: Any) -> torch.Tensor:
        if isinstance(value, torch.Tensor):
            return value.detach().to(device=self._device, dtype=self._dtype)
        array = np.asarray(value)
        if array.dtype == object or not np.issubdtype(array.dtype, np.number):
            raise TypeError(f"the {name} of {node!r} must be numeric array-like, got {value!r}.")
        return torch.as_tensor(array, dtype=self._dtype, device=self._device)

    def _as_cpd(self, node: Hashable, parents: tuple, intercept: Any, weights: Any, variance: Any) -> GaussianCPD:
        intercept = self._tensor(node, "intercept", intercept)
        variance = self._tensor(node, "variance", variance)
        weights = self._tensor(node, "weights", weights)
        if weights.dim() == 0 or weights.shape[-1] != len(parents):
            raise ModelSpecError(
                f"the CPD of {node!r} has weights of shape {tuple(weights.shape)} but {len(parents)} parent(s) "
                f"{parents}; pass one weight per parent, in the parents' order (shape (*batch, {len(parents)}))."
            )
        others = [c.variance.shape for n, c in self._cpds.items() if n != node]
        try:
            batch = torch.broadcast_shapes(intercept.shape, weights.shape[:-1], variance.shape)
            torch.broadcast_shapes(batch, *others)
        except RuntimeError:
            raise ShapeError(
                f"the CPD of {node!r} has batch shapes intercept {tuple(intercept.shape)}, weights "
                f"{tuple(weights.shape[:-1])}, variance {tuple(variance.shape)}, which do not broadcast with each "
                f"other or with the batch shapes {sorted(set(map(tuple, others)))} of the other CPDs."
            ) from None
        for name, value in (("intercept", intercept), ("weights", weights), ("variance", variance)):
            if not bool(torch.isfinite(value).all()):
                raise ModelSpecError(
                    f"the {name} of {node!r} has non-finite entries ({value[~torch.isfinite(value)][:5].tolist()}); "
                    "parameters must be finite numbers."
                )
        if not bool((variance > 0).all()):
            bad = variance[variance <= 0][:5].tolist()
            raise ModelSpecError(
                f"the variance of {node!r} must be > 0, got {bad}; pass sigma^2 (not sigma) as a positive number. "
                "To fix a node at a value, use network.do({node: value})."
            )
        weights = weights.expand(batch + (len(parents),))
        return GaussianCPD(parents, intercept.expand(batch), weights, variance.expand(batch))


def finite_number(value: Any, name: str, error: type[Exception] = ModelSpecError) -> float:
    """``value`` as a float; ``TypeError`` for a non-number (or bool), ``error`` for NaN or inf."""
    try:
        number = float(value) if not isinstance(value, (bool, str, bytes)) else None
    except (TypeError, ValueError, RuntimeError):
        number = None
    if number is None:
        raise TypeError(f"{name} must be a real number, got {value!r}.")
    if not math.isfinite(number):
        raise error(f"{name} must be finite, got {number}; pass a finite value or leave it out.")
    return number
