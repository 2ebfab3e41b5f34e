"""GPClassification: binary Gaussian-process classification by variational inference.

The latent function ``f`` has a GP prior; ``p(y = 1 | f) = link(f)`` with a
logistic or probit link. Its values at the inducing inputs (the training
inputs themselves when ``n <= num_inducing``) get a whitened Gaussian
variational posterior (:mod:`probmodels.gp.variational`), and the ELBO

    sum_i E_q[log p(y_i | f_i)] - KL(q(v) || N(0, I)),

with the expectations by Gauss-Hermite quadrature, is maximised jointly
over the variational parameters, the kernel hyperparameters and (when
they are not the training inputs) the inducing inputs by the GP optimiser
(:func:`probmodels.gp.optim.minimize`, L-BFGS by default).

References
----------
Hensman, J., Matthews, A., Ghahramani, Z. (2015). Scalable variational Gaussian process classification. AISTATS.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from .._validation import check_non_negative_int, check_positive_int
from ..exceptions import ConvergenceWarning, ModelSpecError, NotFittedError, ShapeError
from ._checks import as_binary_labels, as_inputs, check_features
from .hyper import NOISE, HyperSpace
from .kernels import Kernel, make_kernel
from .optim import OPTIMIZERS, minimize
from .scaling import Standardizer
from .variational import (
    INDUCING_INITS,
    LINKS,
    InducingPosterior,
    bernoulli_expected_log_lik,
    gauss_hermite,
    inducing_cholesky,
    init_inducing,
    kl_divergence,
    marginals,
    predictive_probability,
    whiten,
)

__all__ = ["GPClassification"]


class GPClassification:
    """Binary GP classification with a Bernoulli likelihood, fitted by variational inference.

    Parameters
    ----------
    kernel, ard
        As in :class:`~probmodels.gp.GPRegression`.
    link
        ``"logit"`` (logistic) or ``"probit"`` (standard normal CDF).
    hyperparameters, fixed
        Initial (or, for names in ``fixed``, final) kernel hyperparameters in
        standardised input units; there is no noise hyperparameter.
    num_inducing
        With ``n <= num_inducing`` every training input is an inducing input
        (the full variational GP); otherwise ``num_inducing`` inputs chosen by ``inducing_init``.
    inducing_init
        ``"kmeans++"`` or ``"random"``.
    learn_inducing
        Optimise the inducing inputs (when they are not the training inputs).
    num_quadrature
        Gauss-Hermite nodes for the expected log-likelihood and the logit predictive probability.
    jitter
        Added to the diagonal of ``K(Z, Z)``, relative to its mean diagonal; the ELBO stays a lower bound.
    standardize_x
        Standardise the inputs per feature inside ``fit``.
    optimizer, n_restarts, max_iter, tol, lr
        Settings of :func:`~probmodels.gp.optim.minimize` on the negative ELBO
        per point; restarts perturb the log-hyperparameters (log-normal, sd 1).
    seed
        Seeds the inducing inputs and the restarts.
    progress_bar
        Show the optimiser's progress.

    Attributes
    ----------
    classes_ : ndarray
        The two class labels; ``predict_proba`` columns follow this order.
    hyperparameters_ : dict of Tensor
        Fitted kernel hyperparameters (standardised input units).
    variational_ : InducingPosterior
        The whitened variational posterior.
    inducing_points_ : Tensor
        The inducing inputs ``(m, d)`` in the units of ``X``.
    elbo_ : float
        The maximised ELBO: a lower bound on the log marginal likelihood
        ``log p(y | X, theta)`` at the fitted hyperparameters (not the evidence itself).
    converged_ : bool
        Whether the optimiser met its tolerance.

    Examples
    --------
    >>> import torch
    >>> from probmodels.gp import GPClassification
    >>> X = torch.linspace(-2, 2, 20, dtype=torch.float64)[:, None]
    >>> labels = (X[:, 0] > 0).long()
    >>> classifier = GPClassification(num_inducing=8, max_iter=100).fit(X, labels)
    >>> classifier.predict(torch.tensor([[-1.5], [1.5]], dtype=torch.float64)).tolist()
    [0, 1]
    """

    def __init__(
        self,
        kernel: str | Kernel = "rbf",
        *,
        ard: bool = False,
        link: str = "logit",
        hyperparameters: Mapping[str, Any] | None = None,
        fixed: Sequence[str] = (),
        num_inducing: int = 200,
        inducing_init: str = "kmeans++",
        learn_inducing: bool = True,
        num_quadrature: int = 20,
        jitter: float = 1e-6,
        standardize_x: bool = True,
        optimizer: str = "lbfgs",
        n_restarts: int = 0,
        max_iter: int = 1000,
        tol: float = 1e-6,
        lr: float = 0.05,
        seed: int = 0,
        progress_bar: bool = False,
    ) -> None:
        self.kernel = make_kernel(kernel, ard=ard)
        if link not in LINKS:
            raise ModelSpecError(f"link must be one of {LINKS}, got {link!r}.")
        if optimizer not in OPTIMIZERS:
            raise ModelSpecError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}.")
        if inducing_init not in INDUCING_INITS:
            raise ModelSpecError(f"inducing_init must be one of {INDUCING_INITS}, got {inducing_init!r}.")
        self.init = dict(hyperparameters or {})
        self.fixed = tuple(fixed)
        if NOISE in self.init or NOISE in self.fixed:
            raise ModelSpecError("GPClassification has no 'noise' hyperparameter (the Bernoulli likelihood has none); remove it.")
        if not (isinstance(jitter, (int, float)) and math.isfinite(jitter) and jitter >= 0):
            raise ModelSpecError(f"jitter must be a finite number >= 0, got {jitter!r}; e.g. the default 1e-6.")
        self.link = link
        self.num_inducing = check_positive_int(num_inducing, "num_inducing")
        self.inducing_init = inducing_init
        self.learn_inducing = bool(learn_inducing)
        self.num_quadrature = check_positive_int(num_quadrature, "num_quadrature")
        self.jitter = float(jitter)
        self.standardize_x = bool(standardize_x)
        self.optimizer = optimizer
        self.n_restarts = check_non_negative_int(n_restarts, "n_restarts")
        self.max_iter = check_positive_int(max_iter, "max_iter")
        self.tol, self.lr = float(tol), float(lr)
        self.seed = seed
        self.progress_bar = progress_bar

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, y: Any) -> "GPClassification":
        """Standardise the inputs, place the inducing inputs and maximise the ELBO.

        Parameters
        ----------
        X
            Inputs ``(n, d)`` (or ``(n,)``); numpy data becomes float64,
            floating tensors keep their dtype and device.
        y
            ``(n,)`` labels of exactly two classes (0/1, bool, two numbers or two strings).

        Raises
        ------
        DataError, ShapeError
            Non-finite values, other than two classes, mismatched lengths.
        ModelSpecError
            Bad hyperparameter names or values.
        InferenceError
            Every optimiser start failed (non-finite ELBO or gradient, singular ``K(Z, Z)``).
        """
        X = as_inputs(X, "X")
        codes, self.classes_ = as_binary_labels(y, X.shape[0], "y")
        n, d = X.shape
        self.scaler_ = Standardizer.fit(X, None, inputs=self.standardize_x, targets=False)
        self.X_train_ = self.scaler_.inputs(X)
        self.y_train_ = torch.as_tensor(codes, dtype=X.dtype, device=X.device)
        self.n_features_in_ = d
        self.space_ = HyperSpace(self.kernel, d, {**self.init, NOISE: 0.0}, self.fixed + (NOISE,), X)
        self.quadrature_ = gauss_hermite(self.num_quadrature, X)
        generator = torch.Generator(device=X.device).manual_seed(self.seed)
        if n <= self.num_inducing:
            self.Z_, self.learns_inducing_ = self.X_train_, False
        else:
            self.Z_ = init_inducing(self.X_train_, self.num_inducing, self.inducing_init, generator)
            self.learns_inducing_ = self.learn_inducing
        m = self.Z_.shape[0]
        self.tril_ = torch.tril_indices(m, m, device=X.device)
        x0 = torch.cat([
            self.space_.initial_vector(),
            self.Z_.reshape(-1) if self.learns_inducing_ else X.new_zeros(0),
            X.new_zeros(m + self.tril_.shape[1]),
        ])
        size = self.space_.size
        starts = [x0] + [
            torch.cat([x0[:size] + torch.randn(size, generator=generator, dtype=X.dtype, device=X.device), x0[size:]])
            for _ in range(self.n_restarts)
        ]
        result = minimize(
            self._objective, starts, method=self.optimizer, max_iter=self.max_iter, tol=self.tol, lr=self.lr,
            progress_bar=self.progress_bar, what="the GP classifier's ELBO",
        )
        self.converged_, self.optimizer_result_ = result.converged, result
        if not result.converged:
            warnings.warn(
                f"the ELBO optimiser stopped after {result.n_iter} iterations without meeting tol={self.tol}; "
                "raise max_iter, or add restarts (n_restarts).",
                ConvergenceWarning,
                stacklevel=2,
            )
        with torch.no_grad():
            values, self.Z_, self.variational_ = self._unpack(result.x)
            self.hyperparameters_ = {k: v for k, v in values.items() if k != NOISE}
            self.chol_zz_ = inducing_cholesky(self.kernel, self.hyperparameters_, self.Z_, jitter=self.jitter)
        self.elbo_ = -result.loss * n
        return self

    def _unpack(self, vector: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor, InducingPosterior]:
        """Hyperparameter values, inducing inputs and ``q`` from the optimiser's flat vector."""
        m, d = self.Z_.shape
        size = self.space_.size
        values = self.space_.unpack(vector[:size])
        offset = size
        Z = self.Z_
        if self.learns_inducing_:
            Z = vector[offset : offset + m * d].reshape(m, d)
            offset += m * d
        mean = vector[offset : offset + m]
        raw = vector.new_zeros(m, m).index_put((self.tril_[0], self.tril_[1]), vector[offset + m :])
        scale_tril = torch.tril(raw, -1) + torch.diag_embed(torch.exp(raw.diagonal()))
        return values, Z, InducingPosterior(mean, scale_tril)

    def _objective(self, vector: torch.Tensor) -> torch.Tensor:
        """Negative ELBO per training point."""
        values, Z, q = self._unpack(vector)
        proj = whiten(self.kernel, values, Z, self.X_train_, jitter=self.jitter)
        mean, var = marginals(q, proj)
        ell = bernoulli_expected_log_lik(self.y_train_, mean, var, self.link, self.quadrature_).sum()
        return -(ell - kl_divergence(q)) / self.X_train_.shape[0]

    # ------------------------------------------------------------- predict
    def _check_fitted(self) -> None:
        if not hasattr(self, "variational_"):
            raise NotFittedError("this GPClassification is not fitted yet; call fit(X, y) first.")

    @property
    def inducing_points_(self) -> torch.Tensor:
        """The inducing inputs ``(m, d)`` in the units of ``X`` (the training inputs when ``n <= num_inducing``)."""
        self._check_fitted()
        return self.Z_ * self.scaler_.x_scale + self.scaler_.x_mean

    def predict_latent(self, X: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of the latent function ``f`` at ``X`` under the variational posterior."""
        self._check_fitted()
        Xs = as_inputs(X, "X", like=self.X_train_)
        check_features(Xs, self.n_features_in_)
        with torch.no_grad():
            proj = whiten(self.kernel, self.hyperparameters_, self.Z_, self.scaler_.inputs(Xs), chol=self.chol_zz_)
            mean, var = marginals(self.variational_, proj)
        return mean, var.sqrt()

    def predict_proba(self, X: Any) -> torch.Tensor:
        """Class probabilities ``(m, 2)`` (columns in the order of :attr:`classes_`), the link averaged over the latent predictive."""
        mean, sd = self.predict_latent(X)
        p = predictive_probability(mean, sd * sd, self.link, self.quadrature_)
        return torch.stack([1.0 - p, p], dim=-1)

    def predict(self, X: Any) -> np.ndarray:
        """The more probable class label at each row of ``X`` (an array of :attr:`classes_` entries)."""
        proba = self.predict_proba(X)
        return self.classes_[(proba[:, 1] > 0.5).cpu().numpy().astype(int)]

    def score(self, X: Any, y: Any) -> float:
        """Accuracy of :meth:`predict` on ``(X, y)``."""
        predicted = self.predict(X)
        labels = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
        labels = labels.reshape(-1)
        if labels.shape[0] != predicted.shape[0]:
            raise ShapeError(f"X has {predicted.shape[0]} rows but y has {labels.shape[0]} labels; pass one label per row of X.")
        return float(np.mean(predicted == labels))
