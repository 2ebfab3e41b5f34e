"""Euclidean metrics (inverse mass matrices) of Hamiltonian Monte Carlo, one per chain: the velocity and
kinetic energy of momenta, and momentum draws."""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["Metric", "velocity", "kinetic_energy"]


def velocity(inverse_mass: torch.Tensor, momentum: torch.Tensor) -> torch.Tensor:
    """``inverse_mass @ momentum`` per chain; ``momentum`` may carry leading dims before ``(chains, dim)``."""
    if inverse_mass.dim() == 3:
        return torch.einsum("cij,...cj->...ci", inverse_mass, momentum)
    return inverse_mass * momentum


def kinetic_energy(inverse_mass: torch.Tensor, momentum: torch.Tensor) -> torch.Tensor:
    """``0.5 * momentum' inverse_mass momentum`` per chain."""
    return 0.5 * (momentum * velocity(inverse_mass, momentum)).sum(-1)


class Metric(NamedTuple):
    """A Euclidean metric (the inverse mass matrix), per chain.

    Attributes
    ----------
    inverse_mass : Tensor
        Diagonal ``(chains, dim)`` or dense ``(chains, dim, dim)``.
    momentum_factor : Tensor
        Diagonal ``(chains, dim)``: ``1 / sqrt(inverse_mass)``; dense: the
        Cholesky factor of the mass matrix, so momentum = factor @ N(0, I).
    """

    inverse_mass: torch.Tensor
    momentum_factor: torch.Tensor

    @property
    def dense(self) -> bool:
        """Whether the metric is a dense matrix."""
        return self.inverse_mass.dim() == 3

    @classmethod
    def from_inverse_mass(cls, inverse_mass: torch.Tensor) -> "Metric":
        """Build the metric and its momentum factor from an inverse mass matrix."""
        if inverse_mass.dim() == 2:
            return cls(inverse_mass, inverse_mass.rsqrt())
        mass = torch.cholesky_inverse(torch.linalg.cholesky(inverse_mass))
        return cls(inverse_mass, torch.linalg.cholesky(mass))

    def kinetic_energy(self, momentum: torch.Tensor) -> torch.Tensor:
        """``0.5 * momentum' inverse_mass momentum`` per chain."""
        return kinetic_energy(self.inverse_mass, momentum)

    def sample_momentum(self, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Draw momenta from N(0, mass) for every chain."""
        noise = torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)
        if self.dense:
            return torch.einsum("cij,cj->ci", self.momentum_factor, noise)
        return self.momentum_factor * noise
