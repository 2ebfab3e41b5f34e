"""BIF and XMLBIF I/O (probmodels.bn.bif, probmodels.bn.xmlbif) against pgmpy's readers and writers,
the grammar's corners, and one test per kind of bad file."""

import functools
import gzip
import re
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from probmodels import ModelSpecError, ShapeError
from probmodels.bn import DiscreteBayesianNetwork, from_pgmpy
from probmodels.bn.bif import read_bif, write_bif
from probmodels.bn.xmlbif import read_network, read_xmlbif, write_network, write_xmlbif

pytest.importorskip("pgmpy")

NETWORKS = ("asia", "alarm", "child", "insurance")


@functools.lru_cache(maxsize=None)
def pgmpy_model(name):
    from pgmpy.utils import get_example_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return get_example_model(name)


def assert_same(ours, reference, tol=1e-12):
    assert set(ours.nodes) == set(reference.nodes)
    assert set(ours.edges) == set(reference.edges)
    for node in reference.nodes:
        a, b = ours.cpd(node), reference.cpd(node)
        assert a.parents == b.parents and a.states == b.states, node
        assert torch.allclose(a.table, b.table, rtol=0, atol=tol), node


def quirky_network():
    """Names that need quoting, states that look like operators, full-precision random tables."""
    rng = np.random.default_rng(0)
    dirichlet = lambda *shape: rng.dirichlet(np.ones(shape[-1]), size=shape[:-1])  # noqa: E731
    return DiscreteBayesianNetwork(cpds={
        "blood pressure": ((), ("low", "high"), dirichlet(2)),
        "CO2": ((), ("<7.5", ">=7.5", "a b"), dirichlet(3)),
        "x.1": (("blood pressure", "CO2"), ("yes", "no", "maybe"), dirichlet(2, 3, 3)),
        "y": (("x.1",), ("0", "1"), dirichlet(3, 2)),
    })


# ----------------------------------------------------------------------------- round trips and oracles


@pytest.mark.parametrize("suffix", [".bif", ".xml"])
def test_round_trip_through_a_file_is_exact(tmp_path, suffix):
    net = quirky_network()
    path = tmp_path / f"net{suffix}"
    text = write_network(net, path)
    assert path.read_text(encoding="utf-8") == text
    back = read_network(path)
    assert_same(back, net)
    assert back.nodes == net.nodes  # declaration order is kept
    reader = read_bif if suffix == ".bif" else read_xmlbif
    assert_same(reader(text), net)  # the text itself
    assert_same(reader(str(path)), net)  # a path as a plain string
    assert_same(reader(path.read_bytes()), net)  # the bytes


@pytest.mark.parametrize("name", NETWORKS)
def test_files_written_by_pgmpy_read_as_from_pgmpy(tmp_path, name):
    from pgmpy.readwrite import BIFWriter, XMLBIFWriter

    model = pgmpy_model(name)
    reference = from_pgmpy(model)
    BIFWriter(model).write(str(tmp_path / "net.bif"))
    assert_same(read_bif(tmp_path / "net.bif"), reference)
    XMLBIFWriter(model).write(str(tmp_path / "net.xml"))
    if name == "child":
        # pgmpy's XMLBIFWriter rewrites the states '<7.5' and '>=7.5' of CO2Report both as '_7_5': refused, not merged
        with pytest.raises(ModelSpecError, match=r"'CO2Report'.*distinct"):
            read_xmlbif(tmp_path / "net.xml")
    else:
        assert_same(read_xmlbif(tmp_path / "net.xml"), reference)


@pytest.mark.parametrize("name", NETWORKS)
def test_files_we_write_are_read_by_pgmpy(tmp_path, name):
    from pgmpy.readwrite import BIFReader, XMLBIFReader

    reference = from_pgmpy(pgmpy_model(name))
    write_bif(reference, tmp_path / "net.bif")
    write_xmlbif(reference, tmp_path / "net.xml")
    assert_same(from_pgmpy(BIFReader(str(tmp_path / "net.bif")).get_model()), reference)
    assert_same(from_pgmpy(XMLBIFReader(str(tmp_path / "net.xml")).get_model()), reference)


