"""report(): every diagnostic of a fit in one call, as text and as a self-contained HTML page."""

import warnings

import pyro
import pyro.distributions as dist
import pytest
import torch

import probmodels as pm
from probmodels import ConvergenceWarning
from probmodels.cli import main
from probmodels.diagnostics import Report, report

SECTIONS = ("Convergence (ArviZ summary", "Convergence checks", "Sampler", "LOO (PSIS)", "Complexity", "Evidence", "Stein", "Warnings")


def regression(x, y):
    beta = pyro.sample("beta", dist.Normal(0.0, 5.0).expand([x.shape[1]]).to_event(1))
    sigma = pyro.sample("sigma", dist.HalfNormal(5.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", dist.Normal(x @ beta, sigma), obs=y)


@pytest.fixture(scope="module")
def fit():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 2, generator=g)
    y = x @ torch.tensor([1.0, -1.5]) + 0.7 * torch.randn(50, generator=g)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return pm.fit_mcmc(regression, x, y, num_chains=2, num_warmup=200, num_samples=200, seed=1, progress_bar=False)


@pytest.fixture(scope="module")
def result(fit):
    return report(fit)


def test_text_has_every_section(result):
    assert isinstance(result, Report)
    text = str(result)
    for section in SECTIONS:
        assert f"== {section}" in text, section
    for token in ("ess_bulk", "ess_tail", "r_hat", "divergences: 0 of 400", "tree depth saturated", "E-BFMI per chain",
                  "elpd_loo", "p_loo", "Pareto k-hat", "p_waic", "DIC p_D", "p_V", "free parameters 3",
                  "log evidence (bridge)", "Stein check", "KSD p-value"):
        assert token in text, token
    assert list(result.summary.index) == ["beta[0]", "beta[1]", "sigma"]
    assert result.bfmi.shape == (2,) and result.evidence.method == "bridge" and result.ksd.num_draws == 400
    assert not result.unavailable


def test_to_html_writes_a_self_contained_page(result, tmp_path):
    path = result.to_html(tmp_path / "report.html")
    page = path.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("<table") == 1
    assert "ess_bulk" in page and "<h2>Sampler</h2>" in page and "elpd_loo" in page
    assert 'src="data:image/png;base64,' in page
    assert "http" not in page.replace("http-equiv", "")  # no external assets
    plain = result.to_html(tmp_path / "plain.html", trace_plot=False).read_text()
    assert "base64" not in plain


def test_loaded_fit_reports_evidence_and_stein_as_unavailable(fit, tmp_path):
    loaded = report(pm.load(fit.save(tmp_path / "fit.nc")))
    text = str(loaded)
    assert "== Unavailable ==" in text and "no model attached" in text
    assert loaded.evidence is None and loaded.stein is None and loaded.ksd is None
    assert set(loaded.unavailable) == {"evidence", "Stein check and KSD"}
    assert "elpd_loo" in text and "free parameters n/a" in text


def test_sections_can_be_skipped(fit):
    quick = report(fit, evidence=False, stein=False)
    assert quick.evidence is None and quick.stein is None
    assert "not requested (evidence=False)" in str(quick) and "not requested (stein=False)" in str(quick)
    with pytest.raises(TypeError, match="Posterior"):
        report({"beta": torch.zeros(2, 10)})


def test_diagnose_prints_the_report_and_writes_html(fit, tmp_path, capsys):
    path = fit.save(tmp_path / "fit.nc")
    html = tmp_path / "fit.html"
    assert main(["diagnose", str(path), "--html", str(html)]) == 0
    out = capsys.readouterr().out
    for token in ("ess_bulk", "ess_tail", "r_hat", "divergences", "elpd_loo", "p_loo", "Unavailable", "HTML report written"):
        assert token in out, token
    assert html.is_file() and "<table" in html.read_text()


def test_svi_fit_uses_importance_sampling(fit):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        svi = pm.fit_svi(regression, *fit.model_args, num_steps=300, num_samples=300, progress_bar=False)
    result = report(svi)
    assert result.bfmi is None and result.evidence.method == "importance"
    assert "log evidence (importance)" in str(result) and "E-BFMI" not in str(result)
