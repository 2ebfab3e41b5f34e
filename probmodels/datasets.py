"""Small data sets shipped with probmodels (no download needed)."""

from __future__ import annotations

import torch

__all__ = ["eight_schools"]


def eight_schools(dtype: torch.dtype = torch.float64) -> dict[str, torch.Tensor]:
    """The eight schools data (Rubin 1981; Gelman et al., *Bayesian Data Analysis*, section 5.5).

    Estimated effects of SAT coaching programmes in eight schools and their
    standard errors.

    Returns
    -------
    dict
        ``{"y": effects, "sigma": standard errors}``, each of shape ``(8,)``.
    """
    return {
        "y": torch.tensor([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0], dtype=dtype),
        "sigma": torch.tensor([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0], dtype=dtype),
    }
