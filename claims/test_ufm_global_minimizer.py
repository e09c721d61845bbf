"""UFM claim 1: every global minimiser of the regularised cross-entropy UFM is Neural Collapse.

Source: Zhu et al., "A Geometric Analysis of Neural Collapse with Unconstrained Features", NeurIPS 2021
(arXiv 2105.02375), Theorem 3.1: for p >= C-1 every global minimiser has h_{k,i} = sqrt(lambda_W /
(n lambda_H)) w_k (features equal their class means, self-duality), rows w_k forming a simplex ETF, and
b = b* 1 (b* = 0 when lambda_b > 0). The norm is the minimiser q* of the reduced 1-D objective
(ncsim.ufm.closed_forms docstring, derived there from the first-order conditions).

From random inits, each solver (GD, minibatch SGD, Adam, LBFGS; float64) is run until ||grad f|| <=
1e-8; the point reached is then checked against all of that, and against the closed form.
"""

import math

import numpy as np
import pytest

from ncsim import metrics, ufm

GTOL = ufm.DEFAULT_GTOL
CONFIGS = {
    # p > C, unequal lambdas (so the ratio sqrt(n lambda_H / lambda_W) = sqrt(2) is not 1), lambda_b > 0
    "C4-p6": ufm.UFMProblem(4, 6, 5, lambda_w=5e-2, lambda_h=2e-2, lambda_b=5e-2),
    # p = C-1, the smallest dimension of Thm 3.1, and lambda_b = 0 (b* is then any constant)
    "C6-p5": ufm.UFMProblem(6, 5, 4, lambda_w=2e-2, lambda_h=5e-2, lambda_b=0.0),
}
SEEDS = (0, 1)


# ---- statistics of a point (W, H, b) reached by a solver (a ufm.UFMResult) ---------------------------

def grad_norm(result: ufm.UFMResult) -> float:
    """||grad f||_2 at the point: the solver reached a critical point."""
    return result.grad_norm


def _collapse_metrics(result: ufm.UFMResult) -> dict[str, float]:
    """Every ncsim.metrics.collapse_metrics statistic that is 0 at exact Neural Collapse (all but the
    DIAGNOSTIC_KEYS)."""
    m = metrics.collapse_metrics(result.features, result.labels, result.W, result.b,
                                 num_classes=result.problem.num_classes)
    return {k: v for k, v in m.items() if k not in metrics.DIAGNOSTIC_KEYS}


def nc_max(result: ufm.UFMResult) -> float:
    """The largest of the ncsim.metrics.collapse_metrics statistics that vanish at exact collapse (NC1-NC4,
    ETF distances) of the features H^T and the classifier (W, b)."""
    return max(_collapse_metrics(result).values())


def _norms(result: ufm.UFMResult) -> tuple[np.ndarray, np.ndarray]:
    """(||w_{y_i}||, ||h_i||) for every sample i."""
    return np.linalg.norm(result.W, axis=1)[result.labels], np.linalg.norm(result.H, axis=0)


def norm_ratio_error(result: ufm.UFMResult) -> float:
    """max over k, i of | ||w_k|| / (sqrt(n lambda_H / lambda_W) ||h_{k,i}||) - 1 | (Thm 3.1)."""
    w, h = _norms(result)
    return float(np.abs(w / (result.problem.norm_ratio * h) - 1).max())


def bias_spread(result: ufm.UFMResult) -> float:
    """max_k |b_k - mean(b)|: b = b* 1 (Thm 3.1)."""
    return float(np.abs(result.b - result.b.mean()).max())


def bias_error(result: ufm.UFMResult) -> float:
    """max_k |b_k - b*| with b* = 0 (CE, lambda_b > 0; Thm 3.1) or 1/C (MSE, lambda_b = 0); NaN for CE
    with lambda_b = 0, where any constant b* is optimal."""
    pr = result.problem
    if pr.loss == "ce" and pr.lambda_b == 0:
        return math.nan
    _, _, b_star = ufm.closed_form_minimizer(pr)
    return float(np.abs(result.b - b_star).max())


def product_error(result: ufm.UFMResult) -> float:
    """max over k, i of | ||w_k|| ||h_{k,i}|| / q* - 1 |, q* = ufm.optimal_product: for CE
    (C-1)/C log((1 - (C-1) kappa)/kappa), the minimiser of the reduced objective over the ETF scale,
    kappa = sqrt(n lambda_W lambda_H)."""
    w, h = _norms(result)
    return float(np.abs(w * h / ufm.optimal_product(result.problem) - 1).max())


def gap_to(result: ufm.UFMResult, value: float) -> float:
    """|f - value| / value: f at the point relative to a closed-form objective value."""
    return abs(result.objective - value) / value


def objective_gap(result: ufm.UFMResult) -> float:
    """|f - g(q*)| / g(q*): f at the point vs the reduced objective's minimum, the global minimum value."""
    return gap_to(result, ufm.optimal_objective(result.problem))


CHECKS = {
    "ufm_grad_norm_max": grad_norm,
    "ufm_nc_max": nc_max,
    "ufm_norm_ratio_error": norm_ratio_error,
    "ufm_bias_spread": bias_spread,
    "ufm_bias_error": bias_error,
    "ufm_product_error": product_error,
    "ufm_objective_gap": objective_gap,
}


def largest_metric(result: ufm.UFMResult) -> str:
    m = _collapse_metrics(result)
    return f"largest: {max(m, key=m.get)}"


NOTES = {
    "ufm_nc_max": largest_metric,
    "ufm_product_error": lambda result: f"q* = {ufm.optimal_product(result.problem):.6g}",
}


def note(tolerance: str, result: ufm.UFMResult) -> str:
    return NOTES[tolerance](result) if tolerance in NOTES else ""


# b* is only determined (as 0) when lambda_b > 0: ufm_bias_error is not checked on C6-p5
CASES = [pytest.param(config, solver, seed, tolerance, id=f"{config}-{solver}-seed{seed}-{tolerance}")
         for config in CONFIGS for solver in ufm.SOLVERS for seed in SEEDS for tolerance in CHECKS
         if tolerance != "ufm_bias_error" or CONFIGS[config].lambda_b > 0]


@pytest.mark.parametrize("config,solver,seed,tolerance", CASES)
def test_minimizer_is_nc(config, solver, seed, tolerance, run_store, claim_check):
    """The solver's end point is critical, Neural Collapse, and the closed form of Thm 3.1."""
    r = ufm.solve_cached(CONFIGS[config], solver, seed, gtol=GTOL, store=run_store)
    claim_check(tolerance, CHECKS[tolerance](r), seed=seed, run=f"ufm-ce-{solver}-{config}",
                note=note(tolerance, r))
