"""What every fit does first: check the model and its data, find the device, trace the model once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import torch

from .._validation import as_tensor_data, check_finite_data
from ..exceptions import ModelSpecError
from .device import data_placement
from .protocol import ModelInfo, inspect_model

__all__ = ["FitSetup", "prepare_fit"]


@dataclass(frozen=True)
class FitSetup:
    """A model checked and ready to fit.

    Attributes
    ----------
    args, kwargs
        The model's arguments, numpy arrays converted to tensors.
    device, dtype
        Where and in which precision the fit computes (those of the data).
    generator
        The fit's own random generator, seeded.
    info
        The model's sites, from one trace.
    """

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    device: torch.device
    dtype: torch.dtype
    generator: torch.Generator
    info: ModelInfo


def prepare_fit(
    model: Callable[..., Any],
    model_args: Sequence[Any],
    model_kwargs: Mapping[str, Any] | None,
    *,
    seed: int,
    observed: Sequence[str] | None = None,
    device: str | torch.device | None = None,
) -> FitSetup:
    """Validate a model and its data and trace it once.

    Raises
    ------
    TypeError
        ``model`` is not callable.
    DataError
        The data holds NaN/inf or object arrays, mixes devices or dtypes.
    ModelSpecError, ShapeError
        The model fails to run, has no continuous latent site, or its data
        does not fit its distributions (see :func:`inspect_model`).
    """
    if not callable(model):
        raise TypeError(f"model must be a callable Pyro program, got {type(model).__name__}.")
    args = tuple(as_tensor_data(a, f"positional argument {i}") for i, a in enumerate(model_args))
    kwargs = {k: as_tensor_data(v, k) for k, v in (model_kwargs or {}).items()}
    check_finite_data(args, kwargs)
    dev, dtype = data_placement(args, kwargs, device)
    generator = torch.Generator(device=dev).manual_seed(seed)
    info = inspect_model(model, args, kwargs, observed=observed, generator=generator)
    if info.dim == 0:
        raise ModelSpecError("the model has no continuous latent site; there is nothing to infer.")
    return FitSetup(args, kwargs, dev, dtype, generator, info)
