"""Emission families of the HMM model layer, and the Bayesian HMM built from their priors.

A family has named per-state parameters (each with its hmmlearn ``params``
letter), a factory from parameters to a torch distribution, EM starting values
and M-step (from :mod:`~probmodels.hmm.em`), and priors, which
:class:`HMMProgram` assembles into a Pyro program. Observations are a padded
float tensor ``(N, T, D)`` (symbols and counts as integer-valued floats); a
parameter is ``(..., K, *shape)`` with any leading batch dims (draws, chains).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from torch.distributions import Distribution, biject_to

from ..exceptions import DataError, ModelSpecError, ShapeError
from . import ops
from .em import (
    ParamMap, Params, categorical_m_step, dirichlet_log_prior, gaussian_m_step, kmeans_plus_plus, log_terms,
    numerical_m_step, poisson_m_step,
)
from .linear_emission import LinearEmission

__all__ = [
    "Emission", "GaussianEmission", "CategoricalEmission", "PoissonEmission", "CustomEmission", "HMMProgram",
    "OrderedNormal", "prior_tensor",
]

COVARIANCE_TYPES = ("diag", "full")


class Emission(ABC):
    """Base of the emission families: ``letters`` maps each parameter to its letter, ``param_ndim`` to
    the number of dims of one state's value; ``n_features`` is learned from the first data seen."""

    letters: dict[str, str]
    param_ndim: dict[str, int]

    def __init__(self) -> None:
        self.n_features: int | None = None

    @abstractmethod
    def distribution(self, params: ParamMap) -> Distribution:
        """The emission distribution, batch shape ``(..., K)``, of parameters ``(..., K, *shape)``."""

    @abstractmethod
    def initialize(self, X: torch.Tensor, n_states: int, generator: torch.Generator) -> Params:
        """Random starting values of every parameter for EM, from the data ``X`` ``(n, D)``."""

    @abstractmethod
    def m_step(self, x: torch.Tensor, gamma: torch.Tensor, params: ParamMap, learn: str) -> Params:
        """EM update of the parameters whose letter is in ``learn``, given state marginals ``gamma`` ``(N, T, K)``."""

    @abstractmethod
    def sample_sites(self, n_states: int, learn: str, like: torch.Tensor) -> Params:
        """Pyro sample statements of the priors of the learned parameters (sites may be reparametrised)."""

    @abstractmethod
    def param_shape(self, name: str, n_states: int) -> tuple[int, ...]:
        """Shape of parameter ``name``."""

    def params_from_sites(self, sites: ParamMap) -> Params:
        """Parameters from the values of the sites of :meth:`sample_sites` (identity by default)."""
        return {name: value for name, value in sites.items() if name in self.letters}

    def configure_priors(self, X: torch.Tensor) -> None:
        """Set data-dependent prior defaults from the training data ``X`` ``(n, D)``."""

    def em_log_prior(self, params: ParamMap, learn: str) -> float:
        """The log prior that the family's EM M-step maximises with the likelihood (0: maximum likelihood)."""
        return 0.0

    def reset(self) -> None:
        """Forget what was learned from data (before a new fit)."""
        self.n_features = None

    def n_free(self, name: str, n_states: int) -> int:
        """Number of free scalars of parameter ``name``."""
        return math.prod(self.param_shape(name, n_states))

    def check_X(self, X: torch.Tensor) -> torch.Tensor:
        """Validate finite ``(n, D)`` data for this family; learn ``D`` on the first call."""
        if self.n_features is None:
            self.n_features = X.shape[1]
        elif X.shape[1] != self.n_features:
            raise ShapeError(
                f"X has {X.shape[1]} feature(s) (columns) but the model has n_features={self.n_features}; "
                "pass data with the columns the model was fitted on."
            )
        return X

    def check_params(self, params: ParamMap, n_states: int) -> None:
        """Raise :class:`ShapeError` when a given parameter has the wrong shape (sizes not yet known match any)."""
        for name in [letter for letter in self.letters if letter in params]:
            shape, expected = tuple(params[name].shape), self.param_shape(name, n_states)
            if len(shape) != len(expected) or any(e not in (None, s) for e, s in zip(expected, shape)):
                if len(shape) == len(expected) and shape[0] == n_states and self.n_features is not None:
                    raise ShapeError(
                        f"X has {self.n_features} feature(s) but {name}_ has shape {shape} (expected {expected} for "
                        f"{n_states} states and {self.n_features} feature(s)); pass X with the columns {name}_ was set "
                        f"for, or set {name}_ to match X."
                    )
                raise ShapeError(f"{name}_ must have shape {expected} for {n_states} states, got {shape}; set it to that shape.")

    def linear_emission(self, params: ParamMap, x: torch.Tensor) -> LinearEmission | None:
        """:meth:`log_emit` as a :class:`~probmodels.hmm.linear_emission.LinearEmission` of ``x`` ``(N, T, D)``
        when it is linear in a few features of ``x`` (one parameter set, no gradient needed); None otherwise."""
        return None

    def log_emit(self, params: ParamMap, x: torch.Tensor) -> torch.Tensor:
        """``log p(x_nt | z = k)``: ``(..., N, T, K)`` for parameters ``(..., K, *shape)``."""
        shifted = {name: params[name].unsqueeze(-2 - self.param_ndim[name]) for name in self.letters if name in params}
        emission = self.distribution(shifted)
        values = x.unsqueeze(-2) if emission.event_shape else x[..., 0].unsqueeze(-1)
        return emission.log_prob(values)


