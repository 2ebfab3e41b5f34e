"""Small data sets shipped with probmodels (no download needed)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .bn import DiscreteBayesianNetwork

__all__ = ["eight_schools", "asia"]


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


def asia(dtype: torch.dtype = torch.float64) -> DiscreteBayesianNetwork:
    """The Asia ("chest clinic") network (Lauritzen and Spiegelhalter 1988), as in bnlearn.

    Eight yes/no variables: a visit to Asia raises the risk of tuberculosis,
    smoking the risks of lung cancer and bronchitis; ``either`` (tuberculosis
    or lung cancer) shows on the X-ray, and it or bronchitis causes
    dyspnoea. States are ``("yes", "no")`` in that order.

    Returns
    -------
    DiscreteBayesianNetwork
    """
    from .bn import DiscreteBayesianNetwork

    yes_no = ("yes", "no")
    return DiscreteBayesianNetwork(
        cpds={
            "asia": ((), yes_no, [0.01, 0.99]),
            "tub": (("asia",), yes_no, [[0.05, 0.95], [0.01, 0.99]]),
            "smoke": ((), yes_no, [0.5, 0.5]),
            "lung": (("smoke",), yes_no, [[0.1, 0.9], [0.01, 0.99]]),
            "bronc": (("smoke",), yes_no, [[0.6, 0.4], [0.3, 0.7]]),
            "either": (("lung", "tub"), yes_no, [[[1.0, 0.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]]]),
            "xray": (("either",), yes_no, [[0.98, 0.02], [0.05, 0.95]]),
            "dysp": (("bronc", "either"), yes_no, [[[0.9, 0.1], [0.8, 0.2]], [[0.7, 0.3], [0.1, 0.9]]]),
        },
        dtype=dtype,
    )
