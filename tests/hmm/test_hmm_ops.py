"""Exact HMM algorithms (probmodels.hmm.ops) against oracles.

Oracles: enumeration of all K**T state paths on tiny problems, hmmlearn on
long ones, each sequence alone for padded batches, the sequential loop for
the parallel scan on a long sequence, and exact path probabilities for the
samplers (chi-square). Everything in float64.
"""

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import logsumexp

from probmodels import DataError, ModelSpecError, ShapeError
from probmodels.hmm import ops

METHODS = ["sequential", "parallel", "blocked", "scaled"]
F64 = torch.float64
NEG_INF = -math.inf


def random_hmm(batch_init, batch_trans, batch_emit, T, K, seed, time_varying=False, zero=True):
    """Random log-space parameters; one exact zero in every transition matrix when ``zero``."""
    g = torch.Generator().manual_seed(seed)
    log_init = torch.randn(batch_init + (K,), generator=g, dtype=F64).log_softmax(-1)
    trans_shape = batch_trans + ((T - 1,) if time_varying else ()) + (K, K)
    logits = torch.randn(trans_shape, generator=g, dtype=F64)
    if zero:
        logits[..., 0, K - 1] = NEG_INF
    log_trans = logits.log_softmax(-1)
    log_emit = torch.randn(batch_emit + (T, K), generator=g, dtype=F64)
    return log_init, log_trans, log_emit


def to(device, *tensors):
    return [t.to(device) for t in tensors]


# ----------------------------------------------------------------------------- brute force


def enumerate_paths(li, lt, le, time_varying):
    """Log joint of every state path of one unbatched problem (numpy)."""
    T, K = le.shape
    paths = np.array(list(itertools.product(range(K), repeat=T)))
    with np.errstate(invalid="ignore"):
        lp = li[paths[:, 0]] + le[np.arange(T), paths].sum(1)
        for t in range(T - 1):
            step = lt[t] if time_varying else lt
            lp = lp + step[paths[:, t], paths[:, t + 1]]
    return paths, lp


def brute_force(li, lt, le, time_varying=False):
    T, K = le.shape
    paths, lp = enumerate_paths(li, lt, le, time_varying)
    ll = logsumexp(lp)
    post = np.exp(lp - ll)
    marg = np.stack([[post[paths[:, t] == k].sum() for k in range(K)] for t in range(T)])
    pair = np.zeros((T - 1, K, K))
    for t in range(T - 1):
        np.add.at(pair[t], (paths[:, t], paths[:, t + 1]), post)
    best = int(np.argmax(lp))
    filtered = []
    for t in range(T):
        sub_paths, sub_lp = enumerate_paths(li, lt[:t] if time_varying else lt, le[: t + 1], time_varying)
        filtered.append([logsumexp(sub_lp[sub_paths[:, t] == k]) - logsumexp(sub_lp) for k in range(K)])
    betas = []
    for t in range(T):
        future = le[t:].copy()
        future[0] = 0.0
        row = []
        for k in range(K):
            onehot = np.full(K, NEG_INF)
            onehot[k] = 0.0
            _, f_lp = enumerate_paths(onehot, lt[t:] if time_varying else lt, future, time_varying)
            row.append(logsumexp(f_lp))
        betas.append(np.array(row) - logsumexp(row))
    return dict(
        ll=ll, marg=marg, pair=pair, path=paths[best], log_prob=lp[best], filtered=np.array(filtered), beta=np.array(betas)
    )


