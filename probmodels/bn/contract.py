"""Tensor-network contraction for :mod:`probmodels.bn.ops`: cached paths, sum-product and max-sum.

Operands are tensors with integer labels per axis (variables, then batch
dims). A contraction path from ``opt_einsum`` is planned once per signature
(labels, output, sizes) and cached; its pairwise steps run as
``torch.einsum`` (sum-product) or as broadcast additions of log tables
followed by a max over the eliminated labels (max-sum), whose arg-maxes
:func:`backtrack` decodes into the maximising assignment. Labels are mapped to
einsum letters per step, so networks with more than 52 variables work (as
long as no single step touches more than 52 labels).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import opt_einsum
import torch

__all__ = ["PATH_STRATEGY", "sum_contract", "max_contract", "backtrack"]

PATH_STRATEGY = "greedy"
"""``opt_einsum`` strategy for contraction paths (planning is cached, so a slower one may pay off)."""

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


@functools.lru_cache(maxsize=256)
def _plan(
    labels: tuple[tuple[int, ...], ...], output: tuple[int, ...], sizes: tuple[tuple[int, int], ...]
) -> tuple[_Step, ...]:
    """The opt_einsum path as steps with precomputed output labels and einsum equations (cached per signature)."""
    path: list[tuple[int, ...]] = []
    if len(labels) > 1:
        size = dict(sizes)
        word = lambda lab: "".join(opt_einsum.get_symbol(x) for x in lab)  # noqa: E731
        shapes = [tuple(size[x] for x in lab) for lab in labels]
        equation = ",".join(map(word, labels)) + "->" + word(output)
        path = opt_einsum.contract_path(equation, *shapes, shapes=True, optimize=PATH_STRATEGY)[0]
    remaining, steps = list(labels), []
    for step in list(path) + [None]:
        positions = tuple(sorted(step if step is not None else range(len(remaining)), reverse=True))
        scopes = tuple(remaining.pop(i) for i in positions)
        needed = set(output).union(*remaining)
        out = output if not remaining else tuple(dict.fromkeys(x for lab in scopes for x in lab if x in needed))
        local = {x: _LETTERS[i] for i, x in enumerate(dict.fromkeys(sum(scopes, out)))}
        equation = ",".join("".join(local[x] for x in lab) for lab in scopes) + "->" + "".join(local[x] for x in out)
        steps.append(_Step(positions, scopes, out, equation))
        remaining.append(out)
    return tuple(steps)


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
    operands = list(operands)
    for step in _plan(tuple(labels), output, tuple(sorted(sizes.items()))):
        tensors = [operands.pop(i) for i in step.positions]
        if mode == "sum":
            operands.append(torch.einsum(step.equation, *tensors))
        else:
            operands.append(_max_sum(tensors, step.scopes, step.out, records))
    return operands[0]


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
