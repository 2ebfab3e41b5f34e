"""Smoke run of benchmarks/bench_bn.py --quick on temporary output paths (never the real RESULTS.md)."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_bn.py"

pytest.importorskip("pgmpy")


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_bn", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_run_checks_answers_writes_json_and_renders_the_bn_section(tmp_path):
    bench = load_bench()
    output, markdown = tmp_path / "bn.json", tmp_path / "RESULTS.md"
    markdown.write_text(sys.modules["common"].TITLE + "\n<!-- begin gp -->\nkept\n<!-- end gp -->\n")
    argv = ["--quick", "--output", str(output), "--markdown", str(markdown)]
    assert bench.main(argv) == 0
    report = json.loads(output.read_text())
    assert report["command"].endswith(" ".join(argv)) and report["machine"]["torch_threads"] == 1
    (latency,) = report["latency"]
    assert latency["network"] == "asia" and latency["max_abs_difference"] < 1e-9
    assert 0 < latency["probmodels_warm_ms"] and 0 < latency["pgmpy_warm_ms"]
    assert report["throughput"]["batches"][0]["rows"] == 100 and report["throughput"]["pgmpy_queries_per_second"] > 0
    assert [r["what"] for r in report["learning"]] == ["maximum likelihood", "BDeu posterior mean (ess 5)"]
    assert all(r["max_abs_difference"] < 1e-12 and r["speedup"] > 0 for r in report["learning"])
    (largest,) = report["largest"]
    assert largest["skipped"] is None and largest["pgmpy_seconds"] > 0 and largest["max_abs_difference"] < 1e-9

    page = markdown.read_text()
    assert "<!-- begin gp -->\nkept\n<!-- end gp -->" in page
    section = page.split("<!-- begin bn -->")[1].split("<!-- end bn -->")[0]
    assert "| asia | 8 |" in section and "Targets:" in section and report["command"] in section

    markdown.write_text(sys.modules["common"].TITLE)  # --render alone rebuilds the same section from the JSON
    assert bench.main(["--render", "--output", str(output), "--markdown", str(markdown)]) == 0
    assert section in markdown.read_text()


def test_answers_that_disagree_are_refused():
    bench = load_bench()
    assert bench.check(1e-12, 1e-9, "x") == 1e-12
    with pytest.raises(RuntimeError, match="disagree"):
        bench.check(1e-3, 1e-9, "x")
    with pytest.raises(RuntimeError, match="disagree"):
        bench.check(float("nan"), 1e-9, "x")
