"""The differentiable "scaled" log-likelihood (probmodels.hmm.gradient) against autograd through the log-space loop.

Gradients by the forward-backward identities must equal those of autograd
through ``method="sequential"`` to 1e-10 in float64, with padding, exact
zeros, broadcast batch dims and time-varying transitions; an impossible
sequence gets ``-inf`` and zero gradients.
"""

import math

import pytest
import torch

from probmodels import ModelSpecError
from probmodels.hmm import ops

F64 = torch.float64
NEG_INF = -math.inf


def random_problem(batch_init, batch_trans, batch_emit, T, K, seed, time_varying=False, zeros=True):
    """Random log-space parameters; with ``zeros``, exact zeros in the transitions and emissions."""
    g = torch.Generator().manual_seed(seed)
    log_init = torch.randn(batch_init + (K,), generator=g, dtype=F64).log_softmax(-1)
    logits = torch.randn(batch_trans + ((T - 1,) if time_varying else ()) + (K, K), generator=g, dtype=F64)
    log_emit = torch.randn(batch_emit + (T, K), generator=g, dtype=F64)
    if zeros and K > 1:
        logits[..., 0, K - 1] = NEG_INF
        log_emit[..., T // 2, 0] = NEG_INF
    return log_init, logits.log_softmax(-1), log_emit


def value_and_grads(params, lengths, method, time_varying, weights):
    leaves = [p.detach().clone().requires_grad_() for p in params]
    ll = ops.log_likelihood(*leaves, lengths, time_varying=time_varying, method=method)
    grads = torch.autograd.grad((ll * weights).sum(), leaves, allow_unused=True)  # T = 1 uses no transition
    return ll.detach(), [torch.zeros_like(p) if g is None else g for p, g in zip(leaves, grads)]


def assert_matches_sequential(params, lengths=None, time_varying=False, method="auto"):
    ll_ref = ops.log_likelihood(*params, lengths, time_varying=time_varying, method="sequential")
    weights = torch.rand(ll_ref.shape, dtype=F64, device=ll_ref.device) + 0.5  # a grad_output that varies by batch element
    ref, ref_grads = value_and_grads(params, lengths, "sequential", time_varying, weights)
    got, got_grads = value_and_grads(params, lengths, method, time_varying, weights)
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-10)
    for name, g, r in zip(("log_init", "log_trans", "log_emit"), got_grads, ref_grads):
        assert g.shape == r.shape, name
        assert torch.isfinite(g).all(), name
        torch.testing.assert_close(g, r, rtol=0, atol=1e-10, msg=name)
    return got_grads


@pytest.mark.parametrize("K", [1, 2, 5])
@pytest.mark.parametrize("T", [1, 2, 50])
def test_gradients_match_autograd_through_the_loop(K, T, device):
    params = [p.to(device) for p in random_problem((), (), (3,), T, K, seed=10 * K + T)]
    assert_matches_sequential(params)
    assert_matches_sequential(params, method="scaled")


