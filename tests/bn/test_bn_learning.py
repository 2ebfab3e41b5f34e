"""Parameter learning (probmodels.bn.learn) against pgmpy's estimators and scores,
exact Bayesian calibration of the posterior CPT draws, and EM's stationarity."""

import functools
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from probmodels import ConvergenceWarning, DataError, ModelSpecError
from probmodels.bn import DiscreteBayesianNetwork, Inference, from_pgmpy, learn, ops

pytest.importorskip("pgmpy")

ALARM_ROWS = 10_000


@functools.lru_cache(maxsize=None)
def alarm_sample():
    from pgmpy.utils import get_example_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        net = from_pgmpy(get_example_model("alarm"))
    data = Inference(net).sample(ALARM_ROWS, generator=torch.Generator().manual_seed(0))
    return net, data


def pgmpy_dag(net):
    from pgmpy.models import DiscreteBayesianNetwork as PgmpyNetwork

    model = PgmpyNetwork()
    model.add_nodes_from(net.nodes)
    model.add_edges_from(net.edges)
    return model


def pgmpy_tables(cpds, net):
    """pgmpy TabularCPDs as {node: array (*parent_cards, card)} in the parent order and states of ``net``."""
    tables = {}
    for cpd in cpds:
        node, parents = cpd.variable, list(cpd.variables[1:])
        cards = tuple(int(c) for c in cpd.cardinality)
        table = np.asarray(cpd.get_values()).T.reshape(cards[1:] + cards[:1])
        for axis, v in enumerate(parents + [node]):
            table = np.take(table, [cpd.state_names[v].index(s) for s in net.states(v)], axis=axis)
        order = [parents.index(p) for p in net.parents(node)] + [len(parents)]
        tables[node] = np.transpose(table, order)
    return tables


def state_names(net):
    return {n: list(net.states(n)) for n in net.nodes}


# ----------------------------------------------------------------------------- against pgmpy


def test_maximum_likelihood_and_bdeu_match_pgmpy_on_alarm():
    from pgmpy.parameter_estimator import DiscreteBayesianEstimator, DiscreteMLE

    truth, data = alarm_sample()
    frame = data.astype(str)  # pgmpy gets plain strings; probmodels reads the categorical columns
    dag = pgmpy_dag(truth)
    ml = learn.maximum_likelihood(truth, data)
    theirs = pgmpy_tables(DiscreteMLE(state_names=state_names(truth)).fit(dag, frame).parameters_, truth)
    for node in truth.nodes:
        np.testing.assert_allclose(ml.cpd(node).table.numpy(), theirs[node], rtol=0, atol=1e-12, err_msg=node)
    posterior = learn.dirichlet_posterior(truth, data, prior="bdeu", equivalent_sample_size=5)
    estimator = DiscreteBayesianEstimator(state_names=state_names(truth), prior_type="BDeu", equivalent_sample_size=5)
    theirs = pgmpy_tables(estimator.fit(dag, frame).parameters_, truth)
    mean = posterior.mean()
    for node in truth.nodes:
        np.testing.assert_allclose(mean.cpd(node).table.numpy(), theirs[node], rtol=0, atol=1e-12, err_msg=node)


def test_bdeu_and_k2_scores_match_pgmpy_local_scores():
    from pgmpy.structure_score import K2, BDeu

    truth, data = alarm_sample()
    frame = data.astype(str)
    graph = truth.graph
    for prior, score in (("bdeu", BDeu(frame, equivalent_sample_size=7, state_names=state_names(truth))), ("k2", K2(frame, state_names=state_names(truth)))):
        ours = learn.log_marginal_likelihood(graph, data, prior=prior, equivalent_sample_size=7, per_family=True)
        for node in truth.nodes:
            parents = tuple(sorted(graph.predecessors(node)))
            expected = score.local_score(node, parents)
            if prior == "k2":
                # pgmpy's K2 adds lgamma(r) for every parent configuration but subtracts lgamma(N_j + r) only for
                # the observed ones (its BDeu corrects for this, its K2 does not); the unobserved ones contribute 0.
                unseen = np.prod([truth.cardinality(p) for p in parents]) - len(data.groupby(list(parents), observed=True)) if parents else 0
                expected -= unseen * math.lgamma(truth.cardinality(node))
            assert math.isclose(ours[node].item(), expected, rel_tol=1e-12), (prior, node)
        total = learn.log_marginal_likelihood(graph, data, prior=prior, equivalent_sample_size=7)
        assert math.isclose(total.item(), sum(v.item() for v in ours.values()), rel_tol=1e-12)


