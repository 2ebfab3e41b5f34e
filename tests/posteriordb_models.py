"""Pyro ports of the posteriordb reference posteriors, and their loaders.

The seven posteriors in ``../shared/reference/posteriordb`` are Stan models
with gold-standard reference draws. Each is ported here to a Pyro model that
follows the conventions the inference core relies on:

* every Stan parameter is a ``pyro.sample`` site with the Stan name and shape,
  its constraint carried by the distribution's support; improper or
  non-standard priors on ``ordered`` / ``positive_ordered`` / unbounded
  parameters are ``dist.ImproperUniform`` sites plus a ``pyro.factor`` with the
  log-prior, so densities are exactly proportional to Stan's;
* transformed parameters found in the reference draws are
  ``pyro.deterministic`` sites with the Stan name;
* the likelihood is one observed site per observation inside a
  ``pyro.plate`` at ``dim=-1`` wherever Stan's likelihood factorises;
* models use at most one plate (``max_plate_nesting = 1``) and vectorise
  under an outer ``pyro.plate("_draws", S, dim=-2)``.

Note that Pyro's default initialisation strategies call ``sample()``, which
``ImproperUniform`` does not support: initialise those models with
``init_to_value`` (and pass ``max_plate_nesting=1``).
"""

import functools
import json
import os
import pathlib
import re
import zipfile
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.distributions import constraints

__all__ = [
    "CASE_NAMES",
    "PosteriordbCase",
    "load_case",
    "load_data",
    "load_reference_draws",
    "reference_dir",
    "reference_latents",
    "requires_reference",
]

CASE_NAMES = (
    "eight_schools-eight_schools_noncentered",
    "sblrc-blr",
    "kidiq-kidscore_momiq",
    "arK-arK",
    "low_dim_gauss_mix-low_dim_gauss_mix",
    "hmm_example-hmm_example",
    "gp_pois_regr-gp_regr",
)


def reference_dir():
    """Locate the posteriordb reference folder.

    Returns
    -------
    pathlib.Path or None
        ``$PROBMODELS_REFERENCE_DIR`` if set, else
        ``<repo root>/../shared/reference/posteriordb``; None when the folder
        does not exist.
    """
    default = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "posteriordb"
    path = pathlib.Path(os.environ.get("PROBMODELS_REFERENCE_DIR", default))
    return path if path.is_dir() else None


requires_reference = pytest.mark.skipif(
    reference_dir() is None,
    reason=(
        "the posteriordb references in ../shared/reference/posteriordb are absent; "
        "set PROBMODELS_REFERENCE_DIR to the posteriordb folder to run these tests"
    ),
)


def _read_zipped_json(path):
    with zipfile.ZipFile(path) as archive:
        (member,) = archive.namelist()
        return json.loads(archive.read(member))


def load_data(name):
    """Load a posterior's data, keys as in the Stan ``data`` block.

    Parameters
    ----------
    name : str
        Posterior name, one of `CASE_NAMES`.

    Returns
    -------
    dict
        The raw JSON data.
    """
    return _read_zipped_json(reference_dir() / name / "data.json.zip")


def load_reference_draws(name):
    """Load a posterior's reference draws, one array per Stan parameter.

    Parameters
    ----------
    name : str
        Posterior name, one of `CASE_NAMES`.

    Returns
    -------
    dict of str to numpy.ndarray
        Keyed by Stan parameter name; each array is float64 with shape
        ``(chains, draws, *param_shape)``, Stan's 1-based indices made 0-based.
    """
    chains = _read_zipped_json(reference_dir() / name / "reference_draws.json.zip")
    columns = {}
    for key in chains[0]:
        param, index = re.fullmatch(r"(\w+)(?:\[([\d,]+)\])?", key).groups()
        position = tuple(int(i) - 1 for i in index.split(",")) if index else ()
        columns.setdefault(param, {})[position] = np.array([chain[key] for chain in chains], dtype=np.float64)
    draws = {}
    for param, entries in columns.items():
        shape = tuple(np.array(list(entries)).reshape(len(entries), -1).max(0) + 1)
        array = np.empty(next(iter(entries.values())).shape + shape)
        for position, values in entries.items():
            array[(...,) + position] = values
        draws[param] = array
    return draws


def reference_latents(name):
    """Reference draws of the model's latent ``pyro.sample`` sites.

    These equal the reference draws except for eight schools, whose sampled
    ``theta_trans`` is recovered from the reference ``theta``, ``mu`` and ``tau``
    (the deterministic ``theta`` is dropped).

    Parameters
    ----------
    name : str
        Posterior name, one of `CASE_NAMES`.

    Returns
    -------
    dict of str to numpy.ndarray
        As `load_reference_draws`, keyed by latent site name.
    """
    draws = load_reference_draws(name)
    if name == "eight_schools-eight_schools_noncentered":
        theta, mu, tau = draws.pop("theta"), draws["mu"], draws["tau"]
        draws["theta_trans"] = (theta - mu[..., None]) / tau[..., None]
    return draws


