"""Gaussian processes.

:mod:`probmodels.gp.kernels` defines covariance functions as small
specifications evaluated by pure tensor code (batched over hyperparameter
draws); :mod:`probmodels.gp.ops` holds the exact Cholesky algebra.
:class:`GPRegression` fits exact GP regression by type-II maximum
likelihood, MAP or NUTS over the hyperparameters (through the inference
core, with :class:`GPMarginalModel` as the Pyro program).
"""

from .bayes import GPMarginal, GPMarginalModel
from .kernels import RBF, KERNEL_NAMES, Kernel, Linear, Matern, Periodic, Product, RationalQuadratic, Scale, Sum, make_kernel
from .ops import CholeskyJitterWarning, GPFactor, log_marginal_likelihood, masked_log_marginal_likelihood, predictive_moments
from .regression import GPRegression

__all__ = [
    "GPRegression",
    "GPMarginalModel",
    "GPMarginal",
    "Kernel",
    "RBF",
    "Matern",
    "RationalQuadratic",
    "Periodic",
    "Linear",
    "Scale",
    "Sum",
    "Product",
    "make_kernel",
    "KERNEL_NAMES",
    "CholeskyJitterWarning",
    "GPFactor",
    "log_marginal_likelihood",
    "masked_log_marginal_likelihood",
    "predictive_moments",
]
