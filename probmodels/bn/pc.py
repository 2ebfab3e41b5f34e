"""Constraint-based structure learning of discrete Bayesian networks: the PC algorithm.

:func:`ci_test` tests ``X _||_ Y | Z`` on discrete data by Pearson's
chi-square or the G-test (likelihood ratio) on the stratified contingency
table ``N[z, x, y]`` (one ``bincount``): the statistic is summed over the
strata ``z`` with expected counts ``N[z, x, .] N[z, ., y] / N[z]``. Degrees of
freedom are ``(r_x - 1)(r_y - 1)`` per stratum, where ``dof="adjusted"``
counts only the states of ``x`` and ``y`` seen in that stratum (empty strata
give nothing; as pgmpy and bnlearn's ``"x2-adf"``) and ``dof="full"`` uses
all states and strata (the textbook value). With no degree of freedom left
(e.g. ``x`` a function of ``z``) the data cannot tell and the p-value is NaN;
:func:`pc` keeps the edge then, as pgmpy does.

:func:`pc` is PC-stable (Colombo & Maathuis, 2014): the skeleton starts
complete, and at level ``l = 0, 1, ...`` an edge ``x - y`` is removed when a
conditioning set of size ``l`` from the neighbours of ``x`` or of ``y`` (frozen
at the start of the level) makes them independent at ``significance_level``.
Unshielded triples ``x - z - y`` with ``z`` outside the separating set of
``x`` and ``y`` become v-structures ``x -> z <- y`` (in the data's column
order; an edge already oriented the other way is kept), then Meek's rules
orient what they compel. The result is a CPDAG, or a DAG extension of it.

References
----------
Spirtes, P., Glymour, C., Scheines, R. (2000). Causation, Prediction, and Search, 2nd ed.
Colombo, D., Maathuis, M. H. (2014). Order-independent constraint-based causal structure
learning. JMLR 15, 3741-3782.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Mapping, Sequence
from typing import NamedTuple

import networkx as nx
import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import xlogy

from .._validation import check_non_negative_int, check_probability
from ..exceptions import ModelSpecError
from .cpdag import apply_meek_rules, pdag_to_dag
from .scores import DiscreteData, encode_data

__all__ = ["CI_TESTS", "CITestResult", "ci_test", "pc"]

CI_TESTS = ("chi_square", "g_test")
"""Accepted values of ``method``."""


class CITestResult(NamedTuple):
    """The outcome of a conditional independence test."""

    statistic: float
    """Chi-square or G statistic, summed over the strata."""
    p_value: float
    """Upper tail probability of the chi-square distribution with ``dof`` degrees of freedom (NaN when ``dof`` is 0)."""
    dof: int
    """Degrees of freedom."""


def ci_test(
    data: pd.DataFrame,
    x: Hashable,
    y: Hashable,
    z: Sequence[Hashable] = (),
    *,
    method: str = "chi_square",
    dof: str = "adjusted",
    yates: bool = False,
    state_names: Mapping[Hashable, Sequence[Hashable]] | None = None,
) -> CITestResult:
    """Test ``x _||_ y | z`` on complete discrete data.

    Parameters
    ----------
    data : pandas.DataFrame
        One column per variable.
    x, y : hashable
        The tested columns.
    z : sequence of hashable, default ()
        The conditioning columns.
    method : {"chi_square", "g_test"}, default "chi_square"
        Pearson's statistic ``sum (O - E)^2 / E`` or the G statistic ``2 sum O log(O / E)``.
    dof : {"adjusted", "full"}, default "adjusted"
        Degrees of freedom from the states seen per stratum, or from all states and strata.
    yates : bool, default False
        Yates' continuity correction on strata with one degree of freedom (as
        ``scipy.stats.chi2_contingency`` and pgmpy's tests do).
    state_names : mapping, optional
        ``{column: states}``.

    Returns
    -------
    CITestResult
    """
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame with one column per variable, got {type(data).__name__}.")
    names = [x, y, *z]
    absent = [n for n in names if n not in data.columns]
    if absent:
        raise ModelSpecError(f"ci_test names {absent}, which are not columns of data {list(data.columns)}.")
    if len(set(names)) != len(names):
        raise ModelSpecError(f"x, y and z must be distinct columns, got x={x!r}, y={y!r}, z={list(z)!r}.")
    names_given = {n: s for n, s in (state_names or {}).items() if n in names}
    encoded = encode_data(data[names], names_given)
    return _test(encoded, 0, 1, tuple(range(2, len(names))), _check_method(method), _check_dof(dof), bool(yates))


def pc(
    data: pd.DataFrame,
    *,
    method: str = "chi_square",
    significance_level: float = 0.01,
    max_cond_vars: int | None = None,
    dof: str = "adjusted",
    yates: bool = False,
    return_type: str = "cpdag",
    state_names: Mapping[Hashable, Sequence[Hashable]] | None = None,
) -> nx.DiGraph:
    """Learn the Markov equivalence class of a DAG by the PC-stable algorithm.

    Parameters
    ----------
    data : pandas.DataFrame
        Complete discrete data, one column per variable.
    method : {"chi_square", "g_test"}, default "chi_square"
        The conditional independence test (see :func:`ci_test`).
    significance_level : float, default 0.01
        Two variables count as independent when the p-value exceeds it (a NaN
        p-value, from a test without degrees of freedom, never does).
    max_cond_vars : int, optional
        Largest conditioning set (default: no limit).
    dof, yates
        As in :func:`ci_test`.
    return_type : {"cpdag", "dag"}, default "cpdag"
        The CPDAG (undirected edges as pairs of opposite arcs), or a DAG
        extension of it (:func:`~probmodels.bn.cpdag.pdag_to_dag`).
    state_names : mapping, optional
        ``{column: states}``.

    Returns
    -------
    networkx.DiGraph
        Over the data's columns, with ``graph.graph["separating_sets"]``:
        ``{frozenset({x, y}): conditioning set}`` of every removed edge, and
        ``graph.graph["n_tests"]``.
    """
    method, dof = _check_method(method), _check_dof(dof)
    alpha = check_probability(significance_level, "significance_level")
    if return_type not in ("cpdag", "dag"):
        raise ModelSpecError(f"return_type must be 'cpdag' or 'dag', got {return_type!r}.")
    encoded = encode_data(data, state_names)
    v = len(encoded.nodes)
    limit = v if max_cond_vars is None else check_non_negative_int(max_cond_vars, "max_cond_vars")
    adjacent = ~np.eye(v, dtype=bool)
    sepsets: dict[frozenset[int], tuple[int, ...]] = {}
    n_tests, level = 0, 0
    while level <= limit and (adjacent.sum(1) - 1 >= level).any():
        frozen = adjacent.copy()
        for a, b in zip(*np.nonzero(np.triu(frozen))):
            for side, other in ((a, b), (b, a)):
                candidates = [c for c in np.flatnonzero(frozen[side]) if c != other]
                for subset in itertools.combinations(candidates, level):
                    n_tests += 1
                    if _test(encoded, int(a), int(b), tuple(int(c) for c in subset), method, dof, yates).p_value > alpha:
                        adjacent[a, b] = adjacent[b, a] = False
                        sepsets[frozenset((int(a), int(b)))] = tuple(int(c) for c in subset)
                        break
                if not adjacent[a, b]:
                    break
        level += 1
    arcs = _orient_v_structures(adjacent, sepsets)
    nodes = encoded.nodes
    graph = nx.DiGraph()
    graph.add_nodes_from(nodes)
    graph.add_edges_from((nodes[i], nodes[j]) for i, j in zip(*np.nonzero(arcs)))
    graph = apply_meek_rules(graph)
    if return_type == "dag":
        graph = pdag_to_dag(graph)
    graph.graph["separating_sets"] = {frozenset(nodes[i] for i in k): tuple(nodes[i] for i in s) for k, s in sepsets.items()}
    graph.graph["n_tests"] = n_tests
    return graph


def _test(data: DiscreteData, x: int, y: int, z: tuple[int, ...], method: str, dof_mode: str, yates: bool) -> CITestResult:
    cards, codes = data.cards, data.codes
    kx, ky = int(cards[x]), int(cards[y])
    strata = 1
    stratum = np.zeros(codes.shape[1], dtype=np.int64)
    for c in z:
        stratum = stratum * cards[c] + codes[c]
        strata *= int(cards[c])
    flat = (stratum * kx + codes[x]) * ky + codes[y]
    if strata * kx * ky <= 4 * codes.shape[1] + 4096:
        observed = np.bincount(flat, minlength=strata * kx * ky).reshape(strata, kx, ky).astype(np.float64)
    else:
        keys, counts = np.unique(flat, return_counts=True)
        seen, inverse = np.unique(keys // (kx * ky), return_inverse=True)
        observed = np.zeros((len(seen), kx * ky))
        observed[inverse, keys % (kx * ky)] = counts
        observed = observed.reshape(len(seen), kx, ky)
    rows = observed.sum(2, keepdims=True)
    columns = observed.sum(1, keepdims=True)
    totals = rows.sum(1, keepdims=True)
    expected = rows * columns / np.where(totals > 0, totals, 1.0)
    if dof_mode == "adjusted":
        per_stratum = np.clip((rows[..., 0] > 0).sum(1) - 1, 0, None) * np.clip((columns[:, 0] > 0).sum(1) - 1, 0, None)
        dof = int(per_stratum.sum())
    else:
        per_stratum = np.full(observed.shape[0], (kx - 1) * (ky - 1))
        dof = (kx - 1) * (ky - 1) * strata
    if yates:
        difference = expected - observed
        adjustment = np.minimum(0.5, np.abs(difference)) * np.sign(difference)
        observed = np.where((per_stratum == 1)[:, None, None], observed + adjustment, observed)
    if method == "chi_square":
        positive = expected > 0
        statistic = float((np.where(positive, (observed - expected) ** 2, 0.0) / np.where(positive, expected, 1.0)).sum())
    else:
        statistic = float(2.0 * (xlogy(observed, observed) - xlogy(observed, expected)).sum())
    p_value = float(stats.chi2.sf(statistic, dof)) if dof > 0 else float("nan")
    return CITestResult(statistic, p_value, dof)


def _orient_v_structures(adjacent: np.ndarray, sepsets: Mapping[frozenset[int], tuple[int, ...]]) -> np.ndarray:
    arcs = adjacent.copy()
    v = adjacent.shape[0]
    for x, y in itertools.combinations(range(v), 2):
        if adjacent[x, y]:
            continue
        for z in np.flatnonzero(adjacent[x] & adjacent[y]):
            if z not in sepsets.get(frozenset((x, y)), ()) and arcs[x, z] and arcs[y, z]:
                arcs[z, x] = arcs[z, y] = False
    return arcs


def _check_method(method: str) -> str:
    if method not in CI_TESTS:
        raise ModelSpecError(f"method must be one of {CI_TESTS}, got {method!r}.")
    return method


def _check_dof(dof: str) -> str:
    if dof not in ("adjusted", "full"):
        raise ModelSpecError(f"dof must be 'adjusted' or 'full', got {dof!r}.")
    return dof
