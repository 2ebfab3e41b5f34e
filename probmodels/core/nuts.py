"""The No-U-Turn Sampler with every chain advancing together as one batch.

All chains share one Python loop: at each tree doubling every chain that is
still running builds a subtree of the same size, one leapfrog step at a time,
with its own random direction, step size and mass matrix. A chain whose
subtree turns or diverges stops and is masked for the rest of the
transition, so each chain performs exactly the NUTS transition it would
perform alone (multinomial sampling with a biased progressive sample between
subtrees, the generalised U-turn criterion checked on every sub-subtree
through momentum checkpoints as in NumPyro's iterative NUTS, and Stan's
rejection of subtrees that turn or diverge).

The target is any :class:`~probmodels.core.density.LogDensity`-like object
with ``value_and_grad(u) -> (logp (batch,), grad (batch, dim))``.

References
----------
M. D. Hoffman and A. Gelman (2014). The No-U-Turn Sampler. JMLR 15.
M. Betancourt (2017). A Conceptual Introduction to Hamiltonian Monte Carlo. arXiv:1701.02434.
D. Phan, N. Pradhan, M. Jankowiak (2019). Composable Effects for Flexible and
Accelerated Probabilistic Programming in NumPyro. arXiv:1912.11554.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Protocol

import torch

__all__ = ["ChainState", "TransitionInfo", "Metric", "nuts_transition", "leapfrog"]


class GradientTarget(Protocol):
    """A batched log density with gradients."""

    def value_and_grad(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover
        ...


class ChainState(NamedTuple):
    """Where each chain is.

    Attributes
    ----------
    position : Tensor
        Unconstrained positions, shape ``(chains, dim)``.
    log_density : Tensor
        Log density at ``position``, shape ``(chains,)``.
    grad : Tensor
        Gradient of the log density at ``position``, shape ``(chains, dim)``.
    """

    position: torch.Tensor
    log_density: torch.Tensor
    grad: torch.Tensor


class TransitionInfo(NamedTuple):
    """Per-chain statistics of one NUTS transition, each shaped ``(chains,)``.

    Attributes
    ----------
    diverging : Tensor
        True when the trajectory hit an energy error above the divergence threshold.
    tree_depth : Tensor
        Number of tree doublings.
    n_steps : Tensor
        Number of leapfrog steps taken.
    acceptance_rate : Tensor
        Mean Metropolis acceptance probability over the trajectory (the
        statistic step-size adaptation targets).
    energy : Tensor
        Hamiltonian at the selected state (for the energy plot and BFMI).
    """

    diverging: torch.Tensor
    tree_depth: torch.Tensor
    n_steps: torch.Tensor
    acceptance_rate: torch.Tensor
    energy: torch.Tensor


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

    def velocity(self, momentum: torch.Tensor) -> torch.Tensor:
        """``inverse_mass @ momentum`` per chain."""
        if self.dense:
            return torch.einsum("cij,cj->ci", self.inverse_mass, momentum)
        return self.inverse_mass * momentum

    def kinetic_energy(self, momentum: torch.Tensor) -> torch.Tensor:
        """``0.5 * momentum' inverse_mass momentum`` per chain."""
        return 0.5 * (momentum * self.velocity(momentum)).sum(-1)

    def sample_momentum(self, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Draw momenta from N(0, mass) for every chain."""
        noise = torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)
        if self.dense:
            return torch.einsum("cij,cj->ci", self.momentum_factor, noise)
        return self.momentum_factor * noise


def leapfrog(
    target: GradientTarget,
    metric: Metric,
    position: torch.Tensor,
    momentum: torch.Tensor,
    grad: torch.Tensor,
    step: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One leapfrog step of signed size ``step`` (shape ``(chains,)``) for every chain.

    Returns the new position, momentum, log density and gradient.
    """
    step = step.unsqueeze(-1)
    momentum = momentum + 0.5 * step * grad
    position = position + step * metric.velocity(momentum)
    log_density, grad = target.value_and_grad(position)
    momentum = momentum + 0.5 * step * grad
    return position, momentum, log_density, grad


def _select(mask: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """Rows of ``new`` where ``mask`` holds, else rows of ``old``.

    ``mask`` is ``(chains,)`` for ``(chains,)`` tensors and ``(chains, 1)`` for
    ``(chains, dim)`` tensors (the caller keeps both forms to save reshapes).
    """
    return torch.where(mask, new, old)


def _is_turning(metric: Metric, momentum_left: torch.Tensor, momentum_right: torch.Tensor, momentum_sum: torch.Tensor) -> torch.Tensor:
    """Generalised U-turn criterion (Betancourt 2017, A.4.2) for a sub-trajectory."""
    centred = momentum_sum - 0.5 * (momentum_left + momentum_right)
    left = (metric.velocity(momentum_left) * centred).sum(-1) <= 0
    right = (metric.velocity(momentum_right) * centred).sum(-1) <= 0
    return left | right


def _checkpoint_range(leaf: int) -> tuple[int, int]:
    """Checkpoints whose sub-subtrees end at leaf ``leaf`` (NumPyro's iterative NUTS)."""
    idx_max = bin(leaf >> 1).count("1")
    num_subtrees = bin((~leaf & (leaf + 1)) - 1).count("1")
    return idx_max - num_subtrees + 1, idx_max


def _uniform(shape: tuple[int, ...], like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(shape, generator=generator, dtype=like.dtype, device=like.device)


def nuts_transition(
    target: GradientTarget,
    state: ChainState,
    step_size: torch.Tensor,
    metric: Metric,
    generator: torch.Generator | None = None,
    *,
    max_tree_depth: int = 10,
    max_delta_energy: float = 1000.0,
) -> tuple[ChainState, TransitionInfo]:
    """Advance every chain by one NUTS transition.

    Parameters
    ----------
    target
        Batched log density with gradients.
    state
        Current positions, log densities and gradients.
    step_size
        Per-chain step sizes, shape ``(chains,)``.
    metric
        Per-chain metric.
    generator
        Random generator (momenta, directions, multinomial choices).
    max_tree_depth
        Maximum number of doublings (a trajectory has at most ``2**max_tree_depth`` steps).
    max_delta_energy
        Energy error above which a trajectory is called divergent.

    Returns
    -------
    ChainState, TransitionInfo
        The new state and per-chain statistics.
    """
    position, log_density, grad = state
    chains, dim = position.shape
    momentum = metric.sample_momentum(position, generator)
    energy0 = -log_density + metric.kinetic_energy(momentum)

    # Trajectory edges, the selected proposal, and the trajectory's sums.
    left = [position, momentum, grad]
    right = [position, momentum, grad]
    proposal = [position, log_density, grad, momentum]
    log_weight = torch.zeros_like(log_density)
    momentum_sum = momentum.clone()
    running = torch.ones(chains, dtype=torch.bool, device=position.device)
    depth = torch.zeros(chains, dtype=torch.long, device=position.device)
    diverging = torch.zeros_like(running)
    accept_sum = torch.zeros_like(log_density)
    n_steps = torch.zeros_like(depth)
    checkpoints_r = position.new_zeros((max_tree_depth, chains, dim))
    checkpoints_sum = position.new_zeros((max_tree_depth, chains, dim))

    for tree_depth in range(max_tree_depth):
        if not bool(running.any()):
            break
        go_right = _uniform((chains,), position, generator) < 0.5
        step = torch.where(go_right, step_size, -step_size)
        go_right_col = go_right.unsqueeze(-1)
        z, r, g = (_select(go_right_col, a, b) for a, b in zip(right, left))
        sub_alive = running.clone()
        sub_log_weight = torch.full_like(log_weight, -math.inf)
        sub_sum = torch.zeros_like(momentum)
        sub_proposal = [z, log_density, g, r]
        sub_turning = torch.zeros_like(running)
        sub_diverging = torch.zeros_like(running)
        for leaf in range(2**tree_depth):
            z_new, r_new, lp_new, g_new = leapfrog(target, metric, z, r, g, step)
            delta = -lp_new + metric.kinetic_energy(r_new) - energy0
            delta = torch.where(torch.isnan(delta), torch.full_like(delta, math.inf), delta)
            leaf_diverging = delta > max_delta_energy
            alive = sub_alive
            every = bool(alive.all())
            alive_col = alive.unsqueeze(-1)
            if every:
                z, r, g = z_new, r_new, g_new
            else:
                z, r, g = _select(alive_col, z_new, z), _select(alive_col, r_new, r), _select(alive_col, g_new, g)
            accept_sum = accept_sum + torch.where(alive, torch.exp(torch.clamp(-delta, max=0.0)), 0.0)
            n_steps = n_steps + alive.long()
            # Uniform progressive sampling inside the subtree.
            new_sub_weight = torch.logaddexp(sub_log_weight, -delta)
            take = alive & (_uniform((chains,), position, generator) < torch.exp(-delta - new_sub_weight))
            take_col = take.unsqueeze(-1)
            sub_proposal = [
                _select(take_col, z_new, sub_proposal[0]),
                _select(take, lp_new, sub_proposal[1]),
                _select(take_col, g_new, sub_proposal[2]),
                _select(take_col, r_new, sub_proposal[3]),
            ]
            sub_log_weight = torch.where(alive, new_sub_weight, sub_log_weight)
            sub_sum = sub_sum + r_new if every else _select(alive_col, sub_sum + r_new, sub_sum)
            # U-turn checks on every sub-subtree that ends at this leaf.
            idx_min, idx_max = _checkpoint_range(leaf)
            if leaf % 2 == 0:
                checkpoints_r[idx_max] = r_new if every else _select(alive_col, r_new, checkpoints_r[idx_max])
                checkpoints_sum[idx_max] = sub_sum if every else _select(alive_col, sub_sum, checkpoints_sum[idx_max])
            turning = torch.zeros_like(running)
            for i in range(idx_max, idx_min - 1, -1):
                subtree_sum = sub_sum - checkpoints_sum[i] + checkpoints_r[i]
                turning = turning | _is_turning(metric, checkpoints_r[i], r_new, subtree_sum)
            sub_turning = sub_turning | (alive & turning)
            sub_diverging = sub_diverging | (alive & leaf_diverging)
            sub_alive = alive & ~turning & ~leaf_diverging
            if not bool(sub_alive.any()):
                break
        # Merge the subtree into the trajectory (biased progressive sampling).
        valid = running & ~sub_turning & ~sub_diverging
        take = valid & (_uniform((chains,), position, generator) < torch.exp(torch.clamp(sub_log_weight - log_weight, max=0.0)))
        take_col = take.unsqueeze(-1)
        proposal = [_select(take_col if new.dim() == 2 else take, new, old) for new, old in zip(sub_proposal, proposal)]
        to_right = (running & go_right).unsqueeze(-1)
        to_left = (running & ~go_right).unsqueeze(-1)
        right = [_select(to_right, new, old) for new, old in zip((z, r, g), right)]
        left = [_select(to_left, new, old) for new, old in zip((z, r, g), left)]
        log_weight = torch.where(running, torch.logaddexp(log_weight, sub_log_weight), log_weight)
        momentum_sum = _select(running.unsqueeze(-1), momentum_sum + sub_sum, momentum_sum)
        depth = depth + running.long()
        diverging = diverging | (running & sub_diverging)
        turning = _is_turning(metric, left[1], right[1], momentum_sum)
        running = valid & ~turning

    new_position, new_log_density, new_grad, new_momentum = proposal
    info = TransitionInfo(
        diverging=diverging,
        tree_depth=depth,
        n_steps=n_steps,
        acceptance_rate=accept_sum / n_steps.clamp(min=1),
        energy=-new_log_density + metric.kinetic_energy(new_momentum),
    )
    return ChainState(new_position, new_log_density, new_grad), info
