"""pgmpy plumbing shared by :mod:`~probmodels.bn.convert` and :mod:`~probmodels.bn.gaussian_convert`.

pgmpy is an optional dependency, imported lazily by :func:`import_pgmpy`.
:func:`check_every_cpd` and :func:`pgmpy_skeleton` hold the checks that both
directions of both conversions share.
"""

from __future__ import annotations

import importlib
from collections.abc import Hashable, Iterable
from typing import Any

from ..exceptions import ModelSpecError, ShapeError
from .dag import _BayesianNetworkStructure

__all__ = ["import_pgmpy", "check_every_cpd", "pgmpy_skeleton"]


def import_pgmpy(factors: str) -> Any:
    """The ``pgmpy`` package with ``pgmpy.models`` and ``pgmpy.factors.<factors>`` imported.

    Parameters
    ----------
    factors : {"discrete", "continuous"}
        The subpackage of ``pgmpy.factors`` that holds the CPD class.

    Raises
    ------
    ImportError
        When pgmpy is not installed, with the command that installs it.
    """
    try:
        importlib.import_module(f"pgmpy.factors.{factors}")
        importlib.import_module("pgmpy.models")
    except ImportError as error:  # pragma: no cover - pgmpy is installed in the test environment
        raise ImportError("conversion to and from pgmpy needs pgmpy: pip install pgmpy") from error
    return importlib.import_module("pgmpy")


def check_every_cpd(model: Any, cpds: Iterable[Hashable]) -> None:
    """Raise :class:`ModelSpecError` unless ``cpds`` (node names) covers every node of the pgmpy ``model``."""
    missing = sorted(set(model.nodes()) - set(cpds), key=str)
    if missing:
        raise ModelSpecError(f"the pgmpy model has no CPD for {missing}; add them (model.add_cpds) before converting.")


def pgmpy_skeleton(network: _BayesianNetworkStructure, model_class: type, remedy: str) -> Any:
    """An empty ``model_class()`` with the nodes and edges of ``network`` (complete and unbatched).

    Parameters
    ----------
    network : DiscreteBayesianNetwork or LinearGaussianBayesianNetwork
        The network to convert.
    model_class : type
        The pgmpy network class.
    remedy : str
        Ends the error message for a batched network (e.g. ``". Index a draw first."``).

    Raises
    ------
    ModelSpecError
        When a node has no CPD.
    ShapeError
        For a batched network (pgmpy holds one network).
    """
    network.check_complete()
    if network.batch_shape:
        raise ShapeError(f"pgmpy holds one network; this one has batch shape {tuple(network.batch_shape)}{remedy}")
    model = model_class()
    model.add_nodes_from(network.nodes)
    model.add_edges_from(network.edges)
    return model
