"""The documentation site builds with warnings as errors, and its pages show the examples' figures.

One Sphinx build (``python -m sphinx -W --keep-going -b html docs <tmp>``, as in
CI) serves every test here. The build runs each script of ``examples/`` with
small settings to draw the gallery's figures; figures newer than their script
are reused from ``docs/_build/gallery``. The slow test runs every Python code
block of the hand-written pages, so the guides stay correct for the current API.
"""

from __future__ import annotations

import html as html_module
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
API_MODULES = ("probmodels", "probmodels.core", "probmodels.diagnostics", "probmodels.bn", "probmodels.hmm",
               "probmodels.gp", "probmodels.bnn", "probmodels.testing")
# Pages whose Python code blocks the slow test runs (docs/guide/distributed.md needs a cluster).
SNIPPET_PAGES = ("getting-started.md", "inference.md", "diagnostics.md", "testing.md", "guide/bayesian-networks.md",
                 "guide/hidden-markov-models.md", "guide/gaussian-processes.md", "guide/bayesian-neural-networks.md")


def plain_text(page: Path) -> str:
    """A page's text without tags (code blocks are split into highlighting spans)."""
    return html_module.unescape(re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def html(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("docs")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
               "-d", str(out / "doctrees"), str(DOCS), str(out / "html")]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, f"the docs build failed (rc {done.returncode}):\n{done.stderr[-6000:]}"
    return out / "html"


def test_every_page_is_built(html):
    for page in ("index", "getting-started", "inference", "diagnostics", "testing", "examples", "benchmarks",
                 "api/index", "guide/bayesian-networks", "guide/hidden-markov-models", "guide/gaussian-processes",
                 "guide/bayesian-neural-networks"):
        assert (html / f"{page}.html").is_file(), f"{page}.html is missing"
    for module in API_MODULES:
        assert (html / "api" / "generated" / f"{module}.html").is_file(), f"no API page for {module}"
    assert (html / "api" / "generated" / "probmodels.core.fit_mcmc.html").is_file()


def test_gallery_shows_every_example_figure(html):
    page = (html / "examples.html").read_text(encoding="utf-8")
    for script in EXAMPLES:
        assert f'id="example-{script.stem.replace("_", "-")}"' in page, f"no gallery section for {script.name}"
        assert f'src="_images/{script.stem}.png"' in page, f"the gallery does not show {script.stem}.png"
        figure = html / "_images" / f"{script.stem}.png"
        assert figure.is_file() and figure.stat().st_size > 1000, f"{figure} is missing or empty"
    text = plain_text(html / "examples.html")
    for script in EXAMPLES:
        assert f"python examples/{script.name}" in text, f"the gallery lacks the command of {script.name}"


def test_guides_show_library_plots(html):
    for page in ("guide/bayesian-networks", "guide/hidden-markov-models", "guide/gaussian-processes",
                 "guide/bayesian-neural-networks", "testing"):
        text = (html / f"{page}.html").read_text(encoding="utf-8")
        images = re.findall(r'<img[^>]+src="([^"]+\.png)"', text)
        assert images, f"{page} shows no plot"
        for src in images:
            assert (html / page).parent.joinpath(src).resolve().is_file(), f"{page} links a missing image {src}"


def test_benchmark_page_includes_the_results(html):
    text = plain_text(html / "benchmarks.html")
    results = (ROOT / "benchmarks" / "RESULTS.md").read_text(encoding="utf-8")
    for heading in re.findall(r"^## (.+)$", results, flags=re.M):
        plain = re.sub(r"`", "", heading).split(" (")[0]
        assert plain in text, f"the benchmark page lacks the section {heading!r}"
    assert "python benchmarks/bench_nuts.py" in text


@pytest.mark.slow
@pytest.mark.parametrize("page", SNIPPET_PAGES)
def test_guide_code_runs(page, tmp_path, monkeypatch):
    """Every ```python block of a page, in order, in one namespace (as a reader would paste them)."""
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)  # snippets that save files write here
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(encoding="utf-8"), flags=re.S)
    assert blocks, f"{page} has no Python code block"
    namespace: dict = {"__name__": "__docs__"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short runs warn about convergence by design
        for i, block in enumerate(blocks):
            exec(compile(block, f"{page} (code block {i + 1})", "exec"), namespace)
