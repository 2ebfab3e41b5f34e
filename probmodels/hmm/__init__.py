"""Hidden Markov models.

:mod:`probmodels.hmm.ops` holds the exact algorithms (forward, backward,
smoothing, Viterbi, posterior and prior sampling of state paths) as pure tensor
functions in log space.
"""

from .ops import (
    ForwardResult,
    HMMShape,
    PosteriorMarginals,
    ViterbiResult,
    backward,
    check_hmm_params,
    check_normalised,
    forward,
    posterior_marginals,
    sample,
    sample_states,
    viterbi,
)

__all__ = [
    "forward",
    "backward",
    "posterior_marginals",
    "viterbi",
    "sample_states",
    "sample",
    "check_hmm_params",
    "check_normalised",
    "ForwardResult",
    "PosteriorMarginals",
    "ViterbiResult",
    "HMMShape",
]
