"""probmodels: probabilistic modeling and Bayesian inference on Pyro and PyTorch.

One inference core (``fit_svi``, ``fit_mcmc``, :class:`Posterior`) serves every
model family and any Pyro program; results flow into ArviZ diagnostics.
"""

from .core import Posterior, ProbabilisticModel, fit_mcmc, fit_svi, load
from .distributed import fit_many
from .exceptions import (
    ConvergenceWarning,
    DataError,
    InferenceError,
    ModelSpecError,
    NetworkFileError,
    NotFittedError,
    ProbModelsError,
    ResultFileError,
    ShapeError,
)

__version__ = "0.1.0"

__all__ = [
    "fit_mcmc",
    "fit_svi",
    "fit_many",
    "Posterior",
    "load",
    "ProbabilisticModel",
    "ProbModelsError",
    "ModelSpecError",
    "DataError",
    "ShapeError",
    "InferenceError",
    "ResultFileError",
    "NetworkFileError",
    "NotFittedError",
    "ConvergenceWarning",
]
