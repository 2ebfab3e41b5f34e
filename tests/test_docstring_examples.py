"""The ``Examples`` sections of the public docstrings run and print what they show.

Each listed module's docstrings are collected with :class:`doctest.DocTestFinder`
and run with ``ELLIPSIS | NORMALIZE_WHITESPACE``; a listed module without any
example fails, so examples cannot silently disappear. The examples are small
and seeded (one torch thread, from ``conftest.py``) and print rounded values,
so they are deterministic across platforms and default dtypes.
"""

from __future__ import annotations

import doctest
import importlib
import warnings

import pyro
import pytest
import torch

MODULES = [
    "probmodels.core.posterior",
    "probmodels.hmm.ops",
    "probmodels.hmm.model",
    "probmodels.gp.kernels",
    "probmodels.gp.regression",
    "probmodels.gp.sparse",
    "probmodels.gp.classification",
    "probmodels.gp.gpytorch_adapter",
    "probmodels.gp.plot",
    "probmodels.diagnostics.convergence",
    "probmodels.diagnostics.complexity",
    "probmodels.diagnostics.report",
    "probmodels.bn.network",
    "probmodels.bn.inference",
    "probmodels.bn.structure",
    "probmodels.testing.sbc",
]
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    tests = [t for t in doctest.DocTestFinder(exclude_empty=True).find(module, name) if t.examples]
    assert tests, f"{name} has no docstring examples"
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report: list[str] = []
    default_dtype = torch.get_default_dtype()
    try:
        torch.set_default_dtype(torch.float64)  # the examples are written for float64, the library's default
        for test in tests:
            pyro.set_rng_seed(0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. the convergence warnings of deliberately short runs
                runner.run(test, out=report.append)
    finally:
        torch.set_default_dtype(default_dtype)
    assert runner.failures == 0, "".join(report)
