"""Smoke run of benchmarks/bench_gp.py --quick on temporary output paths (never the real RESULTS.md)."""

import importlib.util
import json
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_gp.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_gp", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_run_writes_json_and_renders_the_gp_section(tmp_path):
    bench = load_bench()
    output, markdown = tmp_path / "gp.json", tmp_path / "RESULTS.md"
    markdown.write_text(sys.modules["common"].TITLE + "\n<!-- begin hmm -->\nkept\n<!-- end hmm -->\n")
    argv = ["--quick", "--output", str(output), "--markdown", str(markdown)]
    assert bench.main(argv) == 0
    report = json.loads(output.read_text())
    assert report["command"].endswith(" ".join(argv))
    assert report["machine"]["torch_threads"] == 1 and "scikit-learn" in report["machine"]["versions"]
    engines = [e for e in bench.ENGINES if e not in report["unavailable"]]  # missing packages are listed, not fatal
    rows = report["rows"]
    assert len(rows) == 2 * 2 * len(engines) and {r["engine"] for r in rows} == set(engines)  # n 40, 80; d 1, 2
    assert all(r["seconds"] > 0 and r["seconds"] == min(r["times"]) and r["rmse"] > 0 for r in rows)
    by = {(r["engine"], r["n"], r["d"]): r for r in rows}
    for n in (40, 80):
        for d in (1, 2):
            reference = by[("probmodels", n, d)]
            assert -20 < reference["lml_per_point"] < 0 and len(reference["hyperparameters"]["lengthscale"]) == d
            if ("sklearn", n, d) in by:  # same model, same start: the common evaluator must see the same optimum
                assert abs(by[("sklearn", n, d)]["lml_per_point"] - reference["lml_per_point"]) < 1e-4
    svgp = {r["engine"]: r for r in report["svgp"]}
    assert svgp["probmodels"]["seconds"] > 0 and svgp["probmodels"]["rmse"] > 0 and "probmodels (epoch only)" in svgp

    page = markdown.read_text()
    assert "<!-- begin hmm -->\nkept\n<!-- end hmm -->" in page
    section = page.split("<!-- begin gp -->")[1].split("<!-- end gp -->")[0]
    table = [line for line in section.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| d | n | engine | fit + predict s | ÷ probmodels | LML / point")
    assert "| 2 | 80 | probmodels |" in section and "Reproduce with:" in section and report["command"] in section

    # --render alone rebuilds the same section from the JSON
    markdown.write_text(sys.modules["common"].TITLE)
    assert bench.main(["--render", "--output", str(output), "--markdown", str(markdown)]) == 0
    assert section in markdown.read_text()


def test_skip_rule_extrapolates_cubically():
    bench = load_bench()
    args = bench.parse_args(["--max-run-seconds", "60", "--target-max-run-seconds", "600"])
    assert bench.skip_reason(args, None, 5000, "gpytorch-adam") is None
    assert bench.skip_reason(args, (2000, 3.0), 5000, "gpytorch-adam") is None  # 3 * 2.5^3 = 47 s
    assert "predicted 62 s" in bench.skip_reason(args, (2000, 4.0), 5000, "gpytorch-adam")
    assert bench.skip_reason(args, (2000, 4.0), 5000, "sklearn") is None  # the targets' engines run up to 600 s
    assert "limit 600 s" in bench.skip_reason(args, (2000, 40.0), 5000, "probmodels")
