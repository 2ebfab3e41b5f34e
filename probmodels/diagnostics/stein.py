"""Stein sample-quality checks: do draws follow the model's posterior?

R-hat and ESS say whether chains agree with each other, not whether they
agree with the target. Stein's identity gives a direct test that needs only
the gradient of the log density: for draws ``u`` from the target ``p`` in
unconstrained space (log-Jacobians included), the score ``s(u) = grad log p(u)``
satisfies

* ``E[s] = 0``, and
* ``E[s (u - E u)^T] = -I``.

:func:`stein_check` evaluates the score at every draw, in batches through the
core's :class:`~probmodels.core.density.LogDensity` (or
:class:`~probmodels.core.density.FunctionDensity` for a plain log-density
function), and turns the sample averages of both identities into z-scores:
each average is divided by its Monte Carlo standard error, ``sd / sqrt(ESS)``,
with the ESS from ArviZ for chains and the number of draws for independent
draws. Under the null each z-score is approximately standard normal, and the
check passes when the largest ``|z|`` stays below the Bonferroni threshold
for the stated family-wise false-alarm rate.

A wrong prior scale, a Normal written where the target has a HalfCauchy, a
variational fit that is too narrow (off-diagonal entries of the second
identity), or a sampler that targets the wrong density show up as large
z-scores, in seconds, without running MCMC.

:func:`score_draws` is the shared front end of this module and of
:mod:`probmodels.diagnostics.ksd`.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from scipy import stats

from .._validation import check_positive_int
from ..core.density import FunctionDensity, LogDensity, without_validation
from ..core.posterior import Posterior
from ..core.protocol import LatentSite
from ..core.setup import prepare_fit
from ..exceptions import DataError, ModelSpecError, ShapeError
from .arviz import ess as arviz_ess

__all__ = ["SteinCheck", "ScoredDraws", "stein_check", "score_draws", "effective_sizes"]

Source = Any  # a Pyro model, a Posterior, or unconstrained draws (with ``log_density``)


@dataclass(frozen=True)
class ScoredDraws:
    """Draws in unconstrained space with the score at each.

    Attributes
    ----------
    u : torch.Tensor
        Unconstrained draws, ``(chains, draws, dim)``; independent draws have one "chain".
    score : torch.Tensor
        ``grad log p(u)`` at each draw, same shape.
    names : tuple of str
        Name of each unconstrained coordinate, e.g. ``"beta[2]"``.
    independent : bool
        Whether the draws are independent (exact draws, a variational guide's
        draws) rather than autocorrelated MCMC chains.
    """

    u: torch.Tensor
    score: torch.Tensor
    names: tuple[str, ...]
    independent: bool


@dataclass(frozen=True)
class SteinCheck:
    """Result of :func:`stein_check`.

    Attributes
    ----------
    passed : bool
        True when ``max_abs_z < threshold``.
    max_abs_z : float
        Largest ``|z|`` over every test.
    threshold : float
        Two-sided normal quantile at ``false_alarm / num_tests`` (Bonferroni).
    false_alarm : float
        Family-wise false-alarm rate asked for.
    num_tests : int
        Number of z-scores tested: ``dim`` means, ``dim`` diagonal entries,
        ``dim * (dim - 1)`` off-diagonal entries when checked, and the trace
        when ``dim > 1``.
    num_draws : int
        Number of draws (all chains).
    min_ess : float
        Smallest effective sample size over the tested averages.
    coordinates : tuple of str
        Names of the unconstrained coordinates.
    mean_z : numpy.ndarray
        ``(dim,)`` z-scores of ``E[s_j] = 0``.
    cov_z : numpy.ndarray
        ``(dim, dim)`` z-scores of ``E[s_j (u_k - E u_k)] + delta_jk = 0``;
        off-diagonal entries are NaN when they were not checked.
    trace_z : float
        z-score of ``E[s . (u - E u)] + dim = 0`` (NaN when ``dim == 1``).
    """

    passed: bool
    max_abs_z: float
    threshold: float
    false_alarm: float
    num_tests: int
    num_draws: int
    min_ess: float
    coordinates: tuple[str, ...]
    mean_z: np.ndarray
    cov_z: np.ndarray
    trace_z: float

    def worst(self, k: int = 5) -> list[tuple[str, str, float]]:
        """The ``k`` largest ``|z|`` as ``(identity, coordinate, z)``, largest first."""
        rows = [("E[s] = 0", name, float(z)) for name, z in zip(self.coordinates, self.mean_z)]
        for j, row in enumerate(self.cov_z):
            for i, z in enumerate(row):
                if np.isnan(z):
                    continue
                if i == j:
                    rows.append(("E[s u'] = -I, diagonal", self.coordinates[j], float(z)))
                else:
                    rows.append(("E[s u'] = -I, off-diagonal", f"s:{self.coordinates[j]} u:{self.coordinates[i]}", float(z)))
        if not np.isnan(self.trace_z):
            rows.append(("trace E[s . u] = -dim", "all", float(self.trace_z)))
        return sorted(rows, key=lambda row: -abs(row[2]))[:k]

    def table(self, k: int = 5) -> str:
        """The worst ``k`` z-scores as a plain-text table."""
        rows = self.worst(k)
        width = max([len(row[1]) for row in rows] + [10])
        lines = [f"  {'identity':<28} {'coordinate':<{width}} {'z':>8}"]
        lines += [f"  {identity:<28} {name:<{width}} {z:>8.2f}" for identity, name, z in rows]
        return "\n".join(lines)

    def __str__(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        relation = "<" if self.passed else ">="
        return (
            f"Stein check: {verdict}: max |z| {self.max_abs_z:.2f} {relation} {self.threshold:.2f}, the Bonferroni "
            f"threshold for {self.num_tests} tests at family-wise false-alarm rate {self.false_alarm:g}\n"
            f"{self.num_draws} draws, {len(self.coordinates)} unconstrained coordinates, min ESS {self.min_ess:.0f}\n"
            f"largest |z|:\n{self.table()}"
        )


def stein_check(
    source: Source,
    draws: Mapping[str, Any] | Posterior | None = None,
    *model_args: Any,
    model_kwargs: Mapping[str, Any] | None = None,
    log_density: Callable[[torch.Tensor], torch.Tensor] | None = None,
    false_alarm: float = 1e-3,
    max_offdiag_dim: int = 30,
    independent: bool | None = None,
    batch_size: int = 4096,
) -> SteinCheck:
    """Test whether draws follow a model's posterior with Stein's identities.

    Parameters
    ----------
    source
        One of: a Pyro model (then ``draws`` and the model's arguments
        follow); a :class:`~probmodels.core.posterior.Posterior` whose model
        is attached (MCMC or SVI); or, with ``log_density``, an array of
        unconstrained draws shaped ``(n, dim)`` or ``(chain, draw, dim)``.
    draws
        With a model: ``site -> constrained values`` shaped ``(n, *site_shape)``
        (independent draws) or ``(chain, draw, *site_shape)`` (chains), for
        every latent site (other keys are ignored); or a Posterior, whose data
        are used when no model arguments are given.
    *model_args, model_kwargs
        The model's arguments (the data).
    log_density
        A batched log density ``fn(u: (batch, dim)) -> (batch,)`` of
        unconstrained points, differentiable with torch autograd.
    false_alarm
        Family-wise probability of failing draws that do follow the target.
    max_offdiag_dim
        The off-diagonal entries of ``E[s u'] = -I`` (which expose, e.g., a
        mean-field approximation of a correlated posterior) are checked when
        the dimension is at most this (they take ``draws * dim**2`` floats of
        memory); above it, only the means, the diagonal and the trace.
    independent
        Whether the draws are independent (ESS = number of draws) or chains
        (ESS from ArviZ, at most the number of draws). Default: independent
        for ``(n, ...)`` draws and SVI posteriors, chains otherwise.
    batch_size
        Draws per evaluation of the log density and its gradient.

    Returns
    -------
    SteinCheck
        z-scores, the verdict, and ``str(result)`` a readable report that
        names the worst coordinates.

    Raises
    ------
    ModelSpecError
        A latent site has no draws, or the arguments do not name a model.
    ShapeError
        Draws whose shape does not fit their site.
    DataError
        NaN/inf draws, draws outside a site's support, or draws where the
        model's log density is not finite.

    Notes
    -----
    The score's average is whitened coordinate-wise by its own Monte Carlo
    standard error, ``z_j = mean(s_j) / (sd(s_j) / sqrt(ESS_j))`` (for draws
    from ``p`` the covariance of ``s`` is the Fisher information, so this is
    the natural scale), and likewise for the products
    ``s_j (u_k - mean u_k) + delta_jk``. Bonferroni over correlated tests is
    conservative: the realised false-alarm rate is at most ``false_alarm``.

    References
    ----------
    .. [1] C. Stein, "A bound for the error in the normal approximation to the
       distribution of a sum of dependent random variables", Proc. Sixth
       Berkeley Symp. Math. Statist. Prob. 2, 583-602, 1972.
    .. [2] J. Gorham and L. Mackey, "Measuring sample quality with Stein's
       method", NeurIPS 2015.
    .. [3] A. Vehtari, A. Gelman, D. Simpson, B. Carpenter and P.-C. Bürkner,
       "Rank-normalization, folding, and localization: an improved R-hat",
       Bayesian Analysis 16(2), 2021 (the ESS used here).
    """
    if not isinstance(false_alarm, numbers.Real) or isinstance(false_alarm, bool) or not 0.0 < float(false_alarm) < 1.0:
        raise ModelSpecError(f"false_alarm must be a probability in (0, 1), got {false_alarm!r}; e.g. false_alarm=1e-3.")
    max_offdiag_dim = check_positive_int(max_offdiag_dim, "max_offdiag_dim")
    scored = score_draws(
        source, draws, model_args, model_kwargs, log_density=log_density, independent=independent, batch_size=batch_size
    )
    u, s = scored.u, scored.score
    chains, per_chain, dim = u.shape
    centred = u - u.mean((0, 1))
    eye = torch.eye(dim, dtype=u.dtype, device=u.device)
    offdiag = 1 < dim <= max_offdiag_dim
    if offdiag:
        products = (s.unsqueeze(-1) * centred.unsqueeze(-2) + eye).reshape(chains, per_chain, dim * dim)
    else:
        products = s * centred + 1.0
    series = [s, products]
    if dim > 1:
        series.append((s * centred).sum(-1, keepdim=True) + dim)
    z, ess = _z_scores(torch.cat(series, -1), scored.independent)
    mean_z = z[:dim]
    cov_z = np.full((dim, dim), np.nan)
    if offdiag:
        cov_z[:] = z[dim : dim + dim * dim].reshape(dim, dim)
    else:
        cov_z[np.diag_indices(dim)] = z[dim : 2 * dim]
    trace_z = float(z[-1]) if dim > 1 else math.nan
    num_tests = z.size
    threshold = float(stats.norm.isf(float(false_alarm) / (2 * num_tests)))
    max_abs_z = float(np.max(np.abs(z)))
    return SteinCheck(
        passed=bool(max_abs_z < threshold),
        max_abs_z=max_abs_z,
        threshold=threshold,
        false_alarm=float(false_alarm),
        num_tests=num_tests,
        num_draws=chains * per_chain,
        min_ess=float(np.min(ess)),
        coordinates=scored.names,
        mean_z=mean_z,
        cov_z=cov_z,
        trace_z=trace_z,
    )


def effective_sizes(series: torch.Tensor, independent: bool) -> np.ndarray:
    """ESS of the mean of each column of ``series`` ``(chains, draws, k)``, at most ``chains * draws``."""
    chains, per_chain, k = series.shape
    total = chains * per_chain
    if independent:
        return np.full(k, float(total))
    if per_chain < 4:
        raise ShapeError(f"chains of {per_chain} draws are too short for an ESS; pass at least 4 draws per chain, or independent=True.")
    values = arviz_ess({"x": series.detach().cpu().numpy()}, method="mean")["x"].values.reshape(k)
    return np.clip(np.nan_to_num(values, nan=1.0), 1.0, total)


def _z_scores(series: torch.Tensor, independent: bool) -> tuple[np.ndarray, np.ndarray]:
    """z-score of each column's mean against 0, with its MCSE from the ESS."""
    flat = series.reshape(-1, series.shape[-1])
    mean = flat.mean(0).cpu().numpy()
    sd = flat.std(0).cpu().numpy()
    ess = effective_sizes(series, independent)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sd > 0, mean / (sd / np.sqrt(ess)), np.where(mean == 0, 0.0, np.inf * np.sign(mean)))
    return z, ess


