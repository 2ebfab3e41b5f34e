"""Bayesian neural networks: accuracy and calibration of every inference method, and SVI speed
side by side with plain Pyro and NumPyro.

Accuracy: scikit-learn's bundled ``load_diabetes`` (regression, targets
standardised with the training mean and sd) and ``load_breast_cancer``
(binary classification), one fixed 80/20 split (``random_state=0``), one
hidden layer of 50 tanh units, N(0, 1) priors on every weight,
``HalfNormal(1)`` on the regression noise; inputs standardised inside
:class:`probmodels.bnn.BayesianMLP`. Methods: MAP and a deep ensemble of 5
(``"delta"`` guides; each member holds out its own 10 % of the training rows,
scores them every 5 steps and keeps its best state), mean-
field Gaussian SVI with the ordinary and with the locally reparameterised
ELBO (``svi_lrt``), low-rank Gaussian SVI (1000 draws), laplace-torch's Laplace recipe
(``laplace_ggn``: GGN at the early-stopped MAP, prior precision and noise by
the Laplace marginal likelihood, linearised predictive; the estimator's
``"laplace"``, from the Hessian at the posterior mode, has no row: the mode
under these priors is degenerate and its Hessian not positive definite on
either dataset), and NUTS (4 chains, the reference). Each row reports the test log predictive density per point,
RMSE or accuracy, the calibration error (top-label ECE for the classifier,
quantile calibration error from PIT values for regression), coverage of the
90 % predictive interval, the fit's wall time and, for NUTS, the worst
R-hat over test points of the network's output (chains are compared on the
predictive, since weight-space symmetries make per-weight R-hat meaningless).
Two further diabetes rows, ``svi_hier`` and ``nuts_hier``, replace the N(0, 1)
prior by a hierarchical one (per layer ``tau_l ~ HalfNormal(1)``,
``w = tau_l * N(0, 1)``) to show what a prior with a learned weight scale
gives; they are outside the goal's verdict, which is for the N(0, 1) prior.

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

from probmodels.bnn import BayesianMLP, validation_split  # noqa: E402
from probmodels.diagnostics.arviz import az  # noqa: E402

ACCURACY_JSON = RESULTS_DIR / "bnn_accuracy.json"
SPEED_JSON = RESULTS_DIR / "bnn_speed.json"
DATASETS = ("diabetes", "breast_cancer")
METHODS = ("map", "ensemble", "svi", "svi_lrt", "lowrank", "laplace_ggn", "nuts", "svi_hier", "nuts_hier")
# bench rows that are an estimator method with an option
VARIANTS = {"svi_lrt": ("svi", {"local_reparam": True}), "svi_hier": ("svi", {"prior": "hierarchical"}),
            "nuts_hier": ("nuts", {"prior": "hierarchical"})}
# laplace-torch's recipe run by laplace-torch itself on this split (a benchmark-only tool, not a dependency)
PEERS = ("laplace_torch_posthoc", "laplace_torch_online")
PEER_NOTES = {
    "laplace_torch_posthoc": "peer: laplace-torch, full GGN at the laplace_ggn row's MAP weights, prior precision and noise by Adam on "
                             "its marginal likelihood, GLM predictive",
    "laplace_torch_online": "peer: laplace-torch's marglik_training from a fresh network (Kronecker GGN, one prior precision, full batch, "
                            "1000 epochs, hyperparameters updated every epoch), GLM predictive",
}
# rows under another prior than the benchmark's N(0, 1), and peers: shown, but outside the goal's verdict
OFF_SPEC = ("svi_hier", "nuts_hier", *PEERS)
HIDDEN = 50
# SVI settings compared on a validation part of the training split with --select (the default first)
SVI_CANDIDATES = {
    method: [dict(num_steps=5000), dict(num_steps=10000, svi_options={"lr_decay": 0.1, "tol": 0.0})]
    for method in ("svi", "svi_lrt", "lowrank", "svi_hier")
}


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


def predictive_convergence(est: BayesianMLP, X: np.ndarray) -> tuple[float, float, float]:
    """Worst rank-normalised R-hat, smallest bulk and tail ESS over test points of the network output, chains as fitted."""
    post = est.posterior_
    x = est._inputs(X)
    out = est.model_.forward(est._params, x)[..., 0]
    draws = az.convert_to_dataset(out.reshape(post.num_chains, post.num_draws, -1).detach().cpu().numpy())
    return (float(np.nanmax(az.rhat(draws)["x"].values)), float(np.nanmin(az.ess(draws, method="bulk")["x"].values)),
            float(np.nanmin(az.ess(draws, method="tail")["x"].values)))


def per_chain_scores(est: BayesianMLP, X: np.ndarray, y: np.ndarray) -> list[float]:
    """Test log predictive density per point of each chain's draws alone (chains that found different
    posterior regions would disagree here)."""
    from probmodels.bnn import predictive

    post, x = est.posterior_, est._inputs(X)
    chains, draws = post.num_chains, post.num_draws
    target = torch.as_tensor(y, dtype=x.dtype) if est.task == "regression" else torch.as_tensor(y).long()
    target = est.y_scaling_.apply(target) if est.task == "regression" else target
    shift = float(est.y_scaling_.scale.log()) if est.task == "regression" else 0.0
    scores = []
    for chain in range(chains):
        params = {k: v.reshape((chains, draws) + tuple(v.shape[1:]))[chain] for k, v in est._params.items()}
        scores.append(float(predictive(est.model_, params, x, target).log_density.mean()) - shift)
    return scores


def select_on_validation(options: dict, candidates: list[dict], Xtr: np.ndarray, ytr: np.ndarray) -> dict:
    """Pick SVI settings by the log predictive density on 10 % of the training rows, each fitted on the other 90 %.

    The test split is never looked at; the chosen settings are then refitted on the whole training split.
    """
    train, val = (index.numpy() for index in validation_split(len(ytr), 0.1, seed=0))
    scores = []
    for candidate in candidates:
        est = BayesianMLP(**{**options, **candidate}).fit(Xtr[train], ytr[train])
        scores.append(est.score(Xtr[val], ytr[val])["log_likelihood"])
        print(json.dumps({"candidate": _label(candidate), "validation_log_likelihood": scores[-1]}), flush=True)
    best = int(np.argmax(scores))
    return {"chosen": candidates[best], "validation": {_label(c): v for c, v in zip(candidates, scores)}}


def _label(candidate: dict) -> str:
    svi = candidate.get("svi_options", {})
    return f"{candidate['num_steps']} steps, lr decay {svi.get('lr_decay', 1.0)}, tol {svi.get('tol', 1e-4)}"


def run_cell(dataset: str, method: str, args: argparse.Namespace) -> dict:
    """Fit one method on one dataset and score it on the test split."""
    Xtr, Xte, ytr, yte = load(dataset)
    task = "regression" if dataset == "diabetes" else "classification"
    estimator_method, variant = VARIANTS.get(method, (method, {}))
    options = dict(task=task, hidden=(HIDDEN,), activation="tanh", prior_scale=1.0, method=estimator_method, seed=0, progress_bar=args.progress,
                   standardize_y=False, num_steps=args.num_steps, num_samples=1000, n_members=5, **variant)
    if estimator_method == "nuts":
        options.update(num_samples=args.nuts_draws, num_warmup=args.nuts_warmup, num_chains=4, nuts_init=args.nuts_init,
                       mcmc_options={"max_tree_depth": args.nuts_max_tree_depth, "compute_dtype": getattr(torch, args.nuts_compute_dtype)})
    started, cpu_started = time.perf_counter(), time.process_time()
    selection = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if args.select and method in SVI_CANDIDATES:
            selection = select_on_validation(options, SVI_CANDIDATES[method], Xtr, ytr)
            options.update(selection["chosen"])
        est = BayesianMLP(**options).fit(Xtr, ytr)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    row = {"dataset": dataset, "method": method, "fit_seconds": seconds, "fit_cpu_seconds": cpu_seconds, **est.score(Xte, yte, level=0.9),
           "n_weights": est.model_.n_weights, "warnings": sorted({str(w.message)[:160] for w in caught})}
    if estimator_method == "nuts":
        stats = est.posterior_.sample_stats
        rhat, ess_bulk, ess_tail = predictive_convergence(est, Xte)
        row.update(num_warmup=args.nuts_warmup, num_draws=args.nuts_draws, max_tree_depth=args.nuts_max_tree_depth, nuts_init=args.nuts_init,
                   compute_dtype=args.nuts_compute_dtype,
                   rhat_predictive=rhat, min_ess_bulk_predictive=ess_bulk, min_ess_tail_predictive=ess_tail,
                   divergences=int(stats["diverging"].sum()), mean_tree_depth=float(stats["tree_depth"].double().mean()),
                   mean_leapfrog_steps=float(stats["n_steps"].double().mean()), sampler_seconds=float(est.posterior_.attrs["elapsed_seconds"]),
                   per_chain_log_likelihood=per_chain_scores(est, Xte, yte))
        if task == "regression":
            row["noise_sd_per_chain"] = [float(v) for v in est.posterior_["noise"].double().mean(1)]
    if selection is not None:
        row["selection"] = selection
    if "tau0" in est.posterior_.draws:
        row["layer_scale_posterior_mean"] = [float(est.posterior_[f"tau{k}"].double().mean()) for k in range(est.model_.n_layers)]
    if method == "laplace_ggn":
        attrs = est.posterior_.attrs
        row.update(prior_precision=attrs["prior_precision"], laplace_noise=attrs["noise"], log_marginal_likelihood=attrs["log_marginal_likelihood"])
    if method in ("map", "ensemble"):
        row["early_stopping_steps"] = [int(k) for k in np.asarray(est.posterior_.attrs["num_steps"])]
    print(json.dumps(row), flush=True)
    return row


def laplace_torch_cell(method: str) -> dict:
    """laplace-torch (``pip install laplace-torch``) on the diabetes split, all-layer GGN, GLM predictive plus noise.

    ``laplace_torch_posthoc``: the full GGN at probmodels' early-stopped MAP weights (the ``laplace_ggn`` row's),
    prior precision and noise sd by Adam on laplace-torch's own Laplace marginal likelihood (its post-hoc recipe), a
    check of ``fit_laplace_ggn`` on identical weights. ``laplace_torch_online``: laplace-torch's ``marglik_training``
    (Immer et al., 2021) from a fresh network, Kronecker GGN, one prior precision, full batch, 1000 epochs of Adam at
    lr 0.01, the hyperparameters updated every epoch: the MAP trained jointly with them.
    """
    from laplace import Laplace
    from laplace.marglik_training import marglik_training
    from scipy.stats import norm

    from probmodels.bnn import metrics

    Xtr, Xte, ytr, yte = load("diabetes")
    started = time.perf_counter()
    ours = BayesianMLP(task="regression", hidden=(HIDDEN,), activation="tanh", prior_scale=1.0, method="laplace_ggn", seed=0,
                       standardize_y=False, num_steps=5000, num_samples=10).fit(Xtr, ytr)
    x, x_test = ours._inputs(Xtr), ours._inputs(Xte)
    y, y_test = torch.as_tensor(ytr, dtype=x.dtype), torch.as_tensor(yte, dtype=x.dtype)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], HIDDEN), torch.nn.Tanh(), torch.nn.Linear(HIDDEN, 1)).to(x.dtype)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y[:, None]), batch_size=len(y))
    if method == "laplace_torch_posthoc":
        center = ours.predictive_model_.center
        with torch.no_grad():
            for layer, linear in enumerate((net[0], net[2])):
                linear.weight.copy_(center[f"w{layer}"].T)
                linear.bias.copy_(center[f"b{layer}"])
        la = Laplace(net, "regression", subset_of_weights="all", hessian_structure="full")
        la.fit(loader)
        log_prior, log_sigma = torch.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)
        optimiser = torch.optim.Adam([log_prior, log_sigma], lr=0.1)
        for _ in range(1000):
            optimiser.zero_grad()
            (-la.log_marginal_likelihood(log_prior.exp(), log_sigma.exp())).backward()
            optimiser.step()
        la.prior_precision, la.sigma_noise = log_prior.detach().exp(), log_sigma.detach().exp()
    else:
        la, *_ = marglik_training(net, loader, likelihood="regression", hessian_structure="kron", prior_structure="scalar",
                                   n_epochs=1000, optimizer_kwargs={"lr": 1e-2})
    f_mean, f_var = (t.detach().reshape(-1) for t in la(x_test, pred_type="glm"))
    sd = (f_var + la.sigma_noise.detach() ** 2).sqrt().reshape(-1)
    half = float(norm.ppf(0.95)) * sd
    row = {"dataset": "diabetes", "method": method, "fit_seconds": time.perf_counter() - started,
           "log_likelihood": float(torch.distributions.Normal(f_mean, sd).log_prob(y_test).mean()), "rmse": metrics.rmse(f_mean, y_test),
           "ece": metrics.regression_calibration_error(torch.distributions.Normal(f_mean, sd).cdf(y_test)),
           "coverage": metrics.interval_coverage(f_mean - half, f_mean + half, y_test),
           "prior_precision": float(la.prior_precision.reshape(-1)[0]), "laplace_noise": float(la.sigma_noise),
           "log_marginal_likelihood": float(la.log_marginal_likelihood())}
    print(json.dumps(row), flush=True)
    return row


def speed(args: argparse.Namespace) -> list[dict]:
    """SVI steps/s of probmodels, plain Pyro and NumPyro on the diabetes network.

    probmodels and plain Pyro run ``--speed-rounds`` alternating rounds of
    ``--speed-steps`` steps each (a fresh fit per round), timed in CPU seconds
    of this one-thread process (wall time on a shared machine swings by 3x
    between rounds), so that load from other processes hits both alike; the
    median round rate is reported.
    """
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

        def ours() -> tuple[float, float]:
            stamps: list[float] = []
            started = time.process_time()
            fit_svi(MLPModel(x.shape[1], (HIDDEN,)), x, y, num_steps=steps + 1, tol=0.0, num_samples=1, progress_bar=False,
                    callback=lambda step, loss: stamps.append(time.process_time()))
            # the loop rate over `steps` steps (between the ends of step 0 and step `steps`), as the plain-Pyro loop is
            # timed; the whole call (model inspection, the first step, the final guide draw) is reported beside it
            return steps / (stamps[-1] - stamps[0]), time.process_time() - started

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

        def plain() -> tuple[float, float]:
            pyro.clear_param_store()
            pyro.set_rng_seed(0)
            net = Net().to(dtype)
            svi = SVI(net, AutoNormal(net, init_scale=0.1), pyro.optim.Adam({"lr": 0.01}), Trace_ELBO())
            started = time.process_time()
            svi.step(x, y)  # the first step sets the guide up, as in fit_svi's timing
            first = time.process_time()
            for _ in range(steps):
                svi.step(x, y)
            done = time.process_time()
            return steps / (done - first), done - started

        rounds: dict[str, list[tuple[float, float]]] = {"probmodels fit_svi": [], "plain Pyro (PyroModule + AutoNormal)": []}
        for _ in range(args.speed_rounds):
            rounds["probmodels fit_svi"].append(ours())
            rounds["plain Pyro (PyroModule + AutoNormal)"].append(plain())
        for engine, results in rounds.items():
            rates = [rate for rate, _ in results]
            rows.append({"engine": engine, "dtype": str(dtype)[6:], "steps_per_s": float(np.median(rates)), "round_steps_per_s": rates,
                         "call_seconds": float(np.median([seconds for _, seconds in results]))})
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


# laplace-torch's all-layer Laplace as the issue (#8) reports it; laplace-torch run here on this split scores lower
# (the laplace_torch_* rows), so the goal keeps the number
BEST_PEER = -1.12


def goal_lines(rows: list[dict]) -> list[str]:
    """The issue's diabetes goal checked against the rows: best at or above the best peer, Bayesian methods
    within 0.05 nats per point of it, 90 % intervals covering 85-95 % of the test targets. Rows of another prior
    and peers' rows are listed after the verdict, outside it."""
    def listed(methods: tuple[str, ...]) -> str:
        return ", ".join(f"{r['method']} {r['log_likelihood']:.3f} ({r['log_likelihood'] - BEST_PEER:+.3f} from {BEST_PEER})"
                         for r in rows if r["method"] in methods)

    hierarchical, peers = listed(("svi_hier", "nuts_hier")), listed(PEERS)
    rows = [r for r in rows if r["method"] not in OFF_SPEC]
    best = max(rows, key=lambda r: r["log_likelihood"])
    bayesian = [r for r in rows if r["method"] not in ("map",)]
    far = [f"{r['method']} ({r['log_likelihood'] - BEST_PEER:+.3f})" for r in bayesian if r["log_likelihood"] < BEST_PEER - 0.05]
    outside = [f"{r['method']} ({r['coverage']:.3f})" for r in rows if not 0.85 <= r.get("coverage", 0.9) <= 0.95]
    gap = BEST_PEER - best["log_likelihood"]
    verdict = "met" if gap <= 0 else f"missed by {gap:.3f}"
    lines = [
        f"Goal (issue #8), against the best peer's {BEST_PEER} per point: best here {best['method']} at "
        f"{best['log_likelihood']:.3f} ({verdict}); Bayesian methods within 0.05 nats of the peer: "
        f"{'all' if not far else 'all but ' + ', '.join(far)}; 90 % coverage in [0.85, 0.95]: "
        f"{'all' if not outside else 'all but ' + ', '.join(outside)}.",
    ]
    if hierarchical:
        lines.append(f"Under the hierarchical prior (outside the verdict, which is for the N(0, 1) prior): {hierarchical}.")
    if peers:
        lines.append(f"laplace-torch itself on this split (outside the verdict): {peers}.")
    return lines


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
        order = {m: i for i, m in enumerate(METHODS + PEERS)}
        for dataset in DATASETS:
            rows = sorted((r for r in report["rows"] if r["dataset"] == dataset), key=lambda r: order.get(r["method"], 99))
            if not rows:
                continue
            metric = "rmse" if dataset == "diabetes" else "accuracy"
            lines += [f"**{dataset}**", "", f"| method | test log-lik / point | {metric} | calibration error | 90 % coverage | fit s (wall) | fit s (CPU) | NUTS R-hat (predictive) | notes |",
                      "|---|---|---|---|---|---|---|---|---|"]
            for r in rows:
                notes = []
                if "early_stopping_steps" in r:
                    steps = r["early_stopping_steps"]
                    notes.append(f"best held-out state at step {', '.join(map(str, steps)) if isinstance(steps, list) else steps} "
                                 "(early stopping, scored every 5 steps)")
                if "min_ess_bulk_predictive" in r:
                    notes.append(f"{r['num_warmup']} warmup + {r['num_draws']} draws x 4 chains from a {r['nuts_init']} start, "
                                 f"max tree depth {r['max_tree_depth']}, {r.get('compute_dtype', 'float64')} sampler; "
                                 f"sampler {fmt(r['sampler_seconds'])} s; min ESS bulk {r['min_ess_bulk_predictive']:.0f}, "
                                 f"tail {r['min_ess_tail_predictive']:.0f} (predictive)")
                if r["method"] in PEERS:
                    notes.append(PEER_NOTES[r["method"]] + f"; prior precision {r['prior_precision']:.3g}, noise sd {r['laplace_noise']:.3f}, "
                                 f"laplace-torch's log marginal likelihood {r['log_marginal_likelihood']:.1f}")
                elif "prior_precision" in r:
                    noise = f", noise sd {r['laplace_noise']:.3f}" if r.get("laplace_noise") is not None else ""
                    notes.append(f"GGN at the early-stopped MAP, linearised predictive; prior precision {r['prior_precision']:.3g}{noise} "
                                 f"chosen by the Laplace marginal likelihood ({r['log_marginal_likelihood']:.1f}; empirical Bayes, "
                                 "not the N(0, 1) prior)")
                if r["method"] in ("svi_hier", "nuts_hier"):
                    notes.append("hierarchical prior, not the benchmark's N(0, 1): per layer tau_l ~ HalfNormal(1), w = tau_l * N(0, 1)")
                if "layer_scale_posterior_mean" in r:
                    notes.append(f"posterior mean layer scales tau {', '.join(f'{v:.3f}' for v in r['layer_scale_posterior_mean'])}")
                if r["method"] == "svi_lrt":
                    notes.append("mean-field SVI with the local reparameterisation trick")
                if "per_chain_log_likelihood" in r:
                    noise = (f"; posterior mean noise sd per chain {', '.join(f'{v:.3f}' for v in r['noise_sd_per_chain'])}"
                             if "noise_sd_per_chain" in r else "")
                    notes.append(f"test log-lik of each chain alone {', '.join(f'{v:.3f}' for v in r['per_chain_log_likelihood'])}{noise}")
                if "divergences" in r:
                    notes.append(f"{r['divergences']} divergences, mean tree depth {r['mean_tree_depth']:.1f}")
                if "selection" in r:
                    chosen = r["selection"]["chosen"]
                    notes.append("settings chosen on a validation part of the training split: " + "; ".join(
                        f"{label}: {value:.3f}" for label, value in r["selection"]["validation"].items()) + f" -> {_label(chosen)}")
                if "kl_annealing" in r:
                    notes.append(f"KL annealing over {r['kl_annealing']} steps")
                lines.append(f"| {r['method']} | {r['log_likelihood']:.3f} | {r[metric]:.3f} | {r['ece']:.3f} | "
                             f"{fmt(r.get('coverage'))} | {fmt(r['fit_seconds'])} | {fmt(r.get('fit_cpu_seconds'))} | {fmt(r.get('rhat_predictive'), 4)} | {'; '.join(notes)} |")
            if dataset == "diabetes":
                lines += ["", *goal_lines(rows)]
            if not any(r["method"] == "nuts" for r in rows):
                lines += ["", "No NUTS reference in this table yet: run `--methods nuts` (see the notes of the BNN section in `benchmarks/README.md`)."]
            lines.append("")
    if SPEED_JSON.exists():
        report = json.loads(SPEED_JSON.read_text())
        lines += ["**SVI speed, diabetes network (601 weights + noise, 353 points), mean-field guide, one particle**", "",
                  f"Measured in one process, engines one after another; 1-minute load average {fmt(report.get('load_average_1min'))} "
                  f"on {report['machine']['cpu_count']} CPUs when written (above the CPU count, the machine was shared and the "
                  "absolute rates are low; compare rows, not machines).", "",
                  f"Steps/s: probmodels and plain Pyro alternate {report.get('speed_rounds', 1)} rounds of a fresh fit each, "
                  f"{report.get('speed_steps', 1000)} timed steps after the first (which sets the guide up), torch on "
                  f"{report.get('threads', 1)} thread(s), timed in CPU seconds of the process (steps per CPU second; wall "
                  "time on the shared machine swung 3x between rounds); the median round rate is shown (every round's rate "
                  "is in the JSON). Whole call: median CPU seconds of one entire round, setup and final draws included. "
                  "NumPyro: one run of the same number of steps after a jit warm-up, wall time.", "",
                  "| engine | dtype | steps/s | whole call s | jit compile s |", "|---|---|---|---|---|"]
        lines += [f"| {r['engine']} | {r['dtype']} | {fmt(r['steps_per_s'])} | {fmt(r.get('call_seconds'))} | {fmt(r.get('compile_seconds'))} |"
                  for r in report["rows"]]
        lines.append("")
    lines += reproduce_lines("OMP_NUM_THREADS=1 python benchmarks/bench_bnn.py --datasets diabetes,breast_cancer --methods map,ensemble\n"
                             "OMP_NUM_THREADS=1 python benchmarks/bench_bnn.py --datasets diabetes --methods svi,svi_lrt,lowrank --select\n"
                             "OMP_NUM_THREADS=1 python benchmarks/bench_bnn.py --datasets diabetes,breast_cancer --methods laplace_ggn\n"
                             "OMP_NUM_THREADS=1 python benchmarks/bench_bnn.py --datasets diabetes,breast_cancer --methods nuts --nuts-compute-dtype float32 "
                             "--nuts-max-tree-depth 8\n"
                             "OMP_NUM_THREADS=1 python benchmarks/bench_bnn.py --datasets diabetes --methods svi_hier --select\n"
                             "OMP_NUM_THREADS=1 python benchmarks/bench_bnn.py --datasets diabetes --methods nuts_hier --nuts-compute-dtype float32 "
                             "--nuts-max-tree-depth 8 --nuts-draws 1000\n"
                             "OMP_NUM_THREADS=1 python benchmarks/bench_bnn.py --datasets diabetes --methods laplace_torch_posthoc,laplace_torch_online  "
                             "# peers; needs laplace-torch\n"
                             "OMP_NUM_THREADS=1 python benchmarks/bench_bnn.py --speed")
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
    parser.add_argument("--nuts-compute-dtype", default="float64", choices=("float64", "float32"),
                        help="dtype of the network evaluation inside NUTS (the sampler state stays float64)")
    parser.add_argument("--select", action="store_true",
                        help="choose the SVI settings among SVI_CANDIDATES by held-out log density on 10 %% of the training split")
    parser.add_argument("--speed", action="store_true")
    parser.add_argument("--speed-steps", type=int, default=300, help="steps per timed round")
    parser.add_argument("--speed-rounds", type=int, default=5, help="alternating rounds per engine (median reported)")
    parser.add_argument("--render", action="store_true", help="only re-render RESULTS.md")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1 for every engine; more oversubscribe a busy machine)")
    args = parser.parse_args(argv)
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(args.threads)
    if not args.render:
        if args.speed:
            report = _merge(SPEED_JSON, speed(args), ("engine", "dtype"))
            report.update(speed_steps=args.speed_steps, speed_rounds=args.speed_rounds, threads=args.threads)
            write_json(SPEED_JSON, report)
        for dataset in filter(None, args.datasets.split(",")):
            for method in filter(None, args.methods.split(",")):
                row = laplace_torch_cell(method) if method in PEERS else run_cell(dataset, method, args)
                report = _merge(ACCURACY_JSON, [row], ("dataset", "method"))
                report["command"] = shlex.join(["python", "benchmarks/bench_bnn.py", *(argv or sys.argv[1:])])
                write_json(ACCURACY_JSON, report)
                render()
    render()


if __name__ == "__main__":
    main()
