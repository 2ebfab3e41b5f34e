"""Discrete Bayesian networks.

:class:`DiscreteBayesianNetwork` (structure, named states, validated CPTs),
:class:`Inference` (exact queries by name, batched queries, MAP/MPE,
interventions, sampling), :mod:`probmodels.bn.learn` (maximum likelihood and
Dirichlet posteriors of the CPTs, BDeu/K2 marginal likelihood) and
:mod:`probmodels.bn.ops` (the exact algorithms as pure tensor functions).
"""

from .convert import from_pgmpy, to_pgmpy
from .inference import Inference, QueryResult
from .network import CPD, DiscreteBayesianNetwork, do

__all__ = [
    "DiscreteBayesianNetwork",
    "CPD",
    "Inference",
    "QueryResult",
    "do",
    "from_pgmpy",
    "to_pgmpy",
]
