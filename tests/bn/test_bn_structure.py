"""Structure learning (probmodels.bn.scores, .structure, .cpdag) against pgmpy's scores,
HillClimbSearch, DAG.to_pdag and SHD, with brute-force local optimality checks."""

import functools
import itertools
import math
import time
import warnings

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch

from probmodels import ConvergenceWarning, DataError, ModelSpecError
from probmodels.bn import Inference, from_pgmpy, learn
from probmodels.bn.cpdag import apply_meek_rules, dag_to_cpdag, pdag_to_dag, structural_hamming_distance
from probmodels.bn.scores import DecomposableScore, encode_data, family_score
from probmodels.bn.structure import fit_parameters, hill_climb

pytest.importorskip("pgmpy")

ROWS = 10_000


@functools.lru_cache(maxsize=None)
def sample(name, rows=ROWS, seed=0):
    from pgmpy.utils import get_example_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = from_pgmpy(get_example_model(name))
    return net, Inference(net).sample(rows, generator=torch.Generator().manual_seed(seed))


def state_names(net):
    return {n: list(net.states(n)) for n in net.nodes}


def pgmpy_score(name, frame, names, ess=10):
    from pgmpy.structure_score import BIC, K2, BDeu

    return {"bic": lambda: BIC(frame, state_names=names), "bdeu": lambda: BDeu(frame, equivalent_sample_size=ess, state_names=names),
            "k2": lambda: K2(frame, state_names=names)}[name]()


def pgmpy_k2_excess(data, node, parents, cards):
    """pgmpy's K2 adds lgamma(r) for every parent configuration absent from the data (see test_bn_learning.py)."""
    if not parents:
        return 0.0
    unseen = math.prod(cards[p] for p in parents) - len(data.groupby(list(parents), observed=True))
    return unseen * math.lgamma(cards[node])


def pgmpy_hill_climb(frame, score):
    from pgmpy.causal_discovery import HillClimbSearch

    return nx.DiGraph(HillClimbSearch(scoring_method=score, return_type="dag", show_progress=False).fit(frame).causal_graph_.edges)


def random_families(nodes, rng, count, max_parents=3):
    for _ in range(count):
        node = nodes[rng.integers(len(nodes))]
        others = [n for n in nodes if n != node]
        k = int(rng.integers(0, max_parents + 1))
        yield node, tuple(others[i] for i in rng.choice(len(others), k, replace=False))


def random_dag(nodes, rng, p=0.3):
    order = list(rng.permutation(nodes))
    return nx.DiGraph([(a, b) for i, a in enumerate(order) for b in order[i + 1:] if rng.random() < p])


# ----------------------------------------------------------------------------- local scores


@pytest.mark.parametrize("score", ["bic", "bdeu", "k2"])
def test_local_scores_match_pgmpy_on_alarm(score):
    truth, data = sample("alarm")
    frame = data.astype(str)
    theirs = pgmpy_score(score, frame, state_names(truth), ess=7)
    ours = DecomposableScore(data, score, equivalent_sample_size=7)
    cards = {n: truth.cardinality(n) for n in truth.nodes}
    families = [(n, truth.parents(n)) for n in truth.nodes] + list(random_families(list(truth.nodes), np.random.default_rng(1), 40))
    for node, parents in families:
        expected = theirs.local_score(node, parents)
        if score == "k2":
            expected -= pgmpy_k2_excess(data, node, parents, cards)
        assert math.isclose(ours.local(node, parents), expected, rel_tol=1e-10, abs_tol=1e-9), (score, node, parents)
    total = ours.total(truth.graph)
    assert math.isclose(total, sum(ours.local(n, truth.parents(n)) for n in truth.nodes), rel_tol=1e-12)
    if score != "bic":
        marginal = learn.log_marginal_likelihood(truth.graph, data, prior=score, equivalent_sample_size=7).item()
        assert math.isclose(total, marginal, rel_tol=1e-10)


