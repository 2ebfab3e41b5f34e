"""Devices and dtypes: probmodels computes where the data lives.

No process-global device state: every entry point looks at the tensors it is
given and follows them; an explicit ``device``/``dtype`` argument only matters
when a model has no tensor data at all.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import torch

from ..exceptions import DataError

__all__ = ["resolve", "data_placement"]


def resolve(device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> tuple[torch.device, torch.dtype]:
    """Return a concrete ``(device, dtype)``; defaults are CPU and torch's default dtype."""
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DataError(f"device {str(dev)!r} was requested but CUDA is not available; use device='cpu'.")
    return dev, dtype if dtype is not None else torch.get_default_dtype()


def _tensors(values: Iterable[Any]) -> Iterable[torch.Tensor]:
    for value in values:
        if isinstance(value, torch.Tensor):
            yield value
        elif isinstance(value, (list, tuple)):
            yield from _tensors(value)
        elif isinstance(value, Mapping):
            yield from _tensors(value.values())


def data_placement(
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[torch.device, torch.dtype]:
    """Device and floating dtype of a model's data, checked for consistency.

    Parameters
    ----------
    args, kwargs
        The model's arguments. Tensors nested in lists, tuples and dicts count.
    device, dtype
        Used when the data holds no tensor (or no floating tensor); an explicit
        ``device`` that disagrees with the data raises.

    Raises
    ------
    DataError
        When tensors live on different devices, floating tensors mix dtypes, or
        ``device`` names another device than the data's.
    """
    tensors = list(_tensors(list(args) + list(kwargs.values())))
    devices = {t.device for t in tensors}
    if len(devices) > 1:
        raise DataError(
            f"the model's data lives on several devices {sorted(map(str, devices))}; move every tensor "
            "to one device first (e.g. x.to('cuda'))."
        )
    floats = {t.dtype for t in tensors if t.is_floating_point()}
    if len(floats) > 1:
        raise DataError(
            f"the model's data mixes floating dtypes {sorted(map(str, floats))}; convert every tensor "
            "to one dtype (e.g. x.double()) so results do not silently lose precision."
        )
    data_device = devices.pop() if devices else None
    if device is not None and data_device is not None and torch.device(device) != data_device:
        if not (torch.device(device).type == data_device.type and torch.device(device).index is None):
            raise DataError(
                f"device={str(device)!r} was requested but the data lives on {data_device}; move the data "
                f"with .to({str(device)!r}) or drop the device argument (probmodels follows the data)."
            )
    resolved_device, default_dtype = resolve(device if data_device is None else data_device, dtype)
    resolved_dtype = floats.pop() if floats else default_dtype
    return resolved_device, resolved_dtype
