"""Diagnostics: ArviZ conversion, convergence checks, summaries, Stein sample-quality checks, the
marginal likelihood, model complexity, comparison across fits, and a one-call report."""

from .arviz import loo, summary, to_arviz, waic
from .compare import compare, plot_compare
from .complexity import Complexity, InformationCriteria, complexity, information_criteria
from .convergence import ConvergenceReport, check_convergence
from .evidence import EvidenceEstimate, log_evidence
from .ksd import KSDResult, ksd
from .report import Report, report
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
    "complexity",
    "Complexity",
    "information_criteria",
    "InformationCriteria",
    "compare",
    "plot_compare",
    "report",
    "Report",
]
