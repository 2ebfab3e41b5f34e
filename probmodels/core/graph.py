"""Compiling a pure tensor function into one graph for the sampler's hot loop.

The function is traced by ``make_fx`` in fake-tensor mode into an ATen graph
(Python control flow on tensor values cannot be traced; such functions stay
eager), and the graph is compiled by one of two backends:

``"inductor"``
    TorchInductor: C++/OpenMP kernels on the CPU, Triton kernels on CUDA. It
    fuses the graph's many small elementwise operations into a few kernels,
    so a call costs tens of microseconds instead of a few microseconds per
    operation; compiling takes a few seconds the first time. The graph is
    traced functionalized and decomposed the way Inductor wants it and goes
    straight to Inductor's graph compiler, without ``torch.compile``'s
    AOTAutograd layer (see :func:`_compile_inductor`). The compiled
    graph goes to Inductor's on-disk cache (``TORCHINDUCTOR_CACHE_DIR``), so
    a later run of the same model on data of the same shapes and values
    loads it instead of compiling again. The generated wrapper skips
    Inductor's per-call size, stride and alignment checks of the inputs: the
    sampler always calls a graph with inputs shaped like the example ones.
    On a CPU, a graph whose tensors all have fewer than
    :data:`VECTORIZE_MIN_ELEMENTS` elements is compiled to scalar loops:
    generating SIMD code took half of the compile time (blr, 4 chains: 9 s of
    CPU instead of 18 s) and ran no faster on such tensors, while a
    ``(256, 100)`` intermediate took 19-29 % less time vectorised. On a machine with
    at most two CPUs the kernels compile one after another in the process
    (a pool of compile workers first spends seconds importing torch in each).
``"script"``
    TorchScript: compiles in a fraction of a second, then interprets the
    graph operation by operation.

A compiled graph is used only after it reproduced the eager function on
example inputs (:func:`outputs_agree`).
"""

from __future__ import annotations

import os
import warnings
from typing import Callable, Sequence

import torch

__all__ = ["BACKENDS", "trace_graph", "compile_graph", "outputs_agree"]

BACKENDS = ("inductor", "script")

VECTORIZE_MIN_ELEMENTS = 4096
"""Inductor generates SIMD code for a CPU graph only when one of its tensors has at least this many elements."""

Graph = Callable[..., tuple[torch.Tensor, ...]]


def trace_graph(fn: Graph, args: Sequence[torch.Tensor], decompose: bool = False) -> torch.fx.GraphModule:
    """Trace ``fn(*args) -> tuple of tensors`` into an ATen graph.

    Every argument is cloned first: ``make_fx`` would merge inputs that are
    the same tensor object.

    Parameters
    ----------
    fn
        A pure function of tensors.
    args
        Example inputs.
    decompose
        Trace functionalized (no in-place operations) and with
        Inductor's decompositions, the form Inductor's graph compiler takes.

    Raises
    ------
    Exception
        Whatever tracing raises, e.g. for control flow on tensor values.
    """
    from torch.fx.experimental.proxy_tensor import make_fx

    options = {}
    if decompose:
        from torch._inductor.decomposition import select_decomp_table

        fn = torch.func.functionalize(fn, remove="mutations")
        options["decomposition_table"] = select_decomp_table()
    return make_fx(fn, tracing_mode="fake", _allow_non_fake_inputs=True, **options)(*(a.clone() for a in args))


def compile_graph(fn: Graph, args: Sequence[torch.Tensor], backend: str) -> Graph:
    """Trace ``fn`` and compile the graph for inputs shaped like ``args``.

    Parameters
    ----------
    fn
        A pure function of tensors returning a tuple of tensors.
    args
        Example inputs (shapes, dtypes and devices of every later call).
    backend
        ``"inductor"`` or ``"script"``.

    Returns
    -------
    callable
        Takes inputs like ``args`` positionally and returns the tuple of outputs.

    Raises
    ------
    ValueError
        For an unknown backend.
    Exception
        Whatever tracing or the backend raises (e.g. control flow on tensor
        values, or no C++ compiler for inductor).
    """
    if backend == "inductor":
        return _compile_inductor(trace_graph(fn, args, decompose=True), [a.clone() for a in args])
    if backend == "script":
        graph = trace_graph(fn, args)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.jit.freeze(torch.jit.trace(graph, [a.clone() for a in args], check_trace=False).eval())
    raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}.")


def _compile_inductor(graph: torch.fx.GraphModule, args: Sequence[torch.Tensor]) -> Graph:
    """Compile a decomposed graph with Inductor's graph compiler.

    The graph goes straight to ``compile_fx_inner``, without the AOTAutograd
    layer ``compile_fx`` puts around it: that layer traced the graph once
    more (a fifth of the compile time) and cost about 30 us of Python per
    call (76 instead of 47 us for a small leaf). The tracing context's fake
    mode has a shape environment: Inductor's FX graph cache needs one, and
    without it every run compiled from scratch.
    """
    import torch._inductor.config as inductor_config
    from torch._guards import TracingContext, tracing
    from torch._inductor.compile_fx import compile_fx_inner
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import ShapeEnv

    options = {"size_asserts": False, "alignment_asserts": False}
    if all(a.device.type == "cpu" for a in args):
        if _largest_tensor(graph) < VECTORIZE_MIN_ELEMENTS:
            options["cpp.simdlen"] = 1
        if (os.cpu_count() or 1) <= 2:
            options["compile_threads"] = 1
    fake_mode = FakeTensorMode(shape_env=ShapeEnv(), allow_non_fake_inputs=True)
    with inductor_config.patch(options), tracing(TracingContext(fake_mode)):
        compiled = compile_fx_inner(graph, [fake_mode.from_tensor(a, static_shapes=True) for a in args], is_inference=True)
    call = compiled.current_callable
    return lambda *inputs: call(list(inputs))


def _largest_tensor(graph: torch.fx.GraphModule) -> int:
    """The number of elements of the largest tensor in a traced graph (inputs, captured data and intermediates)."""
    values = (node.meta.get("val") for node in graph.graph.nodes)
    return max((v.numel() for v in values if isinstance(v, torch.Tensor)), default=0)


def outputs_agree(got: Sequence[torch.Tensor], want: Sequence[torch.Tensor], scale: float = 1.0) -> bool:
    """Whether two tuples of outputs are equal: exactly for integer and boolean
    tensors, and with the same non-finite entries for floating-point ones,
    whose finite entries agree to a relative and absolute tolerance of 1e-8
    (float64) or 1e-4 (lower precision), the absolute one times ``scale``.

    ``scale`` is the size of the quantities the outputs are differences of
    (the sampler passes its energies: a log weight that is the difference of
    two energies of a few hundred carries their rounding error, about
    ``1e-7 * 600`` in float32).
    """
    if len(got) != len(want):
        return False
    for a, b in zip(got, want):
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        if not a.is_floating_point():
            if not torch.equal(a, b):
                return False
            continue
        tol = 1e-8 if a.dtype == torch.float64 else 1e-4
        finite = torch.isfinite(b)
        if not torch.equal(finite, torch.isfinite(a)):
            return False
        if not torch.allclose(a[finite], b[finite], rtol=tol, atol=tol * scale):
            return False
    return True
