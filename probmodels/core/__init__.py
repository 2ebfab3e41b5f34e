"""The shared inference core: SVI, MCMC (batched-chain NUTS), Posterior, predictive."""

from .mcmc import fit_mcmc
from .posterior import Posterior, load
from .protocol import ProbabilisticModel
from .svi import fit_svi

__all__ = ["fit_mcmc", "fit_svi", "Posterior", "load", "ProbabilisticModel"]