def test_family_score_on_count_tensors_numpy_and_torch():
    truth, data = sample("asia")
    codes = encode_data(data)
    index = {n: i for i, n in enumerate(codes.nodes)}
    family = ["smoke", "lung", "either"]
    flat = np.ravel_multi_index(tuple(codes.codes[index[n]] for n in family), tuple(codes.cards[index[n]] for n in family))
    counts = np.bincount(flat, minlength=8).reshape(4, 2).astype(float)
    batch = np.stack([counts, counts[::-1], np.zeros_like(counts) + 3])
    for score in ("bic", "aic", "bdeu", "k2"):
        scorer = DecomposableScore(data, score, equivalent_sample_size=3)
        expected = scorer.local("either", ("smoke", "lung"))
        value = family_score(counts, score, equivalent_sample_size=3, sample_size=len(data))
        assert math.isclose(float(value), expected, rel_tol=1e-12), score
        on_torch = family_score(torch.as_tensor(batch), score, equivalent_sample_size=3)
        on_numpy = family_score(batch, score, equivalent_sample_size=3)
        assert isinstance(on_torch, torch.Tensor) and on_torch.shape == (3,)
        np.testing.assert_allclose(on_torch.numpy(), on_numpy, rtol=1e-12)
    likelihood = family_score(counts, "aic") + counts.shape[0] * (counts.shape[1] - 1)
    seen = counts > 0
    loglik = (counts[seen] * np.log((counts / counts.sum(1, keepdims=True))[seen])).sum()
    assert math.isclose(float(likelihood), float(loglik), rel_tol=1e-12)


