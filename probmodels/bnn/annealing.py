"""KL annealing for network SVI: a warm-up of the weight on the ELBO's KL term.

The ELBO is ``E_q[log p(y | w)] + beta * E_q[log p(w) - log q(w)]`` with
``beta = 1``. Early in training the KL term of a wide network pulls every
weight to its prior before the likelihood has shaped the means (the
"over-pruning" of mean-field BNNs); a linear warm-up of ``beta`` from a small
value to 1 lets the likelihood act first (Bowman et al. 2016; Sønderby et al.
2016). :class:`KLAnnealing` holds ``beta`` and advances it from
:func:`probmodels.fit_svi`'s ``callback``; :meth:`KLAnnealing.model` scales
every latent (prior) sample site of the model, and :meth:`KLAnnealing.guide`
every site of the guide (with :func:`pyro.poutine.scale`), by the current
``beta``, read at every call. After the warm-up ``beta = 1`` and the loss is
the ordinary ELBO.
"""

from __future__ import annotations

from typing import Any, Callable

import pyro.poutine as poutine
from pyro.infer.autoguide import AutoLowRankMultivariateNormal, AutoNormal

from .._validation import check_positive_int
from ..core import Posterior, fit_svi
from ..exceptions import ModelSpecError

__all__ = ["KLAnnealing", "annealed_svi"]

_GUIDES = {"normal": AutoNormal, "lowrank": AutoLowRankMultivariateNormal}


class _ScaleLatents(poutine.messenger.Messenger):
    """Multiply the log density of every latent (unobserved) sample site by the schedule's current beta."""

    def __init__(self, schedule: "KLAnnealing") -> None:
        super().__init__()
        self.schedule = schedule

    def _pyro_sample(self, msg: dict) -> None:
        if not msg["is_observed"]:
            msg["scale"] = self.schedule.beta * msg["scale"]


class _AnnealedModel:
    """A network model whose prior sites are scaled by the schedule's beta; its attributes are the model's."""

    def __init__(self, model: Any, schedule: "KLAnnealing") -> None:
        self.base, self.schedule = model, schedule

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with _ScaleLatents(self.schedule):
            return self.base(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name in ("base", "schedule"):
            raise AttributeError(name)
        return getattr(self.base, name)


class KLAnnealing:
    """Linear KL warm-up ``beta(step) = start + (1 - start) * min(1, step / warmup_steps)``.

    Parameters
    ----------
    warmup_steps
        Steps until ``beta`` reaches 1.
    start
        ``beta`` of the first step, in (0, 1].

    Examples
    --------
    >>> schedule = KLAnnealing(100)
    >>> model, guide = schedule.model(network), schedule.guide(AutoNormal(network))  # doctest: +SKIP
    >>> fit_svi(model, x, y, guide=guide, callback=schedule)                        # doctest: +SKIP
    """

    def __init__(self, warmup_steps: int, start: float = 0.01) -> None:
        self.warmup_steps = check_positive_int(warmup_steps, "kl_annealing")
        if not (isinstance(start, (int, float)) and 0 < start <= 1):
            raise ModelSpecError(f"the KL annealing start weight must lie in (0, 1], got {start!r}.")
        self.start = float(start)
        self.beta = self.value(0)

    def value(self, step: int) -> float:
        """``beta`` used at optimisation step ``step`` (counted from 0)."""
        return self.start + (1.0 - self.start) * min(1.0, step / self.warmup_steps)

    def __call__(self, step: int, loss: float) -> bool:
        """:func:`probmodels.fit_svi` callback: after step ``step``, set ``beta`` for the next one (never stops the run)."""
        self.beta = self.value(step + 1)
        return False

    def model(self, model: Any) -> Any:
        """``model`` with its latent sites' log densities scaled by the current ``beta`` (the likelihood is not)."""
        return _AnnealedModel(model, self)

    def guide(self, guide: Callable[..., Any]) -> Callable[..., Any]:
        """``guide`` with every site's log density scaled by the current ``beta``."""

        def annealed_guide(*args: Any, **kwargs: Any) -> Any:
            with poutine.scale(scale=self.beta):
                return guide(*args, **kwargs)

        annealed_guide.__name__ = type(guide).__name__
        return annealed_guide


def annealed_svi(
    model: Any,
    *model_args: Any,
    warmup_steps: int,
    guide: str = "normal",
    rank: int | None = None,
    init_scale: float = 0.1,
    start: float = 0.01,
    callback: Callable[[int, float], bool | None] | None = None,
    **svi_options: Any,
) -> Posterior:
    """:func:`probmodels.fit_svi` with a linear KL warm-up over ``warmup_steps`` steps.

    Parameters
    ----------
    model, *model_args
        A network model (a Pyro program with ``observed``) and its data.
    warmup_steps, start
        The :class:`KLAnnealing` schedule.
    guide, rank, init_scale
        ``"normal"`` (mean-field) or ``"lowrank"``, its rank and initial scale.
    callback
        Also called after every step, after the schedule; returning True stops the run.
    **svi_options
        Further :func:`probmodels.fit_svi` arguments.

    Returns
    -------
    Posterior
        As :func:`probmodels.fit_svi`; its model is the annealed model, left at ``beta = 1``.
    """
    if guide not in _GUIDES:
        raise ModelSpecError(f"KL annealing needs guide 'normal' or 'lowrank', got {guide!r}.")
    schedule = KLAnnealing(warmup_steps, start)
    auto = _GUIDES[guide](model, rank=rank, init_scale=init_scale) if guide == "lowrank" else _GUIDES[guide](model, init_scale=init_scale)

    def step_callback(step: int, loss: float) -> bool:
        schedule(step, loss)
        return callback is not None and callback(step, loss) is True

    try:
        return fit_svi(schedule.model(model), *model_args, guide=schedule.guide(auto), callback=step_callback, **svi_options)
    finally:
        schedule.beta = 1.0
