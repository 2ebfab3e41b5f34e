"""Read and write discrete Bayesian networks in the BIF format (Interchange Format 0.15).

The grammar read here is the one of JavaBayes, bnlearn's repository and
pgmpy::

    network NAME { property ... ; }
    variable X { type discrete [ 2 ] { s1, s2 }; property ... ; }
    probability ( X | P1, P2 ) {
      ( p1s, p2s ) 0.1, 0.9;      // one row per parent configuration, or
      default 0.5, 0.5;           // for every configuration not listed
    }
    probability ( R ) { table 0.2, 0.8; }

``//`` and ``/* */`` comments, double-quoted names, ``property`` lines and
scientific notation are accepted; so are the old header ``( X P1 P2 )``
without ``|`` and a ``table`` for a node with parents, whose values run over
``(X, P1, ..., Pk)`` with the last variable varying fastest (as pgmpy reads
it). Every error names the source, the line and the variable, and the
network's own validation (:class:`~probmodels.bn.DiscreteBayesianNetwork`)
checks the probabilities. Files are read as UTF-8; names are read as strings.
"""

from __future__ import annotations

import bisect
import difflib
import itertools
import math
import os
import re
from collections.abc import Hashable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ..exceptions import ModelSpecError, NetworkFileError, ShapeError
from .network import DiscreteBayesianNetwork

__all__ = ["read_bif", "write_bif"]

Source = str | bytes | os.PathLike
"""A path, the file's text (a ``str`` holding a newline, ``{`` or ``<``) or its bytes."""

_TOKEN = re.compile(
    r"""\s*(?:(?P<comment>//[^\n]*|/\*.*?\*/)|(?P<open_comment>/\*)|(?P<string>"[^"\n]*")|(?P<open_string>")
    |(?P<punct>[{}\[\]();,|])|(?P<word>(?:[^\s{}\[\]();,|"/]|/(?![/*]))+))""",
    re.DOTALL | re.VERBOSE,
)
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_BARE = re.compile(r"[A-Za-z0-9_.+-]+")
_SHOWN = 5


# ----------------------------------------------------------------------------- shared with xmlbif


def load_text(source: Source) -> tuple[str, str]:
    """The text of ``source`` and a label naming it in error messages; UTF-8 (a BOM is skipped)."""
    if isinstance(source, bytes):
        data, label = source, "<bytes>"
    elif isinstance(source, str) and any(c in source for c in "\n{<"):
        return source, "<string>"
    elif isinstance(source, (str, os.PathLike)):
        label = os.fspath(source)
        data = Path(label).read_bytes()
    else:
        raise TypeError(f"source must be a path, the file's text or its bytes, got {type(source).__name__}.")
    try:
        return data.decode("utf-8-sig"), label
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise NetworkFileError(
            f"{label}, line {line}: byte {error.start} ({data[error.start : error.start + 1]!r}) is not valid UTF-8. "
            "Network files are read as UTF-8: convert the file, e.g. `iconv -f latin1 -t utf-8 in > out`."
        ) from None


def file_names(network: DiscreteBayesianNetwork, forbidden: re.Pattern[str]) -> dict[Hashable, tuple[str, tuple[str, ...]]]:
    """``{node: (name, state names)}`` as strings for a file; refuses batches, collisions and ``forbidden`` characters."""
    network.check_complete()
    if network.batch_shape:
        raise ShapeError(
            f"a network file holds one network; this one has batch shape {tuple(network.batch_shape)}. Index a draw first."
        )
    names: dict[Hashable, tuple[str, tuple[str, ...]]] = {}
    for node in network.nodes:
        strings = [str(node), *map(str, network.states(node))]
        for text in strings:
            if text != text.strip() or forbidden.search(text) or not text:
                raise ModelSpecError(
                    f"cannot write the name {text!r} (of node {node!r} or one of its states): names must be non-empty, "
                    "without surrounding whitespace or characters the format cannot hold; rename it first."
                )
        if len(set(strings[1:])) < len(strings) - 1:
            raise ModelSpecError(f"the states {network.states(node)} of {node!r} collide as strings; rename them.")
        names[node] = (strings[0], tuple(strings[1:]))
    if len({name for name, _ in names.values()}) < len(names):
        raise ModelSpecError("two nodes have the same name as strings; rename them before writing.")
    return names


def suggest(name: str, known: list[str]) -> str:
    """``" (did you mean 'x'?)"`` for the close matches of ``name`` among ``known`` (empty if none)."""
    close = difflib.get_close_matches(name, known, n=3)
    return f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""


# ----------------------------------------------------------------------------- reading


class _Token(NamedTuple):
    kind: str  # "word", "string", "punct" or "end"
    text: str
    line: int


class _Variable(NamedTuple):
    states: tuple[str, ...]
    line: int


