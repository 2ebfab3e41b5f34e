"""FunctionDensity (a user's batched log density): a row that raises is a rejected proposal, the others keep their values."""

import math

import torch

from probmodels.core.density import FunctionDensity


def density(u: torch.Tensor) -> torch.Tensor:
    """A standard normal that raises for any row whose first coordinate is above 1."""
    if bool((u[:, 0] > 1.0).any()):
        raise ValueError("outside the model's domain")
    return -0.5 * (u**2).sum(-1)


def test_only_the_rows_that_raise_are_rejected():
    u = torch.tensor([[0.5, -0.2], [1.5, 0.0], [-0.3, 0.4]], dtype=torch.float64)
    logp, grad = FunctionDensity(density).value_and_grad(u)
    assert logp[1] == -math.inf and torch.equal(grad[1], torch.zeros(2, dtype=torch.float64))
    keep = torch.tensor([0, 2])
    torch.testing.assert_close(logp[keep], -0.5 * (u[keep] ** 2).sum(-1))
    torch.testing.assert_close(grad[keep], -u[keep])
