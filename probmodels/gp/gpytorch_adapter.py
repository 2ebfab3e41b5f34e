"""GPyTorch kernels, likelihoods and priors as the settings of a probmodels GP.

Users who build their covariance the GPyTorch way (``ScaleKernel(RBFKernel(
ard_num_dims=3, lengthscale_prior=GammaPrior(3, 6)))``) keep doing so:
:func:`from_gpytorch` reads the kernel tree, its current hyperparameter values
and its priors (and the noise and noise prior of a ``GaussianLikelihood``)
and returns the keyword arguments of :class:`~probmodels.gp.GPRegression`,
whose fits then add what a hand-written GPyTorch loop lacks: float64 exact
Cholesky with warned jitter, standardisation, restarts and a convergence
check, and NUTS over the hyperparameters with the same priors.

The conversion is exact: the probmodels kernel evaluates the same matrix as
the GPyTorch kernel at the converted values (tested to 1e-12). Two
parametrisations differ and are converted: GPyTorch's ``PeriodicKernel``
divides by the lengthscale where :class:`~probmodels.gp.kernels.Periodic`
divides by its square (the lengthscale and its prior are mapped by a square
root), and ``LinearKernel``'s variance becomes the output scale of a scaled
:class:`~probmodels.gp.kernels.Linear`.

The values are starting points in the units the GP works in: with
standardisation on (the default), lengthscales are in standard deviations of
each feature and the output scale and noise in variances of ``y``. Pass
``standardize_x=False, standardize_y=False`` to keep GPyTorch's units.
"""

from __future__ import annotations

from typing import Any

import pyro.distributions as dist
import torch
from pyro.distributions.transforms import PowerTransform

from ..exceptions import ModelSpecError
from .hyper import NOISE
from .kernels import RBF, Kernel, Linear, Matern, Periodic, Product, RationalQuadratic, Scale, Sum

__all__ = ["from_gpytorch"]

_NUS = (0.5, 1.5, 2.5)


def from_gpytorch(kernel: Any, likelihood: Any = None) -> dict[str, Any]:
    """Keyword arguments of :class:`~probmodels.gp.GPRegression` from a GPyTorch kernel (and likelihood).

    Parameters
    ----------
    kernel
        A ``gpytorch.kernels.Kernel`` built from ``ScaleKernel``,
        ``RBFKernel``, ``MaternKernel``, ``RQKernel``, ``PeriodicKernel`` (one
        input feature), ``LinearKernel`` (one variance), ``AdditiveKernel``
        and ``ProductKernel`` (also as ``k1 + k2`` and ``k1 * k2``), without
        batch shapes or ``active_dims``.
    likelihood
        A ``gpytorch.likelihoods.GaussianLikelihood`` (its noise variance and
        noise prior), or None to leave the noise to the GP's defaults.

    Returns
    -------
    dict
        ``kernel`` (a probmodels kernel tree), ``hyperparameters`` (the
        current GPyTorch values, by probmodels name) and ``priors`` (Pyro
        distributions for the hyperparameters that had a GPyTorch prior):
        pass them on as ``GPRegression(**from_gpytorch(k, lik), method="nuts")``.

    Raises
    ------
    ModelSpecError
        A kernel, likelihood or prior with no exact counterpart, naming it
        and what to use instead.

    Examples
    --------
    >>> import gpytorch
    >>> from probmodels.gp import GPRegression, from_gpytorch
    >>> k = gpytorch.kernels.ScaleKernel(gpytorch.kernels.RBFKernel(ard_num_dims=2))
    >>> settings = from_gpytorch(k, gpytorch.likelihoods.GaussianLikelihood())
    >>> sorted(settings["hyperparameters"])
    ['lengthscale', 'noise', 'outputscale']
    >>> gp = GPRegression(**settings)
    """
    import gpytorch

    values: dict[str, torch.Tensor] = {}
    priors: dict[str, dist.Distribution] = {}
    tree = _convert(kernel, "", values, priors, gpytorch)
    if likelihood is not None:
        if type(likelihood) is not gpytorch.likelihoods.GaussianLikelihood:
            raise ModelSpecError(
                f"likelihood must be a gpytorch GaussianLikelihood (homoscedastic noise), got {type(likelihood).__name__}; "
                "GPRegression has one noise variance, so leave likelihood=None for other likelihoods and set the noise "
                "with hyperparameters={'noise': ...}."
            )
        values[NOISE] = likelihood.noise.detach().reshape(()).to(torch.float64)
        _take_prior(likelihood.noise_covar, "noise_prior", NOISE, priors)
    return {"kernel": tree, "hyperparameters": values, "priors": priors}


