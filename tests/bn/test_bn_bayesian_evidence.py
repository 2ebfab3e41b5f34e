"""Issue #4 on a Bayesian network: the marginal likelihood of the CPT model fitted through the core.

With complete data the evidence has a closed form (the BDeu score), so bridge sampling on the
NUTS draws of :class:`~probmodels.bn.DirichletCPTModel` can be checked against the truth, and
``log_evidence(fit, method="exact")`` must return the score itself through the model's
``exact_log_evidence``.
"""

import functools
import warnings

import pandas as pd
import pytest
import torch

from probmodels import ConvergenceWarning, ModelSpecError
from probmodels.bn import Inference, cpt_posterior, dirichlet_posterior, from_pgmpy
from probmodels.diagnostics import log_evidence


@functools.lru_cache(maxsize=None)
def cancer_fit():
    """The cancer network (5 nodes, 10 CPT rows: 10 unconstrained dims), 500 sampled rows, BDeu ess 10."""
    from pgmpy.utils import get_example_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        net = from_pgmpy(get_example_model("cancer"))
    data = Inference(net).sample(500, generator=torch.Generator().manual_seed(0))
    fit = cpt_posterior(
        net, data, num_samples=1000, num_warmup=300, num_chains=4, seed=5, progress_bar=False, compile="script"
    )
    return fit, float(dirichlet_posterior(net, data).log_marginal_likelihood())


def test_bridge_sampling_recovers_the_bdeu_score():
    fit, truth = cancer_fit()
    estimate = log_evidence(fit.posterior, method="bridge")
    # The estimate must be accurate in absolute terms (0.05 nats) and its reported standard
    # error honest: for an approximately normal estimator, |error| < 3 se fails by chance
    # with probability 0.003.
    assert abs(estimate.log_evidence - truth) < 0.05, (estimate, truth)
    assert abs(estimate.log_evidence - truth) < 3 * estimate.standard_error, (estimate, truth)


def test_exact_method_returns_the_bdeu_score_through_the_model():
    fit, truth = cancer_fit()
    estimate = log_evidence(fit.posterior, method="exact")
    assert estimate.log_evidence == pytest.approx(truth, abs=1e-9)
    assert estimate.standard_error == 0.0


def test_exact_method_refuses_missing_cells_and_points_to_bridge():
    data = pd.DataFrame({"A": [0, 1, None, 1], "B": [1, None, 0, 1]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # 50 draws: enough to have a fit, not for its ESS
        fit = cpt_posterior(
            [("A", "B")], data, num_samples=50, num_warmup=50, num_chains=1, progress_bar=False, compile="none"
        )
    with pytest.raises(ModelSpecError, match="no closed form.*method='bridge'"):
        log_evidence(fit.posterior, method="exact")
