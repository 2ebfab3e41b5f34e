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
:func:`leaf_update`, and so is everything between two doublings (merging the
finished subtree into the trajectory, the U-turn check of the whole
trajectory, beginning the next subtree), :func:`advance_trajectory`.
:meth:`NUTSKernel.compile` compiles each once into a single graph
(:mod:`~probmodels.core.graph`: TorchInductor or TorchScript), which removes
the per-operation overhead of the bookkeeping and of the model; when
compiling is impossible, or a compiled leaf raises (a failed Cholesky, say),
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

from .graph import compile_graph, outputs_agree
from .metric import Metric, kinetic_energy, velocity

__all__ = [
    "GradientTarget", "ChainState", "TransitionInfo", "Metric", "NUTSKernel", "Trajectory",
    "leapfrog", "leaf_update", "begin_subtree", "merge_subtree", "advance_trajectory",
]

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


class Trajectory(NamedTuple):
    """The trajectory of the current transition, per chain (every field chains first).

    Attributes
    ----------
    left_z, left_r, left_g, right_z, right_r, right_g : Tensor
        Position, momentum and gradient at the trajectory's two ends.
    proposal_z, proposal_lp, proposal_g, proposal_r : Tensor
        The trajectory's multinomial sample so far.
    log_weight : Tensor
        Log of the summed leaf weights of the trajectory.
    momentum_sum : Tensor
        Sum of its leaves' momenta.
    running : Tensor
        Whether the chain is still doubling its trajectory.
    depth : Tensor
        Number of doublings merged so far.
    diverging : Tensor
        Whether a divergent subtree was met.
    """

    left_z: torch.Tensor
    left_r: torch.Tensor
    left_g: torch.Tensor
    right_z: torch.Tensor
    right_r: torch.Tensor
    right_g: torch.Tensor
    proposal_z: torch.Tensor
    proposal_lp: torch.Tensor
    proposal_g: torch.Tensor
    proposal_r: torch.Tensor
    log_weight: torch.Tensor
    momentum_sum: torch.Tensor
    running: torch.Tensor
    depth: torch.Tensor
    diverging: torch.Tensor


def begin_subtree(
    traj: Trajectory, step_size: torch.Tensor, go_right: torch.Tensor, accept_sum: torch.Tensor, n_steps: torch.Tensor, max_tree_depth: int
) -> tuple[Subtree, torch.Tensor]:
    """An empty subtree at the end of the trajectory each chain extends, and the signed step sizes.

    The subtree's proposal starts at its edge with a placeholder log density;
    its first leaf always replaces it (a leaf that cannot, with an infinite
    energy error, makes the subtree divergent and rejected).
    """
    col = go_right.unsqueeze(-1)
    z = torch.where(col, traj.right_z, traj.left_z)
    r = torch.where(col, traj.right_r, traj.left_r)
    g = torch.where(col, traj.right_g, traj.left_g)
    no = torch.zeros_like(traj.running)
    checkpoints = z.new_zeros((max_tree_depth,) + tuple(z.shape))
    tree = Subtree(
        z=z, r=r, g=g, proposal_z=z, proposal_lp=traj.proposal_lp, proposal_g=g, proposal_r=r,
        log_weight=torch.full_like(traj.log_weight, -math.inf), momentum_sum=torch.zeros_like(r),
        checkpoints_r=checkpoints, checkpoints_sum=checkpoints, accept_sum=accept_sum, n_steps=n_steps,
        alive=traj.running, turning=no, diverging=no,
    )
    return tree, torch.where(go_right, step_size, -step_size)


def merge_subtree(inverse_mass: torch.Tensor, traj: Trajectory, tree: Subtree, go_right: torch.Tensor, uniform: torch.Tensor) -> Trajectory:
    """Merge a finished subtree into the trajectory (biased progressive sampling)
    and stop the chains whose subtree turned or diverged or whose whole trajectory turns."""
    running = traj.running
    valid = running & ~tree.turning & ~tree.diverging
    take = valid & (uniform < torch.exp(torch.clamp(tree.log_weight - traj.log_weight, max=0.0)))
    take_col = take.unsqueeze(-1)
    to_right = (running & go_right).unsqueeze(-1)
    to_left = (running & ~go_right).unsqueeze(-1)
    momentum_sum = torch.where(running.unsqueeze(-1), traj.momentum_sum + tree.momentum_sum, traj.momentum_sum)
    left_r = torch.where(to_left, tree.r, traj.left_r)
    right_r = torch.where(to_right, tree.r, traj.right_r)
    return Trajectory(
        left_z=torch.where(to_left, tree.z, traj.left_z),
        left_r=left_r,
        left_g=torch.where(to_left, tree.g, traj.left_g),
        right_z=torch.where(to_right, tree.z, traj.right_z),
        right_r=right_r,
        right_g=torch.where(to_right, tree.g, traj.right_g),
        proposal_z=torch.where(take_col, tree.proposal_z, traj.proposal_z),
        proposal_lp=torch.where(take, tree.proposal_lp, traj.proposal_lp),
        proposal_g=torch.where(take_col, tree.proposal_g, traj.proposal_g),
        proposal_r=torch.where(take_col, tree.proposal_r, traj.proposal_r),
        log_weight=torch.where(running, torch.logaddexp(traj.log_weight, tree.log_weight), traj.log_weight),
        momentum_sum=momentum_sum,
        running=valid & ~_is_turning(inverse_mass, left_r, right_r, momentum_sum),
        depth=traj.depth + running.to(traj.depth.dtype),
        diverging=traj.diverging | (running & tree.diverging),
    )


