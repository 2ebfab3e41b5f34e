"""Hidden Markov models.

:mod:`probmodels.hmm.ops` holds the exact algorithms (forward, backward,
smoothing, Viterbi, posterior and prior sampling of state paths) as pure tensor
functions in log space; on a CPU in float64 they run in native C kernels
(:mod:`probmodels.hmm.native`, compiled on first use), which
:mod:`probmodels.hmm.linear_emission` also runs on emissions computed from
features. :mod:`probmodels.hmm.model` builds models on them:
:class:`GaussianHMM`, :class:`CategoricalHMM`, :class:`PoissonHMM` and
:class:`HMM` (any emission distribution), fitted by Baum-Welch
(:mod:`probmodels.hmm.em`) or through the inference core, and
:func:`select_n_states`; :func:`plot_states` draws a fitted model on data.
"""

from .em import EMMonitor
from .emissions import HMMProgram
from .model import HMM, CategoricalHMM, GaussianHMM, PoissonHMM, select_n_states
from .ops import (
    ForwardResult,
    HMMShape,
    PosteriorMarginals,
    ViterbiResult,
    backward,
    check_hmm_params,
    check_normalised,
    forward,
    log_likelihood,
    posterior_marginals,
    sample,
    sample_states,
    viterbi,
)
from .plot import plot_states

__all__ = [
    "HMM",
    "GaussianHMM",
    "CategoricalHMM",
    "PoissonHMM",
    "HMMProgram",
    "EMMonitor",
    "select_n_states",
    "plot_states",
    "forward",
    "log_likelihood",
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
