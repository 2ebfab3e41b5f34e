"""MLPModel: a multilayer perceptron with Gaussian weight priors as a Pyro program.

The weights are plain ``pyro.sample`` sites (``w0``, ``b0``, ``w1``, ...) and
the network is evaluated by batched matrix products, so any leading batch of
weight draws (SVI particles, MCMC chains, posterior draws) runs as one call.
The likelihood site ``y`` sits in the ``data`` plate (protocol of
:mod:`probmodels.core.protocol`).
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import pyro
import pyro.distributions as dist
import torch

from ..exceptions import ModelSpecError
from .logprob import half_normal_log_prob, normal_log_prob

__all__ = ["MLPModel", "ACTIVATIONS", "TASKS", "PRIORS", "strip_plate_dim", "likelihood"]

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "gelu": torch.nn.functional.gelu,
    "silu": torch.nn.functional.silu,
    "identity": lambda h: h,
}
TASKS = ("regression", "binary", "multiclass")
PRIORS = ("gaussian", "hierarchical")


def strip_plate_dim(value: torch.Tensor, event_dim: int) -> torch.Tensor:
    """Drop the singleton that a data plate leaves right of a batch of draws.

    A global site drawn inside a batch plate (particles, chains, draws) has
    batch shape ``(S, 1)``; the network wants ``(S,)`` so that its output is
    ``(S, N, ...)``, aligned with the data plate.
    """
    batch_ndim = value.dim() - event_dim
    if batch_ndim >= 1 and value.shape[batch_ndim - 1] == 1:
        return value.squeeze(batch_ndim - 1)
    return value


def likelihood(task: str, outputs: torch.Tensor, noise: torch.Tensor | float | None) -> dist.Distribution:
    """The observation distribution of ``task`` given network outputs ``(..., N, out)``."""
    if task == "regression":
        scale = noise.unsqueeze(-1) if isinstance(noise, torch.Tensor) and noise.dim() else noise
        return dist.Normal(outputs[..., 0], scale)
    if task == "binary":
        return dist.Bernoulli(logits=outputs[..., 0])
    return dist.Categorical(logits=outputs)


class MLPModel:
    """Bayesian MLP ``model(x, obs=None)`` for regression or classification.

    Parameters
    ----------
    n_features
        Input width.
    hidden
        Widths of the hidden layers, e.g. ``(50,)``.
    n_outputs
        Output width: 1 for regression and binary classification, the number
        of classes for ``"multiclass"``.
    task
        ``"regression"`` (Gaussian likelihood), ``"binary"`` (Bernoulli on
        logits) or ``"multiclass"`` (categorical on logits).
    activation
        One of :data:`ACTIVATIONS`.
    prior_scale
        Standard deviation of the weight prior, one number or one per layer
        (``len(hidden) + 1``). With ``prior="hierarchical"`` it is the scale
        of the half-normal prior on each layer's weight scale.
    prior
        ``"gaussian"``: ``w ~ N(0, prior_scale)``; ``"hierarchical"``: per
        layer ``tau_l ~ HalfNormal(prior_scale_l)`` and, non-centred,
        ``w_raw ~ N(0, 1)``, ``w = tau_l * w_raw``.
    noise
        Regression only: ``"learn"`` gives the noise standard deviation a
        ``HalfNormal(noise_prior_scale)`` prior (site ``noise``); a positive
        number fixes it.
    noise_prior_scale
        Scale of that half-normal prior.
    """

    observed = ("y",)
    max_plate_nesting = 1

    def __init__(
        self,
        n_features: int,
        hidden: Sequence[int] = (50,),
        n_outputs: int = 1,
        *,
        task: str = "regression",
        activation: str = "tanh",
        prior_scale: float | Sequence[float] = 1.0,
        prior: str = "gaussian",
        noise: str | float = "learn",
        noise_prior_scale: float = 1.0,
    ) -> None:
        if task not in TASKS:
            raise ModelSpecError(f"task must be one of {TASKS}, got {task!r}.")
        if activation not in ACTIVATIONS:
            raise ModelSpecError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}.")
        if prior not in PRIORS:
            raise ModelSpecError(f"prior must be one of {PRIORS}, got {prior!r}.")
        widths = [int(n_features), *[int(h) for h in hidden], int(n_outputs)]
        if any(w < 1 for w in widths):
            raise ModelSpecError(f"layer widths must be >= 1, got features={n_features}, hidden={tuple(hidden)}, outputs={n_outputs}.")
        n_layers = len(widths) - 1
        scales = [float(prior_scale)] * n_layers if isinstance(prior_scale, (int, float)) else [float(s) for s in prior_scale]
        if len(scales) != n_layers or any(not s > 0 for s in scales):
            raise ModelSpecError(
                f"prior_scale must be one positive number or {n_layers} of them (one per layer), got {prior_scale!r}."
            )
        if isinstance(noise, str) and noise != "learn":
            raise ModelSpecError(f"noise must be 'learn' or a positive number, got {noise!r}.")
        if not isinstance(noise, str) and not float(noise) > 0:
            raise ModelSpecError(f"a fixed noise must be a positive standard deviation, got {noise!r}.")
        self.widths, self.task, self.activation, self.prior = widths, task, activation, prior
        self.prior_scales, self.noise, self.noise_prior_scale = scales, noise, float(noise_prior_scale)
        self._prior_cache: dict[tuple[torch.dtype, torch.device], dict[str, dist.Distribution]] = {}

    @property
    def n_layers(self) -> int:
        """Number of weight layers."""
        return len(self.widths) - 1

    @property
    def n_weights(self) -> int:
        """Number of network weights and biases."""
        return sum((a + 1) * b for a, b in zip(self.widths[:-1], self.widths[1:]))

    def __call__(self, x: torch.Tensor, obs: torch.Tensor | None = None) -> torch.Tensor:
        params = self.sample_params(x)
        outputs = self.forward(params, x)
        with pyro.plate("data", x.shape[0], dim=-1):
            return pyro.sample("y", likelihood(self.task, outputs, self.noise_scale(params)), obs=obs)

    def sample_params(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Sample every latent site; returns the network parameters ``name -> value``."""
        return {name: pyro.sample(name, prior) for name, prior in self.priors(x.dtype, x.device).items()}

    def priors(self, dtype: torch.dtype, device: torch.device) -> dict[str, dist.Distribution]:
        """The prior of every latent site, in sampling order (built once per dtype and device).

        No prior depends on another site's value (the hierarchical prior is
        non-centred), so an SVI step or a trace reuses these objects instead of
        building distributions again.
        """
        key = (dtype, device)
        if key not in self._prior_cache:
            zero = torch.zeros((), dtype=dtype, device=device)
            priors: dict[str, dist.Distribution] = {}
            for layer, (fan_in, fan_out) in enumerate(zip(self.widths[:-1], self.widths[1:])):
                scale = zero + self.prior_scales[layer]
                if self.prior == "hierarchical":
                    priors[f"tau{layer}"] = dist.HalfNormal(scale)
                    scale = zero + 1.0
                for name, shape in ((f"w{layer}", (fan_in, fan_out)), (f"b{layer}", (fan_out,))):
                    site = f"{name}_raw" if self.prior == "hierarchical" else name
                    priors[site] = dist.Normal(zero, scale).expand(shape).to_event(len(shape))
            if self.task == "regression" and self.noise == "learn":
                priors["noise"] = dist.HalfNormal(zero + self.noise_prior_scale)
            self._prior_cache[key] = priors
        return self._prior_cache[key]

    def forward(
        self, params: Mapping[str, torch.Tensor], x: torch.Tensor, activation: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Network outputs ``(*batch, N, n_outputs)`` for parameters with leading ``batch`` dims.

        ``params`` holds the latent sites (as sampled, or posterior draws
        with a leading draw dim); hierarchical raw weights are scaled here.
        ``activation`` replaces the model's own function by an equal one
        (the NUTS path passes a form that compiles faster); None: the model's.
        """
        act = activation or ACTIVATIONS[self.activation]
        h = x
        for layer in range(self.n_layers):
            w, b = self.layer_weights(params, layer)
            h = h @ w + b.unsqueeze(-2)
            if layer < self.n_layers - 1:
                h = act(h)
        return h

    def layer_weights(self, params: Mapping[str, torch.Tensor], layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Weight matrix ``(*batch, in, out)`` and bias ``(*batch, out)`` of one layer."""
        if self.prior == "hierarchical":
            tau = strip_plate_dim(params[f"tau{layer}"], 0)[..., None]
            w = strip_plate_dim(params[f"w{layer}_raw"], 2) * tau[..., None]
            b = strip_plate_dim(params[f"b{layer}_raw"], 1) * tau
            return w, b
        return strip_plate_dim(params[f"w{layer}"], 2), strip_plate_dim(params[f"b{layer}"], 1)

    def log_prior(self, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Log prior density of constrained latent values with one leading batch dim: ``(batch,)``."""
        total = 0.0
        for layer, scale in enumerate(self.prior_scales):
            raw = "_raw" if self.prior == "hierarchical" else ""
            if raw:
                total = total + half_normal_log_prob(params[f"tau{layer}"], scale)
                scale = 1.0
            for name in (f"w{layer}{raw}", f"b{layer}{raw}"):
                total = total + normal_log_prob(params[name], 0.0, scale).flatten(1).sum(-1)
        if "noise" in params:
            total = total + half_normal_log_prob(params["noise"], self.noise_prior_scale)
        return total

    def noise_scale(self, params: Mapping[str, torch.Tensor]) -> torch.Tensor | float | None:
        """The regression noise standard deviation (``(*batch,)`` when learned); None for classifiers."""
        if self.task != "regression":
            return None
        return strip_plate_dim(params["noise"], 0) if "noise" in params else self.noise
