"""The native CPU kernels of the HMM algorithms against the torch paths, hmmlearn and exact edge cases."""

from __future__ import annotations

import os
import shutil
import stat
import warnings

import numpy as np
import pytest
import torch

from probmodels.hmm import GaussianHMM, linear_emission, ops
from probmodels.hmm.linear_emission import LinearEmission
from probmodels.hmm.native import build
from probmodels.hmm.native import inference as native
from probmodels.hmm.problem import prepare

pytestmark = pytest.mark.skipif(
    shutil.which(os.environ.get("CC") or "cc") is None, reason="no C compiler for the native HMM kernels"
)

RTOL = 1e-10
F64 = torch.float64


@pytest.fixture(autouse=True)
def _native_on(monkeypatch):
    monkeypatch.delenv("PROBMODELS_HMM_NATIVE", raising=False)
    if build.load() is None:
        pytest.skip("the native HMM kernels could not be built here")


def random_model(k: int, batch: tuple[int, ...], steps: int, seed: int, zeros: bool = False):
    """Random log_init (k,), log_trans (k, k) and log_emit (*batch, steps, k); ``zeros``: exact zeros in both."""
    generator = torch.Generator().manual_seed(seed)
    init = torch.rand(k, generator=generator, dtype=F64) + 0.05
    trans = torch.rand(k, k, generator=generator, dtype=F64) + 0.05
    if zeros and k > 1:
        trans[torch.rand(k, k, generator=generator, dtype=F64) < 0.4] = 0.0
        trans[torch.arange(k), torch.arange(k)] = 1.0  # every row keeps some mass
        init[0] = 0.0
    init, trans = init / init.sum(), trans / trans.sum(-1, keepdim=True)
    emit = 3.0 * torch.randn(*batch, steps, k, generator=generator, dtype=F64)
    return init.log(), trans.log(), emit


def assert_same(native_result, reference, what: str) -> None:
    got, want = torch.as_tensor(native_result), torch.as_tensor(reference)
    finite = torch.isfinite(want)
    assert torch.equal(torch.isfinite(got), finite), what
    assert torch.equal(got[~finite], want[~finite]), what
    scale = want[finite].abs().clamp_min(1.0)
    assert bool(((got[finite] - want[finite]).abs() <= RTOL * scale).all()), f"{what}: {got} vs {want}"


def compare_with_log_space(log_init, log_trans, log_emit, lengths=None) -> None:
    prob = prepare(log_init, log_trans, log_emit, lengths, False, True)
    assert native.applicable(prob)
    ll = ops.log_likelihood(log_init, log_trans, log_emit, lengths)
    ll_ref = ops.log_likelihood(log_init, log_trans, log_emit, lengths, method="sequential")
    assert_same(ll, ll_ref, "log_likelihood")
    post = ops.posterior_marginals(log_init, log_trans, log_emit, lengths, transition_counts=True)
    ref = ops.posterior_marginals(log_init, log_trans, log_emit, lengths, transition_counts=True, method="sequential")
    assert_same(post.log_likelihood, ref.log_likelihood, "smoothing log_likelihood")
    assert_same(post.marginals, ref.marginals, "marginals")
    assert_same(post.transition_counts, ref.transition_counts, "transition_counts")
    assert post.marginals.shape == ref.marginals.shape and post.transition_counts.shape == ref.transition_counts.shape
    best = ops.viterbi(log_init, log_trans, log_emit, lengths)
    best_ref = ops.viterbi(log_init, log_trans, log_emit, lengths, method="sequential")
    assert_same(best.log_prob, best_ref.log_prob, "viterbi log_prob")
    assert torch.equal(best.path, best_ref.path)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 6, 7, 8, 16, 40])
def test_padded_batch_matches_log_space(k):
    log_init, log_trans, log_emit = random_model(k, (4,), 23, seed=k, zeros=k % 2 == 0)
    compare_with_log_space(log_init, log_trans, log_emit, torch.tensor([23, 1, 9, 22]))


@pytest.mark.parametrize("k", [1, 3, 4, 16])
def test_one_sequence_and_batch_dims_match_log_space(k):
    log_init, log_trans, log_emit = random_model(k, (), 64, seed=10 + k)
    compare_with_log_space(log_init, log_trans, log_emit)
    # two batch dims, a per-sequence initial distribution and broadcast lengths
    _, _, emit = random_model(k, (2, 3), 17, seed=20 + k)
    init = torch.log_softmax(torch.randn(3, k, dtype=F64), -1)
    compare_with_log_space(init, log_trans, emit, torch.tensor([17, 5, 11]))


