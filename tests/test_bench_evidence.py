"""Smoke run of benchmarks/bench_evidence.py --quick on temporary output paths (never the real RESULTS.md)."""

import importlib.util
import json
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_evidence.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_evidence", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_run_writes_json_and_renders_the_evidence_section(tmp_path):
    bench = load_bench()
    output, markdown = tmp_path / "evidence.json", tmp_path / "RESULTS.md"
    markdown.write_text(sys.modules["common"].TITLE + "\n<!-- begin nuts -->\nkept\n<!-- end nuts -->\n")
    argv = ["--quick", "--problems", "normal_normal", "--output", str(output), "--markdown", str(markdown)]
    assert bench.main(argv) == 0
    report = json.loads(output.read_text())
    assert report["command"].endswith(" ".join(argv))
    rows = report["rows"]
    assert [r["method"] for r in rows] == list(bench.ESTIMATORS)
    assert all(r["problem"] == "normal_normal" and r["seconds"] > 0 for r in rows)
    assert all(r["error"] == r["estimate"] - r["truth"] for r in rows)
    assert abs(rows[0]["error"]) < 0.1  # bridge sampling on a Gaussian posterior
    assert report["bridge_dim"]["dim"] == 5 and report["bridge_dim"]["draws"] == 400

    page = markdown.read_text()
    assert "<!-- begin nuts -->\nkept\n<!-- end nuts -->" in page
    section = page.split("<!-- begin evidence -->")[1].split("<!-- end evidence -->")[0]
    table = [line for line in section.splitlines() if line.startswith("| ")]
    assert table[0] == "| problem | method | estimate | truth | error | se | time (s) |"
    assert len(table) == 1 + len(bench.ESTIMATORS)
    assert "Reproduce with:" in section and report["command"] in section

    # --render alone rebuilds the same section from the JSON
    markdown.write_text(sys.modules["common"].TITLE)
    assert bench.main(["--render", "--output", str(output), "--markdown", str(markdown)]) == 0
    assert section in markdown.read_text()
