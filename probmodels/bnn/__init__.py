"""Bayesian neural networks.

:class:`BayesianMLP` fits a multilayer perceptron with Gaussian (or
hierarchical) weight priors for regression or classification by MAP, deep
ensembles, mean-field (optionally locally reparameterised) or low-rank SVI,
Laplace (Hessian, or GGN with a linearised predictive), or NUTS, all through the
inference core; :class:`MLPModel` is its Pyro program. :func:`bayesian` turns
any ``torch.nn.Module`` (all layers or chosen ones, e.g. the last) into such a
program, and :class:`BayesianNetwork` gives it the same estimator surface. Predictions average
over posterior draws in memory-bounded chunks (:func:`predictive`) and split
uncertainty into epistemic and aleatoric parts; :mod:`probmodels.bnn.metrics`
scores calibration.
"""

from .convert import BayesianModule, bayesian
from .data import Affine
from .annealing import KLAnnealing, annealed_svi
from .ensemble import fit_ensemble, validation_split
from .estimator import METHODS, BayesianMLP, BayesianNetwork
from .metrics import (
    ReliabilityCurve,
    accuracy,
    expected_calibration_error,
    interval_coverage,
    regression_calibration_error,
    reliability_curve,
    rmse,
)
from .laplace import LinearizedNetwork, fit_laplace_ggn
from .local_reparam import LocalReparameterizationELBO
from .logprob import half_normal_log_prob, normal_log_prob, observation_log_prob
from .model import ACTIVATIONS, MLPModel
from .nuts import fit_network_nuts, network_log_density
from .plot import plot_reliability
from .predict import Predictive, mixture_quantiles, predictive

__all__ = [
    "BayesianMLP",
    "BayesianNetwork",
    "bayesian",
    "BayesianModule",
    "MLPModel",
    "plot_reliability",
    "METHODS",
    "ACTIVATIONS",
    "fit_ensemble",
    "validation_split",
    "KLAnnealing",
    "annealed_svi",
    "fit_network_nuts",
    "fit_laplace_ggn",
    "LinearizedNetwork",
    "LocalReparameterizationELBO",
    "network_log_density",
    "normal_log_prob",
    "half_normal_log_prob",
    "observation_log_prob",
    "predictive",
    "Predictive",
    "mixture_quantiles",
    "Affine",
    "ReliabilityCurve",
    "reliability_curve",
    "expected_calibration_error",
    "regression_calibration_error",
    "interval_coverage",
    "rmse",
    "accuracy",
]
