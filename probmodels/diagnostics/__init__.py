"""Diagnostics: ArviZ conversion, convergence checks and summaries."""

from .arviz import loo, summary, to_arviz, waic
from .convergence import ConvergenceReport, check_convergence

__all__ = ["to_arviz", "summary", "loo", "waic", "check_convergence", "ConvergenceReport"]
