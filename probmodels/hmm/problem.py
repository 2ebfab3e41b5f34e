"""Checking the arguments of the HMM algorithms and building a :class:`~probmodels.hmm.scan.Problem`.

:mod:`probmodels.hmm.ops` calls :func:`prepare` at every entry: it checks
types, devices, shapes (with messages that name the argument and the shapes
received) and, optionally, values (NaN, ``+inf``), then aligns the arguments
time-major with broadcast batch dims. The public checks
(:func:`check_hmm_params`, :func:`check_normalised`, :class:`HMMShape`) are
used through :mod:`probmodels.hmm.ops`, which re-exports them.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

from ..exceptions import DataError, ModelSpecError, ShapeError
from .scan import Problem

__all__ = ["HMMShape", "check_hmm_params", "check_normalised", "check_tensor", "prepare"]


class HMMShape(NamedTuple):
    """Sizes of an HMM problem, as found by :func:`check_hmm_params`."""

    batch_shape: torch.Size
    """Broadcast batch shape ``...`` of all arguments."""
    num_steps: int
    """Number of time steps ``T``."""
    num_states: int
    """Number of hidden states ``K``."""


def check_tensor(value: Any, name: str) -> None:
    """Raise ``TypeError`` unless ``value`` is a tensor."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor, got {type(value).__name__}; convert it with torch.as_tensor({name})."
        )


def _check_values(value: torch.Tensor, name: str) -> None:
    total = value.sum()  # one pass: neither NaN nor +inf (nor an overflow) when finite or -inf
    if not (torch.isnan(total) or total == float("inf")):
        return
    for bad, what in ((torch.isnan(value), "NaN"), (torch.isposinf(value), "+inf")):
        if bool(bad.any()):
            where = bad.nonzero()[:5].tolist()
            raise DataError(
                f"argument {name!r} contains {int(bad.sum())} {what} value(s), first at index {where}; "
                f"log-probabilities must be finite or -inf (an exact zero). Check the parameters or "
                f"the emission model that produced {name}."
            )


def prepare(log_init, log_trans, log_emit, lengths, time_varying, validate, check_emit=True) -> Problem:
    """Check the arguments (see :func:`probmodels.hmm.ops.check_hmm_params`) and return the time-major :class:`Problem`."""
    named = {"log_trans": log_trans, "log_emit": log_emit}
    if log_init is not None:
        named = {"log_init": log_init, **named}
    for name, value in named.items():
        check_tensor(value, name)
        if not (value.is_floating_point()):
            raise TypeError(f"{name} must be a floating-point tensor of log-probabilities, got dtype {value.dtype}.")
    devices = {str(v.device) for v in named.values()}
    if len(devices) > 1:
        where = ", ".join(f"{n} on {v.device}" for n, v in named.items())
        raise DataError(f"the HMM arguments live on different devices ({where}); move them to one device.")
    shapes = ", ".join(f"{n} {tuple(v.shape)}" for n, v in named.items())
    if log_emit.dim() < 2:
        raise ShapeError(f"log_emit must have shape (..., T, K), got {tuple(log_emit.shape)}.")
    num_steps, num_states = log_emit.shape[-2], log_emit.shape[-1]
    source = "log_emit (..., T, K)" if check_emit else "log_init (..., K)"
    if check_emit and num_steps == 0:
        raise ShapeError(f"log_emit has T = 0 time steps (shape {tuple(log_emit.shape)}); an HMM needs T >= 1.")
    if num_states == 0:
        raise ShapeError(f"the HMM has K = 0 states ({shapes}); it needs K >= 1.")
    trans_dims = 3 if time_varying else 2
    expected = "(..., T-1, K, K)" if time_varying else "(..., K, K)"
    if log_trans.dim() < trans_dims or log_trans.shape[-1] != log_trans.shape[-2]:
        raise ShapeError(
            f"log_trans must have shape {expected} (square in its last two dims), got {tuple(log_trans.shape)}."
        )
    if log_trans.shape[-1] != num_states:
        raise ShapeError(
            f"log_trans has K = {log_trans.shape[-1]} states (shape {tuple(log_trans.shape)}) but {source} "
            f"has K = {num_states}; received {shapes}. All arguments must agree on the number of states."
        )
    if time_varying and log_trans.shape[-3] != num_steps - 1:
        raise ShapeError(
            f"time-varying log_trans must have T-1 = {num_steps - 1} steps in dim -3 (shape {expected}), "
            f"got {tuple(log_trans.shape)} for T = {num_steps} steps."
        )
    if log_init is not None and (log_init.dim() < 1 or log_init.shape[-1] != num_states):
        raise ShapeError(
            f"log_init must have shape (..., K) with K = {num_states} states as in {source}, "
            f"got {tuple(log_init.shape)}; received {shapes}."
        )
    batches = {
        "log_emit": log_emit.shape[:-2],
        "log_trans": log_trans.shape[:-trans_dims],
        **({"log_init": log_init.shape[:-1]} if log_init is not None else {}),
    }
    mask = None
    if lengths is not None:
        if not isinstance(lengths, torch.Tensor):
            lengths = torch.as_tensor(lengths)
        if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
            raise TypeError(f"lengths must be an integer tensor, got dtype {lengths.dtype}.")
        batches["lengths"] = lengths.shape
    try:
        batch_shape = torch.broadcast_shapes(*batches.values())
    except RuntimeError:
        listed = ", ".join(f"{n} {tuple(s)}" for n, s in batches.items())
        raise ShapeError(
            f"the batch dims (left of the state/time dims) do not broadcast: {listed}; received {shapes}."
        ) from None
    if validate:
        for name, value in named.items():
            if check_emit or name != "log_emit":
                _check_values(value, name)
    if lengths is not None:
        lengths = lengths.to(log_emit.device)
        outside = (lengths < 1) | (lengths > num_steps)
        if bool(outside.any()):
            raise DataError(
                f"lengths must lie in [1, T] = [1, {num_steps}], got {lengths[outside][:5].tolist()} "
                f"at index {outside.nonzero()[:5].tolist()}."
            )
        steps = torch.arange(num_steps, device=log_emit.device)
        mask = steps.view((num_steps,) + (1,) * len(batch_shape)) < lengths
        mask = mask.expand((num_steps,) + batch_shape)
    dtype = log_trans.dtype
    for value in named.values():
        dtype = torch.promote_types(dtype, value.dtype)
    ndim = len(batch_shape)
    emit = log_emit.to(dtype).movedim(-2, 0)
    emit = emit.reshape(emit.shape[:1] + (1,) * (ndim + 2 - emit.dim()) + emit.shape[1:])
    emit = emit.expand((num_steps,) + batch_shape + (num_states,))
    trans = log_trans.to(dtype)
    trans = trans.movedim(-3, 0) if time_varying else trans.unsqueeze(0)
    trans = trans.reshape(trans.shape[:1] + (1,) * (ndim + 3 - trans.dim()) + trans.shape[1:])
    init = None if log_init is None else log_init.to(dtype).expand(batch_shape + (num_states,))
    return Problem(init, trans, emit, mask, batch_shape, num_steps, num_states)


