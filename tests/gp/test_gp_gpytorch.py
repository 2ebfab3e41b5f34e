"""GPyTorch kernels, likelihoods and priors converted by from_gpytorch: the same covariance matrix, the same
log marginal likelihood as GPyTorch's exact marginal log likelihood, the same prior densities."""

import gpytorch
import pytest
import torch
from gpytorch.kernels import LinearKernel, MaternKernel, PeriodicKernel, RBFKernel, RQKernel, ScaleKernel, SpectralMixtureKernel
from gpytorch.priors import GammaPrior, HalfCauchyPrior, LogNormalPrior, NormalPrior

from probmodels import ModelSpecError
from probmodels.gp import GPRegression, from_gpytorch

torch_double = torch.float64


def with_values(kernel, **values):
    """Set a GPyTorch kernel's hyperparameters (constrained values) and move it to float64."""
    kernel = kernel.double()
    for name, value in values.items():
        setattr(kernel, name, torch.as_tensor(value, dtype=torch_double))
    return kernel


def inputs(d, n=9, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch_double)


def kernel_cases():
    rbf = ScaleKernel(with_values(RBFKernel(ard_num_dims=3), lengthscale=[[0.7, 1.3, 2.1]])).double()
    rbf.outputscale = 1.7
    matern = [with_values(MaternKernel(nu=nu), lengthscale=0.8) for nu in (0.5, 1.5, 2.5)]
    rq = with_values(RQKernel(ard_num_dims=3), lengthscale=[[0.5, 0.9, 1.4]], alpha=0.6)
    linear = with_values(LinearKernel(), variance=0.4)
    sum_product = ScaleKernel(with_values(RBFKernel(), lengthscale=1.1)).double() + matern[1] * rq
    return [("scaled ARD RBF", rbf, 3), *[(f"Matern {nu}", k, 3) for nu, k in zip((0.5, 1.5, 2.5), matern)],
            ("ARD RQ", rq, 3), ("linear", linear, 3), ("sum of product", sum_product, 3),
            ("periodic", with_values(PeriodicKernel(), lengthscale=0.9, period_length=1.7), 1)]


@pytest.mark.parametrize("label, kernel, d", kernel_cases(), ids=[c[0] for c in kernel_cases()])
def test_converted_kernel_evaluates_the_same_matrix(label, kernel, d):
    X, Z = inputs(d), inputs(d, n=5, seed=1)
    settings = from_gpytorch(kernel)
    ours = settings["kernel"].matrix(settings["hyperparameters"], X, Z)
    with torch.no_grad():
        theirs = kernel(X, Z).to_dense()
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


def test_log_marginal_likelihood_equals_gpytorch_exact_mll():
    X = inputs(2, n=40)
    y = torch.sin(X.sum(-1)) + 0.1 * torch.randn(40, generator=torch.Generator().manual_seed(3), dtype=torch_double)
    kernel = ScaleKernel(with_values(MaternKernel(nu=2.5, ard_num_dims=2), lengthscale=[[0.6, 1.4]])).double()
    kernel.outputscale = 0.8
    likelihood = gpytorch.likelihoods.GaussianLikelihood().double()
    likelihood.noise = 0.05

    class ExactGP(gpytorch.models.ExactGP):
        def __init__(self):
            super().__init__(X, y, likelihood)
            self.mean_module, self.covar_module = gpytorch.means.ZeroMean(), kernel

        def forward(self, x):
            return gpytorch.distributions.MultivariateNormal(self.mean_module(x), self.covar_module(x))

    model = ExactGP().double()
    model.train(), likelihood.train()
    with torch.no_grad(), gpytorch.settings.fast_computations(False, False, False), gpytorch.settings.max_cholesky_size(10_000):
        theirs = float(gpytorch.mlls.ExactMarginalLogLikelihood(likelihood, model)(model(X), y)) * 40
    settings = from_gpytorch(kernel, likelihood)
    names = list(settings["hyperparameters"])
    gp = GPRegression(**settings, fixed=names, standardize_x=False, standardize_y=False).fit(X, y)
    assert gp.log_marginal_likelihood() == pytest.approx(theirs, rel=1e-10)


