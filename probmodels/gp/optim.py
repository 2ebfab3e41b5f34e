"""The optimiser behind every GP ``fit``: L-BFGS or Adam with restarts, NaN detection and a convergence check.

Users never write a training loop: :func:`minimize` takes a loss of a flat
parameter vector and returns the best point over the restarts, optionally
preconditioned per start by a :func:`newton_transform` (the inverse square
root of a finite-difference Hessian), which is how the exact GP hands the
curvature found on a data subset to its full-data run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from tqdm.auto import tqdm

from ..exceptions import InferenceError, ModelSpecError

__all__ = ["OptimizeResult", "minimize", "newton_transform", "OPTIMIZERS"]

OPTIMIZERS = ("lbfgs", "adam")


@dataclass(frozen=True)
class OptimizeResult:
    """Outcome of :func:`minimize`.

    Attributes
    ----------
    x : Tensor
        Best point found.
    loss : float
        Loss at ``x``.
    converged : bool
        Whether the best run stopped on its tolerance rather than its iteration limit.
    n_iter : int
        Iterations of the best run.
    losses : list of float
        Final loss of every restart (non-finite for failed ones).
    """

    x: torch.Tensor
    loss: float
    converged: bool
    n_iter: int
    losses: list[float]


class _NonFinite(Exception):
    pass


class _Converged(Exception):
    """Raised from an L-BFGS closure at a point that meets the gradient tolerance, to end the run there."""


def _evaluate(loss_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    loss = loss_fn(x)
    if not bool(torch.isfinite(loss.detach())):
        raise _NonFinite(f"loss {float(loss.detach())}")
    return loss


def _run_lbfgs(loss_fn, x0, max_iter, tol, bar, transform=None, resumes: int = 3) -> tuple[torch.Tensor, float, bool, int]:
    """L-BFGS from ``x0``; a non-finite trial point restarts it (fresh history) from the best point so far.

    With a ``transform`` ``T`` it runs in the coordinates ``z`` of
    ``x = x0 + T z`` (a preconditioner); either way it stops as soon as an
    evaluated point has a max-abs gradient in ``x`` of at most ``tol``.
    """
    best = [x0.clone(), math.inf, math.inf]  # point, loss, max-abs gradient there
    best_z = x0.new_zeros(x0.shape) if transform is not None else x0.clone()
    used = 0
    for attempt in range(resumes + 1):
        z = best_z.clone().requires_grad_(True)
        optimizer = torch.optim.LBFGS(
            [z], lr=1.0, max_iter=max_iter - used, max_eval=2 * max_iter, tolerance_grad=0.0, tolerance_change=1e-14,
            history_size=50, line_search_fn="strong_wolfe",
        )

        def closure() -> torch.Tensor:
            nonlocal best_z
            optimizer.zero_grad()
            point = z.detach().clone() if transform is None else x0 + transform @ z.detach()  # z moves in place later
            x = point.clone().requires_grad_(True)
            loss = _evaluate(loss_fn, x)
            loss.backward()
            if not bool(torch.isfinite(x.grad).all()):
                raise _NonFinite("gradient")
            z.grad = x.grad if transform is None else transform.mT @ x.grad
            value, slope = float(loss.detach()), float(x.grad.abs().max())
            if value < best[1]:
                best[0], best[1], best[2], best_z = point, value, slope, z.detach().clone()
            bar.update(1)
            bar.set_postfix(loss=f"{value:.6g}", refresh=False)
            if slope <= tol:
                raise _Converged
            return loss.detach()

        try:
            optimizer.step(closure)
        except _Converged:
            used += int(optimizer.state[z].get("n_iter", 0))
            break
        except _NonFinite:
            used += int(optimizer.state[z].get("n_iter", 0))
            if attempt == resumes or not math.isfinite(best[1]) or used >= max_iter:
                raise
            continue
        used += int(optimizer.state[z].get("n_iter", 0))
        break
    converged = best[2] <= max(10 * tol, 1e-6) or used < max_iter
    return best[0], best[1], converged, used


def _run_adam(loss_fn, x0, max_iter, tol, lr, bar) -> tuple[torch.Tensor, float, bool, int]:
    x = x0.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([x], lr=lr)
    window, previous, best = 50, math.inf, (x0.clone(), math.inf)
    running = 0.0
    for step in range(max_iter):
        optimizer.zero_grad()
        loss = _evaluate(loss_fn, x)
        loss.backward()
        value = float(loss.detach())
        if value < best[1]:
            best = (x.detach().clone(), value)
        optimizer.step()
        running += value
        bar.update(1)
        if (step + 1) % window == 0:
            bar.set_postfix(loss=f"{value:.6g}", refresh=False)
            mean = running / window
            if previous - mean < tol * max(abs(previous), 1.0):
                return best[0], best[1], True, step + 1
            previous, running = mean, 0.0
    return best[0], best[1], False, max_iter


def minimize(
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    starts: list[torch.Tensor],
    *,
    method: str = "lbfgs",
    max_iter: int = 500,
    tol: float = 1e-7,
    lr: float = 0.05,
    progress_bar: bool = False,
    what: str = "the hyperparameters",
    transforms: Sequence[torch.Tensor | None] | None = None,
) -> OptimizeResult:
    """Minimise ``loss_fn`` from each start and keep the best.

    Parameters
    ----------
    loss_fn
        Scalar, differentiable loss of a flat vector.
    starts
        Starting points; the first is the user's, the rest are restarts.
    method
        ``"lbfgs"`` (strong-Wolfe line search) or ``"adam"``.
    max_iter
        Iterations per start.
    tol
        L-BFGS: gradient tolerance (max-abs). Adam: relative improvement of
        the mean loss over 50 steps below which it stops.
    lr
        Adam's learning rate.
    progress_bar
        Show loss evaluations and the current loss.
    what
        Named in error messages.
    transforms
        L-BFGS only: per start, None or a preconditioner ``T`` (``(p, p)``),
        so that the run moves ``z`` in ``x = start + T z``; a good one is
        the inverse square root of the Hessian of ``loss_fn`` (see
        :func:`newton_transform`). The tolerance still applies to the
        gradient with respect to ``x``.

    Raises
    ------
    InferenceError
        Every start hit a NaN/inf loss or gradient, or a failed factorisation.
    """
    if method not in OPTIMIZERS:
        raise ModelSpecError(f"optimizer must be one of {OPTIMIZERS}, got {method!r}.")
    best: tuple[torch.Tensor, float, bool, int] | None = None
    losses: list[float] = []
    failures: list[str] = []
    bar = tqdm(total=None, disable=not progress_bar, desc=f"fit ({method})", leave=False, dynamic_ncols=True)
    transforms = list(transforms) if transforms is not None else [None] * len(starts)
    if len(transforms) != len(starts):
        raise ModelSpecError(f"transforms must have one entry per start ({len(starts)}), got {len(transforms)}.")
    try:
        for start, transform in zip(starts, transforms):
            try:
                if method == "lbfgs":
                    run = _run_lbfgs(loss_fn, start, max_iter, tol, bar, transform)
                else:
                    run = _run_adam(loss_fn, start, max_iter, tol, lr, bar)
            except (_NonFinite, InferenceError) as error:
                losses.append(math.nan)
                failures.append(str(error))
                continue
            losses.append(run[1])
            if best is None or run[1] < best[1]:
                best = run
    finally:
        bar.close()
    if best is None:
        raise InferenceError(
            f"optimising {what} failed from all {len(starts)} start(s) (non-finite loss or gradient: {failures[:3]}); "
            "set better initial values, fix the noise to a positive value, or standardise the data."
        )
    return OptimizeResult(best[0], best[1], best[2], best[3], losses)


def newton_transform(loss_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *, step: float = 1e-4) -> torch.Tensor | None:
    """Inverse square root ``T = H^{-1/2}`` of a forward-difference Hessian of ``loss_fn`` at ``x``.

    In the coordinates ``z`` of ``x + T z`` the loss has (nearly) unit
    curvature, so a quasi-Newton run there starts with good steps instead of
    learning the curvature. Costs ``p + 1`` gradient evaluations for ``p``
    parameters; eigenvalues are taken in absolute value and floored at
    ``1e-8`` of the largest, so ``T`` exists even away from a minimum.

    Returns
    -------
    Tensor or None
        ``(p, p)``; None when a gradient is not finite or the loss fails
        (:class:`~probmodels.exceptions.InferenceError`) near ``x``.
    """

    def gradient(point: torch.Tensor) -> torch.Tensor:
        point = point.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(loss_fn(point), point)
        return grad

    try:
        centre = gradient(x)
        rows = [(gradient(x + step * unit) - centre) / step for unit in torch.eye(x.numel(), dtype=x.dtype, device=x.device)]
    except InferenceError:
        return None
    hessian = torch.stack(rows)
    hessian = 0.5 * (hessian + hessian.mT)
    if not bool(torch.isfinite(hessian).all()):
        return None
    values, vectors = torch.linalg.eigh(hessian)
    values = values.abs()
    values = values.clamp_min(float(values.max()) * 1e-8 + torch.finfo(x.dtype).tiny)
    return vectors * values.rsqrt()
