"""Hidden Markov models with an hmmlearn-style surface, fitted by EM or through the inference core.

``X`` is an ``(n_samples, n_features)`` array holding one or several sequences
one after another, and ``lengths`` their lengths (hmmlearn's convention);
internally they are padded to one batch for :mod:`~probmodels.hmm.ops`. On a
CPU the exact algorithms run in native kernels (see ``"auto"`` there), which
compute Gaussian emissions with diagonal covariances step by step
(:mod:`~probmodels.hmm.linear_emission`).
``fit(method="em")`` runs Baum-Welch (:mod:`~probmodels.hmm.em`) and records
convergence in ``monitor_``; ``"nuts"``, ``"svi"`` and ``"map"`` (SVI's
``"delta"`` guide) fit the Bayesian HMM (:class:`~probmodels.hmm.emissions.HMMProgram`)
with :func:`~probmodels.fit_mcmc` or :func:`~probmodels.fit_svi`, store the
:class:`~probmodels.Posterior` in ``posterior_`` and set the parameter
attributes to posterior means.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np
import torch
from pyro.infer.autoguide import AutoDelta, init_to_sample
from torch.distributions import Distribution

from .._validation import check_positive_int
from ..core.mcmc import fit_mcmc
from ..core.posterior import Posterior
from ..core.svi import fit_svi
from ..exceptions import ModelSpecError, ShapeError
from . import linear_emission, ops
from .em import EMMonitor, ParamMap, Params, SequenceData, as_observations, emission_terms, fit_em, log_terms, pad_sequences
from .emissions import CategoricalEmission, CustomEmission, Emission, GaussianEmission, HMMProgram, PoissonEmission

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["HMM", "GaussianHMM", "CategoricalHMM", "PoissonHMM", "select_n_states", "METHODS"]

METHODS = ("em", "map", "nuts", "svi")
_MAX_DRAWS = 200


class HMM:
    """Hidden Markov model with emissions from a user-given distribution factory.

    Parameters
    ----------
    n_states : int
        Number of hidden states ``K >= 1``.
    emission : callable
        ``params -> torch Distribution``: maps per-state parameters, each
        ``(..., K, *shape)``, to a distribution with batch shape ``(..., K)``,
        e.g. ``lambda p: dist.Exponential(p["rate"])``.
    priors : dict of str to Distribution
        The prior of ONE state's value of each parameter, e.g. ``{"rate":
        dist.Gamma(2.0, 1.0)}``; its support is the parameter's constraint.
        Used by the Bayesian fits and for EM starting values.
    startprob_prior, transmat_prior : float or array-like, default 1.0
        Dirichlet concentrations of the initial distribution and of each
        transition row (EM uses them as hmmlearn does: posterior mode).
    params, init_params : str, optional
        hmmlearn's letters of the parameters to learn, and to initialise before
        EM: ``"s"`` start, ``"t"`` transitions, ``"e"`` emissions (subclasses
        have their own letters); default all. Parameters left out must be set
        as attributes before ``fit``.

    Attributes
    ----------
    startprob_, transmat_ : ndarray
        Initial probabilities ``(K,)`` and transition matrix ``(K, K)``.
    <name>_ : ndarray
        Each emission parameter, ``(K, *shape)``.
    monitor_ : EMMonitor or None
        Convergence record of the last EM fit.
    posterior_ : Posterior or None
        The posterior of the last Bayesian fit.
    """

    def __init__(
        self,
        n_states: int,
        emission: Callable[[Mapping[str, torch.Tensor]], Distribution],
        priors: Mapping[str, Distribution],
        *,
        startprob_prior: Any = 1.0,
        transmat_prior: Any = 1.0,
        params: str | None = None,
        init_params: str | None = None,
    ) -> None:
        self._setup(n_states, CustomEmission(emission, priors), startprob_prior, transmat_prior, params, init_params)

    def _setup(
        self, n_states: int, family: Emission, startprob_prior: Any, transmat_prior: Any,
        params: str | None, init_params: str | None,
    ) -> None:
        self.n_states = check_positive_int(n_states, "n_states")
        self._family = family
        letters = "st" + "".join(dict.fromkeys(family.letters.values()))
        self.params = _check_letters(params, letters, "params")
        self.init_params = _check_letters(init_params, letters, "init_params")
        self.startprob_prior = startprob_prior
        self.transmat_prior = transmat_prior
        self.monitor_: EMMonitor | None = None
        self.posterior_: Posterior | None = None

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        X: Any,
        lengths: Any = None,
        *,
        method: str = "em",
        n_restarts: int = 3,
        n_iter: int = 100,
        tol: float = 1e-3,
        seed: int = 0,
        **inference_kwargs: Any,
    ) -> "HMM":
        """Fit the model to one or several sequences.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Observations of all sequences, concatenated.
        lengths : array-like of int, optional
            Length of each sequence in ``X``, summing to ``n_samples``; None: one sequence.
        method : {"em", "map", "nuts", "svi"}, default "em"
            Baum-Welch, or a Bayesian fit through the inference core.
        n_restarts : int, default 3
            Random starts of EM (and seeds of ``"map"``); the best is kept.
        n_iter, tol : int and float
            EM stops when ``|Δ log-likelihood| < tol``, at the latest after
            ``n_iter`` iterations (with a :class:`ConvergenceWarning`).
        seed : int, default 0
            Seed of the EM starting values or of the core's run.
        **inference_kwargs
            Passed to :func:`~probmodels.fit_mcmc` (``"nuts"``) or :func:`~probmodels.fit_svi`
            (``"svi"``, ``"map"``), e.g. ``num_samples``, ``num_chains``, ``num_steps``, ``progress_bar``.

        Returns
        -------
        HMM
            ``self``, fitted.
        """
        if method not in METHODS:
            raise ModelSpecError(f"method must be one of {METHODS}, got {method!r}.")
        n_restarts = check_positive_int(n_restarts, "n_restarts")
        if not (isinstance(tol, (int, float)) and tol >= 0):
            raise ModelSpecError(f"tol must be a number >= 0, got {tol!r}.")
        X = self._check_X(X, fitting=True)
        data = pad_sequences(X, lengths)
        if method == "em":
            if inference_kwargs:
                raise ModelSpecError(f"{sorted(inference_kwargs)} are options of the Bayesian methods, not of method='em'.")
            params, self.monitor_ = fit_em(
                self._family, data, lambda generator: self._initial_params(X, generator), learn=self.params,
                n_restarts=n_restarts, n_iter=check_positive_int(n_iter, "n_iter"), tol=tol, seed=seed,
                startprob_prior=self.startprob_prior, transmat_prior=self.transmat_prior,
            )
            self.posterior_ = None
        else:
            program, args = self._program(X, data)
            self.posterior_ = _run_core(program, args, method, n_restarts, seed, inference_kwargs)
            self.monitor_ = None
            params = {name: value.mean(0) for name, value in self._draw_params().items()}
        for name in self._names:
            setattr(self, f"{name}_", params[name].detach().cpu().numpy())
        return self

    def pyro_model(self, X: Any, lengths: Any = None) -> tuple[HMMProgram, tuple[torch.Tensor, torch.Tensor | None]]:
        """The Bayesian HMM of this configuration, and its data, for any core algorithm.

        Example: ``program, args = hmm.pyro_model(X, lengths); probmodels.fit_mcmc(program, *args)``.

        Returns
        -------
        tuple
            The :class:`~probmodels.hmm.emissions.HMMProgram` and its arguments ``(x, lengths)``.
        """
        X = self._check_X(X, fitting=True)
        return self._program(X, pad_sequences(X, lengths))

    def _program(self, X: torch.Tensor, data: SequenceData) -> tuple[HMMProgram, tuple[torch.Tensor, torch.Tensor | None]]:
        self._family.configure_priors(X)
        learn = self.params if self.n_states > 1 else self.params.replace("s", "").replace("t", "")
        ones = {"startprob": X.new_ones(1), "transmat": X.new_ones(1, 1)} if self.n_states == 1 else {}
        fixed = self._gather(X, ones, "".join(self._letter(n) for n in ones), skip=learn, option="params")
        if not set(self._names) - set(fixed):
            raise ModelSpecError(f"params={self.params!r} leaves nothing to learn; a Bayesian fit needs a free parameter.")
        program = HMMProgram(self._family, self.n_states, learn, fixed, self.startprob_prior, self.transmat_prior)
        return program, (data.x, data.lengths)

    # --------------------------------------------------------------- predicting
    def score(self, X: Any, lengths: Any = None) -> float:
        """Total log-likelihood ``log p(X)`` of all sequences at the fitted parameters."""
        data, terms = self._inputs(X, lengths)
        return float(linear_emission.log_likelihood(*terms, data.lengths).sum())

    def score_samples(self, X: Any, lengths: Any = None) -> tuple[float, np.ndarray]:
        """Total log-likelihood and posterior state probabilities ``(n_samples, K)``, as hmmlearn."""
        data, terms = self._inputs(X, lengths)
        post = linear_emission.posterior_marginals(*terms, data.lengths)
        return float(post.log_likelihood.sum()), _observed(post.marginals, data).cpu().numpy()

    def predict(self, X: Any, lengths: Any = None) -> np.ndarray:
        """Most probable state path (Viterbi) of each sequence, concatenated: ``(n_samples,)``."""
        data, terms = self._inputs(X, lengths)
        return _observed(linear_emission.viterbi(*terms, data.lengths).path, data).cpu().numpy()

    def predict_proba(self, X: Any, lengths: Any = None) -> np.ndarray:
        """Posterior state probabilities ``p(z_t = k | X)``, ``(n_samples, K)``.

        After a Bayesian fit they are averaged over up to 200 evenly thinned
        posterior draws (the parameter uncertainty is integrated out).
        """
        data, terms = self._inputs(X, lengths)
        if self.posterior_ is not None:
            params = {name: value.unsqueeze(1) for name, value in self._draw_params().items()}
            terms = log_terms(self._family, params, data.x, data.mask)
        marginals = linear_emission.posterior_marginals(*terms, data.lengths).marginals
        return _observed(marginals if marginals.dim() == 3 else marginals.mean(0), data).cpu().numpy()

    def sample(self, n_steps: int, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Draw one sequence of ``n_steps`` from the fitted model.

        ``seed`` makes the draw reproducible and leaves torch's global RNG
        untouched; None draws from the global RNG. Returns the observations
        ``(n_steps, n_features)`` and the states ``(n_steps,)``.
        """
        n_steps = check_positive_int(n_steps, "n_steps")
        params = self._fitted_params(torch.zeros((), dtype=torch.float64))
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            states = ops.sample(params["startprob"].log(), params["transmat"].log(), n_steps)
            emission = self._family.distribution({name: params[name][states] for name in self._family.letters})
            x = emission.sample()
        return (x if emission.event_shape else x.unsqueeze(-1)).cpu().numpy(), states.cpu().numpy()

    def plot_states(self, X: Any, lengths: Any = None, **kwargs: Any) -> "Figure":
        """Plot ``X`` over its Viterbi states and the posterior state probabilities; see :func:`~probmodels.hmm.plot.plot_states`."""
        from .plot import plot_states

        return plot_states(self, X, lengths, **kwargs)

    # ------------------------------------------------------------- complexity
    @property
    def n_parameters(self) -> int:
        """Number of free scalar parameters that ``fit`` learns (letters in ``params``)."""
        if self._family.n_features is None:
            raise ModelSpecError(f"{type(self).__name__} has not seen data yet; call fit(X) first.")
        k, learn = self.n_states, self.params
        count = (k - 1) * ("s" in learn) + k * (k - 1) * ("t" in learn)
        return count + sum(self._family.n_free(name, k) for name, letter in self._family.letters.items() if letter in learn)

    def bic(self, X: Any, lengths: Any = None) -> float:
        """Bayesian information criterion ``-2 log p(X) + n_parameters log(n_samples)`` (lower is better)."""
        return -2 * self.score(X, lengths) + self.n_parameters * math.log(len(self._check_X(X)))

    def aic(self, X: Any, lengths: Any = None) -> float:
        """Akaike information criterion ``-2 log p(X) + 2 n_parameters`` (lower is better)."""
        return -2 * self.score(X, lengths) + 2 * self.n_parameters

    # ---------------------------------------------------------------- internals
    @property
    def _names(self) -> tuple[str, ...]:
        return ("startprob", "transmat", *self._family.letters)

    def _letter(self, name: str) -> str:
        return {"startprob": "s", "transmat": "t"}.get(name) or self._family.letters[name]

    def _check_X(self, X: Any, fitting: bool = False) -> torch.Tensor:
        X = as_observations(X)
        if fitting:
            self._family.reset()
        return self._family.check_X(X)

    def _gather(self, like: torch.Tensor, fresh: ParamMap, take: str, *, skip: str = "", option: str) -> Params:
        """Parameters: ``fresh`` values for the letters in ``take``, the attributes for the others (``skip`` left out)."""
        params = {}
        for name in self._names:
            letter = self._letter(name)
            if letter in skip:
                continue
            value = fresh[name] if letter in take else getattr(self, f"{name}_", None)
            if value is None:
                raise ModelSpecError(
                    f"{name}_ is not set and {option}={getattr(self, option)!r} does not contain {letter!r}; "
                    f"set {name}_ first or add {letter!r} to {option}."
                )
            params[name] = torch.as_tensor(np.asarray(value, dtype=float), dtype=like.dtype, device=like.device)
        self._check_params(params)
        return params

    def _fitted_params(self, like: torch.Tensor) -> Params:
        missing = [f"{name}_" for name in self._names if getattr(self, f"{name}_", None) is None]
        if missing:
            raise ModelSpecError(f"{type(self).__name__} is not fitted ({', '.join(missing)} not set); call fit(X) first.")
        return self._gather(like, {}, "", option="init_params")

    def _inputs(self, X: Any, lengths: Any) -> tuple[SequenceData, tuple[torch.Tensor, torch.Tensor, Any]]:
        """The data, and the terms of the :mod:`~probmodels.hmm.linear_emission` functions."""
        X = self._check_X(X)
        data = pad_sequences(X, lengths)
        return data, emission_terms(self._family, self._fitted_params(X), data)

    def _initial_params(self, X: torch.Tensor, generator: torch.Generator) -> Params:
        """EM starting values: fresh ones for the letters in ``init_params``, the attributes for the rest."""
        k = self.n_states
        fresh = {"startprob": X.new_full((k,), 1 / k), "transmat": X.new_full((k, k), 1 / k)}
        if set(self._family.letters.values()) & set(self.init_params):  # k-means++ only when it is used
            fresh.update(self._family.initialize(X, k, generator))
        return self._gather(X, fresh, self.init_params, option="init_params")

    def _check_params(self, params: ParamMap) -> None:
        k = self.n_states
        for name, shape in (("startprob", (k,)), ("transmat", (k, k))):
            if name in params:
                if tuple(params[name].shape) != shape:
                    raise ShapeError(f"{name}_ must have shape {shape} for n_states={k}, got {tuple(params[name].shape)}.")
                ops.check_normalised(params[name], f"{name}_")
        self._family.check_params(params, k)

    def _draw_params(self) -> Params:
        """Every parameter at up to 200 evenly thinned posterior draws: ``(S, *shape)``."""
        posterior, program = self.posterior_, self.posterior_.model
        total = posterior.num_chains * posterior.num_draws
        keep = torch.linspace(0, total - 1, min(total, _MAX_DRAWS)).round().long()
        sites = {site.name: posterior.flat(site.name)[keep] for site in posterior.info.latents}
        shapes = {"startprob": (self.n_states,), "transmat": (self.n_states,) * 2}
        return {
            name: value.expand((len(keep),) + (shapes.get(name) or self._family.param_shape(name, self.n_states)))
            for name, value in program.params_from_sites(sites).items()
        }


