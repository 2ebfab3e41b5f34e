"""Test configuration: float64 by default, device from the environment, fixed seeds.

``PROBMODELS_TEST_DEVICE=cuda`` reruns the suite on a GPU (tests build their
data with the ``device`` fixture); ``PROBMODELS_TEST_DTYPE=float32`` reruns it
in single precision. Torch runs one intra-op thread unless
``PROBMODELS_TEST_THREADS`` says otherwise: the suite's tensors are small, and
on a busy 2-core machine spinning intra-op threads made it 10-70x slower.
"""

import os

import pyro
import pytest
import torch

DEVICE = torch.device(os.environ.get("PROBMODELS_TEST_DEVICE", "cpu"))
DTYPE = getattr(torch, os.environ.get("PROBMODELS_TEST_DTYPE", "float64"))


def pytest_configure(config):
    torch.set_default_dtype(DTYPE)
    torch.set_num_threads(int(os.environ.get("PROBMODELS_TEST_THREADS", "1")))


def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA GPU; none is available here")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seeded():
    pyro.set_rng_seed(0)
    pyro.clear_param_store()
    yield


@pytest.fixture
def device():
    return DEVICE


@pytest.fixture
def dtype():
    return DTYPE


BAD_INPUT_SUITE = "tests/test_bad_input_suite.py"


def pytest_terminal_summary(terminalreporter):
    """Print how many cases of the bad-input suite ran, by outcome, when any did."""
    counts = {}
    for outcome in ("passed", "failed", "error", "skipped", "xfailed", "xpassed"):
        reports = terminalreporter.stats.get(outcome, [])
        nodeids = {r.nodeid for r in reports if getattr(r, "nodeid", "").split("::")[0].endswith(BAD_INPUT_SUITE)}
        if nodeids:
            counts[outcome] = len(nodeids)
    if counts:
        first, *rest = counts.items()
        parts = [f"{first[1]} cases {first[0]}"] + [f"{n} {outcome}" for outcome, n in rest]
        terminalreporter.write_line(f"bad-input suite: {', '.join(parts)} ({BAD_INPUT_SUITE})")
