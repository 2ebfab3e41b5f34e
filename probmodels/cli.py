"""The ``probmodels`` command: ``probmodels demo`` and ``probmodels diagnose FILE.nc``."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

__all__ = ["main", "diagnose"]


def diagnose(path: str, html: str | None = None) -> int:
    """Print the diagnostics report of a saved posterior, and write it as HTML when ``html`` is given."""
    from .core.posterior import load
    from .diagnostics import report

    result = report(load(path))
    print(f"{path}: {result}")
    if html is not None:
        print(f"\nHTML report written to {result.to_html(html)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``probmodels`` command."""
    parser = argparse.ArgumentParser(prog="probmodels", description="Probabilistic modeling and Bayesian inference.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="fit a hierarchical model on embedded data and print diagnostics", add_help=False)
    diag = sub.add_parser("diagnose", help="print the diagnostics report (R-hat, ESS, divergences, LOO, ...) of a saved posterior")
    diag.add_argument("path", help="a .nc file written by Posterior.save")
    diag.add_argument("--html", metavar="PATH", help="also write the report as a self-contained HTML page")
    argv = list(sys.argv[1:] if argv is None else argv)
    args, rest = parser.parse_known_args(argv)
    if args.command == "demo":
        from .demo import main as demo_main

        return demo_main(rest)
    if rest:
        parser.error(f"unrecognised arguments: {' '.join(rest)}")
    from .exceptions import ResultFileError

    try:
        return diagnose(args.path, html=args.html)
    except ResultFileError as error:
        print(f"probmodels diagnose: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
