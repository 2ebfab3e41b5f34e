"""Known evidence from the families' exact algorithms: bridge sampling and importance sampling on models
whose marginal likelihood a family computes in closed form.

- A GP's latent function values under Gaussian noise, with fixed hyperparameters:
  the evidence is the GP marginal likelihood ``N(y | 0, K + s^2 I)``
  (:func:`probmodels.gp.ops.log_marginal_likelihood`), declared by the model as
  ``exact_log_evidence`` so that ``log_evidence(fit, "exact")`` reads it.
- An HMM with fixed initial and transition probabilities and emission noise,
  whose emission means have Normal priors: the states are summed out by the
  forward algorithm inside the model; the truth enumerates every state path,
  each a Gaussian marginal likelihood in closed form.

(The third family case, a discrete Bayesian network's CPTs under Dirichlet
priors against the BDeu score, is in ``tests/bn/test_bn_bayesian_evidence.py``.)
Tolerances are those of ``test_evidence.py``: within ``Z_SCORE`` reported
standard errors and within the method's promised accuracy (0.05 nats for
bridge sampling, 0.1 for importance sampling).
"""

import itertools
import math
import warnings

import pyro
import pyro.distributions as dist
import pytest
import torch

import probmodels as pm
from probmodels import ConvergenceWarning, ModelSpecError
from probmodels.core.setup import prepare_fit
from probmodels.diagnostics import EvidenceEstimate, log_evidence
from probmodels.diagnostics.stepping_stone import tempered_model
from probmodels.gp.kernels import make_kernel
from probmodels.gp.ops import log_marginal_likelihood
from probmodels.hmm import ops as hmm_ops

Z_SCORE = 4.0
SE_FLOOR = 0.005