@pytest.mark.parametrize("name", ["alarm", "child", "insurance", "hailfinder"])
def test_bnlearn_repository_files_read_as_pgmpy_reads_them(name):
    import pgmpy

    path = Path(pgmpy.__file__).parent / "utils" / "example_models" / f"{name}.bif.gz"
    assert_same(read_bif(gzip.decompress(path.read_bytes())), from_pgmpy(pgmpy_model(name)))


# ----------------------------------------------------------------------------- grammar


GRAMMAR = """// a comment
network "test net" { property author = someone ; }
/* a block comment
   over two lines with { braces } and ; */
variable A { type discrete [ 2 ] { a0, a1 }; property position = (1, 2) ; }
variable "B b" {
  type discrete[3] { "b 0", b1 , b2 };
}
variable C { type discrete [ 2 ] { c0 c1 }; }
probability ( A ) { table 2.5e-1, 7.5E-1 ; }
probability ( "B b" | A ) {
  ( a0 ) 0.2, 0.3, 0.5;
  default 1e-1, .4, 0.5;   // for a1
  property note = x ;
}
probability ( C A "B b" ) {
  table 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4;
}
"""


def test_grammar_comments_quotes_properties_default_table_and_old_header():
    net = read_bif(GRAMMAR)
    assert net.nodes == ("A", "B b", "C")
    assert net.states("B b") == ("b 0", "b1", "b2") and net.states("C") == ("c0", "c1")
    assert torch.allclose(net.cpd("A").table, torch.tensor([0.25, 0.75], dtype=torch.float64))
    assert torch.allclose(net.cpd("B b").table, torch.tensor([[0.2, 0.3, 0.5], [0.1, 0.4, 0.5]], dtype=torch.float64))
    # a conditional `table` runs over (C, A, B) with B fastest, as pgmpy reads it
    assert net.cpd("C").parents == ("A", "B b")
    expected = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.9, 0.8, 0.7], [0.6, 0.5, 0.4]]).reshape(2, 2, 3)
    assert torch.allclose(net.cpd("C").table, torch.as_tensor(np.moveaxis(expected, 0, -1)))


def test_conditional_table_order_agrees_with_pgmpy(tmp_path):
    from pgmpy.readwrite import BIFReader

    text = """variable A { type discrete [ 2 ] { a0, a1 }; }
variable B { type discrete [ 3 ] { b0, b1, b2 }; }
variable C { type discrete [ 2 ] { c0, c1 }; }
probability ( A ) { table 0.25, 0.75; }
probability ( B | A ) { ( a0 ) 0.2, 0.3, 0.5; ( a1 ) 0.1, 0.4, 0.5; }
probability ( C | A, B ) { table 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4; }
"""
    (tmp_path / "t.bif").write_text(text)
    assert_same(read_bif(text), from_pgmpy(BIFReader(str(tmp_path / "t.bif")).get_model()))


def test_read_network_and_write_network_dispatch_on_suffix(tmp_path):
    net = quirky_network()
    write_network(net, tmp_path / "n.xmlbif")
    assert (tmp_path / "n.xmlbif").read_text().startswith("<?xml")
    assert_same(read_network(tmp_path / "n.xmlbif"), net)
    with pytest.raises(ModelSpecError, match=r"suffix '\.txt'.*format='bif'"):
        read_network(tmp_path / "n.txt")
    write_network(net, tmp_path / "n.txt", format="bif")
    assert_same(read_network(tmp_path / "n.txt", format="bif"), net)


def test_writers_refuse_batched_networks_and_unwritable_names():
    net = quirky_network()
    batched = DiscreteBayesianNetwork(cpds={"r": ((), ("a", "b"), torch.full((3, 2), 0.5))})
    with pytest.raises(ShapeError, match="batch shape"):
        write_bif(batched)
    quoted = DiscreteBayesianNetwork(cpds={'say "hi"': ((), ("a", "b"), [0.5, 0.5])})
    with pytest.raises(ModelSpecError, match="cannot write the name"):
        write_bif(quoted)
    assert_same(read_xmlbif(write_xmlbif(quoted)), quoted)  # XML escapes the quotes
    clash = DiscreteBayesianNetwork(cpds={"r": ((), (1, "1"), [0.5, 0.5])})
    with pytest.raises(ModelSpecError, match="collide"):
        write_xmlbif(clash)
    assert write_bif(net).count("probability") == 4


