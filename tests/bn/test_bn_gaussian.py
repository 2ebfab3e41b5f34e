"""Linear-Gaussian Bayesian networks against oracles written elsewhere: pgmpy's
``to_joint_gaussian``, ``log_likelihood`` and ``LinearGaussianMLE``, numpy's
``lstsq`` and brute-force Gaussian conditioning of the joint, scipy's
multivariate normal and t densities and numerical integration, Monte Carlo
z-tests for sampling, and the Bayesian calibration of the posterior intervals."""

import functools
import math
import warnings

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch
from scipy import integrate, stats

from probmodels import DataError, ModelSpecError, ShapeError
from probmodels.bn import gaussian_ops as ops
from probmodels.bn.gaussian import LinearGaussianBayesianNetwork
from probmodels.bn.gaussian_convert import gaussian_from_pgmpy, gaussian_to_pgmpy
from probmodels.bn.gaussian_inference import GaussianInference
from probmodels.bn.gaussian_learn import (
    gaussian_log_marginal_likelihood,
    gaussian_maximum_likelihood,
    gaussian_posterior,
)

pgmpy_models = pytest.importorskip("pgmpy.models")

Z = 4.5
"""z threshold of the Monte Carlo tests (several statistics per test)."""


@functools.lru_cache(maxsize=None)
def pgmpy_random(seed=3, n_nodes=6):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pgmpy_models.LinearGaussianBayesianNetwork.get_random(n_nodes=n_nodes, edge_prob=0.6, seed=seed)


def random_network(seed=3, n_nodes=6):
    return gaussian_from_pgmpy(pgmpy_random(seed, n_nodes))


def chain(**overrides):
    cpds = {"x1": ((), 1.0, (), 16.0), "x2": (("x1",), -5.0, (0.5,), 16.0), "x3": (("x2",), 4.0, (-1.0,), 9.0)}
    cpds.update(overrides)
    return LinearGaussianBayesianNetwork(cpds=cpds)


def numpy_joint(cpds, order):
    """Mean and covariance by the forward recursion over the structural equations (no matrix inverse)."""
    index = {n: i for i, n in enumerate(order)}
    mean, cov = np.zeros(len(order)), np.zeros((len(order), len(order)))
    for i, node in enumerate(order):
        parents, intercept, weights, variance = cpds[node]
        cols = [index[p] for p in parents]
        w = np.asarray(weights, dtype=float)
        mean[i] = intercept + w @ mean[cols]
        cov[i, :i] = w @ cov[cols, :i]
        cov[:i, i] = cov[i, :i]
        cov[i, i] = w @ cov[np.ix_(cols, cols)] @ w + variance
    return mean, cov


def cpds_of(net):
    return {
        n: (c.parents, float(c.intercept), c.weights.numpy(), float(c.variance))
        for n, c in ((n, net.cpd(n)) for n in net.nodes)
    }


def brute_condition(mean, cov, q, e, x):
    """Textbook conditioning with explicit inverses."""
    s_ee_inv = np.linalg.inv(cov[np.ix_(e, e)])
    gain = cov[np.ix_(q, e)] @ s_ee_inv
    return mean[q] + gain @ (x - mean[e]), cov[np.ix_(q, q)] - gain @ cov[np.ix_(e, q)]


# ----------------------------------------------------------------------------- joint, pgmpy


