"""The tensor log densities of the NUTS path equal pyro.distributions' log_prob."""

import pyro.distributions as dist
import pytest
import torch

from probmodels.bnn import half_normal_log_prob, normal_log_prob, observation_log_prob


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