def test_log_marginal_likelihood_is_the_exact_evidence():
    """On a two-node network, sum over all datasets of p(data) = 1 and p(data) = prod of predictive probabilities."""
    structure = [("A", "B")]
    names = {"A": ["a0", "a1"], "B": ["b0", "b1", "b2"]}
    rows = [("a0", "b2"), ("a1", "b0"), ("a0", "b2"), ("a0", "b1")]
    data = pd.DataFrame(rows, columns=["A", "B"])
    alpha = {"A": np.array([0.5, 2.0]), "B": np.array([[1.0, 0.3, 2.0], [0.7, 0.7, 0.7]])}
    log_ml = learn.log_marginal_likelihood(structure, data, prior="dirichlet", pseudo_counts=alpha, state_names=names)
    sequential = 0.0
    for i in range(len(rows)):
        mean = learn.dirichlet_posterior(structure, data.iloc[:i], prior="dirichlet", pseudo_counts=alpha, state_names=names).mean()
        sequential += Inference(mean).log_probability(dict(zip(["A", "B"], rows[i]))).item()
    assert math.isclose(log_ml.item(), sequential, rel_tol=1e-12)


# ----------------------------------------------------------------------------- posterior draws


def small_truth(generator):
    """A 3-node binary network A -> B, (A, B) -> C with CPT rows drawn from the K2 prior (Dirichlet(1))."""
    draw = lambda shape: torch.distributions.Dirichlet(torch.ones(shape + (2,), dtype=torch.float64)).sample()  # noqa: E731
    return DiscreteBayesianNetwork(
        cpds={
            "A": ((), ("a0", "a1"), draw(())),
            "B": (("A",), ("b0", "b1"), draw((2,))),
            "C": (("A", "B"), ("c0", "c1"), draw((2, 2))),
        }
    )


