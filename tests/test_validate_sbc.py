"""benchmarks/validate_sbc.py: a smoke run on temporary paths, and (slow) the full
calibration run, in which every model must pass and every negative control fail."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "validate_sbc.py"


def load_script():
    spec = importlib.util.spec_from_file_location("validate_sbc", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(tmp_path, argv):
    script = load_script()
    output, markdown = tmp_path / "sbc.json", tmp_path / "RESULTS.md"
    markdown.write_text(sys.modules["common"].TITLE)
    assert script.main([*argv, "--output", str(output), "--markdown", str(markdown)]) == 0
    return json.loads(output.read_text()), markdown.read_text()


def test_quick_run_writes_the_sbc_section(tmp_path):
    report, markdown = run(tmp_path, ["--quick", "--cases", "0,4"])
    assert [r["case"] for r in report["rows"]] == ["hierarchical normal", "bn dirichlet A->B"]
    assert all(r["simulations"] == 8 and r["draws"] == 9 for r in report["rows"])
    assert "<!-- begin sbc -->" in markdown and "| hierarchical normal | NUTS |" in markdown


@pytest.mark.slow
def test_every_model_calibrated_and_every_negative_control_flagged(tmp_path):
    report, _ = run(tmp_path, [])
    wrong = [(r["case"], r["passed"], r["failing"]) for r in report["rows"] if not r["as_expected"]]
    assert not wrong, wrong
