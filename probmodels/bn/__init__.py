"""Bayesian networks, discrete and linear-Gaussian.

:class:`DiscreteBayesianNetwork` (structure, named states, validated CPTs),
:class:`Inference` (exact queries by name, batched queries, MAP/MPE,
interventions, sampling, likelihood weighting and Gibbs sampling),
:func:`draw_network`, :mod:`probmodels.bn.learn`
(maximum likelihood with EM for missing cells, Dirichlet posteriors of the
CPTs with posterior draws, the BDeu/K2 marginal likelihood),
:mod:`probmodels.bn.model` (the CPT posterior through the inference core for
missing cells and hidden nodes: :class:`DirichletCPTModel`, a Pyro program,
and :func:`cpt_posterior`, NUTS or SVI, returning a :class:`CPTPosterior`
with CPT draws and queries with credible intervals),
:mod:`probmodels.bn.convert` (pgmpy), BIF and XMLBIF files
(:func:`read_network`, :func:`write_network`), structure learning (:func:`hill_climb`
with BIC/BDeu/K2 scores and tabu moves, the PC algorithm :func:`pc`,
:func:`structural_hamming_distance`) and :mod:`probmodels.bn.ops` (the exact
algorithms as pure tensor functions); linear-Gaussian networks:
:class:`LinearGaussianBayesianNetwork`, :class:`GaussianInference` (exact
conditionals, evidence densities, interventions, sampling) and
:mod:`probmodels.bn.gaussian_learn` (least squares and the conjugate
Normal-Inverse-Gamma posterior with its exact evidence).
"""

from . import gaussian_ops
from .bif import read_bif, write_bif
from .convert import from_pgmpy, to_pgmpy
from .cpdag import apply_meek_rules, dag_to_cpdag, pdag_to_dag, structural_hamming_distance
from .gibbs import gibbs_sample
from .gaussian import GaussianCPD, LinearGaussianBayesianNetwork
from .gaussian_convert import gaussian_from_pgmpy, gaussian_to_pgmpy
from .gaussian_inference import GaussianInference, GaussianQuery
from .gaussian_learn import (
    NormalInverseGammaPosterior,
    UncertainGaussianQuery,
    gaussian_log_marginal_likelihood,
    gaussian_maximum_likelihood,
    gaussian_posterior,
)
from .inference import Inference, QueryResult
from .learn import DirichletPosterior, UncertainQuery, dirichlet_posterior, log_marginal_likelihood, maximum_likelihood
from .model import CPTPosterior, DirichletCPTModel, cpt_posterior
from .network import CPD, DiscreteBayesianNetwork, do
from .pc import CITestResult, ci_test, pc
from .plot import draw_network
from .scores import DecomposableScore, family_score
from .structure import fit_parameters, hill_climb
from .xmlbif import read_network, read_xmlbif, write_network, write_xmlbif

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
    "DirichletCPTModel",
    "cpt_posterior",
    "CPTPosterior",
    "from_pgmpy",
    "to_pgmpy",
    "LinearGaussianBayesianNetwork",
    "GaussianCPD",
    "GaussianInference",
    "GaussianQuery",
    "gaussian_maximum_likelihood",
    "gaussian_posterior",
    "gaussian_log_marginal_likelihood",
    "NormalInverseGammaPosterior",
    "UncertainGaussianQuery",
    "gaussian_from_pgmpy",
    "gaussian_to_pgmpy",
    "gaussian_ops",
    "read_bif",
    "write_bif",
    "read_xmlbif",
    "write_xmlbif",
    "read_network",
    "write_network",
    "hill_climb",
    "fit_parameters",
    "DecomposableScore",
    "family_score",
    "pc",
    "ci_test",
    "CITestResult",
    "structural_hamming_distance",
    "dag_to_cpdag",
    "pdag_to_dag",
    "apply_meek_rules",
    "gibbs_sample",
    "draw_network",
]
