"""All-layer Laplace approximation with the generalised Gauss-Newton and a linearised predictive.

The recipe of laplace-torch (Daxberger et al., 2021) for a network's
weights: at a MAP estimate ``theta*`` the posterior precision is the
generalised Gauss-Newton (GGN) ``J^T Lambda J`` of the likelihood (``J`` the
Jacobian of the network outputs with respect to every weight, ``Lambda`` the
likelihood's Hessian with respect to the outputs: ``1 / sigma^2``,
``p (1 - p)`` or ``diag(p) - p p^T``) plus the prior precision ``delta``;
``delta`` (and the regression noise ``sigma``) may be chosen by maximising
the Laplace approximation of the marginal likelihood (empirical Bayes), and
predictions use the network linearised at ``theta*``
(:class:`LinearizedNetwork`), whose predictive the Gaussian describes well
(Immer et al., 2021), instead of the network itself at weight draws.

References
----------
E. Daxberger, A. Kristiadi, A. Immer, R. Eschenhagen, M. Bauer, P. Hennig (2021).
Laplace Redux -- Effortless Bayesian Deep Learning. NeurIPS.
A. Immer, M. Korzepa, M. Bauer (2021). Improving predictions of Bayesian neural
nets via local linearization. AISTATS.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch

from ..core import Posterior
from ..core.protocol import inspect_model
from ..exceptions import ModelSpecError
from .logprob import observation_log_prob
from .model import MLPModel

__all__ = ["LinearizedNetwork", "fit_laplace_ggn", "PRIOR_PRECISIONS"]

PRIOR_PRECISIONS = ("marglik", "model")
# log10 grid of the prior precision and of the noise sd searched for the largest marginal likelihood
_LOG_DELTA_GRID = torch.linspace(-3.0, 4.0, 141)
_LOG_SIGMA_FACTOR_GRID = torch.linspace(-0.5, 0.5, 101)


class LinearizedNetwork:
    """A network replaced by its first-order expansion at ``center``: ``f(x; c) + J(x; c) (theta - c)``.

    It has the surface that :func:`~probmodels.bnn.predict.predictive`
    needs (``forward``, ``noise_scale``, ``task``, ``widths``), so weight
    draws of a Laplace fit give the linearised (GLM) predictive.

    Parameters
    ----------
    model
        The network, an :class:`~probmodels.bnn.model.MLPModel`.
    center
        Weights ``site -> value`` (no leading draw dim) to expand around.
    names
        The weight sites, in the order of the flat weight vector.
    """

    def __init__(self, model: Any, center: Mapping[str, torch.Tensor], names: list[str]) -> None:
        self.model, self.names = model, names
        self.center = {name: center[name] for name in names}
        self.task, self.widths = model.task, model.widths

    def flat(self, params: Mapping[str, torch.Tensor], batch: int) -> torch.Tensor:
        """The weight sites of ``params`` (leading dim ``batch``) as one ``(batch, P)`` matrix."""
        return torch.cat([params[name].reshape(batch, -1) for name in self.names], -1)

    def unflat(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """A flat ``(P,)`` weight vector back to ``site -> value``."""
        sizes = [self.center[name].numel() for name in self.names]
        return {name: part.reshape(self.center[name].shape) for name, part in zip(self.names, theta.split(sizes))}

    def jacobian(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Outputs ``(N, out)`` at the center and their Jacobian ``(N, out, P)``."""
        theta = self.flat({k: v.unsqueeze(0) for k, v in self.center.items()}, 1)[0]

        def outputs(t: torch.Tensor) -> torch.Tensor:
            return self.model.forward(self.unflat(t), x)

        with torch.enable_grad():
            jac = torch.func.jacrev(outputs)(theta)
        return outputs(theta).detach(), jac.detach()

    def forward(self, params: Mapping[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Linearised outputs ``(S, N, out)`` for weight draws with a leading dim ``S``."""
        batch = params[self.names[0]].shape[0]
        center = self.flat({k: v.unsqueeze(0) for k, v in self.center.items()}, 1)
        f0, jac = self.jacobian(x)
        return f0 + torch.einsum("nop,sp->sno", jac, self.flat(params, batch) - center)

    def noise_scale(self, params: Mapping[str, torch.Tensor]) -> torch.Tensor | float | None:
        """The model's noise standard deviation for these draws."""
        return self.model.noise_scale(params)


def _output_hessian(task: str, outputs: torch.Tensor) -> torch.Tensor:
    """Per point, the Hessian of ``-log p(y | f)`` with respect to the outputs ``f``, ``(N, out, out)``, noise excluded."""
    if task == "regression":
        return torch.ones(outputs.shape[0], 1, 1, dtype=outputs.dtype, device=outputs.device)
    if task == "binary":
        p = torch.sigmoid(outputs[:, 0])
        return (p * (1 - p))[:, None, None]
    p = torch.softmax(outputs, -1)
    return torch.diag_embed(p) - p[:, :, None] * p[:, None, :]


def fit_laplace_ggn(
    model: Any,
    x: torch.Tensor,
    y: torch.Tensor,
    map_posterior: Posterior,
    *,
    prior_precision: str = "marglik",
    num_samples: int = 1000,
    seed: int = 0,
) -> tuple[Posterior, LinearizedNetwork]:
    """Laplace approximation at a MAP fit with the GGN, prior precision by marginal likelihood.

    Parameters
    ----------
    model
        An :class:`~probmodels.bnn.model.MLPModel` with ``prior="gaussian"`` and one prior scale.
    x, y
        Training inputs and targets (as the model takes them).
    map_posterior
        A MAP fit (one draw; e.g. from :func:`~probmodels.bnn.ensemble.fit_ensemble` with one member).
    prior_precision
        ``"marglik"``: the scalar prior precision (and a learned regression
        noise sd) maximising the Laplace marginal likelihood on a grid,
        laplace-torch's post-hoc tuning; ``"model"``: the model's own prior
        precision ``1 / prior_scale^2`` and the MAP noise.
    num_samples
        Weight draws of the Gaussian.
    seed
        Seeds the draws.

    Returns
    -------
    Posterior, LinearizedNetwork
        Draws ``(1, num_samples, ...)`` (method ``"laplace_ggn"``; ``attrs``
        hold the prior precision, the noise and the log marginal likelihood)
        and the linearised network to predict with.
    """
    if prior_precision not in PRIOR_PRECISIONS:
        raise ModelSpecError(f"prior_precision must be one of {PRIOR_PRECISIONS}, got {prior_precision!r}.")
    if not isinstance(model, MLPModel) or model.prior != "gaussian" or len(set(model.prior_scales)) > 1:
        raise ModelSpecError(
            "method 'laplace_ggn' needs a BayesianMLP with prior='gaussian' and one prior_scale for every layer; "
            "use method 'laplace' otherwise."
        )
    info = inspect_model(model, (x, y), {})
    names = [site.name for site in info.latents if site.name != "noise"]
    center = {name: map_posterior.flat(name)[0].detach() for name in names}
    net = LinearizedNetwork(model, center, names)
    outputs, jac = net.jacobian(x)
    n, _, dim = jac.shape
    ggn = torch.einsum("nop,noq,nqr->pr", jac, _output_hessian(model.task, outputs), jac)
    theta = net.flat({k: v.unsqueeze(0) for k, v in center.items()}, 1)[0]
    eig = torch.linalg.eigvalsh(ggn).clamp_min(0.0)
    regression = model.task == "regression"
    map_sigma = float(model.noise_scale({"noise": map_posterior.flat("noise")} if model.noise == "learn" else {})) if regression else 1.0
    residual = float(((y - outputs[:, 0]) ** 2).sum()) if regression else 0.0
    fit_term = 0.0 if regression else float(observation_log_prob(model.task, outputs, None, y).sum())

    def log_marglik(delta: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        log_lik = -0.5 * residual / sigma**2 - n * (torch.log(sigma) + 0.5 * math.log(2 * math.pi)) if regression else fit_term
        log_prior = 0.5 * dim * torch.log(delta / (2 * math.pi)) - 0.5 * delta * float(theta @ theta)
        log_det = torch.log(eig[:, None, None] / sigma**2 + delta).sum(0)
        return log_lik + log_prior + 0.5 * dim * math.log(2 * math.pi) - 0.5 * log_det

    if prior_precision == "marglik":
        deltas = (10.0**_LOG_DELTA_GRID).to(x.device, x.dtype)[:, None]
        sigmas = (map_sigma * 10.0**_LOG_SIGMA_FACTOR_GRID if regression and model.noise == "learn" else torch.tensor([map_sigma])).to(x.device, x.dtype)[None, :]
        scores = log_marglik(deltas, sigmas)
        best = int(torch.argmax(scores))
        delta, sigma = float(deltas[best // scores.shape[1], 0]), float(sigmas[0, best % scores.shape[1]])
    else:
        delta, sigma = 1.0 / model.prior_scales[0] ** 2, map_sigma
    evidence = float(log_marglik(torch.tensor(delta, dtype=x.dtype, device=x.device), torch.tensor(sigma, dtype=x.dtype, device=x.device)))
    scale = 1.0 / sigma**2 if regression else 1.0
    precision = ggn * scale + delta * torch.eye(dim, dtype=x.dtype, device=x.device)
    chol = torch.linalg.cholesky(precision)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    eps = torch.randn(dim, num_samples, generator=generator, dtype=x.dtype).to(x.device)
    draws_flat = theta[None, :] + torch.linalg.solve_triangular(chol.mT, eps, upper=True).T
    draws = {name: value.unsqueeze(0) for name, value in zip(names, _split(draws_flat, center))}
    if regression and "noise" in info.site_shapes:
        draws["noise"] = torch.full((1, num_samples), sigma, dtype=x.dtype, device=x.device)
    posterior = Posterior(
        draws, method="laplace_ggn", dims=dict(info.site_dims), observed_data=dict(info.observed_values),
        attrs=dict(prior_precision=delta, noise=sigma if regression else None, log_marginal_likelihood=evidence,
                   prior_precision_rule=prior_precision, num_samples=num_samples, seed=seed),
        model=model, model_args=(x, y), info=info,
    )
    return posterior, net


def _split(flat: torch.Tensor, like: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
    sizes = [v.numel() for v in like.values()]
    return [part.reshape((flat.shape[0],) + tuple(v.shape)) for part, v in zip(flat.split(sizes, -1), like.values())]