class GaussianHMM(HMM):
    """HMM with Gaussian emissions (hmmlearn's ``GaussianHMM``); emission letters ``"m"`` and ``"c"``.

    Parameters
    ----------
    n_states : int
        Number of hidden states.
    covariance_type : {"diag", "full"}, default "diag"
        ``covars_`` holds variances ``(K, D)`` or covariance matrices ``(K, D, D)``.
    min_covar : float, default 1e-3
        Added to the variances after every EM M-step, so that no state
        collapses onto one point. (hmmlearn instead adds ``covars_prior=1e-2``
        divided by the state's weight; with ``min_covar=0`` and hmmlearn's
        ``covars_prior=0`` the M-steps agree.)
    ordered : bool or {"auto", "positive"}, default "auto"
        Bayesian fits: constrain the means of 1-D data to increase with the
        state index (no label switching); ``"auto"``: for one feature;
        ``"positive"``: increasing and positive (Stan's ``positive_ordered``).
    mean_prior : (loc, scale), optional
        Bayesian fits: ``Normal(loc, scale)`` prior of ``means_``, broadcast to
        ``(K, D)`` (e.g. ``([[3.0], [10.0]], 1.0)``); default the data's mean
        and twice its standard deviation.
    std_prior : float or array-like, optional
        Bayesian fits: scale of the ``HalfNormal`` prior of the standard
        deviations (``"full"``: with an ``LKJCholesky(D, 1)`` correlation);
        default twice the data's standard deviation.
    startprob_prior, transmat_prior, params, init_params
        As in :class:`HMM`.

    Examples
    --------
    >>> import numpy as np
    >>> from probmodels.hmm import GaussianHMM
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(0.0, 1.0, 50), rng.normal(4.0, 1.0, 50)])[:, None]
    >>> model = GaussianHMM(2).fit(X, seed=0, n_restarts=1)
    >>> np.sort(model.means_.ravel()).round(1).tolist()
    [0.1, 4.0]
    >>> states = model.predict(X)
    >>> bool(states[0] != states[-1])
    True
    """

    def __init__(
        self,
        n_states: int,
        covariance_type: str = "diag",
        *,
        min_covar: float = 1e-3,
        ordered: bool | str = "auto",
        mean_prior: tuple[Any, Any] | None = None,
        std_prior: Any = None,
        startprob_prior: Any = 1.0,
        transmat_prior: Any = 1.0,
        params: str | None = None,
        init_params: str | None = None,
    ) -> None:
        family = GaussianEmission(covariance_type, min_covar, ordered, mean_prior, std_prior)
        self._setup(n_states, family, startprob_prior, transmat_prior, params, init_params)


