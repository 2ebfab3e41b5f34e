"""Many short chains as one batch (the GPU regime): pooled adaptation, superchains and nested
R-hat, against Stan's reference posteriors."""

import pytest

import probmodels as pm
from posteriordb_models import load_case, load_reference_draws, requires_reference
from probmodels.diagnostics.nested_rhat import posterior_nested_rhat
from test_reference_posteriors import _compare

FAST = ["eight_schools-eight_schools_noncentered", "sblrc-blr"]
SLOW = ["kidiq-kidscore_momiq", "arK-arK", "low_dim_gauss_mix-low_dim_gauss_mix", "hmm_example-hmm_example", "gp_pois_regr-gp_regr"]
DENSE = {"kidiq-kidscore_momiq"}


@requires_reference
@pytest.mark.parametrize("name", FAST + [pytest.param(n, marks=pytest.mark.slow) for n in SLOW])
def test_256_pooled_chains_reproduce_reference(name):
    case = load_case(name)
    posterior = pm.fit_mcmc(
        case.model, *case.args, model_kwargs=case.kwargs, num_chains=256, num_superchains=16, num_warmup=300,
        num_samples=100, adapt_pooled=True, dense_mass=name in DENSE, seed=7, progress_bar=False,
    )
    assert posterior.num_chains == 256 and posterior.num_draws == 100
    problems = _compare(posterior, load_reference_draws(name))
    assert not problems, "\n".join(problems)
    worst = max(float(v.max()) for v in posterior_nested_rhat(posterior).values())
    assert worst < 1.01, f"largest nested R-hat {worst:.4f}"
