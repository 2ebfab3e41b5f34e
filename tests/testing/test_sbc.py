"""probmodels.testing.sbc: the ECDF band holds its level on uniform ranks and
flags posteriors that are too narrow, too wide or shifted."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

from probmodels import ShapeError
from probmodels.testing import ecdf_band, plot_sbc, rank_statistics, sbc_from_draws, simulation_based_calibration

N, L = 200, 99


def test_band_false_alarm_rate_is_alpha_within_monte_carlo_error():
    lower, upper = ecdf_band(N, L, 0.05, seed=1)
    rng = np.random.default_rng(5)
    trials = 2000
    ranks = rng.integers(0, L + 1, size=(trials, N))
    counts = np.stack([np.cumsum(np.bincount(r, minlength=L + 1))[:-1] for r in ranks])
    rate = ((counts < lower) | (counts > upper)).any(1).mean()
    se = np.sqrt(0.05 * 0.95 / trials)
    assert abs(rate - 0.05) < 4 * se, rate


def gaussian_case(scale, shift=0.0, seed=0):
    """Truth ~ N(m, 1) given data summarised by m; 'posterior' draws N(m + shift, scale^2)."""
    rng = np.random.default_rng(seed)
    m = rng.normal(size=(N, 2))
    truth = m + rng.normal(size=(N, 2))
    draws = m[:, None, :] + shift + scale * rng.normal(size=(N, L, 2))
    return truth, draws


@pytest.mark.parametrize("scale, shift, calibrated", [(1.0, 0.0, True), (0.7, 0.0, False), (1.4, 0.0, False), (1.0, 0.3, False)])
def test_flags_narrow_wide_and_shifted_posteriors(scale, shift, calibrated):
    truth, draws = gaussian_case(scale, shift)
    result = sbc_from_draws(truth, draws)
    assert result.passed is calibrated
    assert result.ranks.shape == (N, 2) and result.ranks.min() >= 0 and result.ranks.max() <= L
    table = result.to_pandas()
    assert list(table.index) == ["theta[0]", "theta[1]"] and (table["calibrated"] == calibrated).all()


def test_site_dicts_name_columns_and_the_driver_matches_the_batch_form():
    rng_truth = np.random.default_rng(3)
    m = rng_truth.normal(size=(50, 3))

    def simulate(rng):
        i = simulate.count
        simulate.count += 1
        return {"a": torch.tensor(m[i, 0] + rng.normal()), "b": torch.tensor(m[i, 1:] + rng.normal(size=2))}, i

    simulate.count = 0

    def infer(i, seed):
        draws = np.random.default_rng(seed).normal(size=(L, 3)) + m[i]
        return {"a": torch.tensor(draws[:, 0]), "b": torch.tensor(draws[:, 1:])}

    result = simulation_based_calibration(simulate, infer, num_simulations=50, seed=7)
    assert result.names == ("a", "b[0]", "b[1]")
    assert result.ranks.shape == (50, 3)
    assert result.alpha == pytest.approx(0.05 / 3)


def test_ties_are_broken_so_discrete_parameters_stay_uniform():
    truth = np.zeros((4, 1))
    draws = np.zeros((4, 9, 1))
    ranks = rank_statistics(truth, draws)
    assert ranks.min() >= 0 and ranks.max() <= 9 and len(set(ranks.ravel())) > 1


def test_bad_shapes_and_non_finite_draws_are_refused():
    with pytest.raises(ShapeError, match="truth must be"):
        rank_statistics(np.zeros((5, 2)), np.zeros((5, 10, 3)))
    with pytest.raises(ShapeError, match="must be finite"):
        rank_statistics(np.zeros((2, 1)), np.full((2, 3, 1), np.nan))
    with pytest.raises(ShapeError, match=r"draws\['a'\] has shape"):
        sbc_from_draws({"a": np.zeros(5)}, {"a": np.zeros((4, 10))})
    with pytest.raises(ShapeError, match="same sites"):
        sbc_from_draws({"a": np.zeros(5)}, {"b": np.zeros((5, 10))})


def test_plot_draws_band_and_ecdfs():
    result = sbc_from_draws(*gaussian_case(1.0))
    ax = plot_sbc(result)
    assert len(ax.lines) == 3 and ax.get_xlabel() == "fractional rank"
