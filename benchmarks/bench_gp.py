"""Side-by-side GP regression benchmark: probmodels against scikit-learn, GPyTorch and Pyro.

In one process, on the same data (``y = 5e4 + 1e3 * (f(X) + 0.1 * noise)``
with a smooth ``f``, ``X`` uniform on ``[-2, 2]^d``, fixed seed; the offset
and scale make standardisation matter), for every ``n`` and ``d`` the script
fits an ARD RBF kernel with Gaussian noise by type-II maximum likelihood and
predicts mean and standard deviation at 1,000 test points with

* ``probmodels``: :class:`probmodels.gp.GPRegression` ``("rbf", ard=True)``
  (exact Cholesky, L-BFGS, standardisation inside ``fit``);
* ``sklearn``: ``GaussianProcessRegressor(ConstantKernel * RBF(ARD) + WhiteKernel,
  normalize_y=True, n_restarts_optimizer=0)``, started at the same point as
  probmodels (outputscale 1, lengthscales 1 in standardised input units, noise 0.1);
* ``gpytorch-adam``: the GPyTorch tutorial loop (``ExactGP``, zero mean,
  ``ScaleKernel(RBFKernel(ard_num_dims=d))``, ``GaussianLikelihood``, Adam
  lr 0.1, ``--adam-iters`` iterations, float64, Cholesky forced by
  ``max_cholesky_size``) on inputs and targets standardised by hand exactly as
  probmodels does;
* ``gpytorch-lbfgs``: the same model driven by ``torch.optim.LBFGS``
  (strong-Wolfe line search) to convergence;
* ``pyro-gp``: ``pyro.contrib.gp.models.GPRegression`` with an ARD RBF kernel
  on the same standardised data, trained by ``pyro.contrib.gp.util.train``
  with Adam lr 0.1 for ``--adam-iters`` steps.

Every row records the wall time of fit plus predict (the best of up to
``--repeat`` runs; a run over ``--long`` seconds ends the repeats), the ratio to
probmodels' time, the test RMSE against the noise-free truth (units of
``y``), and the exact log marginal likelihood per training point at that
engine's fitted hyperparameters, evaluated by ONE function for everyone:
probmodels' :meth:`~probmodels.gp.GPRegression.log_marginal_likelihood`
with the hyperparameters mapped into probmodels' standardised units (units
of ``y``, standardisation Jacobian included). A cell whose time,
extrapolated as ``n^3`` from the next smaller ``n`` of the same engine and
``d``, would exceed ``--max-run-seconds`` is skipped and listed.

One more row compares one epoch of sparse variational GP training on
``n = 1e5``, ``d = 3``: :class:`probmodels.gp.SparseGPRegression` (256
inducing points, batch 1024, natural gradients, ``max_epochs=1``, whose time
includes the k-means++ placement of the inducing points and the final
full-data pass; the epoch alone is the time of ``max_epochs=2`` minus that
of ``max_epochs=1``) against GPyTorch's own SVGP (``ApproximateGP``,
``VariationalStrategy``, ``CholeskyVariationalDistribution``, 256 inducing
points from a random subset, Adam lr 0.01, batch 1024, float64).

Examples
--------
::

    OMP_NUM_THREADS=1 python benchmarks/bench_gp.py        # full grid; writes results/gp.json and RESULTS.md
    python benchmarks/bench_gp.py --quick                  # tiny smoke run
    python benchmarks/bench_gp.py --render                 # re-render RESULTS.md from the JSON
"""

from __future__ import annotations

import argparse
import datetime
import gc
import importlib
import json
import os
import shlex
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from common import (  # noqa: E402
    RESULTS_DIR, RESULTS_MD, describe_machine, fmt, machine_info, parse_ints, reproduce_lines, write_json, write_results_section,
)

from probmodels.exceptions import ConvergenceWarning  # noqa: E402
from probmodels.gp import GPRegression, SparseGPRegression  # noqa: E402

ENGINES = ("probmodels", "sklearn", "gpytorch-adam", "gpytorch-lbfgs", "pyro-gp")
TARGET_ENGINES = ("probmodels", "sklearn")
"""The engines the targets compare; ``--target-max-run-seconds`` bounds them."""
NEEDS = {"sklearn": "sklearn.gaussian_process", "gpytorch-adam": "gpytorch", "gpytorch-lbfgs": "gpytorch", "pyro-gp": "pyro.contrib.gp"}
PACKAGES = ("torch", "numpy", "scikit-learn", "gpytorch", "linear_operator", "pyro-ppl")
OFFSET, SCALE, NOISE_SD = 5e4, 1e3, 0.1
N_TEST = 1000
LML_TOLERANCE = 1e-5