CASES = {
    # name: (batch_init, batch_trans, batch_emit, T, K, time_varying)
    "batched": ((2, 1), (3,), (2, 1), 5, 3, False),
    "time-varying": ((), (2,), (), 6, 2, True),
    "one-step": ((), (), (2,), 1, 3, False),
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", CASES)
def test_matches_enumeration_of_all_paths(case, method, device):
    batch_init, batch_trans, batch_emit, T, K, tv = CASES[case]
    params = random_hmm(batch_init, batch_trans, batch_emit, T, K, seed=1, time_varying=tv)
    log_init, log_trans, log_emit = to(device, *params)
    kw = dict(time_varying=tv, method=method)
    fwd = ops.forward(log_init, log_trans, log_emit, **kw)
    beta = ops.backward(log_trans, log_emit, **kw)
    post = ops.posterior_marginals(log_init, log_trans, log_emit, pairwise=True, **kw)
    vit = ops.viterbi(log_init, log_trans, log_emit, **kw)
    batch = torch.broadcast_shapes(batch_init, batch_trans, batch_emit)
    assert fwd.log_alpha.shape == batch + (T, K) and beta.shape == batch + (T, K)
    assert post.pairwise.shape == batch + (T - 1, K, K) and vit.path.shape == batch + (T,)
    assert vit.path.dtype == torch.long and fwd.log_likelihood.device == log_emit.device

    trans_dims = 3 if tv else 2
    li = np.broadcast_to(params[0].numpy(), batch + (K,))
    lt = np.broadcast_to(params[1].numpy(), batch + params[1].shape[-trans_dims:])
    le = np.broadcast_to(params[2].numpy(), batch + (T, K))
    for idx in np.ndindex(*batch):
        want = brute_force(li[idx], lt[idx], le[idx], tv)
        close = dict(rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(fwd.log_likelihood[idx].item(), want["ll"], **close)
        np.testing.assert_allclose(post.log_likelihood[idx].item(), want["ll"], **close)
        np.testing.assert_allclose(fwd.log_alpha[idx].cpu().numpy(), want["filtered"], **close)
        np.testing.assert_allclose(beta[idx].cpu().numpy(), want["beta"], **close)
        np.testing.assert_allclose(post.marginals[idx].cpu().numpy(), want["marg"], **close)
        np.testing.assert_allclose(post.pairwise[idx].cpu().numpy(), want["pair"], **close)
        np.testing.assert_array_equal(vit.path[idx].cpu().numpy(), want["path"])
        np.testing.assert_allclose(vit.log_prob[idx].item(), want["log_prob"], **close)


# ----------------------------------------------------------------------------- hmmlearn


@pytest.mark.parametrize("method", ["sequential", "parallel"])
@pytest.mark.parametrize("K, T", [(2, 2000), (5, 700), (8, 2000)])
def test_matches_hmmlearn(K, T, method, device):
    hmm = pytest.importorskip("hmmlearn.hmm")
    rng = np.random.default_rng(K)
    num_symbols = 6
    model = hmm.CategoricalHMM(n_components=K, n_features=num_symbols)
    model.startprob_ = rng.dirichlet(np.ones(K))
    model.transmat_ = rng.dirichlet(np.ones(K), size=K)
    model.emissionprob_ = rng.dirichlet(np.ones(num_symbols), size=K)
    X, _ = model.sample(T, random_state=K)

    log_init = torch.tensor(np.log(model.startprob_), device=device)
    log_trans = torch.tensor(np.log(model.transmat_), device=device)
    log_emit = torch.tensor(np.log(model.emissionprob_[:, X[:, 0]].T), device=device)  # (T, K)

    fwd = ops.forward(log_init, log_trans, log_emit, method=method)
    np.testing.assert_allclose(fwd.log_likelihood.item(), model.score(X), rtol=1e-8)
    post = ops.posterior_marginals(log_init, log_trans, log_emit, method=method)
    np.testing.assert_allclose(post.marginals.cpu().numpy(), model.predict_proba(X), rtol=1e-8, atol=1e-10)
    log_prob, states = model.decode(X, algorithm="viterbi")
    vit = ops.viterbi(log_init, log_trans, log_emit, method=method)
    np.testing.assert_allclose(vit.log_prob.item(), log_prob, rtol=1e-8)
    path = vit.path.cpu().numpy()
    if not np.array_equal(path, states):
        # Few symbols make exact ties (the same transitions and emissions in another order)
        # likely; a different path must then have exactly the same joint probability.
        def joint(z):
            terms = [model.startprob_[z[0]], *model.transmat_[z[:-1], z[1:]], *model.emissionprob_[z, X[:, 0]]]
            return math.fsum(np.log(terms))

        assert np.mean(path != states) < 0.05
        np.testing.assert_allclose(joint(path), joint(states), rtol=1e-13)


# ----------------------------------------------------------------------------- padded batches


@pytest.mark.parametrize("method", METHODS)
def test_padded_batch_equals_each_sequence_alone(method, device):
    T, K = 7, 3
    lengths = torch.tensor([7, 3, 1], device=device)
    log_init, log_trans, log_emit = to(device, *random_hmm((), (3,), (3,), T, K, seed=2))
    kw = dict(method=method)
    fwd = ops.forward(log_init, log_trans, log_emit, lengths, **kw)
    beta = ops.backward(log_trans, log_emit, lengths, **kw)
    post = ops.posterior_marginals(log_init, log_trans, log_emit, lengths, pairwise=True, **kw)
    vit = ops.viterbi(log_init, log_trans, log_emit, lengths, **kw)
    draws = ops.sample_states(log_init, log_trans, log_emit, lengths, num_samples=50, **kw)
    for b, n in enumerate(lengths.tolist()):
        alone = (log_init, log_trans[b], log_emit[b, :n])
        f = ops.forward(*alone, **kw)
        torch.testing.assert_close(fwd.log_likelihood[b], f.log_likelihood, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(fwd.log_alpha[b, :n], f.log_alpha, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(beta[b, :n], ops.backward(*alone[1:], **kw), rtol=1e-12, atol=1e-12)
        p = ops.posterior_marginals(*alone, pairwise=True, **kw)
        torch.testing.assert_close(post.marginals[b, :n], p.marginals, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(post.pairwise[b, : n - 1], p.pairwise, rtol=1e-12, atol=1e-12)
        v = ops.viterbi(*alone, **kw)
        assert torch.equal(vit.path[b, :n], v.path)
        torch.testing.assert_close(vit.log_prob[b], v.log_prob, rtol=1e-12, atol=1e-12)
        for padded in (fwd.log_alpha[b, n:], beta[b, n:], post.marginals[b, n:], post.pairwise[b, n - 1 :]):
            assert torch.all(padded == 0)
        assert torch.all(vit.path[b, n:] == 0) and torch.all(draws[:, b, n:] == 0)
        # the zero transition 0 -> K-1 never appears in a sampled path
        pairs = draws[:, b, :n]
        assert not torch.any((pairs[:, :-1] == 0) & (pairs[:, 1:] == K - 1))


# ----------------------------------------------------------------------------- exact zeros


def impossible_batch(device):
    """Batch of 2: sequence 0 needs 0 -> 1, which is impossible; sequence 1 is possible."""
    K = 3
    log_init = torch.tensor([0.0, NEG_INF, NEG_INF], dtype=F64).log_softmax(-1)
    log_trans = torch.tensor([[0.5, NEG_INF, 0.2], [0.1, 0.3, 0.0], [0.2, 0.2, 0.2]], dtype=F64).log_softmax(-1)
    emit = torch.randn(2, 5, K, dtype=F64)
    emit[0, 1] = torch.tensor([NEG_INF, 0.0, NEG_INF])
    emit[1, 2] = torch.tensor([NEG_INF, NEG_INF, 0.0])
    return to(device, log_init, log_trans, emit)


@pytest.mark.parametrize("method", METHODS)
def test_impossible_sequence_gives_minus_inf_and_no_nan(method, device):
    log_init, log_trans, log_emit = impossible_batch(device)
    kw = dict(method=method)
    fwd = ops.forward(log_init, log_trans, log_emit, **kw)
    post = ops.posterior_marginals(log_init, log_trans, log_emit, pairwise=True, **kw)
    vit = ops.viterbi(log_init, log_trans, log_emit, **kw)
    beta = ops.backward(log_trans, log_emit, **kw)
    draws = ops.sample_states(log_init, log_trans, log_emit, num_samples=20, **kw)
    assert fwd.log_likelihood[0] == NEG_INF and torch.isfinite(fwd.log_likelihood[1])
    assert vit.log_prob[0] == NEG_INF and torch.isfinite(vit.log_prob[1])
    for out in (fwd.log_alpha, beta, post.marginals, post.pairwise, vit.log_prob, post.log_likelihood):
        assert not torch.isnan(out).any()
    assert torch.all(post.marginals[0] == 0) and torch.all(post.pairwise[0] == 0)
    assert torch.all(vit.path[0] == 0) and torch.all(draws[:, 0] == 0)
    torch.testing.assert_close(post.marginals[1].sum(-1), torch.ones(5, dtype=F64, device=device))
    assert torch.all(post.marginals[1, 0, 1:] == 0)  # log_init allows only state 0


@pytest.mark.parametrize("method", ["sequential", "parallel"])
def test_gradients_are_exact_and_finite_with_zeros(method, device):
    log_init, log_trans, log_emit = to(device, *random_hmm((), (), (2,), 4, 3, seed=3))
    log_trans = log_trans.requires_grad_()
    log_emit = log_emit.requires_grad_()

    def loglik(lt, le):
        return ops.forward(log_init, lt, le, method=method).log_likelihood

    assert torch.autograd.gradcheck(loglik, (log_trans, log_emit))
    # an impossible sequence: -inf, with finite (zero) gradients, not NaN
    li, lt, le = impossible_batch(device)
    lt, le = lt.requires_grad_(), le.requires_grad_()
    ll = ops.forward(li, lt, le, method=method).log_likelihood
    ll[0].backward()
    assert torch.isfinite(lt.grad).all() and torch.isfinite(le.grad).all()


# ----------------------------------------------------------------------------- sampling


def chi_square_pvalue(observed, expected):
    """Chi-square p-value over the possible cells, pooling those with fewer than 5 expected counts."""
    possible = expected > 0
    observed, expected = observed[possible], expected[possible]
    small = expected < 5
    obs, exp = observed[~small], expected[~small]
    if small.any():
        obs, exp = np.append(obs, observed[small].sum()), np.append(exp, expected[small].sum())
    return stats.chisquare(obs, exp).pvalue


def path_counts(draws, K):
    T = draws.shape[-1]
    codes = (draws * (K ** torch.arange(T - 1, -1, -1, device=draws.device))).sum(-1)
    return np.bincount(codes.cpu().numpy(), minlength=K**T)


def test_ffbs_draws_follow_the_exact_posterior(device):
    T, K, n = 4, 3, 20_000
    params = random_hmm((), (), (), T, K, seed=4)
    log_init, log_trans, log_emit = to(device, *params)
    seeded = lambda: torch.Generator(device=device).manual_seed(123)  # noqa: E731
    draws = ops.sample_states(log_init, log_trans, log_emit, num_samples=n, generator=seeded(), method="sequential")
    assert draws.shape == (n, T) and draws.dtype == torch.long
    for method in ("parallel", "blocked"):
        same = ops.sample_states(log_init, log_trans, log_emit, num_samples=n, generator=seeded(), method=method)
        assert torch.equal(draws, same)
    paths, lp = enumerate_paths(*(p.numpy() for p in params), False)
    post = np.exp(lp - logsumexp(lp))  # itertools.product order = base-K code order
    observed = path_counts(draws, K)
    assert observed[post == 0].sum() == 0
    assert chi_square_pvalue(observed, n * post) > 1e-3
    one = ops.sample_states(log_init, log_trans, log_emit.expand(2, T, K), generator=seeded())
    assert one.shape == (2, T)


def test_prior_sampling_follows_the_markov_chain(device):
    T, K, n = 4, 3, 20_000
    log_init, log_trans, _ = random_hmm((), (), (), T, K, seed=5)
    g = torch.Generator(device=device).manual_seed(7)
    draws = ops.sample(log_init.to(device), log_trans.to(device), T, num_samples=n, generator=g)
    assert draws.shape == (n, T)
    _, lp = enumerate_paths(log_init.numpy(), log_trans.numpy(), np.zeros((T, K)), False)
    prior = np.exp(lp)
    observed = path_counts(draws, K)
    assert observed[prior == 0].sum() == 0
    assert chi_square_pvalue(observed, n * prior) > 1e-3
    # long paths go through the parallel composition of the transition maps
    long = ops.sample(log_init.to(device), log_trans.to(device), 300, generator=g)
    assert long.shape == (300,) and not torch.any((long[:-1] == 0) & (long[1:] == K - 1))


# ----------------------------------------------------------------------------- long sequences


def test_parallel_and_blocked_match_sequential_on_a_long_sequence(device):
    T, K = 10_000, 4
    log_init, log_trans, log_emit = to(device, *random_hmm((), (), (), T, K, seed=6, zero=False))
    ref = ops.forward(log_init, log_trans, log_emit, method="sequential")
    ref_path = ops.viterbi(log_init, log_trans, log_emit, method="sequential")
    for method in ("parallel", "blocked"):
        fwd = ops.forward(log_init, log_trans, log_emit, method=method)
        torch.testing.assert_close(fwd.log_likelihood, ref.log_likelihood, rtol=1e-9, atol=0)
        torch.testing.assert_close(fwd.log_alpha.exp(), ref.log_alpha.exp(), rtol=0, atol=1e-9)
        vit = ops.viterbi(log_init, log_trans, log_emit, method=method)
        assert torch.equal(vit.path, ref_path.path)
        torch.testing.assert_close(vit.log_prob, ref_path.log_prob, rtol=1e-9, atol=0)


@pytest.mark.parametrize(
    "K, stay, padded", [(4, 0.0, True), (4, 0.9, True), (16, 0.5, True), (40, 0.5, True), (3, 1.0, True), (4, 0.0, False)]
)
def test_scaled_viterbi_in_blocks_matches_the_sequential_loop(K, stay, padded, device):
    # One transition matrix: the blocked max-times pass and the backtrack along the path (hmm/viterbi.py),
    # with padded sequences, an exact zero, and (stay = 1) the identity chain, whose paths never merge.
    T = 6000
    log_init, log_trans, log_emit = random_hmm((), (), (2,), T, K, seed=K + int(10 * stay))
    mix = torch.tensor(stay, dtype=F64)
    log_trans = torch.logaddexp(log_trans + torch.log1p(-mix), torch.eye(K, dtype=F64).log() + mix.log())
    lengths = torch.tensor([T, 3777]) if padded else None
    args = to(device, log_init, log_trans, 3 * log_emit) + [None if lengths is None else lengths.to(device)]
    ref = ops.viterbi(*args, method="sequential")
    vit = ops.viterbi(*args, method="scaled")
    assert torch.equal(vit.path, ref.path)
    torch.testing.assert_close(vit.log_prob, ref.log_prob, rtol=1e-10, atol=0)


def test_float32_parallel_scan_keeps_filtered_probabilities_accurate(device):
    T, K = 5_000, 4
    params = to(device, *random_hmm((), (), (), T, K, seed=7, zero=False))
    ref = ops.posterior_marginals(*params, method="sequential")
    low = ops.posterior_marginals(*(p.float() for p in params), method="parallel")
    assert low.marginals.dtype == torch.float32
    torch.testing.assert_close(low.marginals.double(), ref.marginals, rtol=0, atol=1e-4)
    torch.testing.assert_close(low.log_likelihood.double(), ref.log_likelihood, rtol=1e-5, atol=0)


# ----------------------------------------------------------------------------- bad input


def good(device, T=4, K=3):
    return to(device, *random_hmm((), (), (), T, K, seed=8))


def test_mismatched_states_name_the_argument(device):
    log_init, log_trans, log_emit = good(device)
    with pytest.raises(ShapeError, match=r"log_trans has K = 2.*\(2, 2\).*log_emit.*K = 3"):
        ops.forward(log_init, log_trans[:2, :2], log_emit)
    with pytest.raises(ShapeError, match=r"log_init must have shape \(\.\.\., K\) with K = 3.*\(4,\)"):
        ops.forward(torch.zeros(4, dtype=F64, device=device), log_trans, log_emit)
    with pytest.raises(ShapeError, match=r"log_trans must have shape.*square.*\(3, 2\)"):
        ops.viterbi(log_init, log_trans[:, :2], log_emit)
    with pytest.raises(ShapeError, match=r"T = 0"):
        ops.forward(log_init, log_trans, log_emit[:0])
    with pytest.raises(ShapeError, match=r"do not broadcast.*log_emit \(2,\).*log_init \(3,\)"):
        ops.forward(log_init.expand(3, 3), log_trans, log_emit.expand(2, 4, 3))
    with pytest.raises(ShapeError, match=r"T-1 = 3 steps"):
        ops.forward(log_init, log_trans.expand(5, 3, 3), log_emit, time_varying=True)


@pytest.mark.parametrize("name", ["log_init", "log_trans", "log_emit"])
def test_nan_names_the_argument(name, device):
    args = dict(zip(["log_init", "log_trans", "log_emit"], good(device)))
    args[name] = args[name].clone()
    args[name].view(-1)[1] = math.nan
    with pytest.raises(DataError, match=rf"'{name}' contains 1 NaN"):
        ops.posterior_marginals(**args)
    args[name].view(-1)[1] = math.inf
    with pytest.raises(DataError, match=rf"'{name}' contains 1 \+inf"):
        ops.forward(**args)


def test_other_bad_arguments(device):
    log_init, log_trans, log_emit = good(device)
    with pytest.raises(DataError, match=r"lengths must lie in \[1, T\] = \[1, 4\], got \[5\]"):
        ops.forward(log_init, log_trans, log_emit.expand(2, 4, 3), torch.tensor([2, 5]))
    with pytest.raises(TypeError, match="lengths must be an integer tensor"):
        ops.forward(log_init, log_trans, log_emit, torch.tensor(2.0))
    with pytest.raises(ModelSpecError, match="method must be one of"):
        ops.forward(log_init, log_trans, log_emit, method="fast")
    with pytest.raises(TypeError, match="log_emit must be a torch.Tensor, got list"):
        ops.forward(log_init, log_trans, log_emit.tolist())
    with pytest.raises(TypeError, match="floating-point"):
        ops.forward(log_init, log_trans, torch.zeros(4, 3, dtype=torch.long, device=device))
    with pytest.raises(ModelSpecError, match="num_samples must be >= 1"):
        ops.sample_states(log_init, log_trans, log_emit, num_samples=0)
    with pytest.raises(ShapeError, match="num_steps must be >= 1"):
        ops.sample(log_init, log_trans, 0)


def test_check_hmm_params_and_check_normalised(device):
    log_init, log_trans, log_emit = good(device)
    shape = ops.check_hmm_params(log_init, log_trans.expand(2, 3, 3), log_emit)
    assert shape == ops.HMMShape(torch.Size([2]), 4, 3)
    ops.check_normalised(log_trans.exp(), "transition_probs")
    bad = torch.tensor([[0.5, 0.5], [0.7, 0.4]], dtype=F64, device=device)
    with pytest.raises(ModelSpecError, match=r"transition_probs.*1 bad rows: row \(1,\): sum 1\.1\b"):
        ops.check_normalised(bad, "transition_probs")
    with pytest.raises(ModelSpecError, match="negative"):
        ops.check_normalised(torch.tensor([1.5, -0.5], dtype=F64, device=device), "init_probs")
