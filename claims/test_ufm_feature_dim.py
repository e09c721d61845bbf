"""UFM claim 3: the simplex ETF needs p >= C-1 feature dimensions.

Source: Zhu et al., "A Geometric Analysis of Neural Collapse with Unconstrained Features", NeurIPS 2021
(arXiv 2105.02375), Theorem 3.1, which assumes p >= C-1: C vectors with pairwise cosines -1/(C-1) span
C-1 dimensions. For p >= C-1 the CE UFM's minimiser found by LBFGS has centered class means at ETF Gram
distance ~0. For p < C-1 no centered configuration can be closer to the ETF than
sqrt(2 - 2 sqrt(p/(C-1))) (ncsim.ufm.etf_distance_lower_bound, derived there), so the documented expected
outcome is: the means' ETF distance stays bounded away from 0 (measured values printed per case; for
p = 2 they sit at the bound, a regular C-gon) while the features still collapse to their class means
(NC1 holds at every critical point: each h_i minimises a strictly convex function of h_i given W, b).
Observed but not claimed: for p < C-1 different inits can end at different objective values (e.g.
C = 6, p = 2 and p = 4), i.e. the benign landscape of Thm 3.2 is lost.
"""

import pytest

from ncsim import metrics, ufm

C = 6
FULL_DIMS = (C - 1, C, 2 * C)
LOW_DIMS = (2, 3, C - 2)
SEEDS = (0, 1)


def problem(p: int) -> ufm.UFMProblem:
    return ufm.UFMProblem(C, p, 4, lambda_w=5e-2, lambda_h=2e-2, lambda_b=5e-2)


def means_etf_distance(result: ufm.UFMResult) -> float:
    return ufm.etf_gram_distance(ufm.centered_mean_gram(result.features, result.labels, C))


def cases(dims):
    return [pytest.param(p, seed, id=f"C{C}-p{p}-seed{seed}") for p in dims for seed in SEEDS]


@pytest.mark.parametrize("p,seed", cases(FULL_DIMS))
def test_etf_when_p_at_least_c_minus_1(p, seed, claim_check):
    """p >= C-1: the centered class means form a simplex ETF (Gram distance to the ETF)."""
    r = ufm.solve_cached(problem(p), "lbfgs", seed)
    claim_check("ufm_etf_distance_max", means_etf_distance(r), seed=seed, run=f"ufm-ce-lbfgs-C{C}-p{p}")


@pytest.mark.parametrize("p,seed", cases(LOW_DIMS))
def test_no_etf_when_p_below_c_minus_1(p, seed, claim_check):
    """p < C-1: the means' ETF distance stays bounded away from 0 (expected outcome, not a failure)."""
    r = ufm.solve_cached(problem(p), "lbfgs", seed)
    distance, bound = means_etf_distance(r), ufm.etf_distance_lower_bound(C, p)
    print(f"C={C} p={p} seed={seed}: means' ETF distance {distance:.6f}, lower bound {bound:.6f}, "
          f"f = {r.objective:.10f}")
    claim_check("ufm_lowdim_etf_distance_min", distance, seed=seed, run=f"ufm-ce-lbfgs-C{C}-p{p}",
                note=f"lower bound sqrt(2 - 2 sqrt(p/(C-1))) = {bound:.4f}")


@pytest.mark.parametrize("p,seed", cases(LOW_DIMS))
def test_features_still_collapse_when_p_below_c_minus_1(p, seed, claim_check):
    """p < C-1: NC1 still holds (collapse_metrics on the features zero-padded to C-1 dimensions)."""
    r = ufm.solve_cached(problem(p), "lbfgs", seed)
    nc1 = metrics.collapse_metrics(ufm.embedded_features(r.features, C), r.labels, num_classes=C)["nc1"]
    claim_check("ufm_lowdim_nc1_max", nc1, seed=seed, run=f"ufm-ce-lbfgs-C{C}-p{p}")