# --------------------------------------------------------------------------- draws in, scores out
def score_draws(
    source: Source,
    draws: Mapping[str, Any] | Posterior | None,
    model_args: Sequence[Any],
    model_kwargs: Mapping[str, Any] | None,
    *,
    log_density: Callable[[torch.Tensor], torch.Tensor] | None,
    independent: bool | None,
    batch_size: int,
) -> ScoredDraws:
    """Map draws to unconstrained space, validate them, and evaluate the score at each.

    The inputs are those of :func:`stein_check` (see there); the score comes
    from the core's batched ``value_and_grad``, ``batch_size`` draws at a time.
    """
    batch_size = check_positive_int(batch_size, "batch_size")
    if log_density is not None:
        if draws is not None or model_args or model_kwargs:
            raise ModelSpecError(
                "with log_density, pass only the unconstrained draws, e.g. stein_check(u, log_density=fn); "
                "a model and its data go without log_density."
            )
        u, names, default_independent = _unconstrained_array(source)
        target: Any = FunctionDensity(log_density)
    else:
        u, names, default_independent, target = _model_draws(source, draws, model_args, model_kwargs)
    chains, per_chain, dim = u.shape
    flat = u.reshape(chains * per_chain, dim)
    with without_validation():
        parts = [target.value_and_grad(chunk) for chunk in flat.split(batch_size)]
    logp = torch.cat([p[0] for p in parts])
    bad = ~torch.isfinite(logp)
    if bool(bad.any()):
        first = int(bad.nonzero()[0, 0])
        raise DataError(
            f"the log density is -inf, NaN or fails at {int(bad.sum())} of the {flat.shape[0]} draws (first at draw "
            f"{np.unravel_index(first, (chains, per_chain)) if chains > 1 else first}); these draws lie where the model "
            "has zero density. Check that the draws belong to this model and these data (site names, scales, "
            "the right dataset)."
        )
    score = torch.cat([p[1] for p in parts]).reshape(chains, per_chain, dim)
    return ScoredDraws(u, score, names, default_independent if independent is None else bool(independent))


