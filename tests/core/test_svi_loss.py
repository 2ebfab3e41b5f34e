"""fit_svi(loss=...): the given ELBO is the one optimised, the default is unchanged, and bad input is refused."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import Trace_ELBO

from probmodels import ModelSpecError, fit_svi


def _model(y=None):
    mu = pyro.sample("mu", dist.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0))
    with pyro.plate("data", 20):
        pyro.sample("y", dist.Normal(mu, 1.0), obs=y)


def _data():
    return 1.0 + torch.randn(20, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


class _CountingELBO(Trace_ELBO):
    calls = 0

    def loss_and_grads(self, model, guide, *args, **kwargs):
        type(self).calls += 1
        return super().loss_and_grads(model, guide, *args, **kwargs)


def test_the_given_elbo_is_optimised_and_the_default_is_trace_elbo():
    y = _data()
    options = dict(num_steps=50, tol=0.0, num_samples=10, progress_bar=False, seed=0)
    default = fit_svi(_model, y, **options).attrs["loss"]
    explicit = fit_svi(_model, y, loss=Trace_ELBO(), **options).attrs["loss"]
    assert (default == explicit).all()
    _CountingELBO.calls = 0
    counted = fit_svi(_model, y, loss=_CountingELBO(num_particles=3), **options).attrs["loss"]
    assert _CountingELBO.calls == 50
    assert not (counted == default).all()  # three particles per step: other draws, other loss values


def test_bad_loss_is_refused_with_the_argument_named():
    y = _data()
    with pytest.raises(ModelSpecError, match="loss must be a pyro.infer.ELBO"):
        fit_svi(_model, y, loss="trace_elbo", num_steps=5, progress_bar=False)
    with pytest.raises(ModelSpecError, match="num_particles=4 conflicts with loss="):
        fit_svi(_model, y, loss=Trace_ELBO(), num_particles=4, num_steps=5, progress_bar=False)


def test_laplace_guide_at_a_saddle_names_the_problem():
    from probmodels import InferenceError

    def improper(y=None):
        x = pyro.sample("x", dist.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0))
        pyro.factor("bowl", x**2)  # log density +x^2 / 2: the start at 0 is a maximum of the loss
        with pyro.plate("data", 3):
            pyro.sample("y", dist.Normal(0.0, 1.0), obs=y)

    y = torch.zeros(3, dtype=torch.float64)
    with pytest.raises(InferenceError, match="guide='laplace'.*not positive definite"):
        fit_svi(improper, y, guide="laplace", num_steps=1, tol=0.0, progress_bar=False)
