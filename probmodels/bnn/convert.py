"""bayesian(module): turn a ``torch.nn.Module`` into a Bayesian network Pyro program.

The chosen layers' parameters become ``pyro.sample`` sites with Gaussian
priors (named after the parameters, e.g. ``"2.weight"``); every other
parameter and buffer stays fixed at its trained value, which gives, e.g.,
last-layer Bayesian networks on a pretrained body. The network runs through
:func:`torch.func.functional_call`, vectorised over draws with
:func:`torch.func.vmap`.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import pyro
import pyro.distributions as dist
import torch
from torch.func import functional_call, vmap

from ..exceptions import ModelSpecError
from .logprob import half_normal_log_prob, normal_log_prob
from .model import TASKS, likelihood, strip_plate_dim

__all__ = ["BayesianModule", "bayesian"]


class BayesianModule:
    """A ``torch.nn.Module`` with Gaussian priors on some of its parameters, as ``model(x, obs=None)``.

    Parameters
    ----------
    module
        The network; its output is ``(N, 1)`` for regression and binary
        classification, ``(N, n_classes)`` for ``"multiclass"``.
    layers
        Names of submodules (as in ``module.named_modules()``) whose
        parameters become random; None makes every parameter random.
    task
        ``"regression"``, ``"binary"`` or ``"multiclass"``.
    prior_scale
        Standard deviation of the ``N(0, prior_scale)`` priors.
    prior_mean
        ``"zero"`` or ``"init"``: centre each prior at the module's current
        value (useful for a pretrained last layer).
    noise, noise_prior_scale
        Regression noise: ``"learn"`` (``HalfNormal(noise_prior_scale)``) or a fixed standard deviation.
    """

    observed = ("y",)
    max_plate_nesting = 1

    def __init__(
        self,
        module: torch.nn.Module,
        layers: Sequence[str] | None = None,
        *,
        task: str = "regression",
        prior_scale: float = 1.0,
        prior_mean: str = "zero",
        noise: str | float = "learn",
        noise_prior_scale: float = 1.0,
    ) -> None:
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"bayesian() needs a torch.nn.Module, got {type(module).__name__}.")
        if task not in TASKS:
            raise ModelSpecError(f"task must be one of {TASKS}, got {task!r}.")
        if prior_mean not in ("zero", "init"):
            raise ModelSpecError(f"prior_mean must be 'zero' or 'init', got {prior_mean!r}.")
        if not prior_scale > 0:
            raise ModelSpecError(f"prior_scale must be positive, got {prior_scale!r}.")
        modules = dict(module.named_modules())
        chosen = list(modules) if layers is None else list(layers)
        unknown = [name for name in chosen if name not in modules]
        if unknown:
            raise ModelSpecError(f"layers {unknown} are not submodules of the network; choose among {[n for n in modules if n]}.")
        prefixes = [f"{name}." if name else "" for name in chosen]
        self.fixed = {name: value.detach() for name, value in module.named_parameters()}
        self.fixed.update({name: value.detach() for name, value in module.named_buffers()})
        self.random = [name for name, _ in module.named_parameters() if any(name.startswith(p) for p in prefixes)]
        if not self.random:
            raise ModelSpecError(f"the layers {chosen} have no parameters; choose layers with weights (e.g. a Linear layer).")
        self.module, self.task, self.prior_scale, self.prior_mean = module, task, float(prior_scale), prior_mean
        self.noise, self.noise_prior_scale = noise, float(noise_prior_scale)
        self.widths = [max(self.fixed[name].shape, default=1) for name in self.random]

    @property
    def n_weights(self) -> int:
        """Number of random parameters."""
        return sum(self.fixed[name].numel() for name in self.random)

    def __call__(self, x: torch.Tensor, obs: torch.Tensor | None = None) -> torch.Tensor:
        params = {}
        for name in self.random:
            value = self.fixed[name].to(x.device, x.dtype)
            loc = value if self.prior_mean == "init" else torch.zeros_like(value)
            params[name] = pyro.sample(name, dist.Normal(loc, self.prior_scale).to_event(value.dim()))
        if self.task == "regression" and self.noise == "learn":
            params["noise"] = pyro.sample("noise", dist.HalfNormal(torch.tensor(self.noise_prior_scale, dtype=x.dtype, device=x.device)))
        outputs = self.forward(params, x)
        with pyro.plate("data", x.shape[0], dim=-1):
            return pyro.sample("y", likelihood(self.task, outputs, self.noise_scale(params)), obs=obs)

    def forward(self, params: Mapping[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Module outputs ``(*batch, N, out)`` with the random parameters set to ``params``."""
        values = {name: strip_plate_dim(params[name], self.fixed[name].dim()) for name in self.random}
        fixed = {k: v.to(x.device, x.dtype) if v.is_floating_point() else v.to(x.device) for k, v in self.fixed.items() if k not in values}
        batch = next(iter(values.values())).shape[: -self.fixed[self.random[0]].dim() or None]
        if not batch:
            return functional_call(self.module, {**fixed, **values}, (x,))
        flat = {k: v.reshape((-1,) + tuple(self.fixed[k].shape)) for k, v in values.items()}
        out = vmap(lambda p: functional_call(self.module, {**fixed, **p}, (x,)))(flat)
        return out.reshape(tuple(batch) + tuple(out.shape[1:]))

    def log_prior(self, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Log prior density of constrained latent values with one leading batch dim: ``(batch,)``."""
        total = 0.0
        for name in self.random:
            value = params[name]
            loc = self.fixed[name].to(value.device, value.dtype) if self.prior_mean == "init" else 0.0
            total = total + normal_log_prob(value, loc, self.prior_scale).flatten(1).sum(-1)
        if "noise" in params:
            total = total + half_normal_log_prob(params["noise"], self.noise_prior_scale)
        return total

    def noise_scale(self, params: Mapping[str, torch.Tensor]) -> torch.Tensor | float | None:
        """The regression noise standard deviation; None for classifiers."""
        if self.task != "regression":
            return None
        return strip_plate_dim(params["noise"], 0) if "noise" in params else self.noise


def bayesian(
    module: torch.nn.Module,
    layers: Sequence[str] | None = None,
    *,
    task: str = "regression",
    prior_scale: float = 1.0,
    prior_mean: str = "zero",
    noise: str | float = "learn",
    noise_prior_scale: float = 1.0,
) -> BayesianModule:
    """Make a Bayesian network from ``module``: the parameters of ``layers`` (all by default) get priors.

    The result is a Pyro program ``model(x, obs=None)`` for
    :func:`probmodels.fit_svi` and :func:`probmodels.fit_mcmc`, and its
    posterior draws feed :func:`probmodels.bnn.predictive`.

    Examples
    --------
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    >>> last_layer = bayesian(net, layers=["2"])
    >>> last_layer.random
    ['2.weight', '2.bias']
    """
    return BayesianModule(module, layers, task=task, prior_scale=prior_scale, prior_mean=prior_mean, noise=noise,
                          noise_prior_scale=noise_prior_scale)
