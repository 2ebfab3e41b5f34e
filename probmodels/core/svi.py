"""fit_svi: stochastic variational inference with Pyro's autoguides, in one call.

Runs in its own parameter store and random stream (Pyro's global parameter
store and torch's global RNG are left as they were), stops when the ELBO
stops improving, and refuses to go on training on a non-finite loss.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np
import pyro
import pyro.poutine as poutine
import torch
from pyro.infer import ELBO, SVI, Trace_ELBO
from pyro.infer import autoguide
from pyro.optim import Adam, ClippedAdam
from tqdm.auto import tqdm

from .._validation import check_positive_int
from ..exceptions import ConvergenceWarning, InferenceError, ModelSpecError, ResultFileError
from .checkpoint import data_fingerprint
from .density import batch_plate, without_validation
from .posterior import Posterior
from .predictive import unbatch, deterministic_values
from .protocol import ModelInfo
from .setup import prepare_fit
from .svi_checkpoint import SVICheckpoint, SVICheckpointPlan, write_svi_checkpoint

if TYPE_CHECKING:
    from ..distributed.data_parallel import DataParallel

__all__ = ["fit_svi", "GUIDES"]

GUIDES: dict[str, type] = {
    "normal": autoguide.AutoNormal,
    "mvn": autoguide.AutoMultivariateNormal,
    "lowrank": autoguide.AutoLowRankMultivariateNormal,
    "delta": autoguide.AutoDelta,
    "laplace": autoguide.AutoLaplaceApproximation,
}
OPTIMIZERS = {"adam": Adam, "clipped_adam": ClippedAdam}


class _ScaleLikelihood(poutine.messenger.Messenger):
    """Scale the log-likelihood of the named sites (mini-batch SVI: N / batch size)."""

    def __init__(self, names: Sequence[str], scale: float) -> None:
        super().__init__()
        self.names, self.scale = set(names), scale

    def _pyro_sample(self, msg: dict) -> None:
        if msg["name"] in self.names:
            msg["scale"] = self.scale * msg["scale"]


def _make_guide(guide: str | Callable[..., Any], model: Callable[..., Any], rank: int | None, init_scale: float) -> Any:
    if callable(guide) and not isinstance(guide, str):
        return guide
    if guide not in GUIDES:
        raise ModelSpecError(f"guide must be one of {sorted(GUIDES)} or a guide callable, got {guide!r}.")
    cls = GUIDES[guide]
    if cls is autoguide.AutoLowRankMultivariateNormal:
        return cls(model, rank=rank, init_scale=init_scale)
    if cls in (autoguide.AutoDelta, autoguide.AutoLaplaceApproximation):
        return cls(model)
    return cls(model, init_scale=init_scale)


def _optimizer(name: str, lr: float, lr_decay: float, num_steps: int) -> Any:
    """A Pyro optimiser; a decaying learning rate uses ClippedAdam's per-step factor."""
    if lr_decay < 1.0:
        return ClippedAdam({"lr": lr, "lrd": lr_decay ** (1.0 / num_steps)})
    return OPTIMIZERS[name]({"lr": lr})


def _data_size(info: ModelInfo) -> int:
    """The number of data points N: the leading batch dim of the first observed site."""
    for name in info.observed:
        shape = info.site_batch_shapes[name]
        if len(shape) >= 1:
            return int(shape[0])
    raise ModelSpecError(
        "batch_size and distributed=True need an observed site inside a data plate (pyro.plate) to know the data size; "
        "put the likelihood in a plate over the data points."
    )


def _slice(value: Any, size: int, index: torch.Tensor) -> Any:
    if isinstance(value, torch.Tensor) and value.dim() >= 1 and value.shape[0] == size:
        return value[index.to(value.device)]
    return value


