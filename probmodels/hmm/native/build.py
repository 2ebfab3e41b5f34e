"""Compiling and loading the native HMM kernels (``kernels.c``) with the system C compiler.

The source is compiled on first use with ``$CC`` (default ``cc``) and
:data:`FLAGS` into a shared library in a per-user cache directory
(``$PROBMODELS_CACHE_DIR``, else ``$XDG_CACHE_HOME/probmodels``, else
``~/.cache/probmodels``), named by a hash of the source, the flags, the
compiler's version and the CPU (``-march=native`` code runs only where it was
built). The library is written to a temporary file and renamed into place, so
concurrent processes never load a partial file, and :func:`load` compiles at
most once per process. Any failure (no compiler, a compile error, an
unwritable cache) leaves :func:`load` returning None after one warning: the
callers then use the torch paths.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import subprocess
import tempfile
import warnings
from pathlib import Path

__all__ = ["FLAGS", "SOURCE", "cache_dir", "load", "reset"]

SOURCE = Path(__file__).with_name("kernels.c")
"""The C source of the kernels."""
FLAGS = ("-O3", "-march=native", "-std=c99", "-ffp-contract=fast", "-fno-trapping-math", "-fPIC", "-shared")
"""Compiler flags. ``-ffp-contract=fast`` allows fused multiply-adds (``-std=c99`` alone forbids them:
1.6 times slower), ``-fno-trapping-math`` (floating-point exceptions are never inspected) lets the
compiler vectorise the loops with selects; no ``-ffast-math``, which would break the exact infinities and zeros."""

_POINTER, _INT = ctypes.c_void_p, ctypes.c_int64
# n, t_max, k, log_init, init_stride, log_trans; log_emit, features, n_features, weights, bias; lengths
_PROBLEM = [_INT, _INT, _INT, _POINTER, _INT, _POINTER, _POINTER, _POINTER, _INT, _POINTER, _POINTER, _POINTER]
_SIGNATURES = {
    "hmm_log_likelihood": _PROBLEM + [_POINTER, _POINTER],
    "hmm_smooth": _PROBLEM + [_POINTER, _POINTER, _POINTER, _POINTER],
    "hmm_viterbi": _PROBLEM + [_POINTER, _POINTER],
}
_UNLOADED = object()
_library: object = _UNLOADED


def cache_dir() -> Path:
    """The directory of compiled kernels: ``$PROBMODELS_CACHE_DIR`` or the user's cache directory."""
    explicit = os.environ.get("PROBMODELS_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "probmodels"


def load() -> ctypes.CDLL | None:
    """The kernel library, compiled on the first call of the process; None (after one warning) if that failed."""
    global _library
    if _library is _UNLOADED:
        try:
            _library = _open(_compile())
        except (OSError, RuntimeError, subprocess.SubprocessError) as error:  # RuntimeError: no home directory
            _library = None
            warnings.warn(
                f"probmodels.hmm could not build its native CPU kernels ({error}); it uses the slower torch "
                "paths instead. Install a C compiler (cc, or name one in $CC) for the fast path, or set "
                "PROBMODELS_HMM_NATIVE=0 to turn it off without this warning.",
                RuntimeWarning,
                stacklevel=3,
            )
    return _library


def reset() -> None:
    """Forget the loaded library (or the failure), so that the next :func:`load` tries again."""
    global _library
    _library = _UNLOADED


def _compile() -> Path:
    compiler = os.environ.get("CC") or "cc"
    source = SOURCE.read_bytes()
    version = subprocess.run([compiler, "--version"], capture_output=True, check=True, timeout=60).stdout
    key = hashlib.sha256(b"\0".join([source, " ".join(FLAGS).encode(), version, _cpu_identity()])).hexdigest()[:24]
    directory = cache_dir()
    target = directory / f"hmm_kernels_{key}{_suffix()}"
    if target.exists():
        return target
    directory.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".hmm_kernels_", suffix=_suffix())
    os.close(handle)
    try:
        result = subprocess.run(
            [compiler, *FLAGS, "-o", temporary, str(SOURCE), "-lm"], capture_output=True, text=True, timeout=120
        )
        if result.returncode != 0:
            raise OSError(f"{compiler} exited with status {result.returncode}: {result.stderr.strip()[:500]}")
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return target


def _open(path: Path) -> ctypes.CDLL:
    library = ctypes.CDLL(str(path))
    for name, argtypes in _SIGNATURES.items():
        function = getattr(library, name)
        function.argtypes, function.restype = argtypes, ctypes.c_int64
    return library


def _cpu_identity() -> bytes:
    """The CPU model and feature flags (``/proc/cpuinfo`` where it exists), for the cache key."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return f"{platform.machine()} {platform.processor()}".encode()
    wanted = ("model name", "flags", "Features", "CPU part")
    return "\n".join(dict.fromkeys(line for line in lines if line.startswith(wanted))).encode()


def _suffix() -> str:
    return {"Windows": ".dll", "Darwin": ".dylib"}.get(platform.system(), ".so")
