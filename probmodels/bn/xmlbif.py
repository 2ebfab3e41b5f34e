"""Read and write discrete Bayesian networks in XMLBIF (version 0.3), and pick a format by file suffix.

An XMLBIF file holds ``<VARIABLE>`` elements (``<NAME>``, ``<OUTCOME>`` per
state) and one ``<DEFINITION>`` (or ``<PROBABILITY>``) per variable:
``<FOR>`` the node, ``<GIVEN>`` its parents in order and ``<TABLE>`` the
probabilities over ``(*parents, node)``, the node's state varying fastest.

Parsing is safe against hostile files: a document type declaration
(``<!DOCTYPE``) or any other ``<!`` declaration is refused before the XML
parser sees the text, so no entity can be declared, expanded ("billion
laughs") or fetched from a ``SYSTEM`` address; an undeclared entity
reference is then a syntax error. Files are read as UTF-8 whatever their XML
declaration says.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import torch

from ..exceptions import ModelSpecError, NetworkFileError
from .bif import Source, file_names, load_text, read_bif, suggest, write_bif
from .network import DiscreteBayesianNetwork

__all__ = ["read_xmlbif", "write_xmlbif", "read_network", "write_network"]

_DECLARATION = re.compile(r"<!(?!--)(?!\[CDATA\[)")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_SUFFIXES = {".bif": "bif", ".xml": "xmlbif", ".xmlbif": "xmlbif"}


def read_xmlbif(
    source: Source, *, dtype: torch.dtype = torch.float64, device: str | torch.device | None = None
) -> DiscreteBayesianNetwork:
    """Read a discrete Bayesian network from an XMLBIF file.

    Parameters
    ----------
    source : str, bytes or path-like
        A path, the XML text itself (a ``str`` that holds ``<`` or a newline)
        or its UTF-8 bytes.
    dtype, device
        Of the network's tables.

    Returns
    -------
    DiscreteBayesianNetwork
        Nodes in the order of the ``<VARIABLE>`` elements, parents in the order
        of the ``<GIVEN>`` elements, names and states as strings.

    Raises
    ------
    NetworkFileError
        For bytes that are not UTF-8, a ``<!DOCTYPE``/``<!ENTITY`` declaration,
        XML that is not well formed (e.g. truncated), a missing or duplicate
        variable or definition, an undeclared variable, a table of the wrong
        length, a value that is not a number, or probabilities that the
        network refuses; the message names the source and the variable.
    """
    text, label = load_text(source)
    found = _DECLARATION.search(text)
    if found:
        line = text.count("\n", 0, found.start()) + 1
        raise NetworkFileError(
            f"{label}, line {line}: the file has a markup declaration ({text[found.start():found.start() + 10]!r}...), "
            "e.g. <!DOCTYPE> or <!ENTITY>. XMLBIF needs none, and they are refused because entities can expand "
            "exponentially ('billion laughs') or read local files and URLs; remove the declaration."
        )
    try:
        root = ET.fromstring(text)
    except ET.ParseError as error:
        raise NetworkFileError(
            f"{label}: not well-formed XML ({error}); "
            "is the file truncated, or does it use an entity such as &name; (only &lt; &gt; &amp; &quot; &apos; "
            "and character references are allowed)?"
        ) from None
    network = root if root.tag == "NETWORK" else root.find("NETWORK")
    if network is None:
        raise NetworkFileError(f"{label}: no <NETWORK> element under <{root.tag}>; an XMLBIF file reads <BIF><NETWORK>...")
    variables = _variables(network, label)
    definitions = _definitions(network, variables, label)
    net = DiscreteBayesianNetwork(nodes=variables, dtype=dtype, device=device)
    for node, (parents, table) in definitions.items():
        try:
            net.add_cpd(node, parents, variables[node], table)
        except ModelSpecError as error:
            raise NetworkFileError(f"{label}: definition of {node!r}: {error}") from None
    return net


def _text(element: ET.Element, tag: str, label: str, where: str) -> str:
    child = element.find(tag)
    if child is None or not (child.text or "").strip():
        raise NetworkFileError(f"{label}: {where} has no <{tag}>; add <{tag}>...</{tag}>.")
    return child.text.strip()


def _variables(network: ET.Element, label: str) -> dict[str, tuple[str, ...]]:
    variables: dict[str, tuple[str, ...]] = {}
    for i, element in enumerate(network.iter("VARIABLE"), start=1):
        name = _text(element, "NAME", label, f"<VARIABLE> number {i}")
        kind = element.get("TYPE", "nature")
        if kind != "nature":
            raise NetworkFileError(
                f"{label}: variable {name!r} has TYPE={kind!r}; only chance nodes (TYPE=\"nature\") are supported, "
                "decision and utility nodes belong to influence diagrams."
            )
        if name in variables:
            raise NetworkFileError(f"{label}: variable {name!r} is declared twice; keep one <VARIABLE> for it.")
        states = tuple((o.text or "").strip() for o in element.findall("OUTCOME"))
        if not states or "" in states or len(set(states)) != len(states):
            raise NetworkFileError(
                f"{label}: variable {name!r} has outcomes {states}; it needs one or more distinct, non-empty <OUTCOME>s."
            )
        variables[name] = states
    if not variables:
        raise NetworkFileError(f"{label}: the network declares no <VARIABLE>; is the file truncated?")
    return variables


def _definitions(
    network: ET.Element, variables: dict[str, tuple[str, ...]], label: str
) -> dict[str, tuple[tuple[str, ...], np.ndarray]]:
    definitions: dict[str, tuple[tuple[str, ...], np.ndarray]] = {}
    elements = [e for e in network if e.tag in ("DEFINITION", "PROBABILITY")]
    for i, element in enumerate(elements, start=1):
        node = _text(element, "FOR", label, f"<{element.tag}> number {i}")
        parents = tuple((g.text or "").strip() for g in element.findall("GIVEN"))
        for name in (node, *parents):
            if name not in variables:
                raise NetworkFileError(
                    f"{label}: the definition of {node!r} uses the undeclared variable {name!r}"
                    f"{suggest(name, list(variables))}; declare it with a <VARIABLE> element."
                )
        if node in definitions:
            raise NetworkFileError(f"{label}: variable {node!r} has two definitions; keep one.")
        tokens = " ".join(t.text or "" for t in element.findall("TABLE")).split()
        bad = [t for t in tokens if not _NUMBER.fullmatch(t)]
        if bad:
            raise NetworkFileError(f"{label}: the <TABLE> of {node!r} holds {bad[:5]}, which are not numbers.")
        shape = [len(variables[p]) for p in parents] + [len(variables[node])]
        if len(tokens) != int(np.prod(shape)):
            raise NetworkFileError(
                f"{label}: the <TABLE> of {node!r} has {len(tokens)} values, but its {len(variables[node])} states and "
                f"parents {parents} (cardinalities {shape[:-1]}) need {int(np.prod(shape))}; give one value per state "
                "and parent configuration, the node's state varying fastest."
            )
        definitions[node] = (parents, np.asarray(tokens, dtype=np.float64).reshape(shape))
    missing = [name for name in variables if name not in definitions]
    if missing:
        raise NetworkFileError(
            f"{label}: variables {missing[:5]} have no <DEFINITION>; add one per variable (is the file truncated?)."
        )
    return definitions


def write_xmlbif(network: DiscreteBayesianNetwork, path: str | os.PathLike | None = None, *, name: str = "unknown") -> str:
    """Write ``network`` as XMLBIF 0.3 (UTF-8), readable by :func:`read_xmlbif` and pgmpy.

    Parameters
    ----------
    network : DiscreteBayesianNetwork
        An unbatched network with a CPD for every node; names and states are
        written with ``str``.
    path : str or path-like, optional
        The file to write; None only returns the text.
    name : str, default "unknown"
        The network's name.

    Returns
    -------
    str
        The XML text; probabilities are written with ``repr`` (exact round trip).

    Raises
    ------
    ShapeError
        For a batched network.
    NetworkFileError
        For a node without a CPD, names that collide as strings or characters XML cannot hold.
    """
    names = file_names(network, _NOT_XML)
    root = ET.Element("BIF", VERSION="0.3")
    body = ET.SubElement(root, "NETWORK")
    ET.SubElement(body, "NAME").text = name
    for node in network.nodes:
        variable = ET.SubElement(body, "VARIABLE", TYPE="nature")
        ET.SubElement(variable, "NAME").text = names[node][0]
        for state in names[node][1]:
            ET.SubElement(variable, "OUTCOME").text = state
    for node in network.nodes:
        cpd = network.cpd(node)
        definition = ET.SubElement(body, "DEFINITION")
        ET.SubElement(definition, "FOR").text = names[node][0]
        for parent in cpd.parents:
            ET.SubElement(definition, "GIVEN").text = names[parent][0]
        values = cpd.table.detach().cpu().to(torch.float64).reshape(-1).tolist()
        ET.SubElement(definition, "TABLE").text = " ".join(map(repr, values))
    ET.indent(root)
    text = "<?xml version='1.0' encoding='utf-8'?>\n" + ET.tostring(root, encoding="unicode") + "\n"
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text


def _format(path: str | os.PathLike, format: str | None) -> str:
    if format is not None:
        if format not in ("bif", "xmlbif"):
            raise ModelSpecError(f"format must be 'bif' or 'xmlbif', got {format!r}.")
        return format
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIXES:
        raise NetworkFileError(
            f"cannot tell the format of {os.fspath(path)!r} from its suffix {suffix!r}; use .bif, .xml or .xmlbif, "
            "or pass format='bif' or format='xmlbif'."
        )
    return _SUFFIXES[suffix]


def read_network(
    path: str | os.PathLike, *, format: str | None = None, dtype: torch.dtype = torch.float64,
    device: str | torch.device | None = None,
) -> DiscreteBayesianNetwork:
    """Read a network file, BIF (``.bif``) or XMLBIF (``.xml``, ``.xmlbif``) by suffix unless ``format`` says.

    See :func:`~probmodels.bn.bif.read_bif` and :func:`read_xmlbif`.
    """
    reader = read_bif if _format(path, format) == "bif" else read_xmlbif
    return reader(Path(path), dtype=dtype, device=device)


def write_network(network: DiscreteBayesianNetwork, path: str | os.PathLike, *, format: str | None = None) -> str:
    """Write ``network`` as BIF (``.bif``) or XMLBIF (``.xml``, ``.xmlbif``) by suffix unless ``format`` says; returns the text."""
    writer = write_bif if _format(path, format) == "bif" else write_xmlbif
    return writer(network, path)