class CategoricalHMM(HMM):
    """HMM with categorical emissions, ``emissionprob_`` ``(K, n_symbols)`` (hmmlearn's ``CategoricalHMM``); letter ``"e"``.

    Parameters
    ----------
    n_states : int
        Number of hidden states.
    n_symbols : int, optional
        Number of symbols; default the largest symbol in the training data plus one.
    emissionprob_prior : float or array-like, default 1.0
        Dirichlet concentration of each state's symbol probabilities (EM uses it as hmmlearn does).
    startprob_prior, transmat_prior, params, init_params
        As in :class:`HMM`.
    """

    def __init__(
        self,
        n_states: int,
        n_symbols: int | None = None,
        *,
        emissionprob_prior: Any = 1.0,
        startprob_prior: Any = 1.0,
        transmat_prior: Any = 1.0,
        params: str | None = None,
        init_params: str | None = None,
    ) -> None:
        n_symbols = None if n_symbols is None else check_positive_int(n_symbols, "n_symbols")
        family = CategoricalEmission(n_symbols, emissionprob_prior)
        self._setup(n_states, family, startprob_prior, transmat_prior, params, init_params)


class PoissonHMM(HMM):
    """HMM with independent Poisson counts, ``lambdas_`` ``(K, D)`` (hmmlearn's ``PoissonHMM``); letter ``"l"``.

    Parameters
    ----------
    n_states : int
        Number of hidden states.
    rate_prior : (shape, rate), optional
        Bayesian fits: ``Gamma(shape, rate)`` prior of the rates, broadcast to
        ``(K, D)``; default ``Gamma(1, 1 / mean(X))``.
    startprob_prior, transmat_prior, params, init_params
        As in :class:`HMM`.
    """

    def __init__(
        self,
        n_states: int,
        *,
        rate_prior: tuple[Any, Any] | None = None,
        startprob_prior: Any = 1.0,
        transmat_prior: Any = 1.0,
        params: str | None = None,
        init_params: str | None = None,
    ) -> None:
        self._setup(n_states, PoissonEmission(rate_prior), startprob_prior, transmat_prior, params, init_params)


