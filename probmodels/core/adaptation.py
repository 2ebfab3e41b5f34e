"""Stan-style warmup: dual-averaging step sizes and windowed metric estimation, per chain.

Warmup runs in three phases (Stan's defaults): a fast initial buffer (75
iterations) adapting only the step size, slow windows (25, 50, 100, ...
iterations) at the end of each of which the metric is re-estimated from the
window's draws and the step size search restarts, and a fast terminal buffer
(50 iterations). Every statistic is kept per chain; with ``pooled=True`` the
metric and the step size are shared by all chains (the many-chain regime).
Pooled statistics are reduced over the chains by a :class:`ChainPool`: this
process's chains by default, the chains of every rank when the chains are
split across processes (:mod:`probmodels.distributed.chains`).

References
----------
Stan Reference Manual, "HMC algorithm parameters" (adaptation).
M. D. Hoffman and A. Gelman (2014), section 3.2 (dual averaging).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .nuts import ChainState, GradientTarget, Metric, leapfrog

__all__ = ["ChainPool", "WarmupSchedule", "DualAveraging", "MetricEstimator", "find_reasonable_step_size"]


class ChainPool:
    """Reductions over every chain of a run, for pooled adaptation.

    This base class pools the chains of this process (the batch dimension 0
    of its tensors); :class:`probmodels.distributed.chains.RankPool` also
    pools the chains of the other ranks of a ``torch.distributed`` run.
    """

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """Mean over all chains of ``values`` ``(chains, ...)``."""
        return values.mean(0)

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """Sum over all chains of ``values`` ``(chains, ...)``."""
        return values.sum(0)

    def median(self, values: torch.Tensor) -> torch.Tensor:
        """Median over all chains of ``values`` ``(chains,)`` (the lower one of an even count)."""
        return values.median()

    def num_chains(self, local_chains: int) -> int:
        """The number of chains in the pool, given this process's."""
        return local_chains


LOCAL_POOL = ChainPool()


@dataclass(frozen=True)
class WarmupSchedule:
    """Stan's warmup windows.

    Attributes
    ----------
    num_warmup : int
        Total warmup iterations.
    window_ends : tuple of int
        Iterations (0-based, inclusive) at which a slow window ends and the
        metric is updated.
    window_start : int
        First iteration of the first slow window.
    """

    num_warmup: int
    window_ends: tuple[int, ...]
    window_start: int

    @classmethod
    def stan(cls, num_warmup: int, init_buffer: int = 75, term_buffer: int = 50, base_window: int = 25) -> "WarmupSchedule":
        """Build Stan's schedule, shrinking the buffers as Stan does for short warmups."""
        if num_warmup < 20:
            return cls(num_warmup, (), num_warmup)
        if init_buffer + base_window + term_buffer > num_warmup:
            init_buffer = int(0.15 * num_warmup)
            term_buffer = int(0.1 * num_warmup)
            base_window = num_warmup - (init_buffer + term_buffer)
        ends = []
        start, size = init_buffer, base_window
        last = num_warmup - term_buffer
        while start + size <= last:
            end = start + size
            if end + 2 * size > last:
                end = last
            ends.append(end - 1)
            start, size = end, 2 * size
        return cls(num_warmup, tuple(ends), init_buffer)

    def in_slow_window(self, iteration: int) -> bool:
        """Whether draws of this iteration feed the metric estimate."""
        return bool(self.window_ends) and self.window_start <= iteration <= self.window_ends[-1]


@dataclass
class DualAveraging:
    """Nesterov dual averaging of log step sizes (Hoffman and Gelman 2014), per chain.

    Attributes
    ----------
    target_accept : float
        Acceptance statistic aimed at.
    gamma, t0, kappa : float
        Stan's defaults 0.05, 10, 0.75.
    """

    step_size: torch.Tensor
    target_accept: float = 0.8
    gamma: float = 0.05
    t0: float = 10.0
    kappa: float = 0.75
    pooled: bool = False
    pool: ChainPool = LOCAL_POOL
    mu: torch.Tensor = field(init=False)
    log_step_bar: torch.Tensor = field(init=False)
    h_bar: torch.Tensor = field(init=False)
    count: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.restart(self.step_size)

    def restart(self, step_size: torch.Tensor) -> None:
        """Restart around ``step_size`` (mu = log(10 * step_size))."""
        self.step_size = step_size
        self.mu = torch.log(10 * step_size)
        self.log_step_bar = torch.zeros_like(step_size)
        self.h_bar = torch.zeros_like(step_size)
        self.count = 0

    def update(self, acceptance_rate: torch.Tensor) -> torch.Tensor:
        """Feed one iteration's acceptance statistics; returns the next step sizes."""
        accept = torch.nan_to_num(acceptance_rate, nan=0.0).clamp(max=1.0)
        if self.pooled:
            accept = self.pool.mean(accept).expand_as(accept)
        self.count += 1
        eta = 1.0 / (self.count + self.t0)
        self.h_bar = (1 - eta) * self.h_bar + eta * (self.target_accept - accept)
        log_step = self.mu - self.h_bar * math.sqrt(self.count) / self.gamma
        weight = self.count ** (-self.kappa)
        self.log_step_bar = weight * log_step + (1 - weight) * self.log_step_bar
        self.step_size = torch.exp(log_step)
        return self.step_size

    def final_step_size(self) -> torch.Tensor:
        """The averaged step size used after warmup."""
        return torch.exp(self.log_step_bar)


