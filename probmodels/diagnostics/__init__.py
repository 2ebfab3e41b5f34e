"""Diagnostics: ArviZ conversion, convergence checks, summaries, Stein sample-quality checks and the
marginal likelihood."""

from .arviz import loo, summary, to_arviz, waic
from .convergence import ConvergenceReport, check_convergence
from .evidence import EvidenceEstimate, log_evidence
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
    "log_evidence",
    "EvidenceEstimate",
]
