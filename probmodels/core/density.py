"""The log density of a Pyro model in unconstrained space, for a batch of points at once.

The sampler and the Stein diagnostics see a model only through
:class:`LogDensity`: a map from unconstrained points ``u`` of shape
``(batch, dim)`` to log densities of shape ``(batch,)`` with the
log-Jacobians of the constraining transforms included, and its gradient.

A batch is evaluated in one call of the model, in one of three ways chosen
once, at construction, by checking each against plain one-point evaluation:

``"plate"``
    the model runs once inside a ``pyro.plate`` of size ``batch`` left of
    its own plates (fast; needs a model written with plates, as Pyro's
    vectorised ELBO and ``Predictive(parallel=True)`` do);
``"vmap"``
    ``torch.func.vmap`` over one-point evaluation (any model whose code
    ``vmap`` can trace);
``"loop"``
    one call per point (always works, slowest).

:meth:`LogDensity.pure_value_and_grad` is the same map written with
``torch.func`` so that the sampler can trace it, with its own bookkeeping,
into one graph (see :class:`~probmodels.core.nuts.NUTSKernel`).
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Iterator, Mapping, Sequence

import pyro
import pyro.poutine as poutine
import torch
from pyro.distributions.util import scale_and_mask
from torch.distributions import Distribution

from ..exceptions import ModelSpecError
from .protocol import ModelInfo

__all__ = ["LogDensity", "FunctionDensity", "batch_plate", "without_validation", "VECTORIZE_MODES"]

VECTORIZE_MODES = ("auto", "plate", "vmap", "loop")
_BATCH_PLATE = "_probmodels_batch"


@contextlib.contextmanager
def without_validation() -> Iterator[None]:
    """Switch off Pyro's and torch's argument validation (a hot-loop cost) for a block."""
    previous = Distribution._validate_args
    Distribution.set_default_validate_args(False)
    try:
        with pyro.validation_enabled(False):
            yield
    finally:
        Distribution.set_default_validate_args(previous)


def batch_plate(size: int, max_plate_nesting: int) -> pyro.plate:
    """The plate that holds a batch of chains or draws, left of the model's own plates."""
    return pyro.plate(_BATCH_PLATE, size, dim=-(max_plate_nesting + 1))


def plate_shape(site_batch_shape: torch.Size, event_shape: Sequence[int], batch: int, max_plate_nesting: int) -> tuple[int, ...]:
    """Shape a batched value takes inside :func:`batch_plate`: (batch, 1, .., 1, *batch_shape, *event)."""
    pad = max_plate_nesting - len(site_batch_shape)
    return (batch,) + (1,) * pad + tuple(site_batch_shape) + tuple(event_shape)


