"""Bayesian CPTs through the inference core (probmodels.bn.model): the per-row likelihood with
missing cells against enumeration of the full joint, NUTS against the conjugate posterior
(complete data) and against the exact Dirichlet-mixture posterior (missing cells, a hidden
node), SVI against NUTS, queries with credible intervals, and bad input."""

import functools
import itertools
import math
import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest
import pyro.poutine as poutine
import torch

from probmodels import DataError, ModelSpecError, ShapeError
from probmodels.bn import (
    CPTPosterior,
    DirichletCPTModel,
    Inference,
    cpt_posterior,
    dirichlet_posterior,
    from_pgmpy,
    ops,
)
from probmodels.bn._row_likelihood import row_log_likelihood

Z = 4.0
"""z-threshold of every Monte Carlo comparison: P(|N(0,1)| > 4) = 6e-5 per entry, so a test
with 20 compared entries fails by chance with probability about 1e-3."""


# ----------------------------------------------------------------------------- networks and oracles


def random_network(generator, cards=(2, 3, 2, 2), parents=((), (0,), (0, 1), (2,)), batch=()):
    """Random CPTs (Dirichlet(1) rows) of a 4-node network as NetworkTensors."""
    tables = []
    for v, card in enumerate(cards):
        shape = batch + tuple(cards[p] for p in parents[v]) + (card,)
        tables.append(torch.distributions.Dirichlet(torch.ones(card)).sample(shape[:-1]))
    return ops.NetworkTensors(tuple(cards), tuple(parents), tuple(tables))


def enumerated_log_likelihood(net, codes):
    """log of the sum of the full joint over all completions of each row (the oracle)."""
    out = []
    for row in codes.tolist():
        total = 0.0
        for full in itertools.product(*(range(c) for c in net.cards)):
            if any(o >= 0 and o != x for o, x in zip(row, full)):
                continue
            p = 1.0
            for v, table in enumerate(net.tables):
                p *= float(table[tuple(full[u] for u in net.parents[v]) + (full[v],)])
            total += p
        out.append(math.log(total))
    return torch.tensor(out)


def two_node_data():
    """A (2 states) -> B (3 states): 10 complete rows and 5 with missing cells (MCAR)."""
    rows = [
        ("a0", "b0"), ("a0", "b0"), ("a0", "b1"), ("a0", "b2"), ("a0", "b0"),
        ("a1", "b2"), ("a1", "b2"), ("a1", "b1"), ("a1", "b2"), ("a0", "b1"),
        (None, "b0"), (None, "b2"), ("a1", None), ("a0", None), (None, None),
    ]
    return pd.DataFrame(rows, columns=["A", "B"])


TWO_NODE_STATES = {"A": ["a0", "a1"], "B": ["b0", "b1", "b2"]}


def mixture_moments(model, codes):
    """Exact posterior mean and sd of every CPT entry when cells are missing.

    The posterior is a finite mixture of Dirichlets: every completion c of the
    missing cells gives the conjugate posterior Dir(alpha + N_c), weighted by
    the marginal likelihood p(completed data c) (Dirichlet-multinomial, the
    BDeu score). Rows with no observed cell contribute a factor 1 and are
    skipped. Returns {site: (mean, sd)} shaped (n_parent_configs, card).
    """
    cards = [len(model.states[n]) for n in model.nodes]
    holes = [(i, j) for i, j in zip(*np.nonzero(codes.numpy() < 0)) if bool((codes[i] >= 0).any())]
    keep = torch.tensor([bool((row >= 0).any()) for row in codes])
    logw, first, second = [], [], []
    for fill in itertools.product(*(range(cards[j]) for _, j in holes)):
        completed = codes[keep].clone()
        rows = torch.nonzero(keep).squeeze(-1).tolist()
        for (i, j), state in zip(holes, fill):
            completed[rows.index(i), j] = state
        conjugate = model.conjugate_posterior(completed)
        logw.append(float(conjugate.log_marginal_likelihood()))
        m1, m2 = {}, {}
        for node in model.nodes:
            a = (conjugate.counts[node] + conjugate.pseudo_counts[node]).reshape(-1, cards[model.nodes.index(node)])
            a0 = a.sum(-1, keepdim=True)
            m1[node] = a / a0
            m2[node] = a * (a + 1) / (a0 * (a0 + 1))
        first.append(m1)
        second.append(m2)
    w = torch.softmax(torch.tensor(logw), 0)
    out = {}
    for node in model.nodes:
        mean = sum(wi * m[node] for wi, m in zip(w, first))
        raw = sum(wi * m[node] for wi, m in zip(w, second))
        out[model.sites[node]] = (mean, (raw - mean**2).sqrt())
    return out


