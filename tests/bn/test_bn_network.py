"""DiscreteBayesianNetwork: validation messages, pgmpy round trip, and exact
queries on the bnlearn networks shipped inside pgmpy against pgmpy's
VariableElimination (to 1e-9)."""

import functools
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from probmodels import DataError, ModelSpecError, ShapeError
from probmodels.bn import DiscreteBayesianNetwork, Inference, do, from_pgmpy, to_pgmpy

pgmpy_inference = pytest.importorskip("pgmpy.inference")

# name -> number of random queries (pgmpy's VE is slow on the larger networks)
BNLEARN = {"asia": 45, "cancer": 35, "earthquake": 35, "survey": 35, "sachs": 30, "child": 20, "insurance": 15, "alarm": 15}


@functools.lru_cache(maxsize=None)
def load(name):
    from pgmpy.utils import get_example_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        model = get_example_model(name)
    return model, from_pgmpy(model)


def sprinkler(**overrides):
    cpds = {
        "rain": ((), ("no", "yes"), [0.8, 0.2]),
        "sprinkler": (("rain",), ("off", "on"), [[0.6, 0.4], [0.99, 0.01]]),
        "wet": (("rain", "sprinkler"), ("dry", "wet"), [[[1.0, 0.0], [0.1, 0.9]], [[0.2, 0.8], [0.01, 0.99]]]),
    }
    cpds.update(overrides)
    return DiscreteBayesianNetwork(cpds=cpds)


# ----------------------------------------------------------------------------- validation


def test_valid_network_properties():
    net = sprinkler()
    assert net.nodes == ("rain", "sprinkler", "wet")
    assert set(net.edges) == {("rain", "sprinkler"), ("rain", "wet"), ("sprinkler", "wet")}
    assert net.parents("wet") == ("rain", "sprinkler") and net.states("wet") == ("dry", "wet")
    assert net.cpd("wet").table.dtype == torch.float64 and net.batch_shape == ()
    assert net.to(dtype=torch.float32).cpd("rain").table.dtype == torch.float32
    assert "3 nodes, 3 edges, float64" in repr(net)


def test_cycle_through_add_edge_names_the_cycle():
    net = DiscreteBayesianNetwork([("A", "B"), ("B", "C")])
    with pytest.raises(ModelSpecError, match=r"edge 'C' -> 'A' would create the cycle 'A' -> 'B' -> 'C' -> 'A'"):
        net.add_edge("C", "A")
    assert ("C", "A") not in net.edges


def test_cycle_in_constructor_edges_and_cpds():
    with pytest.raises(ModelSpecError, match=r"would create the cycle 'A' -> 'B' -> 'A'"):
        DiscreteBayesianNetwork([("A", "B"), ("B", "A")])
    with pytest.raises(ModelSpecError, match=r"would create the cycle"):
        DiscreteBayesianNetwork(cpds={"A": (("B",), ("a0", "a1"), [[1, 0], [0, 1]]), "B": (("A",), ("b0", "b1"), [[1, 0], [0, 1]])})


def test_self_loop():
    with pytest.raises(ModelSpecError, match=r"self-loop 'A' -> 'A'"):
        DiscreteBayesianNetwork([("A", "A")])


def test_rows_not_summing_to_one_list_the_parent_configurations():
    with pytest.raises(
        ModelSpecError,
        match=r"the CPT of 'sprinkler': rows over its states \('off', 'on'\) must sum to 1 \(tolerance 1e-06\); "
        r"1 parent configuration\(s\) do not: rain='yes' sums to 0\.9\b",
    ):
        sprinkler(sprinkler=(("rain",), ("off", "on"), [[0.6, 0.4], [0.8, 0.1]]))
    with pytest.raises(ModelSpecError, match=r"2 parent configuration\(s\) do not: rain='no', sprinkler='off' sums to 1\.1; rain='yes', sprinkler='on' sums to 0\.5"):
        sprinkler(wet=(("rain", "sprinkler"), ("dry", "wet"), [[[1.0, 0.1], [0.1, 0.9]], [[0.2, 0.8], [0.25, 0.25]]]))
    with pytest.raises(ModelSpecError, match=r"the only row sums to 1\.5"):
        sprinkler(rain=((), ("no", "yes"), [0.8, 0.7]))
    sprinkler(rain=((), ("no", "yes"), [0.8, 0.2 + 5e-7]))  # within tolerance


def test_negative_and_nan_entries():
    with pytest.raises(ModelSpecError, match=r"the CPT of 'sprinkler' has 1 negative, infinite or NaN entries, e\.g\. rain='yes', state 'on' = -0\.1\. Probabilities must be finite and >= 0"):
        sprinkler(sprinkler=(("rain",), ("off", "on"), [[0.6, 0.4], [1.1, -0.1]]))
    with pytest.raises(ModelSpecError, match=r"state 'yes' = nan"):
        sprinkler(rain=((), ("no", "yes"), [1.0, float("nan")]))


