"""Inputs and targets of the network estimators: checks at the boundary and standardisation."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

from ..exceptions import DataError, ShapeError

__all__ = ["as_features", "as_regression_targets", "as_labels", "Affine"]


def _tensor(value: Any, name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        tensor = value
    else:
        array = np.asarray(value)
        if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
            raise DataError(f"{name} must be numeric, got an array of dtype {array.dtype}; convert it with np.asarray({name}, dtype=float).")
        tensor = torch.as_tensor(array)
    if dtype is not None or not tensor.is_floating_point():
        tensor = tensor.to(dtype or torch.get_default_dtype())
    return tensor


def _check_finite(tensor: torch.Tensor, name: str) -> None:
    bad = ~torch.isfinite(tensor)
    if bool(bad.any()):
        first = bad.nonzero()[0].tolist()
        raise DataError(
            f"{name} contains {int(bad.sum())} NaN or infinite value(s), the first at index {first}; "
            "remove or impute them before calling (rows are never dropped silently)."
        )


def as_features(x: Any, n_features: int | None = None, dtype: torch.dtype | None = None, device: torch.device | None = None) -> torch.Tensor:
    """``x`` as a finite floating tensor ``(N, n_features)``; a 1-D array is one feature."""
    tensor = _tensor(x, "X", dtype)
    if tensor.dim() == 1:
        tensor = tensor[:, None]
    if tensor.dim() != 2:
        raise ShapeError(f"X must be 2-D (n_samples, n_features), got shape {tuple(tensor.shape)}.")
    if tensor.shape[0] == 0:
        raise ShapeError("X has no rows; pass at least one sample.")
    if n_features is not None and tensor.shape[1] != n_features:
        raise ShapeError(f"X has {tensor.shape[1]} features but the network was fitted with {n_features}; pass the same columns as in fit.")
    _check_finite(tensor, "X")
    return tensor if device is None else tensor.to(device)


def _as_targets(y: Any, n_rows: int, dtype: torch.dtype | None) -> torch.Tensor:
    tensor = _tensor(y, "y", dtype)
    if tensor.dim() == 2 and tensor.shape[1] == 1:
        tensor = tensor[:, 0]
    if tensor.dim() != 1:
        raise ShapeError(f"y must be 1-D (n_samples,), got shape {tuple(tensor.shape)}; pass one target per row of X.")
    if tensor.shape[0] != n_rows:
        raise ShapeError(f"y has {tensor.shape[0]} rows but X has {n_rows}; pass one target per row of X.")
    _check_finite(tensor, "y")
    return tensor


def as_regression_targets(y: Any, x: torch.Tensor) -> torch.Tensor:
    """``y`` as a finite tensor ``(N,)`` matching the rows, dtype and device of ``x``."""
    return _as_targets(y, x.shape[0], x.dtype).to(x.device)


def as_labels(y: Any, x: torch.Tensor, n_classes: int | None = None) -> torch.Tensor:
    """Integer class labels ``(N,)`` in ``[0, n_classes)``, as a tensor of ``x``'s dtype and device.

    Labels are kept in the floating dtype of ``x`` because they are the
    observed value of a Bernoulli or categorical site and share the model's dtype.
    """
    labels = _as_targets(y, x.shape[0], x.dtype)
    if bool((labels != labels.round()).any()):
        raise DataError("class labels must be integers 0, 1, ..., n_classes - 1; got non-integer values. Encode them first, e.g. with sklearn's LabelEncoder.")
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or (n_classes is not None and high >= n_classes):
        expected = f"[0, {n_classes - 1}]" if n_classes is not None else "0 or more"
        raise DataError(
            f"labels range over [{low}, {high}] but must lie in {expected}"
            + (f" for n_classes={n_classes}" if n_classes is not None else "")
            + "; encode the classes as 0, 1, ..., n_classes - 1 or raise n_classes."
        )
    return labels.to(x.device)


class Affine(NamedTuple):
    """Standardisation ``z = (v - shift) / scale`` fitted on training data."""

    shift: torch.Tensor
    scale: torch.Tensor

    @classmethod
    def fit(cls, values: torch.Tensor, enabled: bool = True) -> "Affine":
        """Column means and standard deviations (constant columns keep scale 1), or the identity."""
        if not enabled:
            one = torch.ones(values.shape[1:], dtype=values.dtype, device=values.device)
            return cls(torch.zeros_like(one), one)
        scale = values.std(0) if values.shape[0] > 1 else torch.ones_like(values[0])
        return cls(values.mean(0), torch.where(scale > 0, scale, torch.ones_like(scale)))

    def apply(self, values: torch.Tensor) -> torch.Tensor:
        """Standardise."""
        return (values - self.shift) / self.scale

    def invert(self, values: torch.Tensor) -> torch.Tensor:
        """Map back to the original units."""
        return values * self.scale + self.shift