def monte_carlo(fit, site):
    """Posterior mean and sd of every entry of a CPT site, with their Monte Carlo standard errors.

    ArviZ's mcse (mean) is sd / sqrt(ESS_bulk) and mcse (sd) the error of the sd from the same
    autocorrelations, so (estimate - exact) / mcse is approximately N(0, 1).
    """
    draws = fit.posterior[site].numpy()
    dataset = az.convert_to_dataset({site: draws})
    mcse_mean = az.mcse(dataset, method="mean")[site].values
    mcse_sd = az.mcse(dataset, method="sd")[site].values
    flat = draws.reshape((-1,) + draws.shape[2:])
    return flat.mean(0), flat.std(0, ddof=1), mcse_mean, mcse_sd


def assert_matches(fit, exact, what):
    """NUTS means and sds of every CPT entry against exact values, within Z Monte Carlo standard errors."""
    for site, (mean, sd) in exact.items():
        got_mean, got_sd, mcse_mean, mcse_sd = monte_carlo(fit, site)
        z_mean = np.abs(got_mean - mean.numpy()) / mcse_mean
        z_sd = np.abs(got_sd - sd.numpy()) / mcse_sd
        assert np.all(z_mean < Z), (what, site, z_mean)
        assert np.all(z_sd < Z), (what, site, z_sd)


@functools.lru_cache(maxsize=None)
def cancer_sample(rows=500):
    from pgmpy.utils import get_example_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        net = from_pgmpy(get_example_model("cancer"))
    return net, Inference(net).sample(rows, generator=torch.Generator().manual_seed(0))


@functools.lru_cache(maxsize=None)
def cancer_fit():
    """NUTS through the new path on complete data (500 rows, BDeu ess 10; 10 unconstrained dims)."""
    net, data = cancer_sample()
    return cpt_posterior(
        net, data, num_samples=400, num_warmup=250, num_chains=4, seed=1, progress_bar=False, compile="script"
    )


@functools.lru_cache(maxsize=None)
def two_node_fits():
    data = two_node_data()
    kwargs = dict(state_names=TWO_NODE_STATES, prior="bdeu", equivalent_sample_size=3.0, seed=2, progress_bar=False)
    nuts = cpt_posterior([("A", "B")], data, num_samples=1000, num_warmup=300, num_chains=4, compile="script", **kwargs)
    # every step, with the learning rate decayed to 5 %: the default stopping rule ends this run after
    # ~600 steps with the guide's mean still 0.3 posterior sd away from the optimum
    svi = cpt_posterior(
        [("A", "B")], data, method="svi", guide="mvn", num_steps=3000, tol=0, lr=0.02, lr_decay=0.05,
        num_samples=4000, **kwargs,
    )
    return nuts, svi


# ----------------------------------------------------------------------------- the likelihood