def _check_integer_symbols(X: torch.Tensor, what: str) -> None:
    bad = (X < 0) | (X != X.round())
    if bool(bad.any()):
        rows = bad.any(-1).nonzero()[:5, 0].tolist()
        raise DataError(f"X must hold {what} (non-negative integers); rows {rows} hold {X[rows].flatten().tolist()}.")


class GaussianEmission(Emission):
    """Gaussian emissions with a diagonal or full covariance per state.

    Bayesian priors: means ``Normal(loc, scale)`` (ordered along the states for
    1-D data by default, to remove label switching), per-feature standard
    deviations ``HalfNormal(std_scale)`` and, for full covariances, an
    ``LKJCholesky(D, 1)`` correlation factor.
    """

    letters = {"means": "m", "covars": "c"}

    def __init__(
        self, covariance_type: str, min_covar: float, ordered: bool | str, mean_prior: tuple[Any, Any] | None, std_prior: Any
    ) -> None:
        super().__init__()
        if covariance_type not in COVARIANCE_TYPES:
            raise ModelSpecError(f"covariance_type must be one of {COVARIANCE_TYPES}, got {covariance_type!r}.")
        if ordered not in (True, False, "auto", "positive"):
            raise ModelSpecError(f"ordered must be True, False, 'auto' or 'positive', got {ordered!r}.")
        if not (isinstance(min_covar, (int, float)) and min_covar >= 0):
            raise ModelSpecError(f"min_covar must be a number >= 0, got {min_covar!r}.")
        self.covariance_type = covariance_type
        self.min_covar = float(min_covar)
        self.ordered = ordered
        self.mean_prior = mean_prior
        self.std_prior = std_prior
        self.param_ndim = {"means": 1, "covars": 1 if covariance_type == "diag" else 2}

    @property
    def is_ordered(self) -> bool:
        """Whether the Bayesian model orders the means (``"auto"``: for 1-D data)."""
        return self.n_features == 1 if self.ordered == "auto" else bool(self.ordered)

    def param_shape(self, name: str, n_states: int) -> tuple[int, ...]:
        shape = (n_states, self.n_features)
        return shape + (self.n_features,) if name == "covars" and self.covariance_type == "full" else shape

    def n_free(self, name: str, n_states: int) -> int:
        d = self.n_features
        return n_states * d * (d + 1) // 2 if name == "covars" and self.covariance_type == "full" else n_states * d

    def check_X(self, X: torch.Tensor) -> torch.Tensor:
        X = super().check_X(X)
        if self.ordered not in ("auto", False) and self.n_features != 1:
            raise ModelSpecError(
                f"ordered={self.ordered!r} orders 1-D means, but X has {self.n_features} features; use ordered=False."
            )
        return X

    def check_params(self, params: ParamMap, n_states: int) -> None:
        super().check_params(params, n_states)
        covars = params.get("covars", torch.ones(()))
        full = self.covariance_type == "full" and covars.dim() > 0
        if not bool((torch.linalg.cholesky_ex(covars).info == 0).all() if full else (covars > 0).all()):
            raise ModelSpecError(f"covars_ must be positive ({self.covariance_type} covariances), got {covars.tolist()}.")

    def distribution(self, params: ParamMap) -> Distribution:
        if self.covariance_type == "diag":
            return dist.Normal(params["means"], params["covars"].sqrt()).to_event(1)
        return dist.MultivariateNormal(params["means"], covariance_matrix=params["covars"])

    def linear_emission(self, params: ParamMap, x: torch.Tensor) -> LinearEmission | None:
        """Diagonal covariances: ``[y**2, y] @ [-1 / (2 covars), m / covars] + const`` (see :meth:`log_emit`)."""
        terms = self._quadratic_form(params, x)
        return None if terms is None or terms.weights.dim() != 2 else terms

    def log_emit(self, params: ParamMap, x: torch.Tensor) -> torch.Tensor:
        """``log p(x_nt | z = k)`` ``(..., N, T, K)``; diagonal covariances without gradients by one matrix product.

        With ``y = x - c`` and ``m = means - c`` (``c`` the data mean, which
        keeps the expansion free of cancellation for data far from 0) the
        density is ``[y**2, y] @ [-1 / (2 covars), m / covars] + const``: one
        pass over the ``(N, T, K)`` output instead of the five of a broadcast
        ``Normal.log_prob``.
        """
        terms = self._quadratic_form(params, x)
        if terms is None:
            return super().log_emit(params, x)
        if terms.weights.dim() == 2:  # one parameter set: a single fused multiply-add pass over the output
            return terms.log_emit()
        return torch.matmul(terms.features, terms.weights).add_(terms.bias.unsqueeze(-2))

    def _quadratic_form(self, params: ParamMap, x: torch.Tensor) -> LinearEmission | None:
        """The features ``[y**2, y]``, weights ``(..., 2D, K)`` and constants ``(..., K)`` of :meth:`log_emit`,
        or None for full covariances, missing parameters or when a gradient is needed."""
        means, covars = params.get("means"), params.get("covars")
        needs_grad = torch.is_grad_enabled() and any(p is not None and p.requires_grad for p in (means, covars))
        if self.covariance_type != "diag" or means is None or covars is None or needs_grad:
            return None
        dims = x.shape[-1]
        centre = x.reshape(-1, dims).mean(0)
        features = x.new_empty(x.shape[:-1] + (2 * dims,))  # [y**2, y], written in place
        y = torch.sub(x, centre, out=features[..., dims:])
        torch.mul(y, y, out=features[..., :dims])
        m, precision = means - centre, 1 / covars
        weights = torch.cat([-0.5 * precision, m * precision], -1).transpose(-1, -2)  # (..., 2D, K)
        const = -0.5 * (m**2 * precision + torch.log(2 * math.pi * covars)).sum(-1)  # (..., K)
        return LinearEmission(features, weights, const)

    def initialize(self, X: torch.Tensor, n_states: int, generator: torch.Generator) -> Params:
        means = kmeans_plus_plus(X, n_states, generator)
        if self.covariance_type == "diag":
            covars = (X.var(0, correction=0) + self.min_covar).expand(n_states, -1)
        else:
            eye = torch.eye(X.shape[1], dtype=X.dtype, device=X.device)
            covars = (torch.atleast_2d(torch.cov(X.T, correction=0)) + self.min_covar * eye).expand(n_states, -1, -1)
        return {"means": means, "covars": covars.clone()}

    def m_step(self, x: torch.Tensor, gamma: torch.Tensor, params: ParamMap, learn: str) -> Params:
        means, covars = gaussian_m_step(
            x, gamma, params["means"], params["covars"], learn_means="m" in learn, learn_covars="c" in learn,
            covariance_type=self.covariance_type, min_covar=self.min_covar,
        )
        return {"means": means, "covars": covars}

    def configure_priors(self, X: torch.Tensor) -> None:
        sd = X.std(0, correction=0)
        self._data_loc = X.mean(0)
        self._data_scale = torch.where(sd > 0, sd, torch.ones_like(sd))

    def sample_sites(self, n_states: int, learn: str, like: torch.Tensor) -> Params:
        shape = (n_states, self.n_features)
        loc, scale = self.mean_prior if self.mean_prior is not None else (self._data_loc, 2 * self._data_scale)
        std_scale = self.std_prior if self.std_prior is not None else 2 * self._data_scale
        named = ((loc, "mean_prior loc"), (scale, "mean_prior scale"), (std_scale, "std_prior"))
        loc, scale, std_scale = (prior_tensor(value, shape, name, like) for value, name in named)
        sites = {}
        if "m" in learn:
            if self.is_ordered:
                prior = OrderedNormal(loc[:, 0], scale[:, 0], positive=self.ordered == "positive")
                sites["means"] = pyro.sample("means", prior)
            else:
                sites["means"] = pyro.sample("means", dist.Normal(loc, scale).to_event(2))
        if "c" in learn:
            sites["stds"] = pyro.sample("stds", dist.HalfNormal(std_scale).to_event(2))
            if self.covariance_type == "full":
                lkj = dist.LKJCholesky(self.n_features, torch.ones((), dtype=like.dtype, device=like.device))
                sites["corr_cholesky"] = pyro.sample("corr_cholesky", lkj.expand((n_states,)).to_event(1))
        return sites

    def params_from_sites(self, sites: ParamMap) -> Params:
        params = {}
        if "means" in sites:
            params["means"] = sites["means"].unsqueeze(-1) if self.is_ordered else sites["means"]
        if "stds" in sites:
            stds = sites["stds"]
            if self.covariance_type == "diag":
                params["covars"] = stds**2
            else:
                tril = stds.unsqueeze(-1) * sites["corr_cholesky"]
                params["covars"] = tril @ tril.mT
        return params


