"""Fast paths of exact inference and counting against the general torch paths.

- :mod:`probmodels.bn.contract` runs small CPU sum-product plans in ``np.einsum``;
  forcing torch (``NUMPY_MAX_ENTRIES = 0``) must give the same numbers to 1e-12,
  and tensors that need gradients must keep the torch path. Its greedy
  variable-elimination plans must agree with opt_einsum's.
- :class:`~probmodels.bn.Inference` answers single queries from a cached joint
  ``P(query, evidence variables)`` per pattern; it must agree with
  :func:`probmodels.bn.ops.marginals`, fall back for large patterns and keep
  the zero-probability error.
- :func:`probmodels.bn.ops.family_counts` must not depend on the memory layout
  or integer dtype of the codes.
"""

import numpy as np
import pandas as pd
import pytest
import torch

from probmodels import DataError, ShapeError
from probmodels.bn import DiscreteBayesianNetwork, Inference, contract, learn, ops
from probmodels.bn import inference as inference_module
from test_bn_ops import random_network, random_query

TOL = 1e-12


def named(tensors):
    """The network of ``tensors`` with nodes ``X0..`` and states ``s0..``."""
    names = [f"X{v}" for v in range(len(tensors.cards))]
    cpds = {
        names[v]: (tuple(names[p] for p in tensors.parents[v]), tuple(f"s{k}" for k in range(c)), tensors.tables[v])
        for v, c in enumerate(tensors.cards)
    }
    return DiscreteBayesianNetwork(cpds=cpds), names


@pytest.mark.parametrize("seed", range(8))
def test_numpy_contraction_equals_torch(seed, monkeypatch):
    net = random_network(seed, batch=(3,) if seed % 2 else ())
    rng = np.random.default_rng(seed)
    queries = [random_query(net, rng) for _ in range(10)]
    fast = [ops.marginals(net, *q) for q in queries]
    monkeypatch.setattr(contract, "NUMPY_MAX_ENTRIES", 0)
    for q, expected in zip(queries, fast):
        slow = ops.marginals(net, *q)
        torch.testing.assert_close(expected.probs, slow.probs, rtol=0, atol=TOL)
        torch.testing.assert_close(expected.log_evidence, slow.log_evidence, rtol=0, atol=TOL)


@pytest.mark.parametrize("seed", range(6))
def test_elimination_plan_equals_opt_einsum_plan(seed, monkeypatch):
    net = random_network(seed, num_vars=7)
    rng = np.random.default_rng(seed)
    queries = [random_query(net, rng, max_query=3) for _ in range(10)]
    contract._plan.cache_clear()
    eliminated = [ops.marginals(net, *q) for q in queries]
    best = [ops.mpe(net, *q[1:]) for q in queries]
    monkeypatch.setattr(contract, "ELIMINATION_MAX_OPERANDS", 0)
    contract._plan.cache_clear()
    for q, expected, mpe in zip(queries, eliminated, best):
        torch.testing.assert_close(ops.marginals(net, *q).probs, expected.probs, rtol=0, atol=TOL)
        torch.testing.assert_close(ops.mpe(net, *q[1:]).log_prob, mpe.log_prob, rtol=0, atol=TOL)
    contract._plan.cache_clear()


def test_elimination_path_sums_out_in_order_of_weight():
    # chain 0 -> 1 -> 2 with the query on 2: eliminate 0 (weight 3 < 8), then 1; smaller factors first
    path = contract._elimination_path(((0,), (0, 1), (1, 2)), frozenset({2}), {0: 2, 1: 3, 2: 4})
    assert path == [(0, 1), (3, 2)]


def test_numpy_path_is_taken_only_when_allowed():
    net = random_network(0)
    operands = list(net.tables)
    labels = [p + (v,) for v, p in enumerate(net.parents)]
    plan = contract._plan(tuple(labels), (0,), tuple(sorted((v, c) for v, c in enumerate(net.cards))))
    assert contract._small_on_cpu(operands, plan)
    grad = [t.clone().requires_grad_() for t in operands]
    assert not contract._small_on_cpu(grad, plan)
    with torch.no_grad():
        assert contract._small_on_cpu(grad, plan)


def test_gradients_flow_through_sum_contraction():
    net = random_network(3, zeros=False)
    tables = tuple(t.clone().requires_grad_() for t in net.tables)
    result = ops.marginals(ops.NetworkTensors(net.cards, net.parents, tables), (0,), (1,), torch.tensor([0]))
    result.log_evidence.backward()
    assert tables[1].grad is not None and bool(torch.isfinite(tables[1].grad).all())