@pytest.mark.parametrize("batch", [(), (3, 1)])
def test_row_log_likelihood_equals_enumeration_of_the_joint(batch):
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    net = random_network(generator, batch=batch)
    cards = torch.tensor(net.cards)
    codes = (torch.rand(40, 4, generator=generator) * cards).long()
    codes[5:15, 1] = -1  # parent and child of others missing
    codes[10:20, 3] = -1  # a leaf (barren when missing)
    codes[18:25, 0] = -1
    codes[25:30] = -1  # rows without any observed cell: log-likelihood 0
    codes[30:, 2] = -1
    got = row_log_likelihood(net, codes)
    assert got.shape == tuple(batch[:-1]) + (40,)
    for b in itertools.product(*(range(s) for s in batch[:-1])):
        one = ops.NetworkTensors(net.cards, net.parents, tuple(t[b] if b else t for t in net.tables))
        one = ops.NetworkTensors(one.cards, one.parents, tuple(t.squeeze(0) if batch else t for t in one.tables))
        torch.testing.assert_close(got[b], enumerated_log_likelihood(one, codes), rtol=0, atol=1e-12)
    assert torch.all(got[..., 25:30] == 0)


def test_hidden_node_likelihood_and_model_factor_equal_enumeration():
    generator = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    net = random_network(generator)
    codes = (torch.rand(25, 4, generator=generator) * torch.tensor(net.cards)).long()
    codes[:, 1] = -1  # node 1 hidden
    codes[::4, 3] = -1
    expected = enumerated_log_likelihood(net, codes)
    torch.testing.assert_close(row_log_likelihood(net, codes), expected, rtol=0, atol=1e-12)

    edges = [(0, 1), (0, 2), (1, 2), (2, 3)]
    model = DirichletCPTModel(edges, {v: list(range(c)) for v, c in enumerate(net.cards)})
    values = {model.sites[v]: net.tables[v].reshape(-1, net.cards[v]) for v in range(4)}
    trace = poutine.trace(poutine.condition(model, values)).get_trace(codes)
    site = trace.nodes["data"]
    torch.testing.assert_close(site["fn"].log_prob(site["value"]), expected, rtol=0, atol=1e-12)
    assert trace.nodes["data"]["cond_indep_stack"][0].name == "rows"


def test_likelihood_is_differentiable_in_the_cpts():
    generator = torch.Generator().manual_seed(2)
    net = random_network(generator)
    tables = tuple(t.clone().requires_grad_(True) for t in net.tables)
    codes = (torch.rand(30, 4, generator=generator) * torch.tensor(net.cards)).long()
    codes[::2, 1] = -1
    total = row_log_likelihood(ops.NetworkTensors(net.cards, net.parents, tables), codes).sum()
    grads = torch.autograd.grad(total, tables)
    eps = 1e-6
    bumped = [t.detach().clone() for t in tables]
    bumped[2][1, 0, 1] += eps
    plus = row_log_likelihood(ops.NetworkTensors(net.cards, net.parents, tuple(bumped)), codes).sum()
    assert abs(float((plus - total.detach()) / eps) - float(grads[2][1, 0, 1])) < 1e-4


# ----------------------------------------------------------------------------- posteriors


def test_complete_data_nuts_reproduces_the_conjugate_posterior():
    net, data = cancer_sample()
    fit = cancer_fit()
    assert isinstance(fit, CPTPosterior) and fit.posterior.method == "nuts"
    conjugate = dirichlet_posterior(net, data)
    exact = {}
    for node, site in fit.model.sites.items():
        a = (conjugate.counts[node] + conjugate.pseudo_counts[node]).reshape(-1, net.cardinality(node))
        a0 = a.sum(-1, keepdim=True)
        exact[site] = (a / a0, (a * (a0 - a) / (a0**2 * (a0 + 1))).sqrt())
    assert_matches(fit, exact, "complete data")
    # one pointwise log-likelihood per row (LOO/WAIC), equal to the likelihood of the CPT draws
    pointwise = fit.posterior.log_likelihood()["data"]
    assert pointwise.shape == (4, 400, len(data))
    first = fit.sample_cpts(1).tensors()  # draw 0 of chain 0
    first = first._replace(tables=tuple(t[0] for t in first.tables))
    torch.testing.assert_close(pointwise[0, 0], row_log_likelihood(first, fit.model.encode(data)))
    # the posterior-mean network is the mean of the draws
    mean = fit.mean()
    torch.testing.assert_close(mean.cpd("Cancer").table.reshape(-1, 2), fit.posterior.flat("cpt_Cancer").mean(0))


