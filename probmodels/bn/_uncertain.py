"""Queries answered on posterior draws of the CPTs, summarised by a mean and a credible interval.

Shared by the conjugate :class:`~probmodels.bn.learn.DirichletPosterior` and
the core-fitted :class:`~probmodels.bn.model.CPTPosterior`.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any, NamedTuple

import pandas as pd
import torch

from .._validation import check_probability
from .inference import Inference
from .network import DiscreteBayesianNetwork

__all__ = ["UncertainQuery", "query_on_draws"]


class UncertainQuery(NamedTuple):
    """A query answered on posterior draws of the CPTs."""

    variables: tuple[Hashable, ...]
    """Query variables, in the order of the last axes."""
    states: tuple[tuple[Hashable, ...], ...]
    """Their state names."""
    mean: torch.Tensor
    """``(*cards)`` posterior mean of ``P(variables | evidence, CPTs)``."""
    lower: torch.Tensor
    """``(*cards)`` lower end of the equal-tailed credible interval."""
    upper: torch.Tensor
    """``(*cards)`` upper end."""
    draws: torch.Tensor
    """``(n_draws, *cards)`` the query on every draw."""

    def to_pandas(self) -> pd.DataFrame:
        """Columns ``mean``, ``lower``, ``upper``, one row per state (combination)."""
        index = pd.MultiIndex.from_product(self.states, names=self.variables)
        columns = {k: getattr(self, k).detach().cpu().reshape(-1).numpy() for k in ("mean", "lower", "upper")}
        return pd.DataFrame(columns, index=index.get_level_values(0) if len(self.variables) == 1 else index)


def query_on_draws(
    draws: DiscreteBayesianNetwork,
    variables: Sequence[Hashable],
    evidence: Mapping[Hashable, Hashable] | None,
    *,
    level: float,
    joint: bool,
    do: Mapping[Hashable, Hashable] | None,
) -> UncertainQuery | dict[Hashable, UncertainQuery]:
    """Answer a query on every draw of a network with batch shape ``(n_draws,)`` and summarise it.

    Parameters
    ----------
    draws : DiscreteBayesianNetwork
        Posterior draws of all CPTs as one batched network.
    variables, evidence, joint, do
        As in :meth:`Inference.query`.
    level : float
        Probability mass of the equal-tailed interval.

    Returns
    -------
    UncertainQuery or dict of UncertainQuery
        The joint (``joint=True``) or ``{variable: marginal}``.
    """
    level = check_probability(level, "level")
    results = Inference(draws).query(variables, evidence, joint=joint, do=do)
    tails = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)

    def summarise(result: Any) -> UncertainQuery:
        lower, upper = torch.quantile(result.probs, tails.to(result.probs), dim=0)
        return UncertainQuery(result.variables, result.states, result.probs.mean(0), lower, upper, result.probs)

    return summarise(results) if joint else {n: summarise(r) for n, r in results.items()}