class _Block(NamedTuple):
    node: str
    parents: tuple[str, ...]
    table: np.ndarray
    line: int


def read_bif(
    source: Source, *, dtype: torch.dtype = torch.float64, device: str | torch.device | None = None
) -> DiscreteBayesianNetwork:
    """Read a discrete Bayesian network from a BIF file.

    Parameters
    ----------
    source : str, bytes or path-like
        A path, the BIF text itself (a ``str`` that holds a newline or ``{``)
        or its UTF-8 bytes.
    dtype, device
        Of the network's tables.

    Returns
    -------
    DiscreteBayesianNetwork
        Nodes in the order of their declarations, parents in the order of the
        probability headers, names and states as strings.

    Raises
    ------
    NetworkFileError
        For bytes that are not UTF-8, a syntax error or truncated file, an
        undeclared or duplicate variable, an unknown state, a table of the wrong
        length, a missing probability block, or probabilities that the network
        refuses (negative, rows not summing to one, a cycle); the message names
        the source, the line and the variable.

    Examples
    --------
    >>> net = read_bif("variable R { type discrete [ 2 ] { no, yes }; }\\nprobability ( R ) { table 0.8, 0.2; }")
    >>> net.states("R")
    ('no', 'yes')
    """
    text, label = load_text(source)
    return _Parser(_tokenize(text, label), label).network(dtype, device)


def _tokenize(text: str, label: str) -> list[_Token]:
    newlines = [match.start() for match in re.finditer("\n", text)]
    tokens = []
    for match in _TOKEN.finditer(text.rstrip()):  # every non-space character starts a match
        kind = match.lastgroup
        if kind == "comment":
            continue
        value, line = match.group(kind), bisect.bisect(newlines, match.start(kind)) + 1
        if kind in ("open_comment", "open_string"):
            what = "comment '/*' is never closed" if kind == "open_comment" else 'quoted name has no closing \'"\' on its line'
            raise NetworkFileError(f"{label}, line {line}: a {what}; close it (is the file truncated?).")
        tokens.append(_Token(kind, value[1:-1] if kind == "string" else value, line))
    tokens.append(_Token("end", "end of file", len(newlines) + 1))
    return tokens