def test_missing_cells_nuts_matches_the_exact_dirichlet_mixture():
    nuts, _ = two_node_fits()
    model = nuts.model
    codes = model.encode(two_node_data())
    exact = mixture_moments(model, codes)
    # the missing cells move the posterior away from the complete-rows-only conjugate one
    complete_only = model.conjugate_posterior(codes[(codes >= 0).all(1)]).mean().cpd("B").table
    assert (exact["cpt_B"][0] - complete_only).abs().max() > 0.01
    assert_matches(nuts, exact, "missing cells")


def test_hidden_node_label_invariant_query_matches_the_exact_mixture():
    # H (hidden, 2 states) -> A, H -> B; 6 rows: 2**6 completions of H enumerate the exact posterior
    data = pd.DataFrame({"A": [0, 0, 1, 1, 0, 1], "B": [0, 1, 1, 1, 0, 0]})
    states = {"H": ["h0", "h1"], "A": [0, 1], "B": [0, 1]}
    with pytest.warns(UserWarning, match="label switching"):
        fit = cpt_posterior(
            [("H", "A"), ("H", "B")], data, state_names=states, prior="k2", num_samples=800, num_warmup=300,
            num_chains=4, seed=3, progress_bar=False, compile="script",
        )
    assert fit.hidden == ("H",)
    # P(A = 0, B = 0) = sum_h theta_H[h] theta_A[h, 0] theta_B[h, 0] does not depend on the labels of H
    draws = fit.query_with_uncertainty(["A", "B"], joint=True).draws[:, 0, 0]
    model = fit.model
    codes = model.encode(data)
    logw, values = [], []
    for fill in itertools.product(range(2), repeat=len(data)):
        completed = codes.clone()
        completed[:, model.nodes.index("H")] = torch.tensor(fill)
        conjugate = model.conjugate_posterior(completed)
        logw.append(float(conjugate.log_marginal_likelihood()))
        m = conjugate.mean()
        values.append(float(sum(m.cpd("H").table[h] * m.cpd("A").table[h, 0] * m.cpd("B").table[h, 0] for h in range(2))))
    exact = float(torch.softmax(torch.tensor(logw), 0) @ torch.tensor(values))
    chains = draws.reshape(fit.posterior.num_chains, fit.posterior.num_draws).numpy()
    mcse = float(az.mcse(az.convert_to_dataset(chains)).to_array().values.squeeze())
    assert abs(draws.mean().item() - exact) < Z * mcse, (draws.mean().item(), exact, mcse)


def test_svi_posterior_mean_is_close_to_nuts():
    nuts, svi = two_node_fits()
    assert svi.posterior.method.startswith("svi")
    for site in nuts.model.sites.values():
        mean, sd, mcse, _ = monte_carlo(nuts, site)
        draws = svi.posterior.flat(site).numpy()
        # A full-rank Gaussian in the 5-d unconstrained (stick-breaking) space is close to, not
        # exactly, this posterior: its pushed-forward mean is off by a fraction of the posterior sd
        # (measured: at most 0.075 sd; 0.15 sd allowed), on top of the Monte Carlo error of both means.
        tolerance = 0.15 * sd + Z * np.hypot(mcse, sd / math.sqrt(draws.shape[0]))
        assert np.all(np.abs(draws.mean(0) - mean) < tolerance), (site, mean, draws.mean(0), sd)


