"""Side-by-side NUTS benchmark: probmodels against Pyro and NumPyro.

In one process, on the same posteriordb data and the same settings (chains,
warmup, draws, target acceptance 0.8, diagonal mass matrix, maximum tree depth
10), the script runs

* ``probmodels``: ``probmodels.fit_mcmc(kernel="nuts")``, all chains as one batch,
  end to end from an empty TorchInductor cache (compiling its graphs from
  scratch; TorchInductor's one-time import and CPU probe are timed apart,
  as ``import jax`` is for NumPyro), then again (``probmodels (cached)``)
  loading them from the cache;
* ``probmodels-script``: the same with ``compile="script"`` (TorchScript);
* ``pyro`` / ``pyro-jit``: Pyro's ``MCMC(NUTS(model))``, one chain per call,
  chains one after another (optionally with ``jit_compile=True``);
* ``numpyro-sequential`` / ``numpyro-vectorized``: NumPyro's NUTS on NumPyro
  ports of the models (float64, CPU), end to end including JIT compilation,
  then a second run of the same ``MCMC`` object (``... (compiled)`` rows) that
  reuses the compiled kernel.

For every run it records the wall time, the post-warmup gradient evaluations
(leapfrog steps), the minimum bulk ESS over every coordinate of the latent
sites, ESS per second and per 1000 gradients, divergences and the posterior
mean and sd of headline parameters; it writes them with the machine and the
command line to a JSON file. ``--render`` rebuilds ``benchmarks/RESULTS.md``
from every JSON file under ``benchmarks/results/``.

Examples
--------
::

    python benchmarks/bench_nuts.py --posterior eight_schools --chains 4 \\
        --warmup 1000 --samples 1000 --engines probmodels,pyro,numpyro \\
        --repeat 1 --output benchmarks/results/nuts_eight_schools.json
    python benchmarks/bench_nuts.py --render
"""

from __future__ import annotations

import argparse
import datetime
import functools
import importlib
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable
from unittest import mock

import arviz as az
import numpy as np
import pyro
import pyro.infer.mcmc.nuts
import torch
from pyro.ops.integrator import velocity_verlet

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "benchmarks")]

import posteriordb_models  # noqa: E402
from common import (  # noqa: E402
    RESULTS_DIR, RESULTS_MD, describe_machine, fmt, machine_info, reproduce_lines, write_json, write_results_section,
)

import probmodels  # noqa: E402
from probmodels.exceptions import ConvergenceWarning  # noqa: E402

NUTS_PACKAGES = ("torch", "pyro-ppl", "numpyro", "jax", "jaxlib", "arviz", "numpy")
ENGINES = ("probmodels", "probmodels-script", "pyro", "pyro-jit", "numpyro-sequential", "numpyro-vectorized")
ENGINE_ALIASES = {"numpyro": ("numpyro-sequential", "numpyro-vectorized")}