def test_credible_intervals_cover_true_cpts_at_nominal_rate():
    """Truth drawn from the prior => the 90% posterior intervals cover it with probability exactly 0.9."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    reps, covered, total, query_hits = 100, 0, 0, 0
    for _ in range(reps):
        truth = small_truth(generator)
        data = Inference(truth).sample(30, generator=generator)
        posterior = learn.dirichlet_posterior(truth, data, prior="k2")
        draws = posterior.sample_cpts(2000)
        assert draws.batch_shape == (2000,)
        for node in truth.nodes:
            first = draws.cpd(node).table[..., 0]  # binary rows: the first entry determines the row
            lower, upper = torch.quantile(first, torch.tensor([0.05, 0.95], dtype=torch.float64), dim=0)
            true = truth.cpd(node).table[..., 0]
            covered += int(((lower <= true) & (true <= upper)).sum())
            total += true.numel()
        result = posterior.query_with_uncertainty(["A"], {"C": "c1"}, n_draws=2000, level=0.9)["A"]
        exact = Inference(truth).query(["A"], {"C": "c1"})["A"].probs[0]
        query_hits += int(result.lower[0] <= exact <= result.upper[0])
    assert total == 7 * reps
    assert stats.binomtest(covered, total, 0.9).pvalue > 1e-3, covered / total
    assert stats.binomtest(query_hits, reps, 0.9).pvalue > 1e-3, query_hits / reps


def test_query_with_uncertainty_shapes_and_mean():
    truth, data = alarm_sample()
    posterior = learn.dirichlet_posterior(truth, data.iloc[:2000], prior="bdeu", equivalent_sample_size=1)
    torch.manual_seed(0)
    result = posterior.query_with_uncertainty(["HISTORY", "LVFAILURE"], {"CVP": "LOW"}, n_draws=200, joint=True)
    assert result.draws.shape == (200, 2, 2) and result.mean.shape == (2, 2)
    assert bool((result.lower <= result.mean).all() and (result.mean <= result.upper).all())
    assert math.isclose(result.mean.sum().item(), 1.0, rel_tol=1e-12)
    assert list(result.to_pandas().columns) == ["mean", "lower", "upper"]


# ----------------------------------------------------------------------------- missing values and EM


def test_missing_values_raise_unless_em():
    truth = small_truth(torch.Generator().manual_seed(0))
    data = Inference(truth).sample(50, generator=torch.Generator().manual_seed(0)).astype(object)
    data.iloc[[3, 7], 1] = np.nan
    with pytest.raises(DataError, match=r"data has missing values \{'B': 2\} \(first rows \[3, 7\]\); probmodels never drops rows silently"):
        learn.maximum_likelihood(truth, data)
    with pytest.raises(DataError, match=r"Dirichlet posterior has no closed form with missing cells"):
        learn.dirichlet_posterior(truth, data)
    with pytest.raises(ModelSpecError, match=r"missing must be 'raise' or 'em'"):
        learn.maximum_likelihood(truth, data, missing="drop")
    data.iloc[0, 0] = "a7"
    with pytest.raises(DataError, match=r"column 'A' holds \['a7'\] \(first at row 0\), which are not states of 'A'"):
        learn.maximum_likelihood(truth, data, missing="em")
    with pytest.raises(DataError, match=r"data has no column for nodes \['C'\]"):
        learn.maximum_likelihood(truth, data.drop(columns="C"))
    with pytest.raises(ModelSpecError, match=r"prior must be one of"):
        learn.dirichlet_posterior(truth, data.dropna(), prior="uniform")


def test_em_reaches_a_stationary_point_of_the_observed_data_likelihood():
    truth = small_truth(torch.Generator().manual_seed(4))
    data = Inference(truth).sample(400, generator=torch.Generator().manual_seed(5)).astype(object)
    rng = np.random.default_rng(0)
    for column in data.columns:
        data.loc[rng.random(len(data)) < 0.25, column] = np.nan
    complete = learn.maximum_likelihood(truth, data.dropna(), missing="em")
    torch.testing.assert_close(complete.cpd("C").table, learn.maximum_likelihood(truth, data.dropna()).cpd("C").table, rtol=0, atol=0)
    fitted = learn.maximum_likelihood(truth, data, missing="em", tol=1e-14, max_iter=2000)
    tensors = fitted.tensors()
    codes = torch.tensor(
        np.stack([data[n].map({s: i for i, s in enumerate(fitted.states(n))}).fillna(-1).to_numpy(np.int64) for n in fitted.nodes], -1)
    )

    def score(tables):
        logits = [t.log().requires_grad_() for t in tables]
        net = ops.NetworkTensors(tensors.cards, tensors.parents, tuple(torch.softmax(x, -1) for x in logits))
        ops.log_probability_of_evidence(net, tuple(range(3)), codes).sum().backward()
        return max(x.grad.abs().max().item() for x in logits)

    assert score(tensors.tables) < 1e-5  # the score of the observed-data likelihood vanishes at the MLE ...
    assert score(complete.tensors().tables) > 1e-1  # ... and not at the complete-case estimate


def test_em_warns_when_not_converged():
    truth = small_truth(torch.Generator().manual_seed(4))
    data = Inference(truth).sample(100, generator=torch.Generator().manual_seed(5)).astype(object)
    data.iloc[::2, 1] = np.nan
    with pytest.warns(ConvergenceWarning, match="EM did not converge in 1 iterations"):
        learn.maximum_likelihood(truth, data, missing="em", max_iter=1)