def test_wrong_shape_reports_received_and_expected():
    with pytest.raises(
        ModelSpecError,
        match=r"the CPT of 'sprinkler' has shape \(3, 2\) but parents \('rain',\) and 2 states \('off', 'on'\) "
        r"need shape \(\*batch, \*parent_cards, card\) = \(\.\.\., 2, 2\)",
    ):
        sprinkler(sprinkler=(("rain",), ("off", "on"), [[0.6, 0.4], [0.99, 0.01], [0.5, 0.5]]))
    three = [[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]]
    with pytest.raises(ModelSpecError, match=r"pgmpy's \(card, parent configurations\) layout"):
        sprinkler(sprinkler=(("rain",), ("off", "on", "broken"), np.array(three).T))


def test_parent_cardinality_checked_in_both_orders():
    net = DiscreteBayesianNetwork([("A", "B")])
    net.add_cpd("B", ["A"], ["b0", "b1"], [[0.5, 0.5]] * 3)  # A's cardinality is not known yet
    with pytest.raises(ModelSpecError, match=r"'A' gets 2 states but the CPT of its child 'B' has 3 along the axis of 'A'"):
        net.add_cpd("A", [], ["a0", "a1"], [0.5, 0.5])
    net.add_cpd("A", [], ["a0", "a1", "a2"], [0.2, 0.3, 0.5])
    assert net.cardinality("A") == 3


def test_missing_cpds_unknown_nodes_and_states():
    net = DiscreteBayesianNetwork([("A", "B")])
    net.add_cpd("A", [], ["a0", "a1"], [0.5, 0.5])
    with pytest.raises(ModelSpecError, match=r"nodes \['B'\] have no CPD; add one per node with add_cpd"):
        Inference(net)
    with pytest.raises(ModelSpecError, match=r"parent 'Z' of 'B' is not a node of the network \(nodes: A, B\)"):
        net.add_cpd("B", ["Z"], ["b0"], [[1.0]])
    with pytest.raises(ModelSpecError, match=r"unknown node 'C'"):
        net.states("C")
    with pytest.raises(DataError, match=r"'a9' is not a state of 'A'; its states are \('a0', 'a1'\)"):
        net.state_code("A", "a9")
    with pytest.raises(ModelSpecError, match=r"the graph has edges into 'B' from \[\"'A'\"\] that its CPD does not list"):
        net.add_cpd("B", [], ["b0", "b1"], [0.5, 0.5])
    with pytest.raises(ModelSpecError, match=r"states \('b0', 'b0'\) of 'B' must be a non-empty sequence of distinct names"):
        net.add_cpd("B", ["A"], ["b0", "b0"], [[0.5, 0.5]] * 2)
    net.add_cpd("B", ["A"], ["b0", "b1"], [[0.5, 0.5]] * 2)
    with pytest.raises(ModelSpecError, match=r"node 'B' already has a CPD with parents \('A',\)"):
        net.add_edge("C", "B")
    with pytest.raises(TypeError, match=r"the table of 'B' must be numeric"):
        net.add_cpd("B", ["A"], ["b0", "b1"], [["x", "y"]] * 2)
    net.add_cpd("A", [], ["a0", "a1"], torch.full((4, 2), 0.5))
    assert net.batch_shape == (4,)
    with pytest.raises(ShapeError, match=r"batch shape \(3,\), which does not broadcast with the batch shapes \[\(4,\)\]"):
        net.add_cpd("B", ["A"], ["b0", "b1"], torch.full((3, 2, 2), 0.5))


def test_do_is_graph_surgery():
    net = sprinkler()
    mutilated = do(net, {"sprinkler": "on"})
    assert ("rain", "sprinkler") not in mutilated.edges and ("rain", "sprinkler") in net.edges
    infer = Inference(mutilated)
    p_rain = infer.query(["rain"], {"sprinkler": "on"})["rain"].probs
    torch.testing.assert_close(p_rain, torch.tensor([0.8, 0.2], dtype=torch.float64), rtol=0, atol=1e-15)
    conditioned = Inference(net).query(["rain"], {"sprinkler": "on"})["rain"].probs
    assert conditioned[1] < 0.02  # conditioning is not intervening
    with pytest.raises(DataError, match=r"'maybe' is not a state of 'sprinkler'"):
        net.do({"sprinkler": "maybe"})


# ----------------------------------------------------------------------------- pgmpy


