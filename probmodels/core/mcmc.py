"""fit_mcmc: NUTS with Stan-style warmup, every chain in one process as one batch."""

from __future__ import annotations

import os
import time
import warnings
from typing import Any, Callable, Mapping, Sequence

import torch
from tqdm.auto import tqdm

from .._validation import check_non_negative_int, check_positive_int, check_probability
from ..exceptions import ConvergenceWarning, ModelSpecError, ShapeError
from .adaptation import LOCAL_POOL, ChainPool, DualAveraging, MetricEstimator, WarmupSchedule, find_reasonable_step_size
from .checkpoint import CheckpointPlan, SamplerCheckpoint, data_fingerprint, write_checkpoint
from .density import VECTORIZE_MODES, FunctionDensity, LogDensity, without_validation
from .initialization import initial_points, uniform_points
from .nuts import ChainState, GradientTarget, Metric, NUTSKernel
from .posterior import Posterior
from .predictive import deterministic_values
from .protocol import ModelInfo
from .setup import prepare_fit

__all__ = ["fit_mcmc", "sample_log_density"]

KERNELS = ("nuts", "pyro")
COMPILE_MODES = ("auto", "inductor", "script", "none")
AUTO_INDUCTOR_ITERATIONS = 1000
_STATS = ("diverging", "tree_depth", "n_steps", "acceptance_rate", "energy", "step_size", "lp")


