"""Exact BN algorithms (probmodels.bn.ops) against enumeration of the full joint.

Oracle: on random networks of 5-7 nodes with 2-3 states (random DAGs, random
CPTs with some exact zeros) the full joint has at most 3**7 entries, so every
query is a slice-and-sum of it. Everything in float64 to 1e-12.
"""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from probmodels import DataError, ShapeError
from probmodels.bn import DiscreteBayesianNetwork, Inference, ops

TOL = 1e-12
SEEDS = range(12)


def random_network(seed, batch=(), num_vars=None, zeros=True):
    """A random DAG over 5-7 variables with 2-3 states and random CPTs (exact zeros when ``zeros``)."""
    rng = np.random.default_rng(seed)
    V = num_vars or int(rng.integers(5, 8))
    cards = tuple(int(c) for c in rng.integers(2, 4, V))
    parents = tuple(tuple(int(u) for u in sorted(rng.choice(v, min(v, int(rng.integers(0, 4))), replace=False))) for v in range(V))
    tables = []
    for v in range(V):
        table = rng.random(batch + tuple(cards[p] for p in parents[v]) + (cards[v],)) ** 2
        if zeros and parents[v]:
            table[..., 0] *= rng.random(table.shape[:-1]) > 0.2
        tables.append(torch.tensor(table / table.sum(-1, keepdims=True)))
    return ops.NetworkTensors(cards, parents, tuple(tables))


def unbatch(net, index):
    return ops.NetworkTensors(net.cards, net.parents, tuple(t[index] if t.dim() > len(p) + 1 else t for t, p in zip(net.tables, net.parents)))


def full_joint(net):
    args = []
    for v, (parents, table) in enumerate(zip(net.parents, net.tables)):
        args += [table.numpy(), list(parents) + [v]]
    return np.einsum(*args, list(range(len(net.cards))))


def condition(joint, evidence_vars, codes):
    index = [slice(None)] * joint.ndim
    for v, c in zip(evidence_vars, codes):
        if c >= 0:
            index[v] = slice(c, c + 1)
    return joint[tuple(index)]


def oracle_marginal(joint, query, evidence_vars, codes):
    sub = condition(joint, evidence_vars, codes)
    others = tuple(a for a in range(joint.ndim) if a not in query)
    table = sub.sum(others) if others else sub
    kept = [a for a in range(joint.ndim) if a in query]
    table = np.transpose(table, [kept.index(q) for q in query])
    return table, sub.sum()


def random_query(net, rng, max_query=2, max_evidence=3):
    V = len(net.cards)
    order = rng.permutation(V)
    query = tuple(int(v) for v in order[: int(rng.integers(1, max_query + 1))])
    evidence_vars = tuple(int(v) for v in order[len(query) : len(query) + int(rng.integers(0, max_evidence + 1))])
    codes = torch.tensor([int(rng.integers(0, net.cards[v])) for v in evidence_vars], dtype=torch.long)
    return query, evidence_vars, codes


def to_device(net, device):
    return ops.NetworkTensors(net.cards, net.parents, tuple(t.to(device) for t in net.tables))


# ----------------------------------------------------------------------------- exact queries


@pytest.mark.parametrize("seed", SEEDS)
def test_marginals_and_evidence_match_enumeration(seed, device):
    net = random_network(seed)
    joint = full_joint(net)
    rng = np.random.default_rng(100 + seed)
    dev_net = to_device(net, device)
    for _ in range(15):
        query, ev_vars, codes = random_query(net, rng)
        expected, p_e = oracle_marginal(joint, query, ev_vars, codes.tolist())
        result = ops.marginals(dev_net, query, ev_vars, codes.to(device))
        assert result.probs.device.type == device.type
        assert math.isclose(result.log_evidence.exp().item(), p_e, rel_tol=0, abs_tol=TOL)
        if p_e > 0:
            np.testing.assert_allclose(result.probs.cpu().numpy(), expected / p_e, rtol=0, atol=TOL)
            log_e = ops.log_probability_of_evidence(dev_net, ev_vars, codes.to(device))
            assert math.isclose(log_e.item(), math.log(p_e), abs_tol=1e-11)
        else:
            assert torch.isneginf(result.log_evidence) and bool((result.probs == 0).all())