def select_n_states(
    X: Any,
    lengths: Any = None,
    *,
    k_range: Any = range(1, 6),
    methods: tuple[str, ...] = ("bic", "loo"),
    model: Callable[..., HMM] = GaussianHMM,
    model_kwargs: Mapping[str, Any] | None = None,
    em_kwargs: Mapping[str, Any] | None = None,
    bayes_method: str = "nuts",
    bayes_kwargs: Mapping[str, Any] | None = None,
) -> "pd.DataFrame":
    """Compare numbers of hidden states by BIC/AIC (EM fits), PSIS-LOO and log evidence (Bayesian fits).

    Parameters
    ----------
    X, lengths
        The data, as in :meth:`HMM.fit`.
    k_range : iterable of int, default range(1, 6)
        Numbers of states to try.
    methods : tuple of str, default ("bic", "loo")
        ``"bic"``, ``"aic"`` (an EM fit per ``K``), ``"loo"`` and
        ``"evidence"`` (one Bayesian fit per ``K`` serves both; LOO's unit is
        the sequence, so it needs several; the log evidence is estimated by
        bridge sampling after NUTS and by importance sampling after SVI, see
        :func:`~probmodels.diagnostics.log_evidence`).
    model : callable, default GaussianHMM
        ``model(n_states, **model_kwargs)`` builds each candidate.
    em_kwargs, bayes_kwargs : dict, optional
        Options of ``fit`` for the EM fits, and for the Bayesian fits (``method=bayes_method``).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``n_states``: ``log_likelihood``, ``n_parameters``, ``bic``,
        ``aic`` (lower is better), ``elpd_loo``, ``elpd_loo_se``, ``p_loo``
        (higher ``elpd_loo`` is better), ``max_pareto_k`` (above 0.7 the
        LOO estimate is unreliable), ``log_evidence`` and
        ``log_evidence_se`` (higher is better), as asked by ``methods``.

    Examples
    --------
    >>> import numpy as np
    >>> from probmodels.hmm import select_n_states
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(0.0, 1.0, 60), rng.normal(5.0, 1.0, 60)])[:, None]
    >>> table = select_n_states(X, k_range=range(1, 4), methods=("bic",), em_kwargs={"n_restarts": 1})
    >>> int(table["bic"].idxmin())
    2
    """
    import pandas as pd

    from ..diagnostics.arviz import loo
    from ..diagnostics.evidence import log_evidence

    unknown = set(methods) - {"bic", "aic", "loo", "evidence"}
    if unknown:
        raise ModelSpecError(f"methods {sorted(unknown)} are not available; use 'bic', 'aic', 'loo' and/or 'evidence'.")
    if bayes_method not in ("nuts", "svi"):
        raise ModelSpecError(f"bayes_method must be 'nuts' or 'svi', got {bayes_method!r}.")
    rows = []
    for k in k_range:
        row: dict[str, float] = {"n_states": k}
        if {"bic", "aic"} & set(methods):
            hmm = model(k, **(model_kwargs or {})).fit(X, lengths, **(em_kwargs or {}))
            row.update(log_likelihood=hmm.score(X, lengths), n_parameters=hmm.n_parameters)
            row.update({name: getattr(hmm, name)(X, lengths) for name in ("bic", "aic") if name in methods})
        if {"loo", "evidence"} & set(methods):
            hmm = model(k, **(model_kwargs or {})).fit(X, lengths, method=bayes_method, **(bayes_kwargs or {}))
        if "loo" in methods:
            result = loo(hmm.posterior_.to_arviz(), pointwise=True)
            row.update(elpd_loo=float(result.elpd_loo), elpd_loo_se=float(result.se), p_loo=float(result.p_loo),
                       max_pareto_k=float(np.max(result.pareto_k)))
        if "evidence" in methods:
            estimate = log_evidence(hmm.posterior_, method="bridge" if bayes_method == "nuts" else "importance")
            row.update(log_evidence=estimate.log_evidence, log_evidence_se=estimate.standard_error)
        rows.append(row)
    return pd.DataFrame(rows).set_index("n_states")