class _Parser:
    """Recursive descent over the tokens; collects the declarations, then builds the network."""

    def __init__(self, tokens: list[_Token], label: str) -> None:
        self.tokens, self.label, self.pos = tokens, label, 0
        self.variables: dict[str, _Variable] = {}
        self.blocks: dict[str, _Block] = {}

    def network(self, dtype: torch.dtype, device: str | torch.device | None) -> DiscreteBayesianNetwork:
        blocks = {"network": self.network_block, "variable": self.variable_block, "probability": self.probability_block}
        while self.peek().kind != "end":
            token = self.next()
            if token.kind != "word" or token.text not in blocks:
                self.fail(token, f"expected 'network', 'variable' or 'probability', found {token.text!r}")
            blocks[token.text](token)
        missing = [name for name in self.variables if name not in self.blocks]
        if missing:
            first = self.variables[missing[0]]
            raise NetworkFileError(
                f"{self.label}, line {first.line}: variable {missing[0]!r} has no probability block"
                + (f" (nor do {missing[1:_SHOWN]})" if len(missing) > 1 else "")
                + "; add `probability ( ... ) { ... }` for every declared variable (is the file truncated?)."
            )
        net = DiscreteBayesianNetwork(nodes=self.variables, dtype=dtype, device=device)
        for block in self.blocks.values():
            try:
                net.add_cpd(block.node, block.parents, self.variables[block.node].states, block.table)
            except ModelSpecError as error:
                raise NetworkFileError(
                    f"{self.label}, line {block.line}: probability block of {block.node!r}: {error}"
                ) from None
        return net

    # -------------------------------------------------------------- blocks

    def network_block(self, start: _Token) -> None:
        while self.peek()[:2] != ("punct", "{"):
            self.name(self.next(), "the network's name")
        opened = self.expect("{", "after the network's name")
        while not self.accept("}"):
            token = self.next()
            if token.kind == "end":
                self.fail(token, f"the network block opened at line {opened.line} is never closed")
            self.property(token, "the network block")

    def variable_block(self, start: _Token) -> None:
        name = self.name(self.next(), "a variable name after 'variable'")
        if name in self.variables:
            self.fail(start, f"variable {name!r} is declared twice (first at line {self.variables[name].line}); "
                             "keep one declaration")
        self.expect("{", f"after 'variable {name}'")
        states = None
        while not self.accept("}"):
            token = self.next()
            if token.kind == "word" and token.text == "type":
                states = self.variable_type(name, token)
            else:
                self.property(token, f"the declaration of {name!r}")
        if states is None:
            self.fail(start, f"variable {name!r} has no `type discrete [ n ] {{ ... }};` line; add one")
        self.variables[name] = _Variable(states, start.line)

    def variable_type(self, name: str, start: _Token) -> tuple[str, ...]:
        kind = self.next()
        if kind.text != "discrete":
            self.fail(kind, f"variable {name!r} has type {kind.text!r}; only `type discrete [ n ] {{ ... }}` is supported")
        self.expect("[", f"after 'type discrete' of {name!r}")
        count = self.next()
        if not count.text.isdigit():
            self.fail(count, f"the number of states of {name!r} must be an integer, found {count.text!r}")
        self.expect("]", f"after the number of states of {name!r}")
        self.expect("{", f"before the states of {name!r}")
        states = self.names("}", f"the states of {name!r}")
        self.expect(";", f"after the states of {name!r}")
        if len(states) != int(count.text) or not states:
            self.fail(start, f"variable {name!r} declares [ {count.text} ] states but lists {len(states)}: {states}; "
                             "make the count match the list")
        if len(set(states)) != len(states):
            twice = sorted({s for s in states if states.count(s) > 1})
            self.fail(start, f"variable {name!r} lists the states {twice} more than once; state names must be distinct")
        return states

    def probability_block(self, start: _Token) -> None:
        self.expect("(", "after 'probability'")
        names: list[str] = []
        while not self.accept(")"):
            token = self.next()
            if token.kind == "punct" and (token.text == "," or (token.text == "|" and len(names) == 1)):
                continue
            names.append(self.name(token, "a variable name in the probability header `( X | P1, P2 )`"))
        if not names:
            self.fail(start, "the probability header `( )` names no variable; write `probability ( X | parents )`")
        node, parents = names[0], tuple(names[1:])
        for name in names:
            if name not in self.variables:
                self.fail(start, f"probability block for {node!r} uses the undeclared variable {name!r}"
                                 f"{suggest(name, list(self.variables))}; declare it with `variable {name} {{ ... }}` "
                                 "before this block")
        if node in self.blocks:
            self.fail(start, f"variable {node!r} has a second probability block (the first is at line "
                             f"{self.blocks[node].line}); keep one")
        if len(set(parents)) != len(parents) or node in parents:
            self.fail(start, f"the probability header of {node!r} lists a variable twice: {names}")
        opened = self.expect("{", f"after the probability header of {node!r}")
        card = len(self.variables[node].states)
        cards = [len(self.variables[p].states) for p in parents]
        rows: dict[tuple[int, ...], np.ndarray] = {}
        table = default = None
        while not self.accept("}"):
            token = self.next()
            where = f"in the probability block of {node!r}"
            if token.kind == "end":
                self.fail(token, f"the probability block of {node!r} opened at line {opened.line} is never closed")
            if token.kind == "word" and token.text in ("table", "default"):
                size = card * math.prod(cards) if token.text == "table" else card
                values = self.numbers(token, size, f"{where}, the {token.text}")
                if token.text == "table":
                    table = np.moveaxis(values.reshape([card, *cards]), 0, -1)
                else:
                    default = values
            elif token.text == "(" and token.kind == "punct":
                states = self.names(")", f"a row {where}")
                if len(states) != len(parents):
                    self.fail(token, f"the row ({', '.join(states)}) {where} names {len(states)} parent states but the "
                                     f"parents are {parents}; give one state per parent in that order")
                codes = tuple(self.code(p, s, token, where) for p, s in zip(parents, states))
                if codes in rows:
                    self.fail(token, f"the row ({', '.join(states)}) {where} appears twice; keep one")
                rows[codes] = self.numbers(token, card, f"{where}, row ({', '.join(states)})")
            else:
                self.property(token, where)
        self.blocks[node] = _Block(node, parents, self.assemble(node, parents, table, default, rows, start), start.line)

    def assemble(
        self, node: str, parents: tuple[str, ...], table: np.ndarray | None, default: np.ndarray | None,
        rows: dict[tuple[int, ...], np.ndarray], start: _Token,
    ) -> np.ndarray:
        if table is not None:
            if rows:
                self.fail(start, f"the probability block of {node!r} has both a `table` and rows; use one form")
            return table
        card = len(self.variables[node].states)
        configs = list(itertools.product(*(range(len(self.variables[p].states)) for p in parents)))
        missing = [c for c in configs if c not in rows]
        if missing and default is None:
            shown = ["(" + ", ".join(self.variables[p].states[i] for p, i in zip(parents, c)) + ")" for c in missing]
            self.fail(start, f"the probability block of {node!r} has no row for {len(missing)} parent configuration(s) "
                             f"of {parents}, e.g. {', '.join(shown[:_SHOWN])}, and no `default`; add those rows, a "
                             "`default` row or a `table`")
        table = np.empty([len(self.variables[p].states) for p in parents] + [card])
        for config in configs:
            table[config] = rows.get(config, default)
        return table

    # -------------------------------------------------------------- pieces

    def property(self, token: _Token, where: str) -> None:
        if token.kind != "word" or token.text != "property":
            self.fail(token, f"unexpected {token.text!r} in {where}; expected `property ...;` or a closing '}}'")
        while not self.accept(";"):
            if self.next().kind == "end":
                self.fail(token, f"the property in {where} has no closing ';' (truncated file?)")

    def numbers(self, start: _Token, size: int, where: str) -> np.ndarray:
        values = []
        while not self.accept(";"):
            token = self.next()
            if token.text == "," and token.kind == "punct":
                continue
            if token.kind != "word" or not _NUMBER.fullmatch(token.text):
                self.fail(token, f"{where}: expected a probability or ';', found {token.text!r}")
            values.append(float(token.text))
        if len(values) != size:
            self.fail(start, f"{where}: expected {size} probabilities, found {len(values)}; give one per state "
                             "(a table: one per state and parent configuration)")
        return np.asarray(values, dtype=np.float64)

    def code(self, parent: str, state: str, token: _Token, where: str) -> int:
        states = self.variables[parent].states
        if state not in states:
            self.fail(token, f"{state!r} is not a state of the parent {parent!r} {where}; its states are {states}"
                             f"{suggest(state, list(states))}")
        return states.index(state)

    def names(self, close: str, where: str) -> tuple[str, ...]:
        names = []
        while not self.accept(close):
            token = self.next()
            if token.kind == "punct" and token.text == ",":
                continue
            names.append(self.name(token, where))
        return tuple(names)

    def name(self, token: _Token, where: str) -> str:
        if token.kind not in ("word", "string"):
            self.fail(token, f"expected {where}, found {token.text!r}")
        return token.text

    def expect(self, text: str, where: str) -> _Token:
        token = self.next()
        if token.kind != "punct" or token.text != text:
            self.fail(token, f"expected {text!r} {where}, found {token.text!r}")
        return token

    def accept(self, text: str) -> bool:
        if self.peek().kind == "punct" and self.peek().text == text:
            self.pos += 1
            return True
        return False

    def peek(self) -> _Token:
        return self.tokens[self.pos]

    def next(self) -> _Token:
        token = self.tokens[self.pos]
        if token.kind == "end":
            return token
        self.pos += 1
        return token

    def fail(self, token: _Token, message: str) -> None:
        truncated = " (the file ends there: is it truncated?)" if token.kind == "end" else ""
        raise NetworkFileError(f"{self.label}, line {token.line}: {message}{truncated}.")


