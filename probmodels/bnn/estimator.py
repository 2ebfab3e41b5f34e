"""BayesianMLP: a Bayesian multilayer perceptron with a scikit-learn-like surface.

``fit`` runs one of six inference methods through the shared core: MAP and
deep ensembles (``"delta"`` guides), mean-field or low-rank Gaussian SVI,
the Laplace approximation (all through :func:`probmodels.fit_svi`, with
mini-batches scaled by N / batch size), or the core's batched-chain NUTS
on the network's tensor log density (:mod:`probmodels.bnn.nuts`) as the
gold standard for small networks. Every
prediction averages over the posterior draws in memory-bounded chunks.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from .._validation import check_positive_int, check_probability
from ..core import Posterior, fit_svi
from ..exceptions import InferenceError, ModelSpecError, NotFittedError
from . import metrics
from .data import Affine, as_features, as_labels, as_regression_targets
from .annealing import annealed_svi
from .ensemble import fit_ensemble
from .laplace import PRIOR_PRECISIONS, fit_laplace_ggn
from .local_reparam import LocalReparameterizationELBO
from .convert import BayesianModule
from .model import MLPModel
from .nuts import fit_network_nuts
from .predict import MAX_ELEMENTS, Predictive, predictive

__all__ = ["BayesianMLP", "BayesianNetwork", "METHODS"]

METHODS = ("map", "ensemble", "svi", "lowrank", "laplace", "laplace_ggn", "nuts")
_GUIDES = {"svi": "normal", "lowrank": "lowrank", "laplace": "laplace"}


class BayesianMLP:
    """Bayesian MLP for regression and classification.

    Parameters
    ----------
    hidden
        Hidden layer widths, e.g. ``(50,)``.
    task
        ``"regression"`` (Gaussian likelihood) or ``"classification"``
        (Bernoulli for two classes, categorical beyond).
    activation
        ``"tanh"``, ``"relu"``, ``"sigmoid"``, ``"gelu"``, ``"silu"`` or ``"identity"``.
    prior_scale, prior
        Weight prior: ``N(0, prior_scale)`` with one scale or one per layer,
        or ``prior="hierarchical"`` with a half-normal scale per layer (see
        :class:`~probmodels.bnn.model.MLPModel`).
    noise, noise_prior_scale
        Regression noise standard deviation (standardised units): ``"learn"``
        with a ``HalfNormal(noise_prior_scale)`` prior, or a fixed number.
    n_classes
        Number of classes (default: largest label + 1); labels must be 0, ..., n_classes - 1.
    method
        ``"map"``, ``"ensemble"``, ``"svi"`` (mean-field), ``"lowrank"``,
        ``"laplace"`` (Gaussian from the Hessian of the whole log posterior at
        its mode, the network evaluated at its draws), ``"laplace_ggn"``
        (laplace-torch's recipe at the ``"map"`` fit: generalised Gauss-Newton,
        linearised predictive; see :mod:`probmodels.bnn.laplace`) or ``"nuts"``.
    local_reparam
        For ``"svi"``: estimate the ELBO by the local reparameterisation
        trick (:class:`~probmodels.bnn.local_reparam.LocalReparameterizationELBO`;
        lower-variance gradients, ``prior="gaussian"`` only).
    laplace_prior
        For ``"laplace_ggn"``: ``"marglik"`` (prior precision and learned
        noise chosen by the Laplace marginal likelihood, empirical Bayes) or
        ``"model"`` (the model's prior and the MAP noise).
    standardize_x, standardize_y
        Standardise the inputs (and regression targets) inside ``fit``;
        predictions and scores are in the units of ``y``.
    num_steps, lr, batch_size, num_particles, rank, num_samples
        SVI settings (see :func:`probmodels.fit_svi`); ``num_samples`` draws
        are taken from a fitted guide.
    n_members
        Ensemble size for ``"ensemble"``.
    early_stopping, validation_fraction, eval_every, patience
        For ``"map"`` and ``"ensemble"``: each member holds out its own
        random ``validation_fraction`` of the rows, scores their log
        predictive density every ``eval_every`` steps, keeps its best state
        and stops after ``patience`` steps without improvement (see
        :func:`~probmodels.bnn.ensemble.fit_ensemble`).
    kl_annealing
        For ``"svi"`` and ``"lowrank"``: warm the weight of the ELBO's KL
        term up linearly from 0.01 to 1 over this many steps (see
        :class:`~probmodels.bnn.annealing.KLAnnealing`); None: no annealing.
    num_warmup, num_chains
        NUTS settings (``num_samples`` draws per chain).
    nuts_init
        ``"uniform"`` (Stan's random start in (-2, 2)) or ``"svi"``: each
        chain starts at its own draw from a mean-field SVI fit (far shorter
        warmup on network posteriors; chains still start apart, so R-hat
        keeps its meaning).
    svi_options, mcmc_options
        Further keyword arguments of :func:`probmodels.fit_svi` / of
        :func:`~probmodels.bnn.nuts.fit_network_nuts` (``max_tree_depth``,
        ``target_accept``, ``dense_mass``, ``init_radius``).
    max_elements
        Numbers held at once by the chunked predictive.
    seed
        Seed of the fit.
    progress_bar
        Show the optimiser's or sampler's progress.

    Attributes
    ----------
    posterior_ : Posterior
        Draws of the weights, on the standardised scale.
    model_ : MLPModel
        The Pyro program that was fitted.
    predictive_model_ : MLPModel or LinearizedNetwork
        What predictions evaluate at the draws: ``model_``, or for
        ``"laplace_ggn"`` the network linearised at the MAP.
    n_classes_ : int or None
        Number of classes of a classifier.
    early_stopping_scores_ : list of dict or None
        Per member, ``steps -> held-out log density`` of the early stopping (``"map"``/``"ensemble"``).
    """

    def __init__(
        self,
        hidden: Sequence[int] = (50,),
        *,
        task: str = "regression",
        activation: str = "tanh",
        prior_scale: float | Sequence[float] = 1.0,
        prior: str = "gaussian",
        noise: str | float = "learn",
        noise_prior_scale: float = 1.0,
        n_classes: int | None = None,
        method: str = "svi",
        standardize_x: bool = True,
        standardize_y: bool = True,
        num_steps: int = 5000,
        lr: float = 0.01,
        batch_size: int | None = None,
        num_particles: int = 1,
        rank: int | None = None,
        num_samples: int = 1000,
        n_members: int = 5,
        early_stopping: bool = True,
        validation_fraction: float = 0.1,
        eval_every: int = 5,
        patience: int = 200,
        kl_annealing: int | None = None,
        laplace_prior: str = "marglik",
        local_reparam: bool = False,
        num_warmup: int = 500,
        num_chains: int = 4,
        nuts_init: str = "uniform",
        svi_options: Mapping[str, Any] | None = None,
        mcmc_options: Mapping[str, Any] | None = None,
        max_elements: int = MAX_ELEMENTS,
        seed: int = 0,
        progress_bar: bool = False,
    ) -> None:
        if task not in ("regression", "classification"):
            raise ModelSpecError(f"task must be 'regression' or 'classification', got {task!r}.")
        if method not in METHODS:
            raise ModelSpecError(f"method must be one of {METHODS}, got {method!r}.")
        if n_classes is not None and check_positive_int(n_classes, "n_classes") < 2:
            raise ModelSpecError(f"n_classes must be at least 2, got {n_classes}.")
        self.hidden, self.task, self.activation = tuple(hidden), task, activation
        self.prior_scale, self.prior, self.noise, self.noise_prior_scale = prior_scale, prior, noise, noise_prior_scale
        self.n_classes, self.method = n_classes, method
        self.standardize_x, self.standardize_y = standardize_x, standardize_y
        self.num_steps, self.lr, self.batch_size, self.num_particles = num_steps, lr, batch_size, num_particles
        self.rank, self.num_samples, self.n_members = rank, num_samples, n_members
        self.early_stopping, self.validation_fraction = early_stopping, validation_fraction
        self.eval_every, self.patience = check_positive_int(eval_every, "eval_every"), check_positive_int(patience, "patience")
        if kl_annealing is not None:
            if method not in ("svi", "lowrank"):
                raise ModelSpecError(f"kl_annealing applies to method 'svi' or 'lowrank', not {method!r}; drop it or change the method.")
            if check_positive_int(kl_annealing, "kl_annealing") >= num_steps:
                raise ModelSpecError(f"kl_annealing={kl_annealing} warm-up steps leave none of num_steps={num_steps} at the full ELBO; raise num_steps.")
        self.kl_annealing = kl_annealing
        if laplace_prior not in PRIOR_PRECISIONS:
            raise ModelSpecError(f"laplace_prior must be one of {PRIOR_PRECISIONS}, got {laplace_prior!r}.")
        self.laplace_prior = laplace_prior
        if local_reparam and (method != "svi" or kl_annealing is not None or prior != "gaussian"):
            raise ModelSpecError(
                "local_reparam=True applies to method='svi' with prior='gaussian' and no kl_annealing; "
                f"got method={method!r}, prior={prior!r}, kl_annealing={kl_annealing!r}."
            )
        self.local_reparam = local_reparam
        if nuts_init not in ("uniform", "svi"):
            raise ModelSpecError(f"nuts_init must be 'uniform' or 'svi', got {nuts_init!r}.")
        self.num_warmup, self.num_chains, self.nuts_init = num_warmup, num_chains, nuts_init
        self.svi_options, self.mcmc_options = dict(svi_options or {}), dict(mcmc_options or {})
        self.max_elements, self.seed, self.progress_bar = max_elements, seed, progress_bar

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, y: Any) -> "BayesianMLP":
        """Infer the posterior of the weights given inputs ``X (N, d)`` and targets ``y (N,)``.

        Raises
        ------
        ShapeError
            When ``X`` is not 2-D or ``y`` has a different number of rows.
        DataError
            On NaN/inf values, or labels outside ``[0, n_classes)``.
        """
        x = as_features(X)
        if self.task == "regression":
            target = as_regression_targets(y, x)
            self.y_scaling_ = Affine.fit(target, self.standardize_y)
            target = self.y_scaling_.apply(target)
            n_out, model_task, self.n_classes_ = 1, "regression", None
        else:
            target = as_labels(y, x, self.n_classes)
            self.n_classes_ = self.n_classes or max(int(target.max()) + 1, 2)
            n_out, model_task = (1, "binary") if self.n_classes_ == 2 else (self.n_classes_, "multiclass")
        self.x_scaling_ = Affine.fit(x, self.standardize_x)
        self.n_features_in_ = x.shape[1]
        self.model_ = self._build_model(x.shape[1], n_out, model_task)
        self.predictive_model_ = self.model_
        self.posterior_ = self._infer(self.x_scaling_.apply(x), target)
        self._params = {site.name: self.posterior_.flat(site.name) for site in self.posterior_.info.latents}
        return self

    def _build_model(self, n_features: int, n_outputs: int, task: str) -> Any:
        return MLPModel(
            n_features, self.hidden, n_outputs, task=task, activation=self.activation, prior_scale=self.prior_scale,
            prior=self.prior, noise=self.noise, noise_prior_scale=self.noise_prior_scale,
        )

    def _infer(self, x: torch.Tensor, target: torch.Tensor) -> Posterior:
        svi = dict(num_steps=self.num_steps, lr=self.lr, batch_size=self.batch_size, num_particles=self.num_particles,
                   progress_bar=self.progress_bar, **self.svi_options)
        if self.method == "nuts":
            init = None
            if self.nuts_init == "svi":
                warm = fit_svi(self.model_, x, target, guide="normal", num_samples=self.num_chains, seed=self.seed, **svi)
                init = {site.name: warm.flat(site.name) for site in warm.info.latents}
            return fit_network_nuts(
                self.model_, x, target, num_samples=self.num_samples, num_warmup=self.num_warmup, num_chains=self.num_chains,
                init_values=init, seed=self.seed, progress_bar=self.progress_bar, **self.mcmc_options,
            )
        if self.method in ("map", "ensemble", "laplace_ggn"):
            n_members = self.n_members if self.method == "ensemble" else 1
            posterior = fit_ensemble(
                self.model_, x, target, n_members=n_members, seed=self.seed, validation_fraction=self.validation_fraction if self.early_stopping else None,
                eval_every=self.eval_every, patience=self.patience, **svi,
            )
            self.early_stopping_scores_ = posterior.attrs.get("validation_scores")
            if self.method == "laplace_ggn":
                posterior, self.predictive_model_ = fit_laplace_ggn(
                    self.model_, x, target, posterior, prior_precision=self.laplace_prior, num_samples=self.num_samples, seed=self.seed,
                )
            return posterior
        if self.kl_annealing is not None:
            return annealed_svi(self.model_, x, target, warmup_steps=self.kl_annealing, guide=_GUIDES[self.method], rank=self.rank,
                                num_samples=self.num_samples, seed=self.seed, **svi)
        if self.local_reparam:
            svi.update(num_particles=1, loss=LocalReparameterizationELBO(self.model_, x.shape[0], self.num_particles))
        try:
            return fit_svi(self.model_, x, target, guide=_GUIDES[self.method], rank=self.rank, num_samples=self.num_samples, seed=self.seed, **svi)
        except torch.linalg.LinAlgError as error:
            if self.method != "laplace":
                raise
            raise InferenceError(
                "the Hessian of the log posterior at the fitted mode is not positive definite (a saddle, or a degenerate "
                "mode such as a noise sd shrinking towards 0), so method='laplace' has no Gaussian there; use "
                "method='laplace_ggn' (positive semi-definite Gauss-Newton at the early-stopped MAP) or a smaller num_steps."
            ) from error

    # -------------------------------------------------------------- predict
    def _check_fitted(self) -> None:
        if not hasattr(self, "posterior_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X, y) first.")

    def _inputs(self, X: Any) -> torch.Tensor:
        self._check_fitted()
        like = self.x_scaling_.shift
        return self.x_scaling_.apply(as_features(X, self.n_features_in_, like.dtype, like.device))

    def predictive(self, X: Any, y: Any = None, *, level: float = 0.9) -> Predictive:
        """Posterior predictive summaries at ``X`` (in the units of ``y``), see :class:`~probmodels.bnn.predict.Predictive`.

        With targets ``y``, the log predictive density of each (and, for
        regression, its PIT value) is included.
        """
        level = check_probability(level, "level")
        x = self._inputs(X)
        target = None
        if y is not None:
            if self.task == "regression":
                target = self.y_scaling_.apply(as_regression_targets(y, x))
            else:
                target = as_labels(y, x, self.n_classes_)
        out = predictive(self.predictive_model_, self._params, x, target, level=level, max_elements=self.max_elements)
        if self.task == "classification":
            return out
        scale, shift = self.y_scaling_.scale, self.y_scaling_.shift
        log_density = None if out.log_density is None else out.log_density - scale.log()
        return out._replace(
            mean=out.mean * scale + shift, epistemic=out.epistemic * scale**2, aleatoric=out.aleatoric * scale**2,
            total=out.total * scale**2, lower=out.lower * scale + shift, upper=out.upper * scale + shift, log_density=log_density,
        )

    def predict(self, X: Any) -> torch.Tensor:
        """Posterior predictive mean (regression) or most probable class (classification)."""
        mean = self.predictive(X).mean
        return mean if self.task == "regression" else mean.argmax(-1)

    def predict_proba(self, X: Any) -> torch.Tensor:
        """Posterior predictive class probabilities ``(N, n_classes)``."""
        if self.task != "classification":
            raise ModelSpecError("predict_proba is for classifiers; this network has task='regression' (use predictive or predict_interval).")
        return self.predictive(X).mean

    def predict_interval(self, X: Any, level: float = 0.9) -> tuple[torch.Tensor, torch.Tensor]:
        """Central ``level`` posterior predictive interval of a regression target."""
        if self.task != "regression":
            raise ModelSpecError("predict_interval is for regression; use predict_proba for a classifier.")
        out = self.predictive(X, level=level)
        return out.lower, out.upper

    def uncertainty(self, X: Any) -> dict[str, torch.Tensor]:
        """Epistemic, aleatoric and total uncertainty per point.

        Regression: variances in squared units of ``y``. Classification:
        entropies in nats, the epistemic part being the mutual information
        between the label and the weights.
        """
        out = self.predictive(X)
        return {"epistemic": out.epistemic, "aleatoric": out.aleatoric, "total": out.total}

    def score(self, X: Any, y: Any, *, level: float = 0.9, n_bins: int = 10) -> dict[str, float]:
        """Test metrics: mean log predictive density per point, RMSE or accuracy, calibration error,
        and for regression the coverage of the central ``level`` interval."""
        out = self.predictive(X, y, level=level)
        x = self._inputs(X)
        result = {"log_likelihood": float(out.log_density.mean())}
        if self.task == "regression":
            target = as_regression_targets(y, x)
            result.update(rmse=metrics.rmse(out.mean, target), ece=metrics.regression_calibration_error(out.pit),
                          coverage=metrics.interval_coverage(out.lower, out.upper, target))
        else:
            labels = as_labels(y, x, self.n_classes_)
            result.update(accuracy=metrics.accuracy(out.mean, labels), ece=metrics.expected_calibration_error(out.mean, labels, n_bins))
        return result

    # ---------------------------------------------------------- diagnostics
    def log_likelihood(self) -> torch.Tensor:
        """Pointwise training log-likelihood ``(chain, draw, N)`` (standardised units) for LOO/WAIC."""
        self._check_fitted()
        return self.posterior_.log_likelihood()["y"]

    def to_arviz(self, **kwargs: Any) -> Any:
        """The posterior as ArviZ InferenceData (with the pointwise log-likelihood)."""
        self._check_fitted()
        return self.posterior_.to_arviz(**kwargs)


class BayesianNetwork(BayesianMLP):
    """The :class:`BayesianMLP` surface (fit, predictive, score, every method) for any ``torch.nn.Module``.

    Parameters
    ----------
    module
        The network, mapping ``(N, n_features)`` standardised inputs to
        ``(N, 1)`` (regression, two classes) or ``(N, n_classes)`` outputs.
    layers
        Submodules whose parameters get priors (all by default); see :func:`~probmodels.bnn.convert.bayesian`.
    prior_mean
        ``"zero"``, or ``"init"`` to centre the priors at the module's current weights.
    **options
        Every other :class:`BayesianMLP` argument except ``hidden``,
        ``activation`` and ``prior`` (the module fixes the architecture).
    """

    def __init__(self, module: torch.nn.Module, layers: Sequence[str] | None = None, *, prior_mean: str = "zero", **options: Any) -> None:
        fixed = {"hidden", "activation", "prior"} & set(options)
        if fixed:
            raise ModelSpecError(f"{sorted(fixed)} are set by the module itself; drop them from BayesianNetwork(...).")
        if not isinstance(options.get("prior_scale", 1.0), (int, float)):
            raise ModelSpecError("BayesianNetwork takes one prior_scale for every random parameter.")
        super().__init__((), **options)
        self.module, self.layers, self.prior_mean = module, layers, prior_mean

    def _build_model(self, n_features: int, n_outputs: int, task: str) -> BayesianModule:
        model = BayesianModule(self.module, self.layers, task=task, prior_scale=self.prior_scale, prior_mean=self.prior_mean,
                               noise=self.noise, noise_prior_scale=self.noise_prior_scale)
        probe = torch.zeros(1, n_features, dtype=torch.get_default_dtype())
        width = model.forward({name: value.to(probe.dtype) for name, value in model.fixed.items()}, probe).shape[-1]
        if width != n_outputs:
            raise ModelSpecError(
                f"the module outputs {width} value(s) per row but task {task!r} needs {n_outputs}; "
                "give its last layer 1 output for regression or two classes, n_classes outputs otherwise."
            )
        return model
