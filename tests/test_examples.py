"""Smoke runs of every script in examples/: its ``main`` in-process, tiny settings, output in a temporary folder.

Every script must appear in ``SETTINGS`` (a new example without an entry fails
``test_every_example_is_listed``). The entries hold each script's own options
that shrink its data; the sampler options in ``SMOKE`` go to all of them.
"""

import importlib.util
import warnings
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SMOKE = ["--num-samples", "20", "--num-warmup", "20", "--num-chains", "2", "--seed", "0"]
SETTINGS = {
    "bn_medical_diagnosis.py": ["--num-patients", "200"],
    "bn_structure_learning.py": ["--num-patients", "500"],
    "hmm_regime_switching.py": ["--num-steps", "20", "--max-states", "2", "--num-markets", "3", "--num-days", "30"],
    "gp_regression.py": ["--num-points", "10"],
    "gp_classification.py": ["--num-points", "40", "--num-inducing", "10"],
    "bnn_regression_calibration.py": ["--num-points", "30", "--num-steps", "200", "--hidden", "5"],
    "compare_gp_bnn.py": ["--num-points", "20", "--num-steps", "200", "--hidden", "2"],
}


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{Path(name).stem}", EXAMPLES / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_example_is_listed():
    scripts = sorted(path.name for path in EXAMPLES.glob("*.py"))
    assert scripts == sorted(SETTINGS), f"add the new example(s) to SETTINGS in {Path(__file__).name}"


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_example_runs_and_draws(name, tmp_path, device, capsys):
    module = load(name)
    assert module.__doc__ and module.__doc__.strip(), f"{name} needs a module docstring (title, motivation, references)"
    args = module.parse_args([*SMOKE, *SETTINGS[name], "--device", str(device), "--output-dir", str(tmp_path / "output")])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # runs this short warn about convergence, by design
        path = module.main(args)
    assert path.parent == tmp_path / "output" and path.suffix == ".png"
    assert path.stat().st_size > 0
    assert capsys.readouterr().out.strip(), f"{name} printed no summary"
