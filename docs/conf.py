"""Sphinx configuration of the probmodels documentation.

Build with ``python -m sphinx -W --keep-going -b html docs docs/_build/html``.
The ``gallery`` extension (``_ext/gallery.py``) runs every script in
``examples/`` with tiny settings to draw the figures of the examples page.
"""

import ast
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

torch.set_num_threads(1)

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS.parent))

import probmodels  # noqa: E402

project = "probmodels"
author = "the probmodels authors"
copyright = "2026, the probmodels authors"
version = release = probmodels.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "matplotlib.sphinxext.plot_directive",
    "gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "_templates", "Thumbs.db", ".DS_Store"]
templates_path = ["_templates"]

# API reference: autosummary writes one page per public object, from each module's __all__, into
# api/generated; it is rewritten on every build so that pages of removed names never linger.
shutil.rmtree(DOCS / "api" / "generated", ignore_errors=True)
autosummary_generate = True
autosummary_ignore_module_all = False
autosummary_imported_members = True
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"

numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_validation_checks: set[str] = set()

myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3

# Library plots in the guides (matplotlib's plot directive); one small PNG each, no PDF.
plot_formats = [("png", 80)]
plot_html_show_formats = False
plot_html_show_source_link = False
plot_rcparams = {"figure.figsize": (6.0, 3.5), "figure.autolayout": True}
plot_pre_code = "import numpy as np\nimport torch\ntorch.set_num_threads(1)\n"

# The examples gallery: each script's main(parse_args([...])) with small settings: SMOKE and the
# script's entry of SETTINGS in tests/test_examples.py (the smoke-test settings, so a new example
# needs one entry, there), then GALLERY_OVERRIDES where a figure needs more data or draws (the
# last occurrence of an option wins).
GALLERY_OVERRIDES = {
    "bn_structure_learning.py": ["--num-patients", "2000"],
    "hmm_regime_switching.py": ["--num-steps", "100", "--num-samples", "50", "--max-states", "3", "--num-markets", "3",
                                "--num-days", "60"],
    "gp_regression.py": ["--num-points", "15", "--num-samples", "50", "--num-warmup", "50"],
}


def _smoke_test_value(name: str):
    """A literal assigned at the top of tests/test_examples.py, read without importing the test module."""
    tree = ast.parse((DOCS.parent / "tests" / "test_examples.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise LookupError(f"tests/test_examples.py defines no {name}")


def _merged(*argument_lists: list[str]) -> list[str]:
    """Command-line options with later values replacing earlier ones (``--flag value`` pairs or lone flags)."""
    options: dict[str, list[str]] = {}
    for arguments in argument_lists:
        i = 0
        while i < len(arguments):
            takes_value = i + 1 < len(arguments) and not arguments[i + 1].startswith("--")
            options[arguments[i]] = arguments[i + 1 : i + 2] if takes_value else []
            i += 2 if takes_value else 1
    return [token for flag, value in options.items() for token in (flag, *value)]


gallery_examples_dir = str(DOCS.parent / "examples")
gallery_sampler_settings: list[str] = []
gallery_settings = {
    name: _merged(_smoke_test_value("SMOKE"), options, GALLERY_OVERRIDES.get(name, []))
    for name, options in _smoke_test_value("SETTINGS").items()
}

html_theme = "pydata_sphinx_theme"
html_title = f"probmodels {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
html_show_sourcelink = False
