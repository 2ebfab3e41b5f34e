"""Checks of the posteriordb Pyro ports against Stan's reference draws.

The decisive test is a Stein-identity check: at draws from a density p on an
unconstrained space, the score s(u) = grad log p(u) satisfies E[s] = 0 and
E[s (u - E u)^T] = -I. The reference draws come from Stan's posterior, so any
port whose density is not proportional to Stan's (a wrong prior scale, a
half-normal for a half-Cauchy, a mis-indexed lag) breaks the identities.
"""

import json

import numpy as np
import pyro
import pytest
import torch
import pyro.distributions as dist
from pyro import poutine
from pyro.infer.autoguide.initialization import init_to_value
from pyro.infer.mcmc.util import initialize_model
from pyro.poutine.util import site_is_subsample
from scipy import stats

from posteriordb_models import (
    CASE_NAMES,
    load_case,
    load_reference_draws,
    reference_dir,
    reference_latents,
    requires_reference,
)

pytestmark = requires_reference

FAMILYWISE_FALSE_ALARM = 1e-3
CHUNK = 2500  # draws per vectorised evaluation, to bound memory
FACTOR_LIKELIHOOD = {"hmm_example-hmm_example", "gp_pois_regr-gp_regr"}


def stein_z_scores(score, u, n_eff):
    """z-scores of the two Stein identities, one per coordinate and identity.

    Parameters
    ----------
    score : numpy.ndarray
        ``grad_u log p(u)`` at the draws, shape ``(n, d)``.
    u : numpy.ndarray
        The draws in unconstrained space, shape ``(n, d)``.
    n_eff : float
        Effective number of independent draws used for the standard errors.

    Returns
    -------
    numpy.ndarray
        Shape ``(2, d)``: row 0 tests ``E[s_k] = 0``, row 1 tests
        ``E[s_k (u_k - mean u_k)] = -1``; each is the deviation of the sample
        mean divided by its standard error ``sd / sqrt(n_eff)``.
    """
    statistics = np.stack([score, score * (u - u.mean(0)) + 1.0])
    return statistics.mean(1) / (statistics.std(1, ddof=1) / np.sqrt(n_eff))


def stein_threshold(n_tests):
    """Two-sided Bonferroni |z| threshold at family-wise rate `FAMILYWISE_FALSE_ALARM`."""
    return stats.norm.isf(FAMILYWISE_FALSE_ALARM / (2 * n_tests))


def _draws(name, select):
    """Latent reference draws as float64 tensors, flattened to (draws, *shape)."""
    return {k: torch.from_numpy(v[select].reshape((-1,) + v.shape[2:])) for k, v in reference_latents(name).items()}


def _trace(model, case, values, num_draws=None):
    """Trace `model` conditioned on `values`, inside a ``_draws`` plate of `num_draws` if given."""
    conditioned = poutine.trace(poutine.condition(model, values))
    if num_draws is None:
        trace = conditioned.get_trace(*case.args, **case.kwargs)
    else:
        with pyro.plate("_draws", num_draws, dim=-2):
            trace = conditioned.get_trace(*case.args, **case.kwargs)
    trace.compute_log_prob(site_filter=lambda _, site: not site_is_subsample(site))
    return trace


def _batch_shaped(model, case, values):
    """Reshape (S, *site_shape) values to the site shapes inside the ``_draws`` plate.

    A site outside the model's dim=-1 plate takes shape ``(S, 1, *event_shape)``.
    """
    num_draws = len(next(iter(values.values())))
    first = _trace(model, case, {k: v[0] for k, v in values.items()})
    batched = {}
    for name, v in values.items():
        fn = first.nodes[name]["fn"]
        batched[name] = v.reshape((num_draws,) + (1,) * (1 - len(fn.batch_shape)) + fn.batch_shape + fn.event_shape)
    return batched


def _log_prob_sites(trace):
    """The sites of `trace` that carry a log-prob term, by name."""
    return {name: site for name, site in trace.nodes.items() if "log_prob" in site}


