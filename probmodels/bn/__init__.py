"""Discrete Bayesian networks.

:class:`DiscreteBayesianNetwork` (structure, named states, validated CPTs),
:class:`Inference` (exact queries by name, batched queries, MAP/MPE,
interventions, sampling, likelihood weighting), :mod:`probmodels.bn.learn`
(maximum likelihood with EM for missing cells, Dirichlet posteriors of the
CPTs with posterior draws, the BDeu/K2 marginal likelihood),
:mod:`probmodels.bn.convert` (pgmpy) and :mod:`probmodels.bn.ops` (the exact
algorithms as pure tensor functions).
"""

from .convert import from_pgmpy, to_pgmpy
from .inference import Inference, QueryResult
from .learn import DirichletPosterior, UncertainQuery, dirichlet_posterior, log_marginal_likelihood, maximum_likelihood
from .network import CPD, DiscreteBayesianNetwork, do

__all__ = [
    "DiscreteBayesianNetwork",
    "CPD",
    "Inference",
    "QueryResult",
    "do",
    "maximum_likelihood",
    "dirichlet_posterior",
    "log_marginal_likelihood",
    "DirichletPosterior",
    "UncertainQuery",
    "from_pgmpy",
    "to_pgmpy",
]
