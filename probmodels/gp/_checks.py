"""Boundary checks for the GP estimators' arrays, with messages that name the argument."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .._validation import as_tensor_data, check_finite_data
from ..exceptions import DataError, ShapeError

__all__ = ["as_inputs", "as_targets", "check_features", "as_binary_labels"]


def _as_float_tensor(value: Any, name: str, like: torch.Tensor | None) -> torch.Tensor:
    if isinstance(value, (list, tuple)) or np.isscalar(value):
        value = np.asarray(value)
    value = as_tensor_data(value, name)
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be an array or tensor, got {type(value).__name__}.")
    if value.dtype == torch.bool or not (value.is_floating_point() or value.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)):
        raise DataError(f"{name} has dtype {value.dtype}; pass real numbers (e.g. {name}.astype(float)).")
    if like is not None:
        return value.to(dtype=like.dtype, device=like.device)
    return value if value.is_floating_point() else value.to(torch.float64)


def as_inputs(X: Any, name: str = "X", like: torch.Tensor | None = None) -> torch.Tensor:
    """``X`` as a finite floating tensor of shape ``(n, d)`` (a 1-D array is one feature).

    Floating tensors keep their dtype and device unless ``like`` is given;
    numpy and integer data become float64.
    """
    X = _as_float_tensor(X, name, like)
    if X.dim() == 1:
        X = X.unsqueeze(-1)
    if X.dim() != 2:
        raise ShapeError(f"{name} must have shape (n_samples, n_features) or (n_samples,), got {tuple(X.shape)}.")
    if X.shape[0] == 0:
        raise ShapeError(f"{name} has no rows; pass at least one sample.")
    check_finite_data((), {name: X})
    return X


def as_targets(y: Any, n: int, like: torch.Tensor, name: str = "y", *, training: bool = False) -> torch.Tensor:
    """``y`` as a finite tensor of shape ``(n,)`` in the dtype and on the device of ``like``.

    With ``training=True`` (the data of ``fit``), floating targets in another
    floating dtype than the inputs are refused rather than silently cast.
    """
    if training:
        y = as_tensor_data(y, name)
        if isinstance(y, torch.Tensor) and y.is_floating_point() and y.dtype != like.dtype:
            raise DataError(
                f"X is {like.dtype} but {name} is {y.dtype}: the data mixes floating dtypes; convert both to one "
                f"dtype (e.g. {name}.to(X.dtype), or float64 for both) before fit."
            )
    y = _as_float_tensor(y, name, like)
    if y.dim() == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.dim() != 1:
        raise ShapeError(f"{name} must have shape (n_samples,), got {tuple(y.shape)}; one output per GP.")
    if y.shape[0] != n:
        raise ShapeError(f"X has {n} rows but {name} has {y.shape[0]} values; pass one target per row of X.")
    check_finite_data((), {name: y})
    return y


def check_features(X: torch.Tensor, expected: int, name: str = "X") -> None:
    """Raise :class:`ShapeError` when ``X`` has another number of features than the fit."""
    if X.shape[1] != expected:
        raise ShapeError(f"{name} has {X.shape[1]} feature(s) but the model was fitted on {expected}; pass the same columns as in fit.")


def as_binary_labels(y: Any, n: int, name: str = "y") -> tuple[np.ndarray, np.ndarray]:
    """Two-class labels of any kind (0/1, bool, two numbers, two strings) as codes 0/1 and the sorted classes.

    Returns
    -------
    codes, classes
        ``(n,)`` integer codes (index into ``classes``) and the two class labels.

    Raises
    ------
    ShapeError
        ``y`` is not one label per row of ``X``.
    DataError
        NaN/inf labels, or other than exactly two distinct labels.
    """
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    labels = np.asarray(y)
    if labels.dtype.kind in "biuf":
        as_targets(labels.astype(np.float64), n, torch.zeros(0, dtype=torch.float64), name)
        labels = labels.reshape(-1)
    else:
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]
        if labels.ndim != 1:
            raise ShapeError(f"{name} must have shape (n_samples,), got {labels.shape}; pass one class label per row of X.")
        if labels.shape[0] != n:
            raise ShapeError(f"X has {n} rows but {name} has {labels.shape[0]} labels; pass one class label per row of X.")
    classes, codes = np.unique(labels, return_inverse=True)
    if classes.shape[0] != 2:
        raise DataError(
            f"{name} must hold exactly two classes for binary classification, got {classes.shape[0]} "
            f"({classes[:5].tolist()}{' ...' if classes.shape[0] > 5 else ''}); encode the outcome as two labels such as 0 and 1."
        )
    return codes.reshape(-1), classes


def check_noise_free_repeats(X: torch.Tensor, y: torch.Tensor) -> None:
    """With the noise fixed at 0, inputs that repeat must repeat their targets too.

    Raises
    ------
    DataError
        Two equal rows of ``X`` with different targets: a noise-free GP gives
        such data likelihood 0 (a log marginal likelihood of ``-inf``), at
        every value of the kernel's hyperparameters.
    """
    _, group = torch.unique(X, dim=0, return_inverse=True)
    first = torch.full((int(group.max()) + 1,), X.shape[0], dtype=torch.long, device=X.device)
    first = first.scatter_reduce(0, group, torch.arange(X.shape[0], device=X.device), reduce="amin")
    reference = y[first[group]]
    differs = (y - reference).abs() > 1e-8 * (1.0 + reference.abs())
    if bool(differs.any()):
        j = int(torch.nonzero(differs)[0])
        i = int(first[group[j]])
        raise DataError(
            f"the noise is fixed at 0, but X repeats row {i} at row {j} with a different target (y[{i}] = {float(y[i]):.6g}, "
            f"y[{j}] = {float(y[j]):.6g}): a noise-free GP gives these data likelihood 0. Fix the noise to a positive value "
            "(or learn it), or average the repeated rows."
        )