@pytest.mark.parametrize("seed", SEEDS)
def test_mpe_and_map_match_enumeration(seed):
    net = random_network(seed)
    joint = full_joint(net)
    rng = np.random.default_rng(200 + seed)
    for _ in range(10):
        query, ev_vars, codes = random_query(net, rng)
        sub = condition(joint, ev_vars, codes.tolist())
        best = ops.mpe(net, ev_vars, codes)
        if sub.max() == 0:
            assert torch.isneginf(best.log_prob)
            continue
        assert math.isclose(best.log_prob.item(), math.log(sub.max()), abs_tol=1e-11)
        assert math.isclose(joint[tuple(best.codes.tolist())], sub.max(), rel_tol=1e-12)
        assert best.codes[list(ev_vars)].tolist() == codes.tolist()
        table, _ = oracle_marginal(joint, query, ev_vars, codes.tolist())
        found = ops.map_assignment(net, query, ev_vars, codes)
        assert math.isclose(found.log_prob.exp().item(), table.max(), rel_tol=0, abs_tol=TOL)
        assert math.isclose(table[tuple(found.codes.tolist())], table.max(), rel_tol=0, abs_tol=TOL)


@pytest.mark.parametrize("seed", SEEDS[:6])
def test_batched_evidence_equals_single_queries(seed, device):
    net = to_device(random_network(seed), device)
    rng = np.random.default_rng(300 + seed)
    query, ev_vars, _ = random_query(net, rng, max_evidence=3)
    B = 40
    codes = torch.tensor(
        [[int(rng.integers(-1, net.cards[v])) for v in ev_vars] for _ in range(B)], dtype=torch.long, device=device
    ).reshape(B, len(ev_vars))
    batched = ops.marginals(net, query, ev_vars, codes)
    best = ops.mpe(net, ev_vars, codes)
    assert batched.probs.shape == (B,) + tuple(net.cards[q] for q in query)
    for b in range(B):
        seen = [j for j in range(len(ev_vars)) if codes[b, j] >= 0]
        single_vars = tuple(ev_vars[j] for j in seen)
        single = ops.marginals(net, query, single_vars, codes[b, seen])
        torch.testing.assert_close(batched.probs[b], single.probs, rtol=0, atol=TOL)
        torch.testing.assert_close(batched.log_evidence[b], single.log_evidence, rtol=0, atol=1e-11)
        one = ops.mpe(net, single_vars, codes[b, seen])
        torch.testing.assert_close(best.log_prob[b], one.log_prob, rtol=0, atol=1e-11)


def test_batched_tables_broadcast_with_batched_evidence():
    net = random_network(3, batch=(4,))
    query, ev_vars = (0,), (len(net.cards) - 1,)
    codes = torch.arange(net.cards[ev_vars[0]]).reshape(-1, 1, 1)  # (E, 1, 1): broadcasts against the (4,) tables
    result = ops.marginals(net, query, ev_vars, codes)
    best = ops.mpe(net, ev_vars, codes)
    assert result.probs.shape == (len(codes), 4, net.cards[0])
    for d in range(4):
        joint = full_joint(unbatch(net, d))
        for e in range(len(codes)):
            expected, p_e = oracle_marginal(joint, query, ev_vars, [e])
            np.testing.assert_allclose(result.probs[e, d].numpy(), expected / p_e, rtol=0, atol=TOL)
            assert math.isclose(best.log_prob[e, d].item(), math.log(condition(joint, ev_vars, [e]).max()), abs_tol=1e-11)


def test_intervention_equals_enumeration_on_mutilated_network():
    for seed in SEEDS:
        net = random_network(seed, zeros=False)
        rng = np.random.default_rng(400 + seed)
        target = int(rng.integers(1, len(net.cards)))
        state = int(rng.integers(0, net.cards[target]))
        mutilated = ops.intervene(net, {target: state})
        assert mutilated.parents[target] == ()
        point = np.zeros(net.cards[target])
        point[state] = 1
        args = []
        for v, (parents, table) in enumerate(zip(net.parents, net.tables)):
            args += [point, [v]] if v == target else [table.numpy(), list(parents) + [v]]
        joint = np.einsum(*args, list(range(len(net.cards))))
        query = tuple(v for v in range(len(net.cards)) if v != target)[:2]
        expected, p_e = oracle_marginal(joint, query, (), [])
        np.testing.assert_allclose(ops.marginals(mutilated, query).probs.numpy(), expected, rtol=0, atol=TOL)


