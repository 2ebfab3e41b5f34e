"""One call for everything probmodels can say about a fit, as text or a self-contained HTML page.

:func:`report` gathers the convergence table (ArviZ summary of the latent
sites), the sampler's divergences, tree-depth saturation and E-BFMI, PSIS-LOO
with its Pareto k-hat counts, the effective complexity, the log evidence and
the Stein sample-quality checks. What a fit cannot provide (a posterior
loaded from a file has no model, so no evidence and no Stein check) is listed
as unavailable with the reason, never left out silently.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np
import pandas as pd

from .._validation import check_positive_int
from ..core.posterior import Posterior
from ..exceptions import ConvergenceWarning, ProbModelsError
from .arviz import bfmi, summary, to_arviz
from .complexity import Complexity, complexity
from .convergence import ConvergenceReport, check_convergence
from .evidence import PARETO_K_WARN, EvidenceEstimate, log_evidence
from .ksd import KSD_ALPHA, KSDResult, thinned_ksd
from .stein import SteinCheck, stein_check

__all__ = ["Report", "report"]

T = TypeVar("T")
BFMI_WARN = 0.3
_K_BINS = ((-math.inf, 0.5, "good"), (0.5, PARETO_K_WARN, "ok"), (PARETO_K_WARN, 1.0, "bad"), (1.0, math.inf, "very bad"))


@dataclass
class Report:
    """Diagnostics of one fit; ``str(report)`` is the readable text, :meth:`to_html` a web page.

    Attributes
    ----------
    title : str
        The posterior's description.
    summary : pandas.DataFrame
        ArviZ summary (mean, sd, HDI, MCSE, ess_bulk, ess_tail, r_hat) of the latent sites.
    convergence : ConvergenceReport
        Divergences, R-hat, ESS and tree-depth saturation.
    bfmi : numpy.ndarray or None
        E-BFMI per chain (None without an ``energy`` statistic, e.g. SVI).
    complexity : Complexity or None
        PSIS-LOO, WAIC, DIC and free parameters.
    evidence : EvidenceEstimate or None
        Log evidence (bridge sampling for MCMC, importance sampling for SVI).
    stein : SteinCheck or None
        Stein's-identity z-scores.
    ksd : KSDResult or None
        Kernel Stein discrepancy with its bootstrap p-value.
    unavailable : dict of str to str
        Section -> why it could not be computed (or was not asked for).
    messages : list of str
        Every convergence warning raised while checking the fit (they are
        collected here rather than re-raised).
    fit : Posterior or None
        The posterior reported on, kept for the trace plot of :meth:`to_html`.
    """

    title: str
    summary: pd.DataFrame
    convergence: ConvergenceReport
    bfmi: np.ndarray | None
    complexity: Complexity | None
    evidence: EvidenceEstimate | None
    stein: SteinCheck | None
    ksd: KSDResult | None
    unavailable: dict[str, str] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    fit: Posterior | None = field(default=None, repr=False)

    def sections(self) -> list[tuple[str, str | pd.DataFrame]]:
        """The report as ``(heading, text or table)`` pairs, in order."""
        c = self.convergence
        checks = [f"max R-hat {c.max_rhat:.3f}", f"min ess_bulk {c.min_ess_bulk:.0f}", f"min ess_tail {c.min_ess_tail:.0f}"]
        if self.stein is not None:
            checks.append(f"Stein check {'PASS' if self.stein.passed else 'FAIL'} (max |z| {self.stein.max_abs_z:.2f})")
        if self.ksd is not None:
            checks.append(f"KSD p-value {self.ksd.p_value:.3f}")
        total = c.num_chains * c.num_draws
        sampler = [f"divergences: {c.num_divergent} of {total}", f"tree depth saturated: {c.num_max_tree_depth} of {total}"]
        if self.bfmi is not None:
            sampler.append("E-BFMI per chain: " + ", ".join(f"{v:.2f}" for v in self.bfmi))
        out: list[tuple[str, str | pd.DataFrame]] = [
            ("Convergence (ArviZ summary of the latent sites)", self.summary),
            ("Convergence checks", "   ".join(checks)),
            ("Sampler", "   ".join(sampler)),
        ]
        if self.complexity is not None:
            out.append(("LOO (PSIS)", _loo_text(self.complexity)))
            out.append(("Complexity", str(self.complexity)))
        if self.evidence is not None:
            e = self.evidence
            se = "n/a" if math.isnan(e.standard_error) else f"{e.standard_error:.3g}"
            out.append(("Evidence", f"log evidence ({e.method}): {e.log_evidence:.3f} ± {se}\n" + "\n".join(e.notes)))
        if self.stein is not None:
            text = str(self.stein)
            if self.ksd is not None:
                k = self.ksd
                text += f"\nKSD ({k.kernel}): {k.ksd:.4g}, bootstrap p-value {k.p_value:.3f} ({k.num_draws} draws)"
            out.append(("Stein", text))
        if self.unavailable:
            out.append(("Unavailable", "\n".join(f"{name}: {why}" for name, why in self.unavailable.items())))
        out.append(("Warnings", "\n".join(f"- {m}" for m in self.messages) if self.messages else "none"))
        return out

    def __str__(self) -> str:
        parts = [self.title]
        for heading, body in self.sections():
            text = body.to_string() if isinstance(body, pd.DataFrame) else body
            parts.append(f"\n== {heading} ==\n{text}")
        return "\n".join(parts)

    def to_html(self, path: str | os.PathLike, *, trace_plot: bool = True) -> Path:
        """Write the report as one self-contained HTML page (no external assets).

        Parameters
        ----------
        path
            Where to write the page.
        trace_plot
            Embed a trace plot of the latent sites (matplotlib) as a base64 PNG.

        Returns
        -------
        pathlib.Path
            ``path``.
        """
        body = [f"<h1>probmodels report</h1><p><code>{html.escape(self.title)}</code></p>"]
        for heading, content in self.sections():
            body.append(f"<h2>{html.escape(heading)}</h2>")
            if isinstance(content, pd.DataFrame):
                body.append(content.to_html(float_format=lambda v: f"{v:.4g}", border=0))
            else:
                body.append(f"<pre>{html.escape(content)}</pre>")
        if trace_plot and self.fit is not None:
            body.append(f'<h2>Trace plot</h2><img alt="trace plot" src="data:image/png;base64,{_trace_png(self.fit)}">')
        style = (
            "body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
            "td,th{padding:2px 8px;text-align:right;border-bottom:1px solid #ddd}pre{background:#f6f6f6;padding:8px}"
        )
        page = (
            f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>probmodels report</title><style>{style}</style>"
            f"</head><body>\n{''.join(body)}\n</body></html>\n"
        )
        path = Path(path)
        path.write_text(page, encoding="utf-8")
        return path


def report(fit: Posterior, *, evidence: bool = True, stein: bool = True, max_ksd_draws: int = 1000) -> Report:
    """Diagnose a fit in one call.

    Parameters
    ----------
    fit
        A posterior from :func:`~probmodels.fit_mcmc` or
        :func:`~probmodels.fit_svi`, or loaded from a file (then evidence
        and the Stein checks are unavailable: they need the model).
    evidence
        Estimate the log evidence (bridge sampling for MCMC, importance
        sampling for SVI; see :func:`~probmodels.diagnostics.evidence.log_evidence`).
    stein
        Run :func:`~probmodels.diagnostics.stein.stein_check` and
        :func:`~probmodels.diagnostics.ksd.ksd` (the latter on at most
        ``max_ksd_draws`` draws, thinned evenly within each chain).
    max_ksd_draws
        Cap on the draws the KSD's quadratic-cost statistic uses.

    Returns
    -------
    Report
        ``str(result)`` is the text report; ``result.to_html(path)`` writes a page.

    Raises
    ------
    TypeError
        ``fit`` is not a Posterior, or ``max_ksd_draws`` not an integer.
    ModelSpecError
        ``max_ksd_draws`` is below 1.

    Examples
    --------
    >>> import pyro, pyro.distributions as dist, torch
    >>> import probmodels as pm
    >>> def model(y=None):
    ...     mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
    ...     with pyro.plate("data", 20):
    ...         pyro.sample("y", dist.Normal(mu, 1.0), obs=y)
    >>> y = torch.linspace(1.0, 3.0, 20, dtype=torch.float64)
    >>> fit = pm.fit_mcmc(model, model_kwargs={"y": y}, num_chains=2, num_warmup=100,
    ...                   num_samples=100, compile="none", progress_bar=False)
    >>> from probmodels.diagnostics import report
    >>> result = report(fit, stein=False)
    >>> [title for title, _ in result.sections()]  # doctest: +NORMALIZE_WHITESPACE
    ['Convergence (ArviZ summary of the latent sites)', 'Convergence checks', 'Sampler',
     'LOO (PSIS)', 'Complexity', 'Evidence', 'Unavailable', 'Warnings']
    """
    if not isinstance(fit, Posterior):
        raise TypeError(f"fit must be a probmodels Posterior (from fit_mcmc, fit_svi or load), got {type(fit).__name__}.")
    max_ksd_draws = check_positive_int(max_ksd_draws, "max_ksd_draws")
    unavailable: dict[str, str] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        latents = [site.name for site in fit.info.latents] if fit.info is not None else None
        idata = to_arviz(fit, log_likelihood=False)
        table = summary(idata, var_names=latents)
        convergence = check_convergence(fit)
        chain_bfmi = np.asarray(bfmi(idata)) if "energy" in fit.sample_stats else None
        fit_complexity = _attempt(lambda: complexity(fit), "LOO and complexity", unavailable)
        no_model = "no model attached (a posterior loaded from a file); refit, or pass a Posterior that keeps its model."
        estimate = scores = discrepancy = None
        if not evidence:
            unavailable["evidence"] = "not requested (evidence=False)."
        elif fit.model is None:
            unavailable["evidence"] = no_model
        else:
            method = "importance" if fit.method.startswith("svi") else "bridge"
            estimate = _attempt(lambda: log_evidence(fit, method), "evidence", unavailable)
        if not stein:
            unavailable["Stein check and KSD"] = "not requested (stein=False)."
        elif fit.model is None:
            unavailable["Stein check and KSD"] = no_model
        else:
            scores = _attempt(lambda: stein_check(fit), "Stein check", unavailable)
            discrepancy = _attempt(lambda: thinned_ksd(fit, max_ksd_draws), "KSD", unavailable)
    messages = list(convergence.messages)
    others: set[tuple[type, str]] = set()
    for caught_warning in caught:
        text = str(caught_warning.message)
        if issubclass(caught_warning.category, ConvergenceWarning):
            if text not in messages:
                messages.append(text)
        elif (caught_warning.category, text) not in others:
            others.add((caught_warning.category, text))
            warnings.warn(text, caught_warning.category, stacklevel=2)
    if chain_bfmi is not None and (chain_bfmi < BFMI_WARN).any():
        messages.append(
            f"E-BFMI below {BFMI_WARN} in chain(s) {np.flatnonzero(chain_bfmi < BFMI_WARN).tolist()}: the momentum "
            "resampling explores the energy poorly; reparameterise (e.g. non-centred hierarchies)."
        )
    if scores is not None and not scores.passed:
        messages.append(
            f"Stein check failed (max |z| {scores.max_abs_z:.1f} >= {scores.threshold:.1f}): the draws do not follow the "
            "model's posterior; see the Stein section for the coordinates."
        )
    if discrepancy is not None and discrepancy.p_value < KSD_ALPHA:
        messages.append(f"KSD bootstrap p-value {discrepancy.p_value:.3f} < {KSD_ALPHA}: the draws do not follow the model's posterior.")
    return Report(
        repr(fit), table, convergence, chain_bfmi, fit_complexity, estimate, scores, discrepancy, unavailable, messages, fit
    )


def _attempt(compute: Callable[[], T], name: str, unavailable: dict[str, str]) -> T | None:
    """``compute()``, or None with the reason recorded when probmodels refuses it."""
    try:
        return compute()
    except ProbModelsError as error:
        unavailable[name] = str(error)
        return None


def _loo_text(c: Complexity) -> str:
    lines = [f"elpd_loo {c.elpd_loo:.2f} (se {c.se_loo:.2f})   p_loo {c.p_loo:.2f}", "Pareto k-hat:"]
    for low, high, label in _K_BINS:
        count = int(((c.pareto_k > low) & (c.pareto_k <= high)).sum())
        interval = f"({low:g}, {high:g}]"
        lines.append(f"  {interval:<13} {label:<9} {count:>6}  {100.0 * count / c.pareto_k.size:5.1f}%")
    return "\n".join(lines)


def _trace_png(fit: Posterior, max_coordinates: int = 8) -> str:
    """Base64 PNG of the draws per chain of up to ``max_coordinates`` scalar coordinates."""
    from matplotlib.figure import Figure

    names = [site.name for site in fit.info.latents] if fit.info is not None else list(fit.draws)
    series = []
    for name in names:
        values = fit[name].detach().cpu().double().reshape(fit.num_chains, fit.num_draws, -1).numpy()
        series += [(f"{name}[{j}]" if values.shape[-1] > 1 else name, values[..., j]) for j in range(values.shape[-1])]
    series = series[:max_coordinates]
    figure = Figure(figsize=(9, 1.6 * len(series) + 0.5), layout="constrained")
    for i, (label, values) in enumerate(series):
        axis = figure.add_subplot(len(series), 1, i + 1)
        for chain in values:
            axis.plot(chain, linewidth=0.5)
        axis.set_ylabel(label)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    return base64.b64encode(buffer.getvalue()).decode("ascii")
