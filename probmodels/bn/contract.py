"""Tensor-network contraction for :mod:`probmodels.bn.ops`: cached paths, sum-product and max-sum.

Operands are tensors with integer labels per axis (variables, then batch
dims). A contraction path (greedy variable elimination for small problems,
``opt_einsum``'s path function for large ones) is planned once per signature
(labels, output, sizes) and cached; its pairwise steps run as
``torch.einsum`` (sum-product; ``np.einsum`` for small plans on CPU tensors
that need no gradient, where torch's per-call overhead dominates) or as
broadcast additions of log tables followed by a max over the eliminated
labels (max-sum), whose arg-maxes :func:`backtrack` decodes into the
maximising assignment. Labels are mapped to einsum letters per step, so
networks with more than 52 variables work (as long as no single step touches
more than 52 labels).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
import opt_einsum
import torch

__all__ = [
    "PATH_STRATEGY",
    "ELIMINATION_MAX_OPERANDS",
    "NUMPY_MAX_ENTRIES",
    "sum_contract",
    "max_contract",
    "largest_step",
    "backtrack",
]

PATH_STRATEGY = "greedy"
"""``opt_einsum`` strategy for paths over more than :data:`ELIMINATION_MAX_OPERANDS` operands (planning is cached)."""

NUMPY_MAX_ENTRIES = 1 << 16
"""Largest step (entries over the union of its labels) of a sum-product plan on CPU that runs in ``np.einsum``."""

ELIMINATION_MAX_OPERANDS = 64
"""Plans of at most this many operands use greedy variable elimination (cheap to plan); larger: ``PATH_STRATEGY``."""

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

Record = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], torch.Tensor]
"""One max-sum elimination: (kept labels, eliminated labels, their sizes, flat arg-max over the kept labels)."""


def sum_contract(operands: list[torch.Tensor], labels: list[tuple[int, ...]], output: tuple[int, ...]) -> torch.Tensor:
    """Sum-product contraction of ``operands`` to the ``output`` labels (in that order)."""
    return _run(operands, labels, output, "sum", None)


def max_contract(
    operands: list[torch.Tensor], labels: list[tuple[int, ...]], output: tuple[int, ...]
) -> tuple[torch.Tensor, list[Record]]:
    """Max-sum contraction of log-space ``operands``; returns the max and the records for :func:`backtrack`."""
    records: list[Record] = []
    return _run(operands, labels, output, "max", records), records


def largest_step(labels: list[tuple[int, ...]], output: tuple[int, ...], sizes: dict[int, int]) -> int:
    """Entries of the largest step (over the union of its labels) of the plan that :func:`sum_contract` would use."""
    return _plan(tuple(labels), output, tuple(sorted(sizes.items()))).largest


def backtrack(records: list[Record], batch_sizes: dict[int, int], device: torch.device) -> dict[int, torch.Tensor]:
    """Decode the arg-max records of :func:`max_contract` (output = batch labels only).

    Returns every eliminated label's maximising code, shaped by the batch
    labels' sizes (in the order of ``batch_sizes``).
    """
    shape = tuple(batch_sizes.values())
    assigned: dict[int, torch.Tensor] = {}
    for out, elim, elim_sizes, arg in reversed(records):
        index = [assigned[x] if x in assigned else _arange_at(x, batch_sizes, device) for x in out]
        flat = (arg[tuple(index)] if index else arg).expand(shape)
        for x, size in zip(reversed(elim), reversed(elim_sizes)):
            assigned[x] = flat % size
            flat = flat // size
    return assigned


def _arange_at(label: int, sizes: dict[int, int], device: torch.device) -> torch.Tensor:
    position = list(sizes).index(label)
    shape = [1] * len(sizes)
    shape[position] = sizes[label]
    return torch.arange(sizes[label], device=device).reshape(shape)


class _Step(NamedTuple):
    """One step of a plan: pop the operands at ``positions`` (descending), contract them, append the result."""

    positions: tuple[int, ...]
    scopes: tuple[tuple[int, ...], ...]
    out: tuple[int, ...]
    equation: str


class _Plan(NamedTuple):
    """A contraction plan: its steps and the entries of the largest step (over the union of its labels)."""

    steps: tuple[_Step, ...]
    largest: int


@functools.lru_cache(maxsize=256)
def _plan(
    labels: tuple[tuple[int, ...], ...], output: tuple[int, ...], sizes: tuple[tuple[int, int], ...]
) -> _Plan:
    """The path (greedy elimination or opt_einsum) as steps with output labels and einsum equations, cached."""
    size = dict(sizes)
    path: list[tuple[int, ...]] = []
    if len(labels) > ELIMINATION_MAX_OPERANDS:
        # the path function itself: contract_path would also parse an equation and cost every step
        optimizer = opt_einsum.paths.get_path_fn(PATH_STRATEGY)
        path = list(optimizer([frozenset(lab) for lab in labels], frozenset(output), size, None))
    elif len(labels) > 1:
        path = opt_einsum.paths.ssa_to_linear(_elimination_path(labels, frozenset(output), size))
    remaining, steps, largest = list(labels), [], 1
    for step in list(path) + [None]:
        positions = tuple(sorted(step if step is not None else range(len(remaining)), reverse=True))
        scopes = tuple(remaining.pop(i) for i in positions)
        needed = set(output).union(*remaining)
        out = output if not remaining else tuple(dict.fromkeys(x for lab in scopes for x in lab if x in needed))
        local = {x: _LETTERS[i] for i, x in enumerate(dict.fromkeys(sum(scopes, out)))}
        equation = ",".join("".join(local[x] for x in lab) for lab in scopes) + "->" + "".join(local[x] for x in out)
        steps.append(_Step(positions, scopes, out, equation))
        largest = max(largest, math.prod(size[x] for x in local))
        remaining.append(out)
    return _Plan(tuple(steps), largest)


def _elimination_path(
    labels: tuple[tuple[int, ...], ...], output: frozenset[int], size: dict[int, int]
) -> list[tuple[int, int]]:
    """Greedy variable elimination as a pairwise SSA path (ids: the operands, then each step's result).

    Repeatedly sums out the label whose factors multiply into the smallest
    table (min-weight heuristic), merging those factors smallest first; the
    factors left (over output labels only) are merged last.
    """
    scopes = {i: frozenset(lab) for i, lab in enumerate(labels)}
    holders: dict[int, set[int]] = {}
    for i, scope in scopes.items():
        for x in scope:
            holders.setdefault(x, set()).add(i)
    entries = lambda scope: math.prod(size[y] for y in scope)  # noqa: E731
    weight = lambda x: entries(frozenset().union(*(scopes[i] for i in holders[x]))) // size[x]  # noqa: E731
    costs = {x: weight(x) for x in holders if x not in output}
    path: list[tuple[int, int]] = []

    def merge(ids: set[int], drop: int | None) -> frozenset[int]:
        ordered = sorted(ids, key=lambda i: entries(scopes[i]))
        current = ordered[0]
        for other in ordered[1:]:
            path.append((current, other))
            merged = scopes.pop(current) | scopes.pop(other)
            current = len(labels) + len(path) - 1
            scopes[current] = merged
        scope = scopes[current] - {drop}
        scopes[current] = scope
        for y in scope:
            holders[y] = (holders[y] - ids) | {current}
        return scope

    while costs:
        x = min(costs, key=costs.__getitem__)
        del costs[x]
        for y in merge(holders.pop(x), x):
            if y in costs:
                costs[y] = weight(y)
    if len(scopes) > 1:
        merge(set(scopes), None)
    return path


def _run(
    operands: list[torch.Tensor],
    labels: list[tuple[int, ...]],
    output: tuple[int, ...],
    mode: str,
    records: list[Record] | None,
) -> torch.Tensor:
    """Contract ``operands`` down to ``output`` labels along a cached plan (``mode`` "sum" or "max")."""
    sizes = {}
    for tensor, lab in zip(operands, labels):
        sizes.update(zip(lab, tensor.shape))
    plan = _plan(tuple(labels), output, tuple(sorted(sizes.items())))
    if mode == "sum" and _small_on_cpu(operands, plan):
        arrays = [tensor.numpy() for tensor in operands]
        for step in plan.steps:
            arrays.append(np.einsum(step.equation, *[arrays.pop(i) for i in step.positions]))
        return torch.from_numpy(np.ascontiguousarray(arrays[0]))
    operands = list(operands)
    for step in plan.steps:
        tensors = [operands.pop(i) for i in step.positions]
        if mode == "sum":
            operands.append(torch.einsum(step.equation, *tensors))
        else:
            operands.append(_max_sum(tensors, step.scopes, step.out, records))
    return operands[0]


def _small_on_cpu(operands: list[torch.Tensor], plan: _Plan) -> bool:
    """Whether numpy should run the plan: CPU tensors, no autograd, and every step at most ``NUMPY_MAX_ENTRIES``.

    On such small tensors torch's per-call overhead (tens of microseconds)
    dominates; ``np.einsum`` costs a few.
    """
    return (
        plan.largest <= NUMPY_MAX_ENTRIES
        and all(t.device.type == "cpu" for t in operands)
        and not (torch.is_grad_enabled() and any(t.requires_grad for t in operands))
    )


def _max_sum(
    tensors: list[torch.Tensor], scopes: tuple[tuple[int, ...], ...], out: tuple[int, ...], records: list[Record]
) -> torch.Tensor:
    union = tuple(dict.fromkeys(x for lab in scopes for x in lab))
    total = None
    for tensor, lab in zip(tensors, scopes):
        aligned = tensor.permute([lab.index(x) for x in union if x in lab])
        aligned = aligned.reshape([tensor.shape[lab.index(x)] if x in lab else 1 for x in union])
        total = aligned if total is None else total + aligned
    elim = tuple(x for x in union if x not in out)
    total = total.permute([union.index(x) for x in out + elim])
    if not elim:
        return total
    elim_sizes = tuple(total.shape[len(out):])
    best, arg = total.reshape(total.shape[: len(out)] + (-1,)).max(-1)
    records.append((out, elim, elim_sizes, arg))
    return best
