"""Posterior: the result of every fit, MCMC or SVI, with draws shaped (chain, draw, ...)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np
import torch

from ..exceptions import ModelSpecError, ProbModelsError, ResultFileError
from .predictive import log_likelihood as compute_log_likelihood
from .predictive import posterior_predictive
from .protocol import ModelInfo, inspect_model

if TYPE_CHECKING:
    import arviz as az
    import pandas as pd

__all__ = ["Posterior", "load"]

_FORMAT = "probmodels.posterior/1"


def _as_tensor(value: Any) -> torch.Tensor:
    return value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))


class Posterior:
    """Draws from a posterior, with the statistics of the run that made them.

    Parameters
    ----------
    draws
        ``site -> (chain, draw, *shape)`` constrained values of the latent and
        deterministic sites.
    method
        How the draws were made, e.g. ``"nuts"`` or ``"svi:normal"``.
    sample_stats
        ``name -> (chain, draw)`` per-transition statistics (``diverging``,
        ``energy``, ``tree_depth``, ``n_steps``, ``acceptance_rate``,
        ``step_size``, ``lp``) for MCMC.
    dims
        Dimension names of each site's value (without chain and draw).
    observed_data
        ``site -> value`` of the observed sites.
    attrs
        Settings and facts of the run (seed, warmup, elapsed time, ...).
    model, model_args, model_kwargs, info
        The model and data the draws belong to; needed for
        :meth:`log_likelihood` and :meth:`predict`, absent after :func:`load`.
    log_likelihood_values
        Precomputed ``site -> (chain, draw, *batch_shape)`` log-likelihoods
        (as restored by :func:`load`).

    Examples
    --------
    Draws of any origin become a Posterior; fits return one.

    >>> import torch
    >>> from probmodels import Posterior
    >>> g = torch.Generator().manual_seed(0)
    >>> post = Posterior({"mu": torch.randn(2, 100, generator=g),
    ...                   "theta": torch.randn(2, 100, 3, generator=g)}, method="manual")
    >>> post
    Posterior(method='manual', chains=2, draws=100, sites=[mu(), theta(3,)])
    >>> post["theta"].shape, post.flat("theta").shape
    (torch.Size([2, 100, 3]), torch.Size([200, 3]))
    >>> post.summary(var_names=["mu"])[["mean", "sd"]].round(1)
        mean   sd
    mu  -0.0  1.0
    """

    def __init__(
        self,
        draws: Mapping[str, Any],
        *,
        method: str,
        sample_stats: Mapping[str, Any] | None = None,
        dims: Mapping[str, Sequence[str]] | None = None,
        observed_data: Mapping[str, Any] | None = None,
        attrs: Mapping[str, Any] | None = None,
        model: Callable[..., Any] | None = None,
        model_args: Sequence[Any] = (),
        model_kwargs: Mapping[str, Any] | None = None,
        info: ModelInfo | None = None,
        log_likelihood_values: Mapping[str, Any] | None = None,
    ) -> None:
        self.draws = {k: _as_tensor(v) for k, v in draws.items()}
        if not self.draws:
            raise ProbModelsError("a Posterior needs at least one site with draws.")
        first = next(iter(self.draws.values()))
        if first.dim() < 2:
            raise ProbModelsError("draws must be shaped (chain, draw, ...).")
        self.method = method
        self.sample_stats = {k: _as_tensor(v) for k, v in (sample_stats or {}).items()}
        self.dims = {k: tuple(v) for k, v in (dims or {}).items()}
        self.observed_data = {k: _as_tensor(v) for k, v in (observed_data or {}).items()}
        self.attrs = dict(attrs or {})
        self.attrs["method"] = method
        self.model = model
        self.model_args = tuple(model_args)
        self.model_kwargs = dict(model_kwargs or {})
        self.info = info
        self._log_likelihood = {k: _as_tensor(v) for k, v in log_likelihood_values.items()} if log_likelihood_values else None

    # ------------------------------------------------------------------ shape
    @property
    def num_chains(self) -> int:
        """Number of chains (1 for SVI)."""
        return next(iter(self.draws.values())).shape[0]

    @property
    def num_draws(self) -> int:
        """Draws per chain."""
        return next(iter(self.draws.values())).shape[1]

    @property
    def sites(self) -> tuple[str, ...]:
        """Names of the sites with draws."""
        return tuple(self.draws)

    def __getitem__(self, name: str) -> torch.Tensor:
        try:
            return self.draws[name]
        except KeyError:
            raise KeyError(f"no site {name!r} in this posterior; its sites are {list(self.draws)}.") from None

    def __contains__(self, name: object) -> bool:
        return name in self.draws

    def __repr__(self) -> str:
        sites = ", ".join(f"{k}{tuple(v.shape[2:])}" for k, v in self.draws.items())
        return f"Posterior(method={self.method!r}, chains={self.num_chains}, draws={self.num_draws}, sites=[{sites}])"

    def flat(self, name: str) -> torch.Tensor:
        """Draws of ``name`` with chains concatenated: ``(chain * draw, *shape)``."""
        value = self[name]
        return value.reshape((-1,) + tuple(value.shape[2:]))

    def _latent_draws_flat(self) -> dict[str, torch.Tensor]:
        if self.info is None:
            raise ProbModelsError("this posterior has no model attached (it was loaded from a file).")
        return {site.name: self.flat(site.name) for site in self.info.latents}

    def _chain_draw(self, values: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        c, d = self.num_chains, self.num_draws
        return {k: v.reshape((c, d) + tuple(v.shape[1:])) for k, v in values.items()}

    # --------------------------------------------------------- model-dependent
    @property
    def has_log_likelihood(self) -> bool:
        """Whether :meth:`log_likelihood` can answer (stored values, or a model with observed sites)."""
        return self._log_likelihood is not None or (self.info is not None and bool(self.info.observed))

    def log_likelihood(self) -> dict[str, torch.Tensor]:
        """Pointwise log-likelihood of each observed site: ``site -> (chain, draw, *batch_shape)``."""
        if self._log_likelihood is None:
            if self.info is None or self.model is None:
                raise ProbModelsError("no log-likelihood stored and no model attached to compute it.")
            if not self.info.observed:
                raise ModelSpecError(
                    "the model has no observed site; declare the likelihood sites with observed=(...) "
                    "(pyro.factor sites are not counted as likelihood unless declared)."
                )
            values = compute_log_likelihood(
                self.model, self.model_args, self.model_kwargs, self.info, self._latent_draws_flat(),
                vectorize=self.attrs.get("vectorize") != "loop",
            )
            self._log_likelihood = self._chain_draw(values)
        return self._log_likelihood

    def predict(self, *args: Any, seed: int = 0, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Posterior predictive samples: ``site -> (chain, draw, *shape)``.

        With no arguments the model is rerun on the fit's data with its
        observed sites resampled (replicated data for posterior predictive
        checks). With arguments (e.g. new inputs, and ``obs=None``) the model
        is run on them, and every site that is not a latent of the posterior
        is returned.

        Parameters
        ----------
        *args, **kwargs
            New model arguments; none means the fit's own.
        seed
            Seed of the predictive sampling (isolated from torch's global RNG).
        """
        if self.model is None or self.info is None:
            raise ProbModelsError("this posterior has no model attached (it was loaded from a file); predictions need the model.")
        if args or kwargs:
            info = inspect_model(self.model, args, kwargs, observed=())
            latent_names = {s.name for s in self.info.latents}
            names = [n for n in info.site_shapes if n not in latent_names]
            run_args, run_kwargs = args, kwargs
        else:
            info, names = self.info, list(self.info.observed) + list(self.info.deterministic)
            run_args, run_kwargs = self.model_args, self.model_kwargs
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            values = posterior_predictive(
                self.model, run_args, run_kwargs, info, self._latent_draws_flat(), names,
                vectorize=self.attrs.get("vectorize") != "loop",
            )
        return self._chain_draw(values)

    # ---------------------------------------------------------------- arviz
    def to_arviz(self, *, log_likelihood: bool = True, posterior_predictive: bool = False) -> "az.InferenceData":
        """ArviZ InferenceData with posterior, sample_stats, log_likelihood, observed_data
        (and posterior_predictive when asked) groups."""
        from ..diagnostics.arviz import to_arviz

        pp = self.predict() if posterior_predictive else None
        if pp is not None:
            pp = {k: v for k, v in pp.items() if k in self.observed_data}
        return to_arviz(self, log_likelihood=log_likelihood, posterior_predictive=pp)

    def summary(self, var_names: list[str] | None = None, hdi_prob: float = 0.94) -> "pd.DataFrame":
        """Mean, sd, HDI, MCSE, bulk/tail ESS and R-hat per parameter (ArviZ)."""
        from ..diagnostics.arviz import summary

        return summary(self.to_arviz(log_likelihood=False), var_names=var_names, hdi_prob=hdi_prob)

    # ---------------------------------------------------------------- files
    def save(self, path: str | os.PathLike) -> Path:
        """Write the posterior to a netCDF file (no pickle), atomically.

        The file holds every group of :meth:`to_arviz`; :func:`load` reads it
        back with identical values.
        """
        path = Path(path)
        idata = self.to_arviz(log_likelihood=self.has_log_likelihood)
        idata.posterior.attrs["probmodels_format"] = _FORMAT
        idata.posterior.attrs["dims_json"] = _dims_json(self.dims)
        handle, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", suffix=".tmp")
        os.close(handle)
        try:
            idata.to_netcdf(tmp, engine="h5netcdf")
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Posterior":
        """Read a posterior written by :meth:`save`."""
        return load(path)


