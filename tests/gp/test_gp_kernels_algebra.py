"""The hand-written linear algebra behind the GP fits against PyTorch's own routines and autograd as oracles."""

import pytest
import torch

from probmodels.gp.cpu_blas import cholesky, gram, solve_lower
from probmodels.gp.ops import cholesky_inverse
from probmodels.gp.rbf_matrix import rbf_matrix
from probmodels.gp.whitened_gram import whitened_gram


def _spd(n, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(n, n, generator=g, dtype=dtype)
    return A @ A.T / n + torch.eye(n, dtype=dtype)


def _layouts(M):
    """The same matrix row-major, column-major and as a strided (non-contiguous) view."""
    wide = torch.zeros(M.shape[0], 2 * M.shape[1], dtype=M.dtype)
    wide[:, ::2] = M
    return [M.contiguous(), M.mT.contiguous().mT, wide[:, ::2]]


def _plain_rbf(a, b):
    d2 = ((a.unsqueeze(-2) - b.unsqueeze(-3)) ** 2).sum(-1)
    return torch.exp(-0.5 * d2)


@pytest.mark.parametrize("batch", [(), (3,)])
def test_rbf_matrix_values_and_gradients_match_autograd_on_the_direct_formula(batch):
    g = torch.Generator().manual_seed(1)
    a = torch.randn(batch + (9, 4), generator=g, dtype=torch.float64).requires_grad_(True)
    b = torch.randn(batch + (6, 4), generator=g, dtype=torch.float64).requires_grad_(True)
    weights = torch.randn(batch + (9, 6), generator=g, dtype=torch.float64)
    ours, reference = rbf_matrix(a, b), _plain_rbf(a, b)
    torch.testing.assert_close(ours, reference, rtol=1e-12, atol=1e-14)
    grads = torch.autograd.grad((ours * weights).sum(), (a, b))
    expected = torch.autograd.grad((reference * weights).sum(), (a, b))
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_rbf_matrix_gradient_through_a_shared_input_and_under_torch_func():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(7, 3, generator=g, dtype=torch.float64)
    log_ls = torch.tensor([0.1, -0.3, 0.4], dtype=torch.float64)
    weights = torch.randn(7, 7, generator=g, dtype=torch.float64)

    def loss(fn, log_ls):
        scaled = x / log_ls.exp()
        return (fn(scaled, scaled) * weights).sum()

    ours = torch.func.grad(lambda v: loss(rbf_matrix, v))(log_ls)
    expected = torch.func.grad(lambda v: loss(_plain_rbf, v))(log_ls)
    torch.testing.assert_close(ours, expected, rtol=1e-10, atol=1e-12)
    batched = torch.func.vmap(lambda v: loss(rbf_matrix, v))(torch.stack([log_ls, 2 * log_ls]))
    torch.testing.assert_close(batched[1], loss(_plain_rbf, 2 * log_ls), rtol=1e-12, atol=0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cholesky_matches_torch_in_every_memory_order_and_reports_failure(dtype):
    cov = _spd(12, dtype)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    for layout in _layouts(cov):
        chol, failed = cholesky(layout)
        assert not failed
        torch.testing.assert_close(chol, torch.linalg.cholesky(cov), rtol=0, atol=tol)
        assert float(chol.triu(1).abs().max()) == 0.0
    _, failed = cholesky(torch.tensor([[1.0, 2.0], [2.0, 1.0]], dtype=dtype))
    assert failed


def test_cholesky_inverse_matches_torch_for_both_memory_orders_and_batches():
    cov = torch.stack([_spd(10, seed=s) for s in range(3)])
    chol = torch.linalg.cholesky(cov)
    expected = torch.cholesky_inverse(chol)
    torch.testing.assert_close(cholesky_inverse(chol), expected, rtol=1e-10, atol=1e-12)
    for layout in _layouts(chol[0])[:2]:
        inverse = cholesky_inverse(layout)
        torch.testing.assert_close(inverse, expected[0], rtol=1e-10, atol=1e-12)
        assert torch.equal(inverse, inverse.mT)


@pytest.mark.parametrize("transpose", [False, True])
def test_solve_lower_and_gram_match_torch_in_every_memory_order(transpose):
    chol = torch.linalg.cholesky(_spd(8))
    B = torch.randn(8, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    expected = torch.linalg.solve_triangular(chol.mT if transpose else chol, B, upper=transpose)
    for L in _layouts(chol):
        for right in _layouts(B):
            torch.testing.assert_close(solve_lower(L, right, transpose=transpose), expected, rtol=1e-12, atol=1e-13)
    for A in _layouts(B):
        product = gram(A)
        torch.testing.assert_close(product, B @ B.T, rtol=1e-12, atol=1e-13)
        assert torch.equal(product, product.mT)


def test_whitened_gram_values_and_gradients_match_autograd_through_the_solve():
    g = torch.Generator().manual_seed(4)
    chol = torch.linalg.cholesky(_spd(6)).requires_grad_(True)
    cross = torch.randn(6, 11, generator=g, dtype=torch.float64).requires_grad_(True)
    y = torch.randn(11, generator=g, dtype=torch.float64).requires_grad_(True)
    W, w = torch.randn(6, 6, generator=g, dtype=torch.float64), torch.randn(6, generator=g, dtype=torch.float64)
    outer, cross_y = whitened_gram(chol, cross, y)
    A = torch.linalg.solve_triangular(chol, cross, upper=False)
    torch.testing.assert_close(outer, A @ A.T, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(cross_y, A @ y, rtol=1e-12, atol=1e-13)
    for loss, reference in (
        ((outer * W).sum() + (cross_y * w).sum(), ((A @ A.T) * W).sum() + ((A @ y) * w).sum()),
        ((outer * W).sum(), ((A @ A.T) * W).sum()),
    ):
        grads = torch.autograd.grad(loss, (chol, cross, y), retain_graph=True, allow_unused=True)
        expected = torch.autograd.grad(reference, (chol, cross, y), retain_graph=True, allow_unused=True)
        for index, (got, want) in enumerate(zip(grads, expected)):
            if want is None:
                assert got is None or float(got.abs().max()) == 0.0
                continue
            if index == 0:  # chol is lower triangular: only the lower triangle of its gradient is meaningful
                got, want = got.tril(), want.tril()
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