class OrderedNormal(dist.TorchDistribution):
    """Independent ``Normal(loc, scale)`` restricted to increasing (optionally positive) vectors, unnormalised.

    The prior of ordered state means (Stan's ``ordered`` / ``positive_ordered``
    parameter with normal priors). :meth:`sample` sorts normal draws (absolute
    values when positive): they lie in the support and are exact draws when
    all locations and scales are equal; otherwise they serve as starting values.
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}

    def __init__(
        self, loc: torch.Tensor, scale: torch.Tensor, positive: bool = False, validate_args: bool | None = None
    ) -> None:
        self.loc, self.scale, self.positive = loc, scale, positive
        super().__init__(loc.shape[:-1], loc.shape[-1:], validate_args=validate_args)

    @property
    def support(self) -> constraints.Constraint:
        return constraints.positive_ordered_vector if self.positive else constraints.ordered_vector

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return dist.Normal(self.loc, self.scale).log_prob(value).sum(-1)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        shape = sample_shape + self.loc.shape
        with torch.no_grad():
            draws = torch.normal(self.loc.expand(shape), self.scale.expand(shape))
        return (draws.abs() if self.positive else draws).sort(-1).values


def prior_tensor(value: Any, shape: tuple[int, ...], name: str, like: torch.Tensor) -> torch.Tensor:
    """A prior's parameter as a tensor like ``like``, broadcast to ``shape`` (or a :class:`ShapeError` naming it)."""
    tensor = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    try:
        return tensor.expand(shape)
    except RuntimeError:
        raise ShapeError(f"{name} has shape {tuple(tensor.shape)}, which does not broadcast to {shape}.") from None


