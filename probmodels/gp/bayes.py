"""GP hyperparameters as a Pyro program, so the inference core can sample their full posterior.

:class:`GPMarginalModel` samples every free hyperparameter from its prior
and observes ``y`` under the exact marginal likelihood
``N(y | 0, K + noise I)``, written as :class:`GPMarginal`, a distribution
whose log density is ``-inf`` (never an exception) where the covariance is
not positive definite: inside NUTS a failed Cholesky is a divergent
transition, not a crashed chain. The hyperparameter values may carry batch
dimensions (the core's chain plate), so all chains share one batched
Cholesky.
"""

from __future__ import annotations

from typing import Mapping

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions.torch_distribution import TorchDistribution
from torch.distributions import constraints

from .hyper import NOISE, HyperSpace, default_prior
from .ops import masked_log_marginal_likelihood

__all__ = ["GPMarginal", "GPMarginalModel", "NOISE_FREE_JITTER"]

NOISE_FREE_JITTER = 1e-10


class GPMarginal(TorchDistribution):
    """``N(y | 0, covariance)`` with a non-raising, ``-inf``-on-failure log density.

    Parameters
    ----------
    covariance
        ``(..., n, n)`` covariance of the observations (kernel plus noise).
    """

    arg_constraints = {"covariance": constraints.real}
    support = constraints.real_vector

    def __init__(self, covariance: torch.Tensor, validate_args: bool | None = None) -> None:
        self.covariance = covariance
        super().__init__(covariance.shape[:-2], covariance.shape[-1:], validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        return GPMarginal(self.covariance.expand(batch_shape + self.covariance.shape[-2:]))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return masked_log_marginal_likelihood(self.covariance, value)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        chol = torch.linalg.cholesky(self.covariance)
        shape = torch.Size(sample_shape) + self.covariance.shape[:-1]
        eps = torch.randn(shape, dtype=self.covariance.dtype, device=self.covariance.device)
        return (chol @ eps.unsqueeze(-1)).squeeze(-1)


class GPMarginalModel:
    """Pyro program of a GP's hyperparameters with the exact marginal likelihood.

    Call it as ``model(X, y)`` with inputs ``(n, d)`` and targets ``(n,)``
    (``y=None`` samples them). The sites are the free hyperparameters, by
    name, and the observed site ``"y"`` (one joint density, so the
    log-likelihood has no per-point axis).

    Parameters
    ----------
    space
        The hyperparameters (kernel tree, fixed values).
    priors
        ``name -> distribution`` over the constrained (positive) values;
        names without one get :func:`~probmodels.gp.hyper.default_prior`.
    jitter
        A nugget added to the covariance diagonal of the sampled density
        (the program and :meth:`log_marginal_likelihood`), relative to its mean
        diagonal, as Stan programs add a small ``delta``. The default,
        None, adds :data:`NOISE_FREE_JITTER` when the noise is fixed at zero
        (a noise-free GP with duplicate inputs has an exactly singular
        kernel matrix) and nothing otherwise. Covariances that are still not
        positive definite give ``-inf``.
    """

    observed = ("y",)
    max_plate_nesting = 0

    def __init__(self, space: HyperSpace, priors: Mapping[str, dist.Distribution] | None = None, *, jitter: float | None = None) -> None:
        self.space = space
        self.priors = dict(priors or {})
        if jitter is None:
            noise_free = NOISE in space.fixed and float(space.init.get(NOISE, 1.0)) == 0.0
            jitter = NOISE_FREE_JITTER if noise_free else 0.0
        self.jitter = jitter

    def prior(self, name: str, shape: tuple[int, ...]) -> dist.Distribution:
        """The prior of a hyperparameter, expanded to its shape as an event."""
        prior = self.priors.get(name) or default_prior(name, self.space.like)
        return prior.expand(shape).to_event(len(shape)) if shape else prior

    def sample_hyperparameters(self) -> dict[str, torch.Tensor]:
        """Sample the free hyperparameters as Pyro sites; fixed ones come from the space."""
        values: dict[str, torch.Tensor] = {}
        for spec in self.space.specs:
            if spec.name in self.space.fixed:
                values[spec.name] = self.space.value(spec)
            else:
                values[spec.name] = pyro.sample(spec.name, self.prior(spec.name, spec.shape))
        return values

    def covariance(self, values: Mapping[str, torch.Tensor], X: torch.Tensor) -> torch.Tensor:
        """``K(X, X) + noise I`` for hyperparameter values with any leading batch shape."""
        batch = values[NOISE].shape
        kernel_values = {k: v for k, v in values.items() if k != NOISE}
        for spec in self.space.specs:
            if spec.name != NOISE:
                kernel_values[spec.name] = kernel_values[spec.name].expand(batch + spec.shape)
        K = self.space.kernel.matrix(kernel_values, X, X)
        # diag_embed, not noise * eye: its gradient is a diagonal read, not another n x n product and sum.
        return K + torch.diag_embed(values[NOISE].unsqueeze(-1).expand(batch + X.shape[:1]))

    def _with_nugget(self, cov: torch.Tensor) -> torch.Tensor:
        """The covariance of the sampled density: ``cov`` plus the ``jitter`` nugget."""
        if not self.jitter:
            return cov
        nugget = self.jitter * cov.diagonal(dim1=-2, dim2=-1).mean(-1)
        return cov + nugget[..., None, None] * torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)

    def log_marginal_likelihood(self, params: Mapping[str, torch.Tensor], X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Exact ``log p(y | X, params)`` (``-inf`` where the covariance is not positive definite)."""
        full = {spec.name: params[spec.name] if spec.name in params else self.space.value(spec) for spec in self.space.specs}
        batch = torch.broadcast_shapes(*(v.shape[: v.dim() - len(s.shape)] for v, s in zip(full.values(), self.space.specs)))
        full = {s.name: full[s.name].expand(batch + s.shape) for s in self.space.specs}
        return masked_log_marginal_likelihood(self._with_nugget(self.covariance(full, X)), y)

    def __call__(self, X: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        values = self.sample_hyperparameters()
        batch = torch.broadcast_shapes(*(v.shape[: v.dim() - len(s.shape)] for v, s in zip(values.values(), self.space.specs)))
        values = {s.name: values[s.name].expand(batch + s.shape) for s in self.space.specs}
        return pyro.sample("y", GPMarginal(self._with_nugget(self.covariance(values, X))), obs=y)
