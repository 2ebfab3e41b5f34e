"""Parameter learning for linear-Gaussian Bayesian networks from a pandas DataFrame.

- :func:`gaussian_maximum_likelihood`: per-node least squares of the node on
  its parents (with an intercept), the variance's MLE = mean squared residual.
- :func:`gaussian_posterior`: the conjugate Normal-Inverse-Gamma posterior of
  every node's coefficients and variance, as a :class:`NormalInverseGammaPosterior`:
  posterior mean network, exact credible intervals of the parameters, posterior
  draws of all parameters as one batched network
  (:meth:`~NormalInverseGammaPosterior.sample_parameters`), queries with
  credible intervals, and the closed-form log marginal likelihood of the data
  (the exact evidence of the model, a sum over families).

The prior of a node with ``p`` parents, coefficients ``beta = (intercept, w_1 .. w_p)``:
``beta | sigma^2 ~ N(prior_mean, sigma^2 prior_precision^{-1})`` and
``sigma^2 ~ InverseGamma(prior_shape, prior_rate)``. It is not scale invariant:
standardise the data or set ``prior_rate`` to the scale of the noise variances.
Missing cells raise :class:`DataError`; rows are never dropped silently.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import networkx as nx
import numpy as np
import pandas as pd
import torch
from scipy import stats

from .._validation import check_positive_int, check_probability
from ..exceptions import DataError, ModelSpecError
from . import gaussian_ops as ops
from ._learning import learning_structure, refuse_missing
from .gaussian import LinearGaussianBayesianNetwork
from .gaussian_inference import Evidence, GaussianInference, GaussianQuery, numeric_column

__all__ = [
    "gaussian_maximum_likelihood",
    "gaussian_posterior",
    "gaussian_log_marginal_likelihood",
    "NormalInverseGammaPosterior",
    "UncertainGaussianQuery",
]

Structure = LinearGaussianBayesianNetwork | nx.DiGraph | Iterable[tuple[Hashable, Hashable]]


class _Design(NamedTuple):
    """A structure, and the data as a ``(rows, n)`` tensor in the order of ``nodes``."""

    nodes: tuple[Hashable, ...]
    parents: dict[Hashable, tuple[Hashable, ...]]
    values: torch.Tensor

    def regression(self, node: Hashable) -> tuple[torch.Tensor, torch.Tensor]:
        columns = [self.nodes.index(p) for p in self.parents[node]]
        ones = torch.ones_like(self.values[:, :1])
        return torch.cat([ones, self.values[:, columns]], -1), self.values[:, self.nodes.index(node)]

    def network(
        self, coef: Mapping[Hashable, torch.Tensor], variance: Mapping[Hashable, torch.Tensor]
    ) -> LinearGaussianBayesianNetwork:
        cpds = {n: (self.parents[n], coef[n][..., 0], coef[n][..., 1:], variance[n]) for n in self.nodes}
        values = self.values
        return LinearGaussianBayesianNetwork(nodes=self.nodes, cpds=cpds, dtype=values.dtype, device=values.device)


class UncertainGaussianQuery(NamedTuple):
    """A Gaussian query answered on posterior draws of the parameters."""

    variables: tuple[Hashable, ...]
    """Query variables, in the order of the last axis."""
    mean: torch.Tensor
    """``(q)`` posterior mean of the conditional mean ``E[variables | evidence, parameters]``."""
    lower: torch.Tensor
    """``(q)`` lower end of its equal-tailed credible interval."""
    upper: torch.Tensor
    """``(q)`` upper end."""
    std: torch.Tensor
    """``(q)`` posterior mean of the conditional standard deviation."""
    std_lower: torch.Tensor
    """``(q)`` lower end of the conditional standard deviation's credible interval."""
    std_upper: torch.Tensor
    """``(q)`` upper end."""
    draws: GaussianQuery
    """The query on every draw (batch shape ``(n_draws,)``)."""

    def to_pandas(self) -> pd.DataFrame:
        """One row per variable; columns ``mean lower upper std std_lower std_upper``."""
        fields = ("mean", "lower", "upper", "std", "std_lower", "std_upper")
        columns = {k: getattr(self, k).detach().cpu().numpy() for k in fields}
        return pd.DataFrame(columns, index=pd.Index(self.variables, name="variable"))