class CategoricalEmission(Emission):
    """Categorical emissions over ``n_symbols`` symbols; Bayesian prior ``Dirichlet(emissionprob_prior)`` per state."""

    letters = {"emissionprob": "e"}
    param_ndim = {"emissionprob": 1}

    def __init__(self, n_symbols: int | None, emissionprob_prior: Any) -> None:
        super().__init__()
        self.given_n_symbols = n_symbols
        self.n_symbols = n_symbols
        self.emissionprob_prior = emissionprob_prior

    def reset(self) -> None:
        super().reset()
        self.n_symbols = self.given_n_symbols

    def param_shape(self, name: str, n_states: int) -> tuple[int, ...]:
        return (n_states, self.n_symbols)

    def n_free(self, name: str, n_states: int) -> int:
        return n_states * (self.n_symbols - 1)

    def check_X(self, X: torch.Tensor) -> torch.Tensor:
        if X.shape[1] != 1:
            raise ShapeError(f"a CategoricalHMM takes one column of symbols, X of shape (n, 1); got shape {tuple(X.shape)}.")
        _check_integer_symbols(X, "symbols")
        self.n_features = 1
        largest = int(X.max())
        if self.n_symbols is None:
            self.n_symbols = largest + 1
        elif largest >= self.n_symbols:
            rows = (X[:, 0] >= self.n_symbols).nonzero()[:5, 0].tolist()
            raise DataError(
                f"X holds symbol {largest} (rows {rows}) but n_symbols={self.n_symbols}: symbols must lie in "
                f"[0, {self.n_symbols - 1}]. Raise n_symbols or recode the symbols."
            )
        return X

    def check_params(self, params: ParamMap, n_states: int) -> None:
        super().check_params(params, n_states)
        if "emissionprob" in params:
            ops.check_normalised(params["emissionprob"], "emissionprob_")

    def distribution(self, params: ParamMap) -> Distribution:
        return dist.Categorical(logits=params["emissionprob"].log())

    def initialize(self, X: torch.Tensor, n_states: int, generator: torch.Generator) -> Params:
        raw = torch.rand((n_states, self.n_symbols), generator=generator, dtype=X.dtype, device=X.device)
        return {"emissionprob": raw / raw.sum(-1, keepdim=True)}

    def m_step(self, x: torch.Tensor, gamma: torch.Tensor, params: ParamMap, learn: str) -> Params:
        if "e" not in learn:
            return {}
        return {"emissionprob": categorical_m_step(x, gamma, params["emissionprob"], self.emissionprob_prior)}

    def em_log_prior(self, params: ParamMap, learn: str) -> float:
        probs = params["emissionprob"]
        prior = prior_tensor(self.emissionprob_prior, probs.shape, "emissionprob_prior", probs)
        return float(dirichlet_log_prior(probs, prior)) * ("e" in learn)

    def sample_sites(self, n_states: int, learn: str, like: torch.Tensor) -> Params:
        if "e" not in learn:
            return {}
        conc = prior_tensor(self.emissionprob_prior, (n_states, self.n_symbols), "emissionprob_prior", like)
        return {"emissionprob": pyro.sample("emissionprob", dist.Dirichlet(conc).to_event(1))}


