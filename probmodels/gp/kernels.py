"""Covariance functions as small specifications evaluated by pure tensor code.

A kernel is a tree of :class:`Kernel` objects (``RBF``, ``Matern``,
``RationalQuadratic``, ``Periodic``, ``Linear``, ``Scale``, ``Sum``,
``Product``). It holds no parameter values: :meth:`Kernel.hyperparameters`
names the positive hyperparameters it needs (with shapes and starting
values), and :meth:`Kernel.matrix` evaluates the covariance for a mapping of
those values. Every value may carry leading batch dimensions (one kernel
matrix per posterior draw or per chain), which is what lets NUTS and
posterior-averaged predictions run the same code as the point fit.

:func:`make_kernel` turns a name (``"rbf"``, ``"matern32"``,
``"rbf*periodic + linear"``) into a tree; every additive term gets its own
output scale.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Mapping, NamedTuple, Sequence

import torch

from ..exceptions import ModelSpecError
from .rbf_matrix import rbf_matrix

__all__ = [
    "Hyperparameter",
    "Kernel",
    "RBF",
    "Matern",
    "RationalQuadratic",
    "Periodic",
    "Linear",
    "Scale",
    "Sum",
    "Product",
    "make_kernel",
    "check_hyperparameters",
    "KERNEL_NAMES",
]


class Hyperparameter(NamedTuple):
    """A positive hyperparameter of a kernel.

    Attributes
    ----------
    name : str
        Full name, unique within the kernel tree (e.g. ``"k0.lengthscale"``).
    shape : tuple of int
        Shape of one value (``(d,)`` for an ARD lengthscale, ``()`` otherwise).
    init : float
        Starting value (in the standardised units the model works in).
    """

    name: str
    shape: tuple[int, ...]
    init: float


def _squared_distance(x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances between rows, ``(..., n1, d), (..., n2, d) -> (..., n1, n2)``.

    Inputs are centred on a common point first, which keeps the
    ``|a|^2 + |b|^2 - 2 a.b`` expansion accurate; results are clamped at 0.
    """
    centre = x1.mean(dim=-2, keepdim=True)
    a, b = x1 - centre, x2 - centre
    d2 = (a * a).sum(-1)[..., :, None] + (b * b).sum(-1)[..., None, :] - 2.0 * (a @ b.transpose(-1, -2))
    return d2.clamp_min(0.0)


def _scaled(x: torch.Tensor, lengthscale: torch.Tensor) -> torch.Tensor:
    """``x / lengthscale`` with the lengthscale's batch dims put in front: ``(..., n, d)``."""
    return x / lengthscale.unsqueeze(-2)


@dataclass(frozen=True)
class Kernel:
    """Base class: a covariance function ``k(x, x')`` with named positive hyperparameters."""

    def hyperparameters(self, dim: int, prefix: str = "") -> list[Hyperparameter]:
        """The hyperparameters for inputs of ``dim`` features, names prefixed by ``prefix``."""
        raise NotImplementedError

    def matrix(self, params: Mapping[str, torch.Tensor], x1: torch.Tensor, x2: torch.Tensor, prefix: str = "") -> torch.Tensor:
        """Covariance matrix ``(..., n1, n2)`` for inputs ``(n1, d)`` and ``(n2, d)``.

        ``params`` maps every name of :meth:`hyperparameters` to a tensor of
        shape ``batch + shape``; the result has that batch shape in front.
        """
        raise NotImplementedError

    def diag(self, params: Mapping[str, torch.Tensor], x: torch.Tensor, prefix: str = "") -> torch.Tensor:
        """The diagonal ``k(x_i, x_i)``, shape ``(..., n)``, without forming the matrix."""
        raise NotImplementedError

    def __add__(self, other: "Kernel") -> "Kernel":
        return Sum((self, other))

    def __mul__(self, other: "Kernel") -> "Kernel":
        return Product((self, other))


def _stationary_diag(params: Mapping[str, torch.Tensor], x: torch.Tensor, name: str) -> torch.Tensor:
    ls = params[name]
    return torch.ones(ls.shape[:-1] + x.shape[-2:-1], dtype=x.dtype, device=x.device)


@dataclass(frozen=True)
class RBF(Kernel):
    """Squared exponential ``exp(-|x - x'|^2 / (2 l^2))``; ``ard`` gives one lengthscale per feature."""

    ard: bool = False

    def hyperparameters(self, dim: int, prefix: str = "") -> list[Hyperparameter]:
        return [Hyperparameter(prefix + "lengthscale", (dim if self.ard else 1,), 1.0)]

    def matrix(self, params, x1, x2, prefix=""):
        ls = params[prefix + "lengthscale"]
        return rbf_matrix(_scaled(x1, ls), _scaled(x2, ls))

    def diag(self, params, x, prefix=""):
        return _stationary_diag(params, x, prefix + "lengthscale")


