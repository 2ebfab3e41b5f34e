"""Gibbs sampling (probmodels.bn.gibbs, Inference.approximate_query(method="gibbs")) against exact queries.

Oracle: exact ``Inference.query`` / ``ops.marginals`` on the asia network
(with its deterministic ``either`` node). Many chains each contribute ONE
draw after the burn-in, so the N draws are independent and the frequency of
a state has standard error ``sqrt(p (1 - p) / N)`` around the exact ``p``;
z-scores are compared with a Bonferroni normal quantile (tests/mcse.py).
"""

import numpy as np
import pytest
import torch
from mcse import z_threshold

from probmodels import DataError, ModelSpecError
from probmodels.bn import Inference, ops
from probmodels.bn.gibbs import gibbs_sample
from probmodels.datasets import asia

CHAINS = 20_000
BURN_IN = 30


def z_scores(estimate, exact, n):
    """z-scores of frequencies from ``n`` independent draws; states of exact probability 0 must never be drawn."""
    estimate, exact = np.asarray(estimate, dtype=float).ravel(), np.asarray(exact, dtype=float).ravel()
    assert (estimate[exact == 0] == 0).all()
    kept = (exact > 0) & (exact < 1)
    return (estimate[kept] - exact[kept]) / np.sqrt(exact[kept] * (1 - exact[kept]) / n)


def test_gibbs_marginals_match_exact_query():
    infer = Inference(asia())
    evidence = {"xray": "yes", "dysp": "yes"}
    names = [n for n in infer.network.nodes if n not in evidence]
    exact = infer.query(names, evidence)
    z = []
    for seed, name in enumerate(names):
        approx = infer.approximate_query(
            [name], evidence, method="gibbs", num_samples=CHAINS, num_chains=CHAINS, burn_in=BURN_IN,
            generator=torch.Generator().manual_seed(seed),
        )
        assert approx.variables == (name,) and approx.states == exact[name].states
        z.append(z_scores(approx.probs, exact[name].probs, CHAINS))
    z = np.concatenate(z)
    assert np.abs(z).max() < z_threshold(len(z))
    joint = infer.approximate_query(
        ["tub", "lung", "either"], evidence, method="gibbs", num_samples=CHAINS, num_chains=CHAINS, burn_in=BURN_IN,
        generator=torch.Generator().manual_seed(99),
    )
    z = z_scores(joint.probs, infer.query(["tub", "lung", "either"], evidence, joint=True).probs, CHAINS)
    assert np.abs(z).max() < z_threshold(len(z))


def test_gibbs_sample_batched_partial_evidence():
    """Rows of evidence with unobserved (-1) cells: one chain set per row, every variable checked."""
    net = asia()
    tensors = net.tensors()
    evidence_vars = (net.index("xray"), net.index("dysp"), net.index("smoke"))
    evidence = torch.tensor([[0, 0, -1], [-1, 1, 0], [-1, -1, -1]])
    chains = gibbs_sample(tensors, CHAINS, 1, evidence_vars, evidence, burn_in=BURN_IN, generator=torch.Generator().manual_seed(5))
    assert chains.codes.shape == (1, CHAINS, 3, len(net.nodes))
    assert ((chains.codes[0][..., list(evidence_vars)] == evidence) | (evidence < 0)).all()  # observed cells clamped
    assert torch.isfinite(chains.log_evidence).all()
    z = []
    for v, card in enumerate(tensors.cards):
        exact = ops.marginals(tensors, (v,), evidence_vars, evidence).probs
        frequency = torch.nn.functional.one_hot(chains.codes[0, ..., v], card).double().mean(0)
        z.append(z_scores(frequency, exact, CHAINS))
    z = np.concatenate(z)
    assert np.abs(z).max() < z_threshold(len(z))


def test_gibbs_is_reproducible_and_keeps_num_samples():
    infer = Inference(asia())
    run = lambda: infer.approximate_query(  # noqa: E731
        ["lung"], {"dysp": "yes"}, method="gibbs", num_samples=250, num_chains=100, burn_in=5, generator=torch.Generator().manual_seed(3)
    )
    first, second = run(), run()
    torch.testing.assert_close(first.probs, second.probs, rtol=0, atol=0)
    assert (first.probs * 300).round().sub(first.probs * 300).abs().max() < 1e-9  # 100 chains x 3 draws
    chains = gibbs_sample(asia().tensors(), 4, 7, burn_in=0, generator=torch.Generator().manual_seed(0))
    assert chains.codes.shape == (7, 4, 8) and float(chains.log_evidence) == 0.0


def test_gibbs_bad_input():
    infer = Inference(asia())
    with pytest.raises(ModelSpecError, match=r"method must be one of \('likelihood_weighting', 'gibbs'\), got 'metropolis'"):
        infer.approximate_query(["lung"], method="metropolis")
    impossible = {"tub": "yes", "either": "no"}
    with pytest.raises(DataError, match="has probability 0") as exact_error:
        infer.query(["lung"], impossible)
    with pytest.raises(DataError, match="has probability 0") as gibbs_error:
        infer.approximate_query(["lung"], impossible, method="gibbs", num_samples=100, num_chains=10)
    assert str(gibbs_error.value) == str(exact_error.value)
    with pytest.raises(ValueError, match="burn_in"):
        infer.approximate_query(["lung"], method="gibbs", burn_in=-1)
    with pytest.raises(ValueError, match="num_chains"):
        infer.approximate_query(["lung"], method="gibbs", num_chains=0)
