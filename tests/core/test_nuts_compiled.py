"""The compiled leaf update equals the eager one, and untraceable targets fall back to eager."""

import pyro
import pyro.distributions as dist
import pytest
import torch

import probmodels as pm
from probmodels.core.density import FunctionDensity, LogDensity, without_validation
from probmodels.core.graph import VECTORIZE_MIN_ELEMENTS, _largest_tensor, compile_graph, outputs_agree, trace_graph
from probmodels.core.nuts import ChainState, Metric, NUTSKernel, Subtree
from probmodels.core.protocol import inspect_model
from probmodels.datasets import eight_schools
from probmodels.demo import eight_schools_model


def _schools_target():
    data = eight_schools()
    info = inspect_model(eight_schools_model, (data["sigma"],), {"y": data["y"]})
    probe = torch.randn(4, info.dim, dtype=torch.float64)
    return LogDensity(eight_schools_model, (data["sigma"],), {"y": data["y"]}, info, probe=probe), info.dim


@pytest.mark.parametrize("backend", ["script", "inductor"])
@pytest.mark.parametrize("dense", [False, True])
def test_compiled_leaves_equal_eager_leaves(dense, backend):
    with without_validation():
        target, dim = _schools_target()
        generator = torch.Generator().manual_seed(0)
        position = torch.randn(4, dim, dtype=torch.float64, generator=generator)
        state = ChainState(position, *target.value_and_grad(position))
        inverse_mass = torch.eye(dim, dtype=torch.float64).expand(4, dim, dim) * 0.5 if dense else torch.full((4, dim), 0.5, dtype=torch.float64)
        metric = Metric.from_inverse_mass(inverse_mass.contiguous())
        kernel = NUTSKernel(target, max_tree_depth=6)
        assert kernel.compile(state, metric, generator, backends=(backend,)) == backend
        inverse, step, energy0, tree, _, _, _ = kernel._example(state, metric, generator)
        tree = tree._replace(alive=torch.tensor([True, False, True, True]))
        for leaf in range(16):
            write, check = kernel._leaf_masks(leaf, position.device)
            uniform = torch.rand(4, dtype=torch.float64, generator=generator)
            traced = Subtree(*kernel._compiled(inverse, step, energy0, uniform, write, check, *tree))
            eager = kernel._eager_leaf(inverse, step, energy0, tree, uniform, write, check)
            for name, a, b in zip(Subtree._fields, traced, eager):
                if a.is_floating_point():
                    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10, msg=f"leaf {leaf}, field {name}")
                else:
                    assert torch.equal(a, b), f"leaf {leaf}, field {name}"
            tree = eager


def test_control_flow_on_latent_values_is_not_baked_into_a_graph():
    def model(y):
        scale = pyro.sample("scale", dist.HalfNormal(y.new_tensor(2.0)))
        loc = y.new_tensor(1.0) if bool(scale > 1.0) else y.new_tensor(-1.0)  # data-dependent branch
        with pyro.plate("data", y.shape[0]):
            pyro.sample("y", dist.Normal(loc, scale), obs=y)

    y = torch.randn(20, dtype=torch.float64)
    posterior = pm.fit_mcmc(model, y, num_chains=2, num_warmup=50, num_samples=50, progress_bar=False)
    assert posterior.attrs["compiled"] == "eager"


def test_function_target_compiles():
    target = FunctionDensity(lambda u: -0.5 * (u**2).sum(-1))
    position = torch.randn(3, 2, dtype=torch.float64)
    kernel = NUTSKernel(target)
    state = ChainState(position, *target.value_and_grad(position))
    assert kernel.compile(state, Metric.from_inverse_mass(torch.ones(3, 2, dtype=torch.float64))) == "script"


def test_compile_mode_is_checked():
    with pytest.raises(pm.ModelSpecError, match="compile must be one of"):
        pm.fit_mcmc(eight_schools_model, eight_schools()["sigma"], compile="jit", progress_bar=False)


def test_float32_agreement_allows_for_the_rounding_of_large_energies():
    # A log weight that is the difference of two float32 energies near 600 carries ~1e-4 of rounding.
    f32 = torch.float32
    want = (torch.tensor([0.0, -3.0], dtype=f32), torch.tensor([1, 2]))
    got = (torch.tensor([1.2e-4, -3.0], dtype=f32), torch.tensor([1, 2]))
    assert not outputs_agree(got, want)
    assert outputs_agree(got, want, scale=600.0)
    assert not outputs_agree((torch.tensor([0.1, -3.0], dtype=f32), want[1]), want, scale=600.0)
    assert not outputs_agree((got[0], torch.tensor([1, 3])), want, scale=600.0)


@pytest.mark.parametrize("rows", [10, 100])
def test_inductor_graphs_with_and_without_simd_code_equal_eager(rows):
    # 10 x 50 data compile to scalar loops, 100 x 50 (above the threshold) to SIMD code.
    data = torch.randn(rows, 50, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def fn(beta):
        eta = beta @ data.T
        return torch.tanh(eta).sum(-1), torch.nn.functional.softplus(eta).amax(-1)

    beta = torch.randn(4, 50, dtype=torch.float64)
    graph = trace_graph(fn, [beta], decompose=True)
    assert _largest_tensor(graph) == rows * 50
    assert (_largest_tensor(graph) >= VECTORIZE_MIN_ELEMENTS) == (rows == 100)
    compiled = compile_graph(fn, [beta], "inductor")
    for _ in range(3):
        beta = torch.randn(4, 50, dtype=torch.float64)
        assert outputs_agree(compiled(beta), fn(beta))
