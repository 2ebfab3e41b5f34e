"""fit_mcmc says when its result should not be trusted."""

import pyro
import pyro.distributions as dist
import pytest
import torch

import probmodels as pm
from probmodels.diagnostics import check_convergence


def centred_funnel(n):
    """Neal's funnel, centred: NUTS cannot enter the neck without diverging."""
    v = pyro.sample("v", dist.Normal(n.new_tensor(0.0), 3.0))
    with pyro.plate("x_plate", 9):
        pyro.sample("x", dist.Normal(n.new_tensor(0.0), torch.exp(v / 2)))


def test_divergences_are_reported_with_counts():
    with pytest.warns(pm.ConvergenceWarning, match=r"\d+ of 400 post-warmup transitions diverged"):
        posterior = pm.fit_mcmc(centred_funnel, torch.tensor(1.0), num_chains=2, num_warmup=200, num_samples=200, target_accept=0.6, progress_bar=False)
    report = check_convergence(posterior)
    assert report.num_divergent == int(posterior.sample_stats["diverging"].sum()) > 0
    assert not report.ok


def correlated(scale):
    cov = scale.new_tensor([[1.0, 0.999], [0.999, 1.0]])
    pyro.sample("z", dist.MultivariateNormal(scale.new_zeros(2), covariance_matrix=cov))


def test_tree_depth_saturation_and_low_ess_are_reported():
    with pytest.warns(pm.ConvergenceWarning) as record:
        pm.fit_mcmc(correlated, torch.tensor(1.0), num_chains=2, num_warmup=100, num_samples=100, max_tree_depth=2, progress_bar=False)
    messages = " ".join(str(w.message) for w in record)
    assert "maximum tree depth 2" in messages
    assert "effective sample size" in messages


def test_disagreeing_chains_are_reported():
    # Two modes 40 sd apart: no chain ever crosses, and 8 chains started uniformly in (-20, 20)
    # all land in one mode with probability 2 / 2**8, so R-hat is large.
    def bimodal(scale):
        z = pyro.sample("z", dist.Normal(scale.new_tensor(0.0), 100.0))
        pyro.factor("modes", torch.logsumexp(dist.Normal(scale.new_tensor([-20.0, 20.0]), 1.0).log_prob(z.unsqueeze(-1)), -1))

    with pytest.warns(pm.ConvergenceWarning, match="R-hat of 'z'"):
        pm.fit_mcmc(bimodal, torch.tensor(1.0), num_chains=8, num_warmup=100, num_samples=100, seed=3, progress_bar=False, init_radius=20.0)


def test_latent_site_without_unconstraining_transform_is_named():
    def mixture_latent(scale):
        pyro.sample("z", dist.MixtureSameFamily(dist.Categorical(scale.new_ones(2)), dist.Normal(scale.new_tensor([-2.0, 2.0]), 1.0)))

    with pytest.raises(pm.ModelSpecError, match="latent site 'z' has support"):
        pm.fit_mcmc(mixture_latent, torch.tensor(1.0), progress_bar=False)