def test_scores_are_cached_by_parent_set_and_sparse_for_large_families():
    rng = np.random.default_rng(0)
    data = pd.DataFrame(rng.integers(0, 6, size=(300, 9)), columns=list("abcdefghi"))
    scorer = DecomposableScore(data, "bdeu", equivalent_sample_size=2)
    big = tuple("bcdefghi")  # 6^8 * 6 cells: counted sparsely
    value = scorer.local("a", big)
    assert scorer.local("a", big[::-1]) == value and scorer.cache_size == 1
    flat = np.ravel_multi_index(tuple(data[c].to_numpy() for c in big + ("a",)), (6,) * 9)
    _, cells = np.unique(flat, return_counts=True)
    _, rows = np.unique(flat // 6, return_counts=True)
    alpha, beta = 2 / 6**8, 2 / 6**9
    expected = sum(math.lgamma(n + beta) - math.lgamma(beta) for n in cells) + sum(math.lgamma(alpha) - math.lgamma(n + alpha) for n in rows)
    assert math.isclose(value, expected, rel_tol=1e-12)


# ----------------------------------------------------------------------------- hill climbing


def local_moves(graph, nodes):
    """Every DAG one add/remove/reverse move away from ``graph``."""
    for a, b in itertools.permutations(nodes, 2):
        g = graph.copy()
        if graph.has_edge(a, b):
            g.remove_edge(a, b)
            yield g
            g = g.copy()
            g.add_edge(b, a)
        elif not graph.has_edge(b, a):
            g.add_edge(a, b)
        else:
            continue
        if nx.is_directed_acyclic_graph(g):
            yield g


@pytest.mark.parametrize("score", ["bic", "bdeu", "k2", "aic"])
def test_hill_climb_ends_at_a_local_optimum_found_by_brute_force(score):
    truth, data = sample("asia", rows=2000, seed=3)
    scorer = DecomposableScore(data, score)
    graph = hill_climb(scorer)
    assert nx.is_directed_acyclic_graph(graph) and list(graph.nodes) == list(data.columns)
    assert math.isclose(graph.graph["score"], scorer.total(graph), rel_tol=1e-12)
    best_neighbour = max(scorer.total(g) for g in local_moves(graph, list(graph.nodes)))
    assert best_neighbour < graph.graph["score"] + 1e-4
    assert graph.graph["score"] > scorer.total(nx.DiGraph(truth.graph.edges)) - 50


@pytest.mark.parametrize("score", ["bic", "bdeu", "k2"])
def test_asia_recovery_no_worse_than_pgmpy_hill_climb(score):
    truth, data = sample("asia")
    frame = data.astype(str)
    ours = hill_climb(data, score)
    theirs = pgmpy_hill_climb(frame, pgmpy_score(score, frame, state_names(truth)))
    scorer = DecomposableScore(data, score)
    if score != "k2":  # pgmpy's K2 optimises another score (see pgmpy_k2_excess)
        assert ours.graph["score"] >= scorer.total(theirs) - 1e-6
    true = nx.DiGraph(truth.graph.edges)
    for cpdag in (False, True):
        mine = structural_hamming_distance(true, ours, equivalence_class=cpdag)
        assert mine <= structural_hamming_distance(true, theirs, equivalence_class=cpdag) + (0 if cpdag else 1)
    assert structural_hamming_distance(true, ours, equivalence_class=True) <= 5


def test_alarm_recovery_and_speed():
    truth, data = sample("alarm")
    start = time.perf_counter()
    graph = hill_climb(data, "bic")
    elapsed = time.perf_counter() - start
    true = nx.DiGraph(truth.graph.edges)
    assert structural_hamming_distance(true, graph, equivalence_class=True) <= 30
    assert structural_hamming_distance(true, graph) <= 30
    assert elapsed < 10, elapsed


@pytest.mark.slow
@pytest.mark.parametrize("score", ["bic", "bdeu"])
def test_alarm_recovery_no_worse_than_pgmpy_hill_climb(score):
    """pgmpy's K2 search is left out: its K2 rewards unseen parent configurations and runs for minutes (290 edges)."""
    truth, data = sample("alarm")
    frame = data.astype(str)
    ours = hill_climb(data, score)
    theirs = pgmpy_hill_climb(frame, pgmpy_score(score, frame, state_names(truth)))
    true = nx.DiGraph(truth.graph.edges)
    shd = structural_hamming_distance(true, ours, equivalence_class=True)
    assert shd <= structural_hamming_distance(true, theirs, equivalence_class=True)
    assert structural_hamming_distance(true, ours) <= structural_hamming_distance(true, theirs)


def test_constraints_are_honoured():
    truth, data = sample("asia", rows=3000, seed=1)
    free = hill_climb(data, "bic")
    required = [("xray", "asia"), ("dysp", "smoke")]
    forbidden = [next(iter(free.edges))]
    graph = hill_climb(data, "bic", required_edges=required, forbidden_edges=forbidden, max_indegree=1)
    assert all(graph.has_edge(*e) for e in required)
    assert not any(graph.has_edge(*e) for e in forbidden)
    assert max(d for _, d in graph.in_degree()) <= 1
    assert graph.graph["score"] < free.graph["score"]
    start = hill_climb(data, "bic", start_dag=free)
    assert set(start.edges) == set(free.edges) and start.graph["n_iter"] == 0
    patient = hill_climb(data, "bic", patience=10, tabu_length=10)
    assert patient.graph["score"] >= free.graph["score"] - 1e-9
    with pytest.warns(ConvergenceWarning, match=r"max_iter=2 moves"):
        short = hill_climb(data, "bic", max_iter=2)
    assert short.number_of_edges() == 2 and short.graph["n_iter"] == 2


def test_plain_columns_state_names_and_fit_parameters():
    truth, data = sample("asia", rows=2000)
    plain = data.astype(str)
    names = state_names(truth)
    graph = hill_climb(plain, "bdeu", state_names=names)
    assert set(graph.edges) == set(hill_climb(data, "bdeu").edges)
    net = fit_parameters(graph, plain, state_names=names)
    assert set(net.edges) == set(graph.edges)
    reference = learn.maximum_likelihood(graph, data)
    for node in net.nodes:
        torch.testing.assert_close(net.cpd(node).table, reference.cpd(node).table)
    smoothed = fit_parameters(graph, data, prior="k2")
    assert bool((smoothed.cpd("either").table > 0).all())


def test_errors_name_the_problem():
    truth, data = sample("asia", rows=500)
    holes = data.astype(object)
    holes.iloc[[2, 9], 3] = np.nan
    with pytest.raises(DataError, match=r"missing values \{'lung': 2\} \(first rows \[2, 9\]\)"):
        hill_climb(holes)
    with pytest.raises(DataError, match=r"required_edges has the edge \('asia', 'nope'\), but 'nope' is not a column"):
        hill_climb(data, required_edges=[("asia", "nope")])
    with pytest.raises(ModelSpecError, match=r"edges \[\('asia', 'tub'\)\] are both required and forbidden"):
        hill_climb(data, required_edges=[("asia", "tub")], forbidden_edges=[("asia", "tub")])
    with pytest.raises(ModelSpecError, match=r"required_edges have a cycle"):
        hill_climb(data, required_edges=[("asia", "tub"), ("tub", "either"), ("either", "asia")])
    with pytest.raises(ModelSpecError, match=r"max_indegree must be >= 0, got -1"):
        hill_climb(data, max_indegree=-1)
    with pytest.raises(ModelSpecError, match=r"nodes \{'either': 2\} start with more parents than max_indegree=1"):
        hill_climb(data, required_edges=[("tub", "either"), ("lung", "either")], max_indegree=1)
    with pytest.raises(ModelSpecError, match=r"start_dag has the forbidden edges \[\('asia', 'tub'\)\]"):
        hill_climb(data, start_dag=[("asia", "tub")], forbidden_edges=[("asia", "tub")])
    with pytest.raises(ModelSpecError, match=r"start_dag with the required edges has a cycle"):
        hill_climb(data, start_dag=[("tub", "asia")], required_edges=[("asia", "tub")])
    with pytest.raises(ModelSpecError, match=r"self-loop"):
        hill_climb(data, forbidden_edges=[("asia", "asia")])
    with pytest.raises(ModelSpecError, match=r"score must be one of"):
        hill_climb(data, "bde")
    with pytest.raises(ModelSpecError, match=r"equivalent_sample_size must be a finite number > 0"):
        hill_climb(data, "bdeu", equivalent_sample_size=0)
    with pytest.raises(ModelSpecError, match=r"epsilon must be a number >= 0"):
        hill_climb(data, epsilon=-1.0)
    with pytest.raises(DataError, match=r"column 'asia' holds \['maybe'\]"):
        hill_climb(data.astype(str).assign(asia="maybe"), state_names={"asia": ["yes", "no"]})
    with pytest.raises(TypeError, match=r"data must be a pandas DataFrame"):
        hill_climb(data.to_numpy())
    scorer = DecomposableScore(data)
    with pytest.raises(ModelSpecError, match=r"parents \['tub', 'asia'\] of 'asia' must be distinct and must not contain 'asia'"):
        scorer.local("asia", ["tub", "asia"])
    with pytest.raises(DataError, match=r"'nope' is not a column of the data"):
        scorer.local("nope")
    with pytest.raises(ModelSpecError, match=r"the graph has a cycle"):
        scorer.total([("asia", "tub"), ("tub", "asia")])


# ----------------------------------------------------------------------------- CPDAG and SHD


def pgmpy_dag(graph):
    from pgmpy.base import DAG

    dag = DAG(graph.edges)
    dag.add_nodes_from(graph.nodes)
    return dag


def test_shd_matches_pgmpy_on_random_dags():
    from pgmpy.metrics import SHD

    rng = np.random.default_rng(0)
    nodes = list("abcdefgh")
    for _ in range(30):
        a, b = random_dag(nodes, rng), random_dag(nodes, rng)
        a.add_nodes_from(nodes)
        b.add_nodes_from(nodes)
        for cost in (1, 2):
            assert structural_hamming_distance(a, b, reversal_cost=cost) == SHD(edge_reverse_penalty=cost)(
                true_causal_graph=pgmpy_dag(a), est_causal_graph=pgmpy_dag(b)
            )
    chain, reversed_chain, collider = nx.DiGraph([(1, 2), (2, 3)]), nx.DiGraph([(3, 2), (2, 1)]), nx.DiGraph([(1, 2), (3, 2)])
    assert structural_hamming_distance(chain, reversed_chain) == 2
    assert structural_hamming_distance(chain, reversed_chain, equivalence_class=True) == 0
    assert structural_hamming_distance(chain, collider, equivalence_class=True) == 2
    assert structural_hamming_distance(chain, nx.DiGraph([(1, 2)])) == 1
    with pytest.raises(ModelSpecError, match="reversal_cost must be 1 or 2"):
        structural_hamming_distance(chain, chain, reversal_cost=3)


@pytest.mark.parametrize("name", ["asia", "alarm", "child"])
def test_cpdag_matches_pgmpy_and_extends_back(name):
    truth, _ = sample(name, rows=10)
    dag = nx.DiGraph(truth.graph.edges)
    cpdag = dag_to_cpdag(dag)
    theirs = pgmpy_dag(dag).to_pdag()
    assert set(cpdag.edges) == set(nx.DiGraph(theirs.edges).edges)
    extension = pdag_to_dag(cpdag)
    assert nx.is_directed_acyclic_graph(extension)
    assert set(dag_to_cpdag(extension).edges) == set(cpdag.edges)
    assert structural_hamming_distance(dag, extension, equivalence_class=True) == 0


def test_meek_rules_one_by_one():
    def undirected(*pairs):
        return [e for a, b in pairs for e in ((a, b), (b, a))]

    r1 = apply_meek_rules(nx.DiGraph([("c", "a")] + undirected(("a", "b"))))
    assert r1.has_edge("a", "b") and not r1.has_edge("b", "a")
    r2 = apply_meek_rules(nx.DiGraph([("a", "c"), ("c", "b")] + undirected(("a", "b"))))
    assert not r2.has_edge("b", "a")
    r3 = apply_meek_rules(nx.DiGraph([("c", "b"), ("d", "b")] + undirected(("a", "b"), ("a", "c"), ("a", "d"))))
    assert not r3.has_edge("b", "a") and r3.has_edge("c", "a") and r3.has_edge("a", "c")
    r4 = apply_meek_rules(nx.DiGraph([("d", "c"), ("c", "b")] + undirected(("a", "b"), ("a", "c"), ("a", "d"))))
    assert not r4.has_edge("b", "a")
    none = apply_meek_rules(nx.DiGraph(undirected(("a", "b"), ("b", "c"))))
    assert none.number_of_edges() == 4
