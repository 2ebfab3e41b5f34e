"""GPRegression: exact Gaussian-process regression with a scikit-learn-like surface.

One ``fit`` chooses the hyperparameters three ways: type-II maximum
likelihood (``method="ml"``), MAP with priors (``"map"``), both by L-BFGS or
Adam with restarts, or their full posterior by NUTS through
:func:`probmodels.fit_mcmc` (``"nuts"``), after which every prediction
averages over the hyperparameter draws. All linear algebra is an exact
Cholesky in the data's dtype (float64 by default) up to ``max_exact_size``
points; nothing switches silently to conjugate gradients or Lanczos.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, Mapping, Sequence

import torch
from torch.distributions import Distribution

from .._validation import check_non_negative_int, check_positive_int
from ..exceptions import ConvergenceWarning, InferenceError, ModelSpecError, NotFittedError
from ._checks import as_inputs, as_targets, check_features, check_noise_free_repeats
from .bayes import GPMarginalModel
from .hyper import NOISE, HyperSpace
from .kernels import Kernel, make_kernel
from .ops import GPFactor, factorize, jittered_cholesky, log_marginal_likelihood, predictive_moments
from .optim import OPTIMIZERS, minimize, newton_transform
from .scaling import Standardizer

__all__ = ["GPRegression", "METHODS"]

METHODS = ("ml", "map", "nuts")


def _mixture_quantiles(means: torch.Tensor, sds: torch.Tensor, probs: Sequence[float]) -> list[torch.Tensor]:
    """Quantiles of an equal-weight Gaussian mixture over dim 0, by bisection on its CDF."""
    normal = torch.distributions.Normal(torch.zeros((), dtype=means.dtype, device=means.device), 1.0)
    sds = sds.clamp_min(torch.finfo(means.dtype).tiny)
    out = []
    for p in probs:
        lo = (means - 10 * sds).min(0).values
        hi = (means + 10 * sds).max(0).values
        for _ in range(100):
            mid = 0.5 * (lo + hi)
            below = normal.cdf((mid - means) / sds).mean(0) < p
            lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
        out.append(0.5 * (lo + hi))
    return out


class GPRegression:
    """Exact GP regression with Gaussian noise.

    Parameters
    ----------
    kernel
        A name (``"rbf"``, ``"matern12"``, ``"matern32"``, ``"matern52"``,
        ``"rq"``, ``"periodic"``, ``"linear"``, combined with ``+``/``*``) or a
        :class:`~probmodels.gp.kernels.Kernel`.
    ard
        One lengthscale per feature for named stationary kernels.
    hyperparameters
        Initial values ``name -> value`` (in standardised units when
        standardisation is on); see :attr:`hyperparameter_names`.
        ``"noise"`` is the noise variance.
    fixed
        Names kept at their initial value (e.g. ``("noise",)`` with
        ``hyperparameters={"noise": 0.0}`` for noise-free interpolation).
    priors
        ``name -> torch distribution`` over positive values: added to the
        objective for ``"map"``, the priors of ``"nuts"`` (names without one
        get LogNormal(0, 1), LogNormal(-2, 1) for the noise).
    method
        ``"ml"`` (type-II maximum likelihood), ``"map"`` or ``"nuts"``.
    standardize_x, standardize_y
        Standardise inputs per feature and targets inside ``fit``; predictions
        come back in the units of ``y``.
    optimizer
        ``"lbfgs"`` or ``"adam"`` (for ``"ml"``/``"map"``).
    n_restarts
        Extra optimiser starts, drawn around the initial values (log-normal, sd 1).
    max_iter, tol, lr
        Iterations per start, tolerance (max-abs gradient of the mean negative
        log marginal likelihood for L-BFGS), and Adam's learning rate.
    max_exact_size
        Largest training set for the exact Cholesky; beyond it ``fit`` refuses
        (use :class:`~probmodels.gp.sparse.SparseGPRegression`).
    warm_start_size
        With L-BFGS and more than twice this many training points, every
        start is first optimised on a random subset of this size, then on
        nested subsets of twice, four times... that size while they hold at
        most half the data (each evaluation costs ``(m / n)^3`` of a full
        one); each run is preconditioned by the (finite-difference) Hessian
        at the previous subset's optimum, and the full-data run continues
        from the last one, preconditioned the same way, needing far fewer
        full evaluations. None starts the full-data run directly.
    num_samples, num_warmup, num_chains, target_accept
        NUTS settings for ``method="nuts"``.
    mcmc_options
        Further keyword arguments of :func:`probmodels.fit_mcmc` (e.g.
        ``dense_mass``, ``compile``, ``max_tree_depth``).
    max_predictive_draws
        Hyperparameter draws (evenly thinned) that predictions average over.
    seed
        Seeds the restarts, NUTS and :meth:`sample_y`.
    progress_bar
        Show the optimiser's or the sampler's progress.

    Attributes
    ----------
    hyperparameters_ : dict of Tensor
        Fitted values (posterior medians for ``"nuts"``), standardised units.
    posterior_ : Posterior or None
        The NUTS posterior of the hyperparameters.
    converged_ : bool
        Whether the optimiser met its tolerance (``"ml"``/``"map"``).

    Examples
    --------
    >>> import torch
    >>> from probmodels.gp import GPRegression
    >>> g = torch.Generator().manual_seed(0)
    >>> X = torch.linspace(-2, 2, 20, dtype=torch.float64)[:, None]
    >>> y = torch.sin(2 * X[:, 0]) + 0.1 * torch.randn(20, generator=g, dtype=torch.float64)
    >>> gp = GPRegression("rbf").fit(X, y)
    >>> gp.converged_
    True
    >>> mean, sd = gp.predict(torch.tensor([[0.5]], dtype=torch.float64), return_std=True)
    >>> round(float(mean), 1), round(float(sd), 1)
    (0.9, 0.0)
    """

    def __init__(
        self,
        kernel: str | Kernel = "rbf",
        *,
        ard: bool = False,
        hyperparameters: Mapping[str, Any] | None = None,
        fixed: Sequence[str] = (),
        priors: Mapping[str, Distribution] | None = None,
        method: str = "ml",
        standardize_x: bool = True,
        standardize_y: bool = True,
        optimizer: str = "lbfgs",
        n_restarts: int = 0,
        max_iter: int = 500,
        tol: float = 1e-7,
        lr: float = 0.05,
        max_exact_size: int = 20000,
        warm_start_size: int | None = 500,
        num_samples: int = 1000,
        num_warmup: int = 1000,
        num_chains: int = 4,
        target_accept: float = 0.9,
        mcmc_options: Mapping[str, Any] | None = None,
        max_predictive_draws: int = 200,
        seed: int = 0,
        progress_bar: bool = False,
    ) -> None:
        self.kernel = make_kernel(kernel, ard=ard)
        if method not in METHODS:
            raise ModelSpecError(f"method must be one of {METHODS}, got {method!r}.")
        if optimizer not in OPTIMIZERS:
            raise ModelSpecError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}.")
        if method == "map" and not priors:
            raise ModelSpecError("method='map' needs priors={name: distribution}; without priors use method='ml'.")
        self.init = dict(hyperparameters or {})
        self.fixed = tuple(fixed)
        self.priors = dict(priors or {})
        self.method = method
        self.standardize_x, self.standardize_y = bool(standardize_x), bool(standardize_y)
        self.optimizer = optimizer
        self.n_restarts = check_non_negative_int(n_restarts, "n_restarts")
        self.max_iter = check_positive_int(max_iter, "max_iter")
        self.tol, self.lr = float(tol), float(lr)
        self.max_exact_size = check_positive_int(max_exact_size, "max_exact_size")
        self.warm_start_size = None if warm_start_size is None else check_positive_int(warm_start_size, "warm_start_size")
        self.num_samples = check_positive_int(num_samples, "num_samples")
        self.num_warmup = check_non_negative_int(num_warmup, "num_warmup")
        self.num_chains = check_positive_int(num_chains, "num_chains")
        self.target_accept = target_accept
        self.mcmc_options = dict(mcmc_options or {})
        self.max_predictive_draws = check_positive_int(max_predictive_draws, "max_predictive_draws")
        self.seed = seed
        self.progress_bar = progress_bar
        self.posterior_ = None

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, y: Any) -> "GPRegression":
        """Standardise the data, choose the hyperparameters, and factorise the training covariance.

        Parameters
        ----------
        X
            Inputs ``(n, d)`` (or ``(n,)``); floating tensors keep their dtype
            and device, everything else becomes float64.
        y
            Targets ``(n,)``.

        Raises
        ------
        DataError, ShapeError
            Non-finite values, mismatched lengths; with the noise fixed at 0,
            repeated inputs with different targets.
        ModelSpecError
            Bad hyperparameter values or names, or more than ``max_exact_size`` points.
        InferenceError
            Every optimiser start failed, or the covariance stays singular with the largest jitter.
        """
        X = as_inputs(X, "X")
        y = as_targets(y, X.shape[0], X, "y", training=True)
        n, d = X.shape
        if n > self.max_exact_size:
            raise ModelSpecError(
                f"X has {n} rows, above max_exact_size={self.max_exact_size} for the exact Cholesky; raise "
                "max_exact_size if memory and time allow (O(n^2) memory, O(n^3) time), or use SparseGPRegression."
            )
        self.scaler_ = Standardizer.fit(X, y, inputs=self.standardize_x, targets=self.standardize_y)
        self.X_train_, self.y_train_ = self.scaler_.inputs(X), self.scaler_.targets(y)
        self.n_features_in_ = d
        self.space_ = HyperSpace(self.kernel, d, self.init, self.fixed, X)
        if NOISE in self.fixed and NOISE in self.init and float(self.init[NOISE]) == 0:  # a valid number: HyperSpace checked it
            check_noise_free_repeats(X, y)
        self.model_ = GPMarginalModel(self.space_, self.priors)
        self._last_full_factor: tuple[torch.Tensor, GPFactor] | None = None
        try:
            self._set_draws(self._fit_nuts() if self.method == "nuts" else self._fit_optimum())
        finally:
            del self._last_full_factor
        return self

    def _objective(self, vector: torch.Tensor, X: torch.Tensor | None = None, y: torch.Tensor | None = None) -> torch.Tensor:
        """Negative log marginal likelihood (plus log prior for ``"map"``) per point, of the training data or of ``(X, y)``.

        On the training data it keeps the point and its factor, which
        :meth:`_set_draws` reuses when the optimum is the last point evaluated.
        """
        full = X is None
        X = self.X_train_ if X is None else X
        y = self.y_train_ if y is None else y
        values = self.space_.unpack(vector)
        lml, factor = log_marginal_likelihood(self.model_.covariance(values, X), y)
        if full:
            self._last_full_factor = (vector.detach(), factor)
        if self.method == "map":
            for name, prior in self.priors.items():
                lml = lml + prior.log_prob(values[name]).sum()
        return -lml / X.shape[0]

    def _fit_optimum(self) -> dict[str, torch.Tensor]:
        x0 = self.space_.initial_vector()
        if x0.numel() == 0:
            self.converged_ = True
            return {k: v.unsqueeze(0) for k, v in self.space_.unpack(x0).items()}
        generator = torch.Generator(device=x0.device).manual_seed(self.seed)
        starts = [x0] + [x0 + torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device) for _ in range(self.n_restarts)]
        starts, transforms = self._warm_starts(starts, generator)
        result = minimize(
            self._objective, starts, method=self.optimizer, max_iter=self.max_iter, tol=self.tol, lr=self.lr,
            progress_bar=self.progress_bar, what="the GP hyperparameters", transforms=transforms,
        )
        self.converged_, self.optimizer_result_ = result.converged, result
        if not result.converged:
            warnings.warn(
                f"the hyperparameter optimiser stopped after {result.n_iter} iterations without meeting tol={self.tol}; "
                "raise max_iter, or add restarts (n_restarts).",
                ConvergenceWarning,
                stacklevel=3,
            )
        return {k: v.unsqueeze(0) for k, v in self.space_.unpack(result.x).items()}

    def _warm_starts(self, starts: list[torch.Tensor], generator: torch.Generator) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
        """Each start moved to the optimum on nested random subsets, with a preconditioner for the full-data run (large n only).

        The subsets have ``warm_start_size`` points, then twice as many, and
        so on while a subset stays within half the data. On each, L-BFGS runs
        from the previous optimum, preconditioned by the inverse square root
        of the previous subset's (finite-difference) Hessian, and ends with
        that Hessian on this subset. A subset objective costs ``(m / n)^3``
        of a full one per evaluation, and its optimum and curvature are close
        to the full data's, so the full-data run that follows needs far fewer
        (expensive) evaluations. A start whose subset run fails keeps the
        last point and preconditioner that worked.

        Returns
        -------
        starts, transforms
            The moved starts and their preconditioners (None: none).
        """
        n = self.X_train_.shape[0]
        if self.warm_start_size is None or self.optimizer != "lbfgs" or n <= 2 * self.warm_start_size:
            return starts, [None] * len(starts)
        order = torch.randperm(n, generator=generator, device=generator.device).to(self.X_train_.device)
        sizes = [self.warm_start_size]
        while 4 * sizes[-1] <= n:
            sizes.append(2 * sizes[-1])
        warm, transforms = [], []
        for start in starts:
            transform = None
            for size in sizes:
                objective = functools.partial(self._objective, X=self.X_train_[order[:size]], y=self.y_train_[order[:size]])
                try:
                    start = minimize(objective, [start], method="lbfgs", max_iter=self.max_iter, tol=self.tol,
                                     what="the warm start", transforms=[transform]).x
                except InferenceError:
                    break
                transform = newton_transform(objective, start)
            warm.append(start)
            transforms.append(transform)
        return warm, transforms

    def _fit_nuts(self) -> dict[str, torch.Tensor]:
        from ..core.mcmc import fit_mcmc

        self.posterior_ = fit_mcmc(
            self.model_, self.X_train_, self.y_train_, num_samples=self.num_samples, num_warmup=self.num_warmup,
            num_chains=self.num_chains, target_accept=self.target_accept, seed=self.seed, progress_bar=self.progress_bar,
            **self.mcmc_options,
        )
        self.converged_ = True
        total = self.num_chains * self.num_samples
        index = torch.linspace(0, total - 1, min(total, self.max_predictive_draws)).round().long()
        draws = {}
        for spec in self.space_.specs:
            if spec.name in self.space_.fixed:
                draws[spec.name] = self.space_.value(spec).expand((len(index),) + spec.shape)
            else:
                draws[spec.name] = self.posterior_.flat(spec.name).to(self.X_train_)[index]
        return draws

    def _set_draws(self, draws: dict[str, torch.Tensor]) -> None:
        self.draws_ = draws
        self.hyperparameters_ = {k: v.median(0).values if v.shape[0] > 1 else v[0] for k, v in draws.items()}
        last = getattr(self, "_last_full_factor", None)
        if last is not None and all(torch.equal(v.unsqueeze(0), draws[k]) for k, v in self.space_.unpack(last[0]).items()):
            chol, alpha, jitter = last[1]
            self.factor_ = GPFactor(chol.unsqueeze(0), alpha.unsqueeze(0), jitter)
            return
        cov = self.model_.covariance(draws, self.X_train_)
        with torch.no_grad():
            self.factor_ = factorize(cov.detach(), self.y_train_, what="the training covariance")

    # ------------------------------------------------------------- predict
    def _check_fitted(self) -> None:
        if not hasattr(self, "factor_"):
            raise NotFittedError("this GPRegression is not fitted yet; call fit(X, y) first.")

    def _test_inputs(self, X: Any) -> torch.Tensor:
        self._check_fitted()
        X = as_inputs(X, "X", like=self.X_train_)
        check_features(X, self.n_features_in_)
        return self.scaler_.inputs(X)

    def _moments(self, Xs: torch.Tensor, full_cov: bool, observation: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-draw standardised predictive moments ``(S, m)`` and ``(S, m)`` or ``(S, m, m)``."""
        kernel_values = {k: v for k, v in self.draws_.items() if k != NOISE}
        with torch.no_grad():
            cross = self.kernel.matrix(kernel_values, self.X_train_, Xs)
            test = self.kernel.matrix(kernel_values, Xs, Xs) if full_cov else self.kernel.diag(kernel_values, Xs)
            mean, var = predictive_moments(self.factor_, cross, test, full_cov=full_cov)
        if observation:
            noise = self.draws_[NOISE]
            var = var + (noise[:, None, None] * torch.eye(Xs.shape[0], dtype=Xs.dtype, device=Xs.device) if full_cov else noise[:, None])
        return mean, var

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
            In the units of ``y``; after ``"nuts"`` the moments of the mixture over hyperparameter draws.
        """
        if return_std and return_cov:
            raise ModelSpecError("return_std and return_cov cannot both be True; ask for one.")
        Xs = self._test_inputs(X)
        mean, var = self._moments(Xs, return_cov, observation)
        if mean.shape[0] == 1:
            mean, var = mean[0], var[0]
        else:
            mixture_mean = mean.mean(0)
            centred = mean - mixture_mean
            if return_cov:
                var = var.mean(0) + (centred.unsqueeze(-1) * centred.unsqueeze(-2)).mean(0)
            else:
                var = var.mean(0) + (centred * centred).mean(0)
            mean = mixture_mean
        mean = self.scaler_.mean(mean)
        if return_cov:
            return mean, self.scaler_.variance(var)
        if return_std:
            return mean, self.scaler_.variance(var).sqrt()
        return mean

    def predict_interval(self, X: Any, *, prob: float = 0.95, observation: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Equal-tailed credible band ``(lower, upper)`` of probability ``prob`` at ``X``
        (exact mixture quantiles after ``"nuts"``)."""
        if not 0.0 < prob < 1.0:
            raise ModelSpecError(f"prob must lie in (0, 1), got {prob!r}; e.g. prob=0.95.")
        Xs = self._test_inputs(X)
        mean, var = self._moments(Xs, False, observation)
        lower, upper = _mixture_quantiles(mean, var.sqrt(), ((1 - prob) / 2, (1 + prob) / 2))
        return self.scaler_.mean(lower), self.scaler_.mean(upper)

    def sample_y(self, X: Any, n_samples: int = 1, *, seed: int | None = None, observation: bool = False) -> torch.Tensor:
        """Joint draws at ``X`` from the predictive distribution, shape ``(n_samples, m)``.

        After ``"nuts"`` each draw first picks a hyperparameter draw at random.
        """
        n_samples = check_positive_int(n_samples, "n_samples")
        Xs = self._test_inputs(X)
        mean, cov = self._moments(Xs, True, observation)
        generator = torch.Generator(device=Xs.device).manual_seed(self.seed if seed is None else seed)
        pick = torch.randint(mean.shape[0], (n_samples,), generator=generator, device=Xs.device)
        chol, _ = jittered_cholesky(cov, what="the predictive covariance")
        eps = torch.randn((n_samples, Xs.shape[0], 1), generator=generator, dtype=Xs.dtype, device=Xs.device)
        draws = mean[pick] + (chol[pick] @ eps).squeeze(-1)
        return self.scaler_.mean(draws)

    def score(self, X: Any, y: Any) -> float:
        """Coefficient of determination R^2 of the predictive mean on ``(X, y)`` (scikit-learn's ``score``)."""
        mean = self.predict(X)
        y = as_targets(y, mean.shape[0], mean, "y")
        residual = ((y - mean) ** 2).sum()
        total = ((y - y.mean()) ** 2).sum()
        return float(1.0 - residual / total)

    # ------------------------------------------------------------ evidence
    @property
    def hyperparameter_names(self) -> list[str]:
        """Names of every hyperparameter of this model (after ``fit``)."""
        self._check_fitted()
        return self.space_.names

    def log_marginal_likelihood(
        self, hyperparameters: Mapping[str, Any] | None = None, *, eval_gradient: bool = False
    ) -> float | tuple[float, dict[str, torch.Tensor]]:
        """Exact log marginal likelihood ``log p(y | X, theta)`` of the training data, in the units of ``y``.

        Parameters
        ----------
        hyperparameters
            Values (standardised units) to evaluate at; missing names take the
            fitted values. Default: the fitted values (posterior medians after ``"nuts"``).
        eval_gradient
            Also return its gradient with respect to the log of every free hyperparameter.

        Returns
        -------
        lml or (lml, gradient)
            The standardisation's Jacobian is included, so values are comparable
            with any other model's evidence for the same ``y``.
        """
        self._check_fitted()
        values = dict(self.hyperparameters_)
        if hyperparameters:
            HyperSpace(self.kernel, self.n_features_in_, dict(hyperparameters), (), self.X_train_)
            unknown = [k for k in hyperparameters if k not in values]
            if unknown:
                raise ModelSpecError(f"unknown hyperparameter(s) {unknown}; they are {list(values)}.")
            values.update({k: torch.as_tensor(v, dtype=self.X_train_.dtype, device=self.X_train_.device).expand(values[k].shape) for k, v in hyperparameters.items()})
        jacobian = self.scaler_.log_jacobian(self.X_train_.shape[0])
        free = [h.name for h in self.space_.free]
        with torch.enable_grad():
            logs = {k: torch.log(v).detach().requires_grad_(eval_gradient and k in free) for k, v in values.items()}
            lml, _ = log_marginal_likelihood(
                self.model_.covariance({k: v.exp() for k, v in logs.items()}, self.X_train_), self.y_train_
            )
            if not eval_gradient:
                return float(lml) + jacobian
            grads = torch.autograd.grad(lml, [logs[k] for k in free])
        return float(lml) + jacobian, dict(zip(free, grads))

    @property
    def factor(self) -> GPFactor:
        """The training :class:`~probmodels.gp.ops.GPFactor` (batched over hyperparameter draws)."""
        self._check_fitted()
        return self.factor_
