"""CI gate: nothing in the library deserialises code-bearing formats or evaluates text.

Scans the syntax tree of every module under ``probmodels/`` for ``pickle`` /
``marshal`` / ``shelve`` / ``dill`` / ``cloudpickle`` loading, ``torch.load``
without ``weights_only=True``, ``numpy.load(allow_pickle=True)``, ``yaml.load``
and the builtins ``eval`` / ``exec``; results and checkpoints are read from
netCDF, ``.npz`` with ``allow_pickle=False``, JSON, BIF and XMLBIF only.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "probmodels"
UNSAFE_MODULES = {"pickle", "marshal", "shelve", "dill", "cloudpickle", "joblib"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _keyword(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def unsafe_calls(source: str) -> list[tuple[int, str]]:
    """``(line, what)`` for every unsafe import or call in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [(node.lineno, f"import {n}") for n in names if n.split(".")[0] in UNSAFE_MODULES]
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        if name in ("eval", "exec", "builtins.eval", "builtins.exec"):
            found.append((node.lineno, f"{name}()"))
        elif name.endswith("torch.load"):
            weights_only = _keyword(node, "weights_only")
            if not (isinstance(weights_only, ast.Constant) and weights_only.value is True):
                found.append((node.lineno, "torch.load without weights_only=True"))
        elif name in ("np.load", "numpy.load"):
            allow = _keyword(node, "allow_pickle")
            if allow is not None and not (isinstance(allow, ast.Constant) and allow.value is False):
                found.append((node.lineno, "numpy.load with allow_pickle not False"))
        elif name == "yaml.load":
            found.append((node.lineno, "yaml.load (use yaml.safe_load)"))
    return found


def test_the_gate_catches_each_pattern():
    bad = "import pickle\nfrom dill import loads\neval(text)\ntorch.load(path)\ntorch.load(path, weights_only=False)\nnp.load(p, allow_pickle=True)\nyaml.load(s)\n"
    assert [line for line, _ in unsafe_calls(bad)] == [1, 2, 3, 4, 5, 6, 7]
    good = "torch.load(path, weights_only=True)\nnp.load(p, allow_pickle=False)\nnp.load(p)\nmodule.eval()\njson.loads(s)\n"
    assert unsafe_calls(good) == []


def test_library_never_unpickles_or_evaluates_file_contents():
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {what}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line, what in unsafe_calls(path.read_text(encoding="utf-8"))
    ]
    assert not offenders, "unsafe deserialisation or evaluation in the library:\n" + "\n".join(offenders)
