"""Checks at the boundary of the library, with messages that say how to fix the input."""

from __future__ import annotations

import numbers
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from .exceptions import DataError, ModelSpecError

__all__ = [
    "check_positive_int",
    "check_non_negative_int",
    "check_probability",
    "check_finite_data",
    "as_tensor_data",
]


def check_positive_int(value: Any, name: str) -> int:
    """Return ``value`` as an int, raising when it is not an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= 1, got {value!r} of type {type(value).__name__}.")
    if value < 1:
        raise ModelSpecError(f"{name} must be >= 1, got {value}. Pass a positive count, e.g. {name}=1000.")
    return int(value)


def check_non_negative_int(value: Any, name: str) -> int:
    """Return ``value`` as an int, raising when it is not an integer >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= 0, got {value!r} of type {type(value).__name__}.")
    if value < 0:
        raise ModelSpecError(f"{name} must be >= 0, got {value}.")
    return int(value)


def check_probability(value: Any, name: str, *, open_interval: bool = True) -> float:
    """Return ``value`` as a float in (0, 1) (or [0, 1] when ``open_interval`` is False)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in (0, 1), got {value!r}.")
    value = float(value)
    inside = 0.0 < value < 1.0 if open_interval else 0.0 <= value <= 1.0
    if not inside:
        raise ModelSpecError(f"{name} must lie in (0, 1), got {value}; a typical value is 0.8.")
    return value


def as_tensor_data(value: Any, name: str) -> Any:
    """Convert numpy arrays to tensors (dtype kept); leave everything else as it is.

    Object arrays are refused: they usually mean a column of mixed types or
    ``None`` entries that a model cannot use.
    """
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise DataError(
                f"argument {name!r} is a numpy array of dtype object; convert it to a numeric "
                f"dtype first (e.g. np.asarray({name}, dtype=float)), replacing None entries."
            )
        return torch.as_tensor(value)
    return value


def _non_finite_message(name: str, tensor: torch.Tensor) -> str:
    bad = ~torch.isfinite(tensor)
    count = int(bad.sum())
    where = bad.nonzero()[:5].tolist()
    kinds = []
    if torch.isnan(tensor).any():
        kinds.append("NaN")
    if torch.isinf(tensor).any():
        kinds.append("inf")
    return (
        f"argument {name!r} contains {count} non-finite value(s) ({'/'.join(kinds)}), first at "
        f"index {where}; remove or impute them before fitting (probmodels does not drop rows silently)."
    )


def check_finite_data(args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    """Raise :class:`DataError` when a tensor argument is empty or a floating-point one holds NaN or inf."""
    named = [(f"positional argument {i}", a) for i, a in enumerate(args)] + list(kwargs.items())
    for name, value in named:
        if isinstance(value, torch.Tensor) and value.numel() == 0:
            raise DataError(
                f"argument {name!r} is empty (shape {tuple(value.shape)}); pass at least one observation, or None "
                "for data the model does not use."
            )
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            if not bool(torch.isfinite(value).all()):
                raise DataError(_non_finite_message(name, value))
