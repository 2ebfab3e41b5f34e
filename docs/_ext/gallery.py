"""Sphinx extension: the examples gallery.

At the start of a build, :func:`render_figures` runs every script in
``gallery_examples_dir`` in-process, as ``main(parse_args([...]))`` with the
small settings of ``gallery_sampler_settings`` and ``gallery_settings``, and
keeps the PNG it writes in ``gallery_cache_dir``. A figure newer than its
script and drawn with the same options (kept next to it in ``NAME.options``)
is reused. The ``example-gallery`` directive then writes one section per
script: the title and motivation from its docstring, the command that draws
the full-size figure, the command that drew this one, and the figure.

Configuration values
--------------------
gallery_examples_dir
    Folder of the example scripts.
gallery_cache_dir
    Folder of the figures (relative paths are relative to the source folder;
    it must lie inside it). Default ``_build/gallery``.
gallery_sampler_settings
    Options given to every script first (e.g. sample counts, chains, seed).
gallery_settings
    ``script name -> options`` that shrink its run. Every script in the
    folder needs an entry; a missing one is a build warning.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import textwrap
import time
import warnings
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive
from docutils.statemachine import StringList
from sphinx.util import logging

logger = logging.getLogger(__name__)

__all__ = ["setup"]


def _scripts(app) -> list[Path]:
    return sorted(Path(app.config.gallery_examples_dir).glob("*.py"))


def _cache_dir(app) -> Path:
    folder = Path(app.config.gallery_cache_dir)
    return folder if folder.is_absolute() else Path(app.srcdir) / folder


def _figure(app, script: Path) -> Path:
    return _cache_dir(app) / f"{script.stem}.png"


def _options(app, script: Path) -> list[str]:
    return [*app.config.gallery_sampler_settings, *app.config.gallery_settings.get(script.name, [])]


def _run(app, script: Path, figure: Path) -> None:
    """Run one example's ``main`` with the small settings; its PNG lands at ``figure``."""
    spec = importlib.util.spec_from_file_location(f"gallery_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    argv = [*_options(app, script), "--output-dir", str(figure.parent)]
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny runs warn about convergence by design
        written = Path(module.main(module.parse_args(argv)))
    if written.resolve() != figure.resolve():
        os.replace(written, figure)
    figure.with_suffix(".options").write_text(" ".join(_options(app, script)), encoding="utf-8")
    logger.info(f"gallery: {script.name} drew {figure.name} in {time.perf_counter() - started:.1f} s")


def render_figures(app) -> None:
    """Draw every example's figure that is missing, older than its script, or drawn with other options."""
    import matplotlib

    matplotlib.use("Agg")
    _cache_dir(app).mkdir(parents=True, exist_ok=True)
    for script in _scripts(app):
        if script.name not in app.config.gallery_settings:
            logger.warning(f"gallery: {script.name} has no settings: add it to SETTINGS in tests/test_examples.py")
            continue
        figure = _figure(app, script)
        options = figure.with_suffix(".options")
        if (
            figure.exists()
            and figure.stat().st_mtime >= script.stat().st_mtime
            and options.exists()
            and options.read_text(encoding="utf-8") == " ".join(_options(app, script))
        ):
            continue
        try:
            _run(app, script, figure)
        except Exception as error:  # report every broken example, and fail the -W build once at the end
            figure.unlink(missing_ok=True)  # never show a figure of older code or other options
            options.unlink(missing_ok=True)
            logger.warning(f"gallery: {script.name} failed with {type(error).__name__}: {error}")


def _docstring(script: Path) -> tuple[str, str]:
    """A script's title (first line) and the paragraphs after the underline."""
    doc = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8"))) or script.stem
    lines = doc.strip().splitlines()
    title = lines[0].strip()
    body = lines[1:]
    if body and set(body[0].strip()) <= set("=-~"):
        body = body[1:]
    return title, "\n".join(body).strip()


class ExampleGallery(Directive):
    """``.. example-gallery::``: one section per script of the examples folder.

    The docstring paragraphs are parsed by the page's own parser (MyST on a
    Markdown page), after dedenting indented blocks such as reference lists.
    """

    has_content = False

    def run(self):
        env = self.state.document.settings.env
        app = env.app
        result = []
        for script in _scripts(app):
            title, body = _docstring(script)
            env.note_dependency(str(script))
            section = nodes.section(ids=[nodes.make_id(f"example-{script.stem}")])
            section += nodes.title(text=title)
            container = nodes.container()
            chunks = [textwrap.dedent(chunk) for chunk in body.split("\n\n")]
            self.state.nested_parse(StringList("\n\n".join(chunks).splitlines(), source=str(script)), self.content_offset, container)
            section += container.children
            tiny = _options(app, script)
            section += nodes.paragraph(text="Run it at full size (the figure goes to examples/output/):")
            section += nodes.literal_block(text=f"python examples/{script.name}", language="bash")
            section += nodes.paragraph(text="The figure below was drawn during the documentation build by a run with small settings:")
            section += nodes.literal_block(text=f"python examples/{script.name} " + " ".join(tiny), language="bash")
            figure = _figure(app, script)
            if figure.exists():
                rel = os.path.relpath(figure, Path(env.srcdir) / Path(env.docname).parent)
                section += nodes.image(uri=Path(rel).as_posix(), alt=title)
            else:
                logger.warning(f"gallery: no figure for {script.name}", location=(env.docname, self.lineno))
            result.append(section)
        return result


def setup(app):
    app.add_config_value("gallery_examples_dir", "", "env")
    app.add_config_value("gallery_cache_dir", "_build/gallery", "env")
    app.add_config_value("gallery_sampler_settings", [], "env")
    app.add_config_value("gallery_settings", {}, "env")
    app.add_directive("example-gallery", ExampleGallery)
    app.connect("builder-inited", render_figures)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