def test_pgmpy_round_trip():
    """Exact up to the rescaling of rows to sum to one (sachs has rows that are off by 1e-7)."""
    for name, atol in (("asia", 0.0), ("child", 1e-15), ("sachs", 2e-7)):
        model, net = load(name)
        back = to_pgmpy(net)
        assert back.check_model() and set(back.edges()) == set(model.edges())
        for cpd in model.get_cpds():
            other = back.get_cpds(cpd.variable)
            assert other.variables == cpd.variables and other.state_names == cpd.state_names
            np.testing.assert_allclose(other.get_values(), cpd.get_values(), rtol=0, atol=atol)
        again = from_pgmpy(back)
        assert again.nodes == net.nodes
        for node in net.nodes:
            assert again.cpd(node).parents == net.cpd(node).parents and again.states(node) == net.states(node)
            torch.testing.assert_close(again.cpd(node).table, net.cpd(node).table, rtol=0, atol=1e-15)
    with pytest.raises(ShapeError, match="Index a draw first"):
        to_pgmpy(sprinkler(rain=((), ("no", "yes"), [[0.8, 0.2], [0.5, 0.5]])))


def pgmpy_table(factor, variables, net):
    """pgmpy factor values with axes in ``variables`` order and states in the network's order."""
    values = np.transpose(factor.values, [factor.variables.index(v) for v in variables])
    for axis, v in enumerate(variables):
        order = [factor.state_names[v].index(s) for s in net.states(v)]
        values = np.take(values, order, axis=axis)
    return values


@pytest.mark.parametrize("name", list(BNLEARN))
def test_bnlearn_queries_match_pgmpy_variable_elimination(name):
    _, net = load(name)
    # pgmpy answers for the same model: the bnlearn files of alarm and sachs have rows that sum to 1 +- 1e-7,
    # which probmodels rescales (on the raw files the answers differ by up to ~2e-8, from which barren nodes
    # each side drops).
    ve = pgmpy_inference.VariableElimination(to_pgmpy(net))
    infer = Inference(net)
    rng = np.random.default_rng(len(name))
    rows = infer.sample(BNLEARN[name], generator=torch.Generator().manual_seed(len(name)))
    nodes = list(net.nodes)
    for i in range(BNLEARN[name]):
        order = rng.permutation(len(nodes))
        n_query = 1 + int(rng.integers(0, 2))
        n_evidence = min(int(rng.integers(1, 6)), len(nodes) - n_query)
        query = [nodes[j] for j in order[:n_query]]
        evidence = {nodes[j]: rows.iloc[i][nodes[j]] for j in order[n_query : n_query + n_evidence]}
        ours = infer.query(query, evidence, joint=True).probs.numpy()
        theirs = ve.query(query, evidence=evidence, joint=True, show_progress=False)
        np.testing.assert_allclose(ours, pgmpy_table(theirs, query, net), rtol=0, atol=1e-9, err_msg=f"{query} | {evidence}")
        if i % 5 == 0:
            found = infer.map_query(query, evidence)
            best = ve.map_query(query, evidence=evidence, show_progress=False)
            value = lambda a: ours[tuple(net.states(q).index(a[q]) for q in query)]  # noqa: E731
            assert abs(value(found) - value(best)) <= 1e-9


@pytest.mark.parametrize("name", ["asia", "alarm"])
def test_bnlearn_batched_queries_match_single_queries(name):
    _, net = load(name)
    infer = Inference(net)
    nodes = list(net.nodes)
    rows = infer.sample(64, generator=torch.Generator().manual_seed(3))
    evidence = rows[nodes[-4:]].astype(object)
    evidence.iloc[::3, 0] = None  # some rows leave a node unobserved
    batched = infer.query_batch([nodes[0], nodes[1]], evidence, joint=True)
    for i in range(0, 64, 7):
        single = infer.query([nodes[0], nodes[1]], evidence.iloc[i].to_dict(), joint=True)
        torch.testing.assert_close(batched.probs[i], single.probs, rtol=0, atol=1e-12)
        torch.testing.assert_close(batched.log_evidence[i], single.log_evidence, rtol=0, atol=1e-12)
    log_lik = infer.log_probability(rows)
    assert log_lik.shape == (64,) and bool(torch.isfinite(log_lik).all())
    frame = infer.map_query(evidence=evidence.iloc[:5])
    assert list(frame.index) == list(evidence.index[:5]) and nodes[0] in frame.columns and nodes[-1] not in frame.columns


def test_query_result_to_pandas_names_states():
    infer = Inference(sprinkler())
    series = infer.query(["wet"], {"rain": "yes"})["wet"].to_pandas()
    assert list(series.index) == ["dry", "wet"]
    frame = infer.query_batch(["wet"], pd.DataFrame({"rain": ["yes", "no"]}))["wet"].to_pandas()
    assert list(frame.columns) == ["dry", "wet"] and frame.shape == (2, 2)


def test_embedded_asia_equals_bnlearn_asia_in_pgmpy():
    from probmodels.datasets import asia

    _, reference = load("asia")
    embedded = asia()
    assert set(embedded.edges) == set(reference.edges)
    for node in reference.nodes:
        ours, theirs = embedded.cpd(node), reference.cpd(node)
        assert ours.parents == theirs.parents and ours.states == theirs.states, node
        torch.testing.assert_close(ours.table, theirs.table, rtol=0, atol=0)