_f64 = functools.partial(torch.tensor, dtype=torch.float64)


def eight_schools_noncentered(y, sigma):
    """Eight schools, non-centred parametrisation.

    Parameters
    ----------
    y, sigma : torch.Tensor
        Estimated treatment effects and their standard errors, shape ``(J,)``.
    """
    mu = pyro.sample("mu", dist.Normal(_f64(0.0), _f64(5.0)))
    tau = pyro.sample("tau", dist.HalfCauchy(_f64(5.0)))
    with pyro.plate("schools", y.shape[-1], dim=-1):
        theta_trans = pyro.sample("theta_trans", dist.Normal(_f64(0.0), _f64(1.0)))
        theta = pyro.deterministic("theta", theta_trans * tau + mu)
        pyro.sample("y", dist.Normal(theta, sigma), obs=y)


def blr(X, y):
    """Bayesian linear regression with a half-normal noise scale.

    Parameters
    ----------
    X : torch.Tensor
        Design matrix, shape ``(N, D)``.
    y : torch.Tensor
        Responses, shape ``(N,)``.
    """
    beta = pyro.sample("beta", dist.Normal(_f64(0.0), _f64(10.0)).expand([X.shape[-1]]).to_event(1))
    sigma = pyro.sample("sigma", dist.HalfNormal(_f64(10.0)))
    with pyro.plate("data", y.shape[-1], dim=-1):
        pyro.sample("y", dist.Normal((X * beta).sum(-1), sigma), obs=y)


def kidscore_momiq(kid_score, mom_iq):
    """Kid's test score on mother's IQ; flat prior on ``beta`` as in Stan.

    Parameters
    ----------
    kid_score, mom_iq : torch.Tensor
        Responses and predictor, shape ``(N,)``.
    """
    beta = pyro.sample("beta", dist.ImproperUniform(constraints.real_vector, (), (2,)))
    sigma = pyro.sample("sigma", dist.HalfCauchy(_f64(2.5)))
    with pyro.plate("data", kid_score.shape[-1], dim=-1):
        pyro.sample("kid_score", dist.Normal(beta[..., 0] + beta[..., 1] * mom_iq, sigma), obs=kid_score)


def ark(y, y_lags):
    """Autoregressive model of order K.

    Parameters
    ----------
    y : torch.Tensor
        The modelled observations ``y[K+1..T]`` (Stan indices), shape ``(T-K,)``.
    y_lags : torch.Tensor
        Their lags, shape ``(T-K, K)``: ``y_lags[i, k-1]`` is ``y[i]``'s lag ``k``.
    """
    alpha = pyro.sample("alpha", dist.Normal(_f64(0.0), _f64(10.0)))
    beta = pyro.sample("beta", dist.Normal(_f64(0.0), _f64(10.0)).expand([y_lags.shape[-1]]).to_event(1))
    sigma = pyro.sample("sigma", dist.HalfCauchy(_f64(2.5)))
    with pyro.plate("data", y.shape[-1], dim=-1):
        pyro.sample("y", dist.Normal(alpha + (y_lags * beta).sum(-1), sigma), obs=y)


def low_dim_gauss_mix(y):
    """Two-component Gaussian mixture with ordered means.

    Stan's ``log_mix(theta, ...)`` puts weight ``theta`` on the first component.

    Parameters
    ----------
    y : torch.Tensor
        Observations, shape ``(N,)``.
    """
    mu = pyro.sample("mu", dist.ImproperUniform(constraints.ordered_vector, (), (2,)))
    pyro.factor("mu_prior", dist.Normal(_f64(0.0), _f64(2.0)).log_prob(mu).sum(-1))
    sigma = pyro.sample("sigma", dist.HalfNormal(_f64(2.0)).expand([2]).to_event(1))
    theta = pyro.sample("theta", dist.Beta(_f64(5.0), _f64(5.0)))
    weights = dist.Categorical(probs=torch.stack([theta, 1 - theta], -1))
    with pyro.plate("data", y.shape[-1], dim=-1):
        pyro.sample("y", dist.MixtureSameFamily(weights, dist.Normal(mu, sigma)), obs=y)