def test_gaussian_hmm_matches_hmmlearn():
    hmmlearn = pytest.importorskip("hmmlearn.hmm")
    rng = np.random.default_rng(0)
    k, lengths = 3, [50, 30, 70]
    X = rng.normal(size=(sum(lengths), 1)) + rng.integers(0, k, size=(sum(lengths), 1))
    params = dict(
        startprob_=np.array([0.5, 0.3, 0.2]), transmat_=np.array([[0.8, 0.2, 0.0], [0.1, 0.8, 0.1], [0.2, 0.0, 0.8]]),
        means_=np.array([[0.0], [1.0], [2.0]]), covars_=np.array([[0.5], [0.4], [0.6]]),
    )
    ours, peer = GaussianHMM(k, init_params=""), hmmlearn.GaussianHMM(k, "diag", init_params="")
    for name, value in params.items():
        setattr(ours, name, value)
        setattr(peer, name, value)
    assert abs(ours.score(X, lengths) - peer.score(X, lengths)) <= RTOL * abs(peer.score(X, lengths))
    np.testing.assert_allclose(ours.predict_proba(X, lengths), peer.predict_proba(X, lengths), rtol=0, atol=RTOL)
    np.testing.assert_array_equal(ours.predict(X, lengths), peer.decode(X, lengths)[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one iteration does not converge
        ours.fit(X, lengths, n_iter=1, n_restarts=1, tol=0.0)
    peer.set_params(n_iter=1, tol=0.0, covars_prior=0.0, min_covar=0.0)
    peer.fit(X, lengths)
    np.testing.assert_allclose(ours.transmat_, peer.transmat_, rtol=RTOL, atol=1e-14)
    np.testing.assert_allclose(ours.means_, peer.means_, rtol=RTOL)


@pytest.mark.parametrize("native_on", ["1", "0"])
@pytest.mark.parametrize("k", [1, 3, 4, 9])
def test_linear_emission_matches_log_space(k, native_on, monkeypatch):
    """Emissions computed inside the kernels from features equal the log-space methods on the built log_emit."""
    monkeypatch.setenv("PROBMODELS_HMM_NATIVE", native_on)
    log_init, log_trans, _ = random_model(k, (), 1, seed=30 + k, zeros=k > 2)
    generator = torch.Generator().manual_seed(k)
    emission = LinearEmission(
        torch.randn(3, 19, 2, generator=generator, dtype=F64), torch.randn(2, k, generator=generator, dtype=F64),
        torch.randn(k, generator=generator, dtype=F64),
    )
    lengths = torch.tensor([19, 4, 1])
    log_emit = emission.log_emit()
    assert_same(log_emit, torch.matmul(emission.features, emission.weights) + emission.bias, "log_emit")
    ll = linear_emission.log_likelihood(log_init, log_trans, emission, lengths)
    assert_same(ll, ops.log_likelihood(log_init, log_trans, log_emit, lengths, method="sequential"), "log_likelihood")
    post = linear_emission.posterior_marginals(log_init, log_trans, emission, lengths, transition_counts=True)
    ref = ops.posterior_marginals(log_init, log_trans, log_emit, lengths, transition_counts=True, method="sequential")
    assert_same(post.marginals, ref.marginals, "marginals")
    assert_same(post.transition_counts, ref.transition_counts, "transition_counts")
    best = linear_emission.viterbi(log_init, log_trans, emission, lengths)
    best_ref = ops.viterbi(log_init, log_trans, log_emit, lengths, method="sequential")
    assert_same(best.log_prob, best_ref.log_prob, "viterbi log_prob")
    assert torch.equal(best.path, best_ref.path)


def test_exact_zeros_stay_exact():
    """A left-to-right chain: states never revisited get marginals and counts of exactly 0."""
    k = 4
    trans = torch.tensor([[0.5, 0.5, 0, 0], [0, 0.5, 0.5, 0], [0, 0, 0.5, 0.5], [0, 0, 0, 1]], dtype=F64)
    init = torch.tensor([1.0, 0, 0, 0], dtype=F64)
    emit = torch.randn(2, 12, k, dtype=F64, generator=torch.Generator().manual_seed(3))
    compare_with_log_space(init.log(), trans.log(), emit, torch.tensor([12, 3]))
    post = ops.posterior_marginals(init.log(), trans.log(), emit, torch.tensor([12, 3]), transition_counts=True)
    assert bool((post.marginals[:, 0, 1:] == 0).all()) and bool((post.marginals[1, 1, 2:] == 0).all())
    assert bool((post.transition_counts[:, trans == 0] == 0).all())
    assert bool((post.marginals[1, 3:] == 0).all())  # padded steps


def test_impossible_sequences_give_minus_inf_and_zeros():
    log_init, log_trans, log_emit = random_model(3, (3,), 10, seed=5)
    log_emit[0, 4] = -torch.inf  # no state can emit step 4
    log_trans = torch.log(torch.tensor([[0.5, 0.5, 0], [0, 0.5, 0.5], [0, 0, 1.0]], dtype=F64))
    log_init = torch.log(torch.tensor([0, 0, 1.0], dtype=F64))
    log_emit[1, 6, 2] = -torch.inf  # the chain is stuck in state 2: impossible through the transitions
    ll = ops.log_likelihood(log_init, log_trans, log_emit)
    assert ll[0] == -torch.inf and ll[1] == -torch.inf and torch.isfinite(ll[2])
    post = ops.posterior_marginals(log_init, log_trans, log_emit, transition_counts=True)
    assert bool((post.marginals[:2] == 0).all()) and bool((post.transition_counts[:2] == 0).all())
    best = ops.viterbi(log_init, log_trans, log_emit)
    assert best.log_prob[0] == -torch.inf and best.log_prob[1] == -torch.inf
    assert bool((best.path[:2] == 0).all())
    compare_with_log_space(log_init, log_trans, log_emit)


def test_underflowing_step_is_recomputed_in_log_space():
    """A step whose likelihood ratio (e^-800) is below the smallest double is flagged and recomputed."""
    log_init = torch.log(torch.tensor([1.0, 0.0], dtype=F64))
    log_trans = torch.log(torch.tensor([[0.0, 1.0], [0.5, 0.5]], dtype=F64))
    log_emit = torch.zeros(2, 5, 2, dtype=F64)
    log_emit[0, 1] = torch.tensor([0.0, -800.0], dtype=F64)
    flat = native.flatten(prepare(log_init, log_trans, log_emit, None, False, True), None)
    assert native.log_likelihood(flat)[1].tolist() == [0]
    compare_with_log_space(log_init, log_trans, log_emit)
    assert bool(torch.isfinite(ops.log_likelihood(log_init, log_trans, log_emit)).all())


def test_switched_off_gives_the_same_results(monkeypatch):
    log_init, log_trans, log_emit = random_model(5, (3,), 40, seed=7, zeros=True)
    lengths = torch.tensor([40, 13, 2])
    prob = prepare(log_init, log_trans, log_emit, lengths, False, True)
    on = (ops.log_likelihood(log_init, log_trans, log_emit, lengths),
          ops.posterior_marginals(log_init, log_trans, log_emit, lengths, transition_counts=True),
          ops.viterbi(log_init, log_trans, log_emit, lengths))
    monkeypatch.setenv("PROBMODELS_HMM_NATIVE", "0")
    assert not native.applicable(prob)
    off = (ops.log_likelihood(log_init, log_trans, log_emit, lengths),
           ops.posterior_marginals(log_init, log_trans, log_emit, lengths, transition_counts=True),
           ops.viterbi(log_init, log_trans, log_emit, lengths))
    assert_same(on[0], off[0], "log_likelihood")
    assert_same(on[1].marginals, off[1].marginals, "marginals")
    assert_same(on[1].transition_counts, off[1].transition_counts, "transition_counts")
    assert_same(on[2].log_prob, off[2].log_prob, "viterbi log_prob")
    assert torch.equal(on[2].path, off[2].path)


def test_only_cpu_float64_shared_transitions_without_gradient():
    log_init, log_trans, log_emit = random_model(3, (2,), 8, seed=9)
    assert native.applicable(prepare(log_init, log_trans, log_emit, None, False, True))
    assert not native.applicable(prepare(log_init.float(), log_trans.float(), log_emit.float(), None, False, True))
    varying = log_trans.expand(7, 3, 3)
    assert not native.applicable(prepare(log_init, varying, log_emit, None, True, True))
    per_sequence = log_trans.expand(2, 3, 3)
    assert not native.applicable(prepare(log_init, per_sequence, log_emit, None, False, True))
    emit = log_emit.clone().requires_grad_()
    ll = ops.log_likelihood(log_init, log_trans, emit)
    ll.sum().backward()  # the differentiable torch path ran
    assert emit.grad is not None


def test_compile_failure_falls_back_with_one_warning(monkeypatch, tmp_path):
    compiler = tmp_path / "broken-cc"
    compiler.write_text('#!/bin/sh\nif [ "$1" = --version ]; then echo broken-cc 1.0; exit 0; fi\necho boom >&2\nexit 1\n')
    compiler.chmod(compiler.stat().st_mode | stat.S_IEXEC)
    log_init, log_trans, log_emit = random_model(3, (2,), 8, seed=11)
    expected = ops.log_likelihood(log_init, log_trans, log_emit)
    monkeypatch.setenv("CC", str(compiler))
    monkeypatch.setenv("PROBMODELS_CACHE_DIR", str(tmp_path / "cache"))
    build.reset()
    try:
        with pytest.warns(RuntimeWarning, match="could not build its native CPU kernels"):
            assert build.load() is None
        assert not native.applicable(prepare(log_init, log_trans, log_emit, None, False, True))
        assert_same(ops.log_likelihood(log_init, log_trans, log_emit), expected, "fallback log_likelihood")
        assert not list((tmp_path / "cache").glob("*"))  # no partial library left behind
    finally:
        build.reset()
