"""Gaussian processes.

:mod:`probmodels.gp.kernels` defines covariance functions as small
specifications evaluated by pure tensor code (batched over hyperparameter
draws); :mod:`probmodels.gp.ops` holds the exact Cholesky algebra.
:class:`GPRegression` fits exact GP regression by type-II maximum
likelihood, MAP or NUTS over the hyperparameters (through the inference
core, with :class:`GPMarginalModel` as the Pyro program).
:class:`SparseGPRegression` (SVGP) trains on mini-batches with inducing
points and natural-gradient steps, and :class:`GPClassification` fits binary
classification by variational inference; both build on the whitened
inducing-point machinery of :mod:`probmodels.gp.variational`.
:func:`from_gpytorch` turns a GPyTorch kernel, likelihood and priors into
the settings of :class:`GPRegression`; :func:`plot_predictive` draws a fit's
predictive mean and credible bands over the data.
"""

from .bayes import GPMarginal, GPMarginalModel
from .classification import GPClassification
from .gpytorch_adapter import from_gpytorch
from .kernels import RBF, KERNEL_NAMES, Kernel, Linear, Matern, Periodic, Product, RationalQuadratic, Scale, Sum, make_kernel
from .ops import CholeskyJitterWarning, GPFactor, log_marginal_likelihood, masked_log_marginal_likelihood, predictive_moments
from .plot import plot_predictive
from .regression import GPRegression
from .sparse import SparseGPRegression
from .variational import InducingPosterior

__all__ = [
    "GPRegression",
    "SparseGPRegression",
    "GPClassification",
    "InducingPosterior",
    "from_gpytorch",
    "plot_predictive",
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