class NormalInverseGammaPosterior:
    """Independent Normal-Inverse-Gamma posteriors of every node's coefficients and variance.

    Built by :func:`gaussian_posterior`. ``prior[node]`` and ``posterior[node]``
    are :class:`~probmodels.bn.gaussian_ops.NormalInverseGamma` with the
    coefficients ordered ``(intercept, *weights)`` as in ``parents[node]``.
    """

    def __init__(
        self,
        design: _Design,
        prior: dict[Hashable, ops.NormalInverseGamma],
        posterior: dict[Hashable, ops.NormalInverseGamma],
        log_marginal: dict[Hashable, torch.Tensor],
    ) -> None:
        self._design = design._replace(values=design.values[:0])
        self.parents = dict(design.parents)
        self.prior = prior
        self.posterior = posterior
        self._log_marginal = log_marginal

    def mean(self) -> LinearGaussianBayesianNetwork:
        """The network of posterior means: ``E[beta] = mean_n``, ``E[sigma^2] = rate_n / (shape_n - 1)``."""
        if any(float(p.shape) <= 1 for p in self.posterior.values()):
            raise DataError(
                "the posterior mean of a variance needs shape_n > 1; use more rows or a larger prior_shape."
            )
        coef = {n: p.mean for n, p in self.posterior.items()}
        return self._design.network(coef, {n: p.rate / (p.shape - 1) for n, p in self.posterior.items()})

    def sample_parameters(self, n_draws: int) -> LinearGaussianBayesianNetwork:
        """Posterior draws of all parameters as one network with batch shape ``(n_draws,)``.

        Queries on it (:class:`~probmodels.bn.gaussian_inference.GaussianInference`)
        return one answer per draw. Draws use torch's global random state
        (seed it with ``torch.manual_seed``).
        """
        n_draws = check_positive_int(n_draws, "n_draws")
        coef, variance = {}, {}
        for node, post in self.posterior.items():
            variance[node] = torch.distributions.Gamma(post.shape, post.rate).sample((n_draws,)).reciprocal()
            chol = torch.linalg.cholesky(post.precision)
            noise = torch.randn((n_draws,) + post.mean.shape + (1,), dtype=post.mean.dtype, device=post.mean.device)
            offset = torch.linalg.solve_triangular(chol.mT, noise, upper=True).squeeze(-1)
            coef[node] = post.mean + variance[node].sqrt().unsqueeze(-1) * offset
        return self._design.network(coef, variance)

    def credible_intervals(self, level: float = 0.9) -> pd.DataFrame:
        """Exact equal-tailed credible intervals of every parameter.

        Coefficients are Student-t with ``2 shape_n`` degrees of freedom,
        location ``mean_n`` and squared scale ``rate_n / shape_n (precision_n^{-1})_jj``;
        variances are ``InverseGamma(shape_n, rate_n)``.

        Returns
        -------
        pandas.DataFrame
            Index ``(node, parameter)`` with parameter ``"intercept"``, a parent's
            name (its weight) or ``"variance"``; columns ``mean lower upper``.
        """
        level = check_probability(level, "level")
        tails = np.array([(1 - level) / 2, (1 + level) / 2])
        rows, index = [], []
        for node, post in self.posterior.items():
            a, b = float(post.shape), float(post.rate)
            loc = post.mean.detach().cpu().numpy()
            cov = torch.cholesky_inverse(torch.linalg.cholesky(post.precision)).diagonal().detach().cpu().numpy()
            for j, name in enumerate(("intercept",) + self.parents[node]):
                t = stats.t(df=2 * a, loc=loc[j], scale=np.sqrt(b / a * cov[j]))
                rows.append((loc[j], *t.ppf(tails)))
                index.append((node, name))
            ig = stats.invgamma(a, scale=b)
            rows.append((b / (a - 1) if a > 1 else np.nan, *ig.ppf(tails)))
            index.append((node, "variance"))
        labels = pd.MultiIndex.from_tuples(index, names=["node", "parameter"])
        return pd.DataFrame(rows, index=labels, columns=["mean", "lower", "upper"])

    def log_marginal_likelihood(self, per_family: bool = False) -> torch.Tensor | dict[Hashable, torch.Tensor]:
        """``log p(data | structure)`` with all parameters integrated out (a sum of closed-form family terms).

        Parameters
        ----------
        per_family : bool, default False
            Return ``{node: log p(node's column | its parents' columns)}`` instead of their sum.
        """
        return dict(self._log_marginal) if per_family else torch.stack(list(self._log_marginal.values())).sum()

    def query_with_uncertainty(
        self,
        variables: Sequence[Hashable],
        evidence: Evidence | None = None,
        *,
        n_draws: int = 1000,
        level: float = 0.9,
        do: Evidence | None = None,
    ) -> UncertainGaussianQuery:
        """A query answered on ``n_draws`` posterior draws of the parameters, with credible intervals.

        Parameters
        ----------
        variables, evidence, do
            As in :meth:`GaussianInference.query`.
        n_draws : int, default 1000
            Number of posterior draws (one batched computation).
        level : float, default 0.9
            Probability mass of the equal-tailed intervals.

        Returns
        -------
        UncertainGaussianQuery
            Posterior mean and interval of the conditional mean and of the conditional standard deviation.
        """
        level = check_probability(level, "level")
        draws = GaussianInference(self.sample_parameters(n_draws)).query(variables, evidence, do=do)
        std = draws.std()
        tails = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=draws.mean.dtype, device=draws.mean.device)
        lower, upper = torch.quantile(draws.mean, tails, dim=0)
        std_lower, std_upper = torch.quantile(std, tails, dim=0)
        return UncertainGaussianQuery(
            draws.variables, draws.mean.mean(0), lower, upper, std.mean(0), std_lower, std_upper, draws
        )


