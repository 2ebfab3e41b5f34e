"""Smoke run of benchmarks/bench_hmm.py --quick on temporary output paths (never the real RESULTS.md)."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("hmmlearn")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_hmm.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_hmm", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_run_writes_json_and_renders_the_hmm_section(tmp_path):
    bench = load_bench()
    output, markdown = tmp_path / "hmm.json", tmp_path / "RESULTS.md"
    markdown.write_text(sys.modules["common"].TITLE + "\n<!-- begin nuts -->\nkept\n<!-- end nuts -->\n")
    argv = ["--quick", "--engines", "probmodels,hmmlearn", "--ops", "score,decode", "--output", str(output),
            "--markdown", str(markdown)]
    assert bench.main(argv) == 0
    report = json.loads(output.read_text())
    assert report["command"].endswith(" ".join(argv))
    assert report["machine"]["torch_threads"] == 1 and "hmmlearn" in report["machine"]["versions"]
    rows = report["rows"]
    # K=3, two layouts, two totals, two ops: probmodels and both hmmlearn implementations
    assert len(rows) == 2 * 2 * 2 * 3
    assert {r["variant"] for r in rows} == {"probmodels", "hmmlearn-log", "hmmlearn-scaling"}
    assert all(r["best_s"] > 0 and r["best_s"] == min(r["times"]) for r in rows)
    peers = [r for r in rows if r["engine"] != "probmodels"]
    assert all(r["deviation"] is not None and r["deviation"] < bench.TOLERANCE for r in peers)

    page = markdown.read_text()
    assert "<!-- begin nuts -->\nkept\n<!-- end nuts -->" in page
    section = page.split("<!-- begin hmm -->")[1].split("<!-- end hmm -->")[0]
    table = [line for line in section.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| K | layout | total | op | probmodels s | hmmlearn s | hmmlearn ÷ probmodels")
    assert len(table) == 1 + 2 * 2 * 2  # header + one row per (layout, total, op)
    assert "| 3 | 4 sequences | 4e2 | decode |" in section
    assert "Reproduce with:" in section and report["command"] in section

    # --render alone rebuilds the same section from the JSON
    markdown.write_text(sys.modules["common"].TITLE)
    assert bench.main(["--render", "--output", str(output), "--markdown", str(markdown)]) == 0
    assert section in markdown.read_text()