def fit_mcmc(
    model: Callable[..., Any],
    *model_args: Any,
    model_kwargs: Mapping[str, Any] | None = None,
    num_samples: int = 1000,
    num_warmup: int = 1000,
    num_chains: int = 4,
    kernel: str = "nuts",
    target_accept: float = 0.9,
    max_tree_depth: int = 10,
    dense_mass: bool = False,
    adapt_pooled: bool = False,
    num_superchains: int | None = None,
    init_values: Mapping[str, Any] | None = None,
    init_radius: float = 2.0,
    seed: int = 0,
    vectorize: str = "auto",
    compile: bool | str = "auto",
    observed: Sequence[str] | None = None,
    progress_bar: bool = True,
    device: str | torch.device | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 100,
    distributed: bool = False,
) -> Posterior:
    """Sample a model's posterior with the No-U-Turn Sampler.

    All chains run in this process as one batch (no multiprocessing); warmup
    adapts each chain's step size by dual averaging and its metric (diagonal
    or dense) over Stan's doubling windows.

    Parameters
    ----------
    model
        A Pyro program; its continuous latent sites are sampled (discrete
        latents must be marginalised by the model).
    *model_args, model_kwargs
        The model's arguments (the data). Numpy arrays become tensors;
        computation runs on the data's device in its dtype.
    num_samples, num_warmup, num_chains
        Draws kept per chain, warmup iterations per chain, and chains.
    kernel
        ``"nuts"`` (our batched sampler) or ``"pyro"`` (Pyro's NUTS, one chain
        after another, for cross-checks).
    target_accept
        Acceptance statistic that step-size adaptation aims at. The default
        0.9 is above Stan's 0.8: at 0.8 Stan-style samplers (ours, Pyro's,
        NumPyro's) still diverge about once per 4000 draws on the
        non-centred eight schools, at 0.9 none did over 8 seeds, for about
        30 % more gradient evaluations. Raise it (e.g. 0.95) when there are
        divergences; lower it for speed on well-conditioned posteriors.
    max_tree_depth
        Maximum tree depth (at most ``2**max_tree_depth`` leapfrog steps).
    dense_mass
        Adapt a dense metric instead of a diagonal one.
    adapt_pooled
        Share the step size and metric across chains (useful with many chains).
    num_superchains
        Many-chain mode: split the chains into this many superchains (it must
        divide ``num_chains``), each starting from one common random point,
        and judge convergence by nested R-hat (Margossian et al. 2024), which
        short chains can pass; ESS is then asked per superchain.
    init_values
        Initial constrained values ``site -> value`` for every chain; default
        is Stan's uniform(-init_radius, init_radius) in unconstrained space.
    init_radius
        Half-width of the random initialisation.
    seed
        Seed of the run's own random generator (torch's global RNG is untouched).
    vectorize
        How chains are batched through the model: ``"auto"``, ``"plate"``,
        ``"vmap"`` or ``"loop"`` (see :class:`~probmodels.core.density.LogDensity`).
    compile
        Compile each leapfrog step, with the log density's gradient and the
        tree bookkeeping, into one graph: ``"inductor"`` (TorchInductor
        kernels; a few seconds to compile, then the fastest), ``"script"``
        (TorchScript; compiles at once, slower per step), ``"auto"`` or True
        (inductor for runs of at least 1000 iterations, TorchScript for
        shorter ones), ``"none"`` or False (eager). A model that cannot be
        traced (e.g. Python control flow on latent values) runs eagerly;
        ``posterior.attrs["compiled"]`` says which one ran.
    observed
        Names of the likelihood sites, if they differ from the model's.
    progress_bar
        Show a progress bar with divergences and step size.
    device
        Only for models without tensor data: where to compute.
    checkpoint
        A file the run saves itself to (no pickle; see
        :mod:`~probmodels.core.checkpoint`). When the file exists, the run
        continues from it instead of starting over: a run killed at any point
        and called again with the same arguments loses and repeats no draw,
        and on the CPU gives bitwise the draws of an uninterrupted run. A
        finished run's checkpoint returns its posterior at once.
    checkpoint_every
        Save after every this many iterations (warmup included) and at the end.
    distributed
        Split the chains across the processes of a ``torchrun`` launch (see
        :mod:`probmodels.distributed.chains`): each rank samples its share
        on its own device (``cuda:LOCAL_RANK`` with CUDA, else the CPU) from
        its own seed derived from ``seed``; ``adapt_pooled`` pools the warmup
        statistics of all ranks. Rank 0 returns every chain gathered in one
        Posterior; the other ranks return their own chains
        (``attrs["distributed_shard"]``). Needs ``kernel="nuts"``, no
        ``checkpoint`` and no ``num_superchains``.

    Returns
    -------
    Posterior
        Draws shaped ``(num_chains, num_samples, ...)`` with sample stats.

    Warns
    -----
    ConvergenceWarning
        After the run: divergences, R-hat > 1.01, bulk or tail ESS below 100
        per chain, or transitions that hit the maximum tree depth.
    """
    num_samples = check_positive_int(num_samples, "num_samples")
    num_warmup = check_non_negative_int(num_warmup, "num_warmup")
    num_chains = check_positive_int(num_chains, "num_chains")
    max_tree_depth = check_positive_int(max_tree_depth, "max_tree_depth")
    target_accept = check_probability(target_accept, "target_accept")
    if kernel not in KERNELS:
        raise ModelSpecError(f"kernel must be one of {KERNELS}, got {kernel!r}.")
    checkpoint_every = check_positive_int(checkpoint_every, "checkpoint_every")
    if checkpoint is not None and kernel != "nuts":
        raise ModelSpecError(f"checkpoint needs kernel='nuts'; kernel={kernel!r} cannot save or resume its state.")
    if vectorize not in VECTORIZE_MODES:
        raise ModelSpecError(f"vectorize must be one of {VECTORIZE_MODES}, got {vectorize!r}.")
    backends = compile_backends(compile, num_warmup + num_samples)
    if num_superchains is not None:
        num_superchains = check_positive_int(num_superchains, "num_superchains")
        if num_superchains < 2 or num_chains % num_superchains:
            raise ModelSpecError(
                f"num_superchains must be >= 2 and divide num_chains={num_chains}, got {num_superchains}; "
                f"e.g. num_chains=256 with num_superchains=16."
            )
    pool, shard = LOCAL_POOL, None
    if distributed:
        from ..distributed.chains import ChainShard

        shard = ChainShard.from_environment(num_chains, seed, kernel=kernel, checkpoint=checkpoint, num_superchains=num_superchains)
        model_args, model_kwargs, device = shard.place(model_args, model_kwargs, device)
        num_chains, seed, pool = shard.num_chains, shard.seed, shard.pool
        progress_bar = progress_bar and shard.rank == 0
    setup = prepare_fit(model, model_args, model_kwargs, seed=seed, observed=observed, device=device)
    args, kwargs, dev, dtype, generator, info = setup.args, setup.kwargs, setup.device, setup.dtype, setup.generator, setup.info
    settings = dict(
        num_samples=num_samples, num_warmup=num_warmup, num_chains=num_chains, target_accept=target_accept,
        max_tree_depth=max_tree_depth, dense_mass=dense_mass, adapt_pooled=adapt_pooled, seed=seed,
    )
    started = time.perf_counter()
    if kernel == "pyro":
        from .pyro_kernel import run_pyro_nuts

        draws, stats = run_pyro_nuts(model, args, kwargs, info, progress_bar=progress_bar, **settings)
        mode = "plate"
    else:
        like = torch.zeros((), dtype=dtype, device=dev)
        probe = uniform_points(max(num_chains, 2), info.dim, init_radius, like, generator)
        with without_validation():
            target = LogDensity(model, args, kwargs, info, vectorize=vectorize, probe=probe)
            if init_values is not None:
                start = _initial_from_values(target, info, init_values, num_chains, dtype, dev)
            elif num_superchains is not None:
                start = probe[:num_superchains].repeat_interleave(num_chains // num_superchains, dim=0)
            else:
                start = probe[:num_chains]
            plan = None
            if checkpoint is not None:
                identity = dict(
                    settings, dim=info.dim, dtype=str(dtype), start=data_fingerprint((start,), {}), vectorize=target.mode,
                    compile=list(backends),
                    sites=[[site.name, list(info.site_shapes[site.name])] for site in info.latents],
                    data=data_fingerprint(args, kwargs),
                )
                plan = CheckpointPlan.create(checkpoint, checkpoint_every, identity)
            positions, stats, compiled = _run_nuts(
                target, start, generator, init_radius=init_radius, fixed_init=init_values is not None,
                backends=backends, progress_bar=progress_bar, checkpoint=plan, pool=pool, **settings,
            )
            flat = target.constrain(positions.reshape(num_chains * num_samples, info.dim))
        draws = {k: v.reshape((num_chains, num_samples) + tuple(v.shape[1:])) for k, v in flat.items()}
        mode = target.mode
        settings["compiled"] = compiled
    elapsed = time.perf_counter() - started
    if num_superchains is not None:
        settings["num_superchains"] = num_superchains
    posterior = _build_posterior(model, args, kwargs, info, draws, stats, mode, kernel, settings, elapsed)
    if shard is not None:
        posterior = shard.gather(posterior)
        if posterior.attrs.get("distributed_shard"):
            return posterior
    from ..diagnostics.convergence import check_convergence

    for message in check_convergence(posterior).messages:
        warnings.warn(message, ConvergenceWarning, stacklevel=2)
    return posterior


def compile_backends(compile: bool | str, iterations: int) -> tuple[str, ...]:
    """The graph backends to try, in order, for ``fit_mcmc(compile=...)`` on a run of ``iterations``."""
    mode = ("auto" if compile else "none") if isinstance(compile, bool) else compile
    if mode not in COMPILE_MODES:
        raise ModelSpecError(f"compile must be one of {COMPILE_MODES} or a bool, got {compile!r}.")
    if mode == "auto":
        mode = "inductor" if iterations >= AUTO_INDUCTOR_ITERATIONS else "script"
    return {"inductor": ("inductor", "script"), "script": ("script",), "none": ()}[mode]


def _initial_from_values(
    target: LogDensity, info: ModelInfo, values: Mapping[str, Any], chains: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """Unconstrained starting points from user-given constrained values (the same for every chain)."""
    names = [site.name for site in info.latents]
    missing = [n for n in names if n not in values]
    unknown = [n for n in values if n not in names]
    if missing or unknown:
        raise ModelSpecError(
            f"init_values must give every latent site and nothing else; missing {missing}, unknown {unknown} "
            f"(the latent sites are {names})."
        )
    shaped = {}
    for name in names:
        value = torch.as_tensor(values[name], dtype=dtype, device=device)
        try:
            shaped[name] = value.expand((chains,) + tuple(info.site_shapes[name]))
        except RuntimeError:
            raise ShapeError(
                f"init_values[{name!r}] has shape {tuple(value.shape)}; the site has shape {tuple(info.site_shapes[name])}."
            ) from None
    return target.unconstrain(shaped)


def _build_posterior(
    model: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    info: ModelInfo,
    draws: dict[str, torch.Tensor],
    stats: dict[str, torch.Tensor],
    mode: str,
    kernel: str,
    settings: dict[str, Any],
    elapsed: float,
) -> Posterior:
    """Add deterministic sites to the draws and wrap everything in a Posterior."""
    chains, samples = settings["num_chains"], settings["num_samples"]
    flat = {k: v.reshape((chains * samples,) + tuple(v.shape[2:])) for k, v in draws.items()}
    deterministic = deterministic_values(model, args, kwargs, info, flat, vectorize=mode != "loop")
    for name, value in deterministic.items():
        draws[name] = value.reshape((chains, samples) + tuple(value.shape[1:]))
    return Posterior(
        draws,
        method=kernel,
        sample_stats=stats,
        dims=dict(info.site_dims),
        observed_data=dict(info.observed_values),
        attrs=dict(settings, vectorize=mode, elapsed_seconds=elapsed),
        model=model,
        model_args=args,
        model_kwargs=kwargs,
        info=info,
    )


def sample_log_density(
    log_density: Callable[[torch.Tensor], torch.Tensor],
    initial_position: torch.Tensor,
    *,
    num_samples: int = 1000,
    num_warmup: int = 1000,
    target_accept: float = 0.9,
    max_tree_depth: int = 10,
    dense_mass: bool = False,
    adapt_pooled: bool = False,
    seed: int = 0,
    progress_bar: bool = False,
    compile: bool | str = "auto",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Sample a user's own batched log density with NUTS.

    Parameters
    ----------
    log_density
        ``fn(u) -> logp``: ``u`` of shape ``(chains, dim)``, result ``(chains,)``;
        differentiable with torch autograd.
    initial_position
        Starting points, ``(chains, dim)``; the number of rows sets the number
        of chains, their dtype and device are used throughout.
    num_samples, num_warmup, target_accept, max_tree_depth, dense_mass, adapt_pooled, seed, progress_bar, compile
        As in :func:`fit_mcmc`.

    Returns
    -------
    draws, sample_stats
        Draws ``(chains, num_samples, dim)`` and per-transition statistics ``(chains, num_samples)``.
    """
    if initial_position.dim() != 2:
        raise ModelSpecError(f"initial_position must have shape (chains, dim), got {tuple(initial_position.shape)}.")
    generator = torch.Generator(device=initial_position.device).manual_seed(seed)
    return _run_nuts(
        FunctionDensity(log_density), initial_position, generator,
        num_samples=check_positive_int(num_samples, "num_samples"), num_warmup=check_non_negative_int(num_warmup, "num_warmup"),
        num_chains=initial_position.shape[0], target_accept=check_probability(target_accept, "target_accept"),
        max_tree_depth=check_positive_int(max_tree_depth, "max_tree_depth"), dense_mass=dense_mass, adapt_pooled=adapt_pooled,
        init_radius=2.0, fixed_init=True, backends=compile_backends(compile, num_warmup + num_samples),
        progress_bar=progress_bar, seed=seed,
    )[:2]


def _run_nuts(
    target: GradientTarget,
    start: torch.Tensor,
    generator: torch.Generator,
    *,
    num_samples: int,
    num_warmup: int,
    num_chains: int,
    target_accept: float,
    max_tree_depth: int,
    dense_mass: bool,
    adapt_pooled: bool,
    init_radius: float,
    fixed_init: bool,
    backends: Sequence[str],
    progress_bar: bool,
    seed: int,
    checkpoint: CheckpointPlan | None = None,
    pool: ChainPool = LOCAL_POOL,
) -> tuple[torch.Tensor, dict[str, torch.Tensor], str]:
    """Warm up and sample; returns unconstrained draws ``(chains, samples, dim)``,
    sample stats, and the graph backend of the leaf update (``"eager"`` when none).

    With a ``checkpoint`` plan the run continues from the plan's file when it
    exists, and saves itself there as it goes. ``pool`` says over which chains
    ``adapt_pooled`` pools (other ranks' too in a distributed run).
    """
    chains, dim = start.shape
    kernel = NUTSKernel(target, max_tree_depth=max_tree_depth)
    saved = checkpoint.resume(start) if checkpoint is not None else None
    if saved is None:
        position, log_density, grad = initial_points(target, start, radius=init_radius, generator=generator, fixed=fixed_init)
        state = ChainState(position, log_density, grad)
        eye = torch.eye(dim, dtype=position.dtype, device=position.device)
        metric = Metric.from_inverse_mass(eye.expand(chains, dim, dim).clone() if dense_mass else torch.ones_like(position))
        compiled = (kernel.compile(state, metric, generator, backends) if backends else None) or "eager"
    else:
        state, metric = saved.state, Metric.from_inverse_mass(saved.inverse_mass)
        compiled = (kernel.compile(state, metric, generator, (saved.compiled,)) if saved.compiled != "eager" else None) or "eager"
        if compiled != saved.compiled:
            warnings.warn(
                f"the checkpointed run's {saved.compiled!r} leaf graph could not be rebuilt; the run continues with eager "
                "leaves (valid draws, not bitwise equal to an uninterrupted run).",
                UserWarning,
                stacklevel=3,
            )
        generator.set_state(saved.generator_state)

    def heuristic(step: torch.Tensor) -> torch.Tensor:
        step = find_reasonable_step_size(target, state, step, metric, generator)
        return pool.median(step).expand(chains).clone() if adapt_pooled else step

    if saved is None:
        averaging = DualAveraging(heuristic(torch.ones_like(state.log_density)), target_accept=target_accept, pooled=adapt_pooled, pool=pool)
        estimator = MetricEstimator(chains, dim, dense_mass, adapt_pooled, state.position, pool)
        step_size, first = averaging.step_size, 0
    else:
        averaging, estimator, step_size, first = saved.averaging, saved.estimator, saved.step_size, saved.iteration
    schedule = WarmupSchedule.stan(num_warmup)
    draws = state.position.new_empty((chains, num_samples, dim))
    stats = {
        "diverging": torch.zeros((chains, num_samples), dtype=torch.bool, device=start.device),
        "tree_depth": torch.zeros((chains, num_samples), dtype=torch.long, device=start.device),
        "n_steps": torch.zeros((chains, num_samples), dtype=torch.long, device=start.device),
        **{k: state.position.new_zeros((chains, num_samples)) for k in ("acceptance_rate", "energy", "step_size", "lp")},
    }
    if saved is not None:
        kept = saved.draws.shape[1]
        draws[:, :kept] = saved.draws
        for name, value in saved.stats.items():
            stats[name][:, :kept] = value
    total = num_warmup + num_samples
    divergent = int(stats["diverging"].sum())
    bar = tqdm(total=total, initial=first, disable=not progress_bar, desc="warmup" if first < num_warmup else "sample", leave=False, dynamic_ncols=True)
    for iteration in range(first, total):
        warming = iteration < num_warmup
        state, info = kernel.transition(state, step_size, metric, generator)
        if warming:
            step_size = averaging.update(info.acceptance_rate)
            if schedule.in_slow_window(iteration):
                estimator.update(state.position)
            if iteration in schedule.window_ends:
                metric = Metric.from_inverse_mass(estimator.inverse_mass())
                estimator.reset()
                averaging.restart(heuristic(step_size))
                step_size = averaging.step_size
            if iteration == num_warmup - 1:
                step_size = averaging.final_step_size()
                bar.set_description("sample")
        else:
            i = iteration - num_warmup
            draws[:, i] = state.position
            for name, value in zip(("diverging", "tree_depth", "n_steps", "acceptance_rate", "energy"), info):
                stats[name][:, i] = value
            stats["step_size"][:, i] = step_size
            stats["lp"][:, i] = state.log_density
            divergent += int(info.diverging.sum()) if progress_bar else 0
        if checkpoint is not None and checkpoint.due(iteration, total):
            kept = max(0, iteration + 1 - num_warmup)
            write_checkpoint(checkpoint.path, SamplerCheckpoint(
                iteration=iteration + 1, settings=checkpoint.settings, compiled=compiled, state=state, step_size=step_size,
                inverse_mass=metric.inverse_mass, averaging=averaging, estimator=estimator, draws=draws[:, :kept],
                stats={name: value[:, :kept] for name, value in stats.items()}, generator_state=generator.get_state(),
            ))
        if progress_bar and iteration % 10 == 0:
            bar.set_postfix(divergences=divergent, step_size=f"{float(step_size.mean()):.3g}", refresh=False)
        bar.update(1)
    bar.close()
    return draws, stats, compiled
