"""Initial points for MCMC chains, with an error that names the offending sites."""

from __future__ import annotations

import math
from typing import Mapping

import torch

from ..exceptions import InferenceError
from .density import LogDensity
from .nuts import GradientTarget

__all__ = ["uniform_points", "initial_points"]


def uniform_points(chains: int, dim: int, radius: float, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Points uniform in ``(-radius, radius)^dim`` of unconstrained space (Stan's default initialisation)."""
    u = torch.rand((chains, dim), generator=generator, dtype=like.dtype, device=like.device)
    return radius * (2 * u - 1)


def initial_points(
    target: GradientTarget,
    points: torch.Tensor,
    *,
    radius: float,
    generator: torch.Generator | None,
    max_tries: int = 100,
    fixed: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Replace initial points with a non-finite log density or gradient by fresh uniform draws.

    Parameters
    ----------
    target
        The log density.
    points
        Proposed initial points, ``(chains, dim)``.
    radius
        Half-width of the uniform redraws.
    generator
        Random generator.
    max_tries
        Redraws per chain before giving up (Stan uses 100).
    fixed
        The points were given by the user: never redraw, fail at once.

    Returns
    -------
    points, log_density, grad

    Raises
    ------
    InferenceError
        When a chain finds no valid point; the message names the sites whose
        log-probability is not finite there.
    """
    log_density, grad = target.value_and_grad(points)
    for _ in range(0 if fixed else max_tries):
        bad = ~torch.isfinite(log_density)
        if not bool(bad.any()):
            break
        fresh = uniform_points(int(bad.sum()), points.shape[1], radius, points, generator)
        points = points.clone()
        points[bad] = fresh
        lp, g = target.value_and_grad(fresh)
        log_density = log_density.clone()
        grad = grad.clone()
        log_density[bad], grad[bad] = lp, g
    bad = ~torch.isfinite(log_density)
    if bool(bad.any()):
        point = points[bad.nonzero()[0, 0]]
        raise InferenceError(_describe_failure(target, point, fixed, max_tries))
    return points, log_density, grad


def _describe_failure(target: LogDensity, point: torch.Tensor, fixed: bool, max_tries: int) -> str:
    how = "at the given initial values" if fixed else f"at {max_tries} random initial points"
    if not isinstance(target, LogDensity):
        return f"the log density is not finite {how}; pass an initial position where it is finite."
    try:
        site_values: Mapping[str, torch.Tensor] = target.site_log_probs(point)
    except Exception as error:  # the model raised at that point
        return (
            f"the model raised {type(error).__name__}: {error} at every initial point tried; check that the "
            "model runs for any value of its latent sites within their supports."
        )
    bad = [name for name, value in site_values.items() if not math.isfinite(float(value))]
    sites = ", ".join(f"{name!r} (log-prob {float(site_values[name])})" for name in bad) or "none individually (check the gradient)"
    return (
        f"the log density is not finite {how}; non-finite sites: {sites}. Check that the observed data lie in "
        "the support of their distributions and that priors and likelihood agree on parameter ranges, or "
        "pass init_values inside the support."
    )
