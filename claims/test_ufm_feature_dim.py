"""UFM claim 3: the simplex ETF needs p >= C-1 feature dimensions.

Source: Zhu et al., "A Geometric Analysis of Neural Collapse with Unconstrained Features", NeurIPS 2021
(arXiv 2105.02375), Theorem 3.1, which assumes p >= C-1: C vectors with pairwise cosines -1/(C-1) span
C-1 dimensions. For p >= C-1 the CE UFM's minimiser found by LBFGS has centered class means at ETF Gram
distance ~0. For p < C-1 no centered configuration can be closer to the ETF than
sqrt(2 - 2 sqrt(p/(C-1))) (ncsim.ufm.etf_distance_lower_bound, derived there), so the documented expected
outcome is: the means' ETF distance stays bounded away from 0 (measured values reported per case; for
p = 2 they sit at the bound, a regular C-gon) while the features still collapse to their class means
(NC1 holds at every critical point: each h_i minimises a strictly convex function of h_i given W, b).
Observed but not claimed: for p < C-1 different inits can end at different objective values (e.g.
C = 6, p = 2 and p = 4), i.e. the benign landscape of Thm 3.2 is lost.
"""

from claims.shared import solved
from ncsim import metrics, ufm
from ncsim.checks import Check
from ncsim.claim import Case, Checks

C = 6
FULL_DIMS = (C - 1, C, 2 * C)
LOW_DIMS = (2, 3, C - 2)
SEEDS = (0, 1)


def problem(p: int) -> ufm.UFMProblem:
    return ufm.UFMProblem(C, p, 4, lambda_w=5e-2, lambda_h=2e-2, lambda_b=5e-2)


# ---- statistics of a solver's end point (a ufm.UFMResult) -----------------------------------------------


def means_etf_distance(result: ufm.UFMResult) -> float:
    """ETF Gram distance of the centered class means (0 for a simplex ETF)."""
    return ufm.etf_gram_distance(ufm.centered_mean_gram(result.features, result.labels, C))


def features_nc1(result: ufm.UFMResult) -> float:
    """NC1 (collapse_metrics on the features zero-padded to C-1 dimensions, an isometric embedding)."""
    return metrics.collapse_metrics(ufm.embedded_features(result.features, C), result.labels, num_classes=C)["nc1"]


def bound_note(result: ufm.UFMResult) -> str:
    bound = ufm.etf_distance_lower_bound(C, result.problem.dim)
    return f"lower bound sqrt(2 - 2 sqrt(p/(C-1))) = {bound:.4f}; f = {result.objective:.10f}"


def cases(dims) -> list[Case]:
    """LBFGS from each seed on the problem of each dimension p."""
    return [
        Case(f"C{C}-p{p}-seed{seed}", solved(problem(p), "lbfgs", seed), run=f"ufm-ce-lbfgs-C{C}-p{p}", seed=seed)
        for p in dims
        for seed in SEEDS
    ]


CHECKS = (
    # p >= C-1: the centered class means form a simplex ETF
    Checks(
        "test_etf_needs_p_at_least_c_minus_1", Check("ufm_etf_distance_max", means_etf_distance), cases=cases(FULL_DIMS)
    ),
    # p < C-1: the means' ETF distance stays bounded away from 0 (expected outcome, not a failure), and
    # the features still collapse (NC1)
    Checks(
        "test_etf_needs_p_at_least_c_minus_1",
        Check("ufm_lowdim_etf_distance_min", means_etf_distance, note=bound_note),
        Check("ufm_lowdim_nc1_max", features_nc1),
        cases=cases(LOW_DIMS),
    ),
)