def fit_svi(
    model: Callable[..., Any],
    *model_args: Any,
    model_kwargs: Mapping[str, Any] | None = None,
    guide: str | Callable[..., Any] = "normal",
    num_steps: int = 5000,
    optimizer: str = "adam",
    lr: float = 0.01,
    lr_decay: float = 1.0,
    num_particles: int = 1,
    batch_size: int | None = None,
    num_samples: int = 1000,
    rank: int | None = None,
    init_scale: float = 0.1,
    tol: float = 1e-4,
    window: int = 100,
    seed: int = 0,
    observed: Sequence[str] | None = None,
    progress_bar: bool = True,
    device: str | torch.device | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 500,
    callback: Callable[[int, float], bool | None] | None = None,
    distributed: bool = False,
    loss: ELBO | None = None,
) -> Posterior:
    """Fit a variational approximation of a model's posterior and draw from it.

    Parameters
    ----------
    model
        A Pyro program.
    *model_args, model_kwargs
        Its arguments (the data).
    guide
        ``"normal"`` (mean-field), ``"mvn"`` (full-rank), ``"lowrank"``,
        ``"delta"`` (MAP), ``"laplace"`` (MAP plus a Gaussian from the
        Hessian), or a guide callable.
    num_steps
        Maximum optimisation steps.
    optimizer, lr
        ``"adam"`` or ``"clipped_adam"`` and its learning rate.
    lr_decay
        Fraction of ``lr`` left after ``num_steps`` steps, reached by
        geometric decay (1.0: constant). Decay removes the optimiser's jitter
        from the final guide; it implies ``"clipped_adam"``.
    num_particles
        ELBO particles per step, vectorised when the model allows it.
    batch_size
        Mini-batch size: every tensor argument whose leading dim is the data
        size N is subsampled, and the observed sites' log-likelihood is
        scaled by N / batch_size so the ELBO gradient stays unbiased.
    num_samples
        Draws taken from the fitted guide (1 for ``"delta"``).
    rank
        Rank of the ``"lowrank"`` guide (default: about sqrt(dim)).
    init_scale
        Initial scale of the guide.
    tol, window
        Stop when, three times in a row, the mean loss of the last ``window`` steps
        improves on the window before by less than ``tol`` (relative) or by
        less than its Monte Carlo noise (two standard errors); ``tol=0``
        runs every step.
    seed
        Seed of the run (torch's global RNG and Pyro's param store are left untouched).
    observed
        Names of the likelihood sites, if they differ from the model's.
    progress_bar
        Show a progress bar with the running loss.
    device
        Only for models without tensor data.
    checkpoint
        A file the run saves itself to (no pickle; see
        :mod:`~probmodels.core.svi_checkpoint`): the guide's parameters, the
        optimiser's state, the losses and the random streams. When the file
        exists, the run continues from it: a run killed at any point and
        called again with the same arguments repeats no step, and on the CPU
        ends bitwise where an uninterrupted run ends.
    checkpoint_every
        Save after every this many steps, and when the run ends.
    callback
        Called after every step as ``callback(step, loss)`` (``step`` counts
        from 0, also across a resumed run); returning ``True`` stops the run
        there and counts as converged (the callback's stopping rule met). Use it for schedules that depend on the step (KL annealing,
        logging) or for a custom stopping rule.
    distributed
        Data-parallel SVI across the processes of a ``torchrun`` launch (see
        :mod:`probmodels.distributed.data_parallel`): each rank computes the
        gradients on its slice of every mini-batch (``batch_size`` is the
        global batch, default all the data), the gradients are averaged over
        the ranks before each optimiser step, and the result equals the
        single-process fit in expectation. Every rank ends with the same
        guide and returns draws from it (from its own random stream); the
        loss trace and the ``callback`` see the loss averaged over the ranks.
        Needs no ``checkpoint``.
    loss
        A Pyro ELBO instance to optimise instead of ``Trace_ELBO`` (e.g.
        :class:`~probmodels.bnn.local_reparam.LocalReparameterizationELBO`);
        it sets its own particles, so ``num_particles`` must stay 1. With
        ``batch_size``, the model it receives has its likelihood scaled by
        N / batch size. None: ``Trace_ELBO(num_particles)``.

    Returns
    -------
    Posterior
        Draws shaped ``(1, num_samples, ...)``; ``attrs`` holds the loss trace,
        whether the run converged and the number of steps.

    Raises
    ------
    InferenceError
        When the loss becomes NaN or infinite (the step index is in the message).
    """
    num_steps = check_positive_int(num_steps, "num_steps")
    num_particles = check_positive_int(num_particles, "num_particles")
    num_samples = check_positive_int(num_samples, "num_samples")
    window = check_positive_int(window, "window")
    if optimizer not in OPTIMIZERS:
        raise ModelSpecError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {optimizer!r}.")
    if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
        raise ModelSpecError(f"lr must be a positive number, got {lr!r}.")
    if not (isinstance(lr_decay, (int, float)) and 0 < lr_decay <= 1):
        raise ModelSpecError(f"lr_decay must lie in (0, 1], got {lr_decay!r}.")
    checkpoint_every = check_positive_int(checkpoint_every, "checkpoint_every")
    if loss is not None and not isinstance(loss, ELBO):
        raise ModelSpecError(f"loss must be a pyro.infer.ELBO instance (e.g. Trace_ELBO()) or None, got {type(loss).__name__}.")
    if loss is not None and num_particles != 1:
        raise ModelSpecError(f"num_particles={num_particles} conflicts with loss=: set the particles on the ELBO instance instead.")
    parallel = None
    if distributed:
        from ..distributed.data_parallel import DataParallel

        parallel = DataParallel.from_environment(seed, checkpoint=checkpoint)
        model_args, model_kwargs, device = parallel.place(model_args, model_kwargs, device)
        progress_bar = progress_bar and parallel.rank == 0
    setup = prepare_fit(model, model_args, model_kwargs, seed=seed, observed=observed, device=device)
    args, kwargs, dev, generator, info = setup.args, setup.kwargs, setup.device, setup.generator, setup.info
    data_size = None
    if batch_size is not None or parallel is not None:
        data_size = _data_size(info)
        batch_size = data_size if batch_size is None else min(check_positive_int(batch_size, "batch_size"), data_size)
    plan = None
    if checkpoint is not None:
        identity = dict(
            guide=guide if isinstance(guide, str) else getattr(guide, "__qualname__", type(guide).__qualname__),
            num_steps=num_steps, optimizer=optimizer, lr=lr, lr_decay=lr_decay, num_particles=num_particles, batch_size=batch_size,
            rank=rank, init_scale=init_scale, tol=tol, window=window, seed=seed, dtype=str(setup.dtype),
            **({"loss": type(loss).__qualname__} if loss is not None else {}),
            sites=[[site.name, list(info.site_shapes[site.name])] for site in info.latents], data=data_fingerprint(args, kwargs),
        )
        plan = SVICheckpointPlan.create(checkpoint, checkpoint_every, identity)
    is_delta = guide == "delta"
    devices = [torch.cuda.current_device()] if dev.type == "cuda" else []
    started = time.perf_counter()
    with torch.random.fork_rng(devices=devices), pyro.get_param_store().scope():
        torch.manual_seed(seed)
        guide_fn = _make_guide(guide, model, rank, init_scale)
        losses, converged = _optimise(
            model, guide_fn, args, kwargs, info, optimizer=_optimizer(optimizer, lr, lr_decay, num_steps), lr=lr, num_steps=num_steps,
            num_particles=num_particles, batch_size=batch_size, data_size=data_size, tol=tol, window=window,
            progress_bar=progress_bar, generator=generator, checkpoint=plan, callback=callback, parallel=parallel, loss=loss,
        )
        if guide == "laplace":
            try:
                guide_fn = guide_fn.laplace_approximation(*args, **kwargs)
            except torch.linalg.LinAlgError:
                raise InferenceError(
                    "guide='laplace': the Hessian of the loss at the fitted mode is not positive definite (a saddle, a "
                    "maximum, or a degenerate mode), so there is no Gaussian to build there; fit longer (num_steps, tol) or "
                    "use guide='normal' or 'lowrank'."
                ) from None
        draws = _sample_guide(guide_fn, args, kwargs, info, 1 if is_delta else num_samples)
    elapsed = time.perf_counter() - started
    if not converged and tol > 0:
        warnings.warn(
            f"SVI did not converge in {num_steps} steps (the mean loss over {window} steps was still improving "
            f"by more than tol={tol} and its noise); raise num_steps or lr, or check posterior.attrs['loss'].",
            ConvergenceWarning,
            stacklevel=2,
        )
    deterministic = deterministic_values(model, args, kwargs, info, draws)
    draws.update(deterministic)
    name = guide if isinstance(guide, str) else getattr(guide, "__name__", type(guide).__name__)
    return Posterior(
        {k: v.unsqueeze(0) for k, v in draws.items()},
        method=f"svi:{name}",
        dims=dict(info.site_dims),
        observed_data=dict(info.observed_values),
        attrs=dict(
            loss=np.asarray(losses), converged=converged, num_steps=len(losses), lr=lr, lr_decay=lr_decay, num_particles=num_particles,
            batch_size=batch_size, seed=seed, elapsed_seconds=elapsed, num_chains=1, num_samples=1 if is_delta else num_samples,
        ),
        model=model,
        model_args=args,
        model_kwargs=kwargs,
        info=info,
    )


