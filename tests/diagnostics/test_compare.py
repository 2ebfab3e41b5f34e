"""compare(): one table across fits, by PSIS-LOO and by log evidence."""

import math
import warnings

import matplotlib
import pyro
import pyro.distributions as dist
import pytest
import torch

import probmodels as pm
from probmodels import ConvergenceWarning, DataError, ModelSpecError, ShapeError
from probmodels.diagnostics import compare, plot_compare
from probmodels.diagnostics.compare import COLUMNS

matplotlib.use("Agg")


def regression(x, y):
    beta = pyro.sample("beta", dist.Normal(0.0, 5.0).expand([x.shape[1]]).to_event(1))
    sigma = pyro.sample("sigma", dist.HalfNormal(5.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", dist.Normal(x @ beta, sigma), obs=y)


def first_predictor_only(x, y):
    regression(x[:, :1], y)


def location(y):
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    with pyro.plate("data", y.shape[0]):
        pyro.sample("y", dist.Normal(mu, 1.0), obs=y)


def mcmc(model, *args, samples=300):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return pm.fit_mcmc(model, *args, num_chains=2, num_warmup=samples, num_samples=samples, seed=1, progress_bar=False)


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 2, generator=g)
    return x, x @ torch.tensor([1.0, -1.5]) + 0.7 * torch.randn(60, generator=g)


@pytest.fixture(scope="module")
def table(data):
    fits = {"misspecified": mcmc(first_predictor_only, *data), "correct": mcmc(regression, *data)}
    return compare(fits)


def test_ranks_the_correct_model_first_by_elpd_and_by_evidence(table):
    assert list(table.index) == ["correct", "misspecified"]
    assert table.loc["correct", "d_elpd_loo"] == 0.0 and table.loc["misspecified", "d_elpd_loo"] > 2 * table.loc["misspecified", "d_se"]
    assert table.loc["correct", "weight"] > 0.9
    assert table.loc["correct", "log_evidence"] > table.loc["misspecified", "log_evidence"]
    assert table.loc["correct", "log_bayes_factor"] == 0.0 and table.loc["correct", "log_bayes_factor_se"] == 0.0
    log_bf = table.loc["misspecified", "log_bayes_factor"]
    assert log_bf < -10 and log_bf == pytest.approx(table["log_evidence"].diff().iloc[-1])
    expected_se = math.hypot(*table["log_evidence_se"])
    assert table.loc["misspecified", "log_bayes_factor_se"] == pytest.approx(expected_se)


def test_table_has_the_documented_columns(table):
    assert tuple(table.columns) == COLUMNS
    assert (table["p_loo"] > 0).all() and (table["max_pareto_k"] < 0.7).all()
    assert table["weight"].sum() == pytest.approx(1.0)
    assert (table["notes"] == "log evidence by bridge").all()
    assert (table["max_rhat"] < 1.05).all() and (table["min_ess_bulk"] > 50).all()
    assert table["ksd_p_value"].between(0.0, 1.0).all()
    for name, entry in table["warnings"].items():  # short chains: R-hat and the KSD may fire, nothing else
        assert all(item.startswith(("R-hat", "KSD")) for item in entry.split("; ") if item), entry
        assert ("KSD p-value" in entry) == (table.loc[name, "ksd_p_value"] < 0.01)


def test_fits_without_evidence_get_a_note(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        svi = pm.fit_svi(regression, *data, num_steps=200, num_samples=200, progress_bar=False)
    nuts = mcmc(regression, *data, samples=150)
    result = compare({"nuts": nuts, "svi": svi})
    assert math.isnan(result.loc["svi", "log_evidence"]) and "no log evidence" in result.loc["svi", "notes"]
    assert math.isfinite(result.loc["nuts", "log_evidence"])
    without = compare({"nuts": nuts, "svi": svi}, evidence=None)
    assert without["log_evidence"].isna().all() and (without["notes"] == "evidence not requested").all()
    assert result["ksd_p_value"].notna().all()


def test_mismatched_observations_raise():
    y = torch.randn(20, generator=torch.Generator().manual_seed(1))
    base = mcmc(location, y, samples=100)
    with pytest.raises(ShapeError, match="different numbers of observations"):
        compare({"twenty": base, "ten": mcmc(location, y[:10], samples=100)})
    with pytest.raises(DataError, match="'twenty' and 'shifted'"):
        compare({"twenty": base, "shifted": mcmc(location, y + 1.0, samples=100)})
    with pytest.raises(ModelSpecError, match="at least two"):
        compare({"twenty": base})
    with pytest.raises(ModelSpecError, match="evidence"):
        compare({"a": base, "b": base}, evidence="harmonic")
    with pytest.raises(ModelSpecError, match="lower bound"):
        compare({"a": base, "b": base}, evidence="elbo")
    with pytest.raises(TypeError):
        compare([base, base])


def test_plot_compare(table):
    axes = plot_compare(table)
    assert len(axes) == 2 and axes[0].get_title().startswith("elpd_loo")
    assert [t.get_text() for t in axes[0].get_yticklabels()] == ["correct", "misspecified"]
    with pytest.raises(ModelSpecError, match="lacks the column"):
        plot_compare(table[["elpd_loo"]])
    import matplotlib.pyplot as plt

    plt.close("all")
