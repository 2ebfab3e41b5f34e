"""The tensor log densities of the NUTS path equal pyro.distributions' log_prob, its tanh torch.tanh."""

import pyro.distributions as dist
import pytest
import torch

from probmodels.bnn import half_normal_log_prob, normal_log_prob, observation_log_prob
from probmodels.bnn.logprob import tanh_by_sigmoid


def test_prior_densities_match_pyro(device, dtype):
    g = torch.Generator().manual_seed(0)
    value = torch.randn(5, 7, generator=g).to(device, dtype)
    torch.testing.assert_close(normal_log_prob(value, 0.3, 2.0), dist.Normal(torch.tensor(0.3, dtype=dtype, device=device), 2.0).log_prob(value))
    torch.testing.assert_close(half_normal_log_prob(value.abs(), 0.7), dist.HalfNormal(torch.tensor(0.7, dtype=dtype, device=device)).log_prob(value.abs()))


@pytest.mark.parametrize("task", ["regression", "binary", "multiclass"])
def test_observation_densities_match_pyro(device, dtype, task):
    g = torch.Generator().manual_seed(1)
    outputs = torch.randn(3, 10, 4 if task == "multiclass" else 1, generator=g).to(device, dtype)
    noise = torch.rand(3, generator=g).to(device, dtype) + 0.1
    if task == "regression":
        y = torch.randn(10, generator=g).to(device, dtype)
        want = dist.Normal(outputs[..., 0], noise[:, None]).log_prob(y)
    elif task == "binary":
        y = torch.randint(0, 2, (10,), generator=g).to(device, dtype)
        want = dist.Bernoulli(logits=outputs[..., 0]).log_prob(y)
    else:
        y = torch.randint(0, 4, (10,), generator=g).to(device, dtype)
        want = dist.Categorical(logits=outputs).log_prob(y)
    torch.testing.assert_close(observation_log_prob(task, outputs, noise if task == "regression" else None, y), want)


@pytest.mark.parametrize("precision", [torch.float32, torch.float64])
def test_tanh_by_sigmoid_is_tanh_to_rounding_with_finite_gradients(precision):
    """The NUTS density's tanh: within a few units of rounding of torch.tanh in value and gradient, from 0 to
    far in the saturated tails, where both stay finite."""
    h = torch.cat([torch.linspace(-60, 60, 2001, dtype=precision), torch.tensor([0.0, 1e-30, -1e-8], dtype=precision)]).requires_grad_(True)
    value = tanh_by_sigmoid(h)
    (grad,) = torch.autograd.grad(value.sum(), h)
    eps = torch.finfo(precision).eps
    torch.testing.assert_close(value, torch.tanh(h), rtol=0.0, atol=4 * eps)
    torch.testing.assert_close(grad, 1 - torch.tanh(h) ** 2, rtol=0.0, atol=8 * eps)
    assert torch.isfinite(grad).all()
