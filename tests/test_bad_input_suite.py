"""The bad-input suite of the reliability issue, as one table of cases.

Each case feeds one kind of bad input to the library on tiny data and checks
that a probmodels exception is raised (or, where the documented answer is
``-inf``, that the result says so without NaN), and that the message names the
culprit (argument, site, node, state or file) and says how to fix it.
``tests/conftest.py`` prints the number of cases in the terminal summary.
"""

from __future__ import annotations

import functools
import json
import math
import pickle
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pyro
import pyro.distributions as dist
import pytest
import torch

import probmodels as pm
from probmodels import (
    ConvergenceWarning,
    DataError,
    InferenceError,
    ModelSpecError,
    NetworkFileError,
    ResultFileError,
    ShapeError,
)
from probmodels.bn import DirichletCPTModel, DiscreteBayesianNetwork, Inference, cpt_posterior, gaussian_maximum_likelihood, learn, read_bif
from probmodels.bn import read_xmlbif
from probmodels.bn import write_bif, write_xmlbif
from probmodels.bnn import BayesianMLP
from probmodels.gp import CholeskyJitterWarning, GPClassification, GPRegression, SparseGPRegression
from probmodels.hmm import CategoricalHMM, GaussianHMM, PoissonHMM

MCMC = dict(num_warmup=20, num_samples=20, num_chains=1, progress_bar=False, compile="none")
SVI = dict(num_steps=10, num_samples=5, progress_bar=False)


# ----------------------------------------------------------------------------- tiny models and data


def regression(x, y):
    slope = pyro.sample("slope", dist.Normal(x.new_tensor(0.0), 1.0))
    sigma = pyro.sample("sigma", dist.HalfNormal(x.new_tensor(1.0)))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", dist.Normal(slope * x, sigma), obs=y)


def centred_funnel(n):
    v = pyro.sample("v", dist.Normal(n.new_tensor(0.0), 3.0))
    with pyro.plate("x_plate", 9):
        pyro.sample("x", dist.Normal(n.new_tensor(0.0), torch.exp(v / 2)))


def poisson_model(counts):
    rate = pyro.sample("rate", dist.Gamma(counts.new_tensor(2.0), 1.0))
    with pyro.plate("data", counts.shape[0]):
        pyro.sample("counts", dist.Poisson(rate, validate_args=False), obs=counts)


def xy(n=12):
    x = torch.linspace(-1, 1, n)
    return x, 2 * x + 0.1 * torch.randn(n, generator=torch.Generator().manual_seed(0))


def with_value(tensor, index, value):
    tensor = tensor.clone()
    tensor[index] = value
    return tensor


def sprinkler(**overrides):
    cpds = {
        "rain": ((), ("no", "yes"), [0.8, 0.2]),
        "sprinkler": (("rain",), ("off", "on"), [[0.6, 0.4], [0.99, 0.01]]),
        "wet": (("rain", "sprinkler"), ("dry", "wet"), [[[1.0, 0.0], [0.1, 0.9]], [[0.2, 0.8], [0.01, 0.99]]]),
    }
    cpds.update(overrides)
    return DiscreteBayesianNetwork(cpds=cpds)


def sprinkler_data(n=30):
    return Inference(sprinkler()).sample(n, generator=torch.Generator().manual_seed(0))


def gaussian_data(n=20):
    rng = np.random.default_rng(0)
    a = rng.normal(size=n)
    return pd.DataFrame({"a": a, "b": 2 * a + rng.normal(size=n)})


BIF = write_bif(sprinkler())
XMLBIF = write_xmlbif(sprinkler())


def bif_file(tmp_path, text=None, data=None, name="net.bif"):
    path = tmp_path / name
    path.write_bytes(data if data is not None else text.encode())
    return path


def hmm_gaussian(n_states=2):
    model = GaussianHMM(n_states)
    model.startprob_ = np.array([0.5, 0.5])
    model.transmat_ = np.array([[0.9, 0.1], [0.2, 0.8]])
    model.means_ = np.array([[0.0], [3.0]])
    model.covars_ = np.array([[1.0], [1.0]])
    return model


def hmm_categorical():
    model = CategoricalHMM(2, n_symbols=3)
    model.startprob_ = np.array([1.0, 0.0])
    model.transmat_ = np.array([[1.0, 0.0], [0.0, 1.0]])
    model.emissionprob_ = np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    return model


def fitted_hmm():
    return GaussianHMM(2).fit(np.random.default_rng(0).normal(size=(20, 1)), n_restarts=1)


def with_missing_cell(frame, row, column):
    frame = frame.astype(object)
    frame.loc[row, column] = np.nan
    return frame