class LogDensity:
    """Unnormalised log posterior density of a Pyro model in unconstrained space.

    Parameters
    ----------
    model
        The Pyro program.
    args, kwargs
        Its arguments (the data).
    info
        The model's description from :func:`~probmodels.core.protocol.inspect_model`.
    vectorize
        ``"auto"`` (default) tries ``"plate"``, then ``"vmap"``, then falls back
        to ``"loop"``; the first whose result equals one-point evaluation at a
        probe point wins.
    probe
        Unconstrained points, shape ``(n, dim)`` with ``n >= 2``, used to check
        the vectorised modes in ``"auto"``.
    """

    def __init__(
        self,
        model: Callable[..., Any],
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        info: ModelInfo,
        *,
        vectorize: str = "auto",
        probe: torch.Tensor | None = None,
    ) -> None:
        if vectorize not in VECTORIZE_MODES:
            raise ValueError(f"vectorize must be one of {VECTORIZE_MODES}, got {vectorize!r}.")
        self.model = model
        self.args = tuple(args)
        self.kwargs = dict(kwargs)
        self.info = info
        self.dim = info.dim
        offsets = [0]
        for site in info.latents:
            offsets.append(offsets[-1] + site.size)
        self._slices = {site.name: slice(offsets[i], offsets[i + 1]) for i, site in enumerate(info.latents)}
        self.mode = vectorize if vectorize != "auto" else self._choose_mode(probe)

    # ------------------------------------------------------------------ values
    def constrain(self, u: torch.Tensor) -> dict[str, torch.Tensor]:
        """Constrained site values, each shaped ``(batch, *site.shape)``."""
        values, _ = self._constrain_with_jacobian(u)
        return values

    def unconstrain(self, values: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Inverse of :meth:`constrain`: values shaped ``(batch, *shape)`` to ``(batch, dim)``."""
        parts = []
        for site in self.info.latents:
            value = values[site.name]
            batch = value.shape[0]
            parts.append(site.transform.inv(value).reshape(batch, site.size))
        return torch.cat(parts, dim=-1)

    def _constrain_with_jacobian(self, u: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        batch = u.shape[0]
        values: dict[str, torch.Tensor] = {}
        log_jacobian = u.new_zeros(batch)
        for site in self.info.latents:
            x = u[:, self._slices[site.name]].reshape((batch,) + tuple(site.unconstrained_shape))
            y = site.transform(x)
            ladj = site.transform.log_abs_det_jacobian(x, y)
            log_jacobian = log_jacobian + ladj.reshape(batch, -1).sum(-1)
            values[site.name] = y
        return values, log_jacobian

    # --------------------------------------------------------------- densities
    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        """Log density (with log-Jacobians) at each row of ``u``; shape ``(batch,)``."""
        if self.mode == "plate":
            return self._plate(u)
        if self.mode == "vmap":
            return torch.func.vmap(self._one)(u)
        return torch.stack([self._one(row) for row in u])

    def value_and_grad(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log density and its gradient at each row of ``u``.

        A row whose density is NaN or raises comes back as ``-inf`` with a zero
        gradient, so a sampler can treat it as a rejected (divergent) proposal.
        """
        try:
            return self._value_and_grad(u)
        except Exception:
            if u.shape[0] == 1:
                return u.new_full((1,), -math.inf), torch.zeros_like(u)
            rows = [self.value_and_grad(u[i : i + 1]) for i in range(u.shape[0])]
            return torch.cat([r[0] for r in rows]), torch.cat([r[1] for r in rows])

    def _value_and_grad(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return autograd_value_and_grad(self, u)

    def pure_value_and_grad(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`value_and_grad` without exception handling, written with ``torch.func``
        so that it can be traced into a graph."""
        return functional_value_and_grad(self, u)

    def site_log_probs(self, u: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-site summed log-probabilities at one point ``u`` of shape ``(dim,)`` (for error messages)."""
        values, _ = self._constrain_with_jacobian(u.unsqueeze(0))
        values = {k: v[0] for k, v in values.items()}
        trace = poutine.trace(poutine.condition(self.model, values)).get_trace(*self.args, **self.kwargs)
        trace.compute_log_prob()
        return {
            name: site["log_prob"].sum().detach()
            for name, site in trace.nodes.items()
            if site["type"] == "sample" and "log_prob" in site
        }

    def _one(self, u: torch.Tensor) -> torch.Tensor:
        values, log_jacobian = self._constrain_with_jacobian(u.unsqueeze(0))
        values = {k: v[0] for k, v in values.items()}
        trace = poutine.trace(poutine.condition(self.model, values)).get_trace(*self.args, **self.kwargs)
        return trace.log_prob_sum() + log_jacobian[0]

    def _plate(self, u: torch.Tensor) -> torch.Tensor:
        batch = u.shape[0]
        nesting = self.info.max_plate_nesting
        values, log_jacobian = self._constrain_with_jacobian(u)
        shaped = {
            site.name: values[site.name].reshape(
                plate_shape(site.batch_shape, site.shape[len(site.batch_shape) :], batch, nesting)
            )
            for site in self.info.latents
        }
        with batch_plate(batch, nesting):
            trace = poutine.trace(poutine.condition(self.model, shaped)).get_trace(*self.args, **self.kwargs)
        total = log_jacobian
        for site in trace.nodes.values():
            if site["type"] != "sample" or site["infer"].get("_deterministic"):
                continue  # a deterministic site's Delta log-prob is 0 by construction
            log_prob = site["fn"].log_prob(site["value"])
            log_prob = scale_and_mask(log_prob, site["scale"], site["mask"])
            if isinstance(log_prob, torch.Tensor) and log_prob.dim() > 0:
                if log_prob.dim() != nesting + 1 or log_prob.shape[0] not in (1, batch):
                    raise ValueError(f"site {site['name']!r} has log-prob shape {tuple(log_prob.shape)} in the batch plate")
                log_prob = log_prob.expand((batch,) + log_prob.shape[1:]).reshape(batch, -1).sum(-1)
            total = total + log_prob
        return total

    def _choose_mode(self, probe: torch.Tensor | None) -> str:
        if probe is None or probe.shape[0] < 2:
            return "loop"
        with torch.no_grad():
            reference = torch.stack([self._one(row) for row in probe])
            tol = 1e-8 if probe.dtype == torch.float64 else 1e-4
            for mode, fn in (("plate", self._plate), ("vmap", torch.func.vmap(self._one))):
                try:
                    got = fn(probe)
                except Exception:
                    continue
                if got.shape == reference.shape and torch.allclose(got, reference, rtol=tol, atol=tol, equal_nan=True):
                    return mode
        return "loop"



def _finite_or_rejected(logp: torch.Tensor, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows with a non-finite log density or gradient become ``-inf`` with a zero gradient."""
    bad = ~torch.isfinite(logp) | ~torch.isfinite(grad).all(-1)
    return torch.where(bad, torch.full_like(logp, -math.inf), logp), torch.where(bad.unsqueeze(-1), torch.zeros_like(grad), grad)


def autograd_value_and_grad(fn: Callable[[torch.Tensor], torch.Tensor], u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A batched log density and its gradient by reverse-mode autograd, non-finite rows rejected."""
    with torch.enable_grad():
        x = u.detach().requires_grad_(True)
        logp = fn(x)
        (grad,) = torch.autograd.grad(logp.sum(), x)
    return _finite_or_rejected(logp.detach(), grad)


def functional_value_and_grad(fn: Callable[[torch.Tensor], torch.Tensor], u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """As :func:`autograd_value_and_grad`, with ``torch.func.grad`` (traceable by ``make_fx``)."""

    def total(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logp = fn(z)
        return logp.sum(), logp

    grad, logp = torch.func.grad(total, has_aux=True)(u)
    return _finite_or_rejected(logp, grad)


class FunctionDensity:
    """A user's batched log density ``fn(u: (batch, dim)) -> (batch,)`` with autograd gradients.

    Non-finite values and exceptions become ``-inf`` with a zero gradient, as
    for :class:`LogDensity`: when the batch raises, its rows are evaluated one
    at a time, so only the rows that raise are rejected.
    """

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.fn = fn

    def value_and_grad(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log density and gradient at each row of ``u``."""
        try:
            logp, grad = autograd_value_and_grad(self.fn, u)
        except Exception:
            if u.shape[0] == 1:
                return u.new_full((1,), -math.inf), torch.zeros_like(u)
            rows = [self.value_and_grad(u[i : i + 1]) for i in range(u.shape[0])]
            return torch.cat([r[0] for r in rows]), torch.cat([r[1] for r in rows])
        if logp.shape != u.shape[:1]:
            raise ModelSpecError(f"the log density returned shape {tuple(logp.shape)}; expected ({u.shape[0]},), one value per row.")
        return logp, grad

    def pure_value_and_grad(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`value_and_grad` without exception handling, traceable into a graph."""
        return functional_value_and_grad(self.fn, u)
