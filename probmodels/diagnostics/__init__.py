"""Diagnostics: ArviZ conversion, convergence checks, summaries and Stein sample-quality checks."""

from .arviz import loo, summary, to_arviz, waic
from .convergence import ConvergenceReport, check_convergence
from .ksd import KSDResult, ksd
from .stein import SteinCheck, stein_check

__all__ = [
    "to_arviz",
    "summary",
    "loo",
    "waic",
    "check_convergence",
    "ConvergenceReport",
    "stein_check",
    "SteinCheck",
    "ksd",
    "KSDResult",
]
