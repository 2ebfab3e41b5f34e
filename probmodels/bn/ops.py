"""Exact inference in discrete Bayesian networks: pure tensor functions.

A network enters as :class:`NetworkTensors`: the cardinality of each variable,
the parents of each variable and one conditional probability table (CPT) per
variable. Variables are integers ``0 .. V-1`` numbered in a topological order
(every parent has a smaller index than its child); CPT ``v`` is shaped
``(..., *cards[parents[v]], cards[v])`` (last axis = the states of ``v``,
parents in the declared order) with leading batch dims ``...`` (e.g. posterior
draws of the CPTs) that broadcast between the tables and the evidence.

Evidence is a tuple of variables ``evidence_vars`` and an integer tensor
``evidence`` shaped ``(..., n_evidence)`` of state codes; code ``-1`` means
"not observed" in that row, so rows with different observed sets share one
contraction. Each observed variable enters as a one-hot indicator factor with
the batch dims, and a whole batch of queries is ONE tensor contraction.

Algorithms. Sum-product queries drop the variables that are not ancestors of
the query or the evidence (barren nodes sum to one) and contract the rest with
a path found by ``opt_einsum`` (``"greedy"`` by default), cached per signature
(factor scopes, query, evidence variables, batch sizes) in an LRU cache; the
pairwise steps run as ``torch.einsum`` on the inputs' device (``np.einsum`` for
small CPU problems, see :mod:`probmodels.bn.contract`). The most probable
explanation (MPE) runs the same path in the max-plus semiring on log tables,
recording arg-maxes for the backtracking. Zero-probability evidence gives a
log evidence of ``-inf`` and conditionals of zeros; nothing is ever NaN.

Reference: D. Koller and N. Friedman (2009), Probabilistic Graphical Models,
chapters 9 (variable elimination), 12 (likelihood weighting) and 21
(interventions); D. G. A. Smith and J. Gray (2018), opt_einsum.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch

from .._validation import check_positive_int
from ..exceptions import DataError, ShapeError
from . import contract

__all__ = [
    "NetworkTensors",
    "Marginals",
    "Assignment",
    "Samples",
    "batch_shape",
    "log_probability_of_evidence",
    "marginals",
    "mpe",
    "map_assignment",
    "intervene",
    "sample",
    "family_counts",
    "dirichlet_log_marginal",
]


class NetworkTensors(NamedTuple):
    """A discrete Bayesian network as tensors (variables in topological order)."""

    cards: tuple[int, ...]
    """Number of states of each variable."""
    parents: tuple[tuple[int, ...], ...]
    """Parents of each variable, in the order of the CPT axes; each parent index < the child's."""
    tables: tuple[torch.Tensor, ...]
    """CPT of each variable, ``(..., *cards[parents[v]], cards[v])``."""


class Marginals(NamedTuple):
    """Output of :func:`marginals`."""

    probs: torch.Tensor
    """``(..., *cards[query])``: ``P(query | evidence)``; zeros where the evidence is impossible."""
    log_evidence: torch.Tensor
    """``(...)``: ``log P(evidence)``; ``-inf`` where it is impossible."""


class Assignment(NamedTuple):
    """Output of :func:`mpe` and :func:`map_assignment`."""

    codes: torch.Tensor
    """``(..., n)`` long: the maximising states of the queried variables (ties: lowest codes)."""
    log_prob: torch.Tensor
    """``(...)``: ``log P(assignment, evidence)``; ``-inf`` (and codes meaningless) where the evidence is impossible."""


class Samples(NamedTuple):
    """Output of :func:`sample`."""

    codes: torch.Tensor
    """``(num_samples, ..., V)`` long state codes of every variable."""
    log_weights: torch.Tensor
    """``(num_samples, ...)``: likelihood weights ``log P(evidence | parents)``; zeros without evidence."""


def batch_shape(net: NetworkTensors) -> torch.Size:
    """Broadcast batch shape of the tables of ``net``."""
    _check_net(net)
    return _table_batch(net)


