"""fit_mcmc against Stan's gold-standard reference posteriors (posteriordb).

The pass rule asked of the core: with 4 chains, every parameter's posterior
mean within 0.1 reference sd of the reference mean, and its posterior sd
within 10 % of the reference sd. The Monte Carlo error of our estimate is
reported in each failure message: with ~1000 effective draws the rule is
about 3 MCSE wide for means and 4.5 for sds.
"""

import pytest

import probmodels as pm
from probmodels.diagnostics.arviz import rhat
from posteriordb_models import load_case, load_reference_draws, requires_reference

CORE_CASES = {
    "eight_schools-eight_schools_noncentered": {},
    # sigma's bulk ESS is about 0.17 per draw here: 2000 draws a chain keep the 0.1-sd rule
    # above 3.5 MCSE (with 1000 it is 2.6 MCSE, a 1 % false alarm per coordinate).
    "sblrc-blr": {"num_samples": 2000},
    # Intercept and slope on unstandardised mom_iq correlate at -0.99: a diagonal metric
    # needs trees of depth 8+, a dense one (adapted the same way) depth 2-3.
    "kidiq-kidscore_momiq": {"dense_mass": True},
    "arK-arK": {},
}
# Longer runs (a mixture of 1000 points, a forward algorithm over 100 steps, a GP Cholesky per step).
SLOW_CASES = {
    "low_dim_gauss_mix-low_dim_gauss_mix": {},
    "hmm_example-hmm_example": {},
    "gp_pois_regr-gp_regr": {},
}


def _compare(posterior, reference):
    problems = []
    for name, ref in reference.items():
        ours = posterior[name].cpu().numpy()
        ours = ours.reshape(ours.shape[0] * ours.shape[1], -1)
        ref = ref.reshape(ref.shape[0] * ref.shape[1], -1)
        for k in range(ref.shape[1]):
            ref_mean, ref_sd = ref[:, k].mean(), ref[:, k].std()
            mean_err = abs(ours[:, k].mean() - ref_mean) / ref_sd
            sd_err = abs(ours[:, k].std() / ref_sd - 1)
            if mean_err > 0.1 or sd_err > 0.1:
                problems.append(f"{name}[{k}]: mean off by {mean_err:.3f} ref sd, sd off by {100 * sd_err:.1f} %")
    return problems


def max_rhat(posterior):
    """The largest rank-normalised split R-hat over every coordinate, unrounded."""
    r_hat = rhat(posterior.to_arviz(log_likelihood=False))
    return max(float(r_hat[var].max()) for var in r_hat.data_vars)


@requires_reference
@pytest.mark.parametrize("name", list(CORE_CASES) + [pytest.param(n, marks=pytest.mark.slow) for n in SLOW_CASES])
def test_core_reproduces_reference_posterior(name):
    case = load_case(name)
    settings = {**CORE_CASES, **SLOW_CASES}[name]
    posterior = pm.fit_mcmc(case.model, *case.args, model_kwargs=case.kwargs, num_chains=4, seed=2024, progress_bar=False, **settings)
    problems = _compare(posterior, load_reference_draws(name))
    assert not problems, "\n".join(problems)
    assert max_rhat(posterior) < 1.01, f"largest R-hat {max_rhat(posterior):.4f}"
    if name.startswith("eight_schools"):
        # At default settings a divergence here is a rare genuine event of the funnel (a momentum of 26
        # in log tau at tau = 48), not a systematic one: 1 in 36,000 post-warmup transitions over nine
        # seeds, the compiled and eager leaves agreeing at it. More than 1 in 2,000 would be systematic.
        divergent = int(posterior.sample_stats["diverging"].sum())
        assert divergent <= posterior.num_chains * posterior.num_draws / 2000, f"{divergent} divergences on non-centred eight schools"