def check_hmm_params(
    log_init: torch.Tensor,
    log_trans: torch.Tensor,
    log_emit: torch.Tensor,
    lengths: torch.Tensor | None = None,
    *,
    time_varying: bool = False,
) -> HMMShape:
    """Check the arguments of the HMM functions and return the problem's sizes.

    Raises
    ------
    TypeError
        An argument is not a tensor, a log-probability is not floating point,
        or ``lengths`` is not integer.
    ShapeError
        ``K`` disagrees between arguments, ``log_trans`` is not square, ``T`` is
        0, a time-varying ``log_trans`` has no ``T - 1`` steps, or the batch dims
        do not broadcast. The message names the argument and the shapes.
    DataError
        NaN or ``+inf`` in an argument (named), ``lengths`` outside ``[1, T]``,
        or arguments on different devices.
    """
    prob = prepare(log_init, log_trans, log_emit, lengths, time_varying, True)
    return HMMShape(prob.batch_shape, prob.num_steps, prob.num_states)


def check_normalised(probs: torch.Tensor, name: str, atol: float = 1e-6) -> None:
    """Raise :class:`ModelSpecError` unless every row (last dim) of ``probs`` is a distribution.

    Rows must be non-negative and sum to 1 within ``atol``; the message lists
    the offending rows and their sums.
    """
    check_tensor(probs, name)
    if probs.dim() == 0:
        raise ShapeError(f"{name} must have at least one dim (the states), got a scalar.")
    if probs.device.type == "cpu" and probs.dtype in (torch.float32, torch.float64):
        array = probs.detach().numpy()  # numpy checks of small parameter arrays: microseconds, not tens
        if not ((array < 0).any(-1) | ~(np.abs(array.sum(-1) - 1) <= atol)).any():
            return
    negative = (probs < 0).any(-1)
    sums = probs.sum(-1)
    bad = negative | ~(torch.abs(sums - 1) <= atol)
    if bool(bad.any()):
        rows = bad.nonzero().tolist()
        shown = ", ".join(f"row {tuple(r)}: sum {float(sums[tuple(r)]):.10g}" for r in rows[:5])
        more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
        kind = "negative entries or rows" if bool(negative.any()) else "rows"
        raise ModelSpecError(
            f"{name} must hold probability distributions along its last dim (non-negative, summing "
            f"to 1 within atol={atol}); found {len(rows)} bad {kind}: {shown}{more}. Normalise with "
            f"{name} / {name}.sum(-1, keepdim=True), or pass logits through a softmax."
        )