def gp_data(n=8, d=1):
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, (n, d))
    return X, np.sin(X).sum(axis=1)


def fitted_gp(device="cpu"):
    X, y = (torch.as_tensor(a, device=device) for a in gp_data())
    return GPRegression("rbf", hyperparameters={"outputscale": 1.0, "lengthscale": 1.0, "noise": 0.1},
                        fixed=("outputscale", "lengthscale", "noise")).fit(X, y)


@functools.lru_cache(maxsize=None)
def _finished_run():
    """A finished checkpoint and a saved posterior of one tiny run, made once per session."""
    folder = Path(tempfile.mkdtemp(prefix="bad-input-suite-"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        posterior = pm.fit_mcmc(regression, *xy(), checkpoint=folder / "run.ckpt", seed=1, **MCMC)
    return (folder / "run.ckpt").read_bytes(), posterior.save(folder / "fit.nc").read_bytes()


def checkpoint_file(tmp_path):
    path = tmp_path / "run.ckpt"
    path.write_bytes(_finished_run()[0])
    return path


def result_file(tmp_path):
    path = tmp_path / "fit.nc"
    path.write_bytes(_finished_run()[1])
    return path


def rewrite_checkpoint_header(path, **changes):
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    header = json.loads(str(arrays["header"][()]))
    header.update(changes)
    arrays["header"] = np.array(json.dumps(header))
    with open(path, "wb") as file:
        np.savez(file, **arrays)
    return path


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def pickle_into(path):
    path.write_bytes(pickle.dumps({"position": [1.0, 2.0]}))
    return path


def foreign_netcdf(tmp_path):
    import arviz as az

    path = tmp_path / "other.nc"
    az.from_dict(posterior={"x": np.zeros((1, 5))}).to_netcdf(path, engine="h5netcdf")
    return path


def with_nan(array, index, value=np.nan):
    array = np.array(array, dtype=float)
    array[index] = value
    return array


def set_attr(obj, name, value):
    setattr(obj, name, value)
    return obj


def assert_minus_inf(result):
    assert result == -math.inf, f"expected -inf, got {result!r}"


def assert_no_nan(result):
    assert not np.isnan(np.asarray(result)).any(), f"NaN in {result!r}"


BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
    + "".join(f' <!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">\n' for i in range(1, 10))
    + ']>\n<BIF VERSION="0.3"><NETWORK><NAME>&lol9;</NAME></NETWORK></BIF>\n'
)


def external_entity(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    return XMLBIF.replace("<BIF", f'<!DOCTYPE BIF [ <!ENTITY x SYSTEM "file://{secret}"> ]>\n<BIF', 1).replace(
        "<NAME>unknown</NAME>", "<NAME>&x;</NAME>")


# ----------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Case:
    trigger: Callable[[Path], object]
    error: type | None  # a probmodels exception, or None when ``check`` judges the result
    match: str = ""  # must name the culprit AND say how to fix it
    check: Callable[[object], None] | None = None
    warning: type | None = None  # the call must warn with this class (message matched by ``match``)


def case(id, trigger, error=None, match="", *, check=None, warning=None, marks=()):
    return pytest.param(Case(trigger, error, match, check, warning), id=id, marks=marks)


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; none is available here")

CASES = []
# core: fit_mcmc / fit_svi
CASES += [
    case("core/mcmc/nan-in-data", lambda tmp: pm.fit_mcmc(regression, xy()[0], with_value(xy()[1], 3, math.nan), **MCMC), DataError, r"argument 'positional argument 1' .*\(NaN\), first at index \[\[3\]\]; remove or impute"),
    case("core/mcmc/inf-in-data", lambda tmp: pm.fit_mcmc(regression, xy()[0], with_value(xy()[1], 3, math.inf), **MCMC), DataError, r"argument 'positional argument 1' .*\(inf\), first at index \[\[3\]\]; remove or impute"),
    case("core/svi/nan-in-data", lambda tmp: pm.fit_svi(regression, xy()[0], with_value(xy()[1], 3, math.nan), **SVI), DataError, r"argument 'positional argument 1' .*\(NaN\).*remove or impute"),
    case("core/svi/inf-in-keyword-data", lambda tmp: pm.fit_svi(regression, model_kwargs={"x": with_value(xy()[0], 0, -math.inf), "y": xy()[1]}, **SVI), DataError, r"argument 'x' .*\(inf\), first at index \[\[0\]\]; remove or impute"),
    case("core/mcmc/wrong-ndim-observed", lambda tmp: pm.fit_mcmc(regression, xy()[0], xy()[1].unsqueeze(-1), **MCMC), ShapeError, r"observed site 'y'.*\(12, 1\).*\(12,\).*Reshape the data"),
    case("core/mcmc/x-y-length-mismatch", lambda tmp: pm.fit_mcmc(regression, xy()[0], xy()[1][:-2], **MCMC), ShapeError, r"observed site 'y'.*\(10,\).*\(12,\).*Reshape the data"),
    case("core/mcmc/empty-data", lambda tmp: pm.fit_mcmc(regression, torch.zeros(0), torch.zeros(0), **MCMC), DataError, r"argument 'positional argument 0'.*empty.*(pass|at least)"),
    case("core/mcmc/object-dtype", lambda tmp: pm.fit_mcmc(regression, xy()[0], np.array([1.0, None] * 6, dtype=object), **MCMC), DataError, r"argument 'positional argument 1' is a numpy array of dtype object; convert it to a numeric dtype"),
    case("core/mcmc/mixed-float32-float64", lambda tmp: pm.fit_mcmc(regression, xy()[0].float(), xy()[1].double(), **MCMC), DataError, r"mixes floating dtypes \['torch.float32', 'torch.float64'\]; convert every tensor to one dtype"),
    case("core/svi/mixed-float32-float64", lambda tmp: pm.fit_svi(regression, xy()[0].float(), xy()[1].double(), **SVI), DataError, r"mixes floating dtypes \['torch.float32', 'torch.float64'\]; convert every tensor to one dtype"),
    case("core/mcmc/cpu-data-into-gpu-model", lambda tmp: pm.fit_mcmc(regression, *xy(), device="cuda", **MCMC), DataError, r"device='cuda'.*data lives on cpu; move the data with \.to\('cuda'\)", marks=CUDA),
    case("core/mcmc/num-samples-0", lambda tmp: pm.fit_mcmc(regression, *xy(), **dict(MCMC, num_samples=0)), ModelSpecError, r"num_samples must be >= 1, got 0\. Pass a positive count"),
    case("core/mcmc/num-chains-0", lambda tmp: pm.fit_mcmc(regression, *xy(), **dict(MCMC, num_chains=0)), ModelSpecError, r"num_chains must be >= 1, got 0\. Pass a positive count"),
    case("core/svi/num-steps-0", lambda tmp: pm.fit_svi(regression, *xy(), **dict(SVI, num_steps=0)), ModelSpecError, r"num_steps must be >= 1, got 0\. Pass a positive count"),
    case("core/svi/exploding-learning-rate", lambda tmp: pm.fit_svi(regression, xy()[0], xy()[1] * 1e150, lr=1e3, num_steps=200, progress_bar=False), InferenceError, r"SVI failed at step \d+.*lower the learning rate \(lr=1000\.0\)"),
    case("core/mcmc/initial-log-density-minus-inf", lambda tmp: pm.fit_mcmc(poisson_model, torch.tensor([1.0, -2.0, 3.0]), **MCMC), InferenceError, r"non-finite sites: 'counts' \(log-prob -inf\).*pass init_values"),
    case("core/mcmc/funnel-every-transition-diverges", lambda tmp: pm.fit_mcmc(centred_funnel, torch.tensor(1.0), num_warmup=20, num_samples=20, num_chains=1, max_tree_depth=4, target_accept=0.6, seed=2, progress_bar=False, compile="none"), warning=ConvergenceWarning, match=r"\d+ of 20 post-warmup transitions diverged.*Raise target_accept .* or reparameterise"),
]

# core: checkpoints and result files
CASES += [
    case("core/checkpoint/truncated", lambda tmp: pm.fit_mcmc(regression, *xy(), checkpoint=truncate(checkpoint_file(tmp)), seed=1, **MCMC), ResultFileError, r"checkpoint '.*run\.ckpt' could not be read.*truncated.*Delete it, or pass another checkpoint path"),
    case("core/checkpoint/wrong-schema", lambda tmp: pm.fit_mcmc(regression, *xy(), checkpoint=rewrite_checkpoint_header(checkpoint_file(tmp), schema="someone.else"), seed=1, **MCMC), ResultFileError, r"checkpoint '.*run\.ckpt' is not a probmodels NUTS checkpoint.*Delete it, or pass another checkpoint path"),
    case("core/checkpoint/contains-a-pickle", lambda tmp: pm.fit_mcmc(regression, *xy(), checkpoint=pickle_into(tmp / "run.ckpt"), seed=1, **MCMC), ResultFileError, r"checkpoint '.*run\.ckpt' could not be read.*pickles are refused.*Delete it, or pass another checkpoint path"),
    case("core/result-file/truncated", lambda tmp: pm.load(truncate(result_file(tmp))), ResultFileError, r"result file '.*fit\.nc' could not be read.*truncated or not a file written by Posterior\.save"),
    case("core/result-file/wrong-schema", lambda tmp: pm.load(foreign_netcdf(tmp)), ResultFileError, r"result file '.*other\.nc' is not a probmodels posterior.*Posterior\.save"),
    case("core/result-file/contains-a-pickle", lambda tmp: pm.load(pickle_into(tmp / "fit.nc")), ResultFileError, r"result file '.*fit\.nc' could not be read.*not a file written by Posterior\.save"),
]

# Bayesian networks: CPTs and structure
CASES += [
    case("bn/cpt-columns-not-summing-to-1", lambda tmp: sprinkler(sprinkler=(("rain",), ("off", "on"), [[0.6, 0.4], [0.8, 0.1]])), ModelSpecError, r"the CPT of 'sprinkler'.*must sum to 1.*rain='yes' sums to 0\.9\. Normalise with"),
    case("bn/cpt-off-by-1e-6", lambda tmp: sprinkler(rain=((), ("no", "yes"), [0.8, 0.2 + 3e-6])), ModelSpecError, r"the CPT of 'rain'.*tolerance 1e-06.*sums to 1\.000003\. Normalise with"),
    case("bn/cpt-negative-entry", lambda tmp: sprinkler(sprinkler=(("rain",), ("off", "on"), [[0.6, 0.4], [1.1, -0.1]])), ModelSpecError, r"the CPT of 'sprinkler' has 1 negative.*rain='yes', state 'on' = -0\.1\. Probabilities must be finite and >= 0"),
    case("bn/cpt-nan-entry", lambda tmp: sprinkler(rain=((), ("no", "yes"), [1.0, math.nan])), ModelSpecError, r"the CPT of 'rain' has 1 negative, infinite or NaN.*state 'yes' = nan\. Probabilities must be finite and >= 0"),
    case("bn/cycle-via-add-edge", lambda tmp: DiscreteBayesianNetwork([("A", "B"), ("B", "C")]).add_edge("C", "A"), ModelSpecError, r"edge 'C' -> 'A' would create the cycle 'A' -> 'B' -> 'C' -> 'A'.*remove one of these edges"),
    case("bn/cycle-via-constructor", lambda tmp: DiscreteBayesianNetwork([("A", "B"), ("B", "A")]), ModelSpecError, r"would create the cycle 'A' -> 'B' -> 'A'.*remove one of these edges"),
    case("bn/self-loop", lambda tmp: DiscreteBayesianNetwork([("A", "A")]), ModelSpecError, r"self-loop 'A' -> 'A'.*remove this edge"),
    case("bn/unknown-evidence-variable", lambda tmp: Inference(sprinkler()).query(["rain"], {"wett": "wet"}), ModelSpecError, r"unknown node 'wett'.*did you mean 'wet'"),
    case("bn/unknown-evidence-state", lambda tmp: Inference(sprinkler()).query(["rain"], {"wet": "damp"}), DataError, r"'damp' is not a state of 'wet'; its states are \('dry', 'wet'\)"),
    case("bn/zero-probability-evidence", lambda tmp: Inference(sprinkler()).query(["sprinkler"], {"rain": "no", "sprinkler": "off", "wet": "wet"}), DataError, r"evidence \{'rain': 'no', 'sprinkler': 'off', 'wet': 'wet'\} has probability 0.*fix the evidence, or use log_probability"),
    case("bn/unseen-category-at-predict", lambda tmp: Inference(sprinkler()).query_batch(["rain"], pd.DataFrame({"wet": ["dry", "damp"]})), DataError, r"column 'wet' holds \['damp'\] \(first at row 1\), which are not states of 'wet': \('dry', 'wet'\)"),
    case("bn/unseen-category-at-map-query", lambda tmp: Inference(sprinkler()).map_query(["rain"], pd.DataFrame({"wet": ["dry", "damp"]})), DataError, r"column 'wet' holds \['damp'\] \(first at row 1\), which are not states of 'wet': \('dry', 'wet'\)"),
    case("bn/learning/nan-in-data", lambda tmp: learn.maximum_likelihood(sprinkler(), with_missing_cell(sprinkler_data(), 3, "sprinkler")), DataError, r"missing values \{'sprinkler': 1\} \(first rows \[3\]\).*(impute|dropna|missing='em')"),
    case("bn/learning/unseen-category-in-data", lambda tmp: learn.maximum_likelihood(sprinkler(), sprinkler_data().astype(object).replace({"wet": {"dry": "damp"}})), DataError, r"column 'wet' holds \['damp'\].*not states of 'wet': \('dry', 'wet'\)"),
    case("bn/learning/missing-dataframe-column", lambda tmp: learn.maximum_likelihood(sprinkler(), sprinkler_data().drop(columns="wet")), DataError, r"no column for nodes \['wet'\]; its columns are \['rain', 'sprinkler'\]"),
    case("bn/learning/empty-data", lambda tmp: learn.maximum_likelihood(sprinkler(), sprinkler_data().iloc[:0]), DataError, r"data.*(no rows|0 rows|empty).*(pass|at least)"),
    case("bn/bayesian-cpts/column-not-in-structure", lambda tmp: cpt_posterior([("A", "B")], pd.DataFrame({"A": [0, 1], "B": [1, 0], "C": [0, 0]})), DataError, r"\['C'\] are not nodes of the structure"),
    case("bn/bayesian-cpts/hidden-node-without-states", lambda tmp: cpt_posterior([("H", "A")], pd.DataFrame({"A": [0, 1]})), DataError, r"'H' has no column in data, so it is hidden and its states are unknown; pass state_names"),
    case("bn/bayesian-cpts/value-not-a-state", lambda tmp: cpt_posterior([("A", "B")], pd.DataFrame({"A": [0, 1], "B": [0, 5]}), state_names={"B": [0, 1]}), DataError, r"column 'B' holds \[5\].*not states of 'B'"),
    case("bn/bayesian-cpts/no-observed-cell", lambda tmp: cpt_posterior([("A", "B")], pd.DataFrame({"A": [None], "B": [None]}), state_names={"A": [0, 1], "B": [0, 1]}), DataError, r"no observed cell"),
    case("bn/bayesian-cpts/exact-evidence-with-missing-cells", lambda tmp: DirichletCPTModel([("A", "B")], {"A": [0, 1], "B": [0, 1]}).exact_log_evidence(torch.tensor([[0, -1]])), ModelSpecError, r"no closed form.*method='bridge'"),
    case("bn/gaussian-learning/nan-in-data", lambda tmp: gaussian_maximum_likelihood([("a", "b")], gaussian_data().assign(b=lambda d: d.b.where(d.index != 2))), DataError, r"missing values \{'b': 1\} \(first rows \[2\]\).*impute them, or drop the rows explicitly"),
    case("bn/gaussian-learning/inf-in-data", lambda tmp: gaussian_maximum_likelihood([("a", "b")], gaussian_data().assign(b=lambda d: d.b.where(d.index != 2, np.inf))), DataError, r"columns \['b'\] hold inf values; remove or fix those rows"),
    case("bn/gaussian-learning/object-dtype", lambda tmp: gaussian_maximum_likelihood([("a", "b")], gaussian_data().assign(b="high")), DataError, r"column 'b' has dtype \w+.*needs numbers; convert it with pd\.to_numeric"),
]

# Bayesian networks: BIF and XMLBIF files
CASES += [
    case("bn/bif/truncated", lambda tmp: read_bif(bif_file(tmp, BIF[: BIF.index("probability ( wet")])), NetworkFileError, r"net\.bif, line \d+: variable 'wet' has no probability block; add .*truncated"),
    case("bn/bif/truncated-mid-table", lambda tmp: read_bif(bif_file(tmp, BIF[: len(BIF) - 20])), NetworkFileError, r"net\.bif, line \d+: .*probability block of 'wet'.*is it truncated"),
    case("bn/bif/undeclared-variable", lambda tmp: read_bif(bif_file(tmp, BIF.replace("probability ( sprinkler | rain )", "probability ( sprinkler | rainn )"))), NetworkFileError, r"net\.bif, line \d+: .*'sprinkler' uses the undeclared variable 'rainn' \(did you mean 'rain'\?\); declare it"),
    case("bn/bif/table-length-mismatch", lambda tmp: read_bif(bif_file(tmp, BIF.replace("table 0.8, 0.2;", "table 0.8, 0.2, 0.0;"))), NetworkFileError, r"net\.bif, line \d+: in the probability block of 'rain', the table: expected 2 probabilities, found 3; give one per state"),
    case("bn/bif/non-utf8", lambda tmp: read_bif(bif_file(tmp, data=BIF.replace("network", "network caf\u00e9", 1).encode("latin-1"))), NetworkFileError, r"net\.bif, line 1: byte \d+ \(b'\\xe9'\) is not valid UTF-8.*iconv"),
    case("bn/bif/cpt-not-summing-to-1", lambda tmp: read_bif(bif_file(tmp, BIF.replace("table 0.8, 0.2;", "table 0.8, 0.3;"))), NetworkFileError, r"net\.bif, line \d+: probability block of 'rain'.*must sum to 1.*Normalise with"),
    case("bn/xmlbif/truncated", lambda tmp: read_xmlbif(bif_file(tmp, XMLBIF[: len(XMLBIF) // 2], name="net.xml")), NetworkFileError, r"net\.xml: not well-formed XML.*is the file truncated"),
    case("bn/xmlbif/undeclared-variable", lambda tmp: read_xmlbif(bif_file(tmp, XMLBIF.replace("<GIVEN>rain</GIVEN>", "<GIVEN>rainn</GIVEN>", 1), name="net.xml")), NetworkFileError, r"net\.xml: the definition of 'sprinkler' uses the undeclared variable 'rainn' \(did you mean 'rain'\?\); declare it"),
    case("bn/xmlbif/table-length-mismatch", lambda tmp: read_xmlbif(bif_file(tmp, XMLBIF.replace("<TABLE>0.8 0.2</TABLE>", "<TABLE>0.8 0.2 0.0</TABLE>"), name="net.xml")), NetworkFileError, r"net\.xml: the <TABLE> of 'rain' has 3 values.*need 2; give one value per state"),
    case("bn/xmlbif/entity-expansion", lambda tmp: read_xmlbif(bif_file(tmp, BILLION_LAUGHS, name="net.xml")), NetworkFileError, r"net\.xml, line 2: .*<!DOCTYPE.*billion laughs.*remove the declaration"),
    case("bn/xmlbif/external-entity", lambda tmp: read_xmlbif(bif_file(tmp, external_entity(tmp), name="net.xml")), NetworkFileError, r"net\.xml, line 2: .*<!DOCTYPE.*read local files and URLs; remove the declaration"),
    case("bn/xmlbif/non-utf8", lambda tmp: read_xmlbif(bif_file(tmp, data=XMLBIF.replace("<NAME>rain</NAME>", "<NAME>r\u00e9in</NAME>", 1).encode("latin-1"), name="net.xml")), NetworkFileError, r"net\.xml, line \d+: byte \d+ \(b'\\xe9'\) is not valid UTF-8.*iconv"),
]

# hidden Markov models
CASES += [
    case("hmm/gaussian/nan-in-data", lambda tmp: GaussianHMM(2).fit(with_nan(np.zeros((20, 1)), 3)), DataError, r"X contains 1 NaN or infinite value\(s\), first in rows \[3\]; remove or impute"),
    case("hmm/gaussian/inf-in-data", lambda tmp: GaussianHMM(2).fit(with_nan(np.zeros((20, 1)), 3, np.inf)), DataError, r"X contains 1 NaN or infinite value\(s\), first in rows \[3\]; remove or impute"),
    case("hmm/poisson/nan-in-data", lambda tmp: PoissonHMM(2).fit(with_nan(np.ones((20, 1)), 3)), DataError, r"X contains 1 NaN or infinite value\(s\), first in rows \[3\]; remove or impute"),
    case("hmm/wrong-ndim", lambda tmp: GaussianHMM(2).fit(np.zeros(20)), ShapeError, r"X must be a non-empty 2-D array .*got shape \(20,\); reshape one feature with X\.reshape\(-1, 1\)"),
    case("hmm/empty-data", lambda tmp: GaussianHMM(2).fit(np.zeros((0, 1))), ShapeError, r"X must be a non-empty 2-D array .*got shape \(0, 1\)"),
    case("hmm/object-dtype", lambda tmp: GaussianHMM(2).fit(np.array([[1.0], [None]] * 5, dtype=object)), DataError, r"X must be a numeric array, got dtype object; convert it with np\.asarray"),
    case("hmm/lengths-not-summing", lambda tmp: GaussianHMM(2).fit(np.zeros((20, 1)), [10, 15]), DataError, r"lengths sum to 25 but X has 20 rows; lengths must .* sum to len\(X\)"),
    case("hmm/lengths-with-zero", lambda tmp: GaussianHMM(2).fit(np.zeros((20, 1)), [20, 0]), DataError, r"sequence length must be >= 1, got lengths \[20, 0\]"),
    case("hmm/k-below-1", lambda tmp: GaussianHMM(0), ModelSpecError, r"n_states must be >= 1, got 0\. Pass a positive count"),
    case("hmm/startprob-not-normalised", lambda tmp: set_attr(hmm_gaussian(), "startprob_", np.array([0.6, 0.6])).score(np.zeros((5, 1))), ModelSpecError, r"startprob_ must hold probability distributions.*sum 1\.2\. Normalise with startprob_"),
    case("hmm/transmat-not-normalised", lambda tmp: set_attr(hmm_gaussian(), "transmat_", np.array([[0.9, 0.1], [0.5, 0.6]])).predict(np.zeros((5, 1))), ModelSpecError, r"transmat_ must hold probability distributions.*row \(1,\): sum 1\.1\. Normalise with transmat_"),
    case("hmm/transmat-negative", lambda tmp: set_attr(hmm_gaussian(), "transmat_", np.array([[1.1, -0.1], [0.5, 0.5]])).score(np.zeros((5, 1))), ModelSpecError, r"transmat_ must hold probability distributions .*\(non-negative.*row \(0,\).*Normalise with transmat_"),
    case("hmm/out-of-range-symbol-at-fit", lambda tmp: CategoricalHMM(2, n_symbols=4).fit(np.array([[0], [1], [5], [2]])), DataError, r"X holds symbol 5 \(rows \[2\]\) but n_symbols=4.*Raise n_symbols or recode"),
    case("hmm/out-of-range-symbol-at-predict", lambda tmp: hmm_categorical().predict(np.array([[0], [1], [3]])), DataError, r"X holds symbol 3 \(rows \[2\]\) but n_symbols=3.*Raise n_symbols or recode"),
    case("hmm/wrong-feature-dimension-at-predict", lambda tmp: fitted_hmm().predict(np.zeros((5, 2))), ShapeError, r"X has 2 feature\(s\).*n_features=1"),
    case("hmm/wrong-feature-dimension-with-parameters-set-by-hand", lambda tmp: hmm_gaussian().predict(np.zeros((5, 2))), ShapeError, r"X has 2 feature\(s\) but means_ has shape \(2, 1\).*pass X with the columns means_ was set for"),
    case("hmm/impossible-sequence-score-is-minus-inf", lambda tmp: hmm_categorical().score(np.array([[0], [2], [0]])), check=assert_minus_inf),
    case("hmm/impossible-sequence-posteriors-no-nan", lambda tmp: hmm_categorical().predict_proba(np.array([[0], [2], [0]])), check=assert_no_nan),
]

# Gaussian processes
CASES += [
    case("gp/regression/nan-in-X", lambda tmp: GPRegression().fit(with_nan(gp_data()[0], 2), gp_data()[1]), DataError, r"argument 'X' .*\(NaN\), first at index \[\[2, 0\]\]; remove or impute"),
    case("gp/regression/inf-in-y", lambda tmp: GPRegression().fit(gp_data()[0], with_nan(gp_data()[1], 2, np.inf)), DataError, r"argument 'y' .*\(inf\), first at index \[\[2\]\]; remove or impute"),
    case("gp/sparse/nan-in-X", lambda tmp: SparseGPRegression().fit(with_nan(gp_data()[0], 2), gp_data()[1]), DataError, r"argument 'X' .*\(NaN\).*remove or impute"),
    case("gp/classification/nan-in-y", lambda tmp: GPClassification().fit(gp_data()[0], with_nan(np.array([0.0, 1.0] * 4), 2)), DataError, r"argument 'y' .*\(NaN\).*remove or impute"),
    case("gp/regression/wrong-ndim", lambda tmp: GPRegression().fit(np.zeros((4, 1, 1)), np.zeros(4)), ShapeError, r"X must have shape \(n_samples, n_features\) or \(n_samples,\), got \(4, 1, 1\)"),
    case("gp/regression/x-y-length-mismatch", lambda tmp: GPRegression().fit(gp_data()[0], gp_data()[1][:-1]), ShapeError, r"X has 8 rows but y has 7 values; pass one target per row of X"),
    case("gp/regression/empty-data", lambda tmp: GPRegression().fit(np.zeros((0, 1)), np.zeros(0)), ShapeError, r"X has no rows; pass at least one sample"),
    case("gp/regression/object-dtype", lambda tmp: GPRegression().fit(gp_data()[0], np.array([1.0, None] * 4, dtype=object)), DataError, r"argument 'y' is a numpy array of dtype object; convert it to a numeric dtype"),
    case("gp/regression/mixed-float32-float64", lambda tmp: GPRegression().fit(torch.tensor(gp_data()[0], dtype=torch.float32), torch.tensor(gp_data()[1], dtype=torch.float64)), DataError, r"mixes floating dtypes.*convert"),
    case("gp/regression/cpu-data-into-gpu-model", lambda tmp: fitted_gp(device="cuda").predict(torch.as_tensor(gp_data()[0])), DataError, r"X.*(cpu|device).*cuda.*\.to\(", marks=CUDA),
    case("gp/regression/duplicate-inputs-zero-noise", lambda tmp: GPRegression("rbf", hyperparameters={"noise": 0.0}, fixed=("noise",)).fit(np.array([0.0, 0.0, 1.0]), np.array([1.0, -1.0, 0.5])), DataError, r"noise is fixed at 0, but X repeats row 0 at row 1 with a different target.*Fix the noise to a positive value"),
    case("gp/regression/duplicate-inputs-zero-noise-consistent-targets-warn", lambda tmp: GPRegression("rbf", hyperparameters={"noise": 0.0}, fixed=("noise",)).fit(np.array([0.0, 0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.5, -0.2])),
         warning=CholeskyJitterWarning, match=r"kernel matrix failed; retrying with jitter .*duplicate inputs with \(near\) zero noise"),
    case("gp/regression/negative-noise", lambda tmp: GPRegression("rbf", hyperparameters={"noise": -0.1}).fit(*gp_data()), ModelSpecError, r"noise must be a finite number >= 0 \(a variance\), got -0\.1"),
    case("gp/regression/wrong-feature-dimension-at-predict", lambda tmp: fitted_gp().predict(np.zeros((3, 2))), ShapeError, r"X has 2 feature\(s\) but the model was fitted on 1; pass the same columns as in fit"),
    case("gp/classification/wrong-feature-dimension-at-predict", lambda tmp: GPClassification(hyperparameters={"outputscale": 1.0, "lengthscale": 1.0}, fixed=("outputscale", "lengthscale")).fit(gp_data()[0], np.array([0, 1] * 4)).predict_proba(np.zeros((3, 2))), ShapeError, r"X has 2 feature\(s\) but the model was fitted on 1; pass the same columns as in fit"),
    case("gp/sparse/exploding-learning-rate", lambda tmp: SparseGPRegression(lr=1e6, batch_size=5).fit(*gp_data(20)), InferenceError, r"SVGP training failed at step 2 \(epoch 1\).*Lower lr"),
]


# Bayesian neural networks
def bnn_data(n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    x = np.linspace(-1.0, 1.0, 2 * n).reshape(n, 2)
    return x, x.sum(1)


CASES += [
    case("bnn/x-y-length-mismatch", lambda tmp: BayesianMLP().fit(bnn_data()[0], bnn_data()[1][:9]), ShapeError, r"y has 9 rows but X has 12; pass one target per row of X"),
    case("bnn/nan-in-X", lambda tmp: BayesianMLP().fit(with_nan(bnn_data()[0], 3), bnn_data()[1]), DataError, r"X contains 2 NaN or infinite value\(s\), the first at index \[3, 0\]; remove or impute"),
    case("bnn/inf-in-y", lambda tmp: BayesianMLP().fit(bnn_data()[0], with_nan(bnn_data()[1], 3, np.inf)), DataError, r"y contains 1 NaN or infinite value\(s\).*remove or impute"),
    case("bnn/labels-out-of-range", lambda tmp: BayesianMLP(task="classification", n_classes=3).fit(bnn_data()[0], np.array([0, 1, 2, 3] * 3)), DataError, r"labels range over \[0, 3\] but must lie in \[0, 2\] for n_classes=3"),
    case("bnn/non-integer-labels", lambda tmp: BayesianMLP(task="classification").fit(bnn_data()[0], np.array([0, 1, 0.5, 1] * 3)), DataError, r"must be integers"),
    case("bnn/wrong-feature-dimension-at-predict", lambda tmp: BayesianMLP((3,), num_steps=20, num_samples=5, svi_options={"tol": 0.0}).fit(*bnn_data()).predict(np.zeros((4, 3))), ShapeError, r"X has 3 features but the network was fitted with 2"),
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input(case, tmp_path):
    """One bad input: a probmodels exception (or warning, or a documented -inf) that names the culprit and the fix."""
    if case.warning is not None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            case.trigger(tmp_path)
        messages = [str(w.message) for w in caught if issubclass(w.category, case.warning)]
        assert messages, f"no {case.warning.__name__}; got {[str(w.message) for w in caught]}"
        assert any(re.search(case.match, m, re.DOTALL) for m in messages), (case.match, messages)
        return
    if case.error is None:
        case.check(case.trigger(tmp_path))
        return
    assert issubclass(case.error, pm.ProbModelsError)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", CholeskyJitterWarning)
        with pytest.raises(case.error) as info:
            case.trigger(tmp_path)
    message = str(info.value)
    assert re.search(case.match, message, re.DOTALL), f"message does not match {case.match!r}: {message}"