def _optimise(model, guide, args, kwargs, info: ModelInfo, *, optimizer, lr, num_steps, num_particles, batch_size, data_size, tol, window, progress_bar, generator, checkpoint: SVICheckpointPlan | None = None, callback: Callable[[int, float], bool | None] | None = None, parallel: DataParallel | None = None, loss: ELBO | None = None) -> tuple[list[float], bool]:
    """Run the SVI loop; returns the loss trace and whether the tolerance was met.

    With a ``checkpoint`` plan the loop continues from the plan's file when it
    exists, and saves itself there as it goes and when it ends. With a
    ``parallel`` rank, each step runs on this rank's slice of the mini-batch
    and averages the gradients over the ranks.
    """
    fit_model = model
    if batch_size is not None:
        scale = data_size / batch_size if parallel is None else parallel.likelihood_scale(data_size, batch_size)
        fit_model = _ScaleLikelihood(info.observed, scale)(model)

    def make_svi(vectorize: bool) -> SVI:
        elbo = loss if loss is not None else Trace_ELBO(num_particles=num_particles, vectorize_particles=vectorize, max_plate_nesting=info.max_plate_nesting)
        return SVI(fit_model, guide, optimizer, elbo) if parallel is None else parallel.svi(fit_model, guide, optimizer, elbo)

    vectorize = num_particles > 1
    losses: list[float] = []
    converged = False
    quiet_windows = 0
    order = torch.randperm(data_size, generator=generator, device=generator.device) if batch_size else None
    cursor = 0
    saved = checkpoint.resume(torch.zeros((), device=generator.device)) if checkpoint is not None else None
    if saved is not None:
        _restore(saved, guide, args, kwargs, optimizer, generator, checkpoint.path)
        losses, converged, quiet_windows, vectorize, cursor, order = (
            saved.losses, saved.converged, saved.quiet_windows, saved.vectorize, saved.cursor, saved.order,
        )
        if saved.finished:
            return losses, converged
    svi = make_svi(vectorize)
    if parallel is not None:
        parallel.start(guide, args, kwargs)

    def save(finished: bool) -> None:
        device = generator.device
        write_svi_checkpoint(checkpoint, SVICheckpoint(
            losses=losses, finished=finished, converged=converged, quiet_windows=quiet_windows, vectorize=vectorize,
            cursor=cursor, order=order, params=dict(pyro.get_param_store().named_parameters()), optimizer=optimizer.get_state(),
            rng_state=torch.get_rng_state(), cuda_rng_state=torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            generator_state=generator.get_state(),
        ))

    bar = tqdm(range(len(losses), num_steps), initial=len(losses), total=num_steps, disable=not progress_bar, desc="svi", leave=False, dynamic_ncols=True)
    for step in bar:
        step_args, step_kwargs = args, kwargs
        if batch_size is not None:
            if cursor + batch_size > data_size:
                order, cursor = torch.randperm(data_size, generator=generator, device=generator.device), 0
            index = order[cursor : cursor + batch_size]
            cursor += batch_size
            if parallel is not None:
                index = parallel.shard(index)
            step_args = tuple(_slice(a, data_size, index) for a in args)
            step_kwargs = {k: _slice(v, data_size, index) for k, v in kwargs.items()}
        try:
            loss = svi.step(*step_args, **step_kwargs)
        except Exception as error:
            if step == 0 and vectorize:
                vectorize = False
                svi = make_svi(vectorize)
                loss = svi.step(*step_args, **step_kwargs)
            elif step == 0:
                raise ModelSpecError(f"the first SVI step failed: {type(error).__name__}: {error}") from error
            else:
                raise InferenceError(
                    f"SVI failed at step {step}: {type(error).__name__}: {error}. The parameters most likely "
                    f"diverged; lower the learning rate (lr={lr}) or use optimizer='clipped_adam'."
                ) from error
        if not math.isfinite(loss):
            raise InferenceError(
                f"the ELBO loss became {loss} at step {step}; training stopped instead of continuing on "
                f"non-finite values. Lower the learning rate (lr={lr}), use optimizer='clipped_adam', or check "
                "the model for values outside a distribution's support."
            )
        losses.append(loss)
        if progress_bar and step % 50 == 0:
            bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
        if callback is not None and _stop_asked(callback(step, loss) is True, parallel):
            converged = True
            break
        if tol > 0 and (step + 1) % window == 0 and len(losses) >= 2 * window:
            quiet_windows = quiet_windows + 1 if _stalled(losses, window, tol) else 0
            if quiet_windows >= 3:
                converged = True
                break
        if checkpoint is not None and checkpoint.due(step, num_steps) and step + 1 < num_steps:
            save(finished=False)
    bar.close()
    if checkpoint is not None:
        save(finished=True)
    return losses, converged