def _unconstrained_array(values: Any) -> tuple[torch.Tensor, tuple[str, ...], bool]:
    """Unconstrained draws ``(n, dim)`` or ``(chain, draw, dim)`` as a ``(chains, draws, dim)`` tensor."""
    if isinstance(values, (Posterior, Mapping)) or callable(values):
        raise TypeError(
            f"with log_density the first argument must be an array of unconstrained draws, got {type(values).__name__}; "
            "for a Pyro model or a Posterior, drop log_density."
        )
    u = values if isinstance(values, torch.Tensor) else torch.as_tensor(np.asarray(values, dtype=float))
    if u.dim() not in (2, 3) or not u.is_floating_point():
        raise ShapeError(
            f"unconstrained draws must be a float array shaped (n, dim) or (chain, draw, dim), got shape {tuple(u.shape)} "
            f"and dtype {u.dtype}."
        )
    _check_finite(u, "the draws")
    names = tuple(f"u[{j}]" for j in range(u.shape[-1]))
    return (u if u.dim() == 3 else u.unsqueeze(0)), names, u.dim() == 2


def _model_draws(
    source: Source, draws: Mapping[str, Any] | Posterior | None, model_args: Sequence[Any], model_kwargs: Mapping[str, Any] | None
) -> tuple[torch.Tensor, tuple[str, ...], bool, LogDensity]:
    """Unconstrained draws of a Pyro model, its coordinate names, the default independence, and its log density."""
    independent: bool | None = None
    if isinstance(source, Posterior):
        if draws is not None or model_args or model_kwargs:
            raise ModelSpecError("pass a Posterior alone (its model and data are attached), or a model followed by the draws.")
        posterior = source
        if posterior.model is None:
            raise ModelSpecError(
                "this Posterior has no model attached (it was loaded from a file); pass the model and its data: "
                "stein_check(model, posterior, *model_args)."
            )
        model, model_args, model_kwargs = posterior.model, posterior.model_args, posterior.model_kwargs
        values: Mapping[str, Any] = posterior.draws
        independent = posterior.method.startswith("svi")
    elif callable(source):
        model = source
        if isinstance(draws, Posterior):
            if not model_args and model_kwargs is None:
                model_args, model_kwargs = draws.model_args, draws.model_kwargs
            values = draws.draws
            independent = draws.method.startswith("svi")
        elif isinstance(draws, Mapping):
            values = draws
        else:
            raise TypeError(
                f"draws must be a dict site -> array of constrained values or a Posterior, got {type(draws).__name__}."
            )
    else:
        raise TypeError(
            f"the first argument must be a Pyro model, a Posterior, or unconstrained draws with log_density=..., "
            f"got {type(source).__name__}."
        )
    setup = prepare_fit(model, model_args, model_kwargs, seed=0)
    latents = setup.info.latents
    shaped, sample_shape = _site_draws(values, latents, setup.dtype, setup.device)
    if independent is None:
        independent = len(sample_shape) == 1
    u = LogDensity(model, setup.args, setup.kwargs, setup.info, vectorize="loop").unconstrain(shaped)
    with without_validation():
        target = LogDensity(model, setup.args, setup.kwargs, setup.info, probe=u[: min(8, u.shape[0])])
    chains = 1 if len(sample_shape) == 1 else sample_shape[0]
    return u.reshape(chains, -1, u.shape[-1]), _coordinate_names(latents), independent, target