@dataclass(frozen=True)
class Matern(Kernel):
    """Matern kernel of smoothness ``nu`` in {0.5, 1.5, 2.5}."""

    nu: float = 2.5
    ard: bool = False

    def __post_init__(self) -> None:
        if self.nu not in (0.5, 1.5, 2.5):
            raise ModelSpecError(f"Matern nu must be 0.5, 1.5 or 2.5, got {self.nu!r}.")

    def hyperparameters(self, dim: int, prefix: str = "") -> list[Hyperparameter]:
        return [Hyperparameter(prefix + "lengthscale", (dim if self.ard else 1,), 1.0)]

    def matrix(self, params, x1, x2, prefix=""):
        ls = params[prefix + "lengthscale"]
        r = _squared_distance(_scaled(x1, ls), _scaled(x2, ls)).clamp_min(1e-300).sqrt()
        if self.nu == 0.5:
            return torch.exp(-r)
        if self.nu == 1.5:
            s = math.sqrt(3.0) * r
            return (1.0 + s) * torch.exp(-s)
        s = math.sqrt(5.0) * r
        return (1.0 + s + s * s / 3.0) * torch.exp(-s)

    def diag(self, params, x, prefix=""):
        return _stationary_diag(params, x, prefix + "lengthscale")


@dataclass(frozen=True)
class RationalQuadratic(Kernel):
    """Rational quadratic ``(1 + |x - x'|^2 / (2 alpha l^2))^(-alpha)``."""

    ard: bool = False

    def hyperparameters(self, dim: int, prefix: str = "") -> list[Hyperparameter]:
        return [Hyperparameter(prefix + "lengthscale", (dim if self.ard else 1,), 1.0), Hyperparameter(prefix + "alpha", (), 1.0)]

    def matrix(self, params, x1, x2, prefix=""):
        ls, alpha = params[prefix + "lengthscale"], params[prefix + "alpha"][..., None, None]
        d2 = _squared_distance(_scaled(x1, ls), _scaled(x2, ls))
        return torch.exp(-alpha * torch.log1p(d2 / (2.0 * alpha)))

    def diag(self, params, x, prefix=""):
        return _stationary_diag(params, x, prefix + "lengthscale")


@dataclass(frozen=True)
class Periodic(Kernel):
    """Periodic (exp-sine-squared) ``exp(-2 sin^2(pi |x - x'| / p) / l^2)``, as scikit-learn's ``ExpSineSquared``."""

    def hyperparameters(self, dim: int, prefix: str = "") -> list[Hyperparameter]:
        return [Hyperparameter(prefix + "lengthscale", (1,), 1.0), Hyperparameter(prefix + "period", (), 1.0)]

    def matrix(self, params, x1, x2, prefix=""):
        ls, period = params[prefix + "lengthscale"][..., None], params[prefix + "period"][..., None, None]
        r = _squared_distance(x1, x2).clamp_min(1e-300).sqrt()
        return torch.exp(-2.0 * torch.sin(math.pi * r / period) ** 2 / ls**2)

    def diag(self, params, x, prefix=""):
        return _stationary_diag(params, x, prefix + "lengthscale")


@dataclass(frozen=True)
class Linear(Kernel):
    """Dot-product kernel ``k(x, x') = x^T x'`` (wrap it in :class:`Scale` for a variance)."""

    def hyperparameters(self, dim: int, prefix: str = "") -> list[Hyperparameter]:
        return []

    def matrix(self, params, x1, x2, prefix=""):
        return x1 @ x2.transpose(-1, -2)

    def diag(self, params, x, prefix=""):
        return (x * x).sum(-1)


@dataclass(frozen=True)
class Scale(Kernel):
    """``outputscale * base(x, x')``."""

    base: Kernel

    def hyperparameters(self, dim: int, prefix: str = "") -> list[Hyperparameter]:
        return [Hyperparameter(prefix + "outputscale", (), 1.0)] + self.base.hyperparameters(dim, prefix)

    def matrix(self, params, x1, x2, prefix=""):
        return params[prefix + "outputscale"][..., None, None] * self.base.matrix(params, x1, x2, prefix)

    def diag(self, params, x, prefix=""):
        return params[prefix + "outputscale"][..., None] * self.base.diag(params, x, prefix)


def _child_prefixes(kernel: "Sum | Product", prefix: str, letter: str) -> list[str]:
    return [f"{prefix}{letter}{i}." for i in range(len(kernel.parts))]


@dataclass(frozen=True)
class Sum(Kernel):
    """Sum of kernels; hyperparameters of part ``i`` are prefixed ``k{i}.``."""

    parts: tuple[Kernel, ...]

    def hyperparameters(self, dim: int, prefix: str = "") -> list[Hyperparameter]:
        return [h for part, p in zip(self.parts, _child_prefixes(self, prefix, "k")) for h in part.hyperparameters(dim, p)]

    def matrix(self, params, x1, x2, prefix=""):
        mats = [part.matrix(params, x1, x2, p) for part, p in zip(self.parts, _child_prefixes(self, prefix, "k"))]
        return sum(mats[1:], mats[0])

    def diag(self, params, x, prefix=""):
        diags = [part.diag(params, x, p) for part, p in zip(self.parts, _child_prefixes(self, prefix, "k"))]
        return sum(diags[1:], diags[0])


