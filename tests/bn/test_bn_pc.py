"""The PC algorithm and its CI tests (probmodels.bn.pc) against pgmpy and scipy, plus calibration
of the p-values under independence and recovery of a collider."""

import math

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from probmodels import DataError, ModelSpecError
from probmodels.bn.cpdag import dag_to_cpdag, structural_hamming_distance
from probmodels.bn.pc import ci_test, pc

from test_bn_structure import sample

pytest.importorskip("pgmpy")


def pgmpy_pc(frame, **kwargs):
    from pgmpy.causal_discovery import PC

    search = PC(variant="stable", return_type="pdag", show_progress=False, **kwargs).fit(frame)
    graph = nx.DiGraph(search.causal_graph_.edges)
    graph.add_nodes_from(frame.columns)
    return graph


@pytest.mark.parametrize("method", ["chi_square", "g_test"])
def test_ci_tests_match_pgmpy_on_alarm(method):
    from pgmpy.ci_tests import ChiSquare, GSq

    truth, data = sample("alarm")
    theirs = (ChiSquare if method == "chi_square" else GSq)(data.astype(str))
    rng = np.random.default_rng(0)
    nodes = list(data.columns)
    compared = 0
    for _ in range(30):
        x, y, *z = rng.choice(nodes, 2 + int(rng.integers(0, 4)), replace=False)
        ours = ci_test(data, x, y, z, method=method, yates=True)
        theirs.run_test(x, y, list(z))
        if math.isnan(theirs.statistic_):  # pgmpy's G-test: xlogy(0, nan) = nan for every empty stratum
            continue
        compared += 1
        assert ours.dof == theirs.dof_, (x, y, z)
        assert math.isclose(ours.statistic, theirs.statistic_, rel_tol=1e-10, abs_tol=1e-9), (x, y, z)
        if ours.dof:
            assert math.isclose(ours.p_value, theirs.p_value_, rel_tol=1e-8, abs_tol=1e-300), (x, y, z)
        else:
            assert math.isnan(ours.p_value)
    assert compared >= 15


def test_ci_tests_match_scipy_and_full_dof():
    truth, data = sample("alarm")
    for x, y in (("HR", "CO"), ("INTUBATION", "SHUNT"), ("HYPOVOLEMIA", "ANAPHYLAXIS")):
        table = pd.crosstab(data[x], data[y]).to_numpy()
        for method, name in (("chi_square", "pearson"), ("g_test", "log-likelihood")):
            ours = ci_test(data, x, y, method=method, dof="full")
            statistic, p_value, dof, _ = stats.chi2_contingency(table, correction=False, lambda_=name)
            assert ours.dof == dof == (truth.cardinality(x) - 1) * (truth.cardinality(y) - 1)
            assert math.isclose(ours.statistic, statistic, rel_tol=1e-10) and math.isclose(ours.p_value, p_value, rel_tol=1e-8, abs_tol=1e-300)
    full = ci_test(data, "HR", "CO", ["LVFAILURE", "HYPOVOLEMIA"], dof="full")
    assert full.dof == (3 - 1) * (3 - 1) * 2 * 2


def test_p_values_are_uniform_under_conditional_independence():
    rng = np.random.default_rng(1)
    p_values = {"chi_square": [], "g_test": []}
    for _ in range(300):
        z = rng.integers(0, 2, 400)
        x = np.where(rng.random(400) < 0.8, z, rng.integers(0, 3, 400))
        y = np.where(rng.random(400) < 0.7, z, rng.integers(0, 2, 400))
        frame = pd.DataFrame({"x": x, "y": y, "z": z})
        for method in p_values:
            p_values[method].append(ci_test(frame, "x", "y", ["z"], method=method).p_value)
    for method, values in p_values.items():
        assert stats.kstest(values, "uniform").pvalue > 1e-3, method
    dependent = pd.DataFrame({"x": x, "y": (x + rng.integers(0, 2, 400)) % 3, "z": z})
    assert ci_test(dependent, "x", "y", ["z"]).p_value < 1e-6


def test_pc_orients_a_collider_and_its_consequences():
    rng = np.random.default_rng(2)
    n = 3000
    a, b = rng.integers(0, 2, n), rng.integers(0, 2, n)
    c = np.where(rng.random(n) < 0.9, a + b, rng.integers(0, 3, n))
    d = np.where(rng.random(n) < 0.85, c, (c + 1) % 3)
    frame = pd.DataFrame({"a": a, "b": b, "c": c, "d": d})
    cpdag = pc(frame)
    assert set(cpdag.edges) == {("a", "c"), ("b", "c"), ("c", "d")}
    assert cpdag.graph["separating_sets"][frozenset(("a", "b"))] == ()
    dag = pc(frame, method="g_test", return_type="dag")
    assert set(dag.edges) == set(cpdag.edges)


@pytest.mark.parametrize("name", ["asia"])
def test_pc_matches_pgmpy_pc(name):
    truth, data = sample(name)
    frame = data.astype(str)
    ours = pc(data, significance_level=0.01, yates=True)
    theirs = pgmpy_pc(frame, ci_test="chi_square", significance_level=0.01)
    assert set(ours.edges) == set(theirs.edges)
    target = dag_to_cpdag(truth.graph)
    assert structural_hamming_distance(target, ours) <= structural_hamming_distance(target, theirs) <= 4
    plain = pc(data)
    assert structural_hamming_distance(target, plain) <= 6
    dag = pc(data, return_type="dag")
    assert nx.is_directed_acyclic_graph(dag)
    assert {frozenset(e) for e in dag.edges} == {frozenset(e) for e in plain.edges}


@pytest.mark.slow
def test_pc_matches_pgmpy_pc_on_alarm():
    truth, data = sample("alarm")
    ours = pc(data, yates=True)
    theirs = pgmpy_pc(data.astype(str), ci_test="chi_square", significance_level=0.01)
    assert set(ours.edges) == set(theirs.edges)
    assert structural_hamming_distance(dag_to_cpdag(truth.graph), ours) <= 8


def test_pc_errors():
    truth, data = sample("asia", rows=300)
    with pytest.raises(ModelSpecError, match=r"method must be one of \('chi_square', 'g_test'\), got 'fisher'"):
        pc(data, method="fisher")
    with pytest.raises(ModelSpecError, match=r"dof must be 'adjusted' or 'full'"):
        ci_test(data, "asia", "tub", dof="exact")
    with pytest.raises(ModelSpecError, match=r"significance_level must lie in \(0, 1\), got 1.5"):
        pc(data, significance_level=1.5)
    with pytest.raises(ModelSpecError, match=r"return_type must be 'cpdag' or 'dag'"):
        pc(data, return_type="pdag")
    with pytest.raises(ModelSpecError, match=r"max_cond_vars must be >= 0"):
        pc(data, max_cond_vars=-2)
    with pytest.raises(ModelSpecError, match=r"ci_test names \['nope'\], which are not columns"):
        ci_test(data, "asia", "nope")
    with pytest.raises(ModelSpecError, match=r"x, y and z must be distinct"):
        ci_test(data, "asia", "tub", ["asia"])
    holes = data.astype(object)
    holes.iloc[4, 0] = None
    with pytest.raises(DataError, match=r"missing values \{'asia': 1\}"):
        pc(holes)
    limited = pc(data, max_cond_vars=0)
    assert all(len(s) == 0 for s in limited.graph["separating_sets"].values())
