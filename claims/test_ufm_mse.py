"""UFM claim 4: the regularised MSE UFM (with bias) also collapses to a simplex ETF.

Source: Han, Papyan & Donoho, "Neural Collapse under MSE Loss: Proximity to and Dynamics on the Central
Path", ICLR 2022 (collapse under MSE); the UFM statement with regularisation is that of Zhou et al.,
"On the Optimization Landscape of Neural Collapse under MSE Loss", ICML 2022 and Tirer & Bruna,
"Extended Unconstrained Features Model for Exploring Deep Neural Collapse", ICML 2022. Loss here:
mean_i 1/2 ||W h_i + b - e_{y_i}||^2 (ncsim.ufm). With lambda_b = 0 the minimiser has b = 1/C, class
means on a simplex ETF with ||w_k|| = sqrt(n lambda_H/lambda_W) ||h_{k,i}|| and centred logits
(1 - C kappa)(I - 11^T/C), kappa = sqrt(n lambda_W lambda_H) (derived in ncsim.ufm): non-trivial only
for C kappa < 1. The lambdas are chosen at C kappa = 0.28, well inside that regime (close to the
threshold the solution shrinks to 0 and relative accuracy at a fixed gradient tolerance degrades);
beyond it (C kappa = 2.7) everything collapses to W = H = 0, checked below for MSE and CE.
"""

import pytest

from claims.test_ufm_global_minimizer import GTOL
from ncsim import ufm

PROBLEM = ufm.UFMProblem(4, 6, 5, lambda_w=5e-2, lambda_h=2e-2, lambda_b=0.0, loss="mse")
# lambda_b > 0 (small): the bias shrinks, the geometry stays an ETF; no closed form is claimed.
PROBLEM_REG_BIAS = ufm.UFMProblem(4, 6, 5, lambda_w=5e-2, lambda_h=2e-2, lambda_b=5e-2, loss="mse")
TRIVIAL = {loss: ufm.UFMProblem(4, 6, 5, lambda_w=0.3, lambda_h=0.3, lambda_b=0.0 if loss == "mse" else 5e-2,
                                loss=loss) for loss in ufm.LOSSES}
SEEDS = (0, 1)
CASES = [pytest.param(solver, seed, id=f"{solver}-seed{seed}")
         for solver in ufm.SOLVERS for seed in SEEDS]


def stats(problem, solver, seed):
    return ufm.collapse_statistics(ufm.solve_cached(problem, solver, seed, gtol=GTOL))


@pytest.mark.parametrize("solver,seed", CASES)
def test_converges(solver, seed, claim_check):
    """The solver reaches ||grad f||_2 <= 1e-8."""
    claim_check("ufm_grad_norm_max", stats(PROBLEM, solver, seed)["grad_norm"], seed=seed,
                run=f"ufm-mse-{solver}")


@pytest.mark.parametrize("solver,seed", CASES)
def test_neural_collapse(solver, seed, claim_check):
    """All collapse_metrics statistics (NC1-NC4, ETF distances) below 1e-6."""
    s = stats(PROBLEM, solver, seed)
    claim_check("ufm_nc_max", s["nc_max"], seed=seed, run=f"ufm-mse-{solver}", note=f"largest: {s['nc_worst']}")


@pytest.mark.parametrize("solver,seed", CASES)
def test_neural_collapse_regularised_bias(solver, seed, claim_check):
    """With a small bias penalty (lambda_b = 0.05) the minimiser is still Neural Collapse."""
    s = stats(PROBLEM_REG_BIAS, solver, seed)
    claim_check("ufm_nc_max", s["nc_max"], seed=seed, run=f"ufm-mse-lambda_b-{solver}",
                note=f"largest: {s['nc_worst']}")


@pytest.mark.parametrize("solver,seed", CASES)
def test_norm_ratio(solver, seed, claim_check):
    """||w_k|| = sqrt(n lambda_H / lambda_W) ||h_{k,i}|| (the first-order conditions, as for CE)."""
    claim_check("ufm_norm_ratio_error", stats(PROBLEM, solver, seed)["norm_ratio_error"], seed=seed,
                run=f"ufm-mse-{solver}")


@pytest.mark.parametrize("solver,seed", CASES)
def test_norm_closed_form(solver, seed, claim_check):
    """||w_k|| ||h_{k,i}|| = q* = (C-1)(1 - C kappa)/C."""
    claim_check("ufm_product_error", stats(PROBLEM, solver, seed)["product_error"], seed=seed,
                run=f"ufm-mse-{solver}", note=f"q* = {ufm.optimal_product(PROBLEM):.6g}")


@pytest.mark.parametrize("solver,seed", CASES)
def test_bias_one_over_c(solver, seed, claim_check):
    """b = (1/C) 1."""
    claim_check("ufm_bias_error", stats(PROBLEM, solver, seed)["bias_error"], seed=seed,
                run=f"ufm-mse-{solver}")


@pytest.mark.parametrize("solver,seed", CASES)
def test_objective_closed_form(solver, seed, claim_check):
    """f at the point reached equals the closed-form minimum g(q*)."""
    claim_check("ufm_objective_gap", stats(PROBLEM, solver, seed)["objective_gap"], seed=seed,
                run=f"ufm-mse-{solver}")


@pytest.mark.parametrize("loss,solver", [pytest.param(loss, solver, id=f"{loss}-{solver}")
                                         for loss in ufm.LOSSES for solver in ("gd", "lbfgs")])
def test_too_much_regularisation_is_trivial(loss, solver, claim_check):
    """C kappa >= 1: the minimiser is W = H = 0 (||W||_F + ||H||_F, and f = f(0))."""
    r = ufm.solve_cached(TRIVIAL[loss], solver, 0, gtol=GTOL)
    s = ufm.trivial_statistics(r)
    note = f"C kappa = {TRIVIAL[loss].num_classes * TRIVIAL[loss].kappa:.3g}"
    claim_check("ufm_trivial_norm", s["norm"], seed=0, run=f"ufm-{loss}-trivial-{solver}", note=note)
    claim_check("ufm_trivial_objective_gap", s["objective_gap"], seed=0, run=f"ufm-{loss}-trivial-{solver}")