def _numpyro_eight_schools(y, sigma):
    """NumPyro port of eight schools, non-centred (see ``tests/posteriordb_models.py``)."""
    import numpyro
    import numpyro.distributions as ndist

    mu = numpyro.sample("mu", ndist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", ndist.HalfCauchy(5.0))
    with numpyro.plate("schools", y.shape[-1]):
        theta_trans = numpyro.sample("theta_trans", ndist.Normal(0.0, 1.0))
        numpyro.sample("y", ndist.Normal(mu + tau * theta_trans, sigma), obs=y)


def _numpyro_blr(X, y):
    """NumPyro port of the Bayesian linear regression (see ``tests/posteriordb_models.py``)."""
    import numpyro
    import numpyro.distributions as ndist

    beta = numpyro.sample("beta", ndist.Normal(0.0, 10.0).expand([X.shape[-1]]).to_event(1))
    sigma = numpyro.sample("sigma", ndist.HalfNormal(10.0))
    with numpyro.plate("data", y.shape[-1]):
        numpyro.sample("y", ndist.Normal(X @ beta, sigma), obs=y)


def _numpyro_gp_regr(x, y):
    """NumPyro port of the squared-exponential GP regression (see ``tests/posteriordb_models.py``)."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as ndist

    rho = numpyro.sample("rho", ndist.Gamma(25.0, 4.0))
    alpha = numpyro.sample("alpha", ndist.HalfNormal(2.0))
    sigma = numpyro.sample("sigma", ndist.HalfNormal(1.0))
    sq_dist = (x[..., :, None] - x[..., None, :]) ** 2
    cov = alpha**2 * jnp.exp(-0.5 * sq_dist / rho**2) + sigma * jnp.eye(x.shape[-1])
    numpyro.sample("y", ndist.MultivariateNormal(jnp.zeros(x.shape[-1]), covariance_matrix=cov), obs=y)


@dataclass(frozen=True)
class Benchmark:
    """A posterior to benchmark.

    Attributes
    ----------
    case : str
        posteriordb name, loaded with ``posteriordb_models.load_case``.
    latents : tuple of str
        The latent sample sites; the minimum ESS is taken over all their coordinates.
    headline : tuple of (str, tuple of int)
        Parameters (site, index) whose posterior mean and sd are reported.
    numpyro_model : callable
        The NumPyro port, taking the same keyword data as the Pyro model.
    """

    case: str
    latents: tuple
    headline: tuple
    numpyro_model: Callable


BENCHMARKS = {
    "eight_schools": Benchmark(
        "eight_schools-eight_schools_noncentered", ("mu", "tau", "theta_trans"), (("mu", ()), ("tau", ())), _numpyro_eight_schools
    ),
    "blr": Benchmark("sblrc-blr", ("beta", "sigma"), (("sigma", ()), ("beta", (0,))), _numpyro_blr),
    "gp_regr": Benchmark("gp_pois_regr-gp_regr", ("rho", "alpha", "sigma"), (("rho", ()), ("alpha", ()), ("sigma", ())), _numpyro_gp_regr),
}


@dataclass
class Run:
    """One engine's run, before summary.

    Attributes
    ----------
    engine : str
        Row label.
    seed : int
        The run's seed.
    draws : dict of str to numpy.ndarray
        Latent draws shaped ``(chain, draw, ...)``.
    wall_s : float
        Wall time of the whole run, in seconds.
    grad_evals : int or None
        Post-warmup gradient evaluations (leapfrog steps) summed over chains;
        None where the engine does not expose them.
    divergences : int
        Post-warmup divergent transitions summed over chains.
    setup_s : float or None
        One-time setup done (and timed) before the run, outside ``wall_s``.
    """

    engine: str
    seed: int
    draws: dict
    wall_s: float
    grad_evals: int | None
    divergences: int
    setup_s: float | None = None


class _PyroLeapfrogCounter:
    """Counts the leapfrog steps of Pyro's NUTS that fall after warmup.

    `velocity_verlet` replaces ``pyro.infer.mcmc.nuts.velocity_verlet`` (one
    call is one leapfrog step, one gradient); `hook` is ``MCMC``'s ``hook_fn``,
    called after every iteration with its stage.
    """

    def __init__(self):
        self.steps = 0
        self.post_warmup = 0
        self._at_last_hook = 0

    def velocity_verlet(self, *args, **kwargs):
        """Count one leapfrog step and take it."""
        self.steps += 1
        return velocity_verlet(*args, **kwargs)

    def hook(self, kernel, samples, stage, i):
        """Credit the steps since the last iteration to sampling if it was a sampling one."""
        if stage.startswith("Sample"):
            self.post_warmup += self.steps - self._at_last_hook
        self._at_last_hook = self.steps


def _timed_probmodels_run(label, case, bench, settings, seed, **options):
    """One timed ``probmodels.fit_mcmc(kernel="nuts", **options)`` run as a `Run` row named ``label``."""
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        posterior = probmodels.fit_mcmc(
            case.model, *case.args, model_kwargs=case.kwargs, kernel="nuts", dense_mass=False,
            seed=seed, progress_bar=False, **settings, **options,
        )
    wall = time.perf_counter() - started
    stats = posterior.sample_stats
    draws = {name: posterior.draws[name].numpy() for name in bench.latents}
    return Run(label, seed, draws, wall, int(stats["n_steps"].sum()), int(stats["diverging"].sum()))


def _inductor_setup():
    """Import TorchInductor's compiler and run its once-per-machine probe of the
    CPU's vector instructions (it compiles and runs test programs; the result is
    kept in ``TORCHINDUCTOR_CACHE_DIR``). Returns the seconds taken.

    Like ``import jax`` before NumPyro's rows, this is not work per model, so
    `run_probmodels` does it before its timed runs and reports it apart.
    """
    started = time.perf_counter()
    importlib.import_module("torch._inductor.compile_fx")
    importlib.import_module("torch._inductor.cpu_vec_isa").pick_vec_isa()
    return time.perf_counter() - started


def run_probmodels(case, bench, settings, seed):
    """Run ``probmodels.fit_mcmc(kernel="nuts")`` twice.

    The first run (row ``probmodels``) starts from an empty TorchInductor
    cache directory, so its time includes compiling every graph of the model
    from scratch, as on the model's first run; only Inductor's one-time setup
    (`_inductor_setup`) is done before and timed apart. The second (seed + 1,
    row ``probmodels (cached)``) loads the graphs from that cache, as every
    later run of the same model and data does.

    Parameters
    ----------
    case : posteriordb_models.PosteriordbCase
        The Pyro model and its data.
    bench : Benchmark
        The posterior's benchmark spec.
    settings : dict
        ``num_chains``, ``num_warmup``, ``num_samples``, ``target_accept`` and
        ``max_tree_depth``.
    seed : int
        The run's seed.

    Returns
    -------
    list of Run
    """
    with tempfile.TemporaryDirectory(prefix="probmodels-inductor-") as cache, mock.patch.dict(os.environ, {"TORCHINDUCTOR_CACHE_DIR": cache}):
        setup = _inductor_setup()
        cold, cached = (
            _timed_probmodels_run(label, case, bench, settings, run_seed)
            for label, run_seed in (("probmodels", seed), ("probmodels (cached)", seed + 1))
        )
    return [replace(cold, setup_s=setup), cached]


def run_probmodels_script(case, bench, settings, seed):
    """Run ``probmodels.fit_mcmc(kernel="nuts", compile="script")`` once (TorchScript compiles in about a
    second, so the run needs no cache to be quick to start).

    Parameters and returns as in `run_probmodels`.
    """
    return [_timed_probmodels_run("probmodels-script", case, bench, settings, seed, compile="script")]


def run_pyro(case, bench, settings, seed, jit_compile=False):
    """Run Pyro's NUTS chain after chain, with validation off.

    Chain ``c`` is seeded with ``seed + c``; leapfrog steps are counted with
    `_PyroLeapfrogCounter`.

    Parameters
    ----------
    case, bench, settings, seed
        As in `run_probmodels`.
    jit_compile : bool
        Pass ``jit_compile=True`` to Pyro's NUTS (row ``pyro-jit``).

    Returns
    -------
    list of Run
    """
    counter = _PyroLeapfrogCounter()
    chains = []
    started = time.perf_counter()
    with pyro.validation_enabled(False), mock.patch.object(pyro.infer.mcmc.nuts, "velocity_verlet", counter.velocity_verlet):
        for chain in range(settings["num_chains"]):
            with torch.random.fork_rng(), pyro.get_param_store().scope():
                pyro.set_rng_seed(seed + chain)
                kernel = pyro.infer.NUTS(
                    case.model, target_accept_prob=settings["target_accept"], max_tree_depth=settings["max_tree_depth"],
                    full_mass=False, jit_compile=jit_compile, ignore_jit_warnings=True,
                )
                mcmc = pyro.infer.MCMC(
                    kernel, num_samples=settings["num_samples"], warmup_steps=settings["num_warmup"], num_chains=1,
                    disable_progbar=True, hook_fn=counter.hook,
                )
                mcmc.run(*case.args, **case.kwargs)
            chains.append(mcmc)
    wall = time.perf_counter() - started
    draws = {name: np.stack([mcmc.get_samples()[name].numpy() for mcmc in chains]) for name in bench.latents}
    divergences = sum(len(mcmc.diagnostics().get("divergences", {}).get("chain 0", [])) for mcmc in chains)
    return [Run("pyro-jit" if jit_compile else "pyro", seed, draws, wall, counter.post_warmup, divergences)]


def run_numpyro(case, bench, settings, seed, chain_method):
    """Run NumPyro's NUTS twice on one ``MCMC`` object, in float64 on the CPU.

    The first run's time includes JIT compilation; the second (seed + 1)
    reuses the compiled kernel and is reported as ``"<engine> (compiled)"``.

    Parameters
    ----------
    case, bench, settings, seed
        As in `run_probmodels`.
    chain_method : {"sequential", "vectorized"}
        How NumPyro runs the chains.

    Returns
    -------
    list of Run
    """
    import jax
    import numpyro
    from numpyro.infer import MCMC, NUTS

    numpyro.set_platform("cpu")
    numpyro.enable_x64()
    data = {k: jax.numpy.asarray(v.numpy()) for k, v in case.kwargs.items()}
    kernel = NUTS(
        bench.numpyro_model, target_accept_prob=settings["target_accept"], max_tree_depth=settings["max_tree_depth"],
        dense_mass=False,
    )
    mcmc = MCMC(
        kernel, num_warmup=settings["num_warmup"], num_samples=settings["num_samples"],
        num_chains=settings["num_chains"], chain_method=chain_method, progress_bar=False,
    )
    engine = f"numpyro-{chain_method}"
    runs = []
    for label, run_seed in ((engine, seed), (f"{engine} (compiled)", seed + 1)):
        started = time.perf_counter()
        mcmc.run(jax.random.PRNGKey(run_seed), extra_fields=("num_steps",), **data)
        samples = jax.block_until_ready(mcmc.get_samples(group_by_chain=True))
        wall = time.perf_counter() - started
        extra = mcmc.get_extra_fields(group_by_chain=True)
        draws = {name: np.asarray(samples[name]) for name in bench.latents}
        runs.append(Run(label, run_seed, draws, wall, int(extra["num_steps"].sum()), int(extra["diverging"].sum())))
    return runs


RUNNERS = {
    "probmodels": run_probmodels,
    "probmodels-script": run_probmodels_script,
    "pyro": run_pyro,
    "pyro-jit": functools.partial(run_pyro, jit_compile=True),
    "numpyro-sequential": functools.partial(run_numpyro, chain_method="sequential"),
    "numpyro-vectorized": functools.partial(run_numpyro, chain_method="vectorized"),
}


def summarise(run, bench):
    """Reduce a run to a JSON row.

    Parameters
    ----------
    run : Run
    bench : Benchmark

    Returns
    -------
    dict
        ``engine``, ``seed``, ``wall_s``, ``grad_evals``, ``min_ess_bulk`` (and
        ``min_ess_site``, the coordinate attaining it), ``ess_per_s``,
        ``ess_per_1000_grads``, ``divergences`` and ``headline``
        (``{"site[i]": {"mean": ..., "sd": ...}}``).
    """
    ess = az.ess(az.from_dict(posterior=run.draws), method="bulk")
    min_ess, min_site = np.inf, None
    for name in bench.latents:
        values = np.asarray(ess[name].values)
        index = np.unravel_index(np.argmin(values), values.shape)
        if values[index] < min_ess:
            min_ess = float(values[index])
            min_site = name + (f"[{','.join(map(str, index))}]" if index else "")
    headline = {}
    for name, index in bench.headline:
        values = run.draws[name][(slice(None), slice(None)) + index]
        label = name + (f"[{','.join(map(str, index))}]" if index else "")
        headline[label] = {"mean": float(values.mean()), "sd": float(values.std(ddof=1))}
    return {
        "engine": run.engine,
        "seed": run.seed,
        "wall_s": run.wall_s,
        "grad_evals": run.grad_evals,
        "min_ess_bulk": min_ess,
        "min_ess_site": min_site,
        "ess_per_s": min_ess / run.wall_s,
        "ess_per_1000_grads": None if not run.grad_evals else 1000 * min_ess / run.grad_evals,
        "divergences": run.divergences,
        "headline": headline,
        "setup_s": run.setup_s,
    }


def _engines(spec):
    """Parse ``--engines`` into engine names, expanding aliases, keeping order."""
    names = []
    for token in filter(None, (t.strip() for t in spec.split(","))):
        for name in ENGINE_ALIASES.get(token, (token,)):
            if name not in ENGINES:
                raise argparse.ArgumentTypeError(f"unknown engine {name!r}; choose from {', '.join(ENGINES + tuple(ENGINE_ALIASES))}")
            if name not in names:
                names.append(name)
    return names


def run_benchmark(args, command):
    """Run every engine ``args.repeat`` times and write the JSON file.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.
    command : str
        The command line to record.

    Returns
    -------
    dict or None
        The written report; None when the posterior was skipped.
    """
    bench = BENCHMARKS[args.posterior]
    if posteriordb_models.reference_dir() is None:
        print(
            f"skipping {args.posterior}: the posteriordb reference folder is absent "
            "(expected ../shared/reference/posteriordb next to the repo, or set PROBMODELS_REFERENCE_DIR)",
            file=sys.stderr,
        )
        return None
    case = posteriordb_models.load_case(bench.case)
    settings = dict(
        num_chains=args.chains, num_warmup=args.warmup, num_samples=args.samples, target_accept=0.8, max_tree_depth=10,
    )
    rows = []
    for repeat in range(args.repeat):
        seed = args.seed + 1000 * repeat
        for engine in args.engines:
            print(f"[{args.posterior}] repeat {repeat}: {engine} ...", file=sys.stderr, flush=True)
            try:
                runs = RUNNERS[engine](case, bench, settings, seed)
            except ImportError as error:
                print(f"skipping {engine}: {error} (install the 'bench' extra)", file=sys.stderr)
                continue
            rows.extend(dict(summarise(run, bench), repeat=repeat) for run in runs)
    report = {
        "posterior": args.posterior,
        "case": bench.case,
        "settings": dict(settings, dense_mass=False, repeat=args.repeat, seed=args.seed),
        "command": command,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(NUTS_PACKAGES),
        "rows": rows,
    }
    output = Path(args.output) if args.output else RESULTS_DIR / f"nuts_{args.posterior}.json"
    write_json(output, report)
    print(f"wrote {output}", file=sys.stderr)
    return report


def render_section(report):
    """Render one JSON report as a markdown section.

    Rows are grouped by engine (in run order); with several repeats each cell
    is the median over repeats.

    Parameters
    ----------
    report : dict
        As written by `run_benchmark`.

    Returns
    -------
    str
    """
    settings, machine = report["settings"], report["machine"]
    by_engine = {}
    for row in report["rows"]:
        by_engine.setdefault(row["engine"], []).append(row)

    def median(rows, key):
        values = [row[key] for row in rows if row[key] is not None]
        return statistics.median(values) if values else None

    reference = median(by_engine["probmodels"], "ess_per_s") if "probmodels" in by_engine else None
    headline = list(report["rows"][0]["headline"]) if report["rows"] else []
    header = ["engine", "wall s", "min ESS_bulk", "ESS/s", "ESS/s ÷ probmodels", "grads", "ESS/1000 grads", "divergences"]
    header += [f"{name} mean (sd)" for name in headline]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for engine, rows in by_engine.items():
        ess_per_s = median(rows, "ess_per_s")
        cells = [
            engine,
            fmt(median(rows, "wall_s")),
            fmt(median(rows, "min_ess_bulk")),
            fmt(ess_per_s),
            fmt(ess_per_s / reference if reference else None),
            fmt(median(rows, "grad_evals")),
            fmt(median(rows, "ess_per_1000_grads")),
            fmt(median(rows, "divergences")),
        ]
        for name in headline:
            mean = statistics.median(row["headline"][name]["mean"] for row in rows)
            sd = statistics.median(row["headline"][name]["sd"] for row in rows)
            cells.append(f"{mean:.3g} ({sd:.3g})")
        lines.append("| " + " | ".join(cells) + " |")
    repeats = f"; medians over {settings['repeat']} repeats" if settings["repeat"] > 1 else ""
    setups = [row["setup_s"] for row in by_engine.get("probmodels", []) if row.get("setup_s") is not None]
    setup = (
        f" TorchInductor's one-time setup before the `probmodels` row (importing its compiler, probing the CPU's vector "
        f"instructions), not in its wall time: {fmt(statistics.median(setups))} s." if setups else ""
    )
    return "\n".join([
        f"### {report['posterior']} (`{report['case']}`)",
        "",
        f"{settings['num_chains']} chains × ({settings['num_warmup']} warmup + {settings['num_samples']} draws), "
        f"target accept {settings['target_accept']}, diagonal mass matrix, max tree depth {settings['max_tree_depth']}{repeats}. "
        f"Run {report['created']} on {describe_machine(machine)}.{setup}",
        "",
        *lines,
        "",
        *reproduce_lines(report["command"]),
    ])


def render(results_dir, markdown):
    """Rewrite the NUTS section of the results page from every ``nuts_*.json`` report in a folder.

    Parameters
    ----------
    results_dir : pathlib.Path
        Folder of JSON reports (sections follow file-name order).
    markdown : pathlib.Path
        The results page (other sections are kept).
    """
    reports = [json.loads(path.read_text()) for path in sorted(Path(results_dir).glob("nuts_*.json"))]
    intro = (
        "## NUTS\n\n"
        "Written by `python benchmarks/bench_nuts.py --render` from `benchmarks/results/nuts_*.json`. "
        "Wall times are end to end (probmodels' and NumPyro's include compiling: probmodels from an empty TorchInductor cache, its `(cached)` row loading the graphs that run saved; NumPyro's `(compiled)` rows rerun the compiled kernel). "
        "Library imports are outside the wall times: `import jax` for NumPyro, TorchInductor's import and its once-per-machine probe of the CPU for probmodels (timed, and given under each table). "
        "min ESS_bulk is the smallest bulk ESS over every coordinate of the latent sites; "
        "grads are post-warmup leapfrog steps over all chains; ESS/s ÷ probmodels above 1 means faster than probmodels.\n"
    )
    written = write_results_section("nuts", intro + "".join("\n" + render_section(report) for report in reports), Path(markdown))
    print(f"wrote {written} ({len(reports)} NUTS benchmark(s))", file=sys.stderr)


def parse_args(argv):
    """Parse the command line.

    Parameters
    ----------
    argv : list of str

    Returns
    -------
    argparse.Namespace
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posterior", choices=sorted(BENCHMARKS), help="posterior to benchmark")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument(
        "--engines", type=_engines, default=_engines("probmodels,pyro,numpyro"),
        help=f"comma-separated, from {', '.join(ENGINES)}; 'numpyro' means both NumPyro chain methods",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per engine (seeds seed, seed+1000, ...)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", help="JSON file to write (default benchmarks/results/nuts_<posterior>.json)")
    parser.add_argument("--render", action="store_true", help="regenerate the markdown page from the JSON reports")
    parser.add_argument("--results-dir", default=str(RESULTS_DIR), help="folder of JSON reports for --render")
    parser.add_argument("--markdown", default=str(RESULTS_MD), help="markdown file --render writes")
    args = parser.parse_args(argv)
    if args.posterior is None and not args.render:
        parser.error("give --posterior, --render or both")
    return args


def main(argv=None):
    """Run the benchmark and/or render the results page.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments; default ``sys.argv[1:]``.

    Returns
    -------
    int
        Exit status.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.posterior is not None:
        script = Path(__file__).resolve().relative_to(REPO)
        run_benchmark(args, shlex.join(["python", str(script), *argv]))
    if args.render:
        render(args.results_dir, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