def advance_trajectory(
    inverse_mass: torch.Tensor,
    step_size: torch.Tensor,
    traj: Trajectory,
    tree: Subtree,
    go_right: torch.Tensor,
    uniform_take: torch.Tensor,
    uniform_direction: torch.Tensor,
    max_tree_depth: int,
) -> tuple[Trajectory, Subtree, torch.Tensor, torch.Tensor]:
    """One doubling's bookkeeping as one pure function: merge the finished
    subtree, draw the next direction and begin the next subtree.

    Returns the trajectory, the next empty subtree, its signed step sizes and directions.
    """
    traj = merge_subtree(inverse_mass, traj, tree, go_right, uniform_take)
    go_right = uniform_direction < 0.5
    tree, step = begin_subtree(traj, step_size, go_right, tree.accept_sum, tree.n_steps, max_tree_depth)
    return traj, tree, step, go_right


@lru_cache(maxsize=None)
def _checkpoint_range(leaf: int) -> tuple[int, int]:
    """Checkpoints whose sub-subtrees end at leaf ``leaf`` (NumPyro's iterative NUTS)."""
    idx_max = bin(leaf >> 1).count("1")
    num_subtrees = bin((~leaf & (leaf + 1)) - 1).count("1")
    return idx_max - num_subtrees + 1, idx_max


