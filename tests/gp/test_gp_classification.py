"""GPClassification: separable problems, calibration far from the data, scikit-learn's Laplace GPC, bad input."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, special, stats
from sklearn.gaussian_process import GaussianProcessClassifier
from sklearn.gaussian_process import kernels as sk

from probmodels.exceptions import DataError, ModelSpecError, ShapeError
from probmodels.gp import GPClassification
from probmodels.gp.variational import bernoulli_expected_log_lik, gauss_hermite, predictive_probability

FIXED = {"outputscale": 4.0, "lengthscale": 1.0}


def _separable(n, seed, margin=0.5):
    """1-d inputs at least ``margin`` from the boundary x = 0; the class is the sign of x."""
    rng = np.random.default_rng(seed)
    X = rng.choice([-1.0, 1.0], size=n) * rng.uniform(margin, 3.0, size=n)
    return X[:, None], (X > 0).astype(int)


def _noisy(n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-3, 3, (n, 1))
    p = 1.0 / (1.0 + np.exp(-3.0 * np.sin(1.5 * X[:, 0])))
    return X, (rng.uniform(size=n) < p).astype(int)


@pytest.mark.parametrize("link", ["logit", "probit"])
def test_separable_problem_is_classified_without_error(link):
    # Every point is at least 0.5 from the boundary, a quarter of the fixed lengthscale's unit: any consistent classifier
    # that has seen 40 points classifies all unseen ones correctly, so the accuracy must be exactly 1.
    X, y = _separable(40, seed=0)
    Xs, ys = _separable(200, seed=1)
    clf = GPClassification(link=link, hyperparameters={"outputscale": 4.0}, fixed=("outputscale",)).fit(X, y)
    assert clf.score(Xs, ys) == 1.0
    assert clf.converged_
    np.testing.assert_array_equal(clf.predict(Xs), ys)


@pytest.mark.parametrize("link", ["logit", "probit"])
def test_probabilities_are_one_half_far_from_the_data(link):
    # The prior mean is 0 and the RBF kernel vanishes far away, so the latent predictive there is N(0, outputscale);
    # both links are symmetric about 0, so the averaged probability is 1/2 up to rounding.
    X, y = _noisy(50)
    clf = GPClassification(link=link).fit(X, y)
    proba = clf.predict_proba(np.array([[-1e3], [1e3]]))
    torch.testing.assert_close(proba, torch.full((2, 2), 0.5, dtype=torch.float64), rtol=0, atol=1e-12)
    mean, sd = clf.predict_latent(np.array([[1e3]]))
    assert float(mean.abs()) < 1e-12
    assert float(sd) ** 2 == pytest.approx(float(clf.hyperparameters_["outputscale"]), rel=1e-9)


def test_probabilities_agree_loosely_with_sklearns_laplace_classifier():
    # Same logistic likelihood and the same fixed kernel, two approximations of one posterior: scikit-learn's Laplace
    # Gaussian sits at the mode with the curvature there, ours minimises KL(q || p), and scikit-learn also replaces the
    # logistic-Gaussian integral by an erf approximation. For Bernoulli-logit GPs such approximations give predictive
    # probabilities that differ by a few hundredths (Nickisch & Rasmussen 2008), hence the bound of 0.05.
    X, y = _noisy(60)
    Xs = np.linspace(-3, 3, 25)[:, None]
    clf = GPClassification(hyperparameters=FIXED, fixed=tuple(FIXED), standardize_x=False).fit(X, y)
    kernel = sk.ConstantKernel(4.0, "fixed") * sk.RBF(1.0, "fixed")
    ref = GaussianProcessClassifier(kernel, optimizer=None).fit(X, y)
    difference = np.abs(clf.predict_proba(Xs)[:, 1].numpy() - ref.predict_proba(Xs)[:, 1])
    assert difference.max() < 0.05
    assert clf.elbo_ < 0


def test_probit_elbo_is_below_the_exact_evidence_from_a_normal_orthant_probability():
    # With a probit link y_i = 1 exactly when f_i + e_i > 0, e ~ N(0, 1), so p(y) is the orthant probability
    # P(w < 0) for w ~ N(0, S (K + I) S), S = diag(2 y - 1): the exact evidence, which the ELBO must not exceed (up to
    # the ~1e-7 error of scipy's Genz integration). The gap is KL(q || posterior), small for a handful of points.
    X = np.array([-2.0, -1.0, -0.3, 0.4, 1.2, 2.5])[:, None]
    y = np.array([0, 0, 1, 0, 1, 1])
    values = {"outputscale": 2.0, "lengthscale": 1.0}
    clf = GPClassification(link="probit", hyperparameters=values, fixed=tuple(values), standardize_x=False).fit(X, y)
    K = 2.0 * np.exp(-0.5 * (X - X.T) ** 2)
    S = np.diag(2.0 * y - 1.0)
    orthant = stats.multivariate_normal(np.zeros(6), S @ (K + np.eye(6)) @ S, abseps=1e-12, releps=1e-10, maxpts=10**7)
    log_evidence = math.log(orthant.cdf(np.zeros(6)))
    assert clf.elbo_ <= log_evidence + 1e-6
    assert log_evidence - clf.elbo_ < 0.1


def test_quadrature_matches_adaptive_integration_and_the_probit_closed_form():
    # Gauss-Hermite with 40 nodes on smooth integrands: far below 1e-8; the probit predictive is exact either way.
    mean = torch.tensor([-2.0, 0.3, 1.5])
    var = torch.tensor([0.5, 2.0, 4.0])
    y = torch.tensor([0.0, 1.0, 1.0])
    nodes = gauss_hermite(40, mean)
    ell = bernoulli_expected_log_lik(y, mean, var, "logit", nodes)
    for i in range(3):
        s = 2 * float(y[i]) - 1
        density = lambda f: math.exp(-0.5 * (f - float(mean[i])) ** 2 / float(var[i])) / math.sqrt(2 * math.pi * float(var[i]))
        ref, _ = integrate.quad(lambda f: -np.logaddexp(0.0, -s * f) * density(f), -40, 40, epsabs=1e-13)
        assert float(ell[i]) == pytest.approx(ref, abs=1e-8)
    closed = predictive_probability(mean, var, "probit", nodes)
    torch.testing.assert_close(closed, torch.as_tensor(special.ndtr(mean.numpy() / np.sqrt(1 + var.numpy()))))
    by_quadrature = (torch.special.ndtr(mean[:, None] + var.sqrt()[:, None] * nodes[0]) * nodes[1]).sum(-1)
    torch.testing.assert_close(closed, by_quadrature, rtol=0, atol=1e-8)


def test_two_string_labels_are_remembered_and_returned():
    X, y = _separable(30, seed=2)
    labels = np.where(y == 1, "yes", "no")
    clf = GPClassification(hyperparameters=FIXED, fixed=tuple(FIXED)).fit(X, labels)
    np.testing.assert_array_equal(clf.classes_, ["no", "yes"])
    np.testing.assert_array_equal(clf.predict(X), labels)
    proba = clf.predict_proba(X)
    torch.testing.assert_close(proba.sum(1), torch.ones(30, dtype=torch.float64))
    assert bool(((proba[:, 1] > 0.5) == torch.as_tensor(labels == "yes")).all())


def test_inducing_points_fewer_than_the_data_are_learned():
    rng = np.random.default_rng(4)
    X = rng.uniform(-3, 3, (80, 2))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    clf = GPClassification(num_inducing=8, hyperparameters=FIXED, fixed=tuple(FIXED), max_iter=300).fit(X, y)
    assert clf.inducing_points_.shape == (8, 2)
    assert clf.learns_inducing_
    assert clf.score(X, y) >= 0.95
    assert clf.elbo_ < 0


@pytest.mark.parametrize(
    "X, y, error, match",
    [
        ([[0.0], [np.nan], [1.0]], [0, 1, 1], DataError, "'X' contains 1 non-finite"),
        ([[0.0], [1.0], [2.0]], [0.0, np.nan, 1.0], DataError, "'y' contains 1 non-finite"),
        ([[0.0], [1.0], [2.0]], [0, 1, 2], DataError, "y must hold exactly two classes.*got 3"),
        ([[0.0], [1.0], [2.0]], [1, 1, 1], DataError, "y must hold exactly two classes.*got 1"),
        ([[0.0], [1.0], [2.0]], [0, 1], ShapeError, "X has 3 rows but y has 2"),
        ([[0.0], [1.0], [2.0]], ["a", "b"], ShapeError, "X has 3 rows but y has 2 labels"),
    ],
)
def test_bad_data_raises_with_the_argument_named(X, y, error, match):
    with pytest.raises(error, match=match):
        GPClassification().fit(X, y)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_inducing": 0}, "num_inducing must be >= 1.*e.g. num_inducing="),
        ({"link": "cloglog"}, "link must be one of"),
        ({"hyperparameters": {"noise": 0.1}}, "no 'noise' hyperparameter"),
        ({"jitter": float("nan")}, "jitter must be a finite number"),
    ],
)
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(ModelSpecError, match=match):
        GPClassification(**kwargs)


def test_wrong_feature_count_at_predict():
    X, y = _separable(20, seed=3)
    clf = GPClassification(hyperparameters=FIXED, fixed=tuple(FIXED)).fit(X, y)
    with pytest.raises(ShapeError, match="X has 2 feature.*fitted on 1"):
        clf.predict_proba(np.zeros((3, 2)))
    with pytest.raises(ShapeError, match="X has 3 rows but y has 2 labels"):
        clf.score(np.zeros((3, 1)), [0, 1])


def test_use_before_fit_says_to_call_fit():
    with pytest.raises(ValueError, match=r"call fit\(X, y\) first"):
        GPClassification().predict(np.zeros((2, 1)))
