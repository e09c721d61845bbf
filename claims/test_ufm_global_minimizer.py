"""UFM claim 1: every global minimiser of the regularised cross-entropy UFM is Neural Collapse.

Source: Zhu et al., "A Geometric Analysis of Neural Collapse with Unconstrained Features", NeurIPS 2021
(arXiv 2105.02375), Theorem 3.1: for p >= C-1 every global minimiser has h_{k,i} = sqrt(lambda_W /
(n lambda_H)) w_k (features equal their class means, self-duality), rows w_k forming a simplex ETF, and
b = b* 1 (b* = 0 when lambda_b > 0). The norm is the minimiser q* of the reduced 1-D objective
(ncsim.ufm.closed_forms docstring, derived there from the first-order conditions).

From random inits, each solver (GD, minibatch SGD, Adam, LBFGS; float64) is run until ||grad f|| <=
1e-8; the point reached is then checked against all of that, and against the closed form.
"""

import numpy as np

from claims.shared import GTOL, MINIMIZER_CHECKS, UFM_PROBLEMS, solved
from ncsim import ufm
from ncsim.checks import Check
from ncsim.claim import Case, Checks

SEEDS = (0, 1)


def bias_spread(result: ufm.UFMResult) -> float:
    """max_k |b_k - mean(b)|: b = b* 1 (Thm 3.1)."""
    return float(np.abs(result.b - result.b.mean()).max())


# The statistics of a point (W, H, b) reached by a solver (a ufm.UFMResult): claims/shared.py.
FULL = (
    "ufm_grad_norm_max",
    "ufm_nc_max",
    "ufm_norm_ratio_error",
    "ufm_bias_spread",
    "ufm_bias_error",
    "ufm_product_error",
    "ufm_objective_gap",
)
CHECKS_OF = {**MINIMIZER_CHECKS, "ufm_bias_spread": Check("ufm_bias_spread", bias_spread)}


def cases(config: str) -> list[Case]:
    """Each solver from each seed on the problem `config` (claims/shared.py, UFM_PROBLEMS)."""
    return [
        Case(
            f"{config}-{solver}-seed{seed}",
            solved(UFM_PROBLEMS[config], solver, seed, GTOL),
            run=f"ufm-ce-{solver}-{config}",
            seed=seed,
        )
        for solver in ufm.SOLVERS
        for seed in SEEDS
    ]


# The solver's end point is critical, Neural Collapse, and the closed form of Thm 3.1. b* is only
# determined (as 0) when lambda_b > 0: ufm_bias_error is not checked on C6-p5 (lambda_b = 0).
CHECKS = tuple(
    Checks(
        "test_minimizer_is_nc",
        *(CHECKS_OF[t] for t in FULL if t != "ufm_bias_error" or UFM_PROBLEMS[config].lambda_b > 0),
        cases=cases(config),
    )
    for config in UFM_PROBLEMS
)