def test_priors_keep_their_densities():
    kernel = ScaleKernel(
        PeriodicKernel(lengthscale_prior=GammaPrior(3.0, 2.0), period_length_prior=LogNormalPrior(0.5, 0.3)),
        outputscale_prior=HalfCauchyPrior(1.5),
    ).double()
    likelihood = gpytorch.likelihoods.GaussianLikelihood(noise_prior=GammaPrior(1.1, 20.0)).double()
    priors = from_gpytorch(kernel, likelihood)["priors"]
    assert set(priors) == {"outputscale", "lengthscale", "period", "noise"}
    value = torch.tensor(0.9, dtype=torch_double)
    assert float(priors["period"].log_prob(value)) == pytest.approx(float(LogNormalPrior(0.5, 0.3).log_prob(value)), rel=1e-12)
    assert float(priors["outputscale"].log_prob(value)) == pytest.approx(float(HalfCauchyPrior(1.5).log_prob(value)), rel=1e-12)
    # probmodels' periodic lengthscale l is the square root of GPyTorch's: p(l) = p_g(l^2) * 2 l
    expected = float(GammaPrior(3.0, 2.0).log_prob(value**2) + torch.log(2 * value))
    assert float(priors["lengthscale"].log_prob(value)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: SpectralMixtureKernel(num_mixtures=2), "SpectralMixtureKernel has no exact probmodels counterpart"),
        (lambda: RBFKernel(active_dims=[0]), "active_dims"),
        (lambda: RBFKernel(batch_shape=torch.Size([2])), "batch_shape"),
        (lambda: RBFKernel(lengthscale_prior=NormalPrior(1.0, 0.1)), "RBFKernel.lengthscale_prior is a NormalPrior"),
        (lambda: PeriodicKernel(ard_num_dims=2), "PeriodicKernel with ard_num_dims > 1"),
    ],
    ids=["unsupported kernel", "active dims", "batch shape", "prior not over positives", "multi-feature periodic"],
)
def test_unconvertible_settings_are_named(make, match):
    with pytest.raises(ModelSpecError, match=match):
        from_gpytorch(make())


def test_other_likelihoods_and_non_kernels_are_refused():
    with pytest.raises(ModelSpecError, match="GaussianLikelihood"):
        from_gpytorch(RBFKernel(), gpytorch.likelihoods.BernoulliLikelihood())
    with pytest.raises(TypeError, match="gpytorch Kernel"):
        from_gpytorch("rbf")


def test_converted_priors_drive_a_map_fit():
    """A MAP fit with the converted priors beats (in log posterior) the same fit's start, and differs from ML."""
    X = torch.linspace(0.0, 5.0, 25, dtype=torch_double).unsqueeze(-1)
    y = torch.sin(2.0 * X[:, 0]) + 0.1 * torch.randn(25, generator=torch.Generator().manual_seed(0), dtype=torch_double)
    kernel = ScaleKernel(PeriodicKernel(lengthscale_prior=GammaPrior(3.0, 2.0)), outputscale_prior=GammaPrior(2.0, 2.0)).double()
    likelihood = gpytorch.likelihoods.GaussianLikelihood(noise_prior=GammaPrior(1.1, 20.0)).double()
    settings = from_gpytorch(kernel, likelihood)
    map_fit = GPRegression(**settings, method="map").fit(X, y)
    ml_fit = GPRegression(kernel=settings["kernel"], hyperparameters=settings["hyperparameters"]).fit(X, y)
    assert map_fit.converged_ and ml_fit.converged_

    def log_prior(fit):
        return sum(float(prior.log_prob(fit.hyperparameters_[name]).sum()) for name, prior in settings["priors"].items())

    def log_posterior(fit):
        return fit.log_marginal_likelihood() + log_prior(fit)

    assert log_posterior(map_fit) >= log_posterior(ml_fit) - 1e-6
    assert log_prior(map_fit) > log_prior(ml_fit)