class PoissonEmission(Emission):
    """Independent Poisson counts per feature; Bayesian prior ``Gamma(shape, rate)`` on each rate.

    The default prior is ``Gamma(1, 1 / mean(X))``: an exponential with the data's mean.
    """

    letters = {"lambdas": "l"}
    param_ndim = {"lambdas": 1}

    def __init__(self, rate_prior: tuple[Any, Any] | None) -> None:
        super().__init__()
        self.rate_prior = rate_prior

    def param_shape(self, name: str, n_states: int) -> tuple[int, ...]:
        return (n_states, self.n_features)

    def check_X(self, X: torch.Tensor) -> torch.Tensor:
        _check_integer_symbols(X, "counts")
        return super().check_X(X)

    def check_params(self, params: ParamMap, n_states: int) -> None:
        super().check_params(params, n_states)
        if not bool((params.get("lambdas", torch.zeros(())) >= 0).all()):
            raise ModelSpecError(f"lambdas_ must be non-negative, got {params['lambdas'].tolist()}.")

    def distribution(self, params: ParamMap) -> Distribution:
        return dist.Poisson(params["lambdas"]).to_event(1)

    def initialize(self, X: torch.Tensor, n_states: int, generator: torch.Generator) -> Params:
        return {"lambdas": kmeans_plus_plus(X, n_states, generator) + 0.1 * X.mean(0) + 1e-3}

    def m_step(self, x: torch.Tensor, gamma: torch.Tensor, params: ParamMap, learn: str) -> Params:
        return {"lambdas": poisson_m_step(x, gamma, params["lambdas"])} if "l" in learn else {}

    def configure_priors(self, X: torch.Tensor) -> None:
        mean = X.mean(0)
        self._data_rate = 1 / torch.where(mean > 0, mean, torch.ones_like(mean))

    def sample_sites(self, n_states: int, learn: str, like: torch.Tensor) -> Params:
        if "l" not in learn:
            return {}
        shape, rate = self.rate_prior if self.rate_prior is not None else (1.0, self._data_rate)
        shape, rate = (prior_tensor(v, (n_states, self.n_features), "rate_prior", like) for v in (shape, rate))
        return {"lambdas": pyro.sample("lambdas", dist.Gamma(shape, rate).to_event(2))}