def batched_log_density(case, values, model=None):
    """Log joint density at draws of the latent sites, vectorised over draws.

    Parameters
    ----------
    case : PosteriordbCase
    values : dict of str to torch.Tensor
        Latent site values, shape ``(S, *site_shape)``.
    model : callable, optional
        A model to use instead of ``case.model`` (same sites and data).

    Returns
    -------
    torch.Tensor
        Shape ``(S,)``.
    """
    model = case.model if model is None else model
    num_draws = len(next(iter(values.values())))
    batched = _batch_shaped(model, case, values)
    sites = _log_prob_sites(_trace(model, case, batched, num_draws))
    return sum(site["log_prob"].reshape(num_draws, -1).sum(-1) for site in sites.values())


def unconstrained_log_density(case, transforms, u, model=None):
    """`batched_log_density` in unconstrained space, with log-Jacobians.

    Parameters
    ----------
    case : PosteriordbCase
    transforms : dict of str to torch.distributions.Transform
        Constrained -> unconstrained maps, as from `initialize_model`.
    u : dict of str to torch.Tensor
        Unconstrained values, shape ``(S, *unconstrained_shape)``.
    model : callable, optional
        As in `batched_log_density`.

    Returns
    -------
    torch.Tensor
        Shape ``(S,)``.
    """
    values, log_jacobian = {}, 0.0
    for name, v in u.items():
        to_constrained = transforms[name].inv
        values[name] = to_constrained(v)
        log_jacobian = log_jacobian + to_constrained.log_abs_det_jacobian(v, values[name]).reshape(len(v), -1).sum(-1)
    return batched_log_density(case, values, model) + log_jacobian


def _initialize(case, model=None):
    """Pyro's potential_fn and transforms; ImproperUniform sites need an explicit init."""
    init = {k: v[0] for k, v in _draws(case.name, np.s_[:1, :1]).items()}
    _, potential_fn, transforms, _ = initialize_model(
        case.model if model is None else model,
        model_kwargs=case.kwargs,
        max_plate_nesting=1,
        init_strategy=init_to_value(values=init),
    )
    return potential_fn, transforms


def stein_check(case, model=None):
    """Stein z-scores of `model` (default ``case.model``) at all reference draws.

    Returns
    -------
    z : numpy.ndarray
        Shape ``(2, d)``, from `stein_z_scores`.
    names : list of str
        The latent coordinate of each column, e.g. ``"beta[0]"``.
    """
    _, transforms = _initialize(case, model)
    draws = _draws(case.name, np.s_[:])
    u = {k: transforms[k](v) for k, v in draws.items()}
    scores = {k: [] for k in u}
    for start in range(0, len(next(iter(u.values()))), CHUNK):
        chunk = {k: v[start : start + CHUNK].clone().requires_grad_() for k, v in u.items()}
        log_p = unconstrained_log_density(case, transforms, chunk, model)
        for k, g in zip(chunk, torch.autograd.grad(log_p.sum(), list(chunk.values()))):
            scores[k].append(g)
    score = np.concatenate([_columns(torch.cat(scores[k])) for k in u], 1)
    u_flat = np.concatenate([_columns(v) for v in u.values()], 1)
    names = [k if v.dim() == 1 else f"{k}[{i}]" for k, v in u.items() for i in range(_columns(v).shape[1])]
    # n_eff: the reference draws are thinned NUTS output, nearly independent;
    # the ESS of every Stein statistic (score and score * centred draw, per
    # coordinate, over the 10 chains) measured 9,300-9,700 of 10,000 draws for
    # all seven ports. n_eff = n / 2 stays conservative.
    return stein_z_scores(score, u_flat, n_eff=len(score) / 2), names


def _columns(t):
    """A (draws, *shape) tensor as a (draws, coordinates) numpy array."""
    return t.detach().reshape(len(t), -1).numpy()


