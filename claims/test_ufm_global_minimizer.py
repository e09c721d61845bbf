"""UFM claim 1: every global minimiser of the regularised cross-entropy UFM is Neural Collapse.

Source: Zhu et al., "A Geometric Analysis of Neural Collapse with Unconstrained Features", NeurIPS 2021
(arXiv 2105.02375), Theorem 3.1: for p >= C-1 every global minimiser has h_{k,i} = sqrt(lambda_W /
(n lambda_H)) w_k (features equal their class means, self-duality), rows w_k forming a simplex ETF, and
b = b* 1 (b* = 0 when lambda_b > 0). The norm is the minimiser q* of the reduced 1-D objective
(ncsim.ufm module docstring, derived there from the first-order conditions).

From random inits, each solver (GD, minibatch SGD, Adam, LBFGS; float64) is run until ||grad f|| <=
1e-8; the point reached is then checked against all of that, and against the closed form.
"""

import pytest

from ncsim import ufm

GTOL = ufm.DEFAULT_GTOL
CONFIGS = {
    # p > C, unequal lambdas (so the ratio sqrt(n lambda_H / lambda_W) = sqrt(2) is not 1), lambda_b > 0
    "C4-p6": ufm.UFMProblem(4, 6, 5, lambda_w=5e-2, lambda_h=2e-2, lambda_b=5e-2),
    # p = C-1, the smallest dimension of Thm 3.1, and lambda_b = 0 (b* is then any constant)
    "C6-p5": ufm.UFMProblem(6, 5, 4, lambda_w=2e-2, lambda_h=5e-2, lambda_b=0.0),
}
SEEDS = (0, 1)
CASES = [pytest.param(config, solver, seed, id=f"{config}-{solver}-seed{seed}")
         for config in CONFIGS for solver in ufm.SOLVERS for seed in SEEDS]


def run_stats(config: str, solver: str, seed: int) -> dict:
    return ufm.collapse_statistics(ufm.solve_cached(CONFIGS[config], solver, seed, gtol=GTOL))


@pytest.mark.parametrize("config,solver,seed", CASES)
def test_converges(config, solver, seed, claim_check):
    """The solver reaches a critical point: ||grad f||_2 <= 1e-8."""
    claim_check("ufm_grad_norm_max", run_stats(config, solver, seed)["grad_norm"], seed=seed,
                run=f"ufm-ce-{solver}-{config}")


@pytest.mark.parametrize("config,solver,seed", CASES)
def test_neural_collapse(config, solver, seed, claim_check):
    """Every statistic of ncsim.metrics.collapse_metrics (NC1-NC4, ETF distances) is below 1e-6."""
    stats = run_stats(config, solver, seed)
    claim_check("ufm_nc_max", stats["nc_max"], seed=seed, run=f"ufm-ce-{solver}-{config}",
                note=f"largest: {stats['nc_worst']}")


@pytest.mark.parametrize("config,solver,seed", CASES)
def test_norm_ratio(config, solver, seed, claim_check):
    """||w_k|| = sqrt(n lambda_H / lambda_W) ||h_{k,i}|| for every class and sample (Thm 3.1)."""
    claim_check("ufm_norm_ratio_error", run_stats(config, solver, seed)["norm_ratio_error"], seed=seed,
                run=f"ufm-ce-{solver}-{config}")


@pytest.mark.parametrize("config,solver,seed", CASES)
def test_bias_constant(config, solver, seed, claim_check):
    """b = b* 1 (Thm 3.1)."""
    claim_check("ufm_bias_spread", run_stats(config, solver, seed)["bias_spread"], seed=seed,
                run=f"ufm-ce-{solver}-{config}")


@pytest.mark.parametrize("config,solver,seed", [c for c in CASES if CONFIGS[c.values[0]].lambda_b > 0])
def test_bias_zero(config, solver, seed, claim_check):
    """With lambda_b > 0, b* = 0 (Thm 3.1)."""
    claim_check("ufm_bias_error", run_stats(config, solver, seed)["bias_error"], seed=seed,
                run=f"ufm-ce-{solver}-{config}")


@pytest.mark.parametrize("config,solver,seed", CASES)
def test_norm_closed_form(config, solver, seed, claim_check):
    """||w_k|| ||h_{k,i}|| = q* = (C-1)/C log((1 - (C-1) kappa)/kappa), the minimiser of the reduced
    objective over the ETF scale, kappa = sqrt(n lambda_W lambda_H)."""
    q = ufm.optimal_product(CONFIGS[config])
    claim_check("ufm_product_error", run_stats(config, solver, seed)["product_error"], seed=seed,
                run=f"ufm-ce-{solver}-{config}", note=f"q* = {q:.6g}")


@pytest.mark.parametrize("config,solver,seed", CASES)
def test_objective_closed_form(config, solver, seed, claim_check):
    """f at the point reached equals the reduced objective's minimum g(q*)."""
    claim_check("ufm_objective_gap", run_stats(config, solver, seed)["objective_gap"], seed=seed,
                run=f"ufm-ce-{solver}-{config}")