@pytest.mark.parametrize("T", [2, 50])
def test_broadcast_batches_and_padding(T, device):
    # init broadcast over sequences, one transition matrix per draw, emissions per draw and sequence
    params = [p.to(device) for p in random_problem((2, 1), (2, 1), (2, 4), T, 3, seed=T)]
    lengths = torch.tensor([T, 1, max(1, T // 2), T - 1], device=device)
    grads = assert_matches_sequential(params, lengths)
    steps = torch.arange(T, device=device)
    assert torch.all(grads[2][..., steps >= lengths.unsqueeze(-1), :] == 0)  # padded steps get nothing
    assert_matches_sequential(params)


def test_time_varying_transitions(device):
    params = [p.to(device) for p in random_problem((), (3,), (3,), 7, 3, seed=4, time_varying=True)]
    lengths = torch.tensor([7, 4, 1], device=device)
    grads = assert_matches_sequential(params, lengths, time_varying=True)
    assert torch.all(grads[1][1, 3:] == 0) and torch.all(grads[1][2] == 0)  # transitions into padded steps
    assert_matches_sequential(params, time_varying=True)


def test_exact_zeros_get_zero_gradient(device):
    log_init, log_trans, log_emit = (p.to(device) for p in random_problem((), (), (2,), 20, 3, seed=5))
    log_init = log_init.clone()
    log_init[2] = NEG_INF
    grads = assert_matches_sequential([log_init, log_trans, log_emit])
    assert grads[0][2] == 0 and grads[1][0, 2] == 0 and torch.all(grads[2][:, 10, 0] == 0)


def test_long_sequence_takes_the_speculative_blocks(device):
    # T = 2000 with few rows runs the blocked recursion; a sticky chain forgets its start slowly
    g = torch.Generator().manual_seed(6)
    log_trans = (torch.randn(4, 4, generator=g, dtype=F64) + 3 * torch.eye(4, dtype=F64)).log_softmax(-1)
    log_emit = torch.randn(2, 2000, 4, generator=g, dtype=F64)
    log_init = torch.full((4,), -math.log(4), dtype=F64)
    assert_matches_sequential([p.to(device) for p in (log_init, log_trans, log_emit)])


def test_gradcheck_on_a_tiny_problem(device):
    log_init, log_trans, log_emit = (p.to(device) for p in random_problem((), (), (2,), 4, 3, seed=7, zeros=False))
    lengths = torch.tensor([4, 2], device=device)

    def loglik(li, lt, le):
        return ops.log_likelihood(li, lt, le, lengths, method="scaled")

    inputs = tuple(p.requires_grad_() for p in (log_init, log_trans, log_emit))
    assert torch.autograd.gradcheck(loglik, inputs)


def test_impossible_sequence_is_minus_inf_with_zero_gradients(device):
    log_init = torch.tensor([0.0, NEG_INF], dtype=F64, device=device)  # starts in state 0
    log_trans = torch.tensor([[0.0, NEG_INF], [NEG_INF, 0.0]], dtype=F64, device=device)  # and stays there
    log_emit = torch.zeros(2, 5, 2, dtype=F64, device=device)
    log_emit[0, 3, 0] = NEG_INF  # sequence 0 must be in state 1 at step 3: impossible
    leaves = [p.requires_grad_() for p in (log_init, log_trans, log_emit)]
    ll = ops.log_likelihood(*leaves)
    assert ll[0] == NEG_INF and torch.isfinite(ll[1])
    grads = torch.autograd.grad(ll[0], leaves, retain_graph=True)
    assert all(torch.all(g == 0) for g in grads)
    grads = torch.autograd.grad(ll.sum(), leaves)  # -inf total: still no NaN
    assert all(torch.isfinite(g).all() for g in grads)
    torch.testing.assert_close(grads[2][1].sum(-1), torch.ones(5, dtype=F64, device=device))


def test_float32_is_computed_in_float64_and_cast_back(device):
    params = [p.to(device) for p in random_problem((), (), (2,), 30, 3, seed=8)]
    leaves = [p.float().requires_grad_() for p in params]
    ll = ops.log_likelihood(*leaves)
    grads = torch.autograd.grad(ll.sum(), leaves)
    assert ll.dtype == torch.float32 and all(g.dtype == torch.float32 for g in grads)
    _, ref = value_and_grads(params, None, "sequential", False, torch.ones(2, dtype=F64, device=device))
    for g, r in zip(grads, ref):
        torch.testing.assert_close(g.double(), r, rtol=0, atol=1e-5)


def test_auto_takes_the_scaled_gradient_and_other_functions_refuse_it(device):
    log_init, log_trans, log_emit = (p.to(device) for p in random_problem((), (), (2,), 10, 2, seed=9))
    log_emit.requires_grad_()
    ll = ops.log_likelihood(log_init, log_trans, log_emit)
    assert ll.grad_fn is not None and "Scaled" in type(ll.grad_fn).__name__
    with pytest.raises(ModelSpecError, match="only through log_likelihood"):
        ops.forward(log_init, log_trans, log_emit, method="scaled")
    with pytest.raises(RuntimeError):  # no double backward
        (g,) = torch.autograd.grad(ll.sum(), log_emit, create_graph=True)
        torch.autograd.grad(g.sum(), log_emit)
