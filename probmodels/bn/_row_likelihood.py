"""Per-row log-likelihood of discrete data with missing cells: pure tensor functions.

``log P(observed cells of row i | CPTs)`` sums every missing cell over its
states exactly. Rows are grouped by their pattern of missing cells, and
:func:`plan_rows` prepares, once per data set, what each pattern needs: the
families that touch no missing variable contribute one gathered log entry per
row; the others are sliced at the row's observed states and contracted over
the missing variables by one ``torch.einsum`` per pattern (batched over the
rows, path chosen by ``opt_einsum``). Missing variables that are not ancestors
of an observed one are barren and drop out. :func:`evaluate_rows` then runs
without any data-dependent control flow, so it is differentiable in the CPTs,
batched over their leading dims, and traceable into a compiled graph.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ..exceptions import ShapeError
from . import ops

__all__ = ["RowPlan", "plan_rows", "evaluate_rows", "row_log_likelihood"]

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


class _Family(NamedTuple):
    """One CPT's part in a pattern: axes reordered (observed first), observed states flattened per row."""

    node: int
    permutation: tuple[int, ...]
    """Order of the family axes (parents, then the node): observed ones first, then the missing ones."""
    observed_size: int
    """Number of joint states of the observed axes."""
    index: torch.Tensor
    """``(n_pattern_rows,)`` flat code of the observed axes in each row."""
    subscripts: str
    """Einsum letters of the missing axes (empty: the family is fully observed)."""


class _Pattern(NamedTuple):
    rows: torch.Tensor
    """``(n_pattern_rows,)`` row indices."""
    families: tuple[_Family, ...]
    """The relevant families (barren ones dropped)."""


class RowPlan(NamedTuple):
    """What :func:`evaluate_rows` needs about one data set (built by :func:`plan_rows`)."""

    n_rows: int
    patterns: tuple[_Pattern, ...]
    order: torch.Tensor
    """``(n_rows,)``: position of each row in the concatenation of the patterns' rows."""


def plan_rows(cards: tuple[int, ...], parents: tuple[tuple[int, ...], ...], codes: torch.Tensor) -> RowPlan:
    """Group the rows of ``codes`` by missing pattern and prepare their gathers and contractions.

    Parameters
    ----------
    cards, parents
        As in :class:`~probmodels.bn.ops.NetworkTensors` (topological numbering).
    codes : torch.Tensor
        ``(n_rows, V)`` integer state codes, ``-1`` for a missing cell.

    Returns
    -------
    RowPlan
    """
    codes = codes.long()
    missing = codes < 0
    patterns, which = torch.unique(missing, dim=0, return_inverse=True)
    planned, positions = [], []
    for p, pattern in enumerate(patterns.tolist()):
        rows = (which == p).nonzero().squeeze(-1)
        observed = {v for v, gone in enumerate(pattern) if not gone}
        relevant = set(ops._relevant(parents, frozenset(observed)))  # ancestors: barren nodes sum to one
        summed = sorted(relevant - observed)
        if len(summed) > len(_LETTERS):
            raise ShapeError(
                f"a missing-data pattern leaves {len(summed)} unobserved ancestors of observed nodes; at most "
                f"{len(_LETTERS)} can be summed in one contraction."
            )
        letters = dict(zip(summed, _LETTERS))
        families = []
        block = codes[rows]
        for v in sorted(relevant):
            axes = parents[v] + (v,)
            seen = [i for i, u in enumerate(axes) if u in observed]
            unseen = [i for i, u in enumerate(axes) if u not in observed]
            index = torch.zeros(len(rows), dtype=torch.long, device=codes.device)
            size = 1
            for i in seen:
                index = index * cards[axes[i]] + block[:, axes[i]]
                size *= cards[axes[i]]
            subscripts = "".join(letters[axes[i]] for i in unseen)
            families.append(_Family(v, tuple(seen + unseen), size, index, subscripts))
        planned.append(_Pattern(rows, tuple(families)))
        positions.append(rows)
    order = torch.argsort(torch.cat(positions)) if positions else torch.zeros(0, dtype=torch.long)
    return RowPlan(codes.shape[0], tuple(planned), order)


def evaluate_rows(plan: RowPlan, tables: tuple[torch.Tensor, ...], parents: tuple[tuple[int, ...], ...]) -> torch.Tensor:
    """Log-likelihood of every row of a planned data set under CPTs ``tables``.

    Parameters
    ----------
    plan : RowPlan
        From :func:`plan_rows` on the same network.
    tables : tuple of torch.Tensor
        CPT of each variable, ``(*B, *parent_cards, card)``; the batch dims
        ``B`` (e.g. chains or draws) broadcast against the rows axis, so the
        last of them must be 1 (e.g. ``(n_draws, 1)``).
    parents : tuple of tuple of int
        Parents of each variable.

    Returns
    -------
    torch.Tensor
        ``broadcast(B, (n_rows,))`` log-likelihoods; a row without any
        observed cell has log-likelihood 0.
    """
    lead = []
    for table, family in zip(tables, parents):
        batch = table.shape[: table.dim() - len(family) - 1]
        if len(batch) and batch[-1] != 1:
            raise ShapeError(
                f"CPT batch shape {tuple(batch)} must end in 1: the last batch dim lines up with the rows "
                "(add one with table.unsqueeze(-len(parents) - 2))."
            )
        lead.append(batch[:-1])
    batch = torch.broadcast_shapes(*lead)
    ref = tables[0]
    parts = []
    for pattern in plan.patterns:
        total = ref.new_zeros(batch + pattern.rows.shape)
        operands, subscripts = [], []
        for family in pattern.families:
            table = tables[family.node]
            axes = table.dim() - len(parents[family.node]) - 1
            table = table.reshape(table.shape[:axes][:-1] + table.shape[axes:]) if axes else table
            first = len(lead[family.node])
            table = table.permute(tuple(range(first)) + tuple(first + i for i in family.permutation))
            unseen = table.shape[first + len(family.permutation) - len(family.subscripts):]
            table = table.reshape(table.shape[:first] + (family.observed_size,) + unseen)
            sliced = table.index_select(first, family.index)
            if family.subscripts:
                operands.append(sliced)
                subscripts.append("..." + family.subscripts)
            else:
                total = total + sliced.log()
        if operands:
            total = total + torch.einsum(",".join(subscripts) + "->...", *operands).log()
        parts.append(total)
    if not parts:
        return ref.new_zeros(batch + (0,))
    return torch.cat(parts, -1)[..., plan.order]


def row_log_likelihood(net: ops.NetworkTensors, codes: torch.Tensor) -> torch.Tensor:
    """Log-likelihood of every row of ``codes``, missing cells marginalised (:func:`plan_rows` then :func:`evaluate_rows`).

    Parameters
    ----------
    net : NetworkTensors
        The network; see :func:`evaluate_rows` for its tables' batch dims.
    codes : torch.Tensor
        ``(n_rows, V)`` integer state codes; ``-1`` marks a missing cell (a
        column of ``-1`` is a hidden variable).

    Returns
    -------
    torch.Tensor
        ``broadcast(B, (n_rows,))`` log-likelihoods.
    """
    ops.batch_shape(net)  # validates the tables
    return evaluate_rows(plan_rows(net.cards, net.parents, codes), net.tables, net.parents)
