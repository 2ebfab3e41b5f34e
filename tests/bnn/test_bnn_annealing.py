"""KL annealing: the linear schedule, the annealed ELBO term by term, the ordinary ELBO after the
warm-up, and an annealed fit that lands where a plain one does."""

import pyro
import pytest
import torch
from pyro.infer import Trace_ELBO
from pyro.infer.autoguide import AutoNormal

from probmodels import ModelSpecError
from probmodels.bnn import BayesianMLP, KLAnnealing, MLPModel


def _data(device, dtype, n=40):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(n, 2, generator=g).to(device, dtype)
    y = torch.tanh(x[:, 0]) - 0.5 * x[:, 1] + 0.2 * torch.randn(n, generator=g).to(device, dtype)
    return x, y


def test_schedule_rises_linearly_to_one_and_the_callback_sets_the_next_step():
    schedule = KLAnnealing(100, start=0.01)
    assert schedule.beta == pytest.approx(0.01)
    assert [schedule.value(s) for s in (0, 50, 100, 250)] == pytest.approx([0.01, 0.505, 1.0, 1.0])
    assert schedule(49, 1.0) is False and schedule.beta == pytest.approx(0.505)
    schedule(99, 1.0)
    assert schedule.beta == 1.0
    with pytest.raises(ModelSpecError, match="start weight"):
        KLAnnealing(10, start=0.0)


def _elbo_parts(model, guide, x, y):
    """Log-likelihood and log p(w) - log q(w) of one guide draw (the draw fixed by the seed)."""
    pyro.set_rng_seed(7)
    guide_trace = pyro.poutine.trace(guide).get_trace(x, y)
    model_trace = pyro.poutine.trace(pyro.poutine.replay(model, trace=guide_trace)).get_trace(x, y)
    log_lik = model_trace.nodes["y"]["fn"].log_prob(y).sum()
    log_prior = sum(site["fn"].log_prob(site["value"]).sum() for name, site in model_trace.nodes.items()
                    if site["type"] == "sample" and not site["is_observed"])
    log_q = sum(site["fn"].log_prob(site["value"]).sum() for site in guide_trace.nodes.values() if site["type"] == "sample")
    return log_lik.detach(), (log_prior - log_q).detach()


def test_annealed_loss_weights_only_the_kl_term_and_is_the_elbo_after_warm_up(device, dtype):
    x, y = _data(device, dtype)
    model = MLPModel(2, (4,))
    guide = AutoNormal(model)
    schedule = KLAnnealing(10)
    annealed_model, annealed_guide = schedule.model(model), schedule.guide(guide)
    with pyro.get_param_store().scope():
        guide(x, y)
        log_lik, kl_term = _elbo_parts(model, guide, x, y)
        for step in (0, 4, 9, 30):
            schedule(step, 0.0)
            pyro.set_rng_seed(7)
            loss = Trace_ELBO().loss(annealed_model, annealed_guide, x, y)
            # the same guide draw (same seed): the loss is -(log-lik + beta * (log p(w) - log q(w))) exactly
            assert loss == pytest.approx(float(-(log_lik + schedule.beta * kl_term)), rel=1e-10)
        assert schedule.beta == 1.0
        pyro.set_rng_seed(7)
        plain = Trace_ELBO().loss(model, guide, x, y)
        assert loss == pytest.approx(plain, rel=1e-12)


def test_an_annealed_fit_lands_where_a_plain_fit_does(device, dtype):
    """Both fits see the same data and seed. The held-out log density per point of two converged mean-field
    fits differs by their optimisation noise only; on this easy problem that is well under 0.1 nats
    (the noise sd alone, 0.2, gives a predictive log density near 0.2; a fit missing the tanh term loses > 0.3)."""
    x, y = _data(device, dtype, n=80)
    x_test, y_test = _data(device, dtype, n=200)
    common = dict(method="svi", num_steps=1500, lr=0.02, num_samples=500, svi_options={"tol": 0.0})
    plain = BayesianMLP((8,), **common).fit(x, y)
    annealed = BayesianMLP((8,), kl_annealing=500, **common).fit(x, y)
    assert annealed.posterior_.model.schedule.beta == 1.0
    plain_score, annealed_score = plain.score(x_test, y_test)["log_likelihood"], annealed.score(x_test, y_test)["log_likelihood"]
    assert annealed_score == pytest.approx(plain_score, abs=0.1)
    assert annealed.log_likelihood().shape == plain.log_likelihood().shape == (1, 500, 80)


def test_annealing_is_refused_where_it_has_no_meaning():
    with pytest.raises(ModelSpecError, match="kl_annealing applies to method 'svi' or 'lowrank'"):
        BayesianMLP(method="map", kl_annealing=100)
    with pytest.raises(ModelSpecError, match="raise num_steps"):
        BayesianMLP(method="svi", kl_annealing=500, num_steps=500)
