"""What every benchmark script shares: the machine record, number formatting,
and one section of ``benchmarks/RESULTS.md`` per benchmark.

``RESULTS.md`` is one page with a section per benchmark script, each between
``<!-- begin KEY -->`` and ``<!-- end KEY -->`` markers. A script rewrites only
its own section (:func:`write_results_section`), so the NUTS, HMM and GP
benchmarks render independently without overwriting each other.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import re
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "benchmarks" / "results"
RESULTS_MD = REPO / "benchmarks" / "RESULTS.md"
TITLE = "# Benchmark results\n\nEach section is written by the script it names, from the JSON files under `benchmarks/results/`; do not edit by hand.\n"


def machine_info(packages: Sequence[str]) -> dict:
    """Describe the machine, torch's thread count and the versions of ``packages``.

    Parameters
    ----------
    packages
        Distribution names whose installed versions to record (None when absent).

    Returns
    -------
    dict
        ``cpu_count``, ``cpu_model``, ``torch_threads``, ``platform``, ``python``, ``versions``.
    """
    import torch

    cpu_model = None
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        cpu_model = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")), None)
    versions = {}
    for package in ("probmodels", *packages):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
    }


def describe_machine(machine: dict) -> str:
    """One sentence naming the CPUs and the library versions of a :func:`machine_info` record."""
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v)
    return f"{machine['cpu_count']} CPUs ({machine['cpu_model'] or machine['platform']}); {versions}"


def fmt(value: float | int | None, digits: int = 3) -> str:
    """Format a number: integers and values from 100 up rounded, others to ``digits`` significant figures, None a dash."""
    if value is None:
        return "–"
    if isinstance(value, int) or abs(value) >= 100:
        return str(round(value))
    return f"{value:.{digits}g}"


def write_results_section(key: str, markdown: str, path: Path = RESULTS_MD) -> Path:
    """Replace the section ``key`` of the results page with ``markdown`` (appended when new).

    Parameters
    ----------
    key
        Section name, e.g. ``"nuts"`` or ``"hmm"``; letters, digits, ``-`` and ``_``.
    markdown
        The section's body, starting with its own ``##`` heading.
    path
        The results page.

    Returns
    -------
    pathlib.Path
        The page written.
    """
    if not re.fullmatch(r"[A-Za-z0-9_-]+", key):
        raise ValueError(f"section key must be letters, digits, '-' or '_', got {key!r}")
    path = Path(path)
    page = path.read_text() if path.exists() else TITLE
    if not page.startswith(TITLE):
        page = TITLE
    begin, end = f"<!-- begin {key} -->", f"<!-- end {key} -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    page = pattern.sub(lambda _: block, page) if pattern.search(page) else page.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(page)
    return path


def parse_ints(text: str) -> list[int]:
    """A comma-separated command-line list of integers (``1e4`` allowed), e.g. ``"500,2000"``."""
    return [int(float(token)) for token in text.split(",") if token.strip()]


def reproduce_lines(command: str) -> list[str]:
    """The markdown lines that end every section: the command that reproduces it."""
    return ["Reproduce with:", "", "```", command, "```", ""]


def write_json(output: Path, report: dict) -> Path:
    """Write a benchmark's JSON report (creating its folder) and return the path."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    return output