# ----------------------------------------------------------------------------- data


def truth(X: np.ndarray) -> np.ndarray:
    """The noise-free function in the units of ``y``: ``5e4 + 1e3 * sum_j w_j sin(1.5 x_j + j)``, ``w_j = 1/(j+1)``."""
    d = X.shape[1]
    weights = 1.0 / np.arange(1, d + 1)
    f = (weights * np.sin(1.5 * X + np.arange(d))).sum(1)
    return OFFSET + SCALE * f


def make_case(n: int, d: int, seed: int) -> dict[str, np.ndarray]:
    """Training data ``(X, y)`` of size ``n`` and 1,000 test inputs with their noise-free values, in float64."""
    rng = np.random.default_rng([seed, n, d])
    X = rng.uniform(-2.0, 2.0, size=(n, d))
    y = truth(X) + SCALE * NOISE_SD * rng.standard_normal(n)
    X_test = rng.uniform(-2.0, 2.0, size=(N_TEST, d))
    return dict(X=X, y=y, X_test=X_test, f_test=truth(X_test))


def standardise(case: dict[str, np.ndarray]) -> dict[str, Any]:
    """Inputs and targets standardised as probmodels does (means, population standard deviations), as float64 tensors."""
    X, y = case["X"], case["y"]
    x_mean, x_scale = X.mean(0), X.std(0)
    y_mean, y_scale = float(y.mean()), float(y.std())
    return dict(
        X=torch.as_tensor((X - x_mean) / x_scale), y=torch.as_tensor((y - y_mean) / y_scale),
        X_test=torch.as_tensor((case["X_test"] - x_mean) / x_scale), x_scale=x_scale, y_mean=y_mean, y_scale=y_scale,
    )


# ----------------------------------------------------------------------------- engines
# Each runner fits and predicts; it returns the predictive mean in units of y and the fitted
# hyperparameters in probmodels' standardised units {"outputscale", "lengthscale" (d,), "noise"}.


