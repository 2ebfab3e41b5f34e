"""Tools for validating inference: simulation-based calibration (:mod:`probmodels.testing.sbc`)."""

from .sbc import SBCResult, ecdf_band, plot_sbc, rank_statistics, sbc_from_draws, simulation_based_calibration

__all__ = ["SBCResult", "rank_statistics", "ecdf_band", "sbc_from_draws", "simulation_based_calibration", "plot_sbc"]