@pytest.mark.parametrize("seed", range(8))
def test_cached_joint_queries_equal_ops(seed):
    tensors = random_network(seed)
    net, names = named(tensors)
    infer = Inference(net)
    rng = np.random.default_rng(50 + seed)
    for _ in range(20):
        query, ev_vars, codes = random_query(tensors, rng)
        evidence = {names[v]: f"s{int(c)}" for v, c in zip(ev_vars, codes)}
        expected = ops.marginals(tensors, query, ev_vars, codes)
        if torch.isneginf(expected.log_evidence):
            with pytest.raises(DataError, match="has probability 0"):
                infer.query([names[v] for v in query], evidence, joint=True)
            continue
        for _ in range(2):  # the second answer comes from the cache
            result = infer.query([names[v] for v in query], evidence, joint=True)
            torch.testing.assert_close(result.probs, expected.probs, rtol=0, atol=TOL)
            torch.testing.assert_close(result.log_evidence, expected.log_evidence, rtol=0, atol=TOL)
    assert infer._joints


@pytest.mark.parametrize("limit", ["JOINT_CACHE_ENTRIES", "JOINT_STEP_ENTRIES"])
def test_large_patterns_fall_back_to_ops(limit, monkeypatch):
    tensors = random_network(1, zeros=False)
    net, names = named(tensors)
    monkeypatch.setattr(inference_module, limit, 1)
    infer = Inference(net)
    result = infer.query([names[0]], {names[2]: "s1"})[names[0]]
    expected = ops.marginals(tensors, (0,), (2,), torch.tensor([1]))
    torch.testing.assert_close(result.probs, expected.probs, rtol=0, atol=TOL)
    assert infer._joints == {((0,), (2,)): None}


def test_zero_probability_evidence_on_the_cached_path():
    net = DiscreteBayesianNetwork(
        cpds={"A": ((), ("a0", "a1"), [1.0, 0.0]), "B": (("A",), ("b0", "b1"), [[0.3, 0.7], [0.5, 0.5]])}
    )
    infer = Inference(net)
    assert infer.query(["B"], {"A": "a0"})["B"].probs.tolist() == [0.3, 0.7]
    with pytest.raises(DataError, match=r"evidence \{'A': 'a1'\} has probability 0"):
        infer.query(["B"], {"A": "a1"})


def test_network_is_validated_when_inference_is_built():
    net = DiscreteBayesianNetwork(
        cpds={"A": ((), ("a0", "a1"), [0.4, 0.6]), "B": (("A",), ("b0", "b1"), [[0.3, 0.7], [0.5, 0.5]])}
    )
    good = net.tensors()
    net._tensors = good._replace(tables=(good.tables[0], torch.full((3, 2), 0.5, dtype=torch.float64)))
    with pytest.raises(ShapeError, match="the CPT of variable 1 has shape"):
        Inference(net)


def test_family_counts_ignore_layout_and_dtype():
    rng = np.random.default_rng(0)
    cards = [3, 2, 4, 2]
    codes = np.stack([rng.integers(0, c, 500) for c in cards], -1)
    expected = ops.family_counts(torch.as_tensor(codes), cards, [2, 0], 1)
    column_major = torch.as_tensor(np.ascontiguousarray(codes.T, dtype=np.int32)).T
    torch.testing.assert_close(ops.family_counts(column_major, cards, [2, 0], 1), expected, rtol=0, atol=0)
    brute = np.zeros((4, 3, 2))
    np.add.at(brute, (codes[:, 2], codes[:, 0], codes[:, 1]), 1)
    np.testing.assert_array_equal(expected.numpy(), brute)
    column_major[7, 0] = -1
    with pytest.raises(DataError, match=r"family \[2, 0, 1\] has unobserved"):
        ops.family_counts(column_major, cards, [2, 0], 1)


def test_learning_from_categorical_and_object_columns_agree():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"A": rng.choice(["x", "y"], 300), "B": rng.choice(["u", "v", "w"], 300)})
    plain = frame.astype(object)
    categorical = frame.astype("category")
    fitted = [learn.maximum_likelihood([("A", "B")], data) for data in (plain, categorical)]
    torch.testing.assert_close(fitted[0].cpd("B").table, fitted[1].cpd("B").table, rtol=0, atol=0)