class MetricEstimator:
    """Welford estimates of each chain's posterior (co)variance over a window.

    Parameters
    ----------
    chains, dim : int
        Sizes.
    dense : bool
        Estimate full covariances instead of variances.
    pooled : bool
        Combine all chains' draws into one estimate shared by every chain.
    like : Tensor
        Gives dtype and device.
    pool : ChainPool
        The chains that ``pooled`` combines.
    """

    def __init__(self, chains: int, dim: int, dense: bool, pooled: bool, like: torch.Tensor, pool: ChainPool = LOCAL_POOL) -> None:
        self.dense, self.pooled, self.pool = dense, pooled, pool
        self.chains, self.dim = chains, dim
        self._like = like
        self.reset()

    def reset(self) -> None:
        """Forget the window's draws."""
        self.n = 0
        self.mean = self._like.new_zeros((self.chains, self.dim))
        shape = (self.chains, self.dim, self.dim) if self.dense else (self.chains, self.dim)
        self.m2 = self._like.new_zeros(shape)

    def update(self, position: torch.Tensor) -> None:
        """Add one draw per chain."""
        self.n += 1
        delta = position - self.mean
        self.mean = self.mean + delta / self.n
        delta2 = position - self.mean
        if self.dense:
            self.m2 = self.m2 + delta.unsqueeze(-1) * delta2.unsqueeze(-2)
        else:
            self.m2 = self.m2 + delta * delta2

    def inverse_mass(self) -> torch.Tensor:
        """Regularised (co)variance estimate, shrunk towards 1e-3 * I as Stan does."""
        n = self.n
        if self.pooled:
            # Pool within-chain sums of squares with the spread of chain means.
            grand = self.pool.mean(self.mean).unsqueeze(0)
            spread = self.mean - grand
            if self.dense:
                m2 = self.pool.sum(self.m2) + n * self.pool.sum(spread.unsqueeze(-1) * spread.unsqueeze(-2))
            else:
                m2 = self.pool.sum(self.m2) + n * self.pool.sum(spread**2)
            count = n * self.pool.num_chains(self.chains)
            covariance = (m2 / (count - 1)).expand_as(self.m2)
        else:
            count = n
            covariance = self.m2 / (n - 1)
        shrink = count / (count + 5.0)
        regulariser = 1e-3 * 5.0 / (count + 5.0)
        if self.dense:
            eye = torch.eye(self.dim, dtype=covariance.dtype, device=covariance.device)
            return shrink * covariance + regulariser * eye
        return shrink * covariance + regulariser


def find_reasonable_step_size(
    target: GradientTarget,
    state: ChainState,
    step_size: torch.Tensor,
    metric: Metric,
    generator: torch.Generator | None,
    max_iterations: int = 100,
) -> torch.Tensor:
    """Stan's step-size heuristic, per chain: double or halve until one leapfrog step's
    acceptance crosses 0.8.
    """
    log_threshold = math.log(0.8)
    step_size = step_size.clone()

    def energy_change(eps: torch.Tensor) -> torch.Tensor:
        momentum = metric.sample_momentum(state.position, generator)
        energy0 = -state.log_density + metric.kinetic_energy(momentum)
        _, r_new, lp_new, _ = leapfrog(target.value_and_grad, metric.inverse_mass, state.position, momentum, state.grad, eps)
        energy = -lp_new + metric.kinetic_energy(r_new)
        energy = torch.where(torch.isnan(energy), torch.full_like(energy, math.inf), energy)
        return energy0 - energy

    up = energy_change(step_size) > log_threshold
    searching = torch.ones_like(up)
    for _ in range(max_iterations):
        change = energy_change(step_size)
        crossed = torch.where(up, ~(change > log_threshold), ~(change < log_threshold))
        searching = searching & ~crossed
        if not bool(searching.any()):
            break
        step_size = torch.where(searching, torch.where(up, 2 * step_size, 0.5 * step_size), step_size)
        step_size = step_size.clamp(min=1e-10, max=1e7)
    return step_size
