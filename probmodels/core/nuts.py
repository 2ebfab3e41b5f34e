"""The No-U-Turn Sampler with every chain advancing together as one batch.

All chains share one Python loop: at each tree doubling every chain that is
still running builds a subtree of the same size, one leapfrog step at a time,
with its own random direction, step size and metric. A chain whose subtree
turns or diverges stops and is masked for the rest of the transition, so each
chain performs exactly the NUTS transition it would perform alone
(multinomial sampling with a biased progressive sample between subtrees, the
generalised U-turn criterion checked on every sub-subtree through momentum
checkpoints as in NumPyro's iterative NUTS, and Stan's rejection of subtrees
that turn or diverge).

Everything one leaf of a subtree does (the leapfrog step with the log
density's gradient, the energy error, the progressive sample, the checkpoint
bookkeeping and the U-turn checks) is one pure tensor function,
:func:`leaf_update`. :meth:`NUTSKernel.compile` compiles it once into a single
graph (:mod:`~probmodels.core.graph`: TorchInductor or TorchScript), which
removes the per-operation overhead of the bookkeeping and of the model; when
compiling is impossible, or a compiled call raises (a failed Cholesky, say),
the same function runs eagerly.

References
----------
M. D. Hoffman and A. Gelman (2014). The No-U-Turn Sampler. JMLR 15.
M. Betancourt (2017). A Conceptual Introduction to Hamiltonian Monte Carlo. arXiv:1701.02434.
D. Phan, N. Pradhan, M. Jankowiak (2019). Composable Effects for Flexible and
Accelerated Probabilistic Programming in NumPyro. arXiv:1912.11554.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable, NamedTuple, Protocol, Sequence

import torch

from .graph import compile_graph, outputs_agree, trace_graph

__all__ = ["GradientTarget", "ChainState", "TransitionInfo", "Metric", "NUTSKernel", "leapfrog", "leaf_update"]

ValueAndGrad = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class GradientTarget(Protocol):
    """A batched log density with gradients.

    ``value_and_grad`` must never raise for a point: a NaN, ``-inf`` or an
    exception there is reported as ``-inf`` with a zero gradient. The
    optional ``pure_value_and_grad`` is the same map written without Python
    exception handling, so it can be traced into a graph.
    """

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


def leapfrog(
    value_and_grad: ValueAndGrad,
    inverse_mass: torch.Tensor,
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
    position = position + step * velocity(inverse_mass, momentum)
    log_density, grad = value_and_grad(position)
    momentum = momentum + 0.5 * step * grad
    return position, momentum, log_density, grad


class Subtree(NamedTuple):
    """The subtree being built, per chain (every field a tensor with chains first,
    except the checkpoints, which have the checkpoint index first).

    Attributes
    ----------
    z, r, g : Tensor
        Position, momentum and gradient at the subtree's growing edge.
    proposal_z, proposal_lp, proposal_g, proposal_r : Tensor
        The subtree's multinomial sample.
    log_weight : Tensor
        Log of the summed weights ``exp(-energy error)`` of its leaves.
    momentum_sum : Tensor
        Sum of its leaves' momenta.
    checkpoints_r, checkpoints_sum : Tensor
        Momenta and partial momentum sums at the starts of its sub-subtrees,
        shape ``(max_tree_depth, chains, dim)``.
    accept_sum, n_steps : Tensor
        Summed acceptance probabilities and the leapfrog steps of the whole transition so far.
    alive, turning, diverging : Tensor
        Whether the chain is still extending this subtree, and why it stopped.
    """

    z: torch.Tensor
    r: torch.Tensor
    g: torch.Tensor
    proposal_z: torch.Tensor
    proposal_lp: torch.Tensor
    proposal_g: torch.Tensor
    proposal_r: torch.Tensor
    log_weight: torch.Tensor
    momentum_sum: torch.Tensor
    checkpoints_r: torch.Tensor
    checkpoints_sum: torch.Tensor
    accept_sum: torch.Tensor
    n_steps: torch.Tensor
    alive: torch.Tensor
    turning: torch.Tensor
    diverging: torch.Tensor


def _is_turning(inverse_mass: torch.Tensor, momentum_left: torch.Tensor, momentum_right: torch.Tensor, momentum_sum: torch.Tensor) -> torch.Tensor:
    """Generalised U-turn criterion (Betancourt 2017, A.4.2) for a sub-trajectory."""
    centred = momentum_sum - 0.5 * (momentum_left + momentum_right)
    left = (velocity(inverse_mass, momentum_left) * centred).sum(-1) <= 0
    right = (velocity(inverse_mass, momentum_right) * centred).sum(-1) <= 0
    return left | right


def leaf_update(
    value_and_grad: ValueAndGrad,
    inverse_mass: torch.Tensor,
    step: torch.Tensor,
    energy0: torch.Tensor,
    tree: Subtree,
    uniform: torch.Tensor,
    write_checkpoint: torch.Tensor,
    check_checkpoints: torch.Tensor,
    max_delta_energy: float,
) -> Subtree:
    """Add one leaf to every chain's subtree (chains that stopped are left unchanged).

    Parameters
    ----------
    value_and_grad
        The log density and its gradient.
    inverse_mass, step, energy0
        Metric, signed step sizes ``(chains,)`` and the energies at the start of the transition.
    tree
        The subtree so far.
    uniform
        One uniform draw per chain for the progressive sample.
    write_checkpoint
        ``(max_tree_depth,)`` mask: the checkpoint this leaf starts, if any.
    check_checkpoints
        ``(max_tree_depth,)`` mask: the sub-subtrees that end at this leaf and need a U-turn check.
    max_delta_energy
        Divergence threshold.
    """
    z, r, lp, g = leapfrog(value_and_grad, inverse_mass, tree.z, tree.r, tree.g, step)
    delta = -lp + kinetic_energy(inverse_mass, r) - energy0
    delta = torch.where(torch.isnan(delta), torch.full_like(delta, math.inf), delta)
    alive = tree.alive
    col = alive.unsqueeze(-1)
    new_weight = torch.logaddexp(tree.log_weight, -delta)
    take = alive & (uniform < torch.exp(-delta - new_weight))
    take_col = take.unsqueeze(-1)
    momentum_sum = torch.where(col, tree.momentum_sum + r, tree.momentum_sum)
    write = write_checkpoint.view(-1, 1, 1) & col
    checkpoints_r = torch.where(write, r, tree.checkpoints_r)
    checkpoints_sum = torch.where(write, momentum_sum, tree.checkpoints_sum)
    subtree_sums = momentum_sum - checkpoints_sum + checkpoints_r
    turning = (_is_turning(inverse_mass, checkpoints_r, r, subtree_sums) & check_checkpoints.view(-1, 1)).any(0)
    diverging = delta > max_delta_energy
    return Subtree(
        z=torch.where(col, z, tree.z),
        r=torch.where(col, r, tree.r),
        g=torch.where(col, g, tree.g),
        proposal_z=torch.where(take_col, z, tree.proposal_z),
        proposal_lp=torch.where(take, lp, tree.proposal_lp),
        proposal_g=torch.where(take_col, g, tree.proposal_g),
        proposal_r=torch.where(take_col, r, tree.proposal_r),
        log_weight=torch.where(alive, new_weight, tree.log_weight),
        momentum_sum=momentum_sum,
        checkpoints_r=checkpoints_r,
        checkpoints_sum=checkpoints_sum,
        accept_sum=tree.accept_sum + torch.where(alive, torch.exp(torch.clamp(-delta, max=0.0)), torch.zeros_like(delta)),
        n_steps=tree.n_steps + alive.to(tree.n_steps.dtype),
        alive=alive & ~turning & ~diverging,
        turning=tree.turning | (alive & turning),
        diverging=tree.diverging | (alive & diverging),
    )


@lru_cache(maxsize=None)
def _checkpoint_range(leaf: int) -> tuple[int, int]:
    """Checkpoints whose sub-subtrees end at leaf ``leaf`` (NumPyro's iterative NUTS)."""
    idx_max = bin(leaf >> 1).count("1")
    num_subtrees = bin((~leaf & (leaf + 1)) - 1).count("1")
    return idx_max - num_subtrees + 1, idx_max


def _uniform(shape: tuple[int, ...], like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(shape, generator=generator, dtype=like.dtype, device=like.device)


class NUTSKernel:
    """NUTS transitions for a batch of chains of one target.

    Parameters
    ----------
    target
        The log density with gradients.
    max_tree_depth
        Maximum number of doublings (a trajectory has at most ``2**max_tree_depth`` steps).
    max_delta_energy
        Energy error above which a trajectory is called divergent.
    """

    def __init__(self, target: GradientTarget, *, max_tree_depth: int = 10, max_delta_energy: float = 1000.0) -> None:
        self.target = target
        self.max_tree_depth = max_tree_depth
        self.max_delta_energy = max_delta_energy
        self._compiled: Callable[..., tuple[torch.Tensor, ...]] | None = None
        self._masks: dict[tuple[int, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def compiled(self) -> bool:
        """Whether leaves run as one compiled graph."""
        return self._compiled is not None

    def _eager_leaf(self, inverse_mass, step, energy0, tree, uniform, write, check) -> Subtree:
        return leaf_update(self.target.value_and_grad, inverse_mass, step, energy0, tree, uniform, write, check, self.max_delta_energy)

    def compile(
        self, state: ChainState, metric: Metric, generator: torch.Generator | None = None, backends: Sequence[str] = ("script",)
    ) -> str | None:
        """Compile the leaf update into one graph for this batch shape and metric kind.

        The backends are tried in order (see :mod:`~probmodels.core.graph`);
        a compiled graph is kept only when it reproduces the eager update at a
        random leaf of ``state``.

        Returns
        -------
        str or None
            The backend in use, or None when the leaves stay eager (the target
            has no traceable ``pure_value_and_grad``, or no backend agreed).
        """
        pure = getattr(self.target, "pure_value_and_grad", None)
        if pure is None:
            return None

        def flat_leaf(inverse_mass, step, energy0, uniform, write, check, *tree):
            out = leaf_update(pure, inverse_mass, step, energy0, Subtree(*tree), uniform, write, check, self.max_delta_energy)
            return tuple(out)

        inverse_mass, step, energy0, tree, uniform, write, check = example = self._example(state, metric, generator)
        args = (inverse_mass, step, energy0, uniform, write, check, *tree)
        try:
            graph = trace_graph(flat_leaf, args)
            want = tuple(self._eager_leaf(*example))
        except Exception:
            return None
        for backend in backends:
            try:
                compiled = compile_graph(graph, args, backend)
                agree = outputs_agree(compiled(*args), want)
            except Exception:
                continue
            if agree:
                self._compiled = compiled
                return backend
        return None

    def _example(self, state: ChainState, metric: Metric, generator: torch.Generator | None):
        """A realistic leaf: a subtree started at ``state`` with fresh momenta."""
        chains = state.position.shape[0]
        momentum = metric.sample_momentum(state.position, generator)
        energy0 = -state.log_density + metric.kinetic_energy(momentum)
        tree = self._empty_subtree(state.position, momentum, state.grad, state.log_density, torch.ones(chains, dtype=torch.bool, device=state.position.device))
        step = torch.full_like(state.log_density, 0.1)
        write, check = self._leaf_masks(1, state.position.device)
        return metric.inverse_mass, step, energy0, tree, _uniform((chains,), state.position, generator), write, check

    def _empty_subtree(self, z, r, g, lp, running, accept_sum=None, n_steps=None) -> Subtree:
        chains, dim = z.shape
        no = torch.zeros_like(running)
        return Subtree(
            z=z, r=r, g=g, proposal_z=z, proposal_lp=lp, proposal_g=g, proposal_r=r,
            log_weight=torch.full_like(lp, -math.inf), momentum_sum=torch.zeros_like(r),
            checkpoints_r=z.new_zeros((self.max_tree_depth, chains, dim)),
            checkpoints_sum=z.new_zeros((self.max_tree_depth, chains, dim)),
            accept_sum=accept_sum if accept_sum is not None else torch.zeros_like(lp),
            n_steps=n_steps if n_steps is not None else torch.zeros(chains, dtype=torch.long, device=z.device),
            alive=running.clone(), turning=no, diverging=no,
        )

    def _leaf_masks(self, leaf: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The checkpoint to write at this leaf and the checkpoints to check (cached per leaf)."""
        masks = self._masks.get((leaf, device))
        if masks is None:
            idx_min, idx_max = _checkpoint_range(leaf)
            index = torch.arange(self.max_tree_depth, device=device)
            write = (index == idx_max) & (leaf % 2 == 0)
            check = (index >= idx_min) & (index <= idx_max)
            masks = self._masks[(leaf, device)] = (write, check)
        return masks

    def _leaf(self, inverse_mass, step, energy0, tree, uniform, write, check) -> Subtree:
        if self._compiled is not None:
            try:
                return Subtree(*self._compiled(inverse_mass, step, energy0, uniform, write, check, *tree))
            except Exception:  # e.g. a failed Cholesky: the eager path turns it into a divergence
                pass
        return self._eager_leaf(inverse_mass, step, energy0, tree, uniform, write, check)

    def transition(self, state: ChainState, step_size: torch.Tensor, metric: Metric, generator: torch.Generator | None = None) -> tuple[ChainState, TransitionInfo]:
        """Advance every chain by one NUTS transition.

        Parameters
        ----------
        state
            Current positions, log densities and gradients.
        step_size
            Per-chain step sizes, shape ``(chains,)``.
        metric
            Per-chain metric.
        generator
            Random generator (momenta, directions, multinomial choices).

        Returns
        -------
        ChainState, TransitionInfo
            The new state and per-chain statistics.
        """
        position, log_density, grad = state
        chains = position.shape[0]
        device = position.device
        momentum = metric.sample_momentum(position, generator)
        energy0 = -log_density + metric.kinetic_energy(momentum)
        left = right = (position, momentum, grad)
        proposal = (position, log_density, grad, momentum)
        log_weight = torch.zeros_like(log_density)
        momentum_sum = momentum
        running = torch.ones(chains, dtype=torch.bool, device=device)
        depth = torch.zeros(chains, dtype=torch.long, device=device)
        diverging = torch.zeros_like(running)
        accept_sum = torch.zeros_like(log_density)
        n_steps = torch.zeros_like(depth)

        for tree_depth in range(self.max_tree_depth):
            go_right = _uniform((chains,), position, generator) < 0.5
            step = torch.where(go_right, step_size, -step_size)
            go_right_col = go_right.unsqueeze(-1)
            z, r, g = (torch.where(go_right_col, a, b) for a, b in zip(right, left))
            tree = self._empty_subtree(z, r, g, log_density, running, accept_sum, n_steps)
            for leaf in range(2**tree_depth):
                write, check = self._leaf_masks(leaf, device)
                tree = self._leaf(metric.inverse_mass, step, energy0, tree, _uniform((chains,), position, generator), write, check)
                if not bool(tree.alive.any()):
                    break
            accept_sum, n_steps = tree.accept_sum, tree.n_steps
            # Merge the subtree into the trajectory (biased progressive sampling).
            valid = running & ~tree.turning & ~tree.diverging
            take = valid & (_uniform((chains,), position, generator) < torch.exp(torch.clamp(tree.log_weight - log_weight, max=0.0)))
            take_col = take.unsqueeze(-1)
            sub_proposal = (tree.proposal_z, tree.proposal_lp, tree.proposal_g, tree.proposal_r)
            proposal = tuple(torch.where(take_col if new.dim() == 2 else take, new, old) for new, old in zip(sub_proposal, proposal))
            to_right = (running & go_right).unsqueeze(-1)
            to_left = (running & ~go_right).unsqueeze(-1)
            edge = (tree.z, tree.r, tree.g)
            right = tuple(torch.where(to_right, new, old) for new, old in zip(edge, right))
            left = tuple(torch.where(to_left, new, old) for new, old in zip(edge, left))
            log_weight = torch.where(running, torch.logaddexp(log_weight, tree.log_weight), log_weight)
            momentum_sum = torch.where(running.unsqueeze(-1), momentum_sum + tree.momentum_sum, momentum_sum)
            depth = depth + running.long()
            diverging = diverging | (running & tree.diverging)
            running = valid & ~_is_turning(metric.inverse_mass, left[1], right[1], momentum_sum)
            if not bool(running.any()):
                break

        new_position, new_log_density, new_grad, new_momentum = proposal
        info = TransitionInfo(
            diverging=diverging,
            tree_depth=depth,
            n_steps=n_steps,
            acceptance_rate=accept_sum / n_steps.clamp(min=1),
            energy=-new_log_density + metric.kinetic_energy(new_momentum),
        )
        return ChainState(new_position, new_log_density, new_grad), info
