"""The model protocol, and what the core learns about a model from one trace.

A model is any Pyro program ``model(*args, **kwargs)``. Family models add two
declarations that the core reads when present:

``observed``
    names of the likelihood sites (their pointwise log-probabilities form the
    ``log_likelihood`` group used by LOO and WAIC);
``max_plate_nesting``
    how many plate dimensions the model uses, so the core can put chains or
    draws in a plate to the left of them.

For plain functions both are read off a trace: observed sites are those with
``obs=`` that are neither ``pyro.deterministic`` nor ``pyro.factor`` sites.

A model whose evidence has a closed form may also define
``exact_log_evidence(*args, **kwargs) -> float``, ``log p(data)`` with every
latent site integrated out; ``log_evidence(fit, method="exact")`` in the
diagnostics layer uses it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

import pyro
import pyro.poutine as poutine
import torch
from pyro.distributions.torch_distribution import TorchDistributionMixin
from torch.distributions import biject_to
from torch.distributions.transforms import Transform

from ..exceptions import ModelSpecError, ShapeError

__all__ = ["ProbabilisticModel", "LatentSite", "ModelInfo", "inspect_model", "UniformInit", "is_likelihood_term"]


def is_likelihood_term(site: Mapping[str, Any]) -> bool:
    """Whether a sample site (a trace node or a handler's message) is a term of the likelihood.

    Every observed site and every ``pyro.factor`` is; latent sites (priors) and
    ``pyro.deterministic`` sites are not. Tempering and prior-based evidence
    estimates act on exactly these terms.
    """
    return bool(site["is_observed"]) and not site["infer"].get("_deterministic")


@runtime_checkable
class ProbabilisticModel(Protocol):
    """What a family model exposes so that every core algorithm works on it."""

    observed: tuple[str, ...]
    max_plate_nesting: int

    def __call__(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - protocol
        ...


@dataclass(frozen=True)
class LatentSite:
    """A continuous latent sample site.

    Attributes
    ----------
    name : str
        Site name.
    shape : torch.Size
        Shape of one constrained value (batch shape + event shape).
    batch_shape : torch.Size
        The part of ``shape`` that plates index.
    unconstrained_shape : torch.Size
        Shape of the value in unconstrained space.
    transform : Transform
        Map from unconstrained to constrained space (``biject_to(support)``).
    dims : tuple of str
        Dimension names, taken from plate names where a plate indexes a dim.
    """

    name: str
    shape: torch.Size
    batch_shape: torch.Size
    unconstrained_shape: torch.Size
    transform: Transform
    dims: tuple[str, ...]

    @property
    def size(self) -> int:
        """Number of unconstrained coordinates of this site."""
        return math.prod(self.unconstrained_shape)


@dataclass(frozen=True)
class ModelInfo:
    """Everything the core needs to know about a model, from one trace.

    Attributes
    ----------
    latents : tuple of LatentSite
        Continuous latent sites, in the order the model samples them.
    observed : tuple of str
        Likelihood sites.
    deterministic : tuple of str
        ``pyro.deterministic`` sites, recorded with the draws.
    max_plate_nesting : int
        Number of plate dims the model uses.
    site_shapes : dict
        Value shape of every recorded site (latent, deterministic, observed).
    site_batch_shapes : dict
        Batch shape (plate part) of every recorded site.
    site_dims : dict
        Dimension names of every recorded site.
    observed_values : dict
        The observed data of each likelihood site.
    """

    latents: tuple[LatentSite, ...]
    observed: tuple[str, ...]
    deterministic: tuple[str, ...]
    max_plate_nesting: int
    site_shapes: Mapping[str, torch.Size]
    site_batch_shapes: Mapping[str, torch.Size]
    site_dims: Mapping[str, tuple[str, ...]]
    observed_values: Mapping[str, torch.Tensor]

    @property
    def dim(self) -> int:
        """Total number of unconstrained coordinates."""
        return sum(site.size for site in self.latents)


class UniformInit(poutine.messenger.Messenger):
    """Give every unobserved site a value drawn uniformly in (-radius, radius) in unconstrained space.

    Unlike sampling from the prior this works for improper priors, and it is
    the initialisation Stan uses.
    """

    def __init__(self, radius: float = 2.0, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.radius = radius
        self.generator = generator

    def _pyro_sample(self, msg: dict) -> None:
        if msg["is_observed"] or msg["value"] is not None or type(msg["fn"]).__name__ == "_Subsample":
            return
        fn = msg["fn"]
        if fn.support.is_discrete:
            return
        shape = fn.shape()
        try:
            transform = biject_to(fn.support)
        except NotImplementedError:
            raise ModelSpecError(
                f"latent site {msg['name']!r} has support {fn.support}, which has no map to unconstrained space; "
                "sample it from a distribution with a standard support (real, positive, interval, simplex, "
                "ordered, ...) and add other terms with pyro.factor."
            ) from None
        unconstrained_shape = transform.inverse_shape(shape)
        proto = _prototype(fn)
        u = torch.rand(unconstrained_shape, generator=self.generator, dtype=proto.dtype, device=proto.device)
        msg["value"] = transform(self.radius * (2 * u - 1))
        msg["done"] = True


def _prototype(fn: TorchDistributionMixin) -> torch.Tensor:
    """A tensor with the dtype and device of a distribution's parameters."""
    for name in getattr(fn, "arg_constraints", {}):
        value = getattr(fn, name, None)
        if isinstance(value, torch.Tensor):
            return value
    base = getattr(fn, "base_dist", None)
    if base is not None:
        return _prototype(base)
    return torch.zeros(())


def _dims_for(site: dict, name: str, n_dims: int, batch_ndim: int) -> tuple[str, ...]:
    """Name each dim of a site's value: by its plate where one indexes it, else ``{name}_dim_{i}``."""
    plate_names = {f.dim: f.name for f in site["cond_indep_stack"] if f.dim is not None}
    return tuple(
        plate_names[i - batch_ndim] if i < batch_ndim and (i - batch_ndim) in plate_names else f"{name}_dim_{i}"
        for i in range(n_dims)
    )


def _is_deterministic(site: dict) -> bool:
    return bool(site["infer"].get("_deterministic", False))


def _is_factor(site: dict) -> bool:
    return bool(site["infer"].get("is_auxiliary", False)) or type(site["fn"]).__name__ == "Unit"


def inspect_model(
    model: Callable[..., Any],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    *,
    observed: Sequence[str] | None = None,
    generator: torch.Generator | None = None,
) -> ModelInfo:
    """Trace ``model`` once and describe its sites.

    Parameters
    ----------
    model
        A Pyro program.
    args, kwargs
        Its arguments.
    observed
        Names of the likelihood sites; defaults to the model's ``observed``
        attribute, else to every observed site that is not a factor or
        deterministic site.
    generator
        Random generator for the uniform initial values used while tracing.

    Raises
    ------
    ModelSpecError
        The model fails to run, has a discrete latent site, or names an
        observed site it does not have.
    ShapeError
        An observed value's shape disagrees with its distribution's shape
        (which torch would otherwise broadcast silently).
    """
    tracer = poutine.trace(UniformInit(generator=generator)(model))
    try:
        with pyro.validation_enabled(True), poutine.block(hide_types=["param"]):
            trace = tracer.get_trace(*args, **kwargs)
    except (ModelSpecError, ShapeError):
        raise
    except Exception as error:  # the user's model raised: say where
        last = list(tracer.trace.nodes)[-1] if tracer.trace.nodes else None
        where = f" after site {last!r}" if last and last not in ("_INPUT", "_RETURN") else ""
        raise ModelSpecError(
            f"running the model failed{where}: {type(error).__name__}: {error}. Check the model's "
            "arguments (shapes, dtypes) against what the model expects."
        ) from error

    declared = observed if observed is not None else getattr(model, "observed", None)
    max_plate_nesting = getattr(model, "max_plate_nesting", None)
    latents: list[LatentSite] = []
    obs_names: list[str] = []
    deterministic: list[str] = []
    shapes: dict[str, torch.Size] = {}
    batch_shapes: dict[str, torch.Size] = {}
    dims: dict[str, tuple[str, ...]] = {}
    obs_values: dict[str, torch.Tensor] = {}
    deepest_plate = 0
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or type(site["fn"]).__name__ == "_Subsample":
            continue
        frames = [f for f in site["cond_indep_stack"] if f.vectorized and f.dim is not None]
        deepest_plate = max([deepest_plate] + [-f.dim for f in frames])
        fn = site["fn"]
        value = site["value"]
        batch_shape = fn.batch_shape
        event_ndim = len(fn.event_shape)
        if _is_deterministic(site):
            # pyro.deterministic declares every dim an event dim; the plates say which are batch dims.
            deterministic.append(name)
            shape = value.shape
            plate_depth = max([-f.dim for f in frames], default=0)
            batch_ndim = max(len(shape) - event_ndim, min(plate_depth, len(shape)))
            shapes[name], batch_shapes[name] = shape, shape[:batch_ndim]
            dims[name] = _dims_for(site, name, len(shape), batch_ndim)
            continue
        if site["is_observed"]:
            if _is_factor(site) and (declared is None or name not in declared):
                continue
            _check_observed_shape(name, fn, value)
            obs_names.append(name)
            shape = value.shape
            shapes[name], batch_shapes[name] = shape, shape[: len(shape) - event_ndim]
            dims[name] = _dims_for(site, name, len(shape), len(shape) - event_ndim)
            obs_values[name] = value
            continue
        if fn.support.is_discrete:
            raise ModelSpecError(
                f"latent site {name!r} is discrete ({type(fn).__name__}); the core samples continuous "
                "latents only. Marginalise it out (sum it with the family's exact algorithm, or use "
                "pyro.factor with the marginal log-likelihood) or observe it."
            )
        transform = biject_to(fn.support)
        shape = fn.shape()
        latents.append(
            LatentSite(
                name=name,
                shape=shape,
                batch_shape=batch_shape,
                unconstrained_shape=transform.inverse_shape(shape),
                transform=transform,
                dims=_dims_for(site, name, len(shape), len(batch_shape)),
            )
        )
        shapes[name], batch_shapes[name] = shape, batch_shape
        dims[name] = latents[-1].dims
    if declared is not None:
        missing = [n for n in declared if n not in obs_names]
        if missing:
            raise ModelSpecError(
                f"observed site(s) {missing} were declared but the model has no observed site of that "
                f"name; its observed sites are {obs_names}."
            )
        obs_names = [n for n in obs_names if n in declared]
    if max_plate_nesting is None:
        max_plate_nesting = deepest_plate
    return ModelInfo(
        latents=tuple(latents),
        observed=tuple(obs_names),
        deterministic=tuple(deterministic),
        max_plate_nesting=int(max_plate_nesting),
        site_shapes=shapes,
        site_batch_shapes=batch_shapes,
        site_dims=dims,
        observed_values=obs_values,
    )


def _check_observed_shape(name: str, fn: TorchDistributionMixin, value: torch.Tensor) -> None:
    expected = fn.batch_shape + fn.event_shape
    try:
        broadcast = torch.broadcast_shapes(expected, value.shape)
    except RuntimeError:
        broadcast = None
    if broadcast != value.shape:
        raise ShapeError(
            f"observed site {name!r}: the data has shape {tuple(value.shape)} but the distribution "
            f"{type(fn).__name__} has shape {tuple(expected)}; torch would broadcast them to "
            f"{tuple(broadcast) if broadcast is not None else 'an error'}. Reshape the data or the "
            "distribution's parameters so they agree (a common cause: y of shape (n, 1) against a mean of shape (n,))."
        )