def test_more_variables_than_einsum_letters():
    V = 70
    g = torch.Generator().manual_seed(0)
    tables = [torch.softmax(torch.randn(2, generator=g, dtype=torch.float64), -1)]
    tables += [torch.softmax(torch.randn(2, 2, generator=g, dtype=torch.float64), -1) for _ in range(V - 1)]
    net = ops.NetworkTensors((2,) * V, ((),) + tuple((v - 1,) for v in range(1, V)), tuple(tables))
    forward = tables[0]
    for t in tables[1:]:
        forward = forward @ t
    torch.testing.assert_close(ops.marginals(net, (V - 1,)).probs, forward, rtol=0, atol=TOL)
    joint_best = ops.mpe(net, (V - 1,), torch.tensor([1]))
    assert joint_best.codes.shape == (V,) and joint_best.codes[-1] == 1


# ----------------------------------------------------------------------------- zero-probability evidence


def test_zero_probability_evidence_is_minus_inf_and_never_nan():
    net = DiscreteBayesianNetwork(
        cpds={
            "A": ((), ("a0", "a1"), [1.0, 0.0]),
            "B": (("A",), ("b0", "b1"), [[0.3, 0.7], [0.5, 0.5]]),
        }
    )
    tensors = net.tensors()
    result = ops.marginals(tensors, (1,), (0,), torch.tensor([1]))
    assert torch.isneginf(result.log_evidence) and not bool(result.probs.isnan().any())
    assert bool((result.probs == 0).all())
    best = ops.mpe(tensors, (0,), torch.tensor([1]))
    assert torch.isneginf(best.log_prob) and not bool(best.codes.lt(0).any())
    infer = Inference(net)
    assert torch.isneginf(infer.log_probability({"A": "a1"}))
    with pytest.raises(DataError, match=r"evidence \{'A': 'a1'\} has probability 0"):
        infer.query(["B"], {"A": "a1"})
    rows = pd.DataFrame({"A": ["a0", "a1", "a0"]})
    with pytest.raises(DataError, match=r"\[\{'A': 'a1'\}\] has probability 0"):
        infer.query_batch(["B"], rows)
    log_p = infer.log_probability(rows)
    assert torch.isneginf(log_p[1]) and bool(torch.isfinite(log_p[[0, 2]]).all())


def test_evidence_codes_are_checked():
    net = random_network(0)
    with pytest.raises(DataError, match=r"evidence column 0 \(variable 1\) holds codes outside"):
        ops.marginals(net, (0,), (1,), torch.tensor([7]))
    with pytest.raises(ShapeError, match=r"expected \(\.\.\., 2\)"):
        ops.marginals(net, (0,), (1, 2), torch.tensor([0]))
    with pytest.raises(DataError, match="duplicates"):
        ops.marginals(net, (0, 0))
    with pytest.raises(DataError, match="integer state codes"):
        ops.marginals(net, (0,), (1,), torch.tensor([0.0]))


# ----------------------------------------------------------------------------- sampling


def test_forward_sampling_matches_joint():
    net = random_network(5)
    joint = full_joint(net).reshape(-1)
    n = 40_000
    draws = ops.sample(net, n, generator=torch.Generator().manual_seed(1))
    assert draws.codes.shape == (n, len(net.cards)) and bool((draws.log_weights == 0).all())
    flat = np.ravel_multi_index(draws.codes.T.numpy(), net.cards)
    observed = np.bincount(flat, minlength=joint.size)
    assert observed[joint == 0].sum() == 0
    keep = joint * n >= 5
    expected = joint[keep] * n
    statistic = ((observed[keep] - expected) ** 2 / expected).sum()
    assert stats.chi2.sf(statistic, keep.sum() - 1) > 1e-4


def test_likelihood_weighting_estimates_posterior():
    net = random_network(7, zeros=False)
    V = len(net.cards)
    ev_vars, codes = (V - 1, V - 2), torch.tensor([0, 1])
    exact = ops.marginals(net, (0,), ev_vars, codes).probs
    draws = ops.sample(net, 50_000, ev_vars, codes, generator=torch.Generator().manual_seed(2))
    assert bool((draws.codes[:, list(ev_vars)] == codes).all())
    weights = draws.log_weights.exp()
    estimate = torch.zeros(net.cards[0], dtype=torch.float64).index_add_(0, draws.codes[:, 0], weights) / weights.sum()
    ess = weights.sum() ** 2 / (weights**2).sum()
    tolerance = 5 * (exact * (1 - exact) / ess).sqrt() + 1e-3
    assert bool(((estimate - exact).abs() <= tolerance).all())
    log_z = torch.logsumexp(draws.log_weights, 0) - math.log(len(weights))
    assert abs(log_z - ops.log_probability_of_evidence(net, ev_vars, codes)) < 0.05