# ----------------------------------------------------------------------------- bad BIF files

ASIA = write_bif(from_pgmpy(pgmpy_model("asia")))


def bif_error(tmp_path, text, *patterns, data=None):
    """Read ``text`` (or ``data`` bytes) from a file and check that the message names it and matches every pattern."""
    path = tmp_path / "bad.bif"
    path.write_bytes(data if data is not None else text.encode())
    with pytest.raises(ModelSpecError) as info:
        read_bif(path)
    message = str(info.value)
    assert str(path) in message
    for pattern in patterns:
        assert re.search(pattern, message), (pattern, message)
    return message


def test_truncated_bif(tmp_path):
    bif_error(tmp_path, ASIA[: ASIA.index("( yes, no ) 0.8")], r"line \d+", "truncated")
    bif_error(tmp_path, ASIA[: ASIA.index("probability ( xray")], r"'xray' has no probability block", "truncated")
    bif_error(tmp_path, ASIA + "/* never closed", "never closed")


def test_undeclared_variable_in_a_probability_block(tmp_path):
    text = ASIA.replace("probability ( dysp | bronc, either )", "probability ( dysp | bronc, eithr )")
    message = bif_error(tmp_path, text, "undeclared variable 'eithr'", r"\(did you mean 'either'\?\)")
    line = 1 + text[: text.index("probability ( dysp")].count("\n")
    assert f"line {line}:" in message


def test_table_length_mismatch(tmp_path):
    bif_error(tmp_path, ASIA.replace("table 0.01, 0.99;", "table 0.01, 0.99, 0.0;"),
              r"probability block of 'asia', the table: expected 2 probabilities, found 3")
    bif_error(tmp_path, ASIA.replace("( yes ) 0.6, 0.4;", "( yes ) 0.6;"), r"'bronc', row \(yes\): expected 2")


def test_unknown_state_in_a_row(tmp_path):
    bif_error(tmp_path, ASIA.replace("( yes ) 0.6, 0.4;", "( maybe ) 0.6, 0.4;"),
              r"'maybe' is not a state of the parent 'smoke'", r"\('yes', 'no'\)")


def test_duplicate_variable_and_duplicate_block(tmp_path):
    extra = "variable asia {\n  type discrete [ 2 ] { yes, no };\n}\n"
    bif_error(tmp_path, extra + ASIA, "'asia' is declared twice", "first at line 1")
    block = ASIA[ASIA.index("probability ( asia )") :].split("}")[0] + "}\n"
    bif_error(tmp_path, ASIA + block, "'asia' has a second probability block")


def test_state_count_and_missing_rows(tmp_path):
    bif_error(tmp_path, ASIA.replace("[ 2 ] { yes, no }", "[ 3 ] { yes, no }", 1), r"declares \[ 3 \] states but lists 2")
    bif_error(tmp_path, ASIA.replace("( no ) 0.3, 0.7;", ""), r"no row for 1 parent configuration.*\(no\)", "default")


def test_non_utf8_bif(tmp_path):
    data = ASIA.replace("yes, no", "oui, non", 1).encode().replace(b"oui", "\u00e9t\u00e9".encode("latin-1"))
    bif_error(tmp_path, None, "not valid UTF-8", "line 4", "iconv", data=data)


def test_rows_not_summing_to_one_get_the_networks_message(tmp_path):
    text = ASIA.replace("( yes ) 0.6, 0.4;", "( yes ) 0.6, 0.5;")
    line = 1 + text[: text.index("probability ( bronc")].count("\n")
    bif_error(tmp_path, text, f"line {line}: probability block of 'bronc'", "must sum to 1", r"smoke='yes' sums to 1\.1")


