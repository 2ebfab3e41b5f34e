"""Bayesian HMMs through the shared inference core (fit_mcmc / fit_svi).

The posteriordb ``hmm_example`` is built with the model layer: its log density
equals the Stan port's (up to a constant) at random points, and NUTS on it
reproduces Stan's reference posterior (slow). Smoke tests fit simulated data
with SVI and NUTS and check the recovered parameters and the per-sequence
log-likelihood that LOO uses.
"""

import math
import warnings

import numpy as np
import pyro.poutine as poutine
import pytest
import torch

import probmodels as pm
from probmodels import ConvergenceWarning
from posteriordb_models import load_case, load_reference_draws, requires_reference
from probmodels.diagnostics.arviz import loo
from probmodels.hmm import CategoricalHMM, GaussianHMM, select_n_states

CASE = "hmm_example-hmm_example"
LENGTHS = [50] * 5


def hmm_example(y):
    """posteriordb's hmm_example with the model layer: 2 states, unit-variance Gaussian emissions,
    positive-ordered means with N(3, 1) and N(10, 1) priors, Dirichlet(1, 1) transition rows.

    Stan's model has no initial-state term; here the initial distribution is
    held at (1/2, 1/2), which adds the constant log(1/2) to the log density and
    leaves the posterior unchanged.
    """
    hmm = GaussianHMM(2, ordered="positive", mean_prior=([[3.0], [10.0]], 1.0), params="tm", init_params="")
    hmm.startprob_, hmm.covars_ = np.array([0.5, 0.5]), np.array([[1.0], [1.0]])
    program, args = hmm.pyro_model(np.asarray(y).reshape(-1, 1))
    return program, args


def simulated(seed=0):
    truth = GaussianHMM(2)
    truth.startprob_, truth.transmat_ = np.array([0.5, 0.5]), np.array([[0.9, 0.1], [0.2, 0.8]])
    truth.means_, truth.covars_ = np.array([[-1.0], [2.0]]), np.array([[0.5], [0.8]])
    X = np.concatenate([truth.sample(n, seed=seed + i)[0] for i, n in enumerate(LENGTHS)])
    return truth, X


@requires_reference
def test_hmm_example_log_density_equals_the_stan_port():
    case = load_case(CASE)
    program, args = hmm_example(case.kwargs["y"].numpy())
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        theta = torch.distributions.Dirichlet(torch.ones(2, dtype=torch.float64)).sample((2,))
        mu = torch.sort(12 * torch.rand(2, generator=generator, dtype=torch.float64)).values
        ours = poutine.trace(poutine.condition(program, {"transmat": theta, "means": mu})).get_trace(*args)
        port = poutine.trace(poutine.condition(case.model, {"theta1": theta[0], "theta2": theta[1], "mu": mu}))
        port = port.get_trace(**case.kwargs)
        assert float(ours.log_prob_sum()) == pytest.approx(float(port.log_prob_sum()) + math.log(0.5), rel=1e-12)


@pytest.mark.slow
@requires_reference
def test_hmm_example_reproduces_the_reference_posterior():
    """The rule of tests/core/test_reference_posteriors.py: 4 chains, every mean within 0.1
    reference sd, every sd within 10 %."""
    case = load_case(CASE)
    program, args = hmm_example(case.kwargs["y"].numpy())
    posterior = pm.fit_mcmc(program, *args, num_chains=4, seed=2024, progress_bar=False)
    ours = {"theta1": posterior["transmat"][:, :, 0], "theta2": posterior["transmat"][:, :, 1], "mu": posterior["means"]}
    problems = []
    for name, ref in load_reference_draws(CASE).items():
        ref = ref.reshape(-1, ref.shape[-1])
        draws = ours[name].reshape(-1, ref.shape[-1]).numpy()
        for k in range(ref.shape[1]):
            mean_err = abs(draws[:, k].mean() - ref[:, k].mean()) / ref[:, k].std()
            sd_err = abs(draws[:, k].std() / ref[:, k].std() - 1)
            if mean_err > 0.1 or sd_err > 0.1:
                problems.append(f"{name}[{k}]: mean off by {mean_err:.3f} ref sd, sd off by {100 * sd_err:.1f} %")
    assert not problems, "\n".join(problems)


def test_svi_recovers_the_truth_with_per_sequence_log_likelihood():
    truth, X = simulated()
    hmm = GaussianHMM(2).fit(X, LENGTHS, method="svi", num_steps=1500, lr=0.03, num_samples=200, progress_bar=False, seed=1)
    assert hmm.posterior_.method == "svi:normal"
    np.testing.assert_allclose(hmm.means_, truth.means_, atol=0.3)
    np.testing.assert_allclose(hmm.transmat_, truth.transmat_, atol=0.1)
    idata = hmm.posterior_.to_arviz()
    assert idata.log_likelihood["y"].shape == (1, 200, len(LENGTHS))
    proba = hmm.predict_proba(X, LENGTHS)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(-1), 1.0, atol=1e-12)