def gaussian_maximum_likelihood(
    structure: Structure, data: pd.DataFrame, *, device: str | torch.device | None = None
) -> LinearGaussianBayesianNetwork:
    """Maximum-likelihood linear-Gaussian CPDs: per-node least squares, variance = mean squared residual.

    Parameters
    ----------
    structure : LinearGaussianBayesianNetwork, networkx.DiGraph or iterable of edges
        The DAG (a network's CPDs fix the parents' order; otherwise parents are sorted by name).
    data : pandas.DataFrame
        One numeric column per node (extra columns are ignored), no missing cells.
    device : str or torch.device, optional
        Device of the computation and of the returned parameters (float64).

    Returns
    -------
    LinearGaussianBayesianNetwork

    Raises
    ------
    DataError
        Missing or non-numeric cells; a node whose parents (with an intercept)
        are linearly dependent in the data or outnumber the rows; a node that
        its parents predict exactly (residual variance 0).
    """
    design = _prepare(structure, data, device)
    coef, variance = {}, {}
    for node in design.nodes:
        x, y = design.regression(node)
        rank = 0
        if x.shape[0] >= x.shape[1]:
            coef[node], variance[node], rank = ops.least_squares(x, y)
        if int(rank) < x.shape[-1]:
            raise DataError(
                f"the maximum-likelihood CPD of {node!r} is not unique: the intercept and its parents "
                f"{design.parents[node]} give a design of rank {int(rank)} < {x.shape[-1]} on {x.shape[0]} rows "
                "(too few rows or linearly dependent parent columns). Add rows, remove a parent, or use "
                "gaussian_posterior (a proper prior makes the estimate unique)."
            )
        if not float(variance[node]) > 0:
            raise DataError(
                f"{node!r} is an exact linear function of its parents {design.parents[node]} in the data "
                "(residual variance 0), so its maximum-likelihood variance is 0; remove the duplicated column."
            )
    return design.network(coef, variance)


