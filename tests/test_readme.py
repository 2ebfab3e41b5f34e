"""The README's quickstart runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_quickstart_runs(tmp_path, monkeypatch):
    text = README.read_text()
    block = re.search(r"## Quickstart\n\n```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block, str(README), "exec"), namespace)
    assert (tmp_path / "eight_schools.nc").is_file()
    assert namespace["posterior"]["mu"].shape == (4, 1000)
    assert namespace["approx"]["tau"].shape == (1, 1000)


def test_two_setup_commands_are_documented():
    text = README.read_text()
    commands = re.findall(r"```bash\n(.*?)\n```", text, re.S)
    assert any("probmodels demo" in c and 'torch==2.13.0' in c for c in commands)
    assert any("pytest" in c and 'torch==2.13.0' in c for c in commands)
    ci = (README.parent / ".ci" / "run").read_text()
    assert "python -m pytest" in ci and '"torch==2.13.0" -e ".[dev]"' in ci