def test_cycle_and_syntax_errors(tmp_path):
    text = ASIA.replace("probability ( asia ) {\n  table 0.01, 0.99;", "probability ( asia | xray ) {\n  ( yes ) 0.01, 0.99;\n  ( no ) 0.5, 0.5;")
    bif_error(tmp_path, text, "cycle")
    bif_error(tmp_path, ASIA.replace("( yes ) 0.6, 0.4;", "( yes ) 0.6, x;"), r"expected a probability or ';', found 'x'")
    bif_error(tmp_path, "graph g { }", "expected 'network', 'variable' or 'probability'")


# ----------------------------------------------------------------------------- bad XMLBIF files

ASIA_XML = write_xmlbif(from_pgmpy(pgmpy_model("asia")))
BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
""" + "".join(f' <!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">\n' for i in range(1, 10)) + """]>
<BIF VERSION="0.3"><NETWORK><NAME>&lol9;</NAME></NETWORK></BIF>
"""


def xml_error(tmp_path, text, *patterns, data=None):
    path = tmp_path / "bad.xml"
    path.write_bytes(data if data is not None else text.encode())
    with pytest.raises(ModelSpecError) as info:
        read_xmlbif(path)
    message = str(info.value)
    assert str(path) in message
    for pattern in patterns:
        assert re.search(pattern, message), (pattern, message)
    return message


def test_billion_laughs_is_refused_without_expansion(tmp_path):
    started = time.perf_counter()
    xml_error(tmp_path, BILLION_LAUGHS, "line 2", "billion laughs", "<!DOCTYPE")
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("address", ["file://{secret}", "http://127.0.0.1:9/secret"])
def test_external_entities_are_refused_without_fetching(tmp_path, address):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    text = ASIA_XML.replace(
        "<BIF", f'<!DOCTYPE BIF [ <!ENTITY x SYSTEM "{address.format(secret=secret)}"> ]>\n<BIF', 1
    ).replace("<NAME>unknown</NAME>", "<NAME>&x;</NAME>")
    message = xml_error(tmp_path, text, "read local files and URLs")
    assert "TOP-SECRET" not in message
    # an entity reference without a declaration is a syntax error, not a lookup
    xml_error(tmp_path, ASIA_XML.replace("<NAME>unknown</NAME>", "<NAME>&x;</NAME>"), "undefined entity", "well-formed")


def test_bad_xmlbif_files(tmp_path):
    xml_error(tmp_path, ASIA_XML[: len(ASIA_XML) // 2], "not well-formed", "truncated")
    xml_error(tmp_path, ASIA_XML.replace("<GIVEN>either</GIVEN>", "<GIVEN>eithr</GIVEN>"),
              "definition of '(dysp|xray)' uses the undeclared variable 'eithr'", r"did you mean 'either'\?\)")
    xml_error(tmp_path, ASIA_XML.replace("<TABLE>0.01 0.99</TABLE>", "<TABLE>0.01 0.99 0.5</TABLE>"),
              r"<TABLE> of 'asia' has 3 values.*need 2")
    xml_error(tmp_path, ASIA_XML.replace("<TABLE>0.01 0.99</TABLE>", "<TABLE>0.01 x</TABLE>"), r"\['x'\].*not numbers")
    xml_error(tmp_path, ASIA_XML.replace("<TABLE>0.01 0.99</TABLE>", "<TABLE>0.01 0.9</TABLE>"),
              "definition of 'asia'", "must sum to 1")
    first = ASIA_XML[ASIA_XML.index("<VARIABLE") : ASIA_XML.index("</VARIABLE>") + len("</VARIABLE>")]
    xml_error(tmp_path, ASIA_XML.replace(first, first + first), "'asia' is declared twice")
    xml_error(tmp_path, ASIA_XML.replace('TYPE="nature"', 'TYPE="decision"', 1), "influence diagrams")
    definition = ASIA_XML[ASIA_XML.index("<DEFINITION>") : ASIA_XML.index("</DEFINITION>") + len("</DEFINITION>")]
    xml_error(tmp_path, ASIA_XML.replace(definition, ""), r"\['asia'\] have no <DEFINITION>")
    xml_error(tmp_path, None, "not valid UTF-8", data=ASIA_XML.replace("unknown", "caf\u00e9").encode("latin-1"))