def fit(model, *args, **options):
    settings = dict(num_chains=4, num_warmup=500, num_samples=1000, seed=3, progress_bar=False, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return pm.fit_mcmc(model, *args, **settings)


def check(estimate: EvidenceEstimate, truth: float, tolerance: float) -> None:
    error = abs(estimate.log_evidence - truth)
    assert error < Z_SCORE * max(estimate.standard_error, SE_FLOOR), (estimate, truth)
    assert error < tolerance, (estimate, truth)


# --------------------------------------------------------------------------- GP latent function values
class LatentGP:
    """``f = L z`` with ``z ~ N(0, I)`` and ``L L^T = K`` (fixed RBF hyperparameters), ``y ~ N(f, noise^2)``."""

    observed = ("y",)
    max_plate_nesting = 1

    def __init__(self, X: torch.Tensor, outputscale: float, lengthscale: float, noise: float) -> None:
        params = {"outputscale": X.new_tensor(outputscale), "lengthscale": X.new_tensor([lengthscale])}
        jitter = 1e-8 * torch.eye(X.shape[0], dtype=X.dtype)
        self.kernel_matrix = make_kernel("rbf").matrix(params, X, X) + jitter
        self.chol = torch.linalg.cholesky(self.kernel_matrix)
        self.noise = noise

    def __call__(self, y: torch.Tensor) -> None:
        with pyro.plate("data", y.shape[0]):
            z = pyro.sample("z", dist.Normal(y.new_tensor(0.0), 1.0))
            f = (self.chol @ z.unsqueeze(-1)).squeeze(-1)
            pyro.sample("y", dist.Normal(f, self.noise), obs=y)

    def exact_log_evidence(self, y: torch.Tensor) -> float:
        """The GP marginal likelihood ``log N(y | 0, K + noise^2 I)`` of the family's exact algorithm."""
        cov = self.kernel_matrix + self.noise**2 * torch.eye(y.shape[0], dtype=y.dtype)
        return float(log_marginal_likelihood(cov, y)[0])


@pytest.fixture(scope="module")
def gp_case():
    g = torch.Generator().manual_seed(2)
    X = torch.linspace(0.0, 3.0, 12, dtype=torch.float64).unsqueeze(-1)
    y = torch.sin(2.0 * X[:, 0]) + 0.3 * torch.randn(12, generator=g, dtype=torch.float64)
    model = LatentGP(X, outputscale=1.0, lengthscale=0.6, noise=0.3)
    return fit(model, y, dense_mass=True), model.exact_log_evidence(y)


def test_exact_evidence_is_taken_from_the_model(gp_case):
    posterior, truth = gp_case
    estimate = log_evidence(posterior, method="exact")
    assert estimate.log_evidence == truth and estimate.standard_error == 0.0
    assert "LatentGP.exact_log_evidence" in estimate.notes[0]
    # the model's closed form is the Gaussian identity, written independently here
    y = posterior.model_args[0]
    cov = posterior.model.kernel_matrix + 0.09 * torch.eye(12, dtype=torch.float64)
    assert truth == pytest.approx(float(dist.MultivariateNormal(torch.zeros(12, dtype=torch.float64), cov).log_prob(y)), abs=1e-10)


def test_bridge_gp_latent_function(gp_case):
    posterior, truth = gp_case
    check(log_evidence(posterior, method="bridge"), truth, 0.05)


def test_importance_gp_latent_function(gp_case):
    posterior, truth = gp_case
    check(log_evidence(posterior, method="importance"), truth, 0.1)


# --------------------------------------------------------------------------- HMM with fixed transitions
INIT = torch.tensor([0.6, 0.4], dtype=torch.float64)
TRANS = torch.tensor([[0.85, 0.15], [0.25, 0.75]], dtype=torch.float64)
PRIOR_MEANS = torch.tensor([-1.5, 1.5], dtype=torch.float64)
PRIOR_SD, NOISE = 1.0, 0.8


def hmm_means(y: torch.Tensor) -> None:
    """Two-state Gaussian HMM: fixed initial/transition probabilities and noise, Normal priors on the two means."""
    mu = pyro.sample("mu", dist.Normal(PRIOR_MEANS, PRIOR_SD).to_event(1))
    log_emit = dist.Normal(mu.unsqueeze(-2), NOISE).log_prob(y.unsqueeze(-1))  # (..., T, K)
    pyro.factor("y", hmm_ops.log_likelihood(INIT.log(), TRANS.log(), log_emit))


def hmm_evidence_by_enumeration(y: torch.Tensor) -> float:
    """``log sum_z p(z) N(y | A_z m, noise^2 I + sd^2 A_z A_z^T)`` over all ``K^T`` state paths ``z``."""
    T = y.shape[0]
    terms = []
    for path in itertools.product(range(2), repeat=T):
        z = torch.tensor(path)
        log_path = INIT[z[0]].log() + TRANS[z[:-1], z[1:]].log().sum()
        design = torch.nn.functional.one_hot(z, 2).to(torch.float64)
        cov = NOISE**2 * torch.eye(T, dtype=torch.float64) + PRIOR_SD**2 * design @ design.T
        terms.append(log_path + dist.MultivariateNormal(design @ PRIOR_MEANS, cov).log_prob(y))
    return float(torch.logsumexp(torch.stack(terms), 0))


def hmm_data() -> torch.Tensor:
    """Ten observations from two well-separated states."""
    g = torch.Generator().manual_seed(5)
    states = torch.tensor([0, 0, 0, 1, 1, 1, 1, 0, 0, 1])
    return torch.tensor([-1.2, 1.1], dtype=torch.float64)[states] + NOISE * torch.randn(10, generator=g, dtype=torch.float64)


@pytest.fixture(scope="module")
def hmm_case():
    y = hmm_data()
    return fit(hmm_means, y), hmm_evidence_by_enumeration(y)


def test_bridge_hmm_with_fixed_transitions(hmm_case):
    posterior, truth = hmm_case
    check(log_evidence(posterior, method="bridge"), truth, 0.05)


def test_importance_hmm_with_fixed_transitions(hmm_case):
    posterior, truth = hmm_case
    check(log_evidence(posterior, method="importance"), truth, 0.1)


def test_exact_without_a_closed_form_names_the_model(hmm_case):
    posterior, _ = hmm_case
    with pytest.raises(ModelSpecError, match="hmm_means declares none"):
        log_evidence(posterior, method="exact")
    assert math.isfinite(log_evidence(posterior, method="exact", exact=hmm_evidence_by_enumeration).log_evidence)



def test_power_posteriors_temper_a_factor_likelihood():
    """The HMM's likelihood is a pyro.factor, not an observed site: the power posteriors of stepping-stone
    sampling must temper it too (left untempered, every stone's ratio is 1 and the estimate collapses to 0)."""
    y = hmm_data()
    setup = prepare_fit(hmm_means, (y,), {}, seed=0)
    path = tempered_model(hmm_means, setup, num_draws=8, seed=0)
    mu = path.prior_draws  # unconstrained = constrained for a Normal site
    forward = hmm_ops.log_likelihood(INIT.log(), TRANS.log(), dist.Normal(mu.unsqueeze(-2), NOISE).log_prob(y.unsqueeze(-1)))
    torch.testing.assert_close(path.log_likelihood(mu), forward, rtol=1e-12, atol=1e-10)
    prior = dist.Normal(PRIOR_MEANS, PRIOR_SD).log_prob(mu).sum(-1)
    torch.testing.assert_close(path.tempered(0.3)(mu), prior + 0.3 * forward, rtol=1e-12, atol=1e-10)
