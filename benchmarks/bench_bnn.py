"""Bayesian neural networks: accuracy and calibration of every inference method, and SVI speed
side by side with plain Pyro and NumPyro.

Accuracy: scikit-learn's bundled ``load_diabetes`` (regression, targets
standardised with the training mean and sd) and ``load_breast_cancer``
(binary classification), one fixed 80/20 split (``random_state=0``), one
hidden layer of 50 tanh units, N(0, 1) priors on every weight,
``HalfNormal(1)`` on the regression noise; inputs standardised inside
:class:`probmodels.bnn.BayesianMLP`. Methods: MAP and a deep ensemble of 5
(``"delta"`` guides, number of steps chosen on a 10 % held-out split), mean-
field and low-rank Gaussian SVI (1000 draws), and NUTS (4 chains, the
reference). Each row reports the test log predictive density per point,
RMSE or accuracy, the calibration error (top-label ECE for the classifier,
quantile calibration error from PIT values for regression), coverage of the
90 % predictive interval, the fit's wall time and, for NUTS, the worst
R-hat over test points of the network's output (chains are compared on the
predictive, since weight-space symmetries make per-weight R-hat meaningless).

Speed: SVI steps per second on the diabetes network, mean-field guide,
Adam lr 0.01, one particle, float32 and float64: probmodels'
:func:`probmodels.fit_svi` (``tol=0``), plain Pyro (``PyroModule`` with
``PyroSample`` priors, ``AutoNormal``, a hand-written ``SVI.step`` loop) and
NumPyro (``AutoNormal``, ``SVI.run``, jit compilation included and excluded).

Examples
--------
::

    python benchmarks/bench_bnn.py --datasets diabetes --methods nuts   # one cell (results are merged)
    python benchmarks/bench_bnn.py --speed                              # the speed table
    python benchmarks/bench_bnn.py --render                             # RESULTS.md from the JSON
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from common import RESULTS_DIR, describe_machine, fmt, machine_info, reproduce_lines, write_json, write_results_section  # noqa: E402

from probmodels.bnn import BayesianMLP  # noqa: E402
from probmodels.diagnostics.arviz import az  # noqa: E402

ACCURACY_JSON = RESULTS_DIR / "bnn_accuracy.json"
SPEED_JSON = RESULTS_DIR / "bnn_speed.json"
DATASETS = ("diabetes", "breast_cancer")
METHODS = ("map", "ensemble", "svi", "lowrank", "nuts")
HIDDEN = 50


def load(name: str) -> tuple[np.ndarray, ...]:
    """The fixed 80/20 split; diabetes targets standardised with training statistics."""
    from sklearn.datasets import load_breast_cancer, load_diabetes
    from sklearn.model_selection import train_test_split

    X, y = (load_diabetes if name == "diabetes" else load_breast_cancer)(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=0)
    if name == "diabetes":
        mean, sd = ytr.mean(), ytr.std()
        ytr, yte = (ytr - mean) / sd, (yte - mean) / sd
    return Xtr, Xte, ytr.astype(float), yte.astype(float)


def predictive_rhat(est: BayesianMLP, X: np.ndarray) -> float:
    """Worst rank-normalised R-hat over test points of the network output, chains as fitted."""
    post = est.posterior_
    x = est._inputs(X)
    out = est.model_.forward(est._params, x)[..., 0]
    draws = out.reshape(post.num_chains, post.num_draws, -1).detach().cpu().numpy()
    return float(np.nanmax(az.rhat(az.convert_to_dataset(draws))["x"].values))


def run_cell(dataset: str, method: str, args: argparse.Namespace) -> dict:
    """Fit one method on one dataset and score it on the test split."""
    Xtr, Xte, ytr, yte = load(dataset)
    task = "regression" if dataset == "diabetes" else "classification"
    options = dict(task=task, hidden=(HIDDEN,), activation="tanh", prior_scale=1.0, method=method, seed=0, progress_bar=args.progress,
                   standardize_y=False, num_steps=args.num_steps, num_samples=1000, n_members=5)
    if method == "nuts":
        options.update(num_samples=args.nuts_draws, num_warmup=args.nuts_warmup, num_chains=4, nuts_init=args.nuts_init,
                       mcmc_options={"max_tree_depth": args.nuts_max_tree_depth})
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = BayesianMLP(**options).fit(Xtr, ytr)
    seconds = time.perf_counter() - started
    row = {"dataset": dataset, "method": method, "fit_seconds": seconds, **est.score(Xte, yte, level=0.9),
           "n_weights": est.model_.n_weights, "warnings": sorted({str(w.message)[:160] for w in caught})}
    if method == "nuts":
        stats = est.posterior_.sample_stats
        row.update(num_warmup=args.nuts_warmup, num_draws=args.nuts_draws, max_tree_depth=args.nuts_max_tree_depth, nuts_init=args.nuts_init, rhat_predictive=predictive_rhat(est, Xte), divergences=int(stats["diverging"].sum()),
                   mean_tree_depth=float(stats["tree_depth"].double().mean()), compiled=str(est.posterior_.attrs.get("compiled")))
    if method in ("map", "ensemble"):
        row["early_stopping_steps"] = int(np.asarray(est.posterior_.attrs["num_steps"]).max())
    print(json.dumps(row), flush=True)
    return row


def speed(args: argparse.Namespace) -> list[dict]:
    """SVI steps/s of probmodels, plain Pyro and NumPyro on the diabetes network."""
    import pyro
    import pyro.distributions as dist
    from pyro.infer import SVI, Trace_ELBO
    from pyro.infer.autoguide import AutoNormal
    from pyro.nn import PyroModule, PyroSample

    from probmodels import fit_svi
    from probmodels.bnn import MLPModel

    Xtr, _, ytr, _ = load("diabetes")
    Xtr = (Xtr - Xtr.mean(0)) / Xtr.std(0)
    steps, rows = args.speed_steps, []
    for dtype in (torch.float32, torch.float64):
        x, y = torch.as_tensor(Xtr, dtype=dtype), torch.as_tensor(ytr, dtype=dtype)
        post = fit_svi(MLPModel(x.shape[1], (HIDDEN,)), x, y, num_steps=steps, tol=0.0, num_samples=1, progress_bar=False)
        rows.append({"engine": "probmodels fit_svi", "dtype": str(dtype)[6:], "steps_per_s": steps / post.attrs["elapsed_seconds"]})

        class Net(PyroModule):
            def __init__(self) -> None:
                super().__init__()
                self.fc1 = PyroModule[torch.nn.Linear](x.shape[1], HIDDEN)
                self.fc1.weight = PyroSample(dist.Normal(torch.tensor(0.0, dtype=dtype), 1.0).expand([HIDDEN, x.shape[1]]).to_event(2))
                self.fc1.bias = PyroSample(dist.Normal(torch.tensor(0.0, dtype=dtype), 1.0).expand([HIDDEN]).to_event(1))
                self.fc2 = PyroModule[torch.nn.Linear](HIDDEN, 1)
                self.fc2.weight = PyroSample(dist.Normal(torch.tensor(0.0, dtype=dtype), 1.0).expand([1, HIDDEN]).to_event(2))
                self.fc2.bias = PyroSample(dist.Normal(torch.tensor(0.0, dtype=dtype), 1.0).expand([1]).to_event(1))

            def forward(self, x, y=None):
                mean = self.fc2(torch.tanh(self.fc1(x))).squeeze(-1)
                sigma = pyro.sample("sigma", dist.HalfNormal(torch.tensor(1.0, dtype=dtype)))
                with pyro.plate("data", x.shape[0]):
                    return pyro.sample("obs", dist.Normal(mean, sigma), obs=y)

        pyro.clear_param_store()
        pyro.set_rng_seed(0)
        net = Net().to(dtype)
        svi = SVI(net, AutoNormal(net, init_scale=0.1), pyro.optim.Adam({"lr": 0.01}), Trace_ELBO())
        started = time.perf_counter()
        for _ in range(steps):
            svi.step(x, y)
        rows.append({"engine": "plain Pyro (PyroModule + AutoNormal)", "dtype": str(dtype)[6:], "steps_per_s": steps / (time.perf_counter() - started)})
    rows.extend(_numpyro_speed(Xtr, ytr, steps))
    for row in rows:
        print(json.dumps(row), flush=True)
    return rows


def _numpyro_speed(Xtr: np.ndarray, ytr: np.ndarray, steps: int) -> list[dict]:
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as ndist
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.infer.autoguide import AutoNormal

    rows = []
    for x64 in (False, True):
        jax.config.update("jax_enable_x64", x64)
        x, y = jnp.asarray(Xtr), jnp.asarray(ytr)

        def model(x, y=None):
            w1 = numpyro.sample("w1", ndist.Normal(0, 1).expand([x.shape[1], HIDDEN]).to_event(2))
            b1 = numpyro.sample("b1", ndist.Normal(0, 1).expand([HIDDEN]).to_event(1))
            w2 = numpyro.sample("w2", ndist.Normal(0, 1).expand([HIDDEN, 1]).to_event(2))
            b2 = numpyro.sample("b2", ndist.Normal(0, 1).expand([1]).to_event(1))
            sigma = numpyro.sample("sigma", ndist.HalfNormal(1.0))
            mean = (jnp.tanh(x @ w1 + b1) @ w2 + b2)[..., 0]
            with numpyro.plate("data", x.shape[0]):
                numpyro.sample("obs", ndist.Normal(mean, sigma), obs=y)

        svi = SVI(model, AutoNormal(model, init_scale=0.1), numpyro.optim.Adam(0.01), Trace_ELBO())
        started = time.perf_counter()
        svi.run(jax.random.PRNGKey(0), 10, x, y, progress_bar=False)
        compile_s = time.perf_counter() - started
        started = time.perf_counter()
        result = svi.run(jax.random.PRNGKey(0), steps, x, y, progress_bar=False)
        result.losses.block_until_ready()
        run_s = time.perf_counter() - started
        rows.append({"engine": "NumPyro (AutoNormal, SVI.run, jit)", "dtype": "float64" if x64 else "float32",
                     "steps_per_s": steps / run_s, "compile_seconds": compile_s})
    return rows


def _merge(path: Path, rows: list[dict], key: tuple[str, ...]) -> dict:
    report = json.loads(path.read_text()) if path.exists() else {"rows": []}
    fresh = {tuple(r[k] for k in key) for r in rows}
    report["rows"] = [r for r in report["rows"] if tuple(r[k] for k in key) not in fresh] + rows
    report["machine"] = machine_info(["torch", "pyro-ppl", "numpyro", "jax", "scikit-learn"])
    report["load_average_1min"] = os.getloadavg()[0]
    return report


def render() -> None:
    """Write the bnn section of RESULTS.md from the JSON files."""
    lines = ["## Bayesian neural networks (`bench_bnn.py`)", ""]
    if ACCURACY_JSON.exists():
        report = json.loads(ACCURACY_JSON.read_text())
        lines += [f"Machine: {describe_machine(report['machine'])}.", "",
                  "One hidden layer of 50 tanh units, N(0, 1) priors, fixed 80/20 split; test log predictive density per point "
                  "(diabetes in standardised target units), RMSE or accuracy, calibration error (regression: quantile calibration "
                  "from PIT values; classification: top-label ECE, 10 bins), coverage of the 90 % interval. NUTS: 4 chains; "
                  "R-hat is the worst over test points of the network output.", ""]
        order = {m: i for i, m in enumerate(METHODS)}
        for dataset in DATASETS:
            rows = sorted((r for r in report["rows"] if r["dataset"] == dataset), key=lambda r: order.get(r["method"], 99))
            if not rows:
                continue
            metric = "rmse" if dataset == "diabetes" else "accuracy"
            lines += [f"**{dataset}**", "", f"| method | test log-lik / point | {metric} | calibration error | 90 % coverage | fit s | NUTS R-hat (predictive) | notes |",
                      "|---|---|---|---|---|---|---|---|"]
            for r in rows:
                notes = []
                if "early_stopping_steps" in r:
                    notes.append(f"{r['early_stopping_steps']} steps (early stopping)")
                if "divergences" in r:
                    notes.append(f"{r['divergences']} divergences, mean tree depth {r['mean_tree_depth']:.1f}")
                lines.append(f"| {r['method']} | {r['log_likelihood']:.3f} | {r[metric]:.3f} | {r['ece']:.3f} | "
                             f"{fmt(r.get('coverage'))} | {fmt(r['fit_seconds'])} | {fmt(r.get('rhat_predictive'), 4)} | {'; '.join(notes)} |")
            if not any(r["method"] == "nuts" for r in rows):
                lines += ["", "No NUTS reference in this table yet: run `--methods nuts` (see the notes of the BNN section in `benchmarks/README.md`)."]
            lines.append("")
    if SPEED_JSON.exists():
        report = json.loads(SPEED_JSON.read_text())
        lines += ["**SVI speed, diabetes network (601 weights + noise, 353 points), mean-field guide, one particle**", "",
                  f"Measured in one process, engines one after another; 1-minute load average {fmt(report.get('load_average_1min'))} "
                  f"on {report['machine']['cpu_count']} CPUs when written (above the CPU count, the machine was shared and the "
                  "absolute rates are low; compare rows, not machines).", "",
                  "| engine | dtype | steps/s | jit compile s |", "|---|---|---|---|"]
        lines += [f"| {r['engine']} | {r['dtype']} | {fmt(r['steps_per_s'])} | {fmt(r.get('compile_seconds'))} |" for r in report["rows"]]
        lines.append("")
    lines += reproduce_lines("python benchmarks/bench_bnn.py --datasets diabetes,breast_cancer --methods map,ensemble,svi,lowrank,nuts\n"
                             "python benchmarks/bench_bnn.py --speed")
    write_results_section("bnn", "\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="", help="comma-separated, from " + ",".join(DATASETS))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--num-steps", type=int, default=5000)
    parser.add_argument("--nuts-draws", type=int, default=500)
    parser.add_argument("--nuts-warmup", type=int, default=500)
    parser.add_argument("--nuts-max-tree-depth", type=int, default=10)
    parser.add_argument("--nuts-init", default="svi", choices=("uniform", "svi"))
    parser.add_argument("--speed", action="store_true")
    parser.add_argument("--speed-steps", type=int, default=1000)
    parser.add_argument("--render", action="store_true", help="only re-render RESULTS.md")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1 for every engine; more oversubscribe a busy machine)")
    args = parser.parse_args(argv)
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(args.threads)
    if not args.render:
        if args.speed:
            write_json(SPEED_JSON, _merge(SPEED_JSON, speed(args), ("engine", "dtype")))
        for dataset in filter(None, args.datasets.split(",")):
            for method in filter(None, args.methods.split(",")):
                report = _merge(ACCURACY_JSON, [run_cell(dataset, method, args)], ("dataset", "method"))
                report["command"] = shlex.join(["python", "benchmarks/bench_bnn.py", *(argv or sys.argv[1:])])
                write_json(ACCURACY_JSON, report)
                render()
    render()


if __name__ == "__main__":
    main()