# ----------------------------------------------------------------------------- named API


def test_inference_api_by_name_matches_ops():
    tensors = random_network(2, zeros=False)
    names = [f"X{v}" for v in range(len(tensors.cards))]
    states = [tuple(f"s{k}" for k in range(c)) for c in tensors.cards]
    cpds = {
        names[v]: (tuple(names[p] for p in tensors.parents[v]), states[v], tensors.tables[v]) for v in range(len(names))
    }
    net = DiscreteBayesianNetwork(cpds=cpds)
    assert net.nodes == tuple(names)
    infer = Inference(net)
    evidence = {"X4": "s1", "X2": "s0"}
    result = infer.query(["X0", "X1"], evidence, joint=True)
    expected = ops.marginals(tensors, (0, 1), (4, 2), torch.tensor([1, 0])).probs
    torch.testing.assert_close(result.probs, expected, rtol=0, atol=TOL)
    series = result.to_pandas()
    assert series.index.names == ["X0", "X1"] and math.isclose(series.sum(), 1.0)
    marginal = infer.query(["X0"], evidence)["X0"]
    torch.testing.assert_close(marginal.probs, expected.sum(1), rtol=0, atol=TOL)
    frame = pd.DataFrame({"X4": ["s1", "s0", None], "X2": ["s0", "s0", "s1"]})
    batch = infer.query_batch(["X0"], frame)["X0"]
    for i, row in enumerate(frame.to_dict("records")):
        torch.testing.assert_close(batch.probs[i], infer.query(["X0"], row)["X0"].probs, rtol=0, atol=TOL)
    assert batch.to_pandas().shape == (3, tensors.cards[0])
    assignment = infer.map_query(evidence=evidence)
    codes = ops.mpe(tensors, (4, 2), torch.tensor([1, 0])).codes
    assert assignment == {n: states[v][int(codes[v])] for v, n in enumerate(names) if n not in evidence}
    assert infer.map_query(evidence=frame.iloc[:2]).iloc[0].to_dict() == assignment
    causal = infer.query(["X4"], do={"X2": "s1"})["X4"].probs
    torch.testing.assert_close(causal, Inference(net.do({"X2": "s1"})).query(["X4"])["X4"].probs, rtol=0, atol=TOL)
    sample = infer.sample(100, generator=torch.Generator().manual_seed(0))
    assert list(sample.columns) == names and sample["X0"].dtype == "category"
    weighted = infer.sample(10, {"X4": "s1"}, codes=True, generator=torch.Generator().manual_seed(0))
    assert (weighted["X4"] == 1).all() and "_weight" in weighted
    approx = infer.approximate_query(["X0"], evidence, num_samples=20_000, generator=torch.Generator().manual_seed(0))
    assert (approx.probs - expected.sum(1)).abs().max() < 0.05


def test_named_api_errors():
    net = DiscreteBayesianNetwork(cpds={"rain": ((), ("no", "yes"), [0.8, 0.2]), "wet": (("rain",), ("dry", "wet"), [[0.9, 0.1], [0.2, 0.8]])})
    infer = Inference(net)
    with pytest.raises(ValueError, match=r"unknown node 'wett'.*did you mean 'wet'"):
        infer.query(["wett"])
    with pytest.raises(DataError, match=r"'damp' is not a state of 'wet'; its states are \('dry', 'wet'\)"):
        infer.query(["rain"], {"wet": "damp"})
    with pytest.raises(DataError, match=r"column 'wet' holds \['damp'\]"):
        infer.query_batch(["rain"], pd.DataFrame({"wet": ["dry", "damp"]}))
    with pytest.raises(TypeError, match="wrap a single name in a list"):
        infer.query("rain")


def test_enumeration_helper_is_consistent():
    """The oracle itself: the full joint sums to one and matches a product of CPT entries."""
    net = random_network(1)
    joint = full_joint(net)
    assert math.isclose(joint.sum(), 1.0, rel_tol=1e-12)
    for x in itertools.islice(itertools.product(*map(range, net.cards)), 20):
        direct = np.prod([net.tables[v][tuple(x[p] for p in net.parents[v]) + (x[v],)].item() for v in range(len(x))])
        assert math.isclose(joint[x], direct, rel_tol=1e-12, abs_tol=1e-300)
