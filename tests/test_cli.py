"""The probmodels command: demo and diagnose."""

import subprocess
import sys

import pytest

from probmodels.cli import main


def test_demo_runs_and_saves(tmp_path, capsys):
    path = tmp_path / "demo.nc"
    code = main(["demo", "--num-warmup", "100", "--num-samples", "100", "--num-chains", "2", "--svi-steps", "200", "--no-progress", "--skip-tour", "--save", str(path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "r_hat" in out and "elpd_loo" in out and "SVI" in out
    assert path.is_file()

    assert main(["diagnose", str(path)]) == 0
    out = capsys.readouterr().out
    for token in ("ess_bulk", "ess_tail", "r_hat", "divergences", "elpd_loo", "p_loo"):
        assert token in out, token


def test_family_tour_answers_correctly(capsys):
    from probmodels.demo_tour import tour

    tour(seed=0)
    out = capsys.readouterr().out
    lung = next(line for line in out.splitlines() if line.startswith("lung"))
    assert lung.split()[1] == "0.724"  # P(lung | smoke, xray, dysp) on Asia, as pgmpy computes it
    assert "-> K = 3" in out and "95% predictive band covers" in out


def test_diagnose_refuses_a_bad_file(tmp_path, capsys):
    bad = tmp_path / "bad.nc"
    bad.write_text("not netcdf")
    assert main(["diagnose", str(bad)]) == 2
    assert "could not be read" in capsys.readouterr().err


def test_console_script_is_installed():
    result = subprocess.run([sys.executable, "-m", "probmodels.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "diagnose" in result.stdout


@pytest.mark.parametrize("argv", [[], ["nonsense"]])
def test_bad_command_line(argv):
    with pytest.raises(SystemExit):
        main(argv)