def hmm_example(y):
    """Two-state HMM with unit-variance Gaussian emissions.

    The states are marginalised by the forward algorithm, so the likelihood
    is one ``pyro.factor`` rather than one term per observation. As in Stan,
    the first state has no initial distribution and ``mu``'s priors are
    ``target +=`` terms on a ``positive_ordered`` parameter.

    Parameters
    ----------
    y : torch.Tensor
        Observations, shape ``(N,)``.
    """
    theta1 = pyro.sample("theta1", dist.Dirichlet(torch.ones(2, dtype=torch.float64)))
    theta2 = pyro.sample("theta2", dist.Dirichlet(torch.ones(2, dtype=torch.float64)))
    mu = pyro.sample("mu", dist.ImproperUniform(constraints.positive_ordered_vector, (), (2,)))
    pyro.factor("mu_prior", dist.Normal(_f64([3.0, 10.0]), 1.0).log_prob(mu).sum(-1))
    log_theta = torch.stack([theta1, theta2], -2).log()  # [..., j, k]: from state j to state k
    log_emission = dist.Normal(mu.unsqueeze(-2), 1.0).log_prob(y.unsqueeze(-1))  # [..., t, k]
    gamma = log_emission[..., 0, :]
    for t in range(1, y.shape[-1]):
        gamma = torch.logsumexp(gamma.unsqueeze(-1) + log_theta, -2) + log_emission[..., t, :]
    pyro.factor("y", torch.logsumexp(gamma, -1))


def gp_regr(x, y):
    """Gaussian-process regression with a squared-exponential kernel.

    The likelihood is one ``MultivariateNormal`` over all points. As in Stan,
    ``sigma`` (not ``sigma**2``) is added to the covariance diagonal.

    Parameters
    ----------
    x, y : torch.Tensor
        Inputs and outputs, shape ``(N,)``.
    """
    rho = pyro.sample("rho", dist.Gamma(_f64(25.0), _f64(4.0)))
    alpha = pyro.sample("alpha", dist.HalfNormal(_f64(2.0)))
    sigma = pyro.sample("sigma", dist.HalfNormal(_f64(1.0)))
    sq_dist = (x.unsqueeze(-1) - x.unsqueeze(-2)) ** 2
    rho, alpha, sigma = (v[..., None, None] for v in (rho, alpha, sigma))
    cov = alpha**2 * torch.exp(-0.5 * sq_dist / rho**2) + sigma * torch.eye(x.shape[-1], dtype=torch.float64)
    pyro.sample("y", dist.MultivariateNormal(torch.zeros_like(y), covariance_matrix=cov), obs=y)


def _ark_data(data):
    y, K = _f64(data["y"]), data["K"]
    y_lags = torch.stack([y[K - k : len(y) - k] for k in range(1, K + 1)], -1)
    return {"y": y[K:], "y_lags": y_lags}


_PORTS = {
    "eight_schools-eight_schools_noncentered": (
        eight_schools_noncentered,
        lambda d: {"y": _f64(d["y"]), "sigma": _f64(d["sigma"])},
    ),
    "sblrc-blr": (blr, lambda d: {"X": _f64(d["X"]), "y": _f64(d["y"])}),
    "kidiq-kidscore_momiq": (
        kidscore_momiq,
        lambda d: {"kid_score": _f64(d["kid_score"]), "mom_iq": _f64(d["mom_iq"])},
    ),
    "arK-arK": (ark, _ark_data),
    "low_dim_gauss_mix-low_dim_gauss_mix": (low_dim_gauss_mix, lambda d: {"y": _f64(d["y"])}),
    "hmm_example-hmm_example": (hmm_example, lambda d: {"y": _f64(d["y"])}),
    "gp_pois_regr-gp_regr": (gp_regr, lambda d: {"x": _f64(d["x"]), "y": _f64(d["y"])}),
}


@dataclass(frozen=True)
class PosteriordbCase:
    """A posteriordb posterior ported to Pyro.

    Attributes
    ----------
    name : str
        Posterior name, e.g. ``"eight_schools-eight_schools_noncentered"``.
    model : callable
        The Pyro model.
    args : tuple
        Positional arguments to call `model` with.
    kwargs : dict
        Keyword arguments to call `model` with: float64 data tensors.
    params : tuple of str
        The Stan parameter names in the reference draws.
    """

    name: str
    model: Callable
    args: tuple
    kwargs: dict
    params: tuple


def load_case(name):
    """Build the Pyro port of a posteriordb posterior with its data.

    Parameters
    ----------
    name : str
        Posterior name, one of `CASE_NAMES`.

    Returns
    -------
    PosteriordbCase
    """
    model, build_kwargs = _PORTS[name]
    posterior = json.loads((reference_dir() / name / "posterior.json").read_text())
    return PosteriordbCase(name, model, (), build_kwargs(load_data(name)), tuple(posterior["dimensions"]))
