"""The GP optimiser: preconditioned L-BFGS and the finite-difference Newton transform."""

import pytest
import torch

from probmodels.exceptions import ModelSpecError
from probmodels.gp.optim import minimize, newton_transform

HESSIAN = torch.tensor([[400.0, 3.0, 0.0], [3.0, 1.0, 0.05], [0.0, 0.05, 0.01]], dtype=torch.float64)
OPTIMUM = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)


def _quadratic(counter):
    def loss(x):
        counter.append(1)
        r = x - OPTIMUM
        return 0.5 * r @ HESSIAN @ r + 0.1 * (r**4).sum()

    return loss


def test_newton_transform_whitens_the_curvature():
    T = newton_transform(_quadratic([]), OPTIMUM)
    torch.testing.assert_close(T.mT @ HESSIAN @ T, torch.eye(3, dtype=torch.float64), rtol=0, atol=1e-4)


def test_newton_transform_takes_absolute_eigenvalues_away_from_a_minimum():
    def saddle(x):
        return x[0] ** 2 - 4 * x[1] ** 2

    T = newton_transform(saddle, torch.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(T @ T.mT, torch.diag(torch.tensor([0.5, 0.125], dtype=torch.float64)), rtol=1e-4, atol=1e-8)


def test_a_preconditioned_run_reaches_the_same_optimum_in_fewer_evaluations_and_the_tolerance_is_on_x():
    start = torch.zeros(3, dtype=torch.float64)
    plain, preconditioned = [], []
    direct = minimize(_quadratic(plain), [start], tol=1e-5)
    T = newton_transform(_quadratic([]), start)
    fast = minimize(_quadratic(preconditioned), [start], tol=1e-5, transforms=[T])
    assert direct.converged and fast.converged
    assert len(preconditioned) < len(plain)
    for result in (direct, fast):
        x = result.x.clone().requires_grad_(True)
        loss = _quadratic([])(x)
        (grad,) = torch.autograd.grad(loss, x)
        assert float(grad.abs().max()) <= 1e-5  # the tolerance holds in x, not in the preconditioned coordinates
        assert float(loss.detach()) < 1e-8  # the minimum is 0


def test_transforms_need_one_entry_per_start():
    with pytest.raises(ModelSpecError, match="one entry per start"):
        minimize(_quadratic([]), [torch.zeros(3, dtype=torch.float64)] * 2, transforms=[None])