# ----------------------------------------------------------------------------- writing


def write_bif(network: DiscreteBayesianNetwork, path: str | os.PathLike | None = None, *, name: str = "unknown") -> str:
    """Write ``network`` in the BIF format (UTF-8), readable by :func:`read_bif`, pgmpy and bnlearn.

    Parameters
    ----------
    network : DiscreteBayesianNetwork
        An unbatched network with a CPD for every node; names and states are
        written with ``str`` (quoted when they hold characters other than
        letters, digits and ``_.+-``).
    path : str or path-like, optional
        The file to write; None only returns the text.
    name : str, default "unknown"
        The network's name.

    Returns
    -------
    str
        The BIF text. Probabilities are written with ``repr``, so reading
        them back gives the same float64 values.

    Raises
    ------
    ShapeError
        For a batched network.
    NetworkFileError
        For a node without a CPD, or names that collide as strings or hold a
        double quote or a line break.
    """
    names = file_names(network, re.compile(r'["\n\r]'))
    quote = lambda text: text if _BARE.fullmatch(text) else f'"{text}"'  # noqa: E731
    lines = [f"network {quote(name)} {{", "}"]
    for node in network.nodes:
        node_name, states = names[node]
        lines += [f"variable {quote(node_name)} {{",
                  f"  type discrete [ {len(states)} ] {{ {', '.join(map(quote, states))} }};", "}"]
    for node in network.nodes:
        cpd = network.cpd(node)
        table = cpd.table.detach().cpu().to(torch.float64).numpy()
        parents = [names[p][0] for p in cpd.parents]
        header = quote(names[node][0]) + (" | " + ", ".join(map(quote, parents)) if parents else "")
        lines.append(f"probability ( {header} ) {{")
        if not parents:
            lines.append(f"  table {', '.join(map(repr, table.tolist()))};")
        else:
            for config in itertools.product(*(range(n) for n in table.shape[:-1])):
                states = ", ".join(quote(names[p][1][i]) for p, i in zip(cpd.parents, config))
                lines.append(f"  ( {states} ) {', '.join(map(repr, table[config].tolist()))};")
        lines.append("}")
    text = "\n".join(lines) + "\n"
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text