def gaussian_posterior(
    structure: Structure,
    data: pd.DataFrame,
    *,
    prior_mean: float | Mapping[Hashable, Any] = 0.0,
    prior_precision: float | Mapping[Hashable, Any] = 0.01,
    prior_shape: float = 1.0,
    prior_rate: float = 1.0,
    device: str | torch.device | None = None,
) -> NormalInverseGammaPosterior:
    """Conjugate Normal-Inverse-Gamma posterior of all CPDs from complete data.

    Parameters
    ----------
    structure, data, device
        As in :func:`gaussian_maximum_likelihood`.
    prior_mean : float or mapping, default 0.0
        One number for every coefficient, or ``{node: array (1 + n_parents,)}``
        (intercept first, then the weights in the parents' order).
    prior_precision : float or mapping, default 0.01
        ``c`` for the precision ``c I`` (prior sd of a coefficient ``sigma / sqrt(c)``),
        or ``{node: symmetric positive definite array (1 + n_parents, 1 + n_parents)}``.
    prior_shape, prior_rate : float, default 1.0
        Of the inverse-gamma prior of every variance (both > 0).

    Returns
    -------
    NormalInverseGammaPosterior
    """
    for name, value in (("prior_shape", prior_shape), ("prior_rate", prior_rate)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or not np.isfinite(value):
            raise ModelSpecError(f"{name} must be a finite number > 0, got {value!r}; 1.0 is a weak default.")
    design = _prepare(structure, data, device)
    priors, posteriors, log_marginal = {}, {}, {}
    like = design.values
    for node in design.nodes:
        x, y = design.regression(node)
        p = x.shape[-1]
        mean = _prior_array(prior_mean, node, (p,), like, "prior_mean")
        precision = _prior_array(prior_precision, node, (p, p), like, "prior_precision")
        if precision.dim() == 0:
            precision = precision * torch.eye(p, dtype=like.dtype, device=like.device)
        _check_precision(precision, node)
        priors[node] = ops.NormalInverseGamma(
            mean.expand(p), precision, like.new_tensor(float(prior_shape)), like.new_tensor(float(prior_rate))
        )
        posteriors[node], log_marginal[node] = ops.normal_inverse_gamma_update(priors[node], x, y)
    return NormalInverseGammaPosterior(design, priors, posteriors, log_marginal)


def gaussian_log_marginal_likelihood(
    structure: Structure,
    data: pd.DataFrame,
    *,
    prior_mean: float | Mapping[Hashable, Any] = 0.0,
    prior_precision: float | Mapping[Hashable, Any] = 0.01,
    prior_shape: float = 1.0,
    prior_rate: float = 1.0,
    per_family: bool = False,
) -> torch.Tensor | dict[Hashable, torch.Tensor]:
    """Closed-form ``log p(data | structure)`` under Normal-Inverse-Gamma priors.

    Shorthand for ``gaussian_posterior(...).log_marginal_likelihood(per_family)``.
    """
    posterior = gaussian_posterior(
        structure, data, prior_mean=prior_mean, prior_precision=prior_precision,
        prior_shape=prior_shape, prior_rate=prior_rate,
    )
    return posterior.log_marginal_likelihood(per_family)


# ----------------------------------------------------------------------------- helpers


def _prepare(structure: Structure, data: pd.DataFrame, device: Any) -> _Design:
    _, _, nodes, parents = learning_structure(structure, data, LinearGaussianBayesianNetwork)
    absent = [n for n in nodes if n not in data.columns]
    if absent:
        raise DataError(f"data has no column for nodes {absent}; its columns are {list(data.columns)}.")
    if len(data) == 0:
        raise DataError("data has no rows; learning needs at least one observation per node.")
    values = np.stack([numeric_column(data[n], n) for n in nodes], -1)
    refuse_missing(nodes, np.isnan(values), data, "impute them")
    if np.isinf(values).any():
        columns = [n for n, bad in zip(nodes, np.isinf(values).any(0)) if bad]
        raise DataError(f"columns {columns} hold inf values; remove or fix those rows.")
    return _Design(nodes, parents, torch.as_tensor(values, dtype=torch.float64, device=device))


def _prior_array(value: Any, node: Hashable, shape: tuple[int, ...], like: torch.Tensor, name: str) -> torch.Tensor:
    if isinstance(value, Mapping) and node not in value:
        raise ModelSpecError(f"{name} has no entry for {node!r}; give every node one, or pass a single number.")
    raw = value[node] if isinstance(value, Mapping) else value
    array = torch.as_tensor(np.asarray(raw, dtype=np.float64), dtype=like.dtype, device=like.device)
    if array.dim() and tuple(array.shape) != shape:
        raise ModelSpecError(
            f"{name}[{node!r}] has shape {tuple(array.shape)}; expected {shape} for the intercept and the "
            f"weights of its {shape[0] - 1} parent(s), in the parents' order."
        )
    if not bool(torch.isfinite(array).all()):
        raise ModelSpecError(f"{name} for {node!r} has non-finite entries.")
    return array


def _check_precision(precision: torch.Tensor, node: Hashable) -> None:
    symmetric = torch.allclose(precision, precision.mT)
    if not symmetric or int(torch.linalg.cholesky_ex(precision).info) != 0:
        raise ModelSpecError(
            f"prior_precision for {node!r} must be symmetric positive definite (a number > 0 or an SPD matrix)."
        )
