"""Statistics and problems that more than one claim file measures, in one place: the claim files
import them from here, never from one another.
"""

import math

import numpy as np

from ncsim import metrics, ufm
from ncsim.checks import Check, Premise

# ---- statistics of a run (a Trajectory) --------------------------------------------------------------

# The fewest evaluated epochs from the stable TPT on that a trend over them is computed from.
MIN_POINTS = 5

# What a statement about the course of the terminal phase (NC1's trend through it, its fall from the TPT
# to the end, on train against test) assumes: one long enough to see a course in. Papyan et al. train
# 350 epochs, most of them in TPT; here the stable TPT is reached at 56-96 of 100 epochs as the data
# seed varies, and a run that reaches it at epoch 96 has two evaluations in it.
TERMINAL_PHASE = Premise(
    "a terminal phase to observe: evaluated epochs from the stable TPT on",
    lambda run: len(run.post_tpt("train.nc1")[0]),
    ">=",
    MIN_POINTS,
)


def nc1_end(run) -> float:
    return run.final("train.nc1")


def nc1_init_over_end(run) -> float:
    return run["train.nc1"][0] / run.final("train.nc1")


def nc3_end(run) -> float:
    return run.final("train.nc3")


def nc4_end(run) -> float:
    return run.final("train.nc4")


def tpt_fraction(run) -> float:
    """The (stable) TPT epoch as a fraction of the training epochs; a run that never reaches it counts
    as reaching it one epoch after the last, (epochs + 1) / epochs."""
    return (run.spec.epochs + 1 if run.tpt_epoch is None else run.tpt_epoch) / run.spec.epochs


def tpt_onset_fraction(run) -> float:
    """The first evaluated epoch with zero train error (Papyan et al.'s start of TPT; the error may come
    back after it) as a fraction of the training epochs; never reached counts as (epochs + 1) / epochs."""
    onset = run.first_zero_error_epoch
    return (run.spec.epochs + 1 if onset is None else onset) / run.spec.epochs


# ---- the UFM problems of the global-minimiser claim, and statistics of a point a solver reached ----------

GTOL = ufm.DEFAULT_GTOL
UFM_PROBLEMS = {
    # p > C, unequal lambdas (so the ratio sqrt(n lambda_H / lambda_W) = sqrt(2) is not 1), lambda_b > 0
    "C4-p6": ufm.UFMProblem(4, 6, 5, lambda_w=5e-2, lambda_h=2e-2, lambda_b=5e-2),
    # p = C-1, the smallest dimension of Thm 3.1, and lambda_b = 0 (b* is then any constant)
    "C6-p5": ufm.UFMProblem(6, 5, 4, lambda_w=2e-2, lambda_h=5e-2, lambda_b=0.0),
}


def grad_norm(result: ufm.UFMResult) -> float:
    """||grad f||_2 at the point: the solver reached a critical point."""
    return result.grad_norm


def _collapse_metrics(result: ufm.UFMResult) -> dict[str, float]:
    """Every ncsim.metrics.collapse_metrics statistic that is 0 at exact Neural Collapse (all but the
    DIAGNOSTIC_KEYS)."""
    m = metrics.collapse_metrics(
        result.features, result.labels, result.W, result.b, num_classes=result.problem.num_classes
    )
    return {k: v for k, v in m.items() if k not in metrics.DIAGNOSTIC_KEYS}


def nc_max(result: ufm.UFMResult) -> float:
    """The largest of the ncsim.metrics.collapse_metrics statistics that vanish at exact collapse (NC1-NC4,
    ETF distances) of the features H^T and the classifier (W, b)."""
    return max(_collapse_metrics(result).values())


def largest_metric(result: ufm.UFMResult) -> str:
    m = _collapse_metrics(result)
    return f"largest: {max(m, key=m.get)}"


def norms(result: ufm.UFMResult) -> tuple[np.ndarray, np.ndarray]:
    """(||w_{y_i}||, ||h_i||) for every sample i."""
    return np.linalg.norm(result.W, axis=1)[result.labels], np.linalg.norm(result.H, axis=0)


def norm_ratio_error(result: ufm.UFMResult) -> float:
    """max over k, i of | ||w_k|| / (sqrt(n lambda_H / lambda_W) ||h_{k,i}||) - 1 | (Thm 3.1)."""
    w, h = norms(result)
    return float(np.abs(w / (result.problem.norm_ratio * h) - 1).max())


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
    w, h = norms(result)
    return float(np.abs(w * h / ufm.optimal_product(result.problem) - 1).max())


def optimal_product_note(result: ufm.UFMResult) -> str:
    return f"q* = {ufm.optimal_product(result.problem):.6g}"


def gap_to(result: ufm.UFMResult, value: float) -> float:
    """|f - value| / value: f at the point relative to a closed-form objective value."""
    return abs(result.objective - value) / value


def objective_gap(result: ufm.UFMResult) -> float:
    """|f - g(q*)| / g(q*): f at the point vs the reduced objective's minimum, the global minimum value."""
    return gap_to(result, ufm.optimal_objective(result.problem))


# The checks of a minimiser, by tolerance: each claim file takes those that its problems determine.
MINIMIZER_CHECKS = {
    check.tolerance: check
    for check in (
        Check("ufm_grad_norm_max", grad_norm),
        Check("ufm_nc_max", nc_max, note=largest_metric),
        Check("ufm_norm_ratio_error", norm_ratio_error),
        Check("ufm_bias_error", bias_error),
        Check("ufm_product_error", product_error, note=optimal_product_note),
        Check("ufm_objective_gap", objective_gap),
    )
}


def solved(problem: ufm.UFMProblem, solver: str, seed: int, gtol: float = GTOL):
    """The input of a case that checks a solver's end point: `make(store)` -> the ufm.UFMResult of
    `solver` from the init of `seed`, solved once into the run store (ufm.solve_cached)."""
    return lambda store: ufm.solve_cached(problem, solver, seed, gtol=gtol, store=store)