def run_probmodels(case: dict[str, Any], args: argparse.Namespace) -> tuple[np.ndarray, dict[str, np.ndarray], Any]:
    """``GPRegression("rbf", ard=True)``: fit and predict (mean and sd); also returns the fitted model."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = GPRegression("rbf", ard=True).fit(case["X"], case["y"])
    mean, _ = model.predict(case["X_test"], return_std=True)
    hyper = {k: v.detach().numpy() for k, v in model.hyperparameters_.items()}
    return mean.numpy(), hyper, model


def run_sklearn(case: dict[str, Any], args: argparse.Namespace) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``GaussianProcessRegressor`` with ``ConstantKernel * RBF(ARD) + WhiteKernel`` and ``normalize_y``."""
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

    x_scale = case["X"].std(0)
    kernel = ConstantKernel(1.0) * RBF(length_scale=x_scale.copy()) + WhiteKernel(noise_level=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning about bounds
        model = GaussianProcessRegressor(kernel=kernel, normalize_y=True, n_restarts_optimizer=0, random_state=0)
        model.fit(case["X"], case["y"])
        mean, _ = model.predict(case["X_test"], return_std=True)
    fitted = model.kernel_
    hyper = dict(
        outputscale=np.asarray(fitted.k1.k1.constant_value), lengthscale=np.atleast_1d(fitted.k1.k2.length_scale) / x_scale,
        noise=np.asarray(fitted.k2.noise_level),
    )
    return mean, hyper


def _gpytorch_exact(data: dict[str, Any]):
    import gpytorch

    class ExactGPModel(gpytorch.models.ExactGP):
        def __init__(self, train_x, train_y, likelihood):
            super().__init__(train_x, train_y, likelihood)
            self.mean_module = gpytorch.means.ZeroMean()
            self.covar_module = gpytorch.kernels.ScaleKernel(gpytorch.kernels.RBFKernel(ard_num_dims=train_x.shape[1]))

        def forward(self, x):
            return gpytorch.distributions.MultivariateNormal(self.mean_module(x), self.covar_module(x))

    likelihood = gpytorch.likelihoods.GaussianLikelihood().double()
    model = ExactGPModel(data["X"], data["y"], likelihood).double()
    return model, likelihood


def _gpytorch_predict(model, likelihood, data: dict[str, Any]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    import gpytorch

    model.eval()
    likelihood.eval()
    with torch.no_grad(), gpytorch.settings.max_cholesky_size(10**7):
        latent = model(data["X_test"])
        mean, _ = latent.mean, latent.variance
    hyper = dict(
        outputscale=model.covar_module.outputscale.detach().numpy(),
        lengthscale=model.covar_module.base_kernel.lengthscale.detach().reshape(-1).numpy(),
        noise=likelihood.noise.detach().reshape(()).numpy(),
    )
    return mean.numpy() * data["y_scale"] + data["y_mean"], hyper


def run_gpytorch(case: dict[str, Any], args: argparse.Namespace, optimizer: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """GPyTorch's exact GP on hand-standardised data, trained by Adam (the tutorial loop) or L-BFGS."""
    import gpytorch

    data = standardise(case)
    model, likelihood = _gpytorch_exact(data)
    model.train()
    likelihood.train()
    mll = gpytorch.mlls.ExactMarginalLogLikelihood(likelihood, model)
    with gpytorch.settings.max_cholesky_size(10**7):
        if optimizer == "adam":
            opt = torch.optim.Adam(model.parameters(), lr=0.1)
            for _ in range(args.adam_iters):
                opt.zero_grad()
                loss = -mll(model(data["X"]), data["y"])
                loss.backward()
                opt.step()
        else:
            opt = torch.optim.LBFGS(
                model.parameters(), lr=1.0, max_iter=args.lbfgs_iters, max_eval=2 * args.lbfgs_iters, tolerance_grad=1e-7,
                tolerance_change=1e-12, history_size=50, line_search_fn="strong_wolfe",
            )

            def closure():
                opt.zero_grad()
                loss = -mll(model(data["X"]), data["y"])
                loss.backward()
                return loss

            opt.step(closure)
    return _gpytorch_predict(model, likelihood, data)


def run_pyro(case: dict[str, Any], args: argparse.Namespace) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``pyro.contrib.gp.models.GPRegression`` (ARD RBF) on hand-standardised data, ``gp.util.train`` with Adam."""
    import pyro
    import pyro.contrib.gp as gp

    pyro.clear_param_store()
    data = standardise(case)
    d = data["X"].shape[1]
    kernel = gp.kernels.RBF(input_dim=d, variance=torch.tensor(1.0, dtype=torch.float64),
                            lengthscale=torch.ones(d, dtype=torch.float64))
    model = gp.models.GPRegression(data["X"], data["y"], kernel, noise=torch.tensor(0.1, dtype=torch.float64))
    gp.util.train(model, optimizer=torch.optim.Adam(model.parameters(), lr=0.1), num_steps=args.adam_iters)
    with torch.no_grad():
        mean, _ = model(data["X_test"], full_cov=False, noiseless=True)
    hyper = dict(
        outputscale=kernel.variance.detach().numpy(), lengthscale=kernel.lengthscale.detach().reshape(-1).numpy(),
        noise=model.noise.detach().numpy(),
    )
    return mean.numpy() * data["y_scale"] + data["y_mean"], hyper


RUNNERS: dict[str, Callable[[dict[str, Any], argparse.Namespace], tuple]] = {
    "probmodels": run_probmodels,
    "sklearn": run_sklearn,
    "gpytorch-adam": lambda case, args: run_gpytorch(case, args, "adam"),
    "gpytorch-lbfgs": lambda case, args: run_gpytorch(case, args, "lbfgs"),
    "pyro-gp": run_pyro,
}


def common_lml(reference: GPRegression, hyper: dict[str, np.ndarray]) -> float | None:
    """Exact log marginal likelihood per point (units of ``y``) at ``hyper`` (standardised units), by probmodels.

    None when the covariance cannot be factorised at those values.
    """
    values = {k: torch.as_tensor(np.asarray(v, dtype=np.float64)) for k, v in hyper.items()}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lml = reference.log_marginal_likelihood(values)
    except Exception:  # noqa: BLE001 - a failed factorisation is recorded as a missing value
        return None
    return lml / reference.X_train_.shape[0]


# ----------------------------------------------------------------------------- SVGP


def svgp_probmodels(X: np.ndarray, y: np.ndarray, args: argparse.Namespace, epochs: int = 1):
    """``epochs`` epochs of :class:`SparseGPRegression` (``tol=0``, so none stops early); returns the fitted model."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return SparseGPRegression("rbf", ard=True, num_inducing=args.svgp_inducing, batch_size=args.svgp_batch,
                                  max_epochs=epochs, tol=0.0, seed=args.seed).fit(X, y)


def svgp_gpytorch(data: dict[str, Any], args: argparse.Namespace) -> tuple[float, np.ndarray]:
    """GPyTorch's SVGP: the seconds of one epoch of Adam (batch ``--svgp-batch``) and the test mean in units of ``y``."""
    import gpytorch

    class SVGP(gpytorch.models.ApproximateGP):
        def __init__(self, inducing):
            dist = gpytorch.variational.CholeskyVariationalDistribution(inducing.shape[0])
            strategy = gpytorch.variational.VariationalStrategy(self, inducing, dist, learn_inducing_locations=True)
            super().__init__(strategy)
            self.mean_module = gpytorch.means.ZeroMean()
            self.covar_module = gpytorch.kernels.ScaleKernel(gpytorch.kernels.RBFKernel(ard_num_dims=inducing.shape[1]))

        def forward(self, x):
            return gpytorch.distributions.MultivariateNormal(self.mean_module(x), self.covar_module(x))

    X, y = data["X"], data["y"]
    n = X.shape[0]
    generator = torch.Generator().manual_seed(args.seed)
    inducing = X[torch.randperm(n, generator=generator)[: args.svgp_inducing]].clone()
    model = SVGP(inducing).double()
    likelihood = gpytorch.likelihoods.GaussianLikelihood().double()
    model.train()
    likelihood.train()
    optimizer = torch.optim.Adam([*model.parameters(), *likelihood.parameters()], lr=0.01)
    mll = gpytorch.mlls.VariationalELBO(likelihood, model, num_data=n)
    started = time.perf_counter()
    order = torch.randperm(n, generator=generator)
    for start in range(0, n, args.svgp_batch):
        index = order[start : start + args.svgp_batch]
        optimizer.zero_grad()
        loss = -mll(model(X[index]), y[index])
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - started
    model.eval()
    with torch.no_grad():
        mean = model(data["X_test"]).mean
    return seconds, mean.numpy() * data["y_scale"] + data["y_mean"]


def run_svgp(args: argparse.Namespace, available: list[str]) -> list[dict[str, Any]]:
    """The SVGP rows: seconds for one epoch and test RMSE after it, per engine."""
    n, d = args.svgp_n, 3
    case = make_case(n, d, args.seed)
    rows = []
    seconds = {}
    for epochs in (1, 2):
        print(f"SVGP n={n} d={d}: probmodels, {epochs} epoch(s) ...", file=sys.stderr, flush=True)
        gc.collect()
        started = time.perf_counter()
        model = svgp_probmodels(case["X"], case["y"], args, epochs)
        seconds[epochs] = time.perf_counter() - started
        if epochs == 1:
            mean = model.predict(case["X_test"]).numpy()
            rows.append(dict(engine="probmodels", n=n, d=d, seconds=seconds[1], rmse=rmse(mean, case["f_test"]),
                             what="SparseGPRegression.fit(max_epochs=1): k-means++ inducing init, one epoch, final full-data q and ELBO"))
    rows.append(dict(engine="probmodels (epoch only)", n=n, d=d, seconds=seconds[2] - seconds[1], rmse=None,
                     what="fit(max_epochs=2) time minus fit(max_epochs=1) time: one natural-gradient epoch"))
    if "gpytorch" in {NEEDS.get(e) for e in available}:
        print(f"SVGP n={n} d={d}: gpytorch ...", file=sys.stderr, flush=True)
        gc.collect()
        epoch_seconds, mean = svgp_gpytorch(standardise(case), args)
        rows.append(dict(engine="gpytorch", n=n, d=d, seconds=epoch_seconds, rmse=rmse(mean, case["f_test"]),
                         what="one epoch of Adam on VariationalELBO (random-subset inducing init not timed)"))
    return rows


# ----------------------------------------------------------------------------- running


def rmse(mean: np.ndarray, f: np.ndarray) -> float:
    """Root mean squared error of a predictive mean against the noise-free truth (units of ``y``)."""
    return float(np.sqrt(np.mean((np.asarray(mean, dtype=np.float64) - f) ** 2)))


def available_engines(engines: list[str]) -> tuple[list[str], dict[str, str]]:
    """The engines whose packages import, and why the others are left out."""
    keep, unavailable = [], {}
    for engine in engines:
        module = NEEDS.get(engine)
        if module:
            try:
                importlib.import_module(module)
            except ImportError as error:
                unavailable[engine] = f"not importable: {error}"
                continue
        keep.append(engine)
    return keep, unavailable


def warm_up(engines: list[str], args: argparse.Namespace) -> None:
    """One tiny fit per engine, untimed, so imports and first-call set-up stay out of the timings."""
    case = make_case(40, 2, args.seed + 1)
    small = argparse.Namespace(**{**vars(args), "adam_iters": 3, "lbfgs_iters": 5})
    for engine in engines:
        RUNNERS[engine](case, small)


def skip_reason(args: argparse.Namespace, previous: tuple[int, float | None] | None, n: int, engine: str) -> str | None:
    """Why a cell is not run: its time extrapolated as ``n^3`` from the next smaller ``n`` exceeds the engine's
    limit (``--target-max-run-seconds`` for probmodels and sklearn, the engines of the targets;
    ``--max-run-seconds`` for the others), or that smaller cell was skipped itself (``previous = (n, None)``)."""
    if previous is None:
        return None
    smaller, seconds = previous
    if seconds is None:
        return f"skipped already at n={smaller}"
    predicted = seconds * (n / smaller) ** 3
    limit = args.max_run_seconds
    if engine in TARGET_ENGINES and args.target_max_run_seconds is not None:
        limit = args.target_max_run_seconds
    if predicted > limit:
        return f"predicted {predicted:.0f} s (n^3 from {seconds:.1f} s at n={smaller}; limit {limit:g} s)"
    return None


def run_benchmark(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Run the grid and the SVGP row; return the report (also written to ``args.output``)."""
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    engines, unavailable = available_engines(args.engines)
    rows: list[dict[str, Any]] = []
    svgp: list[dict[str, Any]] = []
    with threadpool_limits(args.threads):
        warm_up(engines, args)
        for d in args.dims:
            previous: dict[str, tuple[int, float | None]] = {}
            for n in args.sizes:
                case = make_case(n, d, args.seed)
                reference = None
                for engine in engines:
                    row = dict(engine=engine, n=n, d=d, times=[], seconds=None, lml_per_point=None, rmse=None,
                               hyperparameters=None, skipped=None)
                    reason = skip_reason(args, previous.get(engine), n, engine)
                    if engine != "probmodels" and reference is None:
                        reason = reason or "probmodels (the reference of the common log marginal likelihood) was not run"
                    if reason:
                        row["skipped"] = reason
                        previous[engine] = (n, None)
                        rows.append(row)
                        continue
                    print(f"d={d} n={n}: {engine} ...", file=sys.stderr, flush=True)
                    for _ in range(args.repeat):
                        gc.collect()
                        started = time.perf_counter()
                        out = RUNNERS[engine](case, args)
                        row["times"].append(time.perf_counter() - started)
                        if row["times"][-1] > args.long:
                            break
                    row["seconds"] = min(row["times"])
                    mean, hyper = out[0], out[1]
                    if engine == "probmodels":
                        reference = out[2]
                    previous[engine] = (n, row["seconds"])
                    row["rmse"] = rmse(mean, case["f_test"])
                    row["hyperparameters"] = {k: np.asarray(v).tolist() for k, v in hyper.items()}
                    row["lml_per_point"] = common_lml(reference, hyper)
                    rows.append(row)
                del case, reference
                gc.collect()
                write_report(args, command, unavailable, rows, svgp)
        if args.svgp_n > 0:
            svgp = run_svgp(args, engines)
    return write_report(args, command, unavailable, rows, svgp)


def write_report(args: argparse.Namespace, command: str, unavailable: dict[str, str], rows: list[dict[str, Any]],
                 svgp: list[dict[str, Any]]) -> dict[str, Any]:
    """Write the rows so far, with the settings, the machine and the command line, to ``args.output``."""
    report = {
        "command": command,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(PACKAGES),
        "settings": dict(
            sizes=args.sizes, dims=args.dims, n_test=N_TEST, offset=OFFSET, scale=SCALE, noise_sd=NOISE_SD * SCALE,
            adam_iters=args.adam_iters, lbfgs_iters=args.lbfgs_iters, repeat=args.repeat, long=args.long,
            max_run_seconds=args.max_run_seconds, threads=args.threads, omp_num_threads=os.environ.get("OMP_NUM_THREADS"),
            seed=args.seed, lml_tolerance=LML_TOLERANCE, svgp_n=args.svgp_n, svgp_inducing=args.svgp_inducing,
            svgp_batch=args.svgp_batch,
        ),
        "unavailable": unavailable,
        "rows": rows,
        "svgp": svgp,
    }
    output = Path(args.output)
    write_json(output, report)
    return report


# ----------------------------------------------------------------------------- rendering


def render(report: dict[str, Any]) -> str:
    """The ``gp`` section of the results page: the table, the targets, the skipped cells, the SVGP row, the command."""
    settings = report["settings"]
    base = {(r["d"], r["n"]): r for r in report["rows"] if r["engine"] == "probmodels" and r["seconds"] is not None}
    lines = ["| d | n | engine | fit + predict s | ÷ probmodels | LML / point | − probmodels | test RMSE |",
             "|---|---|---|---|---|---|---|---|"]
    notes, time_ok, lml_ok, compared = [], [], [], []
    for row in report["rows"]:
        if row["seconds"] is None:
            notes.append(f"d={row['d']}, n={row['n']}, {row['engine']}: {row['skipped']}")
            continue
        ref = base.get((row["d"], row["n"]))
        ratio = row["seconds"] / ref["seconds"] if ref else None
        diff = (row["lml_per_point"] - ref["lml_per_point"]
                if ref and row["lml_per_point"] is not None and ref["lml_per_point"] is not None else None)
        lml = f"{row['lml_per_point']:.6f}" if row["lml_per_point"] is not None else "–"
        lines.append(f"| {row['d']} | {row['n']} | {row['engine']} | {fmt(row['seconds'])} | {fmt(ratio)} | {lml} | "
                     f"{'–' if diff is None or row['engine'] == 'probmodels' else f'{diff:+.2e}'} | {fmt(row['rmse'])} |")
        if row["engine"] == "sklearn" and ref:
            need = 1.0 if row["d"] == 1 else 2.0
            compared.append(row)
            time_ok.append((row, ratio >= need, need, ratio))
            lml_ok.append((row, diff is not None and diff >= -settings["lml_tolerance"], diff))
    machine = report["machine"]
    text = [
        "## Gaussian processes (`bench_gp.py`)",
        "",
        f"Exact GP regression, ARD RBF kernel plus Gaussian noise, type-II maximum likelihood; data "
        f"`y = {settings['offset']:g} + {settings['scale']:g} (sum_j sin(1.5 x_j + j) / (j + 1)) + noise` (noise sd "
        f"{settings['noise_sd']:g}), `X` uniform on [-2, 2]^d, seed {settings['seed']}; fit plus predict (mean and sd) at "
        f"{settings['n_test']} test points; best wall time of up to {settings['repeat']} run(s) (one run when it took over "
        f"{settings['long']:g} s), {settings['threads']} torch and "
        "BLAS thread(s) for every engine. Ratios above 1: probmodels is faster. LML / point: the exact log marginal "
        "likelihood per training point at each engine's fitted hyperparameters, evaluated by one function "
        "(probmodels' `log_marginal_likelihood` in its standardised units, reported in the units of y); "
        "`− probmodels`: its difference from probmodels' (negative: a worse optimum). Test RMSE against the "
        f"noise-free truth, units of y. GPyTorch-Adam and pyro-gp run {settings['adam_iters']} Adam steps (lr 0.1); "
        f"GPyTorch-L-BFGS up to {settings['lbfgs_iters']} iterations. Run {report['created']} on "
        f"{describe_machine(machine)}.",
        "",
        *lines,
        "",
    ]
    if compared:
        slow = [f"d={r['d']} n={r['n']}: {ratio:.2f} (target {need:g})" for r, ok, need, ratio in time_ok if not ok]
        worse = [f"d={r['d']} n={r['n']}: {'–' if diff is None else f'{diff:+.2e}'}" for r, ok, diff in lml_ok if not ok]
        text.append(
            f"Targets (against sklearn): time ratio >= 1 at d = 1 and >= 2 at d > 1 met in {len(time_ok) - len(slow)} of "
            f"{len(time_ok)} cells" + (f" (missed: {'; '.join(slow)})" if slow else "")
            + f"; LML per point within {settings['lml_tolerance']:g} of sklearn's or above in "
            f"{len(lml_ok) - len(worse)} of {len(lml_ok)}" + (f" (missed: {'; '.join(worse)})" if worse else "") + "."
        )
        text.append("")
    for engine, why in report.get("unavailable", {}).items():
        text += [f"{engine}: {why}.", ""]
    if notes:
        text += ["Skipped cells:", ""] + [f"- {note}" for note in notes] + [""]
    if report.get("svgp"):
        text += [
            f"SVGP, n = {settings['svgp_n']:g}, d = 3, {settings['svgp_inducing']} inducing points, batch "
            f"{settings['svgp_batch']}, float64, one epoch:",
            "",
            "| engine | seconds | test RMSE after it | what is timed |",
            "|---|---|---|---|",
            *[f"| {r['engine']} | {fmt(r['seconds'])} | {fmt(r['rmse'])} | {r['what']} |" for r in report["svgp"]],
            "",
        ]
    text += reproduce_lines(report["command"])
    return "\n".join(text)


# ----------------------------------------------------------------------------- command line


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse the command line (``--quick`` replaces the grid by a tiny one)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=parse_ints, default=[500, 2000, 5000], help="training sizes n, comma-separated")
    parser.add_argument("--dims", type=parse_ints, default=[1, 5], help="input dimensions d, comma-separated")
    parser.add_argument("--engines", type=lambda s: [e for e in s.split(",") if e], default=list(ENGINES))
    parser.add_argument("--adam-iters", type=int, default=100, help="Adam steps of gpytorch-adam and pyro-gp")
    parser.add_argument("--lbfgs-iters", type=int, default=500, help="iteration limit of gpytorch-lbfgs")
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell; the best is reported")
    parser.add_argument("--long", type=float, default=5.0, help="a run longer than this (s) ends the repeats")
    parser.add_argument("--max-run-seconds", type=float, default=60.0, help="skip a cell predicted to take longer")
    parser.add_argument("--target-max-run-seconds", type=float, default=None,
                        help="the same limit for probmodels and sklearn (the targets' engines); default --max-run-seconds")
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS threads for every engine")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--svgp-n", type=int, default=100_000, help="training size of the SVGP row (0: no SVGP row)")
    parser.add_argument("--svgp-inducing", type=int, default=256)
    parser.add_argument("--svgp-batch", type=int, default=1024)
    parser.add_argument("--quick", action="store_true", help="tiny grid (n 40 and 80, d 1 and 2, 10 Adam steps, 1 repeat, SVGP on n = 1000)")
    parser.add_argument("--output", default=str(RESULTS_DIR / "gp.json"), help="JSON file to write (or read with --render)")
    parser.add_argument("--markdown", default=str(RESULTS_MD), help="results page whose 'gp' section is rewritten")
    parser.add_argument("--render", action="store_true", help="only re-render the markdown from --output")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.dims, args.adam_iters, args.lbfgs_iters, args.repeat = [40, 80], [1, 2], 10, 50, 1
        args.svgp_n, args.svgp_inducing, args.svgp_batch = 1000, 16, 500
    bad = sorted(set(args.engines) - set(ENGINES))
    if bad:
        parser.error(f"unknown engine {bad}; engines: {ENGINES}")
    if "probmodels" not in args.engines:
        parser.error("the engines must include probmodels (the reference of the common log marginal likelihood)")
    args.engines = [e for e in ENGINES if e in args.engines]  # probmodels first
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (unless ``--render``) and rewrite the ``gp`` section of the results page."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.render:
        report = json.loads(Path(args.output).read_text())
    else:
        script = Path(__file__).resolve().relative_to(REPO)
        env = os.environ.get("OMP_NUM_THREADS")
        prefix = f"OMP_NUM_THREADS={env} " if env else ""
        report = run_benchmark(args, prefix + shlex.join(["python", str(script), *argv]))
    path = write_results_section("gp", render(report), Path(args.markdown))
    print(f"wrote the gp section of {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
