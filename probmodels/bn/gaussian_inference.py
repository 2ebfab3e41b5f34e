"""Exact queries on a :class:`~probmodels.bn.gaussian.LinearGaussianBayesianNetwork` by variable name.

:class:`GaussianInference` translates names to indices and calls the tensor
algorithms of :mod:`probmodels.bn.gaussian_ops`. Single queries take evidence
as ``{node: value}``; batched ones take a DataFrame with one row per query
(NaN = not observed). Rows that share an observed set share one Cholesky
factorisation, and all of them are answered in one broadcast solve. A batched
network (e.g. posterior draws of the parameters) adds its batch dims in front
of every result.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch

from .._validation import check_positive_int
from ..exceptions import DataError, ModelSpecError, ShapeError
from . import gaussian_ops as ops
from ._named_queries import _NamedQueries
from .gaussian import LinearGaussianBayesianNetwork, finite_number

__all__ = ["GaussianInference", "GaussianQuery"]

Evidence = Mapping[Hashable, float]


class GaussianQuery(NamedTuple):
    """The joint normal distribution of named variables given evidence, possibly batched."""

    variables: tuple[Hashable, ...]
    """The query variables, in the order of the last axis of ``mean``."""
    mean: torch.Tensor
    """``(*batch, q)`` conditional means."""
    covariance: torch.Tensor
    """``(*batch, q, q)`` conditional covariance (zero for an observed query variable)."""
    log_evidence: torch.Tensor
    """``(*batch)`` log density of the evidence."""

    def std(self) -> torch.Tensor:
        """``(*batch, q)`` conditional standard deviations."""
        return self.covariance.diagonal(dim1=-2, dim2=-1).clamp(min=0).sqrt()

    def to_pandas(self) -> pd.DataFrame:
        """Columns ``mean`` and ``std`` per variable (unbatched), or one row per batch element (1-D batch)."""
        mean, std = self.mean.detach().cpu().numpy(), self.std().detach().cpu().numpy()
        if mean.ndim == 1:
            return pd.DataFrame({"mean": mean, "std": std}, index=pd.Index(self.variables, name="variable"))
        if mean.ndim == 2:
            columns = pd.MultiIndex.from_product([self.variables, ["mean", "std"]], names=["variable", "statistic"])
            return pd.DataFrame(np.stack([mean, std], -1).reshape(len(mean), -1), columns=columns)
        raise ShapeError(f"to_pandas handles at most one batch dim; mean has batch shape {tuple(mean.shape[:-1])}.")


class GaussianInference(_NamedQueries):
    """Exact inference on a linear-Gaussian Bayesian network.

    Parameters
    ----------
    network : LinearGaussianBayesianNetwork
        A network with a CPD for every node. Later changes to it are not seen.

    Examples
    --------
    >>> infer = GaussianInference(net)                        # doctest: +SKIP
    >>> infer.query(["x"], evidence={"y": 0.3}).to_pandas()   # doctest: +SKIP
    """

    _NETWORK = LinearGaussianBayesianNetwork
    _DISTINCT_VARIABLES = True
    network: LinearGaussianBayesianNetwork
    _tensors: ops.GaussianNetworkTensors

    def __init__(self, network: LinearGaussianBayesianNetwork) -> None:
        super().__init__(network)

    def joint(self, *, do: Evidence | None = None) -> ops.JointGaussian:
        """The joint normal over :attr:`LinearGaussianBayesianNetwork.nodes`, optionally after ``do``."""
        return ops.joint_gaussian(self._net(do))

    def query(
        self, variables: Sequence[Hashable], evidence: Evidence | None = None, *, do: Evidence | None = None
    ) -> GaussianQuery:
        """Joint conditional ``P(variables | evidence)``, optionally under interventions ``do``.

        Parameters
        ----------
        variables : sequence of node names
            Query variables.
        evidence : mapping, optional
            ``{node: value}`` observations (None/NaN values are ignored).
        do : mapping, optional
            ``{node: value}`` interventions (graph surgery before conditioning).

        Returns
        -------
        GaussianQuery
            Mean ``(*batch, q)``, covariance ``(*batch, q, q)`` and ``log_evidence`` ``(*batch)``.
        """
        observed, values = self._evidence(evidence)
        result = self._query(variables, observed.unsqueeze(0), values.unsqueeze(0), do)
        b = len(self._batch)
        return GaussianQuery(result.variables, *(t.select(b, 0) for t in result[1:]))

    def query_batch(
        self, variables: Sequence[Hashable], evidence: pd.DataFrame, *, do: Evidence | None = None
    ) -> GaussianQuery:
        """:meth:`query` for every row of ``evidence``; results gain a row axis after the network's batch dims.

        Parameters
        ----------
        variables, do
            As in :meth:`query`.
        evidence : pandas.DataFrame
            One numeric column per evidence node; NaN means not observed in that row.

        Returns
        -------
        GaussianQuery
            Mean ``(*batch, n_rows, q)``, covariance ``(*batch, n_rows, q, q)``, ``log_evidence`` ``(*batch, n_rows)``.
        """
        observed, values = self._frame(evidence)
        return self._query(variables, observed, values, do)

    def log_probability(
        self, evidence: Evidence | pd.DataFrame | None = None, *, do: Evidence | None = None
    ) -> torch.Tensor:
        """Exact log density of the observed values: ``(*batch)`` for a mapping, ``(*batch, n_rows)`` for a DataFrame.

        For a DataFrame of complete rows this is the per-observation
        log-likelihood; NaN cells are marginalised out.
        """
        if isinstance(evidence, pd.DataFrame):
            return self._query(self._nodes[:1], *self._frame(evidence), do).log_evidence
        return self.query(self._nodes[:1], evidence, do=do).log_evidence

    def sample(
        self,
        num_samples: int,
        evidence: Evidence | None = None,
        *,
        do: Evidence | None = None,
        generator: torch.Generator | None = None,
    ) -> pd.DataFrame:
        """Forward samples, or exact samples from the conditional given ``evidence``.

        Parameters
        ----------
        num_samples : int
            Number of rows.
        evidence : mapping, optional
            ``{node: value}``; observed columns equal their values and the others
            are drawn from their exact conditional (Matheron's rule).
        do : mapping, optional
            ``{node: value}`` interventions.
        generator : torch.Generator, optional
            Source of randomness.

        Returns
        -------
        pandas.DataFrame
            One float column per node, in :attr:`LinearGaussianBayesianNetwork.nodes` order.
        """
        if self._batch:
            raise ShapeError(
                f"sample needs an unbatched network; this one has batch shape {self._batch}. "
                "Use probmodels.bn.gaussian_ops.sample for one draw set per batch element."
            )
        num_samples = check_positive_int(num_samples, "num_samples")
        net = self._net(do)
        observed, values = self._evidence(evidence)
        self._check_not_fixed(net, observed.unsqueeze(0))
        draws = ops.sample(net, num_samples, observed if bool(observed.any()) else None, values, generator)
        return pd.DataFrame(draws.detach().cpu().numpy(), columns=pd.Index(self._nodes))

    # ------------------------------------------------------------------ helpers

    def _query(
        self, variables: Sequence[Hashable], observed: torch.Tensor, values: torch.Tensor, do: Evidence | None
    ) -> GaussianQuery:
        query = self._variables(variables)
        net = self._net(do)
        self._check_not_fixed(net, observed)
        joint = ops.joint_gaussian(net)
        b, rows, q = len(self._batch), observed.shape[0], len(query)
        like = joint.mean
        mean = like.new_empty(self._batch + (rows, q))
        covariance = like.new_empty(self._batch + (rows, q, q))
        log_evidence = like.new_empty(self._batch + (rows,))
        index = torch.tensor(query, device=like.device)
        patterns, inverse = torch.unique(observed, dim=0, return_inverse=True)
        for k, pattern in enumerate(patterns):
            selected = (inverse == k).nonzero().squeeze(-1)
            row_values = values[selected].reshape((len(selected),) + (1,) * b + values.shape[-1:])
            cond = ops.condition(joint.mean, joint.covariance, pattern, row_values)
            mean[..., selected, :] = cond.mean.index_select(-1, index).movedim(0, b)
            block = cond.covariance.index_select(-1, index).index_select(-2, index)
            covariance[..., selected, :, :] = block.unsqueeze(-3)
            log_evidence[..., selected] = cond.log_evidence.movedim(0, b)
        return GaussianQuery(tuple(self._nodes[v] for v in query), mean, covariance, log_evidence)

    def _net(self, do: Evidence | None) -> ops.GaussianNetworkTensors:
        if not do:
            return self._tensors
        forced = {self._index[self._node(n)]: finite_number(v, f"do({n!r} = ...)", DataError) for n, v in do.items()}
        return ops.intervene(self._tensors, forced)

    def _check_not_fixed(self, net: ops.GaussianNetworkTensors, observed: torch.Tensor) -> None:
        fixed = (net.variance == 0).reshape(-1, len(self._nodes)).all(0)
        clash = (observed & fixed).any(0).nonzero().squeeze(-1).tolist()
        if clash:
            names = [self._nodes[i] for i in clash]
            raise ModelSpecError(
                f"{names} are fixed by an intervention (variance 0), so they cannot also be evidence; "
                "drop them from the evidence (their value is already known)."
            )

    def _evidence(self, evidence: Evidence | None) -> tuple[torch.Tensor, torch.Tensor]:
        if evidence is not None and not isinstance(evidence, Mapping):
            raise TypeError(
                "evidence must be a mapping {node: value} (use query_batch for a DataFrame), "
                f"got {type(evidence).__name__}."
            )
        n = len(self._nodes)
        observed = torch.zeros(n, dtype=torch.bool, device=self.network.device)
        values = torch.zeros(n, dtype=self.network.dtype, device=self.network.device)
        for name, value in (evidence or {}).items():
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            i = self._index[self._node(name)]
            observed[i], values[i] = True, finite_number(value, f"evidence[{name!r}]", DataError)
        return observed, values

    def _frame(self, frame: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(
                f"evidence must be a pandas DataFrame with one column per node, got {type(frame).__name__}."
            )
        n = len(self._nodes)
        observed = torch.zeros((len(frame), n), dtype=torch.bool, device=self.network.device)
        values = torch.zeros((len(frame), n), dtype=self.network.dtype, device=self.network.device)
        for name in frame.columns:
            i = self._index[self._node(name)]
            column = numeric_column(frame[name], name)
            if np.isinf(column).any():
                row = frame.index[np.isinf(column)][0]
                raise DataError(f"column {name!r} holds inf at row {row!r}; evidence must be finite.")
            present = torch.as_tensor(~np.isnan(column), device=self.network.device)
            observed[:, i] = present
            values[:, i] = torch.as_tensor(np.nan_to_num(column), dtype=values.dtype, device=values.device)
        return observed, values


def numeric_column(column: pd.Series, name: Hashable) -> np.ndarray:
    """A DataFrame column as a float64 array (NaN for missing); :class:`DataError` for non-numeric values."""
    if pd.api.types.is_bool_dtype(column) or not (
        pd.api.types.is_numeric_dtype(column) or column.isna().all()
    ):
        raise DataError(
            f"column {name!r} has dtype {column.dtype}, but a linear-Gaussian network needs numbers; "
            f"convert it with pd.to_numeric(data[{name!r}]) or encode it numerically."
        )
    return column.to_numpy(dtype=np.float64, na_value=np.nan)