def test_query_with_uncertainty_matches_the_conjugate_path():
    net, data = cancer_sample()
    fit = cancer_fit()
    got = fit.query_with_uncertainty(["Cancer"], {"Xray": "positive"})["Cancer"]
    torch.manual_seed(4)
    reference = dirichlet_posterior(net, data).query_with_uncertainty(["Cancer"], {"Xray": "positive"}, n_draws=4000)
    reference = reference["Cancer"]
    assert got.variables == reference.variables and got.states == reference.states
    assert got.draws.shape == (fit.num_draws, 2)
    chains = got.draws[:, 0].reshape(fit.posterior.num_chains, fit.posterior.num_draws).numpy()
    iid = reference.draws[:, 0].numpy()[None]

    def mcse(x, **kw):
        return float(az.mcse(az.convert_to_dataset(x), **kw).to_array().values.squeeze())

    # each difference has the Monte Carlo error of both estimates (independent runs)
    assert abs(got.mean[0] - reference.mean[0]) < Z * math.hypot(mcse(chains), mcse(iid))
    for end, prob in (("lower", 0.05), ("upper", 0.95)):
        se = math.hypot(mcse(chains, method="quantile", prob=prob), mcse(iid, method="quantile", prob=prob))
        assert abs(getattr(got, end)[0] - getattr(reference, end)[0]) < Z * se, end
    assert got.to_pandas().shape == (2, 3)
    thinned = fit.sample_cpts(10)
    assert thinned.cpd("Cancer").table.shape == (10, 2, 2, 2)


# ----------------------------------------------------------------------------- exact evidence and bad input


def test_exact_log_evidence_is_the_bdeu_score_and_refuses_missing_cells():
    net, data = cancer_sample()
    model = DirichletCPTModel(net, equivalent_sample_size=5.0)
    codes = model.encode(data)
    expected = float(dirichlet_posterior(net, data, equivalent_sample_size=5.0).log_marginal_likelihood())
    assert model.exact_log_evidence(codes) == pytest.approx(expected, abs=1e-9)
    codes[0, 2] = -1
    with pytest.raises(ModelSpecError, match="method='bridge'"):
        model.exact_log_evidence(codes)


def test_bad_input_gets_clear_errors():
    data = two_node_data()
    edges = [("A", "B")]
    with pytest.raises(DataError, match=r"\['C'\] are not nodes"):
        cpt_posterior(edges, data.assign(C=1), state_names=TWO_NODE_STATES)
    with pytest.raises(DataError, match="'H' has no column in data, so it is hidden"):
        cpt_posterior(edges + [("H", "A")], data, state_names=TWO_NODE_STATES)
    with pytest.raises(DataError, match="'b9'.*not states of 'B'"):
        cpt_posterior(edges, data.assign(B=["b9"] + list(data.B[1:])), state_names=TWO_NODE_STATES)
    with pytest.raises(DataError, match="no observed cell"):
        cpt_posterior(edges, data.iloc[-1:], state_names=TWO_NODE_STATES)
    with pytest.raises(ModelSpecError, match="method must be one of"):
        cpt_posterior(edges, data, method="gibbs", state_names=TWO_NODE_STATES)
    with pytest.raises(ModelSpecError, match="prior must be one of"):
        cpt_posterior(edges, data, prior="uniform", state_names=TWO_NODE_STATES)
    with pytest.raises(TypeError, match="DataFrame"):
        cpt_posterior(edges, data.to_numpy())
    with pytest.raises(ModelSpecError, match="states of node 'B' are unknown"):
        DirichletCPTModel(edges, {"A": ["a0", "a1"]})
    model = DirichletCPTModel(edges, TWO_NODE_STATES)
    with pytest.raises(ShapeError, match=r"expected \(n_rows, 2\)"):
        model.exact_log_evidence(torch.zeros(3, 3, dtype=torch.long))
    with pytest.raises(DataError, match="codes of node 'B'"):
        model.exact_log_evidence(torch.tensor([[0, 3]]))
    with pytest.raises(DataError, match="integer tensor"):
        model.exact_log_evidence(torch.zeros(3, 2))
    nuts, _ = two_node_fits()
    with pytest.raises(ModelSpecError, match="n_draws must be an integer"):
        nuts.sample_cpts(10**6)