def _site_draws(
    values: Mapping[str, Any], latents: Sequence[LatentSite], dtype: torch.dtype, device: torch.device
) -> tuple[dict[str, torch.Tensor], tuple[int, ...]]:
    """Validate each latent site's draws and flatten their sample dims: ``site -> (n, *shape)``."""
    names = [site.name for site in latents]
    sample_shape: tuple[int, ...] | None = None
    first_site = ""
    shaped = {}
    for site in latents:
        if site.name not in values:
            raise ModelSpecError(
                f"the draws have no site {site.name!r}; the model's latent sites are {names} and the draws hold "
                f"{list(values)}. Pass a draw of every latent site, keyed by the model's site names."
            )
        raw = values[site.name]
        value = raw.detach() if isinstance(raw, torch.Tensor) else torch.as_tensor(np.asarray(raw, dtype=float))
        value = value.to(dtype=dtype, device=device)
        extra = value.dim() - len(site.shape)
        if extra not in (1, 2) or tuple(value.shape[extra:]) != tuple(site.shape):
            dims = "".join(f", {size}" for size in site.shape)
            raise ShapeError(
                f"draws[{site.name!r}] has shape {tuple(value.shape)}; the site has shape {tuple(site.shape)}, so its draws "
                f"must be shaped (n{dims}) or (chain, draw{dims})."
            )
        if sample_shape is None:
            sample_shape, first_site = tuple(value.shape[:extra]), site.name
        elif tuple(value.shape[:extra]) != sample_shape:
            raise ShapeError(
                f"draws[{site.name!r}] has sample dims {tuple(value.shape[:extra])} but draws[{first_site!r}] has "
                f"{sample_shape}; every site needs the same (n,) or (chain, draw) leading dims."
            )
        _check_finite(value, f"draws[{site.name!r}]")
        flat = value.reshape((-1,) + tuple(site.shape))
        inside = site.transform.codomain.check(flat).reshape(flat.shape[0], -1).all(-1)
        inside &= torch.isfinite(site.transform.inv(flat)).reshape(flat.shape[0], -1).all(-1)
        if not bool(inside.all()):
            first = np.unravel_index(int((~inside).nonzero()[0, 0]), sample_shape)
            raise DataError(
                f"draws[{site.name!r}] hold {int((~inside).sum())} draw(s) outside the site's support or on its boundary "
                f"(where the map to unconstrained space is infinite), first at sample index {tuple(map(int, first))}. "
                f"Pass constrained values of the site from draws of this model (e.g. a scale itself, not its logarithm)."
            )
        shaped[site.name] = flat
    return shaped, sample_shape or ()


def _check_finite(value: torch.Tensor, what: str) -> None:
    bad = ~torch.isfinite(value)
    if bool(bad.any()):
        first = tuple(bad.nonzero()[0].tolist())
        raise DataError(
            f"{what} contain {int(bad.sum())} NaN or infinite value(s), first at index {first}; drop those draws "
            "(or the chains that produced them) before checking."
        )


def _coordinate_names(latents: Sequence[LatentSite]) -> tuple[str, ...]:
    names = []
    for site in latents:
        shape = tuple(site.unconstrained_shape)
        if not shape:
            names.append(site.name)
        else:
            names += [f"{site.name}[{','.join(map(str, index))}]" for index in np.ndindex(*shape)]
    return tuple(names)
