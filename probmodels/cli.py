"""The ``probmodels`` command: ``probmodels demo`` and ``probmodels diagnose FILE.nc``."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

__all__ = ["main", "diagnose"]


def diagnose(path: str) -> int:
    """Print the convergence table, divergences and LOO of a saved posterior."""
    from .core.posterior import load
    from .diagnostics import check_convergence, loo, summary

    posterior = load(path)
    print(f"{path}: {posterior!r}\n")
    idata = posterior.to_arviz(log_likelihood=posterior.has_log_likelihood)
    print(summary(idata).to_string())
    if posterior.num_chains > 1 or "diverging" in posterior.sample_stats:
        report = check_convergence(posterior)
        print(
            f"\ndivergences: {report.num_divergent}   max R-hat: {report.max_rhat:.3f}   "
            f"min ESS bulk: {report.min_ess_bulk:.0f}   min ESS tail: {report.min_ess_tail:.0f}"
        )
        for message in report.messages:
            print(f"warning: {message}")
    if posterior.has_log_likelihood:
        print()
        print(loo(idata))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``probmodels`` command."""
    parser = argparse.ArgumentParser(prog="probmodels", description="Probabilistic modeling and Bayesian inference.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="fit a hierarchical model on embedded data and print diagnostics", add_help=False)
    diag = sub.add_parser("diagnose", help="print R-hat, ESS, divergences and LOO of a saved posterior")
    diag.add_argument("path", help="a .nc file written by Posterior.save")
    argv = list(sys.argv[1:] if argv is None else argv)
    args, rest = parser.parse_known_args(argv)
    if args.command == "demo":
        from .demo import main as demo_main

        return demo_main(rest)
    if rest:
        parser.error(f"unrecognised arguments: {' '.join(rest)}")
    from .exceptions import ResultFileError

    try:
        return diagnose(args.path)
    except ResultFileError as error:
        print(f"probmodels diagnose: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