def test_nuts_recovers_the_truth_and_feeds_loo():
    truth, X = simulated(seed=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # R-hat and ESS of a short run
        # compile=False: ops' custom log-sum-exp does not support torch.func yet, so tracing fails (~8 s) anyway.
        hmm = GaussianHMM(2).fit(X, LENGTHS, method="nuts", num_chains=2, num_warmup=100, num_samples=100,
                                 compile=False, progress_bar=False, seed=3)
    posterior = hmm.posterior_
    assert set(posterior.sites) >= {"startprob", "transmat", "means", "stds"}
    means = posterior["means"].reshape(-1, 2)
    assert torch.all(means[:, 1] > means[:, 0]), "ordered means"
    np.testing.assert_allclose(hmm.means_, truth.means_, atol=0.3)
    np.testing.assert_allclose(hmm.covars_, truth.covars_, rtol=0.4)
    ll = posterior.to_arviz().log_likelihood["y"]
    assert ll.shape == (2, 100, len(LENGTHS))
    at_draw = GaussianHMM(2)  # the pointwise term of a sequence is its log-likelihood at the draw
    at_draw.startprob_, at_draw.transmat_ = posterior["startprob"][1, 7].numpy(), posterior["transmat"][1, 7].numpy()
    at_draw.means_, at_draw.covars_ = posterior["means"][1, 7].numpy()[:, None], posterior["stds"][1, 7].numpy() ** 2
    bounds = np.cumsum([0] + LENGTHS)
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        assert float(ll.values[1, 7, i]) == pytest.approx(at_draw.score(X[a:b]), rel=1e-10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Pareto k: 5 sequences are few units for PSIS-LOO
        assert np.isfinite(float(loo(posterior.to_arviz()).elpd_loo))


def test_map_through_the_core_equals_map_em():
    """Both maximise the same posterior density (Dirichlet(2) emission rows, uniform elsewhere)."""
    truth = CategoricalHMM(2)
    truth.startprob_, truth.transmat_ = np.array([0.5, 0.5]), np.array([[0.9, 0.1], [0.2, 0.8]])
    truth.emissionprob_ = np.array([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]])
    X = np.concatenate([truth.sample(100, seed=i)[0] for i in range(4)])
    em = CategoricalHMM(2, emissionprob_prior=2.0).fit(X, [100] * 4, tol=1e-7, n_iter=1000)
    with pytest.warns(ConvergenceWarning, match="SVI did not converge"):
        core = CategoricalHMM(2, emissionprob_prior=2.0).fit(
            X, [100] * 4, method="map", n_restarts=2, num_steps=400, lr=0.1, progress_bar=False
        )
    assert core.posterior_.num_draws == 1 and core.monitor_ is None
    ours, theirs = np.argsort(core.emissionprob_[:, 2]), np.argsort(em.emissionprob_[:, 2])
    np.testing.assert_allclose(core.emissionprob_[ours], em.emissionprob_[theirs], atol=1e-3)
    np.testing.assert_allclose(core.transmat_[np.ix_(ours, ours)], em.transmat_[np.ix_(theirs, theirs)], atol=1e-3)
    site = poutine.trace(core.posterior_.model).get_trace(*core.posterior_.model_args).nodes["emissionprob"]
    assert float(site["fn"].base_dist.concentration.min()) == 2.0


def test_select_n_states_by_bic_loo_and_evidence():
    _, X = simulated(seed=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short SVI runs, high Pareto k with 5 sequences
        table = select_n_states(X, LENGTHS, k_range=(1, 2), methods=("bic", "loo", "evidence"), bayes_method="svi",
                                bayes_kwargs={"num_steps": 500, "lr": 0.05, "num_samples": 200, "progress_bar": False})
    assert {"bic", "elpd_loo", "elpd_loo_se", "p_loo", "max_pareto_k", "log_evidence", "log_evidence_se"} <= set(table.columns)
    assert table["bic"].idxmin() == 2 and table["elpd_loo"].idxmax() == 2 and table["log_evidence"].idxmax() == 2


@pytest.mark.slow
def test_evidence_and_loo_pick_three_states_from_one_to_five():
    rng = np.random.default_rng(5)
    transmat = np.array([[0.9, 0.07, 0.03], [0.05, 0.9, 0.05], [0.03, 0.07, 0.9]])
    means = np.array([-3.0, 0.0, 3.0])
    sequences = []
    for _ in range(8):
        path = [rng.integers(3)]
        for _ in range(59):
            path.append(rng.choice(3, p=transmat[path[-1]]))
        sequences.append(means[path] + 0.7 * rng.normal(size=60))
    X = np.concatenate(sequences)[:, None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pareto k: 8 sequences are few units for PSIS
        # SVI with importance-sampling evidence: the same comparison by NUTS and bridge sampling
        # takes over 15 minutes on 2 cores (eager forward algorithm, deep trees for K = 5).
        table = select_n_states(X, [60] * 8, k_range=range(1, 6), methods=("loo", "evidence"), bayes_method="svi",
                                bayes_kwargs={"num_steps": 1500, "lr": 0.05, "num_samples": 1000, "progress_bar": False,
                                              "seed": 1})
    assert table["log_evidence"].idxmax() == 3, table
    assert table["elpd_loo"].idxmax() == 3, table