def _run_core(
    program: HMMProgram, args: tuple, method: str, n_restarts: int, seed: int, kwargs: dict[str, Any]
) -> Posterior:
    """Fit the Bayesian HMM with the core; ``"map"``: delta guides started at prior draws, the best of ``n_restarts``."""
    if method == "nuts":
        return fit_mcmc(program, *args, seed=seed, **kwargs)
    if method == "svi":
        return fit_svi(program, *args, seed=seed, **kwargs)
    if "guide" in kwargs:
        raise ModelSpecError("method='map' uses a delta guide; pass guide=... with method='svi' instead.")
    kwargs = {"num_samples": 1, **kwargs}  # the core draws num_samples copies from a delta guide it did not build
    fits = [
        fit_svi(program, *args, guide=AutoDelta(program, init_loc_fn=init_to_sample), seed=seed + r, **kwargs)
        for r in range(n_restarts)
    ]
    return min(fits, key=lambda fit: float(np.mean(fit.attrs["loss"][-10:])))


def _observed(values: torch.Tensor, data: SequenceData) -> torch.Tensor:
    """The observed steps of ``(N, T, ...)`` values, concatenated: ``(n_samples, ...)``."""
    return values.reshape((-1,) + values.shape[2:]) if data.lengths is None else values[data.mask]


def _check_letters(value: str | None, allowed: str, name: str) -> str:
    if value is None:
        return allowed
    if not isinstance(value, str) or not set(value) <= set(allowed):
        raise ModelSpecError(f"{name} must be a string of the letters {allowed!r} (hmmlearn's convention), got {value!r}.")
    return "".join(letter for letter in allowed if letter in value)