def _stop_asked(stop: bool, parallel: DataParallel | None) -> bool:
    """Whether the callback asked to stop (on any rank, in a distributed run)."""
    return stop if parallel is None else parallel.any(stop)


def _restore(saved: SVICheckpoint, guide, args, kwargs, optimizer, generator: torch.Generator, path: Path) -> None:
    """Put a checkpoint's parameters, optimiser state and random states in place before the loop resumes."""
    with torch.no_grad(), poutine.block():
        guide(*args, **kwargs)
    params = dict(pyro.get_param_store().named_parameters())
    if set(params) != set(saved.params):
        raise ResultFileError(
            f"checkpoint {str(path)!r} holds the guide parameters {sorted(saved.params)}, but this guide has {sorted(params)}; "
            "resume with the same guide, or pass a new checkpoint path."
        )
    with torch.no_grad():
        for name, value in saved.params.items():
            params[name].copy_(value)
    optimizer.set_state(saved.optimizer)
    torch.set_rng_state(saved.rng_state)
    if saved.cuda_rng_state is not None:
        torch.cuda.set_rng_state(saved.cuda_rng_state, generator.device)
    generator.set_state(saved.generator_state)


def _stalled(losses: Sequence[float], window: int, tol: float) -> bool:
    """Whether the last window's mean loss improved on the window before by less than
    ``tol`` (relative) or by less than twice the standard error of the difference."""
    current = np.asarray(losses[-window:])
    previous = np.asarray(losses[-2 * window : -window])
    improvement = previous.mean() - current.mean()
    noise = 2.0 * math.sqrt((current.var() + previous.var()) / window)
    return improvement <= max(tol * max(abs(previous.mean()), 1.0), noise)


def _sample_guide(guide, args, kwargs, info: ModelInfo, num_samples: int) -> dict[str, torch.Tensor]:
    """Draw latent values from a fitted guide: ``site -> (num_samples, *shape)``."""
    names = [site.name for site in info.latents]
    with torch.no_grad(), without_validation():
        try:
            with batch_plate(num_samples, info.max_plate_nesting):
                trace = poutine.trace(guide).get_trace(*args, **kwargs)
            return {name: unbatch(trace.nodes[name]["value"], num_samples, info.site_shapes[name]) for name in names}
        except Exception:
            rows = [poutine.trace(guide).get_trace(*args, **kwargs) for _ in range(num_samples)]
            return {name: torch.stack([row.nodes[name]["value"].reshape(info.site_shapes[name]) for row in rows]) for name in names}
