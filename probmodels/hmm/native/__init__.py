"""The native CPU path of the HMM algorithms: C kernels compiled on first use, called through ``ctypes``.

:mod:`~probmodels.hmm.native.build` compiles ``kernels.c`` with the system C
compiler into a per-user cache and loads it; :mod:`~probmodels.hmm.native.inference`
decides when the kernels apply and calls them on torch tensors. Set the
environment variable ``PROBMODELS_HMM_NATIVE=0`` to use the torch paths only.
"""

from .inference import applicable

__all__ = ["applicable"]