class CustomEmission(Emission):
    """Emissions from a user's factory ``params -> Distribution``, with one prior per parameter.

    Each prior is the distribution of ONE state's value of that parameter;
    its support gives the parameter's constraint. The EM M-step has no closed
    form: it maximises the expected complete log-likelihood numerically
    (L-BFGS in unconstrained space, started at the current values, kept only
    if it improves), which keeps EM monotone (generalised EM).
    """

    def __init__(self, factory: Callable[[ParamMap], Distribution], priors: Mapping[str, Distribution]) -> None:
        super().__init__()
        if not callable(factory):
            raise TypeError(f"emission must be a callable params -> torch Distribution, got {type(factory).__name__}.")
        if not priors or not all(isinstance(p, Distribution) for p in priors.values()):
            raise ModelSpecError(
                "priors must map each emission parameter name to a torch/Pyro Distribution of one state's value, "
                "e.g. priors={'rate': dist.Gamma(2.0, 1.0)}."
            )
        self.factory = factory
        self.priors = dict(priors)
        self.letters = {name: "e" for name in priors}
        self.param_ndim = {name: len(p.batch_shape + p.event_shape) for name, p in priors.items()}

    def param_shape(self, name: str, n_states: int) -> tuple[int, ...]:
        prior = self.priors[name]
        return (n_states,) + tuple(prior.batch_shape + prior.event_shape)

    def n_free(self, name: str, n_states: int) -> int:
        prior = self.priors[name]
        shape = prior.batch_shape + prior.event_shape
        return n_states * math.prod(biject_to(prior.support).inverse_shape(shape))

    def check_X(self, X: torch.Tensor) -> torch.Tensor:
        X = super().check_X(X)
        with torch.random.fork_rng(devices=[]):
            probe = self.distribution({name: p.sample((1,)) for name, p in self.priors.items()})
        if not probe.event_shape and X.shape[1] != 1:
            raise ShapeError(
                f"the emission distribution is univariate (event_shape ()) but X has {X.shape[1]} columns; "
                "pass X of shape (n, 1)."
            )
        return X

    def distribution(self, params: ParamMap) -> Distribution:
        return self.factory(params)

    def initialize(self, X: torch.Tensor, n_states: int, generator: torch.Generator) -> Params:
        seed = int(torch.randint(2**62, (), generator=generator, device=generator.device))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return {name: p.sample((n_states,)).to(X) for name, p in self.priors.items()}

    def m_step(self, x: torch.Tensor, gamma: torch.Tensor, params: ParamMap, learn: str) -> Params:
        if "e" not in learn:
            return {}
        transforms = {name: biject_to(p.support) for name, p in self.priors.items()}
        return numerical_m_step(lambda values: self.log_emit(values, x), gamma, params, transforms)

    def sample_sites(self, n_states: int, learn: str, like: torch.Tensor) -> Params:
        if "e" not in learn:
            return {}
        return {
            name: pyro.sample(name, p.expand((n_states,) + p.batch_shape).to_event(1 + len(p.batch_shape)))
            for name, p in self.priors.items()
        }