def log_probability_of_evidence(
    net: NetworkTensors, evidence_vars: Sequence[int] = (), evidence: torch.Tensor | None = None
) -> torch.Tensor:
    """``log P(evidence)`` for each row of a batch of evidence.

    Parameters
    ----------
    net : NetworkTensors
        The network.
    evidence_vars : sequence of int
        The observed variables, ``n_evidence`` distinct indices.
    evidence : torch.Tensor, optional
        ``(..., n_evidence)`` integer state codes (``-1``: not observed in that row).

    Returns
    -------
    torch.Tensor
        ``(...)`` log probabilities; ``-inf`` for impossible evidence.
    """
    return marginals(net, (), evidence_vars, evidence).log_evidence


def marginals(
    net: NetworkTensors,
    query: Sequence[int],
    evidence_vars: Sequence[int] = (),
    evidence: torch.Tensor | None = None,
) -> Marginals:
    """Joint posterior ``P(query | evidence)`` by one tensor contraction.

    Parameters
    ----------
    net : NetworkTensors
        The network.
    query : sequence of int
        Distinct query variables (empty: only the log evidence).
    evidence_vars, evidence
        As in :func:`log_probability_of_evidence`.

    Returns
    -------
    Marginals
        ``probs`` ``(..., *cards[query])`` and ``log_evidence`` ``(...)``.
    """
    query = _check_vars(net, query, "query")
    operands, labels, batch, present = _operands(net, query, evidence_vars, evidence, log=False)
    if operands:
        joint = contract.sum_contract(operands, labels, tuple(present) + query)
        joint = _expand_batch(joint, batch, present, len(net.cards))
    else:
        joint = net.tables[0].new_ones(batch)
    dims = tuple(range(len(batch), joint.dim()))
    total = joint.sum(dims) if dims else joint
    safe = torch.where(total > 0, total, torch.ones_like(total))
    probs = joint / safe.reshape(safe.shape + (1,) * len(query))
    return Marginals(probs, total.log())


def mpe(net: NetworkTensors, evidence_vars: Sequence[int] = (), evidence: torch.Tensor | None = None) -> Assignment:
    """Most probable explanation ``argmax_x P(x, evidence)`` over all variables (max-product).

    Parameters
    ----------
    net, evidence_vars, evidence
        As in :func:`log_probability_of_evidence`.

    Returns
    -------
    Assignment
        ``codes`` ``(..., V)`` (observed variables at their evidence) and
        ``log_prob`` ``(...)`` ``= max_x log P(x, evidence)``.
    """
    operands, labels, batch, present = _operands(net, None, evidence_vars, evidence, log=True)
    log_prob, records = contract.max_contract(operands, labels, tuple(present))
    assigned = contract.backtrack(records, present, log_prob.device)
    codes = torch.stack([assigned[v] for v in range(len(net.cards))], -1)
    V = len(net.cards)
    return Assignment(_expand_batch(codes, batch, present, V), _expand_batch(log_prob, batch, present, V))


def map_assignment(
    net: NetworkTensors,
    query: Sequence[int],
    evidence_vars: Sequence[int] = (),
    evidence: torch.Tensor | None = None,
) -> Assignment:
    """Maximum a posteriori assignment ``argmax_q P(q, evidence)`` of some variables.

    The other unobserved variables are summed out (the joint over ``query`` is
    formed, so keep ``query`` small); when ``query`` holds every unobserved
    variable this is :func:`mpe` restricted to ``query``.

    Parameters
    ----------
    net, evidence_vars, evidence
        As in :func:`log_probability_of_evidence`.
    query : sequence of int
        Distinct variables to maximise over.

    Returns
    -------
    Assignment
        ``codes`` ``(..., len(query))`` and ``log_prob`` ``(...) = log P(q*, evidence)``.
    """
    query = _check_vars(net, query, "query")
    if not query:
        raise DataError("map_assignment needs at least one query variable.")
    if set(query) | set(evidence_vars) >= set(range(len(net.cards))):
        best = mpe(net, evidence_vars, evidence)
        return Assignment(best.codes[..., list(query)], best.log_prob)
    result = marginals(net, query, evidence_vars, evidence)
    best, index = result.probs.flatten(result.log_evidence.dim()).max(-1)
    codes = []
    for v in reversed(query):
        codes.append(index % net.cards[v])
        index = index // net.cards[v]
    return Assignment(torch.stack(codes[::-1], -1), best.log() + result.log_evidence)