@dataclass(frozen=True)
class Product(Kernel):
    """Product of kernels; hyperparameters of factor ``i`` are prefixed ``f{i}.``."""

    parts: tuple[Kernel, ...]

    def hyperparameters(self, dim: int, prefix: str = "") -> list[Hyperparameter]:
        return [h for part, p in zip(self.parts, _child_prefixes(self, prefix, "f")) for h in part.hyperparameters(dim, p)]

    def matrix(self, params, x1, x2, prefix=""):
        result = None
        for part, p in zip(self.parts, _child_prefixes(self, prefix, "f")):
            value = part.matrix(params, x1, x2, p)
            result = value if result is None else result * value
        return result

    def diag(self, params, x, prefix=""):
        result = None
        for part, p in zip(self.parts, _child_prefixes(self, prefix, "f")):
            value = part.diag(params, x, p)
            result = value if result is None else result * value
        return result


KERNEL_NAMES = ("rbf", "matern12", "matern32", "matern52", "rq", "periodic", "linear")


def _base(name: str, ard: bool) -> Kernel:
    table = {
        "rbf": lambda: RBF(ard),
        "matern12": lambda: Matern(0.5, ard),
        "matern32": lambda: Matern(1.5, ard),
        "matern52": lambda: Matern(2.5, ard),
        "rq": lambda: RationalQuadratic(ard),
        "periodic": Periodic,
        "linear": Linear,
    }
    if name not in table:
        raise ModelSpecError(
            f"unknown kernel name {name!r}; use one of {KERNEL_NAMES}, combined with '+' and '*' "
            "(e.g. 'rbf*periodic + linear'), or pass a probmodels.gp Kernel object."
        )
    return table[name]()


def make_kernel(kernel: str | Kernel, *, ard: bool = False) -> Kernel:
    """A kernel tree from a name or a :class:`Kernel`.

    Parameters
    ----------
    kernel
        A :class:`Kernel` (returned as is), or an expression of the names in
        :data:`KERNEL_NAMES` with ``+`` and ``*`` (``*`` binds tighter).
        Each additive term is wrapped in :class:`Scale`, so ``"rbf"`` means
        ``outputscale * exp(-r^2 / 2 l^2)``.
    ard
        One lengthscale per input feature for the stationary kernels of a name.

    Returns
    -------
    Kernel

    Examples
    --------
    >>> import torch
    >>> from probmodels.gp import make_kernel
    >>> kernel = make_kernel("rbf + periodic")
    >>> kernel
    Sum(parts=(Scale(base=RBF(ard=False)), Scale(base=Periodic())))
    >>> [h.name for h in kernel.hyperparameters(1)]
    ['k0.outputscale', 'k0.lengthscale', 'k1.outputscale', 'k1.lengthscale', 'k1.period']
    >>> x = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    >>> rbf = make_kernel("rbf").base
    >>> rbf.matrix({"lengthscale": torch.tensor([1.0], dtype=torch.float64)}, x, x).round(decimals=4).tolist()
    [[1.0, 0.6065], [0.6065, 1.0]]
    """
    if isinstance(kernel, Kernel):
        return kernel
    if not isinstance(kernel, str):
        raise TypeError(
            f"kernel must be a name such as 'rbf' or a probmodels.gp Kernel, got {type(kernel).__name__}; "
            "convert a GPyTorch kernel with probmodels.gp.from_gpytorch."
        )
    text = re.sub(r"\s+", "", kernel.lower())
    if not text:
        raise ModelSpecError("kernel is an empty string; pass a name such as 'rbf' or 'matern52'.")
    terms: list[Kernel] = []
    for term in text.split("+"):
        factors = [_base(name, ard) for name in term.split("*")]
        terms.append(Scale(factors[0] if len(factors) == 1 else Product(tuple(factors))))
    return terms[0] if len(terms) == 1 else Sum(tuple(terms))


def check_hyperparameters(kernel: Kernel, dim: int, values: Mapping[str, object], *, extra: Sequence[str] = ()) -> None:
    """Raise :class:`ModelSpecError` for unknown names, wrong shapes, or non-positive values."""
    specs = {h.name: h for h in kernel.hyperparameters(dim)}
    known = list(specs) + list(extra)
    for name, value in values.items():
        if name not in known:
            raise ModelSpecError(f"unknown hyperparameter {name!r}; this kernel's hyperparameters are {known}.")
        tensor = torch.as_tensor(value, dtype=torch.float64)
        if not bool(torch.isfinite(tensor).all()) or bool((tensor <= 0).any()):
            raise ModelSpecError(f"hyperparameter {name!r} must be finite and > 0, got {value!r}.")
        if name in specs:
            shape = specs[name].shape
            if tensor.numel() not in (1, math.prod(shape)):
                raise ModelSpecError(f"hyperparameter {name!r} must have shape {shape} (or be a scalar), got shape {tuple(tensor.shape)}.")
