"""SparseGPRegression: stochastic variational GP regression (SVGP, Hensman et al. 2013).

The latent function is summarised by its values at ``m`` inducing inputs
(whitened, :mod:`probmodels.gp.variational`); the ELBO

    sum_i E_q[log N(y_i | f_i, noise)] - KL(q(v) || N(0, I))

is estimated on mini-batches with the likelihood scaled by ``n / batch``
and maximised over the kernel hyperparameters and (optionally) the
inducing inputs by Adam, while the variational Gaussian takes exact
natural-gradient steps (closed form for the Gaussian likelihood) or Adam
steps with the rest. Cost per step ``O(batch m^2 + m^3)``, independent of n.

References
----------
Hensman, J., Fusi, N., Lawrence, N. D. (2013). Gaussian processes for big data. UAI.
Titsias, M. (2009). Variational learning of inducing variables in sparse Gaussian processes. AISTATS.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Iterator, Mapping, NamedTuple, Sequence

import torch
from tqdm.auto import tqdm

from .._validation import check_positive_int
from ..exceptions import ConvergenceWarning, InferenceError, ModelSpecError, NotFittedError
from ._checks import as_inputs, as_targets, check_features
from .hyper import NOISE, HyperSpace
from .kernels import Kernel, make_kernel
from .ops import cholesky_inverse, jittered_cholesky
from .scaling import Standardizer
from .variational import (
    InducingPosterior,
    collapsed_bound,
    from_natural,
    gaussian_expected_log_lik,
    inducing_cholesky,
    init_inducing,
    kl_divergence,
    marginals,
    whiten,
)
from .whitened_gram import whitened_gram

__all__ = ["SparseGPRegression", "svgp_elbo", "batch_statistics", "BatchStatistics"]

_CHUNK = 8192


class BatchStatistics(NamedTuple):
    """What a batch contributes to the Gaussian-likelihood ELBO, in whitened form.

    Attributes
    ----------
    cross_outer : Tensor
        ``A A^T = L^{-1} K(Z, X_b) K(X_b, Z) L^{-T}``, ``(m, m)``.
    cross_y : Tensor
        ``A y_b``, ``(m,)``.
    yy : Tensor
        ``y_b^T y_b``.
    trace_k : Tensor
        ``sum_i k(x_i, x_i)``.
    size : int
        Batch size ``b``.
    """

    cross_outer: torch.Tensor
    cross_y: torch.Tensor
    yy: torch.Tensor
    trace_k: torch.Tensor
    size: int


def batch_statistics(
    kernel: Kernel, values: Mapping[str, torch.Tensor], chol: torch.Tensor, Z: torch.Tensor, X: torch.Tensor, y: torch.Tensor
) -> BatchStatistics:
    """The :class:`BatchStatistics` of ``(X, y)`` for inducing inputs ``Z`` with ``chol = L``.

    ``A = L^{-1} K(Z, X)`` is formed by a triangular solve and ``A A^T`` as its
    Gram matrix, so it stays positive semi-definite in floating point however
    close the inducing inputs are (``L^{-1} K K^T L^{-T}`` would not); the
    gradient never forms ``dA`` (:func:`~probmodels.gp.whitened_gram.whitened_gram`).
    """
    outer, cross_y = whitened_gram(chol, kernel.matrix(values, Z, X), y)
    return BatchStatistics(outer, cross_y, (y * y).sum(), kernel.diag(values, X).sum(), y.shape[0])


class _Moments(NamedTuple):
    """What the ELBO needs of ``q(v) = N(mean, cov)``: the mean, the covariance and ``log det cov``."""

    mean: torch.Tensor
    cov: torch.Tensor
    log_det: torch.Tensor


def _moments(q: InducingPosterior) -> _Moments:
    """The :class:`_Moments` of a posterior given by its Cholesky factor (differentiable)."""
    S = q.scale_tril
    return _Moments(q.mean, S @ S.mT, 2.0 * torch.log(S.diagonal().abs()).sum())


def _natural_moments(shift: torch.Tensor, precision: torch.Tensor) -> _Moments:
    """The :class:`_Moments` of the Gaussian with natural parameters ``(shift, precision)``: one Cholesky
    factorisation and its inverse, with no second factorisation for a ``scale_tril``."""
    chol, _ = jittered_cholesky(precision, what="the precision of the variational posterior")
    mean = torch.cholesky_solve(shift.unsqueeze(-1), chol).squeeze(-1)
    return _Moments(mean, cholesky_inverse(chol), -2.0 * torch.log(chol.diagonal()).sum())


def _elbo(stats: BatchStatistics, q: _Moments, noise: torch.Tensor, num_data: int) -> torch.Tensor:
    """``(num_data / b) sum_batch E_q log N(y_i | f_i, noise) - KL``, from the batch statistics
    (no per-point work: one training step costs ``O(b m^2)`` for ``A A^T`` and ``O(m^3)``).

    ``sum (y_i - mu_i)^2 = y^T y - 2 m^T A y + m^T A A^T m``,
    ``sum var_i = tr K - tr(A A^T) + tr(A A^T cov)`` and
    ``KL = (tr cov + |m|^2 - dim - log det cov) / 2``.
    """
    mean, cov, outer = q.mean, q.cov, stats.cross_outer
    squares = stats.yy - 2.0 * (mean * stats.cross_y).sum() + mean @ outer @ mean
    variances = stats.trace_k - outer.diagonal().sum() + (outer * cov).sum()
    ell = -0.5 * stats.size * torch.log(2.0 * math.pi * noise) - 0.5 * (squares + variances) / noise
    kl = 0.5 * (cov.diagonal().sum() + (mean * mean).sum() - mean.shape[-1] - q.log_det)
    return num_data / stats.size * ell - kl


def svgp_elbo(
    kernel: Kernel, values: Mapping[str, torch.Tensor], Z: torch.Tensor, q: InducingPosterior,
    X: torch.Tensor, y: torch.Tensor, *, num_data: int, jitter: float = 0.0,
) -> torch.Tensor:
    """Unbiased estimate of the SVGP ELBO from a batch ``(X, y)`` of a data set of ``num_data`` points.

    ``(num_data / len(y)) sum_batch E_q[log N(y_i | f_i, noise)] - KL(q || N(0, I))``;
    over the batches of a partition of the data into equal sizes the
    estimates (and their gradients) average to the full-data ELBO.

    Parameters
    ----------
    kernel, values
        The kernel and the hyperparameter values, including ``"noise"``.
    Z
        Inducing inputs ``(m, d)``.
    q
        The whitened variational posterior.
    X, y
        The batch, ``(b, d)`` and ``(b,)``.
    num_data
        Size of the whole data set.
    jitter
        Added to the diagonal of ``K(Z, Z)``, relative to its mean diagonal.
    """
    chol = inducing_cholesky(kernel, values, Z, jitter=jitter)
    return _elbo(batch_statistics(kernel, values, chol, Z, X, y), _moments(q), values[NOISE], num_data)


def _chunks(n: int, size: int = _CHUNK) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def _lower(raw: torch.Tensor) -> torch.Tensor:
    """A Cholesky factor from an unconstrained square matrix: strict lower part kept, diagonal exponentiated."""
    return torch.tril(raw, -1) + torch.diag_embed(torch.exp(raw.diagonal()))


class SparseGPRegression:
    """Sparse variational GP regression (SVGP) with Gaussian noise, trained on mini-batches.

    Parameters
    ----------
    kernel, ard, hyperparameters, fixed
        As in :class:`~probmodels.gp.GPRegression` (``"noise"`` is the noise variance).
    num_inducing
        Number of inducing inputs ``m``; with ``num_inducing >= n`` the
        training inputs themselves are used (and not moved).
    inducing_points
        Initial inducing inputs ``(m, d)`` in the units of ``X`` (overrides
        ``num_inducing`` and ``inducing_init``).
    inducing_init
        ``"kmeans++"`` (k-means++ seeding and Lloyd iterations) or ``"random"`` (a subset of the rows).
    learn_inducing
        Optimise the inducing inputs with the hyperparameters.
    batch_size
        Mini-batch size; the batch log-likelihood is scaled by ``n / batch``.
    max_epochs
        Passes over the data at most.
    lr
        Adam's learning rate (log-hyperparameters, inducing inputs, and the
        variational parameters when ``natural_gradient=False``).
    natural_gradient
        Update the variational Gaussian by natural-gradient steps of size
        ``natural_step`` (exact for a Gaussian likelihood; stable and much
        faster than Adam on its ``m + m(m+1)/2`` parameters).
    natural_step
        Step size ``rho`` in (0, 1] of ``theta <- (1 - rho) theta + rho theta*_batch``;
        1 with full batches reaches the optimal ``q`` in one step. After the last
        epoch ``q`` is set to its exact optimum for the fitted hyperparameters and
        inducing inputs (one pass over the data, ``O(n m^2)``).
    tol
        Stop when the mean per-point loss of an epoch changes by less than
        ``tol * max(1, |loss|)`` from the previous epoch.
    jitter
        Added to the diagonal of ``K(Z, Z)``, relative to its mean diagonal, which
        keeps close inducing inputs factorisable; the ELBO stays a lower bound.
    standardize_x, standardize_y
        Standardise inputs and targets inside ``fit``; predictions come back in the units of ``y``.
    seed
        Seeds the inducing-point initialisation and the batch order.
    progress_bar
        Show epochs and the current loss.

    Attributes
    ----------
    hyperparameters_ : dict of Tensor
        Fitted hyperparameters (standardised units).
    inducing_points_ : Tensor
        Fitted inducing inputs ``(m, d)`` in the units of ``X``.
    variational_ : InducingPosterior
        The whitened variational posterior ``q(v)``.
    elbo_ : float
        Full-data ELBO at the fit, a lower bound on ``log p(y | X, theta)``
        in the units of ``y`` (standardisation Jacobian included); with
        natural gradients ``q`` is optimal, so it equals :meth:`collapsed_elbo`.
    history_ : list of float
        Mean negative ELBO per point of every epoch (standardised units).
    converged_ : bool
        Whether training stopped on ``tol`` before ``max_epochs``.

    Examples
    --------
    >>> import torch
    >>> from probmodels.gp import SparseGPRegression
    >>> g = torch.Generator().manual_seed(0)
    >>> X = torch.linspace(-2, 2, 200, dtype=torch.float64)[:, None]
    >>> y = torch.sin(2 * X[:, 0]) + 0.1 * torch.randn(200, generator=g, dtype=torch.float64)
    >>> gp = SparseGPRegression(num_inducing=10, batch_size=50, max_epochs=200, lr=0.05).fit(X, y)
    >>> round(float(gp.predict(torch.tensor([[0.5]], dtype=torch.float64))), 1)
    0.8
    """

    def __init__(
        self,
        kernel: str | Kernel = "rbf",
        *,
        ard: bool = False,
        hyperparameters: Mapping[str, Any] | None = None,
        fixed: Sequence[str] = (),
        num_inducing: int = 256,
        inducing_points: Any = None,
        inducing_init: str = "kmeans++",
        learn_inducing: bool = True,
        batch_size: int = 1024,
        max_epochs: int = 100,
        lr: float = 0.01,
        natural_gradient: bool = True,
        natural_step: float = 0.1,
        tol: float = 1e-4,
        jitter: float = 1e-6,
        standardize_x: bool = True,
        standardize_y: bool = True,
        seed: int = 0,
        progress_bar: bool = False,
    ) -> None:
        self.kernel = make_kernel(kernel, ard=ard)
        self.init = dict(hyperparameters or {})
        self.fixed = tuple(fixed)
        self.num_inducing = check_positive_int(num_inducing, "num_inducing")
        self.inducing_points = inducing_points
        if inducing_init not in ("kmeans++", "random"):
            raise ModelSpecError(f"inducing_init must be 'kmeans++' or 'random', got {inducing_init!r}.")
        self.inducing_init = inducing_init
        self.learn_inducing = bool(learn_inducing)
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.max_epochs = check_positive_int(max_epochs, "max_epochs")
        self.lr, self.tol = float(lr), float(tol)
        if not (isinstance(jitter, (int, float)) and math.isfinite(jitter) and jitter >= 0):
            raise ModelSpecError(f"jitter must be a finite number >= 0, got {jitter!r}; e.g. the default 1e-6.")
        self.jitter = float(jitter)
        self.natural_gradient = bool(natural_gradient)
        if isinstance(natural_step, bool) or not isinstance(natural_step, (int, float)) or not 0.0 < natural_step <= 1.0:
            raise ModelSpecError(f"natural_step must be a number in (0, 1], got {natural_step!r}; e.g. natural_step=0.1.")
        self.natural_step = float(natural_step)
        self.standardize_x, self.standardize_y = bool(standardize_x), bool(standardize_y)
        self.seed = seed
        self.progress_bar = progress_bar

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, y: Any) -> "SparseGPRegression":
        """Standardise the data, place the inducing inputs and train by mini-batch stochastic variational inference.

        Parameters
        ----------
        X
            Inputs ``(n, d)`` (or ``(n,)``); numpy data becomes float64,
            floating tensors keep their dtype and device.
        y
            Targets ``(n,)``.

        Raises
        ------
        DataError, ShapeError
            Non-finite values, mismatched lengths, inducing points with another number of features.
        ModelSpecError
            Bad hyperparameter names or values.
        InferenceError
            A non-finite ELBO or gradient, or a singular ``K(Z, Z)``; the message names the step.
        """
        X = as_inputs(X, "X")
        y = as_targets(y, X.shape[0], X, "y", training=True)
        n, d = X.shape
        self.scaler_ = Standardizer.fit(X, y, inputs=self.standardize_x, targets=self.standardize_y)
        self.X_train_, self.y_train_ = self.scaler_.inputs(X), self.scaler_.targets(y)
        self.n_features_in_ = d
        self.space_ = HyperSpace(self.kernel, d, self.init, self.fixed, X)
        generator = torch.Generator(device=X.device).manual_seed(self.seed)
        Z, learn = self._initial_inducing(generator)
        self._train(Z, learn, generator)
        return self

    def _initial_inducing(self, generator: torch.Generator) -> tuple[torch.Tensor, bool]:
        if self.inducing_points is not None:
            Z = as_inputs(self.inducing_points, "inducing_points", like=self.X_train_)
            check_features(Z, self.n_features_in_, "inducing_points")
            return self.scaler_.inputs(Z), self.learn_inducing
        if self.num_inducing >= self.X_train_.shape[0]:
            return self.X_train_.clone(), False
        return init_inducing(self.X_train_, self.num_inducing, self.inducing_init, generator), self.learn_inducing

    def _train(self, Z: torch.Tensor, learn: bool, generator: torch.Generator) -> None:
        X, y = self.X_train_, self.y_train_
        n, m = X.shape[0], Z.shape[0]
        log_hyper = self.space_.initial_vector().requires_grad_(self.space_.size > 0)
        Z = Z.clone().requires_grad_(learn)
        params = ([log_hyper] if self.space_.size > 0 else []) + ([Z] if learn else [])
        eye = torch.eye(m, dtype=X.dtype, device=X.device)
        shift, precision = X.new_zeros(m), eye
        q_mean, q_raw = X.new_zeros(m, requires_grad=True), X.new_zeros(m, m, requires_grad=True)
        if not self.natural_gradient:
            params += [q_mean, q_raw]
        optimizer = torch.optim.Adam(params, lr=self.lr) if params else None
        batch = min(self.batch_size, n)
        self.history_, self.converged_, step = [], False, 0
        bar = tqdm(range(self.max_epochs), disable=not self.progress_bar, desc="fit (svgp)", leave=False, dynamic_ncols=True)
        try:
            for epoch in bar:
                order = torch.randperm(n, generator=generator, device=X.device)
                total = 0.0
                for start in range(0, n, batch):
                    step += 1
                    index = order[start : start + batch]
                    try:
                        if self.natural_gradient:
                            with torch.no_grad():
                                q = _natural_moments(shift, precision)
                        else:
                            q = _moments(InducingPosterior(q_mean, _lower(q_raw)))
                        values = self.space_.unpack(log_hyper)
                        chol = inducing_cholesky(self.kernel, values, Z, jitter=self.jitter)
                        stats = batch_statistics(self.kernel, values, chol, Z, X[index], y[index])
                        loss = -_elbo(stats, q, values[NOISE], n) / n
                        value = float(loss.detach())
                        if not math.isfinite(value):
                            raise InferenceError(f"the ELBO estimate is {-value * n}")
                        if optimizer is not None:
                            optimizer.zero_grad()
                            loss.backward()
                            if not all(bool(torch.isfinite(p.grad).all()) for p in params):
                                raise InferenceError("the ELBO gradient holds NaN or inf")
                            optimizer.step()
                    except InferenceError as error:
                        raise InferenceError(
                            f"SVGP training failed at step {step} (epoch {epoch + 1}): {error}. Lower lr, fix or bound the "
                            "noise (hyperparameters={'noise': ...}), standardise the data, or set learn_inducing=False."
                        ) from error
                    if self.natural_gradient:
                        with torch.no_grad():
                            rho, weight = self.natural_step, n / len(index) / values[NOISE].detach()
                            shift = (1 - rho) * shift + rho * weight * stats.cross_y.detach()
                            precision = (1 - rho) * precision + rho * (eye + weight * stats.cross_outer.detach())
                    total += value * len(index)
                self.history_.append(total / n)
                bar.set_postfix(loss=f"{self.history_[-1]:.6g}", refresh=False)
                if len(self.history_) > 1 and abs(self.history_[-2] - self.history_[-1]) < self.tol * max(1.0, abs(self.history_[-1])):
                    self.converged_ = True
                    break
        finally:
            bar.close()
        self.n_epochs_, self.n_steps_ = len(self.history_), step
        with torch.no_grad():
            values, Z = self.space_.unpack(log_hyper.detach()), Z.detach()
            self.chol_zz_ = inducing_cholesky(self.kernel, values, Z, jitter=self.jitter)
            if self.natural_gradient:
                q = self._optimal_variational(values, Z)
            else:
                q = InducingPosterior(q_mean.detach(), _lower(q_raw.detach()))
            self._set_state(values, Z, q)
        if not self.converged_:
            warnings.warn(
                f"SVGP training stopped after {self.max_epochs} epochs without meeting tol={self.tol}; raise max_epochs "
                "(or lr), or loosen tol.",
                ConvergenceWarning,
                stacklevel=3,
            )

    def _optimal_variational(self, values: dict[str, torch.Tensor], Z: torch.Tensor) -> InducingPosterior:
        """The exact optimum of ``q`` given the hyperparameters and ``Z``: a natural-gradient step of size 1 on all the data."""
        shift, precision = Z.new_zeros(Z.shape[0]), torch.eye(Z.shape[0], dtype=Z.dtype, device=Z.device)
        for part in _chunks(self.X_train_.shape[0]):
            stats = batch_statistics(self.kernel, values, self.chol_zz_, Z, self.X_train_[part], self.y_train_[part])
            shift, precision = shift + stats.cross_y / values[NOISE], precision + stats.cross_outer / values[NOISE]
        return from_natural(shift, precision)

    def _set_state(self, values: dict[str, torch.Tensor], Z: torch.Tensor, q: InducingPosterior) -> None:
        self.hyperparameters_ = values
        self.kernel_values_ = {k: v for k, v in values.items() if k != NOISE}
        self.Z_, self.variational_ = Z, q
        noise = values[NOISE]
        elbo = -kl_divergence(q)
        for part in _chunks(self.X_train_.shape[0]):
            proj = whiten(self.kernel, self.kernel_values_, Z, self.X_train_[part], chol=self.chol_zz_)
            mean, var = marginals(q, proj)
            elbo = elbo + gaussian_expected_log_lik(self.y_train_[part], mean, var, noise).sum()
        self.elbo_ = float(elbo) + self.scaler_.log_jacobian(self.X_train_.shape[0])

    # ------------------------------------------------------------- predict
    def _check_fitted(self) -> None:
        if not hasattr(self, "variational_"):
            raise NotFittedError("this SparseGPRegression is not fitted yet; call fit(X, y) first.")

    @property
    def inducing_points_(self) -> torch.Tensor:
        """The fitted inducing inputs ``(m, d)`` in the units of ``X``."""
        self._check_fitted()
        return self.Z_ * self.scaler_.x_scale + self.scaler_.x_mean

    def predict(
        self, X: Any, *, return_std: bool = False, return_cov: bool = False, observation: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Predictive mean, and optionally standard deviation or covariance, at ``X``.

        Parameters
        ----------
        X
            Test inputs ``(m, d)``.
        return_std, return_cov
            Also return the predictive sd ``(m,)`` or covariance ``(m, m)`` (not both).
        observation
            Predict new observations (latent function plus noise) instead of the latent function.

        Returns
        -------
        mean or (mean, std) or (mean, cov)
            In the units of ``y``.
        """
        if return_std and return_cov:
            raise ModelSpecError("return_std and return_cov cannot both be True; ask for one.")
        self._check_fitted()
        Xs = as_inputs(X, "X", like=self.X_train_)
        check_features(Xs, self.n_features_in_)
        Xs = self.scaler_.inputs(Xs)
        noise = self.hyperparameters_[NOISE]
        with torch.no_grad():
            if return_cov:
                proj = whiten(self.kernel, self.kernel_values_, self.Z_, Xs, chol=self.chol_zz_)
                proj = proj._replace(diag=self.kernel.matrix(self.kernel_values_, Xs, Xs))
                mean, var = marginals(self.variational_, proj, full_cov=True)
                if observation:
                    var = var + noise * torch.eye(Xs.shape[0], dtype=Xs.dtype, device=Xs.device)
            else:
                pieces = [marginals(self.variational_, whiten(self.kernel, self.kernel_values_, self.Z_, Xs[part], chol=self.chol_zz_)) for part in _chunks(Xs.shape[0])]
                mean, var = torch.cat([p[0] for p in pieces]), torch.cat([p[1] for p in pieces])
                if observation:
                    var = var + noise
        mean = self.scaler_.mean(mean)
        if return_cov:
            return mean, self.scaler_.variance(var)
        if return_std:
            return mean, self.scaler_.variance(var).sqrt()
        return mean

    def score(self, X: Any, y: Any) -> float:
        """Coefficient of determination R^2 of the predictive mean on ``(X, y)``."""
        mean = self.predict(X)
        y = as_targets(y, mean.shape[0], mean, "y")
        return float(1.0 - ((y - mean) ** 2).sum() / ((y - y.mean()) ** 2).sum())

    # ------------------------------------------------------------ evidence
    def collapsed_elbo(self) -> float:
        """Titsias' collapsed bound at the fitted hyperparameters and inducing inputs, in the units of ``y``.

        The ELBO with the optimal variational distribution: ``elbo_ <= collapsed_elbo() <= log p(y | X, theta)``,
        with equality on the right when the inducing inputs are the training inputs.
        """
        self._check_fitted()
        X, y = self.X_train_, self.y_train_
        with torch.no_grad():
            chunks = ((whiten(self.kernel, self.kernel_values_, self.Z_, X[part], chol=self.chol_zz_), y[part]) for part in _chunks(X.shape[0]))
            bound = collapsed_bound(chunks, self.hyperparameters_[NOISE])
        return float(bound) + self.scaler_.log_jacobian(X.shape[0])
