"""UFM claim 4: the regularised MSE UFM (with bias) also collapses to a simplex ETF.

Source: Han, Papyan & Donoho, "Neural Collapse under MSE Loss: Proximity to and Dynamics on the Central
Path", ICLR 2022 (collapse under MSE); the UFM statement with regularisation is that of Zhou et al.,
"On the Optimization Landscape of Neural Collapse under MSE Loss", ICML 2022 and Tirer & Bruna,
"Extended Unconstrained Features Model for Exploring Deep Neural Collapse", ICML 2022. Loss here:
mean_i 1/2 ||W h_i + b - e_{y_i}||^2 (ncsim.ufm.problem). With lambda_b = 0 the minimiser has b = 1/C, class
means on a simplex ETF with ||w_k|| = sqrt(n lambda_H/lambda_W) ||h_{k,i}|| and centred logits
(1 - C kappa)(I - 11^T/C), kappa = sqrt(n lambda_W lambda_H) (derived in ncsim.ufm.closed_forms): non-trivial only
for C kappa < 1. The lambdas are chosen at C kappa = 0.28, well inside that regime (close to the
threshold the solution shrinks to 0 and relative accuracy at a fixed gradient tolerance degrades);
beyond it (C kappa = 2.7) everything collapses to W = H = 0, checked below for MSE and CE.
"""

import numpy as np

from claims.shared import MINIMIZER_CHECKS, gap_to, solved
from ncsim import ufm
from ncsim.checks import Check
from ncsim.claim import Case, Checks

PROBLEM = ufm.UFMProblem(4, 6, 5, lambda_w=5e-2, lambda_h=2e-2, lambda_b=0.0, loss="mse")
# lambda_b > 0 (small): the bias shrinks, the geometry stays an ETF; no closed form is claimed.
PROBLEM_REG_BIAS = ufm.UFMProblem(4, 6, 5, lambda_w=5e-2, lambda_h=2e-2, lambda_b=5e-2, loss="mse")
TRIVIAL = {
    loss: ufm.UFMProblem(4, 6, 5, lambda_w=0.3, lambda_h=0.3, lambda_b=0.0 if loss == "mse" else 5e-2, loss=loss)
    for loss in ufm.LOSSES
}
SEEDS = (0, 1)
TRIVIAL_SOLVERS = ("gd", "lbfgs")


# ---- statistics: claim 1's at a minimiser (claims/shared.py), and at W = H = 0 ---------------------------

# lambda_b = 0: critical, Neural Collapse, ||w_k|| = sqrt(n lambda_H / lambda_W) ||h_{k,i}|| (the
# first-order conditions, as for CE), ||w_k|| ||h_{k,i}|| = q* = (C-1)(1 - C kappa)/C, b = (1/C) 1 (so
# claim 1's ufm_bias_spread adds nothing) and f = g(q*)
MINIMIZER = tuple(
    MINIMIZER_CHECKS[t]
    for t in (
        "ufm_grad_norm_max",
        "ufm_nc_max",
        "ufm_norm_ratio_error",
        "ufm_product_error",
        "ufm_bias_error",
        "ufm_objective_gap",
    )
)
# lambda_b = 0.05: still Neural Collapse (all collapse_metrics statistics)
REGULARISED_BIAS = (MINIMIZER_CHECKS["ufm_nc_max"],)


def trivial_norm(result: ufm.UFMResult) -> float:
    """||W||_F + ||H||_F: 0 at the minimiser W = H = 0 of the C kappa >= 1 regime."""
    return float(np.linalg.norm(result.W) + np.linalg.norm(result.H))


def trivial_objective_gap(result: ufm.UFMResult) -> float:
    """|f - f(0)| / f(0), f(0) = log C (CE) or (C-1)/(2C) (MSE) (ufm.trivial_objective)."""
    return gap_to(result, ufm.trivial_objective(result.problem))


def c_kappa(result: ufm.UFMResult) -> str:
    return f"C kappa = {result.problem.num_classes * result.problem.kappa:.3g}"


# C kappa >= 1: the minimiser is W = H = 0, f = f(0)
TRIVIAL_CHECKS = (
    Check("ufm_trivial_norm", trivial_norm, note=c_kappa),
    Check("ufm_trivial_objective_gap", trivial_objective_gap, note=c_kappa),
)


def minimizer_cases(name: str, problem: ufm.UFMProblem) -> list[Case]:
    """Each solver from each seed on the problem (the runs' label is ufm-<name>-<solver>)."""
    return [
        Case(f"{name}-{solver}-seed{seed}", solved(problem, solver, seed), run=f"ufm-{name}-{solver}", seed=seed)
        for solver in ufm.SOLVERS
        for seed in SEEDS
    ]


CHECKS = (
    # The solver's end point is critical, Neural Collapse, and (lambda_b = 0) the closed form.
    Checks("test_minimizer_is_nc", *MINIMIZER, cases=minimizer_cases("mse", PROBLEM)),
    Checks("test_minimizer_is_nc", *REGULARISED_BIAS, cases=minimizer_cases("mse-lambda_b", PROBLEM_REG_BIAS)),
    # C kappa >= 1: the minimiser is W = H = 0 (||W||_F + ||H||_F, and f = f(0)).
    Checks(
        "test_too_much_regularisation_is_trivial",
        *TRIVIAL_CHECKS,
        cases=[
            Case(f"{loss}-{solver}", solved(TRIVIAL[loss], solver, 0), run=f"ufm-{loss}-trivial-{solver}", seed=0)
            for loss in ufm.LOSSES
            for solver in TRIVIAL_SOLVERS
        ],
    ),
)
