"""The ELBO of a mean-field Gaussian guide on an MLP with the local reparameterisation trick.

With independent Gaussian weights ``w_ij ~ N(m_ij, s_ij^2)``, a layer's
pre-activation at input ``h`` is Gaussian with mean ``h @ m + m_b`` and
variance ``h^2 @ s^2 + s_b^2``; sampling it directly, independently for
every data point, is the same as drawing fresh weights for every point
(Kingma, Salimans and Welling, 2015). Each point's expected log-likelihood
is then estimated without bias, and the noise the shared weight draw puts
on the whole mini-batch at once (the part of the gradient variance that
grows with the batch size squared) disappears. The KL divergence of the
weights from their Gaussian prior is exact; the regression noise, whose
guide is a transformed Gaussian, contributes a one-draw Monte Carlo term.

References
----------
D. P. Kingma, T. Salimans, M. Welling (2015). Variational Dropout and the
Local Reparameterization Trick. NeurIPS.
"""

from __future__ import annotations

from typing import Any

import pyro.poutine as poutine
import torch
from pyro.infer import ELBO
from pyro.infer.autoguide import AutoNormal

from .._validation import check_positive_int
from ..exceptions import ModelSpecError
from .logprob import observation_log_prob
from .model import ACTIVATIONS, MLPModel

__all__ = ["LocalReparameterizationELBO"]


def _gaussian_kl(loc: torch.Tensor, scale: torch.Tensor, prior_scale: float) -> torch.Tensor:
    """``sum KL(N(loc, scale^2) || N(0, prior_scale^2))`` over every element."""
    ratio = scale / prior_scale
    return (0.5 * (ratio**2 + (loc / prior_scale) ** 2 - 1.0) - ratio.log()).sum()


class LocalReparameterizationELBO(ELBO):
    """Negative ELBO of an :class:`~probmodels.bnn.model.MLPModel` under an ``AutoNormal`` guide,
    by the local reparameterisation trick.

    Use it as ``fit_svi(model, x, y, guide="normal", loss=LocalReparameterizationELBO(model, len(y)))``.

    Parameters
    ----------
    model
        The network, with ``prior="gaussian"`` (the hierarchical prior's
        weights are products of two random factors, not Gaussian).
    data_size
        Number of training rows: a mini-batch's log-likelihood is scaled by
        ``data_size / batch size``.
    num_particles
        Independent draws averaged per step.
    """

    def __init__(self, model: MLPModel, data_size: int, num_particles: int = 1) -> None:
        if not isinstance(model, MLPModel) or model.prior != "gaussian":
            raise ModelSpecError("the local reparameterisation needs an MLPModel with prior='gaussian'.")
        super().__init__(num_particles=check_positive_int(num_particles, "num_particles"))
        self.network, self.data_size = model, check_positive_int(data_size, "data_size")

    def loss(self, model: Any, guide: Any, *args: Any, **kwargs: Any) -> float:
        """The estimated negative ELBO (no gradients)."""
        with torch.no_grad():
            return float(self._differentiable_loss(guide, *args, **kwargs))

    def loss_and_grads(self, model: Any, guide: Any, *args: Any, **kwargs: Any) -> float:
        """The estimated negative ELBO; its gradient is accumulated into the guide's parameters."""
        loss = self._differentiable_loss(guide, *args, **kwargs)
        loss.backward()
        return float(loss.detach())

    def differentiable_loss(self, model: Any, guide: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        """The estimated negative ELBO as a differentiable tensor."""
        return self._differentiable_loss(guide, *args, **kwargs)

    def _get_trace(self, model: Any, guide: Any, args: Any, kwargs: Any) -> Any:
        raise NotImplementedError("the local reparameterisation ELBO computes its loss directly, without model traces.")

    def _differentiable_loss(self, guide: Any, x: torch.Tensor, obs: torch.Tensor | None = None) -> torch.Tensor:
        if not isinstance(guide, AutoNormal):
            raise ModelSpecError(f"the local reparameterisation needs the mean-field guide (guide='normal'), got {type(guide).__name__}.")
        if obs is None:
            raise ModelSpecError("the local reparameterisation ELBO needs the observed targets: call it as fn(x, y).")
        net = self.network
        total = 0.0
        for _ in range(self.num_particles):
            guide_trace = poutine.trace(guide).get_trace(x, obs)
            kl = 0.0
            h = x
            for layer in range(net.n_layers):
                prior_scale = net.prior_scales[layer]
                w_loc, w_scale = guide._get_loc_and_scale(f"w{layer}")
                b_loc, b_scale = guide._get_loc_and_scale(f"b{layer}")
                kl = kl + _gaussian_kl(w_loc, w_scale, prior_scale) + _gaussian_kl(b_loc, b_scale, prior_scale)
                mean = h @ w_loc + b_loc
                sd = ((h * h) @ (w_scale * w_scale) + b_scale * b_scale).sqrt()
                h = mean + sd * torch.randn_like(mean)
                if layer < net.n_layers - 1:
                    h = ACTIVATIONS[net.activation](h)
            noise = None
            if net.task == "regression":
                if net.noise == "learn":
                    site = guide_trace.nodes["noise"]
                    noise = site["value"]
                    prior = net.priors(x.dtype, x.device)["noise"]
                    kl = kl + site["fn"].log_prob(noise) - prior.log_prob(noise)
                else:
                    noise = net.noise
            log_lik = observation_log_prob(net.task, h, noise, obs).sum() * (self.data_size / obs.shape[0])
            total = total + kl - log_lik
        return total / self.num_particles