def _report(z, names):
    worst = np.unravel_index(np.abs(z).argmax(), z.shape)
    identity = ("E[s]=0", "E[s(u-mean u)]=-1")[worst[0]]
    return f"worst |z| = {abs(z[worst]):.2f} ({identity}, {names[worst[1]]}), threshold {stein_threshold(z.size):.2f}"


@pytest.mark.parametrize("name", CASE_NAMES)
def test_reference_draw_shapes(name):
    dimensions = json.loads((reference_dir() / name / "posterior.json").read_text())["dimensions"]
    draws = load_reference_draws(name)
    assert set(draws) == set(dimensions) == set(load_case(name).params)
    for param, size in dimensions.items():
        assert draws[param].dtype == np.float64
        assert draws[param].shape == (10, 1000) + (() if size == 1 else (size,))


@pytest.mark.parametrize("name", CASE_NAMES)
def test_model_vectorises_over_draws(name):
    case = load_case(name)
    values = _draws(name, np.s_[0, :3])
    singles = [_log_prob_sites(_trace(case.model, case, {k: v[i] for k, v in values.items()})) for i in range(3)]
    batched = batched_log_density(case, values)
    reshaped = _batch_shaped(case.model, case, values)
    batched_sites = _log_prob_sites(_trace(case.model, case, reshaped, 3))
    assert set(batched_sites) == set(singles[0])
    for site_name, site in batched_sites.items():
        single_shape = singles[0][site_name]["log_prob"].shape
        assert site["log_prob"].shape == (3,) + (single_shape or (1,)), site_name
        for i, single in enumerate(singles):
            expected = single[site_name]["log_prob"].expand(single_shape or (1,))
            torch.testing.assert_close(site["log_prob"][i], expected, rtol=0, atol=1e-10)
    totals = torch.stack([sum(s["log_prob"].sum() for s in single.values()) for single in singles])
    torch.testing.assert_close(batched, totals, rtol=1e-12, atol=1e-10)
    if name in FACTOR_LIKELIHOOD:  # one factor or multivariate site "y" for all observations
        assert singles[0]["y"]["log_prob"].shape == ()
    else:  # one observed site per observation
        likelihood = [
            site
            for site in singles[0].values()
            if site["name"] not in values
            and not site["infer"].get("_deterministic")
            and not isinstance(site["fn"], dist.Unit)
        ]
        assert likelihood and all(s["log_prob"].shape == s["value"].shape == (s["value"].numel(),) for s in likelihood)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_log_density_matches_pyro_potential(name):
    case = load_case(name)
    potential_fn, transforms = _initialize(case)
    draws = _draws(name, np.s_[3, :4])
    u = {k: transforms[k](v) for k, v in draws.items()}
    ours = unconstrained_log_density(case, transforms, u)
    pyros = torch.stack([-potential_fn({k: v[i] for k, v in u.items()}) for i in range(4)])
    torch.testing.assert_close(ours, pyros, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_port_satisfies_stein_identities_at_reference_draws(name):
    z, names = stein_check(load_case(name))
    assert np.abs(z).max() < stein_threshold(z.size), f"{name}: {_report(z, names)}"


def _eight_schools_wide_tau_prior(y, sigma):
    """Eight schools with tau ~ HalfCauchy(15) instead of Stan's HalfCauchy(5)."""
    mu = pyro.sample("mu", dist.Normal(torch.tensor(0.0, dtype=torch.float64), 5.0))
    tau = pyro.sample("tau", dist.HalfCauchy(torch.tensor(15.0, dtype=torch.float64)))
    with pyro.plate("schools", y.shape[-1], dim=-1):
        theta_trans = pyro.sample("theta_trans", dist.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0))
        theta = pyro.deterministic("theta", theta_trans * tau + mu)
        pyro.sample("y", dist.Normal(theta, sigma), obs=y)


def test_stein_check_flags_wrong_prior_scale():
    z, names = stein_check(load_case("eight_schools-eight_schools_noncentered"), _eight_schools_wide_tau_prior)
    assert np.abs(z).max() > stein_threshold(z.size), f"negative control not flagged: {_report(z, names)}"