def _dims_json(dims: Mapping[str, Sequence[str]]) -> str:
    import json

    return json.dumps({k: list(v) for k, v in dims.items()})


def load(path: str | os.PathLike) -> Posterior:
    """Read a :class:`Posterior` saved with :meth:`Posterior.save`.

    Raises
    ------
    ResultFileError
        The file is missing, truncated, not netCDF, or not a probmodels result.

    Examples
    --------
    >>> import tempfile, torch
    >>> from probmodels import Posterior, load
    >>> post = Posterior({"mu": torch.arange(6.0).reshape(2, 3)}, method="manual")
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     again = load(post.save(f"{folder}/fit.nc"))
    >>> again["mu"].tolist()
    [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    """
    import json

    from ..diagnostics.arviz import from_netcdf

    path = Path(path)
    if not path.is_file():
        raise ResultFileError(f"result file {str(path)!r} does not exist.")
    try:
        idata = from_netcdf(str(path))
    except Exception as error:
        raise ResultFileError(
            f"result file {str(path)!r} could not be read as netCDF ({type(error).__name__}: {error}); it may be "
            "truncated or not a file written by Posterior.save."
        ) from error
    groups = set(idata.groups())
    if "posterior" not in groups or idata.posterior.attrs.get("probmodels_format") != _FORMAT:
        raise ResultFileError(
            f"result file {str(path)!r} is not a probmodels posterior (format tag {_FORMAT!r} missing); "
            f"it has groups {sorted(groups)}. Load a file written by Posterior.save; an ArviZ file can be read "
            "with arviz.from_netcdf."
        )

    def arrays(group: str) -> dict[str, np.ndarray] | None:
        if group not in groups:
            return None
        dataset = getattr(idata, group)
        return {name: np.asarray(var.values) for name, var in dataset.data_vars.items()}

    attrs = {k: v for k, v in idata.posterior.attrs.items() if k not in ("probmodels_format", "dims_json", "created_at", "arviz_version", "inference_library", "inference_library_version")}
    method = str(attrs.pop("method", "unknown"))
    return Posterior(
        arrays("posterior"),
        method=method,
        sample_stats=arrays("sample_stats"),
        dims=json.loads(idata.posterior.attrs.get("dims_json", "{}")),
        observed_data=arrays("observed_data"),
        attrs=attrs,
        log_likelihood_values=arrays("log_likelihood"),
    )