def test_joint_matches_pgmpy_to_joint_gaussian_and_the_forward_recursion():
    model = pgmpy_random()
    net = gaussian_from_pgmpy(model)
    assert net.graph.number_of_edges() >= 5
    joint = net.joint()
    ref_mean, ref_cov = model.to_joint_gaussian()
    perm = [net.index(v) for v in nx.topological_sort(model)]
    np.testing.assert_allclose(joint.mean.numpy()[perm], ref_mean, atol=1e-7)  # pgmpy rounds to 8 decimals
    np.testing.assert_allclose(joint.covariance.numpy()[np.ix_(perm, perm)], ref_cov, atol=1e-7)
    mean, cov = numpy_joint(cpds_of(net), net.nodes)
    np.testing.assert_allclose(joint.mean.numpy(), mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(joint.covariance.numpy(), cov, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose((joint.scale_tril @ joint.scale_tril.mT).numpy(), cov, rtol=1e-10, atol=1e-12)
    assert torch.equal(joint.scale_tril, joint.scale_tril.tril())


def test_pgmpy_round_trip_and_documented_example():
    net = random_network()
    back = gaussian_from_pgmpy(gaussian_to_pgmpy(net))
    assert set(back.edges) == set(net.edges)
    for node in net.nodes:
        a, b = net.cpd(node), back.cpd(node)
        assert a.parents == b.parents
        for x, y in zip(a[1:], b[1:]):
            torch.testing.assert_close(x, y, rtol=1e-14, atol=0)
    joint = chain().joint()
    np.testing.assert_allclose(joint.mean.numpy(), [1.0, -4.5, 8.5])
    np.testing.assert_allclose(joint.covariance.numpy(), [[16, 8, -8], [8, 20, -20], [-8, -20, 29]], atol=1e-12)


def test_log_likelihood_matches_pgmpy_and_scipy():
    model = pgmpy_random()
    net = gaussian_from_pgmpy(model)
    data = GaussianInference(net).sample(50, generator=torch.Generator().manual_seed(1))
    ours = GaussianInference(net).log_probability(data)
    assert ours.shape == (50,)
    joint = net.joint()
    normal = stats.multivariate_normal(joint.mean.numpy(), joint.covariance.numpy())
    ref = normal.logpdf(data[list(net.nodes)].to_numpy())
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-10)
    assert float(ours.sum()) == pytest.approx(model.log_likelihood(data), rel=1e-6)


def test_batched_parameters_give_the_per_draw_joint():
    gen = torch.Generator().manual_seed(0)
    draws = 4
    net = LinearGaussianBayesianNetwork(cpds={
        "a": ((), torch.randn(draws, generator=gen), (), torch.rand(draws, generator=gen) + 0.5),
        "b": (("a",), torch.randn(draws, generator=gen), torch.randn(draws, 1, generator=gen), 1.3),
        "c": (("a", "b"), 0.2, torch.randn(draws, 2, generator=gen), torch.rand(draws, generator=gen) + 0.1),
    })
    assert net.batch_shape == (draws,) and "batch_shape=(4,)" in repr(net)
    joint = net.joint()
    evidence = pd.DataFrame({"c": [0.5, np.nan, -1.0], "b": [np.nan, 1.0, 2.0]})
    batched = GaussianInference(net).query_batch(["a", "b"], evidence)
    assert batched.mean.shape == (draws, 3, 2) and batched.covariance.shape == (draws, 3, 2, 2)
    for d in range(draws):
        single = LinearGaussianBayesianNetwork(cpds={
            n: (c.parents, c.intercept[d], c.weights[d], c.variance[d]) for n, c in ((n, net.cpd(n)) for n in net.nodes)
        })
        torch.testing.assert_close(joint.covariance[d], single.joint().covariance, rtol=1e-12, atol=1e-12)
        one = GaussianInference(single).query_batch(["a", "b"], evidence)
        torch.testing.assert_close(batched.mean[d], one.mean, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(batched.log_evidence[d], one.log_evidence, rtol=1e-12, atol=1e-12)


def test_ops_joint_is_the_inverse_form_batched_over_leading_dims():
    gen = torch.Generator().manual_seed(0)
    f64 = {"generator": gen, "dtype": torch.float64}
    weights = torch.randn(2, 3, 5, 5, **f64).tril(-1)
    intercept, variance = torch.randn(3, 5, **f64), torch.rand(2, 1, 5, **f64) + 0.1
    joint = ops.joint_gaussian(ops.GaussianNetworkTensors(intercept, weights, variance))
    assert joint.covariance.shape == (2, 3, 5, 5)
    for i in range(2):
        for j in range(3):
            inverse = np.linalg.inv(np.eye(5) - weights[i, j].numpy())
            np.testing.assert_allclose(joint.mean[i, j].numpy(), inverse @ intercept[j].numpy(), rtol=1e-12)
            cov = inverse @ np.diag(variance[i, 0].numpy()) @ inverse.T
            np.testing.assert_allclose(joint.covariance[i, j].numpy(), cov, rtol=1e-10, atol=1e-12)
    fixed = ops.intervene(ops.GaussianNetworkTensors(intercept, weights, variance), {2: 0.5})
    surgery = ops.joint_gaussian(fixed)
    assert torch.all(surgery.mean[..., 2] == 0.5) and torch.all(surgery.covariance[..., 2, :] == 0)


def test_follows_the_dtype_of_the_network():
    net = chain().to(dtype=torch.float32)
    result = GaussianInference(net).query(["x1"], {"x3": 1.0})
    assert result.mean.dtype == torch.float32 and net.joint().covariance.dtype == torch.float32
    reference = GaussianInference(chain()).query(["x1"], {"x3": 1.0})
    torch.testing.assert_close(result.mean.double(), reference.mean, rtol=1e-5, atol=1e-5)


@pytest.mark.gpu
def test_cuda_results_match_cpu():
    net, data = learning_data()
    gpu = net.to(device="cuda")
    frame = data.iloc[:20].copy()
    frame.iloc[::2, 1] = np.nan
    on_gpu = GaussianInference(gpu).query_batch(list(net.nodes[:2]), frame)
    on_cpu = GaussianInference(net).query_batch(list(net.nodes[:2]), frame)
    assert on_gpu.mean.device.type == "cuda"
    torch.testing.assert_close(on_gpu.mean.cpu(), on_cpu.mean)
    torch.testing.assert_close(on_gpu.log_evidence.cpu(), on_cpu.log_evidence)
    fitted = gaussian_maximum_likelihood(net, data, device="cuda")
    assert fitted.device.type == "cuda"
    torch.testing.assert_close(fitted.joint().mean.cpu(), gaussian_maximum_likelihood(net, data).joint().mean)
    posterior = gaussian_posterior(net, data, device="cuda")
    assert posterior.sample_parameters(10).joint().mean.device.type == "cuda"
    sample = GaussianInference(gpu).sample(5, {net.nodes[0]: 0.1}, generator=torch.Generator("cuda").manual_seed(0))
    assert (sample[net.nodes[0]] == 0.1).all()


# ----------------------------------------------------------------------------- exact queries


@pytest.mark.parametrize("seed", range(6))
def test_conditionals_match_brute_force_conditioning(seed):
    net = random_network()
    infer = GaussianInference(net)
    joint = net.joint()
    mean, cov = joint.mean.numpy(), joint.covariance.numpy()
    rng = np.random.default_rng(seed)
    perm = rng.permutation(6)
    e, q = sorted(perm[: 1 + seed % 4]), list(perm[1 + seed % 4 :])
    x = rng.normal(mean[e], 2 * np.sqrt(np.diag(cov)[e]))
    evidence = {net.nodes[i]: float(v) for i, v in zip(e, x)}
    result = infer.query([net.nodes[i] for i in q], evidence)
    ref_mean, ref_cov = brute_condition(mean, cov, q, e, x)
    np.testing.assert_allclose(result.mean.numpy(), ref_mean, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(result.covariance.numpy(), ref_cov, rtol=1e-10, atol=1e-10)
    ref_log = stats.multivariate_normal(mean[e], cov[np.ix_(e, e)]).logpdf(x)
    assert float(result.log_evidence) == pytest.approx(ref_log, rel=1e-10)
    assert float(infer.log_probability(evidence)) == pytest.approx(ref_log, rel=1e-10)


def test_query_batch_rows_with_different_observed_sets_match_single_queries():
    net = random_network()
    infer = GaussianInference(net)
    rng = np.random.default_rng(5)
    values = rng.normal(size=(40, 6))
    values[rng.random((40, 6)) < 0.5] = np.nan
    frame = pd.DataFrame(values, columns=list(net.nodes)).drop(columns=[net.nodes[0]])
    query = [net.nodes[0], net.nodes[3]]
    batched = infer.query_batch(query, frame)
    log_probs = infer.log_probability(frame)
    for row in range(len(frame)):
        evidence = frame.iloc[row].dropna().to_dict()
        single = infer.query(query, evidence)
        torch.testing.assert_close(batched.mean[row], single.mean, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(batched.covariance[row], single.covariance, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(log_probs[row], single.log_evidence, rtol=1e-12, atol=1e-12)
    assert list(infer.query(query).to_pandas().columns) == ["mean", "std"]
    assert batched.to_pandas().shape == (40, 4)


def test_observed_query_variable_is_a_point_mass_and_empty_evidence_is_the_marginal():
    infer = GaussianInference(chain())
    result = infer.query(["x2", "x3"], {"x2": 1.5})
    assert result.mean.tolist() == [1.5, 2.5]
    assert result.covariance[0].tolist() == [0.0, 0.0] and float(result.covariance[1, 1]) == pytest.approx(9.0)
    marginal = infer.query(["x3"])
    assert float(marginal.mean) == pytest.approx(8.5) and float(marginal.log_evidence) == 0.0


def test_do_is_graph_surgery_and_differs_from_conditioning():
    net = random_network()
    target = next(n for n in net.nodes if net.parents(n) and any(net.graph.successors(n)))
    surgery = {n: c for n, c in cpds_of(net).items()}
    surgery[target] = ((), 2.5, (), 0.0)
    mean, cov = numpy_joint(surgery, net.nodes)
    free = [i for i, n in enumerate(net.nodes) if n != target]
    names = [net.nodes[i] for i in free]
    result = GaussianInference(net).query(names, do={target: 2.5})
    np.testing.assert_allclose(result.mean.numpy(), mean[free], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(result.covariance.numpy(), cov[np.ix_(free, free)], rtol=1e-10, atol=1e-10)
    child = next(iter(net.graph.successors(target)))
    e, q = [net.index(child)], [i for i in free if net.nodes[i] != child]
    given = GaussianInference(net).query([net.nodes[i] for i in q], {child: -0.4}, do={target: 2.5})
    ref_mean, ref_cov = brute_condition(mean, cov, q, e, np.array([-0.4]))
    np.testing.assert_allclose(given.mean.numpy(), ref_mean, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(given.covariance.numpy(), ref_cov, rtol=1e-10, atol=1e-10)
    mutilated = net.do({target: 2.5})
    assert not mutilated.parents(target) and net.parents(target)
    torch.testing.assert_close(GaussianInference(mutilated).query(names).mean, result.mean)
    parent = net.parents(target)[0]
    conditioned = GaussianInference(net).query([parent], {target: 2.5}).mean
    intervened = GaussianInference(net).query([parent], do={target: 2.5}).mean
    assert float(intervened) == pytest.approx(float(net.joint().mean[net.index(parent)]))
    assert float(conditioned) != pytest.approx(float(intervened))


# ----------------------------------------------------------------------------- sampling


def _z_moments(sample, mean, cov):
    n = len(sample)
    z_mean = (sample.mean(0) - mean) / np.sqrt(np.diag(cov) / n)
    centred = sample - mean
    products = centred[:, :, None] * centred[:, None, :]
    z_cov = (products.mean(0) - cov) / (products.std(0) / np.sqrt(n))
    return np.abs(z_mean).max(), np.abs(z_cov).max()


def test_forward_samples_have_the_joint_moments():
    net = random_network()
    frame = GaussianInference(net).sample(20_000, generator=torch.Generator().manual_seed(2))
    assert list(frame.columns) == list(net.nodes) and frame.dtypes.eq(np.float64).all()
    joint = net.joint()
    z_mean, z_cov = _z_moments(frame.to_numpy(), joint.mean.numpy(), joint.covariance.numpy())
    assert z_mean < Z and z_cov < Z


def test_conditional_samples_have_the_conditional_moments():
    net = random_network()
    evidence = {net.nodes[1]: 0.7, net.nodes[4]: -1.2}
    infer = GaussianInference(net)
    frame = infer.sample(20_000, evidence, generator=torch.Generator().manual_seed(3))
    assert (frame[net.nodes[1]] == 0.7).all() and (frame[net.nodes[4]] == -1.2).all()
    free = [n for n in net.nodes if n not in evidence]
    exact = infer.query(free, evidence)
    z_mean, z_cov = _z_moments(frame[free].to_numpy(), exact.mean.numpy(), exact.covariance.numpy())
    assert z_mean < Z and z_cov < Z


# ----------------------------------------------------------------------------- learning


@functools.lru_cache(maxsize=None)
def learning_data(rows=500):
    net = random_network()
    return net, GaussianInference(net).sample(rows, generator=torch.Generator().manual_seed(4))


def test_maximum_likelihood_matches_lstsq_and_pgmpy():
    from pgmpy.parameter_estimator import LinearGaussianMLE

    net, data = learning_data()
    fitted = gaussian_maximum_likelihood(net, data)
    for node in net.nodes:
        cpd = fitted.cpd(node)
        x = np.column_stack([np.ones(len(data))] + [data[p] for p in cpd.parents])
        coef, *_ = np.linalg.lstsq(x, data[node].to_numpy(), rcond=None)
        residual = data[node].to_numpy() - x @ coef
        np.testing.assert_allclose(cpd.intercept.item(), coef[0], rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(cpd.weights.numpy(), coef[1:], rtol=1e-10, atol=1e-10)
        assert float(cpd.variance) == pytest.approx(np.mean(residual**2), rel=1e-10)
    model = pgmpy_models.LinearGaussianBayesianNetwork(list(net.edges))
    model.add_nodes_from(net.nodes)
    model.fit(data, estimator=LinearGaussianMLE(std_estimator="mle"))
    for cpd in model.get_cpds():
        ours = fitted.cpd(cpd.variable)
        order = [ours.parents.index(p) for p in cpd.evidence]
        assert ours.intercept.item() == pytest.approx(cpd.beta[0], rel=1e-8, abs=1e-8)
        np.testing.assert_allclose(ours.weights.numpy()[order], cpd.beta[1:], rtol=1e-8, atol=1e-8)
        assert math.sqrt(float(ours.variance)) == pytest.approx(cpd.std, rel=1e-8)


def _murphy_posterior(x, y, m0, v0, a0, b0):
    """Murphy (2007) eq. 196-199, written with explicit inverses."""
    v0_inv = np.linalg.inv(v0)
    vn = np.linalg.inv(v0_inv + x.T @ x)
    mn = vn @ (v0_inv @ m0 + x.T @ y)
    an = a0 + len(y) / 2
    bn = b0 + 0.5 * (y @ y + m0 @ v0_inv @ m0 - mn @ np.linalg.inv(vn) @ mn)
    return mn, vn, an, bn


def test_normal_inverse_gamma_posterior_and_evidence_against_closed_forms():
    net, data = learning_data()
    data = data.iloc[:30]
    node = next(n for n in net.nodes if len(net.parents(n)) >= 2)
    parents = net.parents(node)
    p = len(parents) + 1
    rng = np.random.default_rng(0)
    m0 = rng.normal(size=p)
    root = rng.normal(size=(p, p))
    lam0 = root @ root.T + p * np.eye(p)
    a0, b0 = 2.5, 1.7
    posterior = gaussian_posterior(
        net, data, prior_mean={n: m0 if n == node else 0.0 for n in net.nodes},
        prior_precision={n: lam0 if n == node else 0.5 for n in net.nodes}, prior_shape=a0, prior_rate=b0,
    )
    post = posterior.posterior[node]
    x = np.column_stack([np.ones(len(data))] + [data[q] for q in parents])
    y = data[node].to_numpy()
    mn, vn, an, bn = _murphy_posterior(x, y, m0, np.linalg.inv(lam0), a0, b0)
    np.testing.assert_allclose(post.mean.numpy(), mn, rtol=1e-10)
    np.testing.assert_allclose(post.precision.numpy(), np.linalg.inv(vn), rtol=1e-10)
    assert float(post.shape) == an and float(post.rate) == pytest.approx(bn, rel=1e-10)
    # the evidence is the multivariate-t predictive density of the whole column
    t = stats.multivariate_t(loc=x @ m0, shape=b0 / a0 * (np.eye(len(y)) + x @ np.linalg.inv(lam0) @ x.T), df=2 * a0)
    family = posterior.log_marginal_likelihood(per_family=True)
    assert float(family[node]) == pytest.approx(t.logpdf(y), rel=1e-10)
    # candidate's identity log p(y) = log p(y | theta) + log p(theta) - log p(theta | y) at any theta
    beta, sigma2 = rng.normal(size=p), 0.8
    log_lik = stats.norm(x @ beta, math.sqrt(sigma2)).logpdf(y).sum()
    log_prior = stats.invgamma(a0, scale=b0).logpdf(sigma2)
    log_prior += stats.multivariate_normal(m0, sigma2 * np.linalg.inv(lam0)).logpdf(beta)
    log_post = stats.invgamma(an, scale=bn).logpdf(sigma2) + stats.multivariate_normal(mn, sigma2 * vn).logpdf(beta)
    assert float(family[node]) == pytest.approx(log_lik + log_prior - log_post, rel=1e-10)
    total = gaussian_log_marginal_likelihood(
        net, data, prior_mean={n: m0 if n == node else 0.0 for n in net.nodes},
        prior_precision={n: lam0 if n == node else 0.5 for n in net.nodes}, prior_shape=a0, prior_rate=b0,
    )
    assert float(total) == pytest.approx(sum(float(v) for v in family.values()), rel=1e-12)


def test_log_marginal_likelihood_of_a_root_node_by_numerical_integration():
    y = np.array([0.3, -1.1, 0.8])
    a0, b0, lam0 = 3.0, 2.0, 0.5
    graph = nx.DiGraph()
    graph.add_node("y")
    exact = float(gaussian_log_marginal_likelihood(
        graph, pd.DataFrame({"y": y}), prior_precision=lam0, prior_shape=a0, prior_rate=b0
    ))

    log_ig_norm = a0 * math.log(b0) - math.lgamma(a0)
    n, total, squares = len(y), float(y.sum()), float(y @ y)

    def integrand(mu, log_s2):
        s2 = math.exp(log_s2)
        log_lik = -0.5 * n * math.log(2 * math.pi * s2) - (squares - 2 * mu * total + n * mu * mu) / (2 * s2)
        log_prior_mu = -0.5 * math.log(2 * math.pi * s2 / lam0) - lam0 * mu * mu / (2 * s2)
        log_prior_s2 = log_ig_norm - (a0 + 1) * log_s2 - b0 / s2
        return math.exp(log_lik + log_prior_mu + log_prior_s2 + log_s2 - exact)

    ratio, _ = integrate.dblquad(integrand, -6, 6, -15, 15, epsabs=1e-10, epsrel=1e-8)
    assert ratio == pytest.approx(1.0, abs=1e-6)


def test_posterior_draws_match_the_exact_marginals_and_mean_network():
    net, data = learning_data()
    posterior = gaussian_posterior(net, data.iloc[:40], prior_shape=2.0)
    torch.manual_seed(0)
    draws = posterior.sample_parameters(4000)
    assert draws.batch_shape == (4000,)
    intervals = posterior.credible_intervals(0.9)
    mean_net = posterior.mean()
    for node in net.nodes:
        cpd, post = draws.cpd(node), posterior.posterior[node]
        coef = torch.cat([cpd.intercept.unsqueeze(-1), cpd.weights], -1).numpy()
        a, b = float(post.shape), float(post.rate)
        cov = b / (a - 1) * np.linalg.inv(post.precision.numpy())
        z = (coef.mean(0) - post.mean.numpy()) / np.sqrt(np.diag(cov) / len(coef))
        assert np.abs(z).max() < Z
        lower, upper = (intervals.loc[node, end].to_numpy()[:-1] for end in ("lower", "upper"))
        inside = (coef > lower) & (coef < upper)
        assert np.abs(inside.mean(0) - 0.9).max() < Z * math.sqrt(0.09 / len(coef))
        var_inside = ((cpd.variance.numpy() > intervals.loc[(node, "variance"), "lower"])
                      & (cpd.variance.numpy() < intervals.loc[(node, "variance"), "upper"])).mean()
        assert abs(var_inside - 0.9) < Z * math.sqrt(0.09 / len(coef))
        assert float(mean_net.cpd(node).variance) == pytest.approx(b / (a - 1))
        torch.testing.assert_close(mean_net.cpd(node).weights, post.mean[1:])


def _coverage(reps, n_rows, n_draws, seed):
    """Truth drawn from the prior, data from the truth: Bayesian intervals cover at their nominal rate."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    a0, b0, lam0 = 3.0, 2.0, 1.0
    structure = [("x", "y"), ("z", "y")]
    parents = {"x": (), "z": (), "y": ("x", "z")}
    hits, query_hits = [], []
    for _ in range(reps):
        cpds = {}
        for node, pa in parents.items():
            s2 = stats.invgamma(a0, scale=b0).rvs(random_state=rng)
            beta = rng.normal(0, math.sqrt(s2 / lam0), size=len(pa) + 1)
            cpds[node] = (pa, beta[0], beta[1:], s2)
        truth = LinearGaussianBayesianNetwork(cpds=cpds)
        generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
        data = GaussianInference(truth).sample(n_rows, generator=generator)
        posterior = gaussian_posterior(structure, data, prior_precision=lam0, prior_shape=a0, prior_rate=b0)
        table = posterior.credible_intervals(0.9)
        values = [v for node in ("x", "z", "y") for v in (cpds[node][1], *cpds[node][2], cpds[node][3])]
        hits.append(((table["lower"] < values) & (values < table["upper"])).to_numpy())
        evidence = {"x": 1.0}
        answer = posterior.query_with_uncertainty(["y"], evidence, n_draws=n_draws, level=0.9)
        true_mean = float(GaussianInference(truth).query(["y"], evidence).mean)
        query_hits.append(float(answer.lower) < true_mean < float(answer.upper))
    return np.array(hits), np.array(query_hits)


def _check_coverage(hits, query_hits):
    reps = len(hits)
    tolerance = Z * math.sqrt(0.9 * 0.1 / reps)
    assert np.abs(hits.mean(0) - 0.9).max() < tolerance
    assert abs(query_hits.mean() - 0.9) < tolerance


def test_credible_intervals_cover_at_the_nominal_rate():
    _check_coverage(*_coverage(reps=150, n_rows=15, n_draws=400, seed=0))


@pytest.mark.slow
def test_credible_intervals_cover_at_the_nominal_rate_many_repetitions():
    _check_coverage(*_coverage(reps=2000, n_rows=15, n_draws=1000, seed=1))


# ----------------------------------------------------------------------------- bad input


def test_structure_errors_name_the_nodes():
    with pytest.raises(ModelSpecError, match=r"would create the cycle 'a' -> 'b' -> 'a'"):
        LinearGaussianBayesianNetwork([("a", "b"), ("b", "a")])
    with pytest.raises(ModelSpecError, match=r"parent 'x11' of 'x2' is not a node.*did you mean 'x1'"):
        chain(x2=(("x11",), 0.0, (1.0,), 1.0))
    with pytest.raises(ModelSpecError, match=r"self-loop"):
        LinearGaussianBayesianNetwork([("a", "a")])
    net = chain()
    with pytest.raises(ModelSpecError, match=r"node 'x3' already has a CPD"):
        net.add_edge("x1", "x3")
    with pytest.raises(ModelSpecError, match=r"unknown node 'x4'"):
        GaussianInference(net).query(["x4"])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ((("x1",), 0.0, (1.0,), -1.0), r"variance of 'x2' must be > 0, got \[-1.0\]; pass sigma\^2"),
        ((("x1",), 0.0, (1.0,), 0.0), r"variance of 'x2' must be > 0.*network.do"),
        ((("x1",), 0.0, (1.0,), float("nan")), r"the variance of 'x2' has non-finite entries"),
        ((("x1",), 0.0, (1.0, 2.0), 1.0), r"'x2' has weights of shape \(2,\) but 1 parent\(s\) \('x1',\)"),
        ((("x1",), float("inf"), (1.0,), 1.0), r"the intercept of 'x2' has non-finite"),
    ],
)
def test_invalid_parameters(spec, message):
    with pytest.raises(ModelSpecError, match=message):
        chain(x2=spec)


def test_batch_shapes_and_batched_conversion():
    with pytest.raises(ShapeError, match=r"do not broadcast"):
        chain(x2=(("x1",), torch.zeros(3), torch.zeros(3, 1), 1.0), x3=(("x2",), torch.zeros(4), (1.0,), 1.0))
    batched = chain(x1=((), torch.zeros(2), (), 1.0))
    with pytest.raises(ShapeError, match=r"batch shape \(2,\)"):
        gaussian_to_pgmpy(batched)
    with pytest.raises(ShapeError, match=r"unbatched"):
        GaussianInference(batched).sample(3)


def test_evidence_errors():
    infer = GaussianInference(chain())
    with pytest.raises(ModelSpecError, match=r"\['x2'\] are fixed by an intervention"):
        infer.query(["x3"], {"x2": 1.0}, do={"x2": 1.0})
    with pytest.raises(DataError, match=r"evidence\['x2'\] must be finite, got inf"):
        infer.query(["x3"], {"x2": float("inf")})
    with pytest.raises(DataError, match=r"column 'x2' has dtype \w+, but a linear-Gaussian network needs numbers"):
        infer.query_batch(["x3"], pd.DataFrame({"x2": ["a", "b"]}))
    with pytest.raises(TypeError, match=r"evidence\['x2'\] must be a real number, got 'high'"):
        infer.query(["x3"], {"x2": "high"})
    with pytest.raises(DataError, match=r"do\('x2' = ...\) must be finite, got nan"):
        infer.query(["x3"], do={"x2": float("nan")})
    with pytest.raises(TypeError, match=r"wrap a single name in a list"):
        infer.query("x3")


def test_learning_refuses_missing_cells_and_degenerate_designs():
    net, data = learning_data()
    holes = data.copy()
    holes.iloc[[3, 7], 2] = np.nan
    column = data.columns[2]
    for fit in (gaussian_maximum_likelihood, gaussian_posterior):
        message = rf"missing values \{{'{column}': 2\}} \(first rows \[3, 7\]\).*never drops rows"
        with pytest.raises(DataError, match=message):
            fit(net, holes)
    dependent = pd.DataFrame({"a": [1.0, 2, 3, 4], "b": [2.0, 4, 6, 8], "c": [0.1, 0.5, -0.2, 0.3]})
    with pytest.raises(DataError, match=r"maximum-likelihood CPD of 'c' is not unique.*rank 2 < 3"):
        gaussian_maximum_likelihood([("a", "c"), ("b", "c")], dependent)
    with pytest.raises(DataError, match=r"'b' is an exact linear function of its parents \('a',\)"):
        gaussian_maximum_likelihood([("a", "b")], dependent)
    with pytest.raises(DataError, match=r"no column for nodes \['d'\]"):
        gaussian_maximum_likelihood([("a", "d")], dependent)
    with pytest.raises(ModelSpecError, match=r"prior_precision for 'a' must be symmetric positive definite"):
        gaussian_posterior([("a", "b")], dependent, prior_precision=-1.0)
    with pytest.raises(ModelSpecError, match=r"prior_mean\['b'\] has shape \(3,\); expected \(2,\)"):
        gaussian_posterior([("a", "b")], dependent, prior_mean={"a": 0.0, "b": np.zeros(3)})
