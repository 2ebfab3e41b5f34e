"""The hyperparameters of a GP: names, shapes, log-space packing, fixed values and priors.

A GP's hyperparameters are the kernel's (:meth:`Kernel.hyperparameters`)
plus the Gaussian noise variance ``"noise"``. Optimisers see the free ones
as one flat vector of logarithms; :class:`HyperSpace` packs and unpacks it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
from torch.distributions import Distribution

from ..exceptions import ModelSpecError
from .kernels import Hyperparameter, Kernel, check_hyperparameters

__all__ = ["HyperSpace", "NOISE", "default_prior"]

NOISE = "noise"


def default_prior(name: str, like: torch.Tensor) -> Distribution:
    """Weakly informative prior for a hyperparameter in standardised units: LogNormal(0, 1),
    LogNormal(-2, 1) for the noise variance."""
    import pyro.distributions as dist

    loc = -2.0 if name == NOISE else 0.0
    return dist.LogNormal(like.new_tensor(loc), like.new_tensor(1.0))


@dataclass
class HyperSpace:
    """Free and fixed hyperparameters of a GP over ``dim`` features.

    Parameters
    ----------
    kernel
        The kernel tree.
    dim
        Number of input features.
    init
        Starting (or, for names in ``fixed``, final) values ``name -> value``;
        unspecified names start at the kernel's defaults, the noise at 0.1.
    fixed
        Names kept at their ``init`` value.
    like
        A tensor whose dtype and device every value takes.
    """

    kernel: Kernel
    dim: int
    init: Mapping[str, Any]
    fixed: tuple[str, ...]
    like: torch.Tensor
    specs: list[Hyperparameter] = field(init=False)

    def __post_init__(self) -> None:
        self.specs = self.kernel.hyperparameters(self.dim) + [Hyperparameter(NOISE, (), 0.1)]
        names = [h.name for h in self.specs]
        kernel_values = {k: v for k, v in self.init.items() if k != NOISE}
        check_hyperparameters(self.kernel, self.dim, kernel_values, extra=(NOISE,))
        if NOISE in self.init:
            noise = torch.as_tensor(self.init[NOISE], dtype=torch.float64)
            if noise.numel() != 1 or not bool(torch.isfinite(noise).all()) or float(noise) < 0:
                raise ModelSpecError(f"noise must be a finite number >= 0 (a variance), got {self.init[NOISE]!r}.")
            if float(noise) == 0 and NOISE not in self.fixed:
                raise ModelSpecError("noise=0 can only be used fixed: pass fixed=('noise',) (or learn a positive noise).")
        unknown = [n for n in self.fixed if n not in names]
        if unknown:
            raise ModelSpecError(f"fixed names {unknown} are not hyperparameters of this GP; they are {names}.")

    @property
    def names(self) -> list[str]:
        """Every hyperparameter name, kernel first, noise last."""
        return [h.name for h in self.specs]

    @property
    def free(self) -> list[Hyperparameter]:
        """The hyperparameters an optimiser or sampler changes."""
        return [h for h in self.specs if h.name not in self.fixed]

    @property
    def size(self) -> int:
        """Length of the flat log vector of the free hyperparameters."""
        return sum(math.prod(h.shape) for h in self.free)

    def value(self, spec: Hyperparameter) -> torch.Tensor:
        """The initial (or fixed) value of one hyperparameter, broadcast to its shape."""
        raw = self.init.get(spec.name, spec.init)
        # torch.as_tensor with an explicit dtype: a Python float never passes through float32.
        value = torch.as_tensor(raw, dtype=self.like.dtype, device=self.like.device)
        return value.reshape(-1).expand(math.prod(spec.shape)).reshape(spec.shape).clone() if value.numel() == 1 else value.reshape(spec.shape).clone()

    def initial_vector(self) -> torch.Tensor:
        """Logarithms of the initial values of the free hyperparameters, flattened."""
        parts = [torch.log(self.value(h)).reshape(-1) for h in self.free]
        return torch.cat(parts) if parts else self.like.new_zeros(0)

    def unpack(self, vector: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every hyperparameter's value from a log vector ``(..., size)`` of the free ones."""
        batch = vector.shape[:-1]
        values: dict[str, torch.Tensor] = {}
        offset = 0
        for spec in self.specs:
            if spec.name in self.fixed:
                values[spec.name] = self.value(spec).expand(batch + spec.shape)
                continue
            k = math.prod(spec.shape)
            values[spec.name] = torch.exp(vector[..., offset : offset + k]).reshape(batch + spec.shape)
            offset += k
        return values

    def pack(self, values: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Inverse of :meth:`unpack` for the free hyperparameters."""
        parts = [torch.log(torch.as_tensor(values[h.name], dtype=self.like.dtype, device=self.like.device)).reshape(-1) for h in self.free]
        return torch.cat(parts) if parts else self.like.new_zeros(0)
