"""The HMM model layer (probmodels.hmm.model, em, emissions) with EM fits.

Oracles: hmmlearn at the same parameters (score, Viterbi, posteriors, BIC, one
Baum-Welch iteration), the known parameters of simulated data (EM recovery),
and each sequence scored alone (padding). Everything in float64.
"""

import warnings

import numpy as np
import pyro.distributions as dist
import pytest
from hmmlearn import hmm as hl

from probmodels import ConvergenceWarning, DataError, ModelSpecError, ShapeError
from probmodels.hmm import HMM, CategoricalHMM, GaussianHMM, PoissonHMM, select_n_states

LENGTHS = [300, 200, 250]


def gaussian_truth(covariance_type="diag"):
    model = GaussianHMM(3, covariance_type)
    model.startprob_ = np.array([0.6, 0.3, 0.1])
    model.transmat_ = np.array([[0.90, 0.05, 0.05], [0.10, 0.85, 0.05], [0.05, 0.15, 0.80]])
    model.means_ = np.array([[-3.0, 1.0], [0.0, -1.0], [4.0, 2.0]])
    if covariance_type == "diag":
        model.covars_ = np.array([[0.5, 1.0], [1.0, 0.3], [0.8, 0.6]])
    else:
        model.covars_ = np.array([[[0.5, 0.2], [0.2, 1.0]], [[1.0, -0.3], [-0.3, 0.6]], [[0.8, 0.0], [0.0, 0.6]]])
    return model


def categorical_truth():
    model = CategoricalHMM(2)
    model.startprob_ = np.array([0.7, 0.3])
    model.transmat_ = np.array([[0.9, 0.1], [0.2, 0.8]])
    model.emissionprob_ = np.array([[0.6, 0.3, 0.1, 0.0], [0.05, 0.15, 0.3, 0.5]])
    return model