def intervene(net: NetworkTensors, interventions: Mapping[int, int]) -> NetworkTensors:
    """Graph surgery for ``do(v = s)``: drop the parents of ``v`` and make its CPT a point mass on ``s``.

    Parameters
    ----------
    net : NetworkTensors
        The network.
    interventions : mapping of int to int
        Variable index -> forced state code.

    Returns
    -------
    NetworkTensors
        The mutilated network (children of ``v`` keep their CPTs).
    """
    _check_net(net)
    parents, tables = list(net.parents), list(net.tables)
    for v, state in interventions.items():
        _check_vars(net, (v,), "intervention")
        if isinstance(state, bool) or not isinstance(state, numbers.Integral) or not 0 <= state < net.cards[v]:
            raise DataError(
                f"intervention on variable {v} sets state {state!r}; expected an integer in [0, {net.cards[v]})."
            )
        parents[v] = ()
        point = torch.zeros(net.cards[v], dtype=tables[v].dtype, device=tables[v].device)
        point[state] = 1
        tables[v] = point
    return NetworkTensors(net.cards, tuple(parents), tuple(tables))


def sample(
    net: NetworkTensors,
    num_samples: int,
    evidence_vars: Sequence[int] = (),
    evidence: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Samples:
    """Ancestral sampling, or likelihood weighting when evidence is given.

    Unobserved variables are drawn in topological order from their CPT row
    (inverse CDF of one uniform each); observed ones are clamped to their
    evidence and multiply the weight by ``P(e_v | parents)``. Weighted averages
    of indicator functions estimate ``P(query | evidence)``.

    Parameters
    ----------
    net, evidence_vars, evidence
        As in :func:`log_probability_of_evidence`.
    num_samples : int
        Number of draws per batch element.
    generator : torch.Generator, optional
        Source of randomness (on the tables' device); the global RNG if None.

    Returns
    -------
    Samples
        ``codes`` ``(num_samples, ..., V)`` and ``log_weights`` ``(num_samples, ...)``.
    """
    num_samples = check_positive_int(num_samples, "num_samples")
    evidence_vars, evidence = _check_evidence(net, evidence_vars, evidence)
    ref = net.tables[0]
    batch = (num_samples,) + torch.broadcast_shapes(_table_batch(net), evidence.shape[:-1])
    observed = {v: evidence[..., j].expand(batch) for j, v in enumerate(evidence_vars)}
    codes = torch.zeros(batch + (len(net.cards),), dtype=torch.long, device=ref.device)
    log_weights = torch.zeros(batch, dtype=ref.dtype, device=ref.device)
    for v, (card, parents, table) in enumerate(zip(net.cards, net.parents, net.tables)):
        row = torch.zeros(batch, dtype=torch.long, device=ref.device)
        for p in parents:
            row = row * net.cards[p] + codes[..., p]
        rows = table.reshape(table.shape[: table.dim() - len(parents) - 1] + (-1, card))
        rows = rows.expand(batch[1:] + rows.shape[-2:]).unsqueeze(0).expand(batch + rows.shape[-2:])
        probs = rows.gather(-2, row[..., None, None].expand(batch + (1, card))).squeeze(-2)
        u = torch.rand(batch + (1,), generator=generator, dtype=ref.dtype, device=ref.device)
        drawn = (probs.cumsum(-1) < u).sum(-1).clamp(max=card - 1)
        if v in observed:
            seen = observed[v] >= 0
            value = torch.where(seen, observed[v], drawn)
            picked = probs.gather(-1, value.unsqueeze(-1)).squeeze(-1)
            log_weights = log_weights + torch.where(seen, picked.log(), torch.zeros_like(picked))
            drawn = value
        codes[..., v] = drawn
    return Samples(codes, log_weights)


def family_counts(codes: torch.Tensor, cards: Sequence[int], parents: Sequence[int], child: int) -> torch.Tensor:
    """Contingency table ``N[*parent_states, child_state]`` of complete data rows.

    Parameters
    ----------
    codes : torch.Tensor
        ``(N, V)`` integer state codes; the family's columns must be observed (>= 0). Column-major
        storage (``codes.T`` contiguous, as :mod:`~probmodels.bn.learn` keeps them) makes every
        column a contiguous view, which is several times faster for many rows.
    cards : sequence of int
        Cardinality of every variable.
    parents : sequence of int
        The parents, in the order of the table's axes.
    child : int
        The child variable.

    Returns
    -------
    torch.Tensor
        ``(*cards[parents], cards[child])`` float64 counts on the device of ``codes``.
    """
    family = list(parents) + [child]
    if any(bool((codes[:, v] < 0).any()) for v in family):
        raise DataError(f"family {family} has unobserved (-1) codes; count only complete rows or use EM.")
    return _family_counts(codes, cards, family)


def _family_counts(codes: torch.Tensor, cards: Sequence[int], family: Sequence[int]) -> torch.Tensor:
    """:func:`family_counts` of ``family`` (parents, then the child) without the check for ``-1`` codes."""
    shape = tuple(cards[v] for v in family)
    size = torch.Size(shape).numel()
    index_dtype = torch.int32 if size < 2**31 else torch.long  # int32 arithmetic is far faster on CPU
    flat = torch.zeros(codes.shape[0], dtype=index_dtype, device=codes.device)
    for v in family:
        # codes[:, v] is a contiguous view when ``codes`` is column-major (``codes.T`` contiguous)
        flat = flat * cards[v] + codes[:, v].to(index_dtype)
    return torch.bincount(flat, minlength=size).to(torch.float64).reshape(shape)


def dirichlet_log_marginal(counts: torch.Tensor, pseudo_counts: torch.Tensor) -> torch.Tensor:
    """Log marginal likelihood of multinomial counts under independent Dirichlet rows.

    ``sum_j [lgamma(a_j) - lgamma(a_j + N_j)] + sum_jk [lgamma(a_jk + N_jk) - lgamma(a_jk)]``
    with ``a_j = sum_k a_jk`` and ``N_j = sum_k N_jk``: the closed-form evidence
    of one family (BDeu when ``a_jk = ess / (q r)``, K2 when ``a_jk = 1``).

    Parameters
    ----------
    counts : torch.Tensor
        ``(..., R, K)`` counts: ``R`` parent configurations, ``K`` states.
    pseudo_counts : torch.Tensor
        ``(..., R, K)`` positive Dirichlet parameters (broadcasts with ``counts``).

    Returns
    -------
    torch.Tensor
        ``(...)`` log marginal likelihood.
    """
    counts, pseudo_counts = torch.broadcast_tensors(counts, pseudo_counts)
    rows = torch.lgamma(pseudo_counts.sum(-1)) - torch.lgamma((pseudo_counts + counts).sum(-1))
    cells = torch.lgamma(pseudo_counts + counts) - torch.lgamma(pseudo_counts)
    return rows.sum(-1) + cells.sum((-2, -1))


# ----------------------------------------------------------------------------- checks


def _check_net(net: NetworkTensors) -> None:
    if not (len(net.cards) == len(net.parents) == len(net.tables)) or not net.cards:
        raise ShapeError(
            f"NetworkTensors needs one cardinality, parent tuple and table per variable; got "
            f"{len(net.cards)}, {len(net.parents)} and {len(net.tables)}."
        )
    for v, (parents, table) in enumerate(zip(net.parents, net.tables)):
        if any(not 0 <= p < v for p in parents):
            raise ShapeError(
                f"variable {v} has parents {parents}; variables must be numbered topologically (parents < child)."
            )
        expected = tuple(net.cards[p] for p in parents) + (net.cards[v],)
        if table.dim() < len(expected) or tuple(table.shape[table.dim() - len(expected):]) != expected:
            raise ShapeError(
                f"the CPT of variable {v} has shape {tuple(table.shape)}; expected (..., *parent_cards, card) "
                f"ending in {expected}."
            )


def _table_batch(net: NetworkTensors) -> torch.Size:
    return torch.broadcast_shapes(*(t.shape[: t.dim() - len(p) - 1] for t, p in zip(net.tables, net.parents)))


def _check_vars(net: NetworkTensors, variables: Sequence[int], what: str) -> tuple[int, ...]:
    variables = tuple(int(v) for v in variables)
    if len(set(variables)) != len(variables):
        raise DataError(f"{what} variables {variables} contain duplicates; list each variable once.")
    bad = [v for v in variables if not 0 <= v < len(net.cards)]
    if bad:
        raise DataError(f"{what} variables {bad} are out of range; the network has variables 0..{len(net.cards) - 1}.")
    return variables


def _check_evidence(
    net: NetworkTensors, evidence_vars: Sequence[int], evidence: torch.Tensor | None
) -> tuple[tuple[int, ...], torch.Tensor]:
    _check_net(net)
    evidence_vars = _check_vars(net, evidence_vars, "evidence")
    device = net.tables[0].device
    if evidence is None:
        if evidence_vars:
            raise DataError(f"evidence_vars {evidence_vars} were given without evidence codes; pass evidence=...")
        return evidence_vars, torch.zeros(0, dtype=torch.long, device=device)
    evidence = torch.as_tensor(evidence, device=device)
    if evidence.is_floating_point() or evidence.is_complex() or evidence.dtype == torch.bool:
        raise DataError(f"evidence must hold integer state codes, got dtype {evidence.dtype}; use .long().")
    if evidence.dim() == 0 or evidence.shape[-1] != len(evidence_vars):
        raise ShapeError(
            f"evidence has shape {tuple(evidence.shape)}; expected (..., {len(evidence_vars)}), one column per "
            f"evidence variable {evidence_vars}."
        )
    evidence = evidence.long()
    cards = torch.tensor([net.cards[v] for v in evidence_vars], dtype=torch.long, device=device)
    bad = (evidence < -1) | (evidence >= cards)
    if bool(bad.any()):
        j = int(bad.reshape(-1, len(evidence_vars)).any(0).nonzero()[0])
        raise DataError(
            f"evidence column {j} (variable {evidence_vars[j]}) holds codes outside [-1, {int(cards[j])}), e.g. "
            f"{evidence[..., j][bad[..., j]][:3].tolist()}; -1 marks 'not observed'."
        )
    return evidence_vars, evidence


# ----------------------------------------------------------------------------- contraction


def _expand_batch(tensor: torch.Tensor, batch: tuple[int, ...], present: dict[int, int], first: int) -> torch.Tensor:
    """Give a contraction result over the ``present`` batch labels (then other axes) the full ``batch`` shape."""
    trailing = tuple(tensor.shape[len(present) :])
    shape = tuple(size if first + i in present else 1 for i, size in enumerate(batch))
    return tensor.reshape(shape + trailing).expand(batch + trailing)


@functools.lru_cache(maxsize=1024)
def _relevant(parents: tuple[tuple[int, ...], ...], targets: frozenset[int]) -> tuple[int, ...]:
    keep, stack = set(), list(targets)
    while stack:
        v = stack.pop()
        if v not in keep:
            keep.add(v)
            stack.extend(parents[v])
    return tuple(sorted(keep))


def _operands(
    net: NetworkTensors,
    query: tuple[int, ...] | None,
    evidence_vars: Sequence[int],
    evidence: torch.Tensor | None,
    log: bool,
) -> tuple[list[torch.Tensor], list[tuple[int, ...]], tuple[int, ...], dict[int, int]]:
    """CPTs (pruned to the ancestors of query and evidence unless ``query`` is None) and evidence indicators.

    Batch dims of size one are squeezed out so that the path planner sees the
    true sizes; every other batch dim gets its own label. Returns the operands,
    their labels, the broadcast batch shape and ``{label: size}`` of the batch
    labels that occur in some operand.
    """
    evidence_vars, evidence = _check_evidence(net, evidence_vars, evidence)
    batch = tuple(torch.broadcast_shapes(_table_batch(net), evidence.shape[:-1]))
    first = len(net.cards)
    kept = range(first) if query is None else _relevant(net.parents, frozenset(query + evidence_vars))
    operands, labels = [], []

    def add(tensor: torch.Tensor, scope: tuple[int, ...]) -> None:
        lead = tuple(tensor.shape[: tensor.dim() - len(scope)])
        lead = (1,) * (len(batch) - len(lead)) + lead
        own = tuple(first + i for i, size in enumerate(lead) if size != 1)
        tensor = tensor.reshape([size for size in lead if size != 1] + list(tensor.shape[tensor.dim() - len(scope) :]))
        operands.append(tensor.log() if log else tensor)
        labels.append(own + scope)

    for v in kept:
        add(net.tables[v], net.parents[v] + (v,))
    for j, v in enumerate(evidence_vars):
        codes = evidence[..., j]
        indicator = torch.nn.functional.one_hot(codes.clamp(min=0), net.cards[v]).to(net.tables[v].dtype)
        add(torch.where((codes < 0).unsqueeze(-1), torch.ones_like(indicator), indicator), (v,))
    used = set().union(*labels)
    present = {first + i: size for i, size in enumerate(batch) if first + i in used}
    return operands, labels, batch, present