def _convert(kernel: Any, prefix: str, values: dict[str, torch.Tensor], priors: dict[str, dist.Distribution], gpytorch: Any) -> Kernel:
    """The probmodels counterpart of one GPyTorch kernel node; fills ``values`` and ``priors`` under ``prefix``."""
    k = gpytorch.kernels
    name = type(kernel).__name__
    if not isinstance(kernel, k.Kernel):
        raise TypeError(f"kernel must be a gpytorch Kernel, got {name}.")
    if kernel.active_dims is not None:
        raise ModelSpecError(f"{name} has active_dims; probmodels kernels use every input feature. Select the columns of X instead.")
    if len(kernel.batch_shape) > 0:
        raise ModelSpecError(f"{name} has batch_shape {tuple(kernel.batch_shape)}; convert one GP at a time (no batch shape).")
    if type(kernel) is k.ScaleKernel:
        values[prefix + "outputscale"] = _value(kernel.outputscale)
        _take_prior(kernel, "outputscale_prior", prefix + "outputscale", priors)
        return Scale(_convert(kernel.base_kernel, prefix, values, priors, gpytorch))
    if type(kernel) in (k.AdditiveKernel, k.ProductKernel):
        additive = type(kernel) is k.AdditiveKernel
        parts = tuple(
            _convert(part, f"{prefix}{'k' if additive else 'f'}{i}.", values, priors, gpytorch) for i, part in enumerate(kernel.kernels)
        )
        return Sum(parts) if additive else Product(parts)
    if type(kernel) is k.LinearKernel:
        variance = _value(kernel.variance)
        if variance.numel() != 1:
            raise ModelSpecError("LinearKernel with one variance per feature (ard_num_dims > 1) has no probmodels counterpart; use one variance.")
        values[prefix + "outputscale"] = variance.reshape(())
        _take_prior(kernel, "variance_prior", prefix + "outputscale", priors)
        return Scale(Linear())
    if type(kernel) is k.PeriodicKernel:
        if kernel.lengthscale.numel() != 1 or kernel.period_length.numel() != 1:
            raise ModelSpecError(
                "PeriodicKernel with ard_num_dims > 1 sums per-feature terms, which probmodels' Periodic (one distance) "
                "does not; use it on one input feature."
            )
        values[prefix + "lengthscale"] = _value(kernel.lengthscale).reshape(1).sqrt()
        values[prefix + "period"] = _value(kernel.period_length).reshape(())
        _take_prior(kernel, "lengthscale_prior", prefix + "lengthscale", priors, square_root=True)
        _take_prior(kernel, "period_length_prior", prefix + "period", priors)
        return Periodic()
    stationary = {k.RBFKernel: lambda ard: RBF(ard), k.RQKernel: lambda ard: RationalQuadratic(ard)}
    if type(kernel) in stationary or type(kernel) is k.MaternKernel:
        lengthscale = _value(kernel.lengthscale).reshape(-1)
        ard = lengthscale.numel() > 1
        if type(kernel) is k.MaternKernel:
            if kernel.nu not in _NUS:
                raise ModelSpecError(f"MaternKernel nu must be one of {_NUS}, got {kernel.nu}.")
            tree: Kernel = Matern(kernel.nu, ard)
        else:
            tree = stationary[type(kernel)](ard)
        values[prefix + "lengthscale"] = lengthscale
        _take_prior(kernel, "lengthscale_prior", prefix + "lengthscale", priors)
        if type(kernel) is k.RQKernel:
            values[prefix + "alpha"] = _value(kernel.alpha).reshape(())
            _take_prior(kernel, "alpha_prior", prefix + "alpha", priors)
        return tree
    raise ModelSpecError(
        f"gpytorch {name} has no exact probmodels counterpart; supported: ScaleKernel, RBFKernel, MaternKernel, RQKernel, "
        "PeriodicKernel, LinearKernel, AdditiveKernel, ProductKernel. Build the kernel with probmodels.gp.kernels instead."
    )


def _value(parameter: torch.Tensor) -> torch.Tensor:
    """A GPyTorch hyperparameter's constrained value, detached, in float64."""
    return parameter.detach().to(torch.float64)


def _take_prior(module: Any, attribute: str, name: str, priors: dict[str, dist.Distribution], *, square_root: bool = False) -> None:
    """Put the Pyro counterpart of ``module.<attribute>`` (a GPyTorch prior, if set) in ``priors[name]``."""
    prior = getattr(module, attribute, None)
    if prior is None:
        return
    converted = _pyro_prior(prior, f"{type(module).__name__}.{attribute}")
    priors[name] = dist.TransformedDistribution(converted, [PowerTransform(torch.tensor(0.5, dtype=torch.float64))]) if square_root else converted


def _pyro_prior(prior: Any, where: str) -> dist.Distribution:
    """The Pyro distribution with the density of a GPyTorch prior over a positive value."""
    import gpytorch.priors as p

    if getattr(prior, "_transform", None) is not None:
        raise ModelSpecError(f"{where} has a transform; give the prior of the hyperparameter itself (no transform=).")
    as_float = {name: getattr(prior, name).detach().to(torch.float64) for name in ("concentration", "rate", "loc", "scale", "low", "high") if hasattr(prior, name)}
    if isinstance(prior, p.GammaPrior):
        return dist.Gamma(as_float["concentration"], as_float["rate"])
    if isinstance(prior, p.LogNormalPrior):
        return dist.LogNormal(as_float["loc"], as_float["scale"])
    if isinstance(prior, p.HalfCauchyPrior):
        return dist.HalfCauchy(as_float["scale"])
    if isinstance(prior, p.HalfNormalPrior):
        return dist.HalfNormal(as_float["scale"])
    if isinstance(prior, p.UniformPrior) and bool((as_float["low"] >= 0).all()):
        return dist.Uniform(as_float["low"], as_float["high"])
    raise ModelSpecError(
        f"{where} is a {type(prior).__name__}, which does not convert to a prior over a positive hyperparameter; use "
        "GammaPrior, LogNormalPrior, HalfCauchyPrior, HalfNormalPrior or a UniformPrior on [low >= 0, high], or give "
        "probmodels priors= directly."
    )
