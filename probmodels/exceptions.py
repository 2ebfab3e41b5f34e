"""Exception and warning classes of probmodels.

Every error that probmodels raises for bad input derives from
:class:`ProbModelsError` and from the builtin that a Python user would expect
(``ValueError`` for bad values, ``TypeError`` for wrong types, ``RuntimeError``
for failures during inference), so ``except ValueError`` keeps working.
"""

from __future__ import annotations

__all__ = [
    "ProbModelsError",
    "ModelSpecError",
    "DataError",
    "ShapeError",
    "InferenceError",
    "ResultFileError",
    "NetworkFileError",
    "NotFittedError",
    "ConvergenceWarning",
]


class ProbModelsError(Exception):
    """Base class of every probmodels exception."""


class ModelSpecError(ProbModelsError, ValueError):
    """The model or an argument that configures inference is invalid."""


class DataError(ProbModelsError, ValueError):
    """The data passed to a model contains invalid values (NaN, inf, wrong dtype)."""


class ShapeError(ProbModelsError, ValueError):
    """An array has a shape that does not fit the model."""


class InferenceError(ProbModelsError, RuntimeError):
    """Inference failed: a non-finite loss, no valid initial point, and the like."""


class ResultFileError(ProbModelsError, ValueError):
    """A saved result file is missing, truncated, or does not hold a probmodels result."""


class NetworkFileError(ModelSpecError):
    """A network file (BIF, XMLBIF) cannot be read: bad syntax, truncation, undeclared
    variables, table sizes that do not fit, unsafe XML or undecodable bytes."""


class NotFittedError(ProbModelsError, ValueError, AttributeError):
    """An estimator is used (``predict``, ``score``, ...) before ``fit``."""


class ConvergenceWarning(UserWarning):
    """Inference finished but its diagnostics say the result is not trustworthy."""
