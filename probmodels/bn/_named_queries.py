"""The node-name layer shared by :class:`~probmodels.bn.Inference` and :class:`~probmodels.bn.GaussianInference`.

:class:`_NamedQueries` takes a complete network, keeps its tensors, node order
and batch shape, and translates node names to variable indices, answering an
unknown name with the network's error (which names the close matches).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

from ..exceptions import ModelSpecError
from .dag import _BayesianNetworkStructure

__all__: list[str] = []


class _NamedQueries:
    """Base of the inference classes: the network, its tensors and the name-to-index translation.

    Parameters
    ----------
    network : DiscreteBayesianNetwork or LinearGaussianBayesianNetwork
        A network of the class ``_NETWORK``, with a CPD for every node. Later
        changes to it are not seen.

    Raises
    ------
    TypeError
        When ``network`` is not an instance of ``_NETWORK``.
    ModelSpecError
        When a node has no CPD.
    """

    _NETWORK: type[_BayesianNetworkStructure]
    """The network class that the subclass answers queries on."""
    _DISTINCT_VARIABLES = False
    """Whether query variables must be listed once each."""

    def __init__(self, network: Any) -> None:
        if not isinstance(network, self._NETWORK):
            raise TypeError(f"network must be a {self._NETWORK.__name__}, got {type(network).__name__}.")
        self.network = network
        self._tensors = network.tensors()
        self._nodes = network.nodes
        self._index = {node: i for i, node in enumerate(self._nodes)}
        self._batch = tuple(network.batch_shape)

    def _node(self, name: Hashable) -> Hashable:
        if name not in self._index:
            self.network.index(name)  # raises ModelSpecError naming the close matches
        return name

    def _variables(self, variables: Sequence[Hashable]) -> tuple[int, ...]:
        if isinstance(variables, (str, bytes)) or not isinstance(variables, Sequence):
            raise TypeError(f"variables must be a list of node names, got {variables!r}; wrap a single name in a list.")
        if not variables:
            raise ModelSpecError("variables is empty; name at least one node to query.")
        if self._DISTINCT_VARIABLES and len(set(variables)) != len(variables):
            raise ModelSpecError(f"variables {list(variables)} contain duplicates; list each node once.")
        return tuple(self._index[self._node(n)] for n in variables)