def _uniform(shape: tuple[int, ...], like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(shape, generator=generator, dtype=like.dtype, device=like.device)


UNIFORM_BLOCK = 64
"""Leaves whose uniform draws are made in one call."""


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
        self._compiled_advance: Callable[..., tuple[torch.Tensor, ...]] | None = None
        self._masks: dict[tuple[int, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def compiled(self) -> bool:
        """Whether leaves run as one compiled graph."""
        return self._compiled is not None

    def _eager_leaf(self, inverse_mass, step, energy0, tree, uniform, write, check) -> Subtree:
        return leaf_update(self.target.value_and_grad, inverse_mass, step, energy0, tree, uniform, write, check, self.max_delta_energy)

    def _eager_advance(self, inverse_mass, step_size, traj, tree, go_right, uniform_take, uniform_direction):
        return advance_trajectory(inverse_mass, step_size, traj, tree, go_right, uniform_take, uniform_direction, self.max_tree_depth)

    def compile(
        self, state: ChainState, metric: Metric, generator: torch.Generator | None = None, backends: Sequence[str] = ("script",)
    ) -> str | None:
        """Compile the leaf update, and each doubling's bookkeeping, into graphs for this batch shape and metric kind.

        The backends are tried in order (see :mod:`~probmodels.core.graph`);
        a compiled graph is kept only when it reproduces the eager function at
        a random leaf of ``state``. The bookkeeping graph is compiled with the
        leaf's backend and stays eager when that fails.

        Returns
        -------
        str or None
            The backend of the leaf update, or None when the leaves stay eager
            (the target has no traceable ``pure_value_and_grad``, or no backend agreed).
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
            want = tuple(self._eager_leaf(*example))
        except Exception:
            return None
        scale = _energy_scale(energy0)
        for backend in backends:
            compiled = _compile_checked(flat_leaf, args, want, backend, scale)
            if compiled is not None:
                self._compiled = compiled
                self._compile_advance(state, metric, Subtree(*want), generator, backend, scale)
                return backend
        return None

    def _compile_advance(
        self, state: ChainState, metric: Metric, tree: Subtree, generator: torch.Generator | None, backend: str, scale: float
    ) -> None:
        """Compile :func:`advance_trajectory` for this batch shape (left eager when that fails)."""
        traj = self._start(state, tree.r)
        go_right = _uniform(state.log_density.shape, state.log_density, generator) < 0.5
        uniforms = _uniform((2,) + tuple(state.log_density.shape), state.log_density, generator)
        step_size = torch.full_like(state.log_density, 0.1)
        n_fields = len(Trajectory._fields)

        def flat_advance(inverse_mass, step_size, go_right, uniform_take, uniform_direction, *fields):
            traj, tree = Trajectory(*fields[:n_fields]), Subtree(*fields[n_fields:])
            new_traj, new_tree, step, new_go_right = advance_trajectory(
                inverse_mass, step_size, traj, tree, go_right, uniform_take, uniform_direction, self.max_tree_depth
            )
            return (*new_traj, *new_tree, step, new_go_right)

        args = (metric.inverse_mass, step_size, go_right, uniforms[0], uniforms[1], *traj, *tree)
        try:
            want = flat_advance(*args)
        except Exception:
            return
        self._compiled_advance = _compile_checked(flat_advance, args, want, backend, scale)

    def _example(self, state: ChainState, metric: Metric, generator: torch.Generator | None):
        """A realistic leaf: a subtree started at ``state`` with fresh momenta."""
        chains = state.position.shape[0]
        momentum = metric.sample_momentum(state.position, generator)
        energy0 = -state.log_density + metric.kinetic_energy(momentum)
        traj = self._start(state, momentum)
        no_steps = torch.zeros(chains, dtype=torch.long, device=state.position.device)
        tree, _ = begin_subtree(traj, torch.ones_like(state.log_density), traj.running, torch.zeros_like(state.log_density), no_steps, self.max_tree_depth)
        step = torch.full_like(state.log_density, 0.1)
        write, check = self._leaf_masks(1, state.position.device)
        return metric.inverse_mass, step, energy0, tree, _uniform((chains,), state.position, generator), write, check

    @staticmethod
    def _start(state: ChainState, momentum: torch.Tensor) -> Trajectory:
        """The one-point trajectory at ``state`` with ``momentum``."""
        position, log_density, grad = state
        running = torch.ones(position.shape[0], dtype=torch.bool, device=position.device)
        return Trajectory(
            left_z=position, left_r=momentum, left_g=grad, right_z=position, right_r=momentum, right_g=grad,
            proposal_z=position, proposal_lp=log_density, proposal_g=grad, proposal_r=momentum,
            log_weight=torch.zeros_like(log_density), momentum_sum=momentum, running=running,
            depth=torch.zeros(position.shape[0], dtype=torch.long, device=position.device), diverging=torch.zeros_like(running),
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

    def _advance(self, inverse_mass, step_size, traj, tree, go_right, uniform_take, uniform_direction):
        if self._compiled_advance is not None:
            out = self._compiled_advance(inverse_mass, step_size, go_right, uniform_take, uniform_direction, *traj, *tree)
            n_traj, n_tree = len(Trajectory._fields), len(Subtree._fields)
            return Trajectory(*out[:n_traj]), Subtree(*out[n_traj : n_traj + n_tree]), out[-2], out[-1]
        return self._eager_advance(inverse_mass, step_size, traj, tree, go_right, uniform_take, uniform_direction)

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
        position = state.position
        chains = position.shape[0]
        device = position.device
        inverse_mass = metric.inverse_mass
        momentum = metric.sample_momentum(position, generator)
        energy0 = -state.log_density + metric.kinetic_energy(momentum)
        traj = self._start(state, momentum)
        go_right = _uniform((chains,), position, generator) < 0.5
        no_steps = torch.zeros(chains, dtype=torch.long, device=device)
        tree, step = begin_subtree(traj, step_size, go_right, torch.zeros_like(state.log_density), no_steps, self.max_tree_depth)
        for tree_depth in range(self.max_tree_depth):
            n_leaves = 2**tree_depth
            for leaf in range(n_leaves):
                if leaf % UNIFORM_BLOCK == 0:
                    uniforms = _uniform((min(n_leaves - leaf, UNIFORM_BLOCK), chains), position, generator)
                write, check = self._leaf_masks(leaf, device)
                tree = self._leaf(inverse_mass, step, energy0, tree, uniforms[leaf % UNIFORM_BLOCK], write, check)
                if not bool(tree.alive.any()):
                    break
            uniforms = _uniform((2, chains), position, generator)
            traj, tree, step, go_right = self._advance(inverse_mass, step_size, traj, tree, go_right, uniforms[0], uniforms[1])
            if not bool(traj.running.any()):
                break

        n_steps = tree.n_steps
        info = TransitionInfo(
            diverging=traj.diverging,
            tree_depth=traj.depth,
            n_steps=n_steps,
            acceptance_rate=tree.accept_sum / n_steps.clamp(min=1),
            energy=-traj.proposal_lp + metric.kinetic_energy(traj.proposal_r),
        )
        return ChainState(traj.proposal_z, traj.proposal_lp, traj.proposal_g), info


def _energy_scale(energy: torch.Tensor) -> float:
    """The size of the energies a leaf's outputs are differences of (at least 1), for :func:`outputs_agree`."""
    finite = energy[torch.isfinite(energy)]
    return max(1.0, float(finite.abs().max())) if finite.numel() else 1.0


def _compile_checked(fn, args, want, backend: str, scale: float):
    """``fn`` compiled by ``backend`` when that works and reproduces ``want``
    (to a tolerance times ``scale``, see :func:`~probmodels.core.graph.outputs_agree`); else None."""
    try:
        compiled = compile_graph(fn, args, backend)
        agree = outputs_agree(compiled(*args), want, scale)
    except Exception:
        return None
    return compiled if agree else None