@dataclass(eq=False)
class HMMProgram:
    """A Bayesian HMM as a Pyro program for the inference core.

    ``startprob ~ Dirichlet(startprob_prior)``, each row of ``transmat`` ``~
    Dirichlet(transmat_prior)``, emission parameters from the family's
    priors; the states are summed out by :func:`ops.log_likelihood` and each
    sequence's log-likelihood is one ``pyro.factor`` ``"y"`` in the plate
    ``"sequences"`` (declared in :attr:`observed`, so it is the pointwise
    log-likelihood of LOO). Parameters whose letter is not in ``learn`` are
    held at their values in ``fixed``. Call it as ``program(x, lengths)`` with
    the padded ``x`` ``(N, T, D)`` and ``lengths`` ``(N,)`` or None, as
    :meth:`~probmodels.hmm.HMM.pyro_model` returns them.
    """

    observed: ClassVar[tuple[str, ...]] = ("y",)
    max_plate_nesting: ClassVar[int] = 1
    family: Emission
    n_states: int
    learn: str
    fixed: Mapping[str, torch.Tensor]
    startprob_prior: Any
    transmat_prior: Any

    def __call__(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> None:
        k, sites = self.n_states, {}
        if "s" in self.learn:
            conc = prior_tensor(self.startprob_prior, (k,), "startprob_prior", x)
            sites["startprob"] = pyro.sample("startprob", dist.Dirichlet(conc))
        if "t" in self.learn:
            conc = prior_tensor(self.transmat_prior, (k, k), "transmat_prior", x)
            sites["transmat"] = pyro.sample("transmat", dist.Dirichlet(conc).to_event(1))
        sites.update(self.family.sample_sites(k, self.learn, x))
        params = self.params_from_sites(sites)
        mask = None if lengths is None else torch.arange(x.shape[1], device=x.device) < lengths.unsqueeze(-1)
        log_init, log_trans, log_emit = log_terms(self.family, params, x, mask)
        with pyro.plate("sequences", x.shape[0], dim=-1):
            # "auto" takes the scaled recursion with the forward-backward gradient when one is needed.
            pyro.factor("y", ops.log_likelihood(log_init, log_trans, log_emit, lengths, validate=False))

    def params_from_sites(self, sites: ParamMap) -> Params:
        """All parameters (fixed ones included) from latent site values with any leading batch dims."""
        params = dict(self.fixed)
        params.update({name: sites[name] for name in ("startprob", "transmat") if name in sites})
        params.update(self.family.params_from_sites(sites))
        return params