def simulate(model, lengths, seed):
    parts = [model.sample(n, seed=seed + i) for i, n in enumerate(lengths)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def hmmlearn_copy(model, **kwargs):
    if isinstance(model, GaussianHMM):
        cov = model._family.covariance_type
        ref = hl.GaussianHMM(3, covariance_type=cov, covars_prior=0.0, init_params="", **kwargs)
        ref.covars_ = model.covars_
        ref.means_ = model.means_
    else:
        ref = hl.CategoricalHMM(model.n_states, init_params="", **kwargs)
        ref.emissionprob_ = model.emissionprob_
    ref.startprob_, ref.transmat_ = model.startprob_, model.transmat_
    return ref


def fit_quietly(model, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        return model.fit(*args, **kwargs)


# ----------------------------------------------------------------------------- hmmlearn at equal parameters


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_gaussian_score_posteriors_viterbi_bic_equal_hmmlearn(covariance_type):
    model = gaussian_truth(covariance_type)
    X, _ = simulate(model, LENGTHS, seed=1)
    ref = hmmlearn_copy(model)
    assert model.score(X, LENGTHS) == pytest.approx(ref.score(X, LENGTHS), rel=1e-10)
    log_prob, post = model.score_samples(X, LENGTHS)
    ref_log_prob, ref_post = ref.score_samples(X, LENGTHS)
    assert log_prob == pytest.approx(ref_log_prob, rel=1e-10)
    np.testing.assert_allclose(post, ref_post, atol=1e-9)
    np.testing.assert_allclose(model.predict_proba(X, LENGTHS), ref_post, atol=1e-9)
    np.testing.assert_array_equal(model.predict(X, LENGTHS), ref.predict(X, LENGTHS))
    assert model.n_parameters == sum(ref._get_n_fit_scalars_per_param().values())
    assert model.bic(X, LENGTHS) == pytest.approx(ref.bic(X, LENGTHS), rel=1e-10)
    assert model.aic(X, LENGTHS) == pytest.approx(ref.aic(X, LENGTHS), rel=1e-10)


def test_categorical_score_and_viterbi_equal_hmmlearn():
    model = categorical_truth()
    X, _ = simulate(model, LENGTHS, seed=2)
    ref = hmmlearn_copy(model)
    assert model.score(X, LENGTHS) == pytest.approx(ref.score(X.astype(int), LENGTHS), rel=1e-10)
    np.testing.assert_array_equal(model.predict(X, LENGTHS), ref.predict(X.astype(int), LENGTHS))


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_one_gaussian_em_iteration_equals_hmmlearn(covariance_type):
    """hmmlearn's default covars_prior=1e-2 is a prior added to the variances' numerator; with
    covars_prior=0 (and our min_covar=0) both M-steps are maximum likelihood and must agree."""
    truth = gaussian_truth(covariance_type)
    lengths = [300, 1, 249]  # a one-step sequence has no transition
    X, _ = simulate(truth, lengths, seed=3)
    start = gaussian_truth(covariance_type)
    start.means_ = start.means_ + 0.5  # start away from the truth so that the step moves
    ref = hmmlearn_copy(start, n_iter=1, params="stmc", implementation="log")
    ours = GaussianHMM(3, covariance_type, min_covar=0.0, init_params="")
    for name in ("startprob_", "transmat_", "means_", "covars_"):
        setattr(ours, name, getattr(start, name))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref.fit(X, lengths)
        ours.fit(X, lengths, n_iter=1, n_restarts=1)
    for name in ("startprob_", "transmat_", "means_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(ref, name), atol=1e-8, err_msg=name)
    np.testing.assert_allclose(ours.covars_, ref._covars_, atol=1e-8)
    assert abs(getattr(ours, "means_") - start.means_).max() > 0.1


def test_one_categorical_em_iteration_equals_hmmlearn():
    truth = categorical_truth()
    X, _ = simulate(truth, LENGTHS, seed=4)
    start = categorical_truth()
    start.emissionprob_ = np.array([[0.4, 0.3, 0.2, 0.1], [0.1, 0.2, 0.3, 0.4]])
    ref = hmmlearn_copy(start, n_iter=1, params="ste")
    ours = CategoricalHMM(2, init_params="")
    for name in ("startprob_", "transmat_", "emissionprob_"):
        setattr(ours, name, getattr(start, name))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref.fit(X.astype(int), LENGTHS)
        ours.fit(X, LENGTHS, n_iter=1, n_restarts=1)
    for name in ("startprob_", "transmat_", "emissionprob_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(ref, name), atol=1e-8, err_msg=name)


# ----------------------------------------------------------------------------- EM fits


def test_em_recovers_gaussian_parameters_and_states():
    truth = gaussian_truth()
    X, states = simulate(truth, [600, 600, 600], seed=5)
    model = GaussianHMM(3).fit(X, [600, 600, 600], seed=0)
    order = np.argsort(model.means_[:, 0])
    assert model.monitor_.converged and np.all(np.diff(model.monitor_.history) > -1e-8)
    np.testing.assert_allclose(model.means_[order], truth.means_, atol=0.15)
    np.testing.assert_allclose(model.covars_[order], truth.covars_, rtol=0.2)
    np.testing.assert_allclose(model.transmat_[np.ix_(order, order)], truth.transmat_, atol=0.05)
    relabel = np.argsort(order)
    assert np.mean(relabel[model.predict(X, [600, 600, 600])] == states) > 0.95
    assert model.score(X, [600, 600, 600]) >= truth.score(X, [600, 600, 600])


def test_em_restarts_keep_the_best():
    truth = gaussian_truth()
    X, _ = simulate(truth, LENGTHS, seed=6)
    model = GaussianHMM(3).fit(X, LENGTHS, n_restarts=4, seed=3)
    finals = model.monitor_.restart_log_likelihoods
    assert len(finals) == 4 and model.monitor_.log_likelihood == max(finals)
    assert finals[model.monitor_.restart] == max(finals)


def test_em_recovers_categorical_poisson_and_exponential_emissions():
    X, _ = simulate(categorical_truth(), [1000, 1000], seed=7)
    model = fit_quietly(CategoricalHMM(2, n_symbols=4), X, [1000, 1000])
    order = np.argsort(model.emissionprob_[:, 3])
    np.testing.assert_allclose(model.emissionprob_[order], categorical_truth().emissionprob_, atol=0.06)

    poisson = PoissonHMM(2)
    poisson.startprob_, poisson.transmat_ = np.array([0.5, 0.5]), np.array([[0.95, 0.05], [0.1, 0.9]])
    poisson.lambdas_ = np.array([[2.0, 10.0], [12.0, 1.0]])
    X, _ = simulate(poisson, [800], seed=8)
    fitted = PoissonHMM(2).fit(X)
    np.testing.assert_allclose(fitted.lambdas_[np.argsort(fitted.lambdas_[:, 0])], poisson.lambdas_, rtol=0.1)

    expo = HMM(2, lambda p: dist.Exponential(p["rate"]), {"rate": dist.Gamma(2.0, 1.0)})
    expo.startprob_, expo.transmat_, expo.rate_ = np.array([0.5, 0.5]), np.array([[0.95, 0.05], [0.1, 0.9]]), np.array([0.5, 5.0])
    X, _ = simulate(expo, [800], seed=9)
    fitted = HMM(2, lambda p: dist.Exponential(p["rate"]), {"rate": dist.Gamma(2.0, 1.0)}).fit(X, n_restarts=1)
    assert fitted.monitor_.converged and np.all(np.diff(fitted.monitor_.history) > -1e-8)
    np.testing.assert_allclose(np.sort(fitted.rate_), expo.rate_, rtol=0.15)
    assert fitted.n_parameters == 1 + 2 + 2


def test_convergence_warning_names_n_iter():
    X, _ = simulate(gaussian_truth(), LENGTHS, seed=10)
    with pytest.warns(ConvergenceWarning, match="n_iter=2"):
        GaussianHMM(3).fit(X, LENGTHS, n_iter=2, n_restarts=1)


def test_fixed_parameters_stay_fixed():
    truth = gaussian_truth()
    X, _ = simulate(truth, LENGTHS, seed=11)
    model = GaussianHMM(3, params="tm", init_params="tm")
    model.startprob_, model.covars_ = truth.startprob_, truth.covars_
    fit_quietly(model, X, LENGTHS)
    np.testing.assert_array_equal(model.startprob_, truth.startprob_)
    np.testing.assert_array_equal(model.covars_, truth.covars_)
    assert model.n_parameters == 3 * 2 + 3 * 2


# ----------------------------------------------------------------------------- sequences and sampling


def test_padded_sequences_score_like_each_sequence_alone():
    model = gaussian_truth()
    X, _ = simulate(model, [5, 1, 40], seed=12)
    bounds = np.cumsum([0, 5, 1, 40])
    alone = [model.score(X[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    assert model.score(X, [5, 1, 40]) == pytest.approx(sum(alone), rel=1e-12)
    paths = [model.predict(X[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    np.testing.assert_array_equal(model.predict(X, [5, 1, 40]), np.concatenate(paths))
    assert model.predict_proba(X, np.array([5, 1, 40])).shape == (46, 3)


def test_sample_is_reproducible_and_shaped():
    model = gaussian_truth()
    X, Z = model.sample(50, seed=3)
    assert X.shape == (50, 2) and Z.shape == (50,)
    np.testing.assert_array_equal(model.sample(50, seed=3)[0], X)
    symbols, _ = categorical_truth().sample(30, seed=1)
    assert symbols.shape == (30, 1) and set(np.unique(symbols)) <= {0, 1, 2, 3}


def test_select_n_states_by_bic_finds_the_truth():
    truth = categorical_truth()
    X, _ = simulate(truth, LENGTHS, seed=13)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the superfluous third state converges slowly
        table = select_n_states(X, LENGTHS, k_range=range(1, 4), methods=("bic", "aic"), model=CategoricalHMM,
                                em_kwargs={"n_restarts": 2})
    assert list(table.index) == [1, 2, 3] and {"bic", "aic", "log_likelihood", "n_parameters"} <= set(table.columns)
    assert table["bic"].idxmin() == 2
    with pytest.raises(ModelSpecError, match="are not available; use 'bic', 'aic', 'loo' and/or 'evidence'"):
        select_n_states(X, LENGTHS, methods=("dic",))


# ----------------------------------------------------------------------------- bad input


def test_bad_data_raise_actionable_errors():
    model = gaussian_truth()
    X, _ = simulate(model, [20], seed=14)
    X[3, 1] = np.nan
    with pytest.raises(DataError, match=r"X contains 1 NaN.*rows \[3\]"):
        model.score(X)
    with pytest.raises(ShapeError, match=r"2-D.*shape \(20,\)"):
        GaussianHMM(2).fit(np.zeros(20))
    fitted = GaussianHMM(2).fit(np.random.default_rng(0).normal(size=(20, 2)), n_restarts=1)
    with pytest.raises(ShapeError, match=r"X has 3 feature\(s\).*n_features=2"):
        fitted.score(np.zeros((20, 3)))
    with pytest.raises(DataError, match=r"lengths sum to 25 but X has 20 rows"):
        GaussianHMM(2).fit(np.zeros((20, 1)), [10, 15])
    with pytest.raises(DataError, match=r">= 1"):
        GaussianHMM(2).fit(np.zeros((20, 1)), [20, 0])
    with pytest.raises(DataError, match="integers"):
        GaussianHMM(2).fit(np.zeros((20, 1)), [10.0, 10.0])


def test_bad_symbols_raise():
    with pytest.raises(DataError, match=r"symbol 5 .*n_symbols=4.*\[0, 3\]"):
        CategoricalHMM(2, n_symbols=4).fit(np.array([[0], [1], [5], [2]]))
    with pytest.raises(DataError, match="non-negative integers"):
        CategoricalHMM(2).fit(np.array([[0], [1.5], [2]]))
    with pytest.raises(ShapeError, match=r"one column"):
        CategoricalHMM(2).fit(np.zeros((4, 2)))
    with pytest.raises(DataError, match="counts"):
        PoissonHMM(2).fit(np.array([[1.0], [-1.0]]))


def test_bad_configuration_raises():
    with pytest.raises(ModelSpecError, match="n_states must be >= 1, got 0"):
        GaussianHMM(0)
    with pytest.raises(TypeError, match="n_states"):
        GaussianHMM(2.5)
    with pytest.raises(ModelSpecError, match="covariance_type"):
        GaussianHMM(2, "tied")
    with pytest.raises(ModelSpecError, match="params"):
        GaussianHMM(2, params="stx")
    with pytest.raises(ModelSpecError, match="method"):
        GaussianHMM(2).fit(np.zeros((5, 1)), method="gibbs")
    with pytest.raises(ModelSpecError, match="not fitted"):
        GaussianHMM(2).predict(np.zeros((5, 1)))
    with pytest.raises(ModelSpecError, match=r"means_ is not set.*init_params"):
        GaussianHMM(2, init_params="stc").fit(np.zeros((5, 1)))


def test_non_normalised_probabilities_given_by_the_user_print_the_sums():
    model = gaussian_truth()
    X, _ = simulate(model, [10], seed=15)
    model.startprob_ = np.array([0.6, 0.3, 0.3])
    with pytest.raises(ModelSpecError, match=r"startprob_.*sum 1\.2"):
        model.score(X)
    model = gaussian_truth()
    model.transmat_ = np.array([[0.9, 0.05, 0.05], [0.5, 0.5, 0.5], [0.1, 0.1, 0.8]])
    with pytest.raises(ModelSpecError, match=r"transmat_.*row \(1,\): sum 1\.5"):
        model.predict(X)
    model = gaussian_truth()
    model.transmat_ = np.eye(2)
    with pytest.raises(ShapeError, match=r"transmat_ must have shape \(3, 3\)"):
        model.score(X)
